"""Writing frame sequences atomically: videos, animated GIFs and folders of numbered PNG frames.

``open_writer`` picks the writer for a path (``encoding.output_kind``).
Each takes (H, W, 3) RGB frames of its ``sample_dtype`` (uint8, or uint16
for outputs deeper than 8 bits) through ``write``, writes them into a
``destination.Destination`` and puts the result in place on ``close``;
``abort`` (or any exception inside a ``with`` block, KeyboardInterrupt
included) leaves the destination as it was. A writer can write part of a
longer sequence (``first_index``): its frames keep the sequence's
timestamps (videos) or numbers (PNG frames).
"""
from __future__ import annotations

import contextlib
import os
import sys
from fractions import Fraction
from typing import List, Optional

import av
import cv2
import numpy as np
from PIL import Image

from media.destination import Destination
from media.encoding import MATRIX_RGB, SWSCALE_MATRICES, VIDEO_FORMATS, VideoEncoding, check_container, output_kind
from media.errors import OutputError, log
from media.images import PNG_FRAME_DIGITS, PNG_FRAME_PREFIX
from media.samples import round_to_bits


class FrameWriter:
    """Streams RGB frames of a fixed size into one output; see the module docstring."""

    kind = ""
    sample_dtype: type = np.uint8   # what write() takes

    def __init__(self, path: str, fps: Fraction, width: int, height: int, first_index: int = 0):
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        if first_index < 0:
            raise ValueError(f"first_index must be >= 0, not {first_index}")
        self.fps = Fraction(fps)
        self.width, self.height = int(width), int(height)
        # Index (in the whole sequence) of the first frame written here: a part
        # of a longer sequence keeps the sequence's timestamps and frame names.
        self.first_index = int(first_index)
        self.frames_written = 0
        self._finished = False
        self.destination = Destination(path, is_folder=(self.kind == "png"))
        self.path = self.destination.final

    def write(self, frame: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("write() after close() or abort()")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != self.sample_dtype:
            raise ValueError(f"expected a {np.dtype(self.sample_dtype).name} frame of shape "
                             f"{(self.height, self.width, 3)}, got {frame.dtype} {frame.shape}")
        try:
            self._write(np.ascontiguousarray(frame))
        except OSError as error:
            raise OutputError(f"cannot write {self.path}: {error.strerror or error}") from None
        self.frames_written += 1

    def close(self) -> None:
        """Finish the output and move it into place."""
        if self._finished:
            return
        if self.frames_written == 0:
            self.abort()
            raise OutputError(f"no frames were written to {self.path}")
        try:
            self._finish()
            self.destination.commit()
        except BaseException as error:
            self.abort()
            if isinstance(error, OSError):
                raise OutputError(f"cannot write {self.path}: {error.strerror or error}") from None
            raise
        self._finished = True

    def abort(self) -> None:
        """Drop everything written so far; the destination is left as it was."""
        if self._finished:
            return
        self._finished = True
        try:
            self._release()
        finally:
            self.destination.discard()

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.close()
        else:
            self.abort()

    # Hooks for the formats.
    def _write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Complete the temporary output (it is renamed afterwards)."""

    def _release(self) -> None:
        """Free resources without completing the output."""


class VideoWriter(FrameWriter):
    """A video stream of one ``VideoEncoding`` (default: H.264) in MP4/MOV (with +faststart) or Matroska.

    RGB frames are converted to the encoding's pixel format with its matrix
    and range, and tagged with its colour tags; FFV1 takes the RGB samples
    as they are. Subsampled chroma (4:2:0, 4:2:2) needs an even width (and
    height for 4:2:0), so an odd size gets its last column/row repeated once
    (e.g. 101x67 becomes 102x68) rather than losing a pixel line. Frame n has
    timestamp (first_index + n)/fps exactly (the codec time base is 1/fps),
    and the first frame written is a keyframe.

    The container is opened here and the video stream added in ``_add_video_stream``;
    other streams (e.g. audio copied from a source video) can be added beside it
    before the first frame is written.
    """

    kind = "video"

    def __init__(self, path: str, fps: Fraction, width: int, height: int, first_index: int = 0,
                 encoding: Optional[VideoEncoding] = None):
        self.encoding = encoding or VideoEncoding()
        spec = self.encoding.spec
        if self.encoding.bit_depth not in spec.depths:
            raise ValueError(f"{spec.label} cannot be written at {self.encoding.bit_depth} bits")
        check_container(path, self.encoding.codec)  # before anything is created
        self.sample_dtype = self.encoding.sample_dtype
        super().__init__(path, fps, width, height, first_index)
        pix_fmt = self.encoding.pix_fmt
        even_width = pix_fmt.startswith(("yuv420", "yuv422"))
        even_height = pix_fmt.startswith("yuv420")
        self.coded_width = width + (width % 2 if even_width else 0)
        self.coded_height = height + (height % 2 if even_height else 0)
        if (self.coded_width, self.coded_height) != (width, height):
            repeated = " and ".join(what for what, added in (("column", self.coded_width > width),
                                                              ("row", self.coded_height > height)) if added)
            log.warning(f"{spec.label} needs an even {'size' if even_height else 'width'}: the video is "
                        f"{self.coded_width}x{self.coded_height} "
                        f"(last {repeated} of the {width}x{height} frames repeated)")
        extension = os.path.splitext(self.path)[1].lower()
        container_format = VIDEO_FORMATS[extension]
        options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
        try:
            self.container = av.open(self.destination.temporary, mode="w", format=container_format,
                                     options=options)
            self.video = self._add_video_stream()
        except BaseException as error:
            self.abort()
            if isinstance(error, (OSError, av.FFmpegError)):
                raise OutputError(f"cannot start the video {self.path}: {error}") from None
            raise

    def _add_video_stream(self):
        encoding = self.encoding
        stream = self.container.add_stream(encoding.spec.encoder, rate=self.fps, options=encoding.encoder_options())
        stream.width = self.coded_width
        stream.height = self.coded_height
        stream.pix_fmt = encoding.pix_fmt
        tag = encoding.stream_tag(self.container.format.name.split(",")[0])
        if tag is not None:
            stream.codec_tag = tag
        stream.codec_context.time_base = 1 / self.fps
        context = stream.codec_context
        colour = encoding.colour
        context.colorspace = colour.matrix
        context.color_primaries = colour.primaries
        context.color_trc = colour.transfer
        context.color_range = 2 if colour.full_range else 1  # AVCOL_RANGE_JPEG / AVCOL_RANGE_MPEG
        return stream

    def _to_video_frame(self, frame: np.ndarray) -> av.VideoFrame:
        encoding = self.encoding
        colour = encoding.colour
        if encoding.codec == "ffv1" and encoding.bit_depth > 8:
            # Rounded here rather than by swscale, so that the file holds
            # exactly round_to_bits(frame): what it decodes back to.
            video_frame = av.VideoFrame.from_ndarray(round_to_bits(frame, encoding.bit_depth), format=encoding.pix_fmt)
        else:
            rgb = av.VideoFrame.from_ndarray(frame, format="rgb24" if frame.dtype == np.uint8 else "rgb48le")
            if colour.matrix == MATRIX_RGB:
                video_frame = rgb.reformat(format=encoding.pix_fmt)
            else:
                video_frame = rgb.reformat(format=encoding.pix_fmt,
                                           dst_colorspace=SWSCALE_MATRICES[colour.matrix],
                                           dst_color_range=2 if colour.full_range else 1)
        # Some encoders (ProRes) take the tags from each frame, not from the stream.
        video_frame.color_primaries = colour.primaries
        video_frame.color_trc = colour.transfer
        video_frame.colorspace = colour.matrix
        video_frame.color_range = 2 if colour.full_range else 1
        return video_frame

    def _write(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != (self.coded_height, self.coded_width):
            frame = np.pad(frame, ((0, self.coded_height - self.height),
                                   (0, self.coded_width - self.width), (0, 0)), mode="edge")
        video_frame = self._to_video_frame(frame)
        video_frame.pts = self.first_index + self.frames_written
        video_frame.time_base = 1 / self.fps
        for packet in self.video.encode(video_frame):
            self.container.mux(packet)

    def _finish(self) -> None:
        for packet in self.video.encode(None):
            self.container.mux(packet)
        container, self.container = self.container, None
        container.close()

    def _release(self) -> None:
        if getattr(self, "container", None) is not None:
            container, self.container = self.container, None
            # Closed without draining the encoder: SVT-AV1 then prints "Svt[error]: deinit called
            # without sending EOS!" straight to fd 2, after our own message, about a file we delete.
            with _c_stderr_silenced():
                try:
                    container.close()
                except Exception:
                    pass  # the file is deleted next anyway
                # The codec is freed here (the stream holds it too), while its complaints go nowhere.
                del container
                self.video = None


@contextlib.contextmanager
def _c_stderr_silenced():
    """File descriptor 2 on /dev/null for the block: for what C libraries print there themselves."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no usable stderr: nothing to silence
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def gif_frame_delays(count: int, fps: Fraction) -> List[int]:
    """Per-frame delays in centiseconds (GIF's unit) whose running sums stay nearest n/fps.

    Rounding each delay alone would drift (10 fps at 3 fps → 33 cs each, 0.99 s
    per 3 frames), so frame n ends at round(100 * (n + 1) / fps) instead.
    """
    ends = [int(Fraction(100 * (n + 1)) / fps + Fraction(1, 2)) for n in range(count)]
    return [end - start for start, end in zip([0] + ends[:-1], ends)]


class GifWriter(FrameWriter):
    """Animated GIF via Pillow, looping forever, with exact total duration.

    Each frame gets its own 256-colour palette. GIF needs all delays when it is
    written, so the palettised frames (1 byte per pixel) are kept until close().
    Browsers play delays under 2 cs as 10 cs, so above 50 fps the timing is off there.
    """

    kind = "gif"

    def __init__(self, path: str, fps: Fraction, width: int, height: int):
        super().__init__(path, fps, width, height)
        self.frames: List[Image.Image] = []
        if fps > 50:
            log.warning(f"{float(fps):g} fps is faster than browsers play GIFs (50 fps at most)")

    def _write(self, frame: np.ndarray) -> None:
        self.frames.append(Image.fromarray(frame, "RGB").quantize(colors=256))

    def _finish(self) -> None:
        delays = gif_frame_delays(len(self.frames), self.fps)
        if min(delays) == 0:
            log.warning("some GIF frames get a 0 cs delay at this fps (GIF counts in 1/100 s)")
        # Pillow takes milliseconds and stores whole centiseconds.
        self.frames[0].save(self.destination.temporary, format="GIF", save_all=True,
                            append_images=self.frames[1:], duration=[10 * d for d in delays],
                            loop=0, disposal=1, optimize=False)
        self.frames = []

    def _release(self) -> None:
        self.frames = []


class PngFolderWriter(FrameWriter):
    """A folder of PNG frames named frame_00000.png, frame_00001.png, ...

    The number has at least 5 digits, more when ``frame_count`` says they are
    needed, so the names sort in frame order. fps is not stored anywhere.
    ``bit_depth`` 8 writes 8-bit PNG files from uint8 frames, 16 writes
    16-bit ones from uint16 frames.
    """

    kind = "png"

    def __init__(self, path: str, fps: Fraction, width: int, height: int,
                 frame_count: Optional[int] = None, first_index: int = 0, bit_depth: int = 8):
        if bit_depth not in (8, 16):
            raise ValueError(f"PNG frames are 8 or 16-bit, not {bit_depth}")
        self.sample_dtype = np.uint8 if bit_depth == 8 else np.uint16
        super().__init__(path, fps, width, height, first_index)
        self.digits = max(PNG_FRAME_DIGITS, len(str(max(0, (frame_count or 0) - 1))))

    def frame_name(self, index: int) -> str:
        return f"{PNG_FRAME_PREFIX}{index:0{self.digits}d}.png"

    def _write(self, frame: np.ndarray) -> None:
        ok, encoded = cv2.imencode(".png", frame[:, :, ::-1])
        if not ok:
            raise OutputError(f"PNG encoding failed for frame {self.first_index + self.frames_written}")
        target = os.path.join(self.destination.temporary, self.frame_name(self.first_index + self.frames_written))
        with open(target, "wb") as file:
            file.write(encoded.tobytes())


def open_writer(path: str, fps: Fraction, width: int, height: int,
                frame_count: Optional[int] = None, first_index: int = 0,
                encoding: Optional[VideoEncoding] = None) -> FrameWriter:
    """A writer for ``path``, chosen by ``output_kind``; its ``sample_dtype`` is what it takes.

    ``frame_count``: frames in the whole sequence, a hint for PNG names.
    ``first_index``: where in the sequence the first frame written here is
    (videos: its pts; PNG folders: its number). GIFs always start at 0.
    ``encoding``: see ``VideoEncoding`` (default: H.264, 8-bit, BT.709);
    PNG folders take its depth (16-bit files above 8 bits), GIFs are 8-bit.
    """
    kind = output_kind(path)
    if kind == "video":
        return VideoWriter(path, fps, width, height, first_index=first_index, encoding=encoding)
    if kind == "gif":
        if first_index:
            raise ValueError("a GIF cannot start in the middle of a sequence")
        return GifWriter(path, fps, width, height)
    bit_depth = 16 if encoding is not None and encoding.bit_depth > 8 else 8
    return PngFolderWriter(path, fps, width, height, frame_count=frame_count, first_index=first_index,
                           bit_depth=bit_depth)
