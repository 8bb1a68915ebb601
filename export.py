"""Converts a FILM model into our TorchScript, a state dict or an ONNX model.

    python export.py MODEL_PATH SAVE_PATH [--statedict | --onnx] [--fp32] [--skiptest] [--gpu] [--verbose]

MODEL_PATH is one of Google's TF2 SavedModel folders (e.g.
``pretrained_models/film_net/Style/saved_model``; TensorFlow is imported for
these only), or a weight file: a state dict (.safetensors, .pt, .pth) in our
names, ComfyUI core's or the original PyTorch port's, fp16 or fp32, or a
TorchScript file of ours or of that port (``checkpoints.py``). SavedModel
variables are mapped to PyTorch parameters by name (``convert.py``), and in
every case the architecture is inferred from the tensor shapes. Unless
``--skiptest`` is given, the TF model and the converted network run on the
same frames at t = 0.5, at a size that is not a multiple of 64, and the image
and every flow level are compared; from a weight file, what was written
(TorchScript, ONNX in ONNX Runtime, or the state dict read back) is compared
with our network built from the file. The export fails, writing nothing,
when an error is above the tolerance.

The original model returns a dict whose image outputs are tensors and whose
flow pyramids are Python lists of tensors (finest level first); they are
compared level by level under the names ``<pyramid>/<level>``, which is also
how ``Interpolator.debug_forward`` names them.

The output is written to a hidden temporary file beside SAVE_PATH (created,
with any missing folders, before TensorFlow is loaded, so an unwritable path
fails at once) and renamed into place at the end. TensorFlow's own log lines
are hidden unless ``--verbose``.
"""
import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from typing import Dict, Mapping

import cli  # first: it sets how OpenMP threads wait before torch loads
import numpy as np
import torch

import checkpoints
import convert
import media.destination
from media.errors import first_line
from interpolator import Interpolator

# Largest accepted max|pt - tf| / max|tf| of the fp32 network, per output. On
# the reference vectors a float32 port lands near 1e-5 (summation order in the
# convolutions); real weights and larger frames accumulate a little more. A
# conversion mistake (wrong tensor, layout or order) is far above 1e-3.
FP32_TOLERANCE = 1e-4
# The same bound for the network with its weights rounded to the saved dtype
# (fp16: ~1e-3 measured on random weights), computed in fp32.
ROUNDED_WEIGHTS_TOLERANCE = 1e-2
# Not a multiple of 64 (nor of 2 at the coarsest levels): where ports that
# pad or resize differently from the original go wrong.
TEST_SIZE = (270, 480)
# The ONNX model is also run at this size with two frames, against our
# network: its batch, height and width are really dynamic.
SECOND_TEST_SIZE = (200, 328)
COMPARED_OUTPUTS = ("image", "forward_residual_flow_pyramid", "backward_residual_flow_pyramid",
                    "forward_flow_pyramid", "backward_flow_pyramid")


class ExportError(cli.UserError):
    """A problem with the input or the conversion, reported as one line."""


DESCRIPTION = ("Convert a FILM TF2 SavedModel (Style, L1 or VGG), or a FILM weight file\n"
               "(ours, ComfyUI's film_net_fp16.safetensors, the original PyTorch port's),\n"
               "into a TorchScript file (fp16 by default), a state dict or an ONNX model,\n"
               "checking it against TensorFlow or against our network.")

EPILOG = f"""\
self-test:
  TensorFlow and the converted network render the same {TEST_SIZE[1]}x{TEST_SIZE[0]} frames
  at t = 0.5 (a size that is not a multiple of 64 on purpose); for the image
  and every level of the four flow pyramids, max|pt - tf| / max|tf| is
  printed and must be at most --tolerance. With fp16 weights (the default)
  the network with its weights rounded to fp16 is checked too, against
  {ROUNDED_WEIGHTS_TOLERANCE:g}. With --onnx, ONNX Runtime runs the written model at
  that size (against TensorFlow) and on two {SECOND_TEST_SIZE[1]}x{SECOND_TEST_SIZE[0]} frames (against
  our network). From a weight file, what was written is compared with our
  network built from the file. If any check fails, nothing is written.

output:
  SAVE_PATH is a file name; missing folders are created. The file is written
  under a hidden temporary name beside it and renamed at the end, so a failed
  or interrupted export leaves nothing behind.

exit status: 0 on success, 1 on a problem with the files or the conversion,
2 on bad arguments, 130 when interrupted (143 on SIGTERM, 129 on SIGHUP)."""


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser("export.py", DESCRIPTION, EPILOG)
    parser.add_argument("model_path", help="folder of the TF2 SavedModel (holds saved_model.pb and variables/), "
                                           "or a FILM weight file (.safetensors, .pt, .pth; see docs/formats.md)")
    parser.add_argument("save_path", help="the file to write (missing folders are created)")
    written = parser.add_mutually_exclusive_group()
    written.add_argument("--statedict", action="store_true",
                         help="write a state dict instead of TorchScript: safetensors when SAVE_PATH ends in "
                              ".safetensors, else torch.save; inference.py reads both")
    written.add_argument("--onnx", action="store_true",
                         help="write an ONNX model (fp32, opset 18, dynamic batch/height/width, dt an input) "
                              "for ONNX Runtime or TensorRT")
    parser.add_argument("--fp32", action="store_true", help="keep full precision (default: fp16 weights)")
    parser.add_argument("--skiptest", action="store_true",
                        help="skip the self-test (the comparison with TensorFlow or our network)")
    cli.add_gpu_argument(parser, "also run the self-test on a GPU (CUDA or Apple MPS) when one is there, "
                                 "in the saved precision (reported, not enforced)")
    parser.add_argument("--pyramid_levels", type=cli.whole_number(1), default=None,
                        help="image pyramid depth; the only setting weights do not reveal "
                             "(default: 7, the released models', or what a state dict of ours records)")
    parser.add_argument("--tolerance", type=cli.positive_number(), default=FP32_TOLERANCE,
                        help="largest accepted max|pt - tf| / max|tf| of any compared output "
                             "(default %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    return parser


@contextlib.contextmanager
def native_stderr_hidden(hidden: bool):
    """Hides what native libraries (TensorFlow's C++ logging) write to file descriptor 2.

    TF writes its start-up and oneDNN notices from C++, where no Python
    setting or environment variable reliably reaches (TF 2.21 prints them
    through absl before TF_CPP_MIN_LOG_LEVEL is read), so the descriptor
    itself is pointed at a scratch file for the duration.
    """
    if not hidden:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def check_model_folder(model_path: str) -> None:
    if not os.path.isdir(model_path):
        if os.path.exists(model_path):
            raise ExportError(f"{model_path} is not a folder: give the SavedModel folder (it holds saved_model.pb)")
        raise ExportError(f"{model_path} is not a folder (not found)")
    if not any(os.path.isfile(os.path.join(model_path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
        raise ExportError(f"{model_path} is not a TF SavedModel (no saved_model.pb in it)")


def open_destination(save_path: str) -> media.destination.Destination:
    """The hidden temporary file beside save_path (folders created), or a one-line error."""
    if save_path.endswith(("/", os.sep)) or os.path.isdir(save_path):
        raise ExportError(f'save_path {save_path} names a folder: give a file name, '
                          f'e.g. {os.path.join(save_path, "film_net.pt")}')
    return media.destination.Destination(save_path, is_folder=False)


def load_saved_model(model_path: str):
    """(loaded SavedModel, {variable name: array})."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise ExportError("TensorFlow is needed to read a SavedModel: pip install tensorflow-cpu") from None
    try:
        loaded = tf.saved_model.load(model_path)
    except Exception as error:  # TF raises many types; the first line says what is wrong
        raise ExportError(f"cannot load {model_path}: {first_line(error)}") from None
    # Google's files were written by Keras 2: its variable list is the complete
    # one. Other SavedModels: every variable reachable from the root object.
    keras_api = getattr(loaded, "keras_api", None)
    if keras_api is not None:
        variables = keras_api.variables
    else:
        variables = [t for t in tf.train.TrackableView(loaded).descendants() if isinstance(t, tf.Variable)]
    arrays = {}
    for variable in variables:
        if variable.name in arrays:
            raise ExportError(f"variable {variable.name} appears twice")
        arrays[variable.name] = variable.numpy()
    if not arrays:
        raise ExportError(f"{model_path} holds no variables")
    return loaded, arrays


def test_frames(height, width, seed=0):
    """A textured frame and the same frame moved by (5, 3) px: real structure and motion."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, height // 16, width // 16), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    detail = torch.from_numpy(rng.random((1, 3, height, width), dtype=np.float32))
    x0 = (0.8 * smooth + 0.2 * detail).clamp(0, 1)
    x1 = torch.roll(x0, shifts=(3, 5), dims=(2, 3))
    return x0, x1


def flatten_outputs(outputs: Mapping) -> Dict[str, np.ndarray]:
    """The SavedModel's outputs as {name: array}, a list output ``name`` becoming ``name/0``, ``name/1`` ..."""
    flat = {}
    for key, value in outputs.items():
        if isinstance(value, (list, tuple)):
            for level, tensor in enumerate(value):
                flat[f"{key}/{level}"] = np.asarray(tensor)
        else:
            flat[key] = np.asarray(value)
    return flat


def run_tensorflow(loaded, x0, x1) -> Dict[str, np.ndarray]:
    import tensorflow as tf
    nhwc = lambda t: tf.constant(t.permute(0, 2, 3, 1).numpy())
    try:
        outputs = loaded({"x0": nhwc(x0), "x1": nhwc(x1), "time": tf.constant([[0.5]], tf.float32)},
                         training=False)
    except Exception as error:
        raise ExportError(f'the SavedModel cannot be called like FILM\'s ({{"x0", "x1", "time"}} in): '
                          f'{first_line(error)}') from None
    if not isinstance(outputs, Mapping) or "image" not in outputs:
        raise ExportError('the SavedModel does not return a dict with an "image" output')
    return flatten_outputs(outputs)


def is_compared(key: str) -> bool:
    return key.split("/")[0] in COMPARED_OUTPUTS


def compare(tf_outputs: Mapping[str, np.ndarray], torch_outputs: Mapping[str, torch.Tensor]) -> Dict[str, float]:
    """{output: max|pt - tf| / max|tf|} for the image and every flow level the TF model returns."""
    errors = {}
    for key, expected in tf_outputs.items():
        if not is_compared(key):
            continue
        if key not in torch_outputs:
            raise ExportError(f"TF output {key} has no PyTorch counterpart (different pyramid_levels?)")
        actual = torch_outputs[key].float().permute(0, 2, 3, 1).cpu().numpy()
        if actual.shape != expected.shape:
            raise ExportError(f"{key}: PyTorch gives {actual.shape}, TF {expected.shape} "
                              f"(is --pyramid_levels right?)")
        errors[key] = float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))
    if not any(key.startswith("image") for key in errors) or len(errors) < 2:
        raise ExportError(f'the SavedModel returns no flow pyramids to compare (outputs: {", ".join(tf_outputs)})')
    return errors


def print_errors(label: str, errors: Mapping[str, float]) -> float:
    """One line per output (pyramids: every level, finest first); returns the worst error."""
    print(f"  {label}:")
    by_output: Dict[str, list] = {name: [] for name in COMPARED_OUTPUTS}
    for key in sorted(errors, key=lambda key: int(key.split("/")[1]) if "/" in key else 0):
        by_output[key.split("/")[0]].append(errors[key])
    width = max(len(name) for name in by_output)
    for name, values in by_output.items():
        if values:
            print(f"    {name:<{width}}  " + " ".join(f"{value:.1e}" for value in values))
    return max(errors.values())


@torch.no_grad()
def self_test(loaded, model, dtype, tolerance, gpu, verbose):
    height, width = TEST_SIZE
    x0, x1 = test_frames(height, width)
    dt = torch.full((1, 1), 0.5)
    start = time.perf_counter()
    with native_stderr_hidden(not verbose):
        tf_outputs = run_tensorflow(loaded, x0, x1)
    print(f"Self-test on {width}x{height} frames at t = 0.5, max|pt - tf| / max|tf| per output "
          f"(pyramid levels finest first; TF ran in {time.perf_counter() - start:.1f} s):")
    failures = []
    worst_fp32 = print_errors("fp32", compare(tf_outputs, model.debug_forward(x0, x1, dt)))
    if worst_fp32 > tolerance:
        failures.append(f"fp32 error {worst_fp32:.2e} > {tolerance:.0e}")
    passed = [f"fp32 worst {worst_fp32:.1e} <= --tolerance {tolerance:g}"]
    if dtype != torch.float32:
        # What is stored is rounded to dtype; its effect, isolated from compute precision.
        rounded = Interpolator(**model.config).eval()
        rounded.load_state_dict({k: v.to(dtype).to(v.dtype) for k, v in model.state_dict().items()})
        worst = print_errors(f"{str(dtype)[6:]} weights, fp32 compute",
                             compare(tf_outputs, rounded.debug_forward(x0, x1, dt)))
        if worst > ROUNDED_WEIGHTS_TOLERANCE:
            failures.append(f"{dtype} weights error {worst:.2e} > {ROUNDED_WEIGHTS_TOLERANCE:.0e}")
        passed.append(f"{str(dtype)[6:]} weights worst {worst:.1e} <= {ROUNDED_WEIGHTS_TOLERANCE:g}")
    if gpu:
        device = pick_gpu()
        if device is None:
            print("  --gpu: no CUDA or MPS device here, skipped the GPU run")
        else:
            on_gpu = Interpolator(**model.config).eval()
            on_gpu.load_state_dict(model.state_dict())
            on_gpu.to(device=device, dtype=dtype)
            args = [t.to(device=device, dtype=dtype) for t in (x0, x1, dt)]
            # Reported, not enforced: half-precision compute is for speed, its error is the user's call.
            print_errors(f"{device} {str(dtype)[6:]} compute (informational)",
                         compare(tf_outputs, on_gpu.debug_forward(*args)))
    if failures:
        raise ExportError("self-test failed: " + "; ".join(failures) + " (nothing written)")
    print(f'  passed: {"; ".join(passed)}')
    return tf_outputs


def pick_gpu():
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return None


def check_source(model_path: str) -> bool:
    """True for a SavedModel folder, False for a weight file; a one-line error for anything else."""
    if os.path.isdir(model_path):
        check_model_folder(model_path)
        return True
    if not os.path.exists(model_path):
        raise ExportError(f"{model_path} is not a folder (not found)")
    return False


def read_source(args, is_folder: bool):
    """(config, state dict, TF SavedModel or None, one line saying what was read)."""
    if is_folder:
        with native_stderr_hidden(not args.verbose):
            loaded, variables = load_saved_model(args.model_path)
        try:
            config, state_dict = convert.convert_tf_variables(variables, args.pyramid_levels or 7)
        except convert.ConversionError as error:
            raise ExportError(str(error)) from None
        return config, state_dict, loaded, f"{len(variables)} variables"
    try:
        config, state_dict, layout, stored = checkpoints.load_weights(args.model_path, args.pyramid_levels)
    except checkpoints.CheckpointError as error:
        raise ExportError(checkpoints.message(args.model_path, error)) from None
    return config, state_dict, None, (f"{len(state_dict) - 1} {str(stored)[6:]} tensors in "
                                      f"{checkpoints.LAYOUT_NAMES[layout]} names")


def write(model: Interpolator, args, dtype: torch.dtype, path: str) -> str:
    """Writes the network to ``path`` as asked; returns what was written."""
    if args.onnx:
        import onnx_export
        try:
            onnx_export.export_onnx(model, path)
        except onnx_export.OnnxExportError as error:
            raise ExportError(str(error)) from None
        return "ONNX"
    stored = Interpolator(**model.config).eval()
    stored.load_state_dict(model.state_dict())
    stored.to(dtype)
    if args.statedict:
        if args.save_path.lower().endswith(".safetensors"):
            try:
                checkpoints.save_safetensors(stored.state_dict(), path)
            except ImportError:
                raise ExportError("writing .safetensors needs the safetensors package: "
                                  "pip install safetensors") from None
            return "state dict (safetensors)"
        torch.save(stored.state_dict(), path)
        return "state dict"
    # Through memory: saved to a path, the archive's root folder is named
    # after the (temporary) file, and two exports would differ.
    archive = io.BytesIO()
    torch.jit.save(torch.jit.script(stored), archive)
    with open(path, "wb") as file:
        file.write(archive.getvalue())
    return "TorchScript"


@torch.no_grad()
def check_written(kind: str, path: str, model: Interpolator, dtype: torch.dtype, tf_outputs, tolerance: float):
    """Runs what was written against TensorFlow's image (ONNX from a SavedModel) or our network.

    ``model``: the fp32 network the file was made from. A state dict is read
    back through ``checkpoints`` and must hold exactly the weights written.
    """
    failures, lines = [], []
    if kind.startswith("state dict"):
        reread = checkpoints.interpolator_from_file(path)
        expected = {k: v.to(dtype).float() for k, v in model.state_dict().items() if v.is_floating_point()}
        differing = [k for k, v in reread.state_dict().items() if k in expected and not torch.equal(v, expected[k])]
        if differing or reread.config != model.config:
            failures.append(f'the state dict read back differs ({", ".join(differing[:3]) or "configuration"})')
        lines.append(f"  read back: {len(expected)} tensors as written, configuration {reread.config == model.config}")
    else:
        height, width = TEST_SIZE
        x0, x1 = test_frames(height, width)
        dt = torch.full((1, 1), 0.5)
        cases = [(x0, x1, dt)]
        if kind == "ONNX":
            first, second = test_frames(*SECOND_TEST_SIZE, seed=1)
            # Two pairs in one batch, each with its own time.
            cases.append((torch.cat([first, second]), torch.cat([second, first]), torch.tensor([[0.5], [0.25]])))
            import onnx_export
            run = onnx_export.session(path)
            produce = lambda a, b, t: onnx_export.run(run, a, b, t)
            label = "ONNX Runtime (CPU)"
        else:
            scripted = torch.jit.load(path, map_location="cpu").float().eval()
            produce = lambda a, b, t: scripted(a, b, t).numpy()
            label = f"the TorchScript file ({str(dtype)[6:]} weights, fp32 compute)"
        bound = tolerance if dtype == torch.float32 or kind == "ONNX" else ROUNDED_WEIGHTS_TOLERANCE
        for index, (a, b, t) in enumerate(cases):
            size = f"{a.shape[0]} x {a.shape[-1]}x{a.shape[-2]}"
            actual = produce(a, b, t)
            if index == 0 and tf_outputs is not None:
                reference = tf_outputs["image"].transpose(0, 3, 1, 2)
                against = "TensorFlow"
            else:
                reference = model(a, b, t).numpy()
                against = "our network"
            error = float(np.abs(actual - reference).max() / max(np.abs(reference).max(), 1e-12))
            lines.append(f"  {label} on {size}, image vs {against}: {error:.1e}")
            if not error <= bound:
                failures.append(f"{label} on {size}: error {error:.2e} > {bound:g}")
    print("Written file:")
    for line in lines:
        print(line)
    if failures:
        raise ExportError("self-test failed: " + "; ".join(failures) + " (nothing written)")


def export(args) -> int:
    start = time.perf_counter()
    is_folder = check_source(args.model_path)
    destination = open_destination(args.save_path)
    try:
        config, state_dict, loaded, what = read_source(args, is_folder)
        model = Interpolator(**config).eval()
        model.load_state_dict(state_dict)
        parameters = sum(p.numel() for p in model.parameters())
        print(f"Read {what} ({parameters:,} parameters) from {args.model_path}")
        print(f"Configuration: {config}")
        # ONNX is written in fp32: TensorRT chooses its precision when it builds an engine.
        dtype = torch.float32 if args.fp32 or args.onnx else torch.float16
        tf_outputs = None
        if args.skiptest:
            print("Self-test skipped (--skiptest)")
        elif loaded is not None:
            tf_outputs = self_test(loaded, model, dtype, args.tolerance, args.gpu, args.verbose)
        kind = write(model, args, dtype, destination.temporary)
        if not args.skiptest and (loaded is None or kind == "ONNX"):
            check_written(kind, destination.temporary, model, dtype, tf_outputs, args.tolerance)
        destination.commit()
    except BaseException:
        destination.discard()
        raise
    print(f"Wrote {kind} ({str(dtype)[6:]}) to {args.save_path} in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None) -> int:
    return cli.run_reporting_errors(export, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
