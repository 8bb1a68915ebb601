"""--tile and --max_memory in inference.py and inference_video.py."""
import os

import numpy as np
import pytest
import torch

import inference
import cpu_threads
import runtime
import tiling
from conftest import random_interpolator
from test_inference import TINY, image_pair, model_files, run_cli  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")


def read_pngs(folder):
    import cv2
    names = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    return [cv2.imread(os.path.join(folder, name))[:, :, ::-1] for name in names]


def test_apply_tiling_only_when_asked_or_needed(monkeypatch):
    # The estimate as calibrated (the default allocator; see test_precision for kept memory).
    monkeypatch.setattr(cpu_threads, "_memory_kept", False)
    model = random_interpolator(**TINY)
    assert runtime.apply_tiling(model, 128, 192, None, 100.0, torch.float32) is model
    assert runtime.apply_tiling(model, 128, 192, 256, 100.0, torch.float32) is model  # one tile holds it
    tiled = runtime.apply_tiling(model, 128, 192, 64, 100.0, torch.float32)
    assert isinstance(tiled, tiling.TiledInterpolator) and not runtime.supports_reuse(tiled)
    # A budget below the estimate for the whole frame picks the largest tile that fits it.
    needed = tiling.estimate_peak_memory(4096, 4096, filters=4) / 2 ** 30
    auto = runtime.apply_tiling(model, 4096, 4096, None, needed * 0.6, torch.float32)
    assert isinstance(auto, tiling.TiledInterpolator)
    assert runtime.model_filters(model) == 4
    assert runtime.default_memory_budget_gb(torch.device("cpu")) > 1


def test_tiled_frames_stay_close_to_untiled(capsys, model_files, image_pair, tmp_path):
    paths, _, _ = image_pair
    untiled, tiled = tmp_path / "untiled", tmp_path / "tiled"
    assert run_cli(capsys, model_files["script"], *paths, "--frames", "3", "--save_path", f"{untiled}/")[0] == 0
    status, _, err = run_cli(capsys, model_files["script"], *paths, "--frames", "3", "--save_path", f"{tiled}/",
                             "--tile", "64")
    assert status == 0, err
    a, b = read_pngs(untiled), read_pngs(tiled)
    assert len(a) == len(b) == 5
    difference = np.abs(np.stack(a).astype(int) - np.stack(b).astype(int))
    # The end frames are the inputs; in-between frames differ only where a
    # 64 px tile lacks context (small model, 6 px motion): a few 8-bit levels.
    assert difference[[0, -1]].max() == 0
    assert difference.mean() < 2.0, difference.mean()


def test_bad_tile_size_is_refused(capsys, model_files, image_pair, tmp_path):
    paths, _, _ = image_pair
    with pytest.raises(SystemExit) as exit_info:
        inference.main([model_files["script"], *paths, "--tile", "100", "--save_path", str(tmp_path / "x.mp4")])
    assert exit_info.value.code == 2
    assert "multiple of 64" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.mp4")


def test_video_tool_accepts_tiling(capsys, model_files, tmp_path):
    import cv2
    import inference_video
    from test_inference import make_image
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"f{i}.png"), make_image(2, shift=4 * i)[:, :, ::-1])
    out = tmp_path / "out"
    status = inference_video.main([model_files["script"], str(folder), "--save_path", f"{out}/", "--tile", "64"])
    assert status == 0, capsys.readouterr().err
    assert len(read_pngs(out)) == 5


def test_max_memory_too_small_is_one_line(capsys, model_files, image_pair, tmp_path):
    from conftest import assert_refused_cleanly
    paths, _, _ = image_pair
    assert_refused_cleanly(inference.main, capsys, tmp_path,
                           [model_files["script"], *paths, "--max_memory", "0.01", "--save_path", tmp_path / "x.mp4"],
                           "--max_memory 0.01 GB is too small")


def test_tiled_runs_say_tiles_run_the_whole_network(capsys, model_files, image_pair, tmp_path):
    paths, _, _ = image_pair
    status, _, err = run_cli(capsys, model_files["script"], *paths, "--frames", "1", "--tile", "64",
                             "--save_path", str(tmp_path / "x.mp4"))
    assert status == 0, err
    assert "whole network for each tile" in err and "only has forward()" not in err
