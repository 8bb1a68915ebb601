"""Reading still images and writing frame sequences (videos, animated GIF, PNG folders).

Conventions used throughout this module:

- Images read are float32 numpy arrays of shape (H, W, 3), RGB, values in [0, 1].
- Frames written are numpy arrays of shape (H, W, 3), RGB: uint8, or uint16
  on the full 16-bit scale (0-65535) for outputs deeper than 8 bits; a
  writer's ``sample_dtype`` says which it takes. A writer of d bits rounds
  16-bit samples to d bits (``to_depth``).
- How a video is encoded (codec, quality, depth, colour tags) is one
  ``VideoEncoding`` value; ``choose_encoding`` picks it for a source's depth
  and colour, and the default is H.264 CRF 18, 8-bit 4:2:0, BT.709 limited
  range. Every writer of one encoding starts with a keyframe and carries the
  same codec parameters, so parts of a sequence written separately (with
  ``first_index``) can be joined by copying packets.
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

import dataclasses
import functools
import logging
import os
import re
import secrets
import shutil
from fractions import Fraction
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

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
# SVT-AV1 prints a banner and its settings to stderr itself (FFmpeg's log
# level does not reach it); it reads this once, when it first logs.
os.environ.setdefault("SVT_LOG", "1")


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


def read_loaded_image(path: str) -> LoadedImage:
    """``load_image``, with one notice when alpha is dropped."""
    loaded = load_image(path)
    if loaded.had_alpha:
        _notice_once("alpha channel dropped: frames are interpolated as opaque RGB")
    return loaded


def read_image(path: str) -> np.ndarray:
    """Read an image as float32 (H, W, 3) RGB in [0, 1]; alpha is dropped with one notice."""
    return read_loaded_image(path).pixels


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Quantize [0, 1] floats to uint8, clamping first and rounding to nearest."""
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    """Quantize [0, 1] floats to uint16 (full 16-bit scale), clamping first and rounding to nearest."""
    return np.round(np.clip(pixels, 0.0, 1.0) * 65535.0).astype(np.uint16)


def to_depth(samples: np.ndarray, bits: int) -> np.ndarray:
    """16-bit samples rounded to ``bits`` bits: round(v * (2^bits - 1) / 65535), as uint8 or uint16.

    FFmpeg widens d-bit samples to 16 bits by repeating their bits, which is
    within 1/2 of v * 65535 / (2^bits - 1): this is its exact inverse.
    """
    top = (1 << bits) - 1
    rounded = (samples.astype(np.uint32) * top + 32767) // 65535
    return rounded.astype(np.uint8 if bits <= 8 else np.uint16)


# --------------------------------------------------------------------------- encodings

# FFmpeg's values for colour (AVColorPrimaries, AVColorTransferCharacteristic,
# AVColorSpace), as stored in files; 2 is "unspecified" in all three.
UNSPECIFIED = 2
MATRIX_RGB = 0
PRIMARIES_NAMES = {1: "BT.709", 4: "BT.470M", 5: "BT.470BG", 6: "SMPTE 170M", 7: "SMPTE 240M", 8: "film",
                   9: "BT.2020", 10: "SMPTE 428", 11: "DCI-P3", 12: "Display P3", 22: "EBU 3213"}
TRANSFER_NAMES = {1: "BT.709", 4: "gamma 2.2", 5: "gamma 2.8", 6: "SMPTE 170M", 7: "SMPTE 240M", 8: "linear",
                  11: "IEC 61966-2-4", 13: "sRGB", 14: "BT.2020 10-bit", 15: "BT.2020 12-bit",
                  16: "PQ (SMPTE 2084)", 17: "SMPTE 428", 18: "HLG (ARIB STD-B67)"}
MATRIX_NAMES = {0: "RGB", 1: "BT.709", 4: "FCC", 5: "BT.470BG", 6: "SMPTE 170M", 7: "SMPTE 240M", 8: "YCgCo",
                9: "BT.2020 NCL", 10: "BT.2020 CL", 14: "ICtCp"}
# Matrices swscale converts RGB to (AVColorSpace -> its SWS_CS_* code): the
# others (BT.2020 CL, YCgCo, ICtCp...) cannot be written, only read.
_SWSCALE_MATRICES = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9}


class ColourTags(NamedTuple):
    """How a video's samples are meant: FFmpeg's primaries, transfer and matrix values, and the range.

    The default is what players assume for HD video and what images (sRGB,
    whose primaries are BT.709's) are written with: BT.709, limited range.
    """

    primaries: int = 1
    transfer: int = 1
    matrix: int = 1
    full_range: bool = False

    def describe(self) -> str:
        def name(names: Dict[int, str], value: int) -> str:
            return "unspecified" if value == UNSPECIFIED else names.get(value, f"#{value}")
        return (f"{name(PRIMARIES_NAMES, self.primaries)} primaries, {name(TRANSFER_NAMES, self.transfer)} transfer, "
                f"{name(MATRIX_NAMES, self.matrix)} matrix, {'full' if self.full_range else 'limited'} range")


BT709 = ColourTags()

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


class Codec(NamedTuple):
    """What one ``--codec`` choice is: its encoder, containers, depths and settings."""

    name: str
    label: str
    encoder: str                      # the FFmpeg encoder used
    extensions: Tuple[str, ...]       # containers that take it (first: the default)
    depths: Tuple[int, ...]           # bits per sample it can be written with
    crf: Optional[Tuple[int, int, int]]  # (lowest, highest, default); None: no CRF
    presets: Tuple[str, ...]
    default_preset: Optional[str]
    purpose: str


CODECS: Dict[str, Codec] = {codec.name: codec for codec in (
    Codec("h264", "H.264", "libx264", (".mp4", ".m4v", ".mov", ".mkv"), (8,), (0, 51, 18), X264_PRESETS, "medium",
          "plays everywhere, browsers included; 8-bit 4:2:0"),
    Codec("hevc", "HEVC", "libx265", (".mp4", ".m4v", ".mov", ".mkv"), (8, 10, 12), (0, 51, 20), X264_PRESETS,
          "medium", "about half H.264's size; 8/10/12-bit 4:2:0, for HDR and 10-bit sources"),
    Codec("av1", "AV1", "libsvtav1", (".mp4", ".mkv"), (8, 10), (1, 63, 30), tuple(str(n) for n in range(14)),
          "8", "smallest for the web; 8/10-bit 4:2:0"),
    # ProRes is always 10-bit; 8-bit content is written into it unchanged.
    Codec("prores", "ProRes", "prores_ks", (".mov", ".mkv"), (8, 10), None,
          ("proxy", "lt", "standard", "hq", "4444", "4444xq"), "hq",
          "for editing: intra-only 10-bit 4:2:2 (4444 profiles: 4:4:4), large"),
    # FFV1 stores the RGB frames themselves: lossless, no YUV rounding or chroma subsampling.
    Codec("ffv1", "FFV1", "ffv1", (".mkv",), (8, 9, 10, 12, 14, 16), None, (), None,
          "lossless archive: the RGB frames exactly, 8-16 bits; very large"),
)}
DEFAULT_CODEC = "h264"


@functools.lru_cache(maxsize=None)
def encoder_available(codec: str) -> bool:
    """Whether this PyAV build has the encoder behind ``codec`` (a name in CODECS)."""
    try:
        av.Codec(CODECS[codec].encoder, "w")
    except Exception:  # PyAV raises UnknownCodecError, or ValueError in older versions
        return False
    return True


def available_codecs() -> List[str]:
    return [name for name in CODECS if encoder_available(name)]


@dataclasses.dataclass(frozen=True)
class VideoEncoding:
    """How frames are encoded: one value for a whole sequence and for every part of it.

    ``crf`` and ``preset`` None mean the codec's defaults (filled in here).
    ``bit_depth`` is the depth of the samples written: 8 means uint8 frames,
    more means uint16 frames rounded to that many bits (ProRes stores 8-bit
    content in its 10 bits). For PNG folders only ``bit_depth`` counts (8 or
    16-bit PNG files); GIFs are always 8-bit. ``colour`` is what the video is
    tagged with and the matrix and range its RGB frames are converted with
    (use ``choose_encoding`` to derive it from a source).
    """

    codec: str = DEFAULT_CODEC
    crf: Optional[int] = None
    preset: Optional[str] = None
    bit_depth: int = 8
    colour: ColourTags = BT709

    def __post_init__(self):
        spec = CODECS.get(self.codec)
        if spec is None:
            raise MediaError(f"unknown codec {self.codec!r} (choose one of {', '.join(CODECS)})")
        if self.crf is None and spec.crf is not None:
            object.__setattr__(self, "crf", spec.crf[2])
        elif self.crf is not None and spec.crf is None:
            raise MediaError(f"{spec.label} has no CRF setting")
        elif self.crf is not None and not spec.crf[0] <= self.crf <= spec.crf[1]:
            raise MediaError(f"the CRF of {spec.label} goes from {spec.crf[0]} to {spec.crf[1]}, not {self.crf}")
        if self.preset is None:
            object.__setattr__(self, "preset", spec.default_preset)
        elif self.preset not in spec.presets:
            if not spec.presets:
                raise MediaError(f"{spec.label} has no presets")
            names = f"{spec.presets[0]} to {spec.presets[-1]}" if spec.presets[0].isdigit() else ", ".join(spec.presets)
            raise MediaError(f"{spec.label} presets are {names}, not {self.preset!r}")
        if not 8 <= self.bit_depth <= 16:
            raise ValueError(f"bit_depth must be 8 to 16, not {self.bit_depth}")
        # Tags the stream can really carry (FFV1's RGB has no matrix...), so
        # that an encoding made directly never mislabels its samples.
        object.__setattr__(self, "colour", _writable_colour(spec, self.colour)[0])

    @property
    def spec(self) -> Codec:
        return CODECS[self.codec]

    @property
    def sample_dtype(self) -> type:
        return np.uint8 if self.bit_depth <= 8 else np.uint16

    @property
    def pix_fmt(self) -> str:
        """The pixel format of the video stream."""
        depth = self.bit_depth
        if self.codec == "prores":
            return "yuv444p10le" if self.preset.startswith("4444") else "yuv422p10le"
        if self.codec == "ffv1":
            return "bgr0" if depth == 8 else f"gbrp{depth}le"
        return "yuv420p" if depth == 8 else f"yuv420p{depth}le"

    def encoder_options(self) -> Dict[str, str]:
        if self.codec == "h264":
            return {"crf": str(self.crf), "preset": self.preset}
        if self.codec == "hevc":
            # log-level: x265 writes to stderr itself. info=0: its settings
            # SEI (thread counts included) would go into the extradata, which
            # must be the same for every part of a sequence. open-gop=0: every
            # keyframe is an IDR, where a part or a cut decodes on its own.
            return {"crf": str(self.crf), "preset": self.preset,
                    "x265-params": "log-level=error:info=0:open-gop=0"}
        if self.codec == "av1":
            return {"crf": str(self.crf), "preset": self.preset}
        if self.codec == "prores":
            return {"profile": self.preset}
        # FFV1 as archives use it: version 3, every frame a keyframe, slices
        # with CRCs (a damaged slice is found and concealed). The slice count
        # is fixed, not taken from the thread count, so that the extradata is
        # the same on every machine.
        return {"level": "3", "g": "1", "slices": "16", "slicecrc": "1"}

    def describe(self) -> str:
        """E.g. "HEVC 10-bit yuv420p10le, CRF 20, preset medium"."""
        spec = self.spec
        settings = [f"CRF {self.crf}"] if spec.crf else []
        if self.codec == "prores":
            settings.append(f"profile {self.preset}")
        elif self.preset is not None:
            settings.append(f"preset {self.preset}")
        stored = av.VideoFormat(self.pix_fmt).components[0].bits
        label = f"{spec.label} {self.bit_depth}-bit {self.pix_fmt}" if stored == self.bit_depth else \
            f"{spec.label} {self.pix_fmt} ({self.bit_depth}-bit samples)"
        return ", ".join([label] + settings)


def check_container(path: str, codec: str) -> None:
    """Refuse a video path whose container does not take ``codec`` (OutputError naming those that do)."""
    spec = CODECS[codec]
    extension = os.path.splitext(path.rstrip("/" + os.sep))[1].lower()
    if extension in VIDEO_FORMATS and extension not in spec.extensions:
        raise OutputError(f"{spec.label} cannot be written to a {extension} file: use "
                          f"{' or '.join(spec.extensions)} (in {path})")


def _depth_for(spec: Codec, source_depth: int) -> int:
    deep_enough = [depth for depth in spec.depths if depth >= source_depth]
    return min(deep_enough) if deep_enough else max(spec.depths)


def _writable_colour(spec: Codec, colour: ColourTags) -> Tuple[ColourTags, List[Tuple[int, str]]]:
    """The tags an output of ``spec`` gets for a source tagged ``colour``, and notes (log level, text) on changes."""
    notes: List[Tuple[int, str]] = []
    # Unspecified primaries / transfer (and reserved values) are written as
    # BT.709, what players assume for them.
    primaries = colour.primaries if colour.primaries in PRIMARIES_NAMES else 1
    transfer = colour.transfer if colour.transfer in TRANSFER_NAMES else 1
    if spec.name == "ffv1":
        # RGB samples: no matrix, always full range.
        return ColourTags(primaries, transfer, MATRIX_RGB, True), notes
    matrix = colour.matrix
    if matrix not in _SWSCALE_MATRICES:
        matrix = 9 if primaries == 9 else 1
        if colour.matrix not in (UNSPECIFIED, MATRIX_RGB):
            notes.append((logging.WARNING,
                          f"the source's {MATRIX_NAMES.get(colour.matrix, f'#{colour.matrix}')} matrix cannot be "
                          f"written: the output is converted to and tagged {MATRIX_NAMES[matrix]}"))
    full_range = colour.full_range
    if full_range and spec.name == "prores":
        full_range = False
        notes.append((logging.INFO, "ProRes is limited-range: the full-range source is converted "
                                    "(same colours, tagged limited)"))
    return ColourTags(primaries, transfer, matrix, full_range), notes


def choose_encoding(kind: str, codec: str = DEFAULT_CODEC, crf: Optional[int] = None,
                    preset: Optional[str] = None, source_depth: int = 8,
                    colour: Optional[ColourTags] = None, path: Optional[str] = None) -> VideoEncoding:
    """The encoding of an output of ``kind`` ("video", "gif", "png") for a source.

    The output keeps the source's depth when the codec holds it (else the
    codec's deepest, with a warning that names the codecs that would keep
    it); 8-bit sources stay 8-bit. It keeps the source's colour tags where
    the codec can carry them (see ``_writable_colour``), saying what it changes. A video ``path`` is
    checked against the codec's containers. Unavailable encoders, settings
    out of range and mismatched containers raise MediaError.
    """
    source_depth = max(8, min(16, source_depth))
    if kind == "png":
        return VideoEncoding(bit_depth=8 if source_depth <= 8 else 16)
    if kind == "gif":
        return VideoEncoding()
    spec = CODECS.get(codec)
    if spec is None:
        raise MediaError(f"unknown codec {codec!r} (choose one of {', '.join(CODECS)})")
    if not encoder_available(codec):
        raise MediaError(f"this PyAV build has no {spec.label} encoder ({spec.encoder}); it can encode "
                         f"{', '.join(available_codecs())}")
    if path is not None:
        check_container(path, codec)
    depth = _depth_for(spec, source_depth)
    if depth < source_depth:
        keepers = [name for name, other in CODECS.items()
                   if max(other.depths) >= source_depth and encoder_available(name)]
        keep = f"--codec {', '.join(keepers)}" if keepers else ""
        keep += (" or " if keep else "") + "PNG frames"
        log.warning(f"{spec.label} holds at most {depth} bits: the {source_depth}-bit source is rounded to "
                    f"{depth} bits ({keep} keep {source_depth} bits)")
    colour, notes = _writable_colour(spec, colour or BT709)
    for level, note in notes:
        log.log(level, note)
    return VideoEncoding(codec, crf, preset, depth, colour)


def encodings_help() -> str:
    """Which codecs this PyAV build can encode, for --help."""
    lines = []
    for name, spec in CODECS.items():
        there = f"{spec.encoder}" if encoder_available(name) else f"not available: this PyAV has no {spec.encoder}"
        lines.append(f"{name} ({there})")
    return ", ".join(lines)


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


def describe_kind(kind: str, encoding: Optional[VideoEncoding] = None) -> str:
    """E.g. "H.264 8-bit yuv420p video, CRF 18, preset medium", "animated GIF", "16-bit PNG frames"."""
    encoding = encoding or VideoEncoding()
    if kind == "video":
        label, _, settings = encoding.describe().partition(", ")
        return f"{label} video" + (f", {settings}" if settings else "")
    if kind == "png":
        return f"{16 if encoding.bit_depth > 8 else 8}-bit PNG frames"
    return "animated GIF"


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
            log.warning(f"{spec.label} needs an even {'size' if even_height else 'width'}: the video is "
                        f"{self.coded_width}x{self.coded_height} "
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
        encoding = self.encoding
        stream = self.container.add_stream(encoding.spec.encoder, rate=self.fps, options=encoding.encoder_options())
        stream.width = self.coded_width
        stream.height = self.coded_height
        stream.pix_fmt = encoding.pix_fmt
        if encoding.codec == "hevc" and self.container.format.name.split(",")[0] in ("mov", "mp4"):
            stream.codec_tag = "hvc1"  # Apple's players play HEVC in MP4/MOV only under this tag
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
            # exactly to_depth(frame): what it decodes back to.
            video_frame = av.VideoFrame.from_ndarray(to_depth(frame, encoding.bit_depth), format=encoding.pix_fmt)
        else:
            rgb = av.VideoFrame.from_ndarray(frame, format="rgb24" if frame.dtype == np.uint8 else "rgb48le")
            if colour.matrix == MATRIX_RGB:
                video_frame = rgb.reformat(format=encoding.pix_fmt)
            else:
                video_frame = rgb.reformat(format=encoding.pix_fmt,
                                           dst_colorspace=_SWSCALE_MATRICES[colour.matrix],
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
