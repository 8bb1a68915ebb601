"""TensorBoard's own reader (EventAccumulator) reads train.py's event files: tags, steps and values as
log.jsonl has them, also across a resume. Skipped where tensorboard is not installed (it is not a
requirement: training.tensorboard writes the files without it).

Small network, 64x64 crops, one thread; a few seconds.
"""
import json
import os

import numpy as np
import pytest

import train
from conftest import DATA, run_main
from training import demo_footage, loop

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(folder):
    """{tag: [(step, value)]} as TensorBoard shows the folder (every event file in it, orphans purged)."""
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def logged(run_dir):
    """{tag: [(step, value as float32)]} from log.jsonl, named as train.py names the scalars."""
    expected = {}
    with open(os.path.join(run_dir, "log.jsonl")) as file:
        for line in file:
            entry = json.loads(line)
            if "validation" in entry:
                values = {f"validation/{k}": entry["validation"][k] for k in ("l1", "psnr")}
            else:
                values = {"loss/total": entry["loss"], "learning_rate": entry["lr"],
                          **{f"loss/{name}": value for name, value in entry["parts"].items()}}
            for tag, value in values.items():
                expected.setdefault(tag, []).append((entry["step"], float(np.float32(value))))
    return expected


def arguments(run_dir, folder, *extra):
    return [str(run_dir), "--data", str(folder), "--config", str(DATA / "small_config.json"), "--recipe", "l1",
            "--loss_weight", "l2=1", "--batch_size", "2", "--crop", "64", "--val_crop", "64", "--val_count", "2",
            "--workers", "0", "--threads", "1", "--no_progress", "--no_export", *extra]


@pytest.fixture
def pans(tmp_path):
    folder = tmp_path / "pans"
    demo_footage.write_vimeo(str(folder), 2, speeds=(2.0, 3.0), size=(64, 64), seed=1, train=6)
    return folder


def test_tensorboard_reads_the_scalars_train_py_logs(tmp_path, capsys, one_thread, pans):
    run_dir = tmp_path / "run"
    status, _, err = run_main(train.main, capsys, *arguments(run_dir, pans, "--steps", "4", "--val_every", "2"))
    assert status == 0, err
    shown, expected = scalars(run_dir / "tensorboard"), logged(run_dir)
    assert sorted(shown) == ["learning_rate", "loss/l1", "loss/l2", "loss/total", "validation/l1", "validation/psnr"]
    assert [step for step, _ in shown["loss/total"]] == [0, 1, 2, 3]
    assert [step for step, _ in shown["validation/psnr"]] == [0, 2, 4]
    assert shown == expected
    assert all(value > 0 for _, value in shown["loss/l2"]) and shown["learning_rate"][0][1] == np.float32(1e-4)


def test_after_a_resume_tensorboard_shows_each_step_once(tmp_path, capsys, one_thread, pans, monkeypatch):
    """A run killed after logging steps past its last checkpoint: the resumed run's file tells TensorBoard
    (SessionLog START at the resumed step) to drop the orphaned steps, as log.jsonl drops them."""
    run_dir = tmp_path / "run"
    save = loop.Run.save_checkpoint
    # As a kill after step 3 would leave it: steps 0-3 logged, the last checkpoint the one of step 2.
    monkeypatch.setattr(loop.Run, "save_checkpoint", lambda self, at: save(self, at) if at <= 2 else None)
    argv = arguments(run_dir, pans, "--steps", "4", "--checkpoint_every", "2", "--val_every", "2")
    assert run_main(train.main, capsys, *argv)[0] == 0
    monkeypatch.setattr(loop.Run, "save_checkpoint", save)
    status, out, err = run_main(train.main, capsys, *arguments(run_dir, pans, "--steps", "5", "--checkpoint_every",
                                                               "2", "--val_every", "2"))
    assert status == 0 and "resumed at step 2" in out, err
    shown, expected = scalars(run_dir / "tensorboard"), logged(run_dir)
    assert [step for step, _ in shown["loss/total"]] == [0, 1, 2, 3, 4]
    assert [step for step, _ in shown["validation/l1"]] == [0, 2, 4, 5]
    assert shown == expected
