"""A video or a folder of frames as timed, upright frames (``open_source``); see also the package docstring.

- A video frame's time is its pts × its stream's time base, as stored in
  the file (no shift); a folder's frame ``i`` is at ``i / folder_fps``.
- Pixels: decoded video is uint8 when the video has 8 bits per sample and
  uint16 (full 16-bit scale) when it has more; image files give float32
  (they may hold 16 bits per sample). ``bit_depth`` says which depth the
  source has.
- Decoded video is converted to RGB with each frame's own matrix and range
  (FFmpeg's reading of its tags; BT.601 where a file does not say), as
  FFmpeg gives frames to any program; ``colour`` holds the source's tags for
  the output. Transfer and primaries are not converted: HDR frames stay in
  their encoded (PQ/HLG) signal.
- A video stream's display matrix (the "rotate" of phone videos) is applied
  with ``rotate_upright``, image files are turned by their EXIF orientation
  (``images``); ``width`` and ``height`` are the upright size.
- Sources are read in parts: ``frame_times`` lists every frame's time
  without decoding pictures, and ``frames_from(time)`` decodes one frame at
  a time from a seek point before ``time``, as a segment of a job needs.
  Opening a video decodes its first two frames (and drops them), so that a
  file with fewer than two readable frames is refused, and its size, depth
  and colour are known, before any output is started.
- Only the picture is read: ``audio_streams`` lists a video's audio
  streams, which the chunk join (``join``) carries over from the file.
- Damaged and cut-short files are read as far as they go;
  ``describe_damage`` says afterwards what could not be read.
"""
from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from typing import Iterator, List, NamedTuple, Optional, Sequence

import av
import numpy as np

from media import images
from media.encoding import UNSPECIFIED, ColourTags
from media.errors import MediaError, describe_av_error

# Frame rates with a larger denominator than this (the average rate of a
# variable-rate file is often something like 1350000/45043) are rounded to the
# nearest fraction that has one; 1001 keeps 24000/1001, 30000/1001... exact.
MAX_RATE_DENOMINATOR = 1001


class SourceFrame(NamedTuple):
    time: Fraction       # seconds
    pixels: np.ndarray   # (H, W, 3) RGB, uint8, uint16 or float32 in [0, 1]; see the module docstring


def natural_sort_key(name: str) -> list:
    """Sort key that orders runs of digits by value: frame2 before frame10."""
    # re.split with a capturing group alternates text and digit runs, starting
    # with (possibly empty) text, so keys always compare str with str and int with int.
    parts = re.split(r"(\d+)", name)
    return [int(part) if index % 2 else part.lower() for index, part in enumerate(parts)] + [name]


def rotate_upright(pixels: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation: ``rotation`` degrees counter-clockwise (PyAV's ``VideoFrame.rotation``).

    Rotations are rounded to the nearest quarter turn; FFmpeg players do the same.
    """
    quarter_turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, k=quarter_turns)) if quarter_turns else pixels


def format_fps(fps: Fraction) -> str:
    """A rate as people write it: 60, 59.94 (for 60000/1001), 23.976."""
    return str(fps.numerator) if fps.denominator == 1 else f"{float(fps):.3f}".rstrip("0").rstrip(".")


def tidy_rate(rate: Fraction) -> Fraction:
    """A frame rate with at most MAX_RATE_DENOMINATOR as denominator (see there)."""
    rate = Fraction(rate)
    return rate if rate.denominator <= MAX_RATE_DENOMINATOR else rate.limit_denominator(MAX_RATE_DENOMINATOR)


class FrameSource:
    """What the interpolation needs to know about an input; see the module docstring."""

    path: str
    name: str                 # used for the default output name
    width: int
    height: int
    rate: Fraction            # nominal (average) frame rate
    timestamp_step: Fraction  # timestamps are exact to within half of this (0: exact)
    audio_streams: Sequence = ()  # a video's audio streams (not read here: see the module docstring)
    start_time: Fraction      # the first frame's time
    bit_depth: int = 8        # bits per sample of the source (8-16)
    colour: Optional[ColourTags] = None  # the video's colour tags; None: RGB images (sRGB)

    def frames_from(self, time: Fraction) -> Iterator[SourceFrame]:
        """The frames from at most ``time`` on: the first one is at or before ``time`` (if any is).

        For rendering part of a source: a video seeks to a keyframe before
        ``time`` (frames decoded after a seek are the same as in one pass), so
        frames before ``time`` may come too; the caller skips what it does not
        need.
        """
        raise NotImplementedError

    def frame_times(self) -> List[Fraction]:
        """Every frame's time, in order, without decoding pictures (a video's packets are read)."""
        raise NotImplementedError

    def describe_damage(self) -> Optional[str]:
        """One line on what could not be read, once the frames are read; None if nothing was lost."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class FolderSource(FrameSource):
    """A folder of image files, in natural order of their names, at ``fps`` frames per second."""

    def __init__(self, path: str, fps: Fraction):
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.path = path
        self.name = os.path.basename(os.path.abspath(path))
        names = [name for name in os.listdir(path)
                 if name.lower().endswith(images.FRAME_EXTENSIONS) and not name.startswith(".")
                 and os.path.isfile(os.path.join(path, name))]
        if not names:
            raise MediaError(f"no images in the folder {path} (looked for {', '.join(images.FRAME_EXTENSIONS)})")
        if len(names) < 2:
            raise MediaError(f"the folder {path} holds only 1 image: at least 2 frames are needed")
        self.files = [os.path.join(path, name) for name in sorted(names, key=natural_sort_key)]
        self.rate = Fraction(fps)
        self.timestamp_step = Fraction(0)
        self.start_time = Fraction(0)
        self.audio_streams = []
        # The first image tells the size and depth (and gives the alpha notice).
        first = images.read_loaded_image(self.files[0])
        self.bit_depth = 8 if first.bit_depth == 8 else 16  # float files: 16 bits kept
        self.height, self.width = first.pixels.shape[:2]

    def frames_from(self, time: Fraction) -> Iterator[SourceFrame]:
        first = max(0, min(len(self.files) - 1, math.floor(time * self.rate)))
        for index in range(first, len(self.files)):
            pixels = images.read_image(self.files[index])
            if pixels.shape[:2] != (self.height, self.width):
                raise MediaError(f"{os.path.basename(self.files[index])} is {pixels.shape[1]}x{pixels.shape[0]} "
                                 f"but the frames in {self.path} are {self.width}x{self.height}: "
                                 f"all frames must have one size")
            yield SourceFrame(index / self.rate, pixels)

    def frame_times(self) -> List[Fraction]:
        return [index / self.rate for index in range(len(self.files))]


def cut_short_hint(path: str) -> str:
    """A word for a file in the MP4/MOV box layout that ends inside a box, or before its index (moov).

    A recording or copy that stops early leaves such a file: the frames are
    there (in mdat) but the index that says where is missing.
    """
    try:
        size = os.path.getsize(path)
        boxes, offset = set(), 0
        with open(path, "rb") as file:
            while offset + 8 <= size:
                file.seek(offset)
                header = file.read(16)
                length, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if length == 1 and len(header) == 16:
                    length = int.from_bytes(header[8:16], "big")
                elif length == 0:
                    length = size - offset
                if length < 8 or not kind.isalnum() and kind not in (b"ftyp", b"moov", b"mdat", b"free"):
                    return ""  # not a box layout
                boxes.add(kind)
                if offset + length > size:
                    break  # the file ends inside this box
                offset += length
        if b"ftyp" in boxes and b"moov" not in boxes:
            return " (the file looks cut short: it ends before the index that MP4/MOV files keep at their end)"
        if b"ftyp" in boxes and offset < size:
            return " (the file looks cut short)"
    except OSError:
        pass
    return ""


class VideoSource(FrameSource):
    """The first video stream of a file FFmpeg can read (cover pictures are not video)."""

    def __init__(self, path: str):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.container = None
        try:
            self.container = av.open(path, mode="r")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise MediaError(f"cannot read {path} as a video: {describe_av_error(error)}"
                             f"{cut_short_hint(path)}") from None
        try:
            self._open_streams()
            # Decoding two frames now finds unreadable and too short inputs
            # before an output is created, and tells the upright size, the
            # depth and the colour tags (``_note_format``).
            first_two: List[SourceFrame] = []
            for frame in self._decode():
                first_two.append(frame)
                if len(first_two) == 2:
                    break
            if not first_two:
                raise MediaError(f"no video frame could be decoded from {path}")
            if len(first_two) < 2:
                raise MediaError(f"{path} has only 1 video frame: at least 2 are needed")
        except BaseException:
            self.close()
            raise
        self.height, self.width = first_two[0].pixels.shape[:2]
        self.start_time = first_two[0].time

    def _open_streams(self) -> None:
        videos = [stream for stream in self.container.streams.video
                  if not stream.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            raise MediaError(f"no video stream in {self.path}")
        self.stream = videos[0]
        self.time_base = Fraction(self.stream.time_base) if self.stream.time_base else Fraction(1, 90000)
        # Each timestamp is the true time rounded to a tick of the time base.
        self.timestamp_step = self.time_base
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        if not rate:
            raise MediaError(f"cannot tell the frame rate of {self.path}")
        self.rate = tidy_rate(rate)
        self.declared_end = self._declared_end()
        self.audio_streams = list(self.container.streams.audio)
        self._reset_counts()

    def _reset_counts(self, seeked: bool = False) -> None:
        self.seeked = seeked
        self.dropped_frames = 0       # timestamps not after the previous frame's
        self.damaged_packets = 0      # packets the decoder refused
        self.damaged_times: List[Fraction] = []
        self.read_error: Optional[str] = None  # why reading stopped before the end of the file
        self.decoded_frames = 0
        self.last_time: Optional[Fraction] = None   # of the last decoded video frame
        self.read_until: Optional[Fraction] = None  # end of the latest video packet read
        self.bit_depth = 8                # from the first frame decoded (see _note_format)
        self.colour: Optional[ColourTags] = None
        self._rgb_format = "rgb24"

    def _declared_start(self) -> Fraction:
        if self.stream.start_time is not None:
            return self.stream.start_time * self.time_base
        return Fraction(self.container.start_time or 0, 1_000_000)

    def _declared_end(self) -> Optional[Fraction]:
        """Where the file's header says the video ends (None if it does not say)."""
        if self.stream.duration:
            return self._declared_start() + self.stream.duration * self.time_base
        if self.container.duration:
            # Container times are in microseconds (AV_TIME_BASE).
            return Fraction((self.container.start_time or 0) + self.container.duration, 1_000_000)
        return None

    def _decode(self) -> Iterator[SourceFrame]:
        """Decodes what can be decoded: a packet the decoder refuses is skipped, a read error ends the file.

        Users' files are often cut short (a recording that stopped, a partial
        download) or damaged; ``describe_damage`` says afterwards what was lost.
        """
        stream = self.stream
        packets = self.container.demux(stream)
        previous_time: Optional[Fraction] = None
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as error:
                self.read_error = describe_av_error(error)
                packet = None  # the decoder still holds frames (reordering delay): flush them below
            if packet is not None and packet.pts is not None and packet.time_base is not None:
                end = (packet.pts + (packet.duration or 0)) * Fraction(packet.time_base)
                self.read_until = end if self.read_until is None else max(self.read_until, end)
            try:
                frames = packet.decode() if packet is not None else stream.codec_context.decode(None)
            except av.FFmpegError:
                self.damaged_packets += 1
                if packet is not None and packet.pts is not None:
                    self.damaged_times.append(packet.pts * self.time_base)
                frames = []
            for frame in frames:
                if frame.pts is None:
                    # Some raw streams carry no timestamps: assume the nominal rate.
                    time = Fraction(0) if previous_time is None else previous_time + 1 / self.rate
                else:
                    time = frame.pts * Fraction(frame.time_base or self.time_base)
                if previous_time is not None and time <= previous_time:
                    # A broken file can repeat or reorder timestamps; a frame
                    # that is not later than the previous one cannot be placed.
                    self.dropped_frames += 1
                    continue
                previous_time = time
                if self.colour is None:
                    self._note_format(frame)
                # Each frame with its own matrix and range (PyAV passes its tags to swscale).
                pixels = frame.to_ndarray(format=self._rgb_format)
                self.decoded_frames += 1
                self.last_time = time
                yield SourceFrame(time, rotate_upright(pixels, frame.rotation))
            if packet is None:
                break

    def _note_format(self, frame) -> None:
        """Depth and colour tags of the source, from its first frame (the stream's tags where the frame has none)."""
        bits = max((component.bits for component in frame.format.components), default=8)
        self.bit_depth = max(8, min(16, bits))
        # Later frames are converted the same way, so that every frame has one dtype.
        self._rgb_format = "rgb24" if self.bit_depth == 8 else "rgb48le"
        # Some decoders (ProRes) leave tags that only the container has unset on frames.
        context = self.stream.codec_context

        def tag(name: str, unspecified: int) -> int:
            value = getattr(frame, name)
            return getattr(context, name) if value == unspecified else value

        self.colour = ColourTags(primaries=tag("color_primaries", UNSPECIFIED),
                                 transfer=tag("color_trc", UNSPECIFIED),
                                 matrix=tag("colorspace", UNSPECIFIED),
                                 full_range=tag("color_range", 0) == 2)

    # How far before the wanted time a seek aims: keyframes are usually closer
    # together; if not, the seek lands on an earlier one anyway (backward).
    SEEK_MARGIN = Fraction(1)

    def frames_from(self, time: Fraction) -> Iterator[SourceFrame]:
        margin = self.SEEK_MARGIN
        while True:
            target = time - margin
            if target <= self.start_time:
                self.container.seek(0, backward=True, any_frame=False, stream=self.stream)
            else:
                self.container.seek(math.floor(target / self.time_base), backward=True, any_frame=False,
                                    stream=self.stream)
            self._reset_counts(seeked=target > self.start_time)
            decoded = self._decode()
            first = next(decoded, None)
            if first is None:
                return
            if first.time <= time or target <= self.start_time:
                break
            margin *= 4  # the keyframe before the aim was still too late
        yield first
        for frame in decoded:
            if frame.pixels.shape[:2] != (self.height, self.width):
                raise MediaError(f"the frame size of {self.path} changes at {float(frame.time):.3f} s "
                                 f"(from {self.width}x{self.height} to "
                                 f"{frame.pixels.shape[1]}x{frame.pixels.shape[0]})")
            yield frame

    def frame_times(self) -> List[Fraction]:
        times = set()
        with av.open(self.path, mode="r") as container:
            stream = container.streams[self.stream.index]
            time_base = Fraction(stream.time_base) if stream.time_base else self.time_base
            try:
                for packet in container.demux(stream):
                    if packet.size and packet.pts is not None:
                        times.add(packet.pts * time_base)
            except av.FFmpegError:
                pass  # a cut-short file: the frames up to the cut
        return sorted(times)

    def describe_damage(self) -> Optional[str]:
        parts = []
        if self.damaged_packets:
            where = ""
            if self.damaged_times:
                first, last = min(self.damaged_times), max(self.damaged_times)
                where = f" at {float(first):.2f} s" if first == last else \
                    f" between {float(first):.2f} and {float(last):.2f} s"
            parts.append(f"{self.damaged_packets} damaged frame{'s' if self.damaged_packets != 1 else ''}{where} "
                         f"could not be decoded and {'were' if self.damaged_packets != 1 else 'was'} left out")
        missing = self._missing_at_end()
        if missing is not None:
            seconds, frames = missing
            cause = f" ({self.read_error})" if self.read_error else ""
            parts.append(f"the file ends early{cause}: frames decode up to {float(self.last_time):.2f} s but it "
                         f"should last until {float(self.declared_end):.2f} s; the last {float(seconds):.2f} s "
                         f"(~{frames} frame{'s' if frames != 1 else ''}) could not be read and the output ends there")
        elif self.read_error:
            parts.append(f"reading stopped at {float(self.last_time):.2f} s ({self.read_error})")
        if not parts:
            return None
        return f"{self.path}: " + "; ".join(parts)

    def _missing_at_end(self):
        """(seconds, frames) that the header promises after the last decoded frame, or None.

        A header that counts the video's frames (MP4) settles it. Otherwise the
        declared end is compared with how far the video could be read. The
        container's duration covers every stream but only the video is read,
        so a file of this kind (Matroska, WebM) whose sound goes on after the
        picture is reported as ending early. A frame and a half of slack
        covers the last frame's duration and rounding in headers.
        """
        if self.last_time is None:
            return None
        frame_duration = 1 / self.rate
        # After a seek (frames_from), frames before it were not counted.
        declared_frames = None if self.seeked else self.stream.frames or None
        if declared_frames:
            missing_frames = declared_frames - self.decoded_frames - self.dropped_frames - self.damaged_packets
            if missing_frames <= 0:
                return None
            seconds = missing_frames * frame_duration
            if self.declared_end is not None:
                seconds = max(seconds, self.declared_end - (self.last_time + frame_duration))
            return seconds, missing_frames
        if self.declared_end is None:
            return None
        reached = max(self.last_time + frame_duration, self.read_until or self.last_time)
        if self.declared_end - reached <= frame_duration * 3 / 2:
            return None
        seconds = self.declared_end - (self.last_time + frame_duration)
        return seconds, max(1, round(seconds * self.rate))

    def close(self) -> None:
        container, self.container = self.container, None
        if container is not None:
            container.close()


def open_source(path: str, folder_fps: Fraction) -> FrameSource:
    """A FolderSource for a folder, else a VideoSource; missing paths are a MediaError."""
    if not os.path.exists(path):
        raise MediaError(f"input not found: {path}")
    if os.path.isdir(path):
        return FolderSource(path, folder_fps)
    return VideoSource(path)
