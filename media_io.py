"""Reading still images and writing frame sequences (H.264 video, animated GIF, PNG folders).

Conventions used throughout this module:

- Images read are float32 numpy arrays of shape (H, W, 3), RGB, values in [0, 1].
- Frames written are uint8 numpy arrays of shape (H, W, 3), RGB.
- Frame rates are ``fractions.Fraction`` values (e.g. ``Fraction(30000, 1001)``),
  so that frame timestamps are exact.
- Writers never leave a half-written result at their destination: they write to a
  hidden temporary file or folder beside it and rename that into place in
  ``close()``; ``abort()`` (or any exception, KeyboardInterrupt included, inside a
  ``with`` block) removes it, together with any folders the writer created.
- Problems caused by the user's files raise ``MediaError`` with a one-line
  message. Notices (alpha dropped, odd size padded...) go to the ``film`` logger.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from fractions import Fraction
from typing import List, NamedTuple, Optional, Sequence, Set

import av
import cv2
import numpy as np
from PIL import Image

log = logging.getLogger("film")

# Extensions of the outputs, by kind. A path with no extension, ending in a path
# separator, or naming an existing folder is a folder of numbered PNG frames.
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
GIF_EXTENSIONS = {".gif"}
PNG_FRAME_PREFIX = "frame_"
PNG_FRAME_DIGITS = 5
# Quality of the H.264 stream: CRF 18 is visually lossless for most content.
H264_CRF = "18"
H264_PRESET = "medium"


class MediaError(Exception):
    """A problem with an input or output file, described in one line for the user."""


class ImageReadError(MediaError, ValueError):
    """An input image is missing, unreadable or not an image."""


class OutputError(MediaError, OSError):
    """The output cannot be written where it was asked for."""


_notices_given: Set[str] = set()


def _notice_once(message: str) -> None:
    # A long run (e.g. over a video's frames) should not repeat the same notice.
    if message not in _notices_given:
        _notices_given.add(message)
        log.warning(message)


# --------------------------------------------------------------------------- reading

class LoadedImage(NamedTuple):
    pixels: np.ndarray     # float32 (H, W, 3) RGB in [0, 1]
    had_alpha: bool        # an alpha channel was present and has been dropped
    bit_depth: int         # 8, 16 or 32 (floating point files)


# EXIF orientation tag values -> how to turn the stored pixels upright.
_ORIENTATION_FIXES = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),
}


def _exif_orientation(path: str) -> int:
    # OpenCV ignores EXIF orientation when it keeps alpha and bit depth
    # (IMREAD_UNCHANGED), so it is read here to show photos upright like viewers do.
    try:
        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except Exception:  # Pillow cannot open every format OpenCV reads: then assume upright.
        return 1


def load_image(path: str) -> LoadedImage:
    """Read an image file that OpenCV can decode; see the module docstring for the result."""
    if not os.path.exists(path):
        raise ImageReadError(f"image not found: {path}")
    if os.path.isdir(path):
        raise ImageReadError(f"expected an image file, found a folder: {path}")
    try:
        # Reading the bytes ourselves copes with non-ASCII paths on every platform.
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(f"cannot read {path}: {error.strerror or error}") from None
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if decoded is None:
        raise ImageReadError(f"not an image OpenCV can read: {path}")

    if decoded.dtype == np.uint8:
        pixels, bit_depth = decoded.astype(np.float32) / np.float32(255), 8
    elif decoded.dtype == np.uint16:
        pixels, bit_depth = decoded.astype(np.float32) / np.float32(65535), 16
    elif decoded.dtype in (np.float32, np.float64):
        pixels, bit_depth = np.clip(decoded.astype(np.float32), 0, 1), 32
    else:
        raise ImageReadError(f"unsupported sample type {decoded.dtype} in {path}")

    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    had_alpha = False
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    elif pixels.shape[2] == 2:          # gray + alpha
        pixels, had_alpha = np.repeat(pixels[:, :, :1], 3, axis=2), True
    elif pixels.shape[2] == 3:
        pixels = pixels[:, :, ::-1]     # OpenCV's BGR -> RGB
    elif pixels.shape[2] == 4:
        pixels, had_alpha = pixels[:, :, 2::-1], True
    else:
        raise ImageReadError(f"unsupported number of channels ({pixels.shape[2]}) in {path}")

    fix = _ORIENTATION_FIXES.get(_exif_orientation(path))
    if fix is not None:
        pixels = fix(pixels)
    return LoadedImage(np.ascontiguousarray(pixels, dtype=np.float32), had_alpha, bit_depth)


def read_image(path: str) -> np.ndarray:
    """Read an image as float32 (H, W, 3) RGB in [0, 1]; alpha is dropped with one notice."""
    loaded = load_image(path)
    if loaded.had_alpha:
        _notice_once("alpha channel dropped: frames are interpolated as opaque RGB")
    return loaded.pixels


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Quantize [0, 1] floats to uint8, clamping first and rounding to nearest."""
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- writing

def output_kind(path: str, offered: Sequence[str] = ("video", "gif", "png")) -> str:
    """'video', 'gif' or 'png' (a folder of numbered PNG frames) for an output path.

    An unknown extension is refused with a message listing the extensions of
    the ``offered`` kinds only (a caller may offer fewer kinds).
    """
    if path.endswith(("/", os.sep)):
        return "png"
    extension = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        if extension in VIDEO_FORMATS or extension in GIF_EXTENSIONS:
            raise OutputError(f"output path is an existing folder: {path}")
        return "png"
    if not extension:
        return "png"
    if extension in VIDEO_FORMATS:
        return "video"
    if extension in GIF_EXTENSIONS:
        return "gif"
    extensions = {"video": set(VIDEO_FORMATS), "gif": GIF_EXTENSIONS, "png": set()}
    supported = ", ".join(sorted(set().union(*(extensions[kind] for kind in offered))))
    folder = ", or a folder path for PNG frames" if "png" in offered else ""
    raise OutputError(f"unsupported output extension {extension!r} in {path} (use {supported}{folder})")


def describe_kind(kind: str) -> str:
    return {"video": "H.264 video", "gif": "animated GIF", "png": "PNG frames"}[kind]


def create_missing_folders(folder: str) -> List[str]:
    """Creates ``folder`` and its missing parents; returns those created, outermost first."""
    missing: List[str] = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    if folder and not os.path.isdir(folder):
        raise OutputError(f"cannot create the output folder: {folder} is a file")
    created: List[str] = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except OSError as error:
            remove_empty_folders(created)
            raise OutputError(f"cannot create the output folder {path}: {error.strerror or error}") from None
        created.append(path)
    return created


def remove_empty_folders(created: List[str]) -> None:
    """Undoes ``create_missing_folders``, innermost first, as far as the folders are empty."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            break  # not empty (someone else wrote there): keep it and its parents


class Destination:
    """A final path, a temporary sibling to write into, and the folders created for it."""

    def __init__(self, path: str, is_folder: bool):
        self.final = os.path.abspath(path.rstrip("/" + os.sep) or path)
        self.is_folder = is_folder
        if not is_folder and os.path.isdir(self.final):
            raise OutputError(f"output path is an existing folder: {path}")
        if not is_folder and os.path.exists(self.final) and not os.access(self.final, os.W_OK):
            raise OutputError(f"output file is not writable: {path}")
        if is_folder and os.path.exists(self.final) and not os.path.isdir(self.final):
            raise OutputError(f"output path for PNG frames is an existing file: {path}")
        parent = os.path.dirname(self.final)
        self.created_folders = self._make_folders(parent)
        name = os.path.basename(self.final)
        # The writing process's id in the name tells whose file it is (a
        # killed worker's is removed by the next run of its job).
        self.temporary = os.path.join(parent, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
        try:
            if is_folder:
                os.mkdir(self.temporary)
            else:
                # Created with the default mode, so the umask applies as for any new file.
                os.close(os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as error:
            self._remove_created_folders()
            raise OutputError(f"cannot write to {parent}: {error.strerror or error}") from None

    def _make_folders(self, folder: str) -> List[str]:
        return create_missing_folders(folder)

    def _remove_created_folders(self) -> None:
        remove_empty_folders(self.created_folders)
        self.created_folders = []

    def commit(self) -> None:
        if not self.is_folder:
            os.replace(self.temporary, self.final)
            return
        if not os.path.exists(self.final):
            os.rename(self.temporary, self.final)
            return
        # An existing folder keeps its other files; our frames replace any there,
        # and numbered frames of an earlier, longer run are removed so the folder
        # holds one consistent sequence.
        new_names = set(os.listdir(self.temporary))
        for name in sorted(new_names):
            source = os.path.join(self.temporary, name)
            os.replace(source, os.path.join(self.final, name))
            if os.path.lexists(source):
                # rename() does nothing when both names are links to one file
                # (frames linked from a job's chunks, twice): drop the extra link.
                os.remove(source)
        os.rmdir(self.temporary)
        stale = [name for name in os.listdir(self.final)
                 if _is_frame_name(name) and name not in new_names]
        for name in stale:
            os.remove(os.path.join(self.final, name))
        if stale:
            log.warning(f"removed {len(stale)} numbered frames of an earlier run from {self.final}")

    def discard(self) -> None:
        if os.path.isdir(self.temporary):
            shutil.rmtree(self.temporary, ignore_errors=True)
        elif os.path.exists(self.temporary):
            os.remove(self.temporary)
        self._remove_created_folders()


def _is_frame_name(name: str) -> bool:
    return re.fullmatch(re.escape(PNG_FRAME_PREFIX) + r"\d+\.png", name) is not None


class FrameWriter:
    """Streams uint8 RGB frames of a fixed size into one output; see the module docstring."""

    kind = ""

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
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame of shape {(self.height, self.width, 3)}, "
                             f"got {frame.dtype} {frame.shape}")
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
    """H.264 in MP4/MOV (with +faststart, for browsers) or Matroska, via PyAV's libx264.

    Pixels go out as yuv420p, BT.709, limited range, tagged as such. H.264 4:2:0
    needs an even width and height, so an odd size gets its last column/row
    repeated once (e.g. 101x67 becomes 102x68) rather than losing a pixel line.
    Frame n has timestamp n/fps exactly (the codec time base is 1/fps).

    The container is opened here and the video stream added in ``_add_video_stream``;
    other streams (e.g. audio copied from a source video) can be added beside it
    before the first frame is written.
    """

    kind = "video"

    def __init__(self, path: str, fps: Fraction, width: int, height: int, first_index: int = 0):
        super().__init__(path, fps, width, height, first_index)
        self.coded_width = width + width % 2
        self.coded_height = height + height % 2
        if (self.coded_width, self.coded_height) != (width, height):
            log.warning(f"H.264 needs an even size: the video is {self.coded_width}x{self.coded_height} "
                        f"(last column/row of the {width}x{height} frames repeated)")
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
        stream = self.container.add_stream("libx264", rate=self.fps,
                                           options={"crf": H264_CRF, "preset": H264_PRESET})
        stream.width = self.coded_width
        stream.height = self.coded_height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.fps
        context = stream.codec_context
        context.colorspace = 1        # AVCOL_SPC_BT709
        context.color_primaries = 1   # AVCOL_PRI_BT709
        context.color_trc = 1         # AVCOL_TRC_BT709
        context.color_range = 1       # AVCOL_RANGE_MPEG (limited), what players expect
        return stream

    def _write(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != (self.coded_height, self.coded_width):
            frame = np.pad(frame, ((0, self.coded_height - self.height),
                                   (0, self.coded_width - self.width), (0, 0)), mode="edge")
        rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
        yuv = rgb.reformat(format="yuv420p", dst_colorspace="itu709", dst_color_range="MPEG")
        yuv.pts = self.first_index + self.frames_written
        yuv.time_base = 1 / self.fps
        for packet in self.video.encode(yuv):
            self.container.mux(packet)

    def _finish(self) -> None:
        for packet in self.video.encode(None):
            self.container.mux(packet)
        container, self.container = self.container, None
        container.close()

    def _release(self) -> None:
        if getattr(self, "container", None) is not None:
            container, self.container = self.container, None
            try:
                container.close()
            except Exception:
                pass  # the file is deleted next anyway


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
    """

    kind = "png"

    def __init__(self, path: str, fps: Fraction, width: int, height: int,
                 frame_count: Optional[int] = None, first_index: int = 0):
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
                frame_count: Optional[int] = None, first_index: int = 0) -> FrameWriter:
    """A writer for ``path``, chosen by ``output_kind``.

    ``frame_count``: frames in the whole sequence, a hint for PNG names.
    ``first_index``: where in the sequence the first frame written here is
    (videos: its pts; PNG folders: its number). GIFs always start at 0.
    """
    kind = output_kind(path)
    if kind == "video":
        return VideoWriter(path, fps, width, height, first_index=first_index)
    if kind == "gif":
        if first_index:
            raise ValueError("a GIF cannot start in the middle of a sequence")
        return GifWriter(path, fps, width, height)
    return PngFolderWriter(path, fps, width, height, frame_count=frame_count, first_index=first_index)
