"""Codecs, bit depth, colour tags and held frames (issue 13), on small clips made here with PyAV.

The writers are tested through ``media.writers`` directly; the command lines run
in-process with ``BlendModel`` (test_inference_video's stand-in whose frame
at dt is (1 - dt) a + dt b), so every output frame says which source frames
and which t it was made from, and source frames are passed through as decoded.
"""
import os
import pathlib
import sys
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import inference  # noqa: E402
import inference_video  # noqa: E402
import media.encoding  # noqa: E402
import media.errors  # noqa: E402
import media.samples  # noqa: E402
import media.sources  # noqa: E402
import media.writers  # noqa: E402
import video_pipeline  # noqa: E402
from conftest import assert_refused_cleanly, error_lines, run_main  # noqa: E402
from media.encoding import ColourTags, VideoEncoding  # noqa: E402
from test_inference_video import (assert_blends, decode_video, expected_placements, model_files,  # noqa: E402,F401
                                  pattern_frame, read_png_folder)

pytestmark = pytest.mark.usefixtures("one_thread")

CODEC_CONTAINERS = [(codec, extension) for codec, spec in media.encoding.CODECS.items()
                    for extension in spec.extensions]
# Full-range HDR10-style tags: BT.2020 primaries, PQ transfer, BT.2020 NCL matrix.
HDR_FULL = ColourTags(primaries=9, transfer=16, matrix=9, full_range=True)


def needs(codec):
    return pytest.mark.skipif(not media.encoding.encoder_available(codec), reason=f"this PyAV has no {codec} encoder")


def codec_param(codec, *rest):
    return pytest.param(codec, *rest, marks=needs(codec), id="-".join(map(str, (codec, *rest))))


def smooth_rgb(height, width, seed=0, dtype=np.uint8):
    """Gentle gradients (lossy codecs keep them closely), uint8 or full-scale uint16."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [np.sin(x / (11 + 3 * c) + rng.random() * 6) * np.cos(y / (13 + 2 * c)) for c in range(3)]
    unit = np.stack(channels, axis=2) * 0.4 + 0.5
    top = 255 if dtype == np.uint8 else 65535
    return np.round(unit * top).astype(dtype)


def write_frames(path, frames, encoding=None, fps=Fraction(24), first_index=0):
    height, width = frames[0].shape[:2]
    with media.writers.open_writer(str(path), fps, width, height, first_index=first_index, encoding=encoding) as writer:
        for frame in frames:
            writer.write(frame)
    return str(path)


def stream_facts(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        tags = ColourTags(context.color_primaries, context.color_trc, context.colorspace, context.color_range == 2)
        first_packet = next(packet for packet in container.demux(stream) if packet.size)
        facts = dict(codec=context.codec.canonical_name, pix_fmt=context.pix_fmt, tags=tags,
                     extradata=bytes(context.extradata or b""), first_is_key=first_packet.is_keyframe,
                     size=(context.width, context.height))
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    facts["frames"] = len(frames)
    facts["first_time"] = Fraction(frames[0].pts) * frames[0].time_base
    return facts


def decoded(path, format):
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format=format) for frame in container.decode(video=0)]


def make_clip(path, frames, rate=Fraction(24), encoder="libx265", pix_fmt="yuv420p10le", colour=None, options=None,
              frame_format=None):
    """A video of ``pix_fmt`` whose frames are given as arrays of ``frame_format`` (default ``pix_fmt``, as PyAV's
    from_ndarray takes them)."""
    options = options or ({"x265-params": "log-level=error:lossless=1"} if encoder == "libx265" else {})
    frame_format = frame_format or pix_fmt
    height, width = frames[0].shape[0] * 2 // 3 if frame_format.startswith("yuv420") else frames[0].shape[0], \
        frames[0].shape[1]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        context = stream.codec_context
        if colour is not None:
            context.color_primaries, context.color_trc = colour.primaries, colour.transfer
            context.colorspace = colour.matrix
            context.color_range = 2 if colour.full_range else 1
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format=frame_format)
            if colour is not None:
                frame.color_primaries, frame.color_trc = colour.primaries, colour.transfer
                frame.colorspace = colour.matrix
                frame.color_range = 2 if colour.full_range else 1
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return str(path)


def yuv420_10(luma, u=512, v=512):
    """A yuv420p10le array (as from_ndarray takes it) with the given luma and constant chroma."""
    height, width = luma.shape
    chroma = np.empty((height // 2, width), np.uint16)
    chroma[:height // 4] = u
    chroma[height // 4:] = v
    return np.concatenate([luma.astype(np.uint16), chroma])


def run_video(capsys, *argv):
    return run_main(inference_video.main, capsys, *argv)


# --------------------------------------------------------------------------- the encodings

def test_default_encoding_is_the_h264_of_before():
    encoding = VideoEncoding()
    assert (encoding.codec, encoding.crf, encoding.preset, encoding.bit_depth) == ("h264", 18, "medium", 8)
    assert encoding.colour == ColourTags(1, 1, 1, False) and encoding.pix_fmt == "yuv420p"
    assert encoding.encoder_options() == {"crf": "18", "preset": "medium"}
    assert encoding.sample_dtype == np.uint8


def test_the_usual_codecs_are_probed_in_this_build():
    assert {"h264", "hevc", "prores", "ffv1"} <= set(media.encoding.available_codecs())
    assert "libx264" in media.encoding.encodings_help()


@pytest.mark.parametrize("arguments, words", [
    (dict(codec="prores", crf=20), "ProRes has no CRF"),
    (dict(codec="h264", crf=52), "goes from 0 to 51"),
    (dict(codec="av1", preset="fast"), "AV1 presets are 0 to 13"),
    (dict(codec="ffv1", preset="hq"), "FFV1 has no presets"),
    (dict(codec="vp8"), "unknown codec"),
])
def test_settings_a_codec_does_not_have_are_refused(arguments, words):
    with pytest.raises(media.errors.MediaError, match=words):
        VideoEncoding(**arguments)


@pytest.mark.parametrize("codec, source_depth, expected", [
    ("h264", 10, 8), ("hevc", 8, 8), ("hevc", 10, 10), ("hevc", 16, 12), ("av1", 12, 10),
    ("prores", 8, 8), ("prores", 12, 10), ("ffv1", 9, 9), ("ffv1", 16, 16)])
def test_depth_is_the_sources_where_the_codec_holds_it(caplog, codec, source_depth, expected):
    if not media.encoding.encoder_available(codec):
        pytest.skip(f"no {codec} encoder")
    encoding = media.encoding.choose_encoding("video", codec, source_depth=source_depth)
    assert encoding.bit_depth == expected
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    if expected < source_depth:
        assert len(warnings) == 1 and f"the {source_depth}-bit source is rounded to {expected} bits" in warnings[0]
    else:
        assert warnings == []


def test_an_encoding_made_directly_carries_only_tags_its_codec_can():
    assert VideoEncoding("ffv1").colour == ColourTags(1, 1, media.encoding.MATRIX_RGB, True)
    assert VideoEncoding("prores", colour=HDR_FULL).colour.full_range is False
    assert VideoEncoding("hevc", colour=ColourTags(2, 2, 2, False)).colour == media.encoding.BT709


def test_png_and_gif_depths():
    assert media.encoding.choose_encoding("png", source_depth=10).bit_depth == 16
    assert media.encoding.choose_encoding("png", source_depth=8).bit_depth == 8
    assert media.encoding.choose_encoding("gif", source_depth=16).bit_depth == 8


def test_colour_tags_for_each_codec(caplog):
    assert media.encoding.choose_encoding("video", "hevc", source_depth=10, colour=HDR_FULL).colour == HDR_FULL
    assert media.encoding.choose_encoding("video", "prores", source_depth=10, colour=HDR_FULL).colour == \
        HDR_FULL._replace(full_range=False)
    assert media.encoding.choose_encoding("video", "ffv1", source_depth=10, colour=HDR_FULL).colour == \
        HDR_FULL._replace(matrix=media.encoding.MATRIX_RGB)
    unspecified = ColourTags(2, 2, 2, False)
    assert media.encoding.choose_encoding("video", "h264", colour=unspecified).colour == media.encoding.BT709
    ycgco = media.encoding.choose_encoding("video", "hevc", colour=ColourTags(9, 18, 8, False)).colour
    assert ycgco == ColourTags(9, 18, 9, False)
    assert any("YCgCo matrix cannot be written" in record.getMessage() for record in caplog.records)


# --------------------------------------------------------------------------- writers, codec by codec

@pytest.mark.parametrize("codec, extension", [codec_param(*pair) for pair in CODEC_CONTAINERS])
def test_each_codec_in_each_container(tmp_path, codec, extension):
    spec = media.encoding.CODECS[codec]
    depth = max(spec.depths)
    encoding = VideoEncoding(codec, bit_depth=depth)
    frames = [smooth_rgb(48, 64, seed=i, dtype=encoding.sample_dtype) for i in range(5)]
    path = write_frames(tmp_path / f"clip{extension}", frames, encoding)
    facts = stream_facts(path)
    assert facts["codec"] == codec and facts["frames"] == 5 and facts["pix_fmt"] == encoding.pix_fmt
    assert facts["tags"] == encoding.colour
    assert facts["size"] == (64, 48) and facts["first_is_key"]
    back = decoded(path, "rgb48le")
    tolerance = 0 if codec == "ffv1" else 0.02 * 65535   # lossy codecs: mean error within 2% of full scale
    for original, frame in zip(frames, back):
        original16 = media.samples.to_uint16(original) if codec != "ffv1" else \
            np.round(media.samples.round_to_bits(original, depth) * (65535 / ((1 << depth) - 1))).astype(np.uint16)
        assert np.abs(frame.astype(float) - original16).mean() <= max(tolerance, 1)
    assert [name for name in os.listdir(tmp_path) if name.endswith(".partial")] == []


@pytest.mark.parametrize("codec, extension", [
    ("ffv1", ".mp4"), ("ffv1", ".mov"), ("prores", ".mp4"), ("av1", ".mov")])
def test_a_container_that_does_not_take_the_codec_is_refused(tmp_path, codec, extension):
    with pytest.raises(media.errors.OutputError) as caught:
        media.writers.open_writer(str(tmp_path / f"out{extension}"), Fraction(24), 64, 48,
                                  encoding=VideoEncoding(codec))
    message = str(caught.value)
    assert f"cannot be written to a {extension} file" in message
    assert all(working in message for working in media.encoding.CODECS[codec].extensions)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("codec, depth", [codec_param("h264", 8), codec_param("hevc", 10), codec_param("av1", 10),
                                          codec_param("prores", 10), codec_param("ffv1", 10)])
def test_chunks_start_with_a_keyframe_and_share_codec_parameters(tmp_path, codec, depth):
    """What joining separately written parts of a sequence by packet copy needs."""
    encoding = VideoEncoding(codec, bit_depth=depth)
    extension = media.encoding.CODECS[codec].extensions[0]
    frames = [smooth_rgb(64, 96, seed=i, dtype=encoding.sample_dtype) for i in range(6)]
    first = stream_facts(write_frames(tmp_path / f"a{extension}", frames[:3], encoding))
    second = stream_facts(write_frames(tmp_path / f"b{extension}", frames[3:], encoding, first_index=3))
    assert first["first_is_key"] and second["first_is_key"]
    assert first["extradata"] == second["extradata"]
    assert first["pix_fmt"] == second["pix_fmt"] == encoding.pix_fmt
    assert first["first_time"] == 0 and abs(second["first_time"] - Fraction(3, 24)) <= Fraction(1, 1000)


@pytest.mark.parametrize("depth", [8, 10, 16])
def test_ffv1_decodes_to_exactly_the_frames_written(tmp_path, depth):
    rng = np.random.default_rng(depth)
    dtype = np.uint8 if depth == 8 else np.uint16
    # An odd size: RGB needs no padding.
    frames = [rng.integers(0, np.iinfo(dtype).max + 1, (47, 63, 3), dtype=dtype) for _ in range(4)]
    path = write_frames(tmp_path / "archive.mkv", frames, VideoEncoding("ffv1", bit_depth=depth))
    if depth == 8:
        back, expected = decoded(path, "rgb24"), frames
    elif depth == 16:
        back, expected = decoded(path, "rgb48le"), frames
    else:  # 16-bit frames written at 10 bits: the file holds them rounded to 10 bits, exactly
        back, expected = decoded(path, "gbrp10le"), [media.samples.round_to_bits(frame, 10) for frame in frames]
    assert len(back) == 4
    for frame, original in zip(back, expected):
        np.testing.assert_array_equal(frame, original)


def test_16_bit_png_frames(tmp_path):
    frames = [smooth_rgb(20, 30, seed=i, dtype=np.uint16) for i in range(2)]
    folder = tmp_path / "frames"
    with media.writers.open_writer(str(folder) + "/", Fraction(10), 30, 20,
                                   encoding=VideoEncoding(bit_depth=16)) as writer:
        assert writer.sample_dtype == np.uint16
        for frame in frames:
            writer.write(frame)
        with pytest.raises(ValueError, match="uint16 frame"):
            writer.write(frames[0].astype(np.uint8))
    for index, frame in enumerate(frames):
        written = cv2.imread(str(folder / f"frame_{index:05d}.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
        np.testing.assert_array_equal(written, frame)


# --------------------------------------------------------------------------- depth end to end

@pytest.fixture(scope="module")
def deep_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deep")
    # A gray ramp with 1024 levels: 4 levels apart along x, the steps between
    # them along y (lossless x265, so the source holds all 1024).
    y, x = np.mgrid[0:64, 0:256]
    ramp = 64 + (x * 4 + y // 16) * 876 // 1023      # limited range luma, 64-940
    gradient = make_clip(folder / "gradient10.mkv", [yuv420_10(ramp)] * 4)
    # Full-range HDR10 tags, flat patches (four colours) so that lossy codecs keep them closely.
    luma = np.full((64, 96), 350, np.uint16)
    luma[:, 48:] += 250
    luma[32:, :] += 150
    patches = make_clip(folder / "hdr_full.mkv", [yuv420_10(luma, u=420, v=640)] * 4, colour=HDR_FULL)
    return {"gradient": gradient, "hdr": patches}


# Two of the four patches, away from their edges (chroma is subsampled).
INNER_PATCHES = (slice(8, 24), slice(8, 40)), (slice(40, 56), slice(56, 88))


def distinct_luma_levels(path):
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        luma = frame.reformat(format="yuv420p10le").to_ndarray()[:frame.height]
    return len(np.unique(luma))


def test_10_bit_source_is_read_at_full_depth(deep_sources):
    with media.sources.open_source(deep_sources["gradient"], Fraction(30)) as source:
        assert source.bit_depth == 10
        frame = next(source.frames_from(source.start_time))
    assert frame.pixels.dtype == np.uint16 and len(np.unique(frame.pixels[:, :, 1])) == 877  # every luma level 64-940


@pytest.mark.parametrize("codec, extension", [codec_param("hevc", ".mkv"), codec_param("ffv1", ".mkv"),
                                              codec_param("prores", ".mov"), codec_param("av1", ".mp4")])
def test_10_bit_round_trip_keeps_more_than_256_levels(capsys, tmp_path, model_files, deep_sources, codec, extension):
    output = tmp_path / f"out{extension}"
    status, out, err = run_video(capsys, model_files["blend"], deep_sources["gradient"], "--codec", codec,
                                 "--save_path", output)
    assert status == 0, err
    assert not any(line.startswith("warning:") for line in error_lines(err)), err
    facts = stream_facts(output)
    assert facts["frames"] == 7 and facts["pix_fmt"] in ("yuv420p10le", "gbrp10le", "yuv422p10le")
    levels = distinct_luma_levels(output)
    print(f"{codec}: {levels} distinct 10-bit luma levels")
    assert levels > 256
    assert "10-bit" in out


def test_10_bit_source_to_h264_is_rounded_to_8_bits_with_a_warning(capsys, tmp_path, model_files, deep_sources):
    output = tmp_path / "out.mp4"
    status, _, err = run_video(capsys, model_files["blend"], deep_sources["gradient"], "--save_path", output)
    assert status == 0, err
    warnings = [line for line in error_lines(err) if line.startswith("warning:")]
    assert len(warnings) == 1 and "H.264 holds at most 8 bits: the 10-bit source is rounded to 8 bits" in warnings[0]
    assert "hevc" in warnings[0] and "ffv1" in warnings[0]
    assert stream_facts(output)["pix_fmt"] == "yuv420p" and distinct_luma_levels(output) <= 256


def test_16_bit_png_folder_passes_source_frames_through_exactly(capsys, tmp_path, model_files):
    folder = tmp_path / "in"
    folder.mkdir()
    frames = [smooth_rgb(32, 48, seed=i, dtype=np.uint16) for i in range(3)]
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"f{index}.png"), frame[:, :, ::-1])
    status, _, err = run_video(capsys, model_files["blend"], folder, "--save_path", tmp_path / "out/")
    assert status == 0, err
    written = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, ::-1] for path in sorted((tmp_path / "out").iterdir())]
    assert len(written) == 5 and all(frame.dtype == np.uint16 for frame in written)
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(written[2 * index], frame)
    blend = (frames[0].astype(float) + frames[1]) / 2
    assert np.abs(written[1] - blend).max() <= 1


def test_16_bit_images_give_16_bit_frames(capsys, tmp_path, model_files):
    first, second = smooth_rgb(32, 48, seed=1, dtype=np.uint16), smooth_rgb(32, 48, seed=2, dtype=np.uint16)
    paths = [str(tmp_path / name) for name in ("a.png", "b.png")]
    for path, image in zip(paths, (first, second)):
        cv2.imwrite(path, image[:, :, ::-1])
    status, _, err = run_main(inference.main, capsys, model_files["blend"], *paths, "--frames", 1,
                              "--save_path", tmp_path / "png/")
    assert status == 0, err
    written = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, ::-1] for path in sorted((tmp_path / "png").iterdir())]
    np.testing.assert_array_equal(written[0], first)
    np.testing.assert_array_equal(written[2], second)
    status, out, err = run_main(inference.main, capsys, model_files["blend"], *paths, "--frames", 1, "--codec", "ffv1",
                                "--forward_only", "--save_path", tmp_path / "archive.mkv")
    assert status == 0, err
    back = decoded(tmp_path / "archive.mkv", "rgb48le")
    np.testing.assert_array_equal(back[0], first)
    np.testing.assert_array_equal(back[2], second)
    assert "FFV1 16-bit gbrp16le" in out


# --------------------------------------------------------------------------- colour

@pytest.mark.parametrize("codec, extension, depth", [
    codec_param("hevc", ".mkv", 10), codec_param("hevc", ".mp4", 10), codec_param("av1", ".mkv", 10),
    codec_param("h264", ".mkv", 8), codec_param("prores", ".mov", 10), codec_param("ffv1", ".mkv", 10)])
def test_colour_tags_are_kept_and_colours_converted_with_the_sources_matrix(capsys, tmp_path, model_files,
                                                                            deep_sources, codec, extension, depth):
    output = tmp_path / f"out{extension}"
    status, _, err = run_video(capsys, model_files["blend"], deep_sources["hdr"], "--codec", codec,
                               "--save_path", output)
    assert status == 0, err
    tags = stream_facts(output)["tags"]
    expected = {"prores": HDR_FULL._replace(full_range=False),
                "ffv1": HDR_FULL._replace(matrix=media.encoding.MATRIX_RGB)}.get(codec, HDR_FULL)
    assert tags == expected, tags.describe()
    with av.open(str(output)) as container:
        frame = next(container.decode(video=0))
        assert (frame.color_primaries, frame.color_trc) == (9, 16) or codec == "prores"
    # Read back with the output's own tags, the colours are the source's
    # (within the codec's loss): the conversion used the matrix and range the
    # file says. A BT.709 or limited-range conversion would be off by far more.
    source = decoded(deep_sources["hdr"], "rgb48le")[0].astype(float)
    result = decoded(output, "rgb48le")[0].astype(float)
    for rows, columns in INNER_PATCHES:
        error = np.abs(result[rows, columns] - source[rows, columns]).mean() / 65535
        print(f"{codec}: colour error {error:.4f}")
        assert error < (0.006 if depth == 10 else 0.01), (codec, error)


def test_an_hdr_source_written_as_bt709_would_fail_the_colour_check(deep_sources):
    """The colour check above can fail: read as BT.709 limited range, the patches move by 2-6% of full scale."""
    with av.open(deep_sources["hdr"]) as container:
        frame = next(container.decode(video=0))
        right = frame.to_ndarray(format="rgb48le").astype(float)
        wrong = frame.reformat(format="rgb48le", src_colorspace="itu709", src_color_range="MPEG").to_ndarray()
    for rows, columns in INNER_PATCHES:
        patch = right[rows, columns]
        assert 0.1 * 65535 < patch.min() and patch.max() < 0.95 * 65535   # inside the gamut, not clipped
        assert np.abs(wrong[rows, columns] - patch).mean() / 65535 > 0.02


# --------------------------------------------------------------------------- held frames

def frames_of(pixels_list, step=Fraction(1, 24)):
    return [media.sources.SourceFrame(index * step, pixels) for index, pixels in enumerate(pixels_list)]


def test_duplicate_difference_counts_small_changes_not_noise():
    base = smooth_rgb(64, 96)
    noisy = np.clip(base.astype(int) + np.random.default_rng(0).integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
    assert video_pipeline.duplicate_difference(base, base) == 0
    assert video_pipeline.duplicate_difference(base, noisy) < 0.02
    changed = base.copy()
    changed[16:32, 32:48] = 255 - changed[16:32, 32:48]   # one 16x16 block
    assert video_pipeline.duplicate_difference(base, changed) > 0.1
    assert video_pipeline.duplicate_difference(base.astype(np.uint16) * 257, changed.astype(np.uint16) * 257) == \
        pytest.approx(video_pipeline.duplicate_difference(base, changed), abs=1e-6)


@pytest.mark.parametrize("dtype, peak", [(np.uint8, 255), (np.uint16, 65535)])
def test_duplicate_difference_is_the_largest_block_mean_of_the_largest_channel_difference(dtype, peak):
    """Against the definition written out in float64, on a frame of whole 16x16 blocks (other sizes are
    divided into ceil(size / 16) equal blocks by an area resize). The fast path works on the integer
    samples; agreement to 1e-6 is float32 rounding."""
    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, peak + 1, (48, 80, 3)).astype(dtype) for _ in range(2))
    b[:16, :16] = a[:16, :16]  # one block without change
    per_pixel = np.abs(a.astype(np.float64) - b.astype(np.float64)).max(axis=2) / peak
    means = [per_pixel[y:y + 16, x:x + 16].mean() for y in range(0, 48, 16) for x in range(0, 80, 16)]
    assert video_pipeline.duplicate_difference(a, b) == pytest.approx(max(means), abs=1e-6)


def test_drop_duplicates_keeps_first_last_and_distinct_frames():
    drawings = [smooth_rgb(32, 48, seed=seed) for seed in range(4)]
    # on twos, then threes, ending on a held drawing
    sequence = [drawings[d] for d in (0, 0, 1, 1, 2, 2, 2, 3, 3)]
    stats = video_pipeline.DedupStats()
    kept = list(video_pipeline.drop_duplicates(frames_of(sequence), 0.05, stats))
    assert [frame.time * 24 for frame in kept] == [0, 2, 4, 7, 8]
    assert (stats.frames, stats.dropped) == (9, 4)
    ending_distinct = list(video_pipeline.drop_duplicates(frames_of(sequence[:8]), 0.05))
    assert [frame.time * 24 for frame in ending_distinct] == [0, 2, 4, 7]


def test_drop_duplicates_decides_from_the_frame_and_the_one_before_only():
    """A worker that starts at frame s - 1 drops exactly the frames between that the whole run drops."""
    drawings = [smooth_rgb(32, 48, seed=seed) for seed in range(5)]
    sequence = frames_of([drawings[d] for d in (0, 0, 1, 2, 2, 2, 3, 3, 4, 4, 4)])
    whole = {frame.time for frame in video_pipeline.drop_duplicates(iter(sequence), 0.05)}
    for start in range(1, len(sequence) - 1):
        part = {frame.time for frame in video_pipeline.drop_duplicates(iter(sequence[start - 1:]), 0.05)}
        inside = {frame.time for frame in sequence[start:-1]}
        assert part & inside == whole & inside, start


def make_on_twos(path, count=12, rate=Fraction(24)):
    """H.264 clip where frame i shows drawing i // 2 (each drawing held for two frames)."""
    return make_clip(path, [pattern_frame(index // 2) for index in range(count)], rate, encoder="libx264",
                     pix_fmt="yuv420p", frame_format="rgb24", options={"crf": "12", "preset": "ultrafast"})


def test_dedup_on_twos_gives_evenly_spaced_new_frames(capsys, tmp_path, model_files):
    source = make_on_twos(tmp_path / "twos.mp4")
    times, source_frames = decode_video(source)
    status, out, err = run_video(capsys, model_files["blend"], source, "--dedup", "--save_path", tmp_path / "o/")
    assert status == 0, err
    assert "5 of 12 source frames dropped as duplicates (--dedup 0.05)" in out
    kept = [0, 2, 4, 6, 8, 10, 11]    # the held copies go, but for the last frame
    rate = Fraction(48)
    placements = expected_placements([times[i] for i in kept], rate)
    assert len(placements) == 23      # as without --dedup: the output spans the same time
    # between two drawings: the drawing, then new frames at 1/4, 1/2, 3/4
    assert [t for _, t in placements[:8]] == [0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)] * 2
    assert_blends(read_png_folder(tmp_path / "o"), [source_frames[i] for i in kept], placements)


def test_without_dedup_held_drawings_give_stop_go(capsys, tmp_path, model_files):
    source = make_on_twos(tmp_path / "twos.mp4")
    status, out, err = run_video(capsys, model_files["blend"], source, "--save_path", tmp_path / "o/")
    assert status == 0 and "dropped" not in out, err
    written = read_png_folder(tmp_path / "o")
    assert np.abs(written[1].astype(int) - written[0]).mean() < 1     # between two copies: nothing moves


# --------------------------------------------------------------------------- command lines

@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    return make_on_twos(folder / "clip.mp4", 4)


def test_default_output_name_takes_the_codecs_container(capsys, tmp_path, model_files, clip):
    source = tmp_path / "clip.mp4"
    source.write_bytes(pathlib.Path(clip).read_bytes())
    status, out, err = run_video(capsys, model_files["blend"], source, "--codec", "prores")
    assert status == 0, err
    assert (tmp_path / "clip_48fps.mov").exists() and "ProRes" in out


@pytest.mark.parametrize("main, argv, words", [
    ("video", ["--codec", "ffv1", "--save_path", "{tmp}/o.mp4"], "FFV1 cannot be written to a .mp4 file: use .mkv"),
    ("video", ["--codec", "av1", "--save_path", "{tmp}/o.mov"], "use .mp4 or .mkv"),
    ("video", ["--codec", "hevc", "--save_path", "{tmp}/frames/"], "--codec is for video outputs, not PNG frames"),
    ("video", ["--crf", "20", "--preset", "fast", "--save_path", "{tmp}/f/"], "--crf and --preset are for video"),
    ("images", ["--codec", "prores", "--save_path", "{tmp}/o.gif"], "--codec is for video outputs, not GIFs"),
    ("images", ["--codec", "prores", "--save_path", "{tmp}/o.mp4"], "ProRes cannot be written to a .mp4 file"),
])
def test_bad_combinations_are_refused_cleanly(capsys, tmp_path, model_files, clip, main, argv, words):
    argv = [a.format(tmp=tmp_path) for a in argv]
    if main == "video":
        assert_refused_cleanly(inference_video.main, capsys, tmp_path, [model_files["blend"], clip, *argv], words)
    else:
        images = tmp_path.parent / f"{tmp_path.name}_images"
        images.mkdir()
        for name in ("a.png", "b.png"):
            cv2.imwrite(str(images / name), pattern_frame(0))
        assert_refused_cleanly(inference.main, capsys, tmp_path,
                               [model_files["blend"], images / "a.png", images / "b.png", *argv], words)


@pytest.mark.parametrize("argv, words", [
    (["--codec", "vp8"], "invalid choice"),
    (["--crf", "52"], "--crf: the CRF of H.264 goes from 0 to 51"),
    (["--crf", "-1"], "--crf: must be at least 0"),
    (["--codec", "prores", "--crf", "20"], "--crf: ProRes has no CRF setting"),
    (["--codec", "av1", "--preset", "fast"], "--preset: AV1 presets are 0 to 13"),
    (["--preset", "turbo"], "--preset: H.264 presets are ultrafast"),
    (["--dedup", "1.5"], "--dedup: must be at least 0 and below 1"),
    (["--dedup", "--mode", "recursive"], "--dedup needs --mode direct"),
])
def test_bad_arguments_are_one_usage_line(capsys, model_files, clip, argv, words):
    with pytest.raises(SystemExit) as exit_info:
        inference_video.main([model_files["blend"], clip, *argv])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and words in lines[0], lines


def test_a_codec_this_pyav_lacks_is_refused(capsys, monkeypatch, model_files, clip):
    monkeypatch.setattr(media.encoding, "encoder_available", lambda codec: codec != "av1")
    with pytest.raises(SystemExit) as exit_info:
        inference_video.main([model_files["blend"], clip, "--codec", "av1"])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert "--codec av1: this PyAV build has no AV1 encoder (libsvtav1)" in line and "hevc" in line


@pytest.mark.parametrize("main", [inference.main, inference_video.main])
def test_help_documents_the_encoding_options(capsys, main):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for words in ["--codec", "--crf", "--preset", "h264", "hevc", "av1", "prores", "ffv1", "(default 18)",
                  "(default 20)", "hq (default)", "This PyAV build can encode", "bit depth", "colour", "HDR",
                  "BT.709", "refused"]:
        assert words in text, words
    if main is inference_video.main:
        for words in ["--dedup", "held frames", "twos", "0.05", "first and the last frame are always kept"]:
            assert words in " ".join(text.split()), words


# --------------------------------------------------------------------------- the join says what the direct writer says

def container_identity(path):
    """What players and editors read from the container about the video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        return dict(codec=context.codec.canonical_name, tag=stream.codec_tag, profile=context.profile,
                    pix_fmt=context.pix_fmt, colour=ColourTags(context.color_primaries, context.color_trc,
                                                               context.colorspace, context.color_range == 2))


EXPECTED_TAGS = {("hevc", ".mp4"): "hvc1", ("hevc", ".m4v"): "hvc1", ("hevc", ".mov"): "hvc1",
                 ("prores", ".mov", None): "apch", ("prores", ".mov", "lt"): "apcs", ("prores", ".mov", "4444"): "ap4h"}
IDENTITY_CASES = [codec_param(codec, extension, preset, workers)
                  for codec, extension in CODEC_CONTAINERS
                  for preset in ((None, "lt", "4444") if codec == "prores" else (None,))
                  for workers in ((None, 2) if (codec, extension, preset) in
                                  (("hevc", ".mp4", None), ("prores", ".mov", "lt")) else (None,))]


@pytest.fixture(scope="module")
def image_pair_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    paths = [str(folder / f"{name}.png") for name in ("a", "b")]
    for seed, path in enumerate(paths):
        cv2.imwrite(path, smooth_rgb(48, 64, seed=seed)[:, :, ::-1])
    return paths


@pytest.mark.parametrize("codec, extension, preset, workers", IDENTITY_CASES)
def test_segmented_jobs_tag_their_stream_as_the_direct_writer_does(capsys, tmp_path, model_files, clip,
                                                                   image_pair_files, codec, extension, preset,
                                                                   workers):
    """inference_video.py's join (segments, and Ray workers) against inference.py's direct writer:
    codec tag (HEVC's hvc1 for Apple's players, ProRes's profile fourcc), profile, pixel format, colour tags."""
    encoding = ["--codec", codec] + (["--preset", preset] if preset else [])
    direct = tmp_path / f"direct{extension}"
    status, _, err = run_main(inference.main, capsys, model_files["blend"], *image_pair_files, "--frames", 1,
                              "--save_path", direct, *encoding)
    assert status == 0, err
    joined = tmp_path / f"joined{extension}"
    status, _, err = run_video(capsys, model_files["blend"], clip, "--save_path", joined, "--segment_frames", 2,
                               *encoding, *(["--workers", workers] if workers else []))
    assert status == 0, err
    expected = container_identity(direct)
    assert container_identity(joined) == expected
    tag = EXPECTED_TAGS.get((codec, extension, preset), EXPECTED_TAGS.get((codec, extension)))
    if tag is not None:
        assert expected["tag"] == tag


@pytest.mark.parametrize("codec, size, repeated", [codec_param("prores", (48, 63), "last column of"),
                                                    codec_param("h264", (47, 64), "last row of"),
                                                    codec_param("h264", (47, 63), "last column and row of")])
def test_the_odd_size_warning_names_what_is_repeated(tmp_path, caplog, codec, size, repeated):
    height, width = size
    write_frames(tmp_path / "odd.mov", [smooth_rgb(height, width)], VideoEncoding(codec))
    warnings = [record.getMessage() for record in caplog.records if "needs an even" in record.getMessage()]
    assert len(warnings) == 1 and repeated in warnings[0]
