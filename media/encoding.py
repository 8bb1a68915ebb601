"""How outputs are encoded: the codec and colour catalogue, ``VideoEncoding``, and the kinds of output.

- ``CODECS``: what each ``--codec`` choice is (encoder, containers, depths,
  CRF and presets); ``encoder_available`` says whether this PyAV has it.
- ``ColourTags``: FFmpeg's primaries, transfer and matrix values and the
  range, as a video is tagged; the default (``BT709``) is what players
  assume for HD video and what images are written with.
- ``VideoEncoding``: how one sequence is encoded (codec, CRF, preset,
  depth, colour), the same for every part of it; ``choose_encoding`` picks
  it for a source's depth and colour, saying what it changes.
- ``output_kind``: "video", "gif" or "png" (a folder of numbered PNG
  frames) for an output path; ``describe_kind`` names it for the user.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import av
import numpy as np

from media.errors import MediaError, OutputError, log

# Extensions of the outputs, by kind. A path with no extension, ending in a path
# separator, or naming an existing folder is a folder of numbered PNG frames.
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
GIF_EXTENSIONS = {".gif"}
# SVT-AV1 prints a banner and its settings to stderr itself (FFmpeg's log
# level does not reach it); it reads this once, when it first logs.
os.environ.setdefault("SVT_LOG", "1")

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
SWSCALE_MATRICES = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9}


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
# ProRes profiles' fourccs in MOV (Apple's ProRes white paper).
PRORES_TAGS = {"proxy": "apco", "lt": "apcs", "standard": "apcn", "hq": "apch", "4444": "ap4h", "4444xq": "ap4x"}


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

    def stream_tag(self, container_format: str) -> Optional[str]:
        """The codec tag (fourcc) the video stream carries in ``container_format``, where it must be chosen.

        Players read meaning from it, and a stream copied from a chunk (the
        join) would otherwise get the muxer's default: HEVC in MP4/MOV plays
        in Apple's players only as ``hvc1`` (FFmpeg's default is ``hev1``);
        ProRes's tag names its profile, which editors and QuickTime read
        (FFmpeg's default for a copied stream is ``apch``, 422 HQ).
        """
        if container_format not in ("mp4", "mov"):
            return None
        if self.codec == "hevc":
            return "hvc1"
        if self.codec == "prores":
            return PRORES_TAGS[self.preset]
        return None

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
    if matrix not in SWSCALE_MATRICES:
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


def for_output(kind: str, codec: Optional[str], crf: Optional[int], preset: Optional[str], *,
               source_depth: int = 8, colour: Optional[ColourTags] = None, path: str = "") -> VideoEncoding:
    """``choose_encoding`` for the CLIs' --codec/--crf/--preset (None: not given).

    The options are refused for outputs that are not videos, rather than ignored.
    """
    if kind != "video":
        given = [f"--{name}" for name, value in (("codec", codec), ("crf", crf), ("preset", preset))
                 if value is not None]
        if given:
            what = {"png": "PNG frames", "gif": "GIFs"}[kind]
            raise MediaError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for video outputs, "
                             f"not {what} ({path})")
    return choose_encoding(kind, codec or DEFAULT_CODEC, crf, preset, source_depth=source_depth, colour=colour,
                           path=path)


def default_extension(codec: Optional[str]) -> str:
    """The container a default output path gets for a codec (.mp4 for H.264)."""
    return CODECS[codec or DEFAULT_CODEC].extensions[0]


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

