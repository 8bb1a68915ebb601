"""The training run: model, data, loss, optimizer, checkpoints, logs, validation and export.

A run lives in one folder (``run_dir``):

- ``checkpoint.pt``: model, optimizer (KerasAdam moments), the next step,
  the settings that decide what is computed, and the RNG states; written
  atomically (a temporary file renamed over the last one) every
  ``checkpoint_every`` steps, at the end, and when SIGINT/SIGTERM/SIGHUP
  arrives (after the step in progress, which is finished first);
- ``manifest.json``: the training and validation triplets (``data``), found
  once, so that a resumed run samples exactly the same list;
- ``log.jsonl``: one JSON line per step (step, total, parts, learning rate)
  and per validation (L1, PSNR); on resume, lines of steps at or after the
  checkpoint's are dropped, so the file reads as one uninterrupted run;
- ``tensorboard/``: the same scalars as TensorBoard event files (a resumed
  run's file starts with TensorBoard's restart marker, so that the steps
  logged after the last checkpoint show once, as in ``log.jsonl``);
- ``model.pt``: at the end, the trained network as our TorchScript (the
  format ``export.py`` writes), which inference.py and evaluate.py load.

Running the same command again resumes from ``checkpoint.pt``. The data of
step s is a function of the seed and s (``data.TripletSampler``) and the
step itself is deterministic on the CPU at a fixed thread count, so a run
killed even with SIGKILL and resumed computes bit for bit the steps that an
uninterrupted run computes (tests/test_train_cli.py).

Several processes (``torchrun --nproc_per_node N train.py ...``, gloo on the
CPU, NCCL on GPUs): each process takes 1/N of every batch and the gradients
are averaged before the step, which gives the gradients of one process on
the combined batch (every loss is a mean over equal shares); process 0
alone logs, validates, checkpoints and exports.
"""
import argparse
import io
import json
import math
import os
import random
import signal
import threading
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
from tqdm import tqdm

import checkpoints
import cli
import convert
from evaluation import metrics
from interpolator import STYLE_CONFIG, Interpolator
from training import augment, data, recipes, step, vgg19
from training.optim import KerasAdam, PiecewiseConstant
from training.tensorboard import EventWriter

CHECKPOINT_FORMAT = "film-training-checkpoint-1"
CHECKPOINT, MANIFEST, LOG, TENSORBOARD, EXPORTED = "checkpoint.pt", "manifest.json", "log.jsonl", "tensorboard", \
    "model.pt"
# Settings that decide what a step computes: a resumed run must have the same ones.
PINNED = ("recipe", "loss_weights", "learning_rate", "decay_steps", "decay_rate", "staircase", "batch_size",
          "crop_size", "augmentations", "seed", "precision", "world_size")


class TrainingError(ValueError):
    """A run cannot start or resume as asked; the message is one line."""


@dataclass
class Settings:
    run_dir: str
    data: List[str]
    start: Optional[str] = None          # a model file, or None: from scratch with ``config``
    config: Optional[dict] = None
    recipe: str = "style"
    loss_weights: Dict[str, list] = field(default_factory=dict)  # name -> [boundaries, values], overrides
    vgg_file: Optional[str] = None
    learning_rate: float = recipes.DEFAULTS["learning_rate"]
    decay_steps: int = recipes.DEFAULTS["decay_steps"]
    decay_rate: float = recipes.DEFAULTS["decay_rate"]
    staircase: bool = True
    steps: int = 1000
    batch_size: int = recipes.DEFAULTS["batch_size"]
    crop_size: int = recipes.DEFAULTS["crop_size"]
    augmentations: List[str] = field(default_factory=lambda: list(augment.AUGMENTATIONS))
    seed: int = 0
    val_fraction: float = 0.1
    frame_gap: int = 1
    scene_threshold: float = 0.2
    dedup_threshold: float = 0.05
    val_every: int = 500
    val_count: int = 32
    val_crop: int = 256
    checkpoint_every: int = 100
    workers: int = 2
    precision: str = "fp32"
    device: str = "cpu"
    export: bool = True
    world_size: int = 1
    progress: bool = True


# --------------------------------------------------------------------------- building blocks

def loss_schedules(settings: Settings) -> Dict[str, PiecewiseConstant]:
    weights = recipes.loss_weights(settings.recipe)
    for name, (boundaries, values) in settings.loss_weights.items():
        weights[name] = PiecewiseConstant(boundaries, values)
    return {name: schedule for name, schedule in weights.items() if any(v != 0 for v in schedule.values)}


def keras_initialised(model: Interpolator, seed: int) -> Interpolator:
    """Keras's default initialisation, as the original starts from: Glorot-uniform kernels, zero biases."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.zero_()
            else:
                out_channels, in_channels, kh, kw = param.shape
                limit = math.sqrt(6.0 / (kh * kw * (in_channels + out_channels)))
                param.copy_(torch.rand(param.shape, generator=generator) * (2 * limit) - limit)
    return model


def starting_model(settings: Settings) -> Interpolator:
    if settings.start:
        if not os.path.isfile(settings.start):
            raise TrainingError(f"start model not found: {settings.start}")
        try:
            return checkpoints.interpolator_from_file(settings.start)
        except checkpoints.CheckpointError as error:
            raise TrainingError(checkpoints.message(settings.start, error)) from None
    try:
        return keras_initialised(Interpolator(**(settings.config or STYLE_CONFIG)), settings.seed)
    except (TypeError, ValueError) as error:
        raise TrainingError(f"bad model configuration {settings.config}: {error}") from None


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR (max value 1) of one image pair, as tf.image.psnr, on the unclipped prediction."""
    return float(metrics.psnr(prediction, target))


@torch.no_grad()
def validate(model, triplets, crop_size: int, count: int, device) -> Optional[Dict[str, float]]:
    if not triplets or count == 0:
        return None
    model.eval()
    l1s, psnrs = [], []
    for batch in data.validation_batches(triplets, crop_size, count):
        batch = {k: v.to(device) for k, v in batch.items()}
        image = model(batch["x0"], batch["x1"], batch["time"])
        l1s.append(float((image - batch["y"]).abs().mean()))
        psnrs.append(psnr(image, batch["y"]))
    return {"l1": float(np.mean(l1s)), "psnr": float(np.mean(psnrs)), "triplets": len(l1s)}


def write_atomically(path: str, payload: bytes) -> None:
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "wb") as file:
        file.write(payload)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def export_torchscript(model: Interpolator, path: str) -> None:
    """Our TorchScript file (as export.py writes it, fp32), written atomically."""
    import export
    stored = Interpolator(**model.config).eval()
    stored.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    temporary = f"{path}.tmp{os.getpid()}"
    export.write(stored, argparse.Namespace(onnx=False, statedict=False, save_path=path), torch.float32, temporary)
    os.replace(temporary, path)


class SignalFlag:
    """While active, SIGINT/SIGTERM/SIGHUP only note their arrival: the step in progress is finished first."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self):
        self.received: Optional[int] = None
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in self.NAMES:
                if hasattr(signal, name):
                    number = getattr(signal, name)
                    self.previous[number] = signal.signal(number, self._note)
        return self

    def _note(self, number, frame):
        self.received = number

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)


class Interrupted(cli.Terminated):
    """Training stopped by a signal after a checkpoint; ``note`` says where. cli prints it and exits
    with 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, signal_number: int, note: str):
        super().__init__(signal_number)
        self.note = note


# --------------------------------------------------------------------------- the run

class Run:
    def __init__(self, settings: Settings, rank: int = 0, world_size: int = 1, log=print):
        self.settings, self.rank, self.world_size, self.log = settings, rank, world_size, log
        self.device = torch.device(settings.device)
        self.main = rank == 0
        missing = [path for path in settings.data if not os.path.exists(path)]
        if missing:
            raise TrainingError(f"training data not found: {missing[0]}")
        self.checkpoint_path = os.path.join(settings.run_dir, CHECKPOINT)
        self.schedules = loss_schedules(settings)
        vgg = None
        if any(name in ("vgg", "style") for name in self.schedules):
            if not settings.vgg_file:
                raise TrainingError(f"the {settings.recipe} recipe needs the VGG-19 weights: --vgg_file "
                                    "imagenet-vgg-verydeep-19.mat (see --help)")
            try:
                vgg = vgg19.VGG19Features.from_file(settings.vgg_file).to(self.device)
            except vgg19.VGGFileError as error:
                raise TrainingError(str(error)) from None
        self.loss = step.WeightedLoss(self.schedules, vgg)
        if settings.start and not os.path.isfile(settings.start):
            raise TrainingError(f"start model not found: {settings.start}")
        os.makedirs(settings.run_dir, exist_ok=True)
        self.learning_rate = recipes.learning_rate(settings.learning_rate, settings.decay_steps, settings.decay_rate,
                                                   settings.staircase)
        self.first_step = 0
        resumed = os.path.isfile(self.checkpoint_path)
        if resumed:
            saved = self._read_checkpoint()
            self.model = convert.interpolator_from_state_dict(saved["model"]).to(self.device)
        else:
            self.model = starting_model(settings).to(self.device)
        self.optimizer = KerasAdam(self.model.parameters(), lr=settings.learning_rate)
        # fp16 needs loss scaling (its smallest normal number is 6e-5); bf16 has fp32's range.
        self.scaler = torch.amp.GradScaler(self.device.type) if settings.precision == "fp16" else None
        if resumed:
            self.optimizer.load_state_dict(saved["optimizer"])
            if self.scaler is not None and saved.get("scaler"):
                self.scaler.load_state_dict(saved["scaler"])
            self.first_step = int(saved["step"])
            self._restore_rng(saved["rng"])
        self.manifest = self._manifest()
        self.sampler = data.TripletSampler(self.manifest["train"], settings.seed, settings.crop_size,
                                           settings.augmentations)
        self.resumed = resumed

    # ----- files

    def _read_checkpoint(self):
        try:
            saved = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise TrainingError(f"cannot read {self.checkpoint_path}: {error}".splitlines()[0]) from None
        if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError(f"{self.checkpoint_path} is not a checkpoint of this trainer")
        mine = asdict(self.settings)
        differing = [k for k in PINNED if saved["settings"].get(k) != mine.get(k)]
        if differing:
            name = differing[0]
            raise TrainingError(f"{self.settings.run_dir} holds a run with {name}={saved['settings'].get(name)!r}, "
                                f"not {mine.get(name)!r}: use the same settings to resume, or another --run_dir")
        return saved

    def _manifest(self):
        path = os.path.join(self.settings.run_dir, MANIFEST)
        if os.path.isfile(path):
            return data.load_manifest(path)
        s = self.settings
        manifest = data.find_triplets(s.data, os.path.join(s.run_dir, "frames"), s.val_fraction, s.frame_gap,
                                      s.scene_threshold, s.dedup_threshold)
        if self.main:
            data.save_manifest(manifest, path)
        return manifest

    def _rng_state(self):
        numpy_state = np.random.get_state()
        return {"torch": torch.get_rng_state(), "python": random.getstate(),
                "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]]}

    def _restore_rng(self, state):
        torch.set_rng_state(state["torch"])
        random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))

    def save_checkpoint(self, next_step: int):
        if not self.main:
            return
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "step": next_step, "settings": asdict(self.settings),
                    "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                    "optimizer": self.optimizer.state_dict(), "rng": self._rng_state(),
                    "scaler": self.scaler.state_dict() if self.scaler is not None else None}, buffer)
        write_atomically(self.checkpoint_path, buffer.getvalue())

    def _open_log(self):
        path = os.path.join(self.settings.run_dir, LOG)
        kept = []
        # The validation of the checkpoint's own step was logged before it was written: kept, and shown
        # again in TensorBoard after the restart marker (which drops everything from that step on).
        self._kept_validations = []
        if os.path.isfile(path):
            with open(path) as file:
                for line in file:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a kill
                    at_checkpoint = entry.get("step") == self.first_step and "validation" in entry
                    if entry.get("step", 0) < self.first_step or at_checkpoint:
                        kept.append(line if line.endswith("\n") else line + "\n")
                    if at_checkpoint:
                        self._kept_validations.append(entry)
        with open(path + ".tmp", "w") as file:
            file.writelines(kept)
        os.replace(path + ".tmp", path)
        return open(path, "a")

    # ----- steps

    def _average_gradients(self):
        import torch.distributed as dist
        for param in self.model.parameters():
            if param.grad is not None:
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                param.grad.div_(self.world_size)

    def _averaged(self, total: float, parts: Dict[str, float]):
        import torch.distributed as dist
        values = torch.tensor([total, *parts.values()], dtype=torch.float64)
        dist.all_reduce(values)
        values /= self.world_size
        return float(values[0]), dict(zip(parts, (float(v) for v in values[1:])))

    def _autocast(self):
        precision = self.settings.precision
        if precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision])

    def train(self) -> Dict[str, object]:
        s = self.settings
        logfile = self._open_log() if self.main else None
        writer = EventWriter(os.path.join(s.run_dir, TENSORBOARD)) if self.main else None
        if self.main and self.first_step > 0:
            # Steps an interrupted run logged after its last checkpoint are computed again: TensorBoard is told
            # to drop them, as _open_log drops them from log.jsonl.
            writer.restart(self.first_step)
            for entry in self._kept_validations:
                for name in ("l1", "psnr"):
                    writer.scalar(f"validation/{name}", entry["validation"][name], self.first_step)
            writer.flush()

        def record(entry, scalars, at):
            if self.main:
                logfile.write(json.dumps(entry) + "\n")
                logfile.flush()
                for tag, value in scalars.items():
                    writer.scalar(tag, value, at)
                writer.flush()

        def run_validation(at):
            if not self.main:
                return None
            result = validate(self.model, self.manifest["validation"], s.val_crop, s.val_count, self.device)
            if result is not None:
                record({"step": at, "validation": result},
                       {"validation/l1": result["l1"], "validation/psnr": result["psnr"]}, at)
            return result

        first_validation = run_validation(self.first_step) if self.first_step == 0 else None
        batches = data.batches(self.sampler, s.batch_size, self.first_step, s.workers, self.rank, self.world_size)
        after_backward = self._average_gradients if self.world_size > 1 else None
        progress = tqdm(total=s.steps, initial=self.first_step, disable=not (self.main and s.progress),
                        dynamic_ncols=True, desc="Training", unit="step")
        last, current = None, self.first_step
        try:
            with SignalFlag() as flag:
                for current in range(self.first_step, s.steps):
                    try:
                        batch = {k: v.to(self.device) for k, v in next(batches).items()}
                    except RuntimeError:
                        if flag.received is None:
                            raise
                        # Ctrl-C reaches the loader's workers too, which then end: stop before this step.
                        self.save_checkpoint(current)
                        raise Interrupted(flag.received, f"checkpoint of step {current} written to "
                                          f"{self.checkpoint_path}; run the same command to resume") from None
                    rate = self.learning_rate(current)
                    with self._autocast():
                        total, parts = step.train_step(self.model, self.optimizer, self.loss, batch, current, rate,
                                                       after_backward, self.scaler)
                    if self.world_size > 1:  # the log shows the combined batch's loss, not process 0's share
                        total, parts = self._averaged(total, parts)
                    if not math.isfinite(total):
                        raise TrainingError(f"the loss is {total} at step {current}: lower --learning_rate")
                    last = {"step": current, "loss": total, "parts": parts, "lr": rate}
                    record(last, {"loss/total": total, "learning_rate": rate,
                                  **{f"loss/{name}": value for name, value in parts.items()}}, current)
                    progress.update(1)
                    progress.set_postfix(loss=f"{total:.4g}", lr=f"{rate:.2g}")
                    done = current + 1
                    if s.val_every and done % s.val_every == 0 and done < s.steps:
                        run_validation(done)
                    if (s.checkpoint_every and done % s.checkpoint_every == 0) or done == s.steps:
                        self.save_checkpoint(done)
                    if flag.received is not None:
                        self.save_checkpoint(done)
                        raise Interrupted(flag.received, f"checkpoint of step {done} written to "
                                          f"{self.checkpoint_path}; run the same command to resume")
            progress.close()
            final_validation = run_validation(s.steps) if self.first_step < s.steps else None
        finally:
            progress.close()
            if self.main:
                logfile.close()
                writer.close()
        exported = None
        if self.main and s.export:
            exported = os.path.join(s.run_dir, EXPORTED)
            export_torchscript(self.model, exported)
        return {"last": last, "first_validation": first_validation, "final_validation": final_validation,
                "exported": exported, "first_step": self.first_step}
