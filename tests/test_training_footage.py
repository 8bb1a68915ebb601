"""training.demo_footage: pans at the asked speed, footage train.py reads, a Vimeo-layout folder evaluate.py
reads, and the README's fine-tune loop in miniature (start model -> train.py --start -> evaluate.py before/after).

Small network (tests/data/small_config.json), one thread, 64x96 frames; about 20 s.
"""
import csv
import json
import math
import os

import cv2
import numpy as np

import evaluate
import train
from conftest import DATA, run_main
from evaluation import datasets
from training import data, demo_footage


def measured_shift(first, second):
    """(dx, dy) that moves ``second``'s content onto ``first``'s, by phase correlation (gray, windowed)."""
    gray = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY).astype(np.float64) for path in (first, second)]
    window = cv2.createHanningWindow(gray[0].shape[::-1], cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(gray[0], gray[1], window)
    return dx, dy


def test_pans_move_at_the_asked_speed_with_the_ground_truth_halfway(tmp_path):
    names = demo_footage.write_vimeo(str(tmp_path), 3, speeds=(6.0, 6.0), size=(96, 128), seed=5)
    assert names == {"test": ["00001/0001", "00001/0002", "00001/0003"], "train": []}
    for name in names["test"]:
        folder = tmp_path / "sequences" / name
        whole = measured_shift(folder / "im1.png", folder / "im3.png")
        half = measured_shift(folder / "im1.png", folder / "im2.png")
        assert abs(math.hypot(*whole) - 12.0) < 0.5, whole  # two frames of 6 px
        assert abs(half[0] - whole[0] / 2) < 0.5 and abs(half[1] - whole[1] / 2) < 0.5, (half, whole)
    # Same seed, same frames; another seed, other frames.
    again = tmp_path / "again"
    demo_footage.write_vimeo(str(again), 3, speeds=(6.0, 6.0), size=(96, 128), seed=5)
    other = tmp_path / "other"
    demo_footage.write_vimeo(str(other), 3, speeds=(6.0, 6.0), size=(96, 128), seed=6)
    im = lambda root: cv2.imread(str(root / "sequences" / "00001" / "0002" / "im2.png"))
    np.testing.assert_array_equal(im(again), im(tmp_path))
    assert np.abs(im(other).astype(int) - im(tmp_path).astype(int)).mean() > 10


def test_clips_are_footage_and_the_cli_writes_both_layouts(tmp_path, capsys):
    written = demo_footage.write_clips(str(tmp_path / "clips"), 3, frames=12, speeds=(1.0, 2.0), size=(64, 64),
                                       seed=1)
    assert [os.path.basename(c) for c, _, _ in written] == ["clip_000", "clip_001", "clip_002"]
    assert all(1.0 <= speed <= 2.0 for _, speed, _ in written)
    manifest = data.find_triplets([str(tmp_path / "clips")], str(tmp_path / "cache"), val_fraction=0.25)
    assert manifest["sources"][0][1] == "footage"
    # 12 frames per clip: the last 3 are validation, 9 train (7 triplets), 3 validate (1 triplet).
    assert (manifest["sources"][0][2], manifest["sources"][0][3]) == (21, 3)
    assert demo_footage.main([str(tmp_path / "cli"), "--vimeo", "2", "--train", "3", "--speed", "4,5",
                              "--size", "64x64"]) == 0
    assert "2 test and 3 training triplets" in capsys.readouterr().out
    assert [len(open(tmp_path / "cli" / f"tri_{split}list.txt").read().split()) for split in ("test", "train")] \
        == [2, 3]
    manifest = data.find_triplets([str(tmp_path / "cli")], str(tmp_path / "cache"))
    assert manifest["sources"][0][1:] == ("vimeo90k", 3, 2)


def mean_l1(results_csv):
    with open(results_csv) as file:
        rows = list(csv.reader(file, skipinitialspace=True))
    assert rows[0] == ["key", "l1", "l2", "ssim", "psnr"] and rows[-1][0] == "mean"
    return float(rows[-1][1]), len(rows) - 2


def test_a_fine_tune_on_generated_footage_lowers_the_loss_and_evaluate_reads_the_folder(tmp_path, capsys,
                                                                                           one_thread):
    folder = tmp_path / "pans"
    demo_footage.write_vimeo(str(folder), 4, speeds=(3.0, 5.0), size=(64, 96), seed=2, train=16)
    assert len(datasets.find_examples("vimeo90k", str(folder))) == 4
    common = ["--data", str(folder), "--recipe", "l1",
              "--batch_size", "4", "--crop", "64", "--val_crop", "64", "--workers", "0", "--threads", "1",
              "--no_progress", "--augment", "", "--learning_rate", "1e-3"]
    status, _, err = run_main(train.main, capsys, str(tmp_path / "start"), *common, "--config",
                              str(DATA / "small_config.json"), "--steps", "1")
    assert status == 0, err
    start = tmp_path / "start" / "model.pt"
    status, out, err = run_main(train.main, capsys, str(tmp_path / "tuned"), *common, "--start", str(start),
                                "--steps", "30", "--val_every", "0")
    assert status == 0, err
    losses = [json.loads(line) for line in open(tmp_path / "tuned" / "log.jsonl")]
    training = [entry["loss"] for entry in losses if "loss" in entry]
    assert len(training) == 30 and np.mean(training[-5:]) < 0.7 * np.mean(training[:5]), training
    scores = {}
    for label, model in (("start", start), ("tuned", tmp_path / "tuned" / "model.pt")):
        output = tmp_path / f"{label}.csv"
        status, out, err = run_main(evaluate.main, capsys, str(model), str(folder), "--dataset", "vimeo90k",
                                    "--output", str(output), "--threads", "1")
        assert status == 0, err
        scores[label], rows = mean_l1(output)
        assert rows == 4
    assert scores["tuned"] < 0.7 * scores["start"], scores
