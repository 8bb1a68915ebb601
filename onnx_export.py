"""Our network as an ONNX model, for ONNX Runtime and TensorRT.

The model takes ``x0``, ``x1`` (B, 3, H, W) float32 RGB in [0, 1] and ``dt``
(B, 1) float32, and returns ``image`` (B, 3, H, W): ``Interpolator.forward``.
Batch, height and width are dynamic. H and W need not be multiples of 64: the
network computes the original's function at any size, as ours does; they
must be at least ``min_size`` (2 ** pyramid_levels, 128 for the released
models), where the coarsest level is 2 px or more. (PyTorch's exporter
cannot keep 1-px levels symbolic: its layout checks fix them.) Our
programs pad frames to a multiple of 64 by repeating edge pixels
(``runtime.pad_to_multiple``); pad the same way to get the same frames.

The graph is traced from the eager network with two settings:

- the GPU branches (``util.device_branches('cuda')``): the warp is
  ``grid_sample`` (ONNX GridSample, bilinear, border, align_corners), not
  the CPU path's embedding_bag gather, which ONNX has no op for;
- ``torch.compiler.is_exporting()``, under which ``util``/``fusion`` take one
  path for every size: ``torch.cat`` rather than writes into a preallocated
  buffer, the fusion's literal nearest upsampling + 2x2 conv rather than its
  per-parity decomposition (which holds only at even sizes), and no
  channels_last layout (whose stride checks would fix the sizes).

Opset ``OPSET`` = 18: GridSample needs 16 or later, and 18 is the opset of
the exporter's own op library (it cannot convert down to 17: onnx's version
converter has no Pad adapter), read by TensorRT 10's ONNX parser; 20 would
rename GridSample's mode. Every op in the graph is in ``TENSORRT_OPS``.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import List, Optional, Sequence

import numpy as np
import torch

import util
from interpolator import Interpolator
from media.errors import first_line

OPSET = 18
INPUT_NAMES = ("x0", "x1", "dt")
OUTPUT_NAME = "image"
# Ops that TensorRT's ONNX parser implements (onnx-tensorrt operators.md);
# an exported graph must use no other (checked by ``check_ops``).
TENSORRT_OPS = frozenset({
    "Add", "AveragePool", "Cast", "Concat", "Constant", "Conv", "Div", "Expand", "Gather", "GatherND",
    "GridSample", "Identity", "LeakyRelu", "Max", "Min", "Mul", "Pad", "Range", "Reshape", "Resize", "Shape",
    "Slice", "Squeeze", "Sub", "Transpose", "Unsqueeze", "Where", "Floor", "Clip", "Neg", "Equal", "Less",
    "Greater", "Not", "And", "Or", "ReduceSum", "ConstantOfShape", "Tile",
})


class OnnxExportError(ValueError):
    """The network could not be exported or its ONNX model fails a check; one line."""


def min_size(config) -> int:
    """The smallest height and width the exported model takes (coarsest level of 2 px)."""
    return 2 ** int(config["pyramid_levels"])


def graph_network(model: Interpolator) -> Interpolator:
    """A float32 copy of ``model`` with contiguous weights (a layout is no part of the graph)."""
    copy = Interpolator(**model.config).eval()
    copy.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    return copy.to(memory_format=torch.contiguous_format)


@contextlib.contextmanager
def _exporter_quiet():
    """The exporter's progress lines, warnings and log records (e.g. no torchvision) kept off the terminal."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model: Interpolator, path: str) -> None:
    """Writes ``model`` as a self-contained ONNX file (fp32 weights inside) with dynamic B, H, W."""
    try:
        import onnxscript  # noqa: F401 (torch.onnx's exporter needs it)
        import onnx  # noqa: F401
    except ImportError:
        raise OnnxExportError("writing ONNX needs the onnx and onnxscript packages: "
                              "pip install onnx onnxscript onnxruntime") from None
    network = graph_network(model)
    smallest = min_size(model.config)
    # Batch 2 and sizes above the minimum: an example dimension of 1, or equal
    # to a bound, would be fixed in the graph.
    height, width = smallest + 8, smallest + smallest // 2
    x0 = torch.rand(2, 3, height, width)
    x1 = torch.rand(2, 3, height, width)
    dt = torch.full((2, 1), 0.5)
    batch = torch.export.Dim("batch", min=1)
    frame_height = torch.export.Dim("height", min=smallest)
    frame_width = torch.export.Dim("width", min=smallest)
    frames = {0: batch, 2: frame_height, 3: frame_width}
    try:
        with util.device_branches("cuda"), torch.no_grad(), _exporter_quiet():
            program = torch.onnx.export(network, (x0, x1, dt), input_names=list(INPUT_NAMES),
                                        output_names=[OUTPUT_NAME], opset_version=OPSET, dynamo=True,
                                        dynamic_shapes={"x0": frames, "x1": frames, "dt": {0: batch}},
                                        external_data=False, optimize=True)
            program.save(path, external_data=False)
    except OnnxExportError:
        raise
    except Exception as error:
        raise OnnxExportError(f"the ONNX export failed: {first_line(error)}") from None
    check_ops(path)


def op_types(path: str) -> List[str]:
    """The graph's op types, sorted (one each)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    return sorted({node.op_type for node in model.graph.node})


def opset(path: str) -> int:
    import onnx
    model = onnx.load(path, load_external_data=False)
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def check_ops(path: str) -> None:
    others = sorted(set(op_types(path)) - TENSORRT_OPS)
    if others:
        raise OnnxExportError(f'the ONNX graph uses ops outside the TensorRT set: {", ".join(others)}')


def session(path: str, threads: Optional[int] = None):
    """An ONNX Runtime CPU session of the file."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxExportError("running ONNX needs onnxruntime: pip install onnxruntime") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def run(onnx_session, x0, x1, dt) -> np.ndarray:
    """The interpolated frames (B, 3, H, W) for numpy or torch inputs."""
    feeds = {}
    for name, value in zip(INPUT_NAMES, (x0, x1, dt)):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().float().numpy()
        feeds[name] = np.ascontiguousarray(value, dtype=np.float32)
    return onnx_session.run([OUTPUT_NAME], feeds)[0]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max|actual - expected| / max|expected|."""
    return float(np.abs(actual - expected).max() / max(float(np.abs(expected).max()), 1e-12))


def describe(path: str) -> str:
    """'opset 18, 21 op types: Add, ...' for reports."""
    ops: Sequence[str] = op_types(path)
    return f'opset {opset(path)}, {len(ops)} op types: {", ".join(ops)}'
