"""train.py and the training library end to end: data layouts, a short run, export, resume after SIGKILL.

Small network (tests/data/small_config.json), 64x64 crops, one thread, a few steps.
"""
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

import runtime
import train
from conftest import DATA, REFERENCE, ROOT, assert_refused_cleanly, run_main
from training import augment, data

VGG = REFERENCE / "training" / "vgg19_narrow.mat"


def write_frames(folder, count, shift=3, seed=0, size=(72, 96)):
    """A smooth texture panning ``shift`` px per frame."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((200, 300, 3)).astype(np.float32), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min())
    os.makedirs(folder, exist_ok=True)
    height, width = size
    for i in range(count):
        frame = base[40:40 + height, 20 + shift * i:20 + shift * i + width]
        cv2.imwrite(os.path.join(folder, f"f{i:03d}.png"), (frame[:, :, ::-1] * 255).round().astype(np.uint8))
    return folder


def arguments(run_dir, frames, *extra):
    return [str(run_dir), "--data", str(frames), "--config", str(DATA / "small_config.json"), "--recipe", "style",
            "--vgg_file", str(VGG), "--batch_size", "2", "--crop", "64", "--val_crop", "64", "--val_count", "2",
            "--workers", "0", "--threads", "1", "--no_progress", *extra]


def log_lines(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as file:
        return [json.loads(line) for line in file]


def test_help_explains_layouts_and_recipes(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = capsys.readouterr().out
    for words in ("Vimeo-90K", "tri_trainlist.txt", "triplets", "footage", "style", "1,500,000",
                  "imagenet-vgg-verydeep-19.mat", "torchrun", "resume"):
        assert words in text, words


def test_footage_skips_held_frames_and_scene_cuts_and_keeps_validation_apart(tmp_path):
    folder = write_frames(tmp_path / "clip", 20)
    # Frame 5 holds frame 4; frames 12.. are another scene.
    cv2.imwrite(str(folder / "f005.png"), cv2.imread(str(folder / "f004.png")))
    for i in range(12, 20):
        darker = (cv2.imread(str(folder / f"f{i:03d}.png")).astype(np.float32) * 0.3).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), darker)
    manifest = data.find_triplets([str(folder)], str(tmp_path / "cache"), val_fraction=0.2)
    names = lambda triplets: [[os.path.basename(p)[1:4] for p in t] for t in triplets]
    train_names, val_names = names(manifest["train"]), names(manifest["validation"])
    assert all("005" not in t for t in train_names + val_names)
    frame_number = lambda name: int(name)
    for t in train_names + val_names:  # no triplet spans the cut between 11 and 12
        assert (frame_number(t[0]) < 12) == (frame_number(t[2]) < 12), t
    assert not {p for t in train_names for p in t} & {p for t in val_names for p in t}
    assert train_names[0] == ["000", "001", "002"] and ["003", "004", "006"] in train_names
    assert manifest["sources"][0][1] == "footage"


def test_vimeo_and_triplet_folders(tmp_path):
    vimeo = tmp_path / "vimeo"
    for clip in ("00001/0001", "00001/0002"):
        write_frames(vimeo / "sequences" / clip, 3)
        for i, name in enumerate(sorted(os.listdir(vimeo / "sequences" / clip))):
            os.rename(vimeo / "sequences" / clip / name, vimeo / "sequences" / clip / f"im{i + 1}.png")
    (vimeo / "tri_trainlist.txt").write_text("00001/0001\n")
    (vimeo / "tri_testlist.txt").write_text("00001/0002\n")
    triplets = tmp_path / "triplets"
    for k in range(10):
        write_frames(triplets / f"t{k}", 3, seed=k)
    manifest = data.find_triplets([str(vimeo), str(triplets)], str(tmp_path / "cache"), val_fraction=0.3)
    assert [s[1:] for s in manifest["sources"]][0] == ("vimeo90k", 1, 1)
    assert manifest["sources"][1][1] == "triplet folders"
    assert manifest["sources"][1][2] + manifest["sources"][1][3] == 10 and manifest["sources"][1][3] > 0
    assert manifest["train"][0][1].endswith(os.path.join("0001", "im2.png"))


def test_augmentations_keep_the_triplet_consistent():
    frame = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)
    sample = {"x0": frame, "y": frame + 1, "x1": frame + 2}
    for seed in range(8):
        rng = np.random.default_rng(seed)
        out = augment.random_crop(augment.augment(sample, rng, ["rot90", "flip"]), 32, rng)
        assert out["x0"].shape == (32, 32, 3)
        np.testing.assert_array_equal(out["y"], out["x0"] + 1)
    square = frame[:, 10:50]  # 40x40: a quarter turn about the centre is np.rot90 (counter-clockwise)
    np.testing.assert_allclose(augment.rotate_frame(square, 90.0), np.rot90(square, 1), atol=1e-5)
    reversed_ = augment.augment(sample, np.random.default_rng(1), ["reverse"])
    assert {id(reversed_["x0"]), id(reversed_["x1"])} == {id(sample["x0"]), id(sample["x1"])}


def test_a_short_run_logs_checkpoints_and_exports_a_model_inference_loads(tmp_path, capsys, one_thread):
    frames = write_frames(tmp_path / "clip", 24)
    run_dir = tmp_path / "run"
    status, out, err = run_main(train.main, capsys, *arguments(run_dir, frames, "--steps", "3", "--val_every", "2"))
    assert status == 0, err
    assert "footage" in out and "Validation before" in out and "Validation after" in out
    lines = log_lines(run_dir)
    assert [line["step"] for line in lines if "loss" in line] == [0, 1, 2]
    assert [line["step"] for line in lines if "validation" in line] == [0, 2, 3]
    assert sorted(lines[1]["parts"]) == ["l1", "style", "vgg"]
    assert os.listdir(run_dir / "tensorboard")
    model = runtime.load_model(str(run_dir / "model.pt"))
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 3
    reference = {k: v for k, v in saved["model"].items()}
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    # The exported TorchScript starts another run as it is.
    argv = [str(tmp_path / "again"), "--data", str(frames), "--start", str(run_dir / "model.pt"), "--recipe", "l1",
            "--steps", "1", "--crop", "64", "--val_count", "0", "--workers", "0", "--no_export", "--no_progress"]
    status, out, err = run_main(train.main, capsys, *argv)
    assert status == 0 and f"from {run_dir / 'model.pt'}" in out, err


def test_bad_input_is_one_line(tmp_path, capsys):
    frames = write_frames(tmp_path / "clip", 8)
    assert_refused_cleanly(train.main, capsys, tmp_path, [str(tmp_path / "run"), "--data", str(tmp_path / "none"),
                                                            "--recipe", "l1"], "not found")
    status, _, err = run_main(train.main, capsys, str(tmp_path / "run2"), "--data", str(frames), "--recipe", "vgg")
    assert status == 1 and "--vgg_file" in err and len(err.strip().splitlines()) == 1


def test_resume_after_sigkill_computes_the_same_steps(tmp_path):
    """Kill -9 during a run; the same command resumes at the last checkpoint and logs the same losses, bit for bit."""
    frames = write_frames(tmp_path / "clip", 24)
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    command = lambda run_dir: [sys.executable, str(ROOT / "train.py"), *arguments(
        run_dir, frames, "--steps", "6", "--checkpoint_every", "2", "--val_every", "0", "--no_export")]
    subprocess.run(command(tmp_path / "whole"), check=True, env=environment, capture_output=True, cwd=ROOT)
    whole = [line for line in log_lines(tmp_path / "whole") if "loss" in line]

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), env=environment, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once step 3 (after the checkpoint of step 2) is logged
        if (killed / "log.jsonl").exists() and sum(1 for _ in open(killed / "log.jsonl")) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = torch.load(killed / "checkpoint.pt", weights_only=True)["step"]
    assert 2 <= before < 6
    subprocess.run(command(killed), check=True, env=environment, capture_output=True, cwd=ROOT)
    resumed = [line for line in log_lines(killed) if "loss" in line]
    assert [line["step"] for line in resumed] == list(range(6))
    assert [line["loss"] for line in resumed] == [line["loss"] for line in whole]
    assert [line["parts"] for line in resumed] == [line["parts"] for line in whole]


def test_torchrun_with_two_cpu_processes_logs_the_losses_of_one_process(tmp_path):
    """torchrun --nproc_per_node 2 (gloo): each process takes half of every batch; same losses as one process."""
    frames = write_frames(tmp_path / "clip", 16)
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    runs = {}
    # --standalone: torchrun picks a free port for its rendezvous itself.
    for label, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone",
                                                   "--nproc_per_node", "2"])):
        run_dir = tmp_path / label
        argv = arguments(run_dir, frames, "--steps", "3", "--recipe", "l1", "--val_every", "0", "--no_export")
        result = subprocess.run([sys.executable, *launcher, str(ROOT / "train.py"), *argv], env=environment,
                                capture_output=True, text=True, cwd=ROOT, timeout=180)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[label] = [line["loss"] for line in log_lines(run_dir) if "loss" in line]
    np.testing.assert_allclose(runs["two"], runs["one"], rtol=1e-5)


def test_bf16_autocast_trains_where_native(tmp_path, capsys, one_thread):
    frames = write_frames(tmp_path / "clip", 12)
    status, out, err = run_main(train.main, capsys, *arguments(tmp_path / "run", frames, "--steps", "2", "--recipe",
                                                               "l1", "--precision", "bf16", "--no_export"))
    assert status == 0, err
    native = runtime.native_precision_support(torch.device("cpu"), "bf16")
    assert ("not native" in err) != native
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["settings"]["precision"] == ("bf16" if native else "fp32")
    losses = [line["loss"] for line in log_lines(tmp_path / "run") if "loss" in line]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_sigterm_checkpoints_after_the_step_in_progress(tmp_path):
    frames = write_frames(tmp_path / "clip", 16)
    run_dir = tmp_path / "run"
    argv = arguments(run_dir, frames, "--steps", "1000", "--recipe", "l1", "--checkpoint_every", "0",
                     "--val_every", "0", "--no_export", "--workers", "1")
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while time.time() < deadline and not ((run_dir / "log.jsonl").exists()
                                          and sum(1 for _ in open(run_dir / "log.jsonl")) >= 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    logged = [line["step"] for line in log_lines(run_dir) if "loss" in line]
    assert saved["step"] == logged[-1] + 1 and f"checkpoint of step {saved['step']} written" in err
