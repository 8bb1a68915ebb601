"""Running a model over a benchmark in several settings at once, into a results.csv that resumes.

Conventions, stated once for this module:

- A *setting* is how the model runs: a precision (fp32, bf16, fp16, always
  the one asked for, emulated where the hardware has no native kernels, since
  what is measured is quality), whether a frame's pyramids and a pair's flows
  go through the stages separately (reuse; the frames are the same as one
  ``forward`` call's), a tile size (``tiling``; tiled models run ``forward``
  per tile), and the padding: ``none`` gives the network the frames as they
  are, as the original's ``eval_cli.py`` does (the network takes any size of
  at least 64x64), ``edge64`` pads them to a multiple of 64 by repeating edge
  pixels as ``inference.py`` does (``runtime.ModelRuntime.to_model``) and
  crops the result back. And the frame schedule's mode (``frame_schedule``),
  which only matters for windows wider than a triplet (``datasets``, span
  K > 2): ``recursive`` (FILM's midpoints; K a power of 2), ``direct`` (each
  frame straight from the window's two inputs at dt = i/K, the flows once)
  or ``balanced``. Every window is run once per setting, through
  ``runtime.run_schedule``: one frame at t = 0.5 for a triplet, as the
  original evaluates, the K - 1 frames between for a wider window.
- What the metrics see is what the original's eval loop gives them: the
  prediction in float32 clipped to [0, 1] (``run_schedule`` clamps; the
  original clips), not rounded to 8 bits; the ground truth as read
  (``datasets``). Metrics: ``metrics.METRIC_NAMES``.
- results.csv is the original's format: a title row ``key, l1, l2, ssim,
  psnr``, one row per example ``<key>, <values>``, and a last row ``mean,
  <means>``, values separated by ``", "`` and written as numpy writes float32
  values (``str(np.float32(v))``, which reads back to the same float32). With
  any other setting than the original's (fp32, reuse, no tiles, no padding,
  exact SSIM sums), or more than one, each metric column is named
  ``<setting>:<metric>`` (e.g. ``bf16:psnr``), settings in the order given,
  so that a file of other settings is never continued by mistake. Means are
  float32 means over every example row of the file (``np.mean``, as the
  original).
- Resuming: rows are appended and flushed to disk one complete example at a
  time. A run finding its output file continues it: the title must be the
  same (else it refuses), rows already there are skipped and kept, a last
  line without its newline (an interrupted write) and an old mean row are
  dropped, and the mean row is written again at the end.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from fractions import Fraction
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

import frame_schedule
import runtime
import tiling
from evaluation import datasets, metrics

PADDINGS = ("none", "edge64")
MODES = frame_schedule.SCHEDULE_MODES
DEFAULT_MODE = "recursive"   # FILM's own; for a triplet every mode makes the one midpoint
MEAN_KEY = "mean"
SEPARATOR = ", "


class ResultsFileError(datasets.MediaError):
    """An existing results file that this run cannot continue; one line."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way of running the model (module docstring)."""

    precision: str = "fp32"
    reuse: bool = True
    tile: Optional[int] = None
    padding: str = "none"
    mode: str = DEFAULT_MODE
    ssim_sums: str = "exact"     # metrics.SSIM_SUMS

    @property
    def label(self) -> str:
        """``fp32``, ``bf16+noreuse``, ``fp16+tile256+edge64+direct``: the precision, then what differs from
        the default."""
        parts = [self.precision]
        if self.tile is not None:
            parts.append(f"tile{self.tile}")  # tiled models run forward(): reuse does not apply
        elif not self.reuse:
            parts.append("noreuse")
        if self.padding != "none":
            parts.append(self.padding)
        if self.mode != DEFAULT_MODE:
            parts.append(self.mode)
        if self.ssim_sums != "exact":
            parts.append("tfcpu_ssim")
        return "+".join(parts)


def check_modes(modes: Sequence[str], span: int) -> None:
    """ValueError unless every mode can make the frames of a window of ``span`` (recursive: span a power of 2)."""
    if span > 2 and "recursive" in modes and span & (span - 1):
        raise ValueError(f"--mode recursive makes frames at multiples of 1/2^D only: --span {span} needs "
                         f"--mode direct or balanced, or a span that is a power of 2")


def make_settings(precisions: Sequence[str], reuses: Sequence[bool], tiles: Sequence[Optional[int]],
                  paddings: Sequence[str], modes: Sequence[str] = (DEFAULT_MODE,), span: int = 2,
                  ssim_sums: str = "exact") -> List[Setting]:
    """Every combination, in the order given (precision slowest), without ones that run alike (for a
    triplet, span 2, every mode is the one midpoint)."""
    check_modes(modes, span)
    settings: Dict[str, Setting] = {}
    for precision, tile, padding, reuse, mode in itertools.product(precisions, tiles, paddings, reuses, modes):
        setting = Setting(precision, reuse if tile is None else False, tile, padding,
                          mode if span > 2 else DEFAULT_MODE, ssim_sums)
        settings.setdefault(setting.label, setting)
    return list(settings.values())


def column_names(settings: Sequence[Setting]) -> List[str]:
    if len(settings) == 1 and settings[0] == Setting():
        return list(metrics.METRIC_NAMES)
    return [f"{setting.label}:{name}" for setting in settings for name in metrics.METRIC_NAMES]


def format_value(value: float) -> str:
    return str(np.float32(value))


# --------------------------------------------------------------------------- results.csv

class ResultsFile:
    """results.csv being written: the rows already there, and appending one complete row at a time."""

    def __init__(self, path: str, columns: Sequence[str]):
        self.path = path
        self.columns = list(columns)
        self.title = SEPARATOR.join(["key", *self.columns])
        self.rows: Dict[str, List[float]] = {}
        self._kept_lines = self._read_existing()  # reading only: nothing changes before ``open``
        self._existed = os.path.exists(path)
        self._file = None

    def open(self) -> None:
        """Start writing: what is kept is written anew through a temporary file, so that a dropped
        partial line or old mean row is gone before anything is appended."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as text:
            text.write("".join(line + "\n" for line in [self.title, *self._kept_lines]))
            text.flush()
            os.fsync(text.fileno())
        os.replace(temporary, self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def _read_existing(self) -> List[str]:
        if not os.path.exists(self.path):
            return []
        if os.path.isdir(self.path):
            raise ResultsFileError(f"--output is a folder: {self.path}")
        with open(self.path, encoding="utf-8") as text:
            content = text.read()
        lines = content.split("\n")
        complete = lines[:-1]  # the last piece has no newline: empty, or a partial row
        if not complete:
            return []  # empty, or only a partial title
        if complete[0] != self.title:
            raise ResultsFileError(f"{self.path} holds other columns ({complete[0]!r}), not {self.title!r}: "
                                   f"give another --output, or remove it to start again")
        kept = []
        for line in complete[1:]:
            key, values = self._parse(line)
            if key == MEAN_KEY:
                continue  # written again at the end
            if key in self.rows:
                raise ResultsFileError(f"{self.path} has two rows for {key}: remove it to start again")
            self.rows[key] = values
            kept.append(line)
        return kept

    def _parse(self, line: str) -> Tuple[str, List[float]]:
        # From the right: a key may hold the separator, values never do.
        pieces = line.rsplit(SEPARATOR, len(self.columns))
        try:
            if len(pieces) != len(self.columns) + 1:
                raise ValueError
            return pieces[0], [float(value) for value in pieces[1:]]
        except ValueError:
            raise ResultsFileError(f"{self.path} has a row this program did not write: {line[:80]!r}; "
                                   f"give another --output, or remove it to start again") from None

    def append(self, key: str, values: Sequence[float]) -> None:
        """One example's row, on disk before this returns."""
        self._file.write(SEPARATOR.join([key, *map(format_value, values)]) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows[key] = [float(np.float32(value)) for value in values]

    def means(self) -> List[float]:
        table = np.array(list(self.rows.values()), dtype=np.float32)
        return [float(np.mean(column)) for column in table.T]

    def finish(self) -> List[float]:
        """The mean row, written last; returns the means."""
        means = self.means() if self.rows else [float("nan")] * len(self.columns)
        if self.rows:
            self._file.write(SEPARATOR.join([MEAN_KEY, *map(format_value, means)]) + "\n")
        self.close()
        return means

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def abandon(self) -> None:
        """After a failure: closed; removed if this run created it and wrote no row (nothing partial left)."""
        self.close()
        if self._file is not None and not self._existed and not self.rows:
            os.remove(self.path)


# --------------------------------------------------------------------------- running

@dataclasses.dataclass
class SettingStats:
    seconds: float = 0.0      # in the model, this run
    examples: int = 0         # run this run


class Evaluation:
    """The loaded models of a run's settings; ``predict`` makes one window's frames in one setting."""

    def __init__(self, model_path: str, settings: Sequence[Setting], options: runtime.RuntimeOptions,
                 frame_size: Tuple[int, int], span: int = 2):
        self.settings = list(settings)
        self.options = options
        self.models: Dict[str, runtime.ModelRuntime] = {}
        # The K - 1 frames between a window's inputs; for K = 2 the one midpoint the original evaluates.
        self.schedules = {setting.mode: frame_schedule.make_schedule(setting.mode, span - 1) for setting in settings}
        for precision in dict.fromkeys(setting.precision for setting in settings):
            # Untiled here; each example's size decides the tiling (``_model_for``).
            loaded = runtime.open_model(model_path, dataclasses.replace(options, precision=precision, tile=None),
                                        frame_size=frame_size, native_only=False)
            model = loaded.model.model if isinstance(loaded.model, tiling.TiledInterpolator) else loaded.model
            self.models[precision] = runtime.ModelRuntime(model, loaded.device, loaded.dtype)

    def _model_for(self, setting: Setting, height: int, width: int) -> torch.nn.Module:
        base = self.models[setting.precision]
        return runtime.apply_tiling(base.model, height, width, setting.tile, self.options.max_memory_gb,
                                    base.dtype, base.device)

    def predict(self, setting: Setting, first: np.ndarray, second: np.ndarray,
                times: Sequence[Fraction] = (Fraction(1, 2),)) -> Dict[Fraction, torch.Tensor]:
        """The (1, 3, H, W) float32 predictions at ``times``, clipped to [0, 1], cropped to the frames' size."""
        base = self.models[setting.precision]
        if setting.padding == "edge64":
            first_tensor, crop = base.to_model(first)
            second_tensor, _ = base.to_model(second)
        else:
            first_tensor = runtime.image_to_tensor(first).to(device=base.device, dtype=base.dtype)
            second_tensor = runtime.image_to_tensor(second).to(device=base.device, dtype=base.dtype)
            crop = runtime.CropBox(0, 0, *first.shape[:2])
        model = self._model_for(setting, *first_tensor.shape[-2:])
        reuse = setting.reuse and runtime.supports_reuse(model)
        schedule = self.schedules[setting.mode]
        top, left, height, width = crop
        wanted, made = set(times), {}
        for slot, frame in runtime.run_schedule(model, runtime.ModelFrame(first_tensor),
                                                runtime.ModelFrame(second_tensor), schedule, reuse):
            if schedule.times[slot] in wanted:
                made[schedule.times[slot]] = frame[:, :, top:top + height, left:left + width].float().cpu()
        missing = wanted.difference(made)
        if missing:  # check_modes refuses the spans for which a mode cannot make every time
            raise ValueError(f"the {setting.mode} schedule made no frame at t = {min(missing)}")
        return made


def save_frame(folder: str, setting: Setting, key: str, prediction: torch.Tensor) -> None:
    """The prediction as an 8-bit PNG at FOLDER/<setting>/<key>.png, written whole or not at all."""
    import cv2

    path = os.path.join(folder, setting.label, *key.split("/")) + ".png"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    samples = runtime.tensor_to_samples(prediction, runtime.CropBox(0, 0, *prediction.shape[-2:]))
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(samples[:, :, ::-1]))
    if not ok:
        raise OSError(f"cannot encode {path}")
    temporary = f"{path}.{os.getpid()}.tmp"
    encoded.tofile(temporary)
    os.replace(temporary, path)


def _windows(examples: Sequence[datasets.Example]) -> List[List[datasets.Example]]:
    """The examples grouped by their two inputs, in order (``datasets`` lists a window's examples together)."""
    return [list(group) for _, group in itertools.groupby(examples, key=lambda example: example.window)]


def evaluate(model_path: str, benchmark_name: str, examples: Sequence[datasets.Example],
             settings: Sequence[Setting], options: runtime.RuntimeOptions, output: str,
             max_examples: Optional[int] = None, save_frames: Optional[str] = None, show_progress: bool = True,
             span: int = 2):
    """Run every setting on the first ``max_examples`` of ``examples`` (all of the benchmark's) not yet in
    ``output``, window by window; returns (means per setting, time per setting, the results file)."""
    benchmark = datasets.BENCHMARKS[benchmark_name]
    results = ResultsFile(output, column_names(settings))
    stats = {setting.label: SettingStats() for setting in settings}
    try:
        known = {example.key for example in examples}
        foreign = next((key for key in results.rows if key not in known), None)
        if foreign is not None:
            raise ResultsFileError(f"{output} has a row for {foreign}, which is not an example of this "
                                   f"{benchmark_name} folder{f' with --span {span}' if span != 2 else ''}: "
                                   f"give another --output")
        selected = examples if max_examples is None else examples[:max_examples]
        windows = _windows([example for example in selected if example.key not in results.rows])
        evaluation, first_frames = None, None
        if windows:  # the model is loaded before the output is touched: a bad model file leaves nothing
            first_frames = datasets.load_window(windows[0], benchmark)
            evaluation = Evaluation(model_path, settings, options, first_frames[0].shape[:2], span)
        results.open()
        with tqdm(total=sum(map(len, windows)), desc="Evaluating", unit="example", disable=not show_progress,
                  dynamic_ncols=True) as progress:
            for window in windows:
                if first_frames is not None:
                    (first, second, truths), first_frames = first_frames, None
                else:
                    first, second, truths = datasets.load_window(window, benchmark)
                targets = [runtime.image_to_tensor(truth) for truth in truths]
                values: List[List[float]] = [[] for _ in window]
                for setting in settings:
                    started = time.perf_counter()
                    predictions = evaluation.predict(setting, first, second, [example.time for example in window])
                    stats[setting.label].seconds += time.perf_counter() - started
                    stats[setting.label].examples += len(window)
                    for example, target, row in zip(window, targets, values):
                        scores = metrics.evaluate_metrics(predictions[example.time], target, setting.ssim_sums)
                        row.extend(scores[name] for name in metrics.METRIC_NAMES)
                        if save_frames:
                            save_frame(save_frames, setting, example.key, predictions[example.time])
                for example, row in zip(window, values):
                    results.append(example.key, row)
                progress.update(len(window))
    except BaseException as error:
        results.abandon()
        if isinstance(error, KeyboardInterrupt) and results.rows:
            error.note = (f"{cli_count(len(results.rows))} kept in {output}: run the same command again "
                          f"to continue")
        raise
    means = results.finish()
    per_setting = {setting.label: dict(zip(metrics.METRIC_NAMES, means[i * len(metrics.METRIC_NAMES):
                                                                      (i + 1) * len(metrics.METRIC_NAMES)]))
                   for i, setting in enumerate(settings)}
    return per_setting, stats, results


def cli_count(rows: int) -> str:
    return f"{rows} example row{'' if rows == 1 else 's'}"


def format_table(benchmark_title: str, per_setting: Dict[str, Dict[str, float]], stats: Dict[str, SettingStats],
                 rows: int) -> str:
    """The means per setting, with PSNR and SSIM relative to the first setting and seconds per example."""
    labels = list(per_setting)
    baseline = per_setting[labels[0]]
    header = f"{'setting':<22} {'PSNR dB':>9} {'SSIM':>8} {'L1':>9} {'L2':>10} {'dPSNR':>8} {'dSSIM':>9} {'s/ex':>7}"
    lines = [f"{benchmark_title}: means over {rows} examples", header, "-" * len(header)]
    for label in labels:
        values = per_setting[label]
        stat = stats[label]
        seconds = f"{stat.seconds / stat.examples:7.2f}" if stat.examples else f"{'-':>7}"
        lines.append(f"{label:<22} {values['psnr']:9.4f} {values['ssim']:8.5f} {values['l1']:9.6f} "
                     f"{values['l2']:10.7f} {values['psnr'] - baseline['psnr']:+8.4f} "
                     f"{values['ssim'] - baseline['ssim']:+9.6f} {seconds}")
    return "\n".join(lines)

