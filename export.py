"""Converts one of Google's FILM TensorFlow 2 SavedModels into a PyTorch file.

    python export.py MODEL_PATH SAVE_PATH [--statedict] [--fp32] [--skiptest] [--gpu] [--verbose]

MODEL_PATH is a SavedModel folder (e.g. ``pretrained_models/film_net/Style/saved_model``).
The variables are mapped to PyTorch parameters by name (``convert.py``) and the
architecture is inferred from their shapes. Unless ``--skiptest`` is given, the
TF model and the converted network run on the same frames at t = 0.5, at a
size that is not a multiple of 64, and the image and every flow level are
compared; the export fails, writing nothing, when an error is above the
tolerance.

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

import convert
import media.destination
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
COMPARED_OUTPUTS = ('image', 'forward_residual_flow_pyramid', 'backward_residual_flow_pyramid',
                    'forward_flow_pyramid', 'backward_flow_pyramid')


class ExportError(cli.UserError):
    """A problem with the input or the conversion, reported as one line."""


DESCRIPTION = ('Convert a FILM TF2 SavedModel (Style, L1 or VGG) into a TorchScript file\n'
               '(fp16 by default) or a PyTorch state dict, checking it against TensorFlow.')

EPILOG = f"""\
self-test:
  TensorFlow and the converted network render the same {TEST_SIZE[1]}x{TEST_SIZE[0]} frames
  at t = 0.5 (a size that is not a multiple of 64 on purpose); for the image
  and every level of the four flow pyramids, max|pt - tf| / max|tf| is
  printed and must be at most --tolerance. With fp16 weights (the default)
  the network with its weights rounded to fp16 is checked too, against
  {ROUNDED_WEIGHTS_TOLERANCE:g}. If any check fails, nothing is written.

output:
  SAVE_PATH is a file name; missing folders are created. The file is written
  under a hidden temporary name beside it and renamed at the end, so a failed
  or interrupted export leaves nothing behind.

exit status: 0 on success, 1 on a problem with the files or the conversion,
2 on bad arguments, 130 when interrupted (143 on SIGTERM, 129 on SIGHUP)."""


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser('export.py', DESCRIPTION, EPILOG)
    parser.add_argument('model_path', help='folder of the TF2 SavedModel (holds saved_model.pb and variables/)')
    parser.add_argument('save_path', help='the PyTorch file to write (missing folders are created)')
    parser.add_argument('--statedict', action='store_true',
                        help='write a state dict (torch.save) instead of TorchScript; inference.py and '
                             'convert.interpolator_from_state_dict rebuild the network from it')
    parser.add_argument('--fp32', action='store_true', help='keep full precision (default: fp16 weights)')
    parser.add_argument('--skiptest', action='store_true', help='skip the comparison with TensorFlow')
    cli.add_gpu_argument(parser, 'also run the self-test on a GPU (CUDA or Apple MPS) when one is there, '
                                 'in the saved precision (reported, not enforced)')
    parser.add_argument('--pyramid_levels', type=cli.whole_number(1), default=7,
                        help='image pyramid depth; the only setting weights do not reveal '
                             '(7 for the released models; default %(default)s)')
    parser.add_argument('--tolerance', type=cli.positive_number(), default=FP32_TOLERANCE,
                        help='largest accepted max|pt - tf| / max|tf| of any compared output '
                             '(default %(default)s)')
    parser.add_argument('--verbose', action='store_true', help="show TensorFlow's own log lines")
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
            raise ExportError(f'{model_path} is not a folder: give the SavedModel folder (it holds saved_model.pb)')
        raise ExportError(f'{model_path} is not a folder (not found)')
    if not any(os.path.isfile(os.path.join(model_path, f)) for f in ('saved_model.pb', 'saved_model.pbtxt')):
        raise ExportError(f'{model_path} is not a TF SavedModel (no saved_model.pb in it)')


def open_destination(save_path: str) -> media.destination.Destination:
    """The hidden temporary file beside save_path (folders created), or a one-line error."""
    if save_path.endswith(('/', os.sep)) or os.path.isdir(save_path):
        raise ExportError(f'save_path {save_path} names a folder: give a file name, '
                          f'e.g. {os.path.join(save_path, "film_net.pt")}')
    return media.destination.Destination(save_path, is_folder=False)


def load_saved_model(model_path: str):
    """(loaded SavedModel, {variable name: array})."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    try:
        import tensorflow as tf
    except ImportError:
        raise ExportError('TensorFlow is needed to read a SavedModel: pip install tensorflow-cpu') from None
    try:
        loaded = tf.saved_model.load(model_path)
    except Exception as error:  # TF raises many types; the first line says what is wrong
        raise ExportError(f'cannot load {model_path}: {str(error).strip().splitlines()[0]}') from None
    # Google's files were written by Keras 2: its variable list is the complete
    # one. Other SavedModels: every variable reachable from the root object.
    keras_api = getattr(loaded, 'keras_api', None)
    if keras_api is not None:
        variables = keras_api.variables
    else:
        variables = [t for t in tf.train.TrackableView(loaded).descendants() if isinstance(t, tf.Variable)]
    arrays = {}
    for variable in variables:
        if variable.name in arrays:
            raise ExportError(f'variable {variable.name} appears twice')
        arrays[variable.name] = variable.numpy()
    if not arrays:
        raise ExportError(f'{model_path} holds no variables')
    return loaded, arrays


def test_frames(height, width, seed=0):
    """A textured frame and the same frame moved by (5, 3) px: real structure and motion."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, height // 16, width // 16), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode='bicubic', align_corners=False)
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
                flat[f'{key}/{level}'] = np.asarray(tensor)
        else:
            flat[key] = np.asarray(value)
    return flat


def run_tensorflow(loaded, x0, x1) -> Dict[str, np.ndarray]:
    import tensorflow as tf
    nhwc = lambda t: tf.constant(t.permute(0, 2, 3, 1).numpy())
    try:
        outputs = loaded({'x0': nhwc(x0), 'x1': nhwc(x1), 'time': tf.constant([[0.5]], tf.float32)},
                         training=False)
    except Exception as error:
        raise ExportError(f'the SavedModel cannot be called like FILM\'s ({{"x0", "x1", "time"}} in): '
                          f'{str(error).strip().splitlines()[0]}') from None
    if not isinstance(outputs, Mapping) or 'image' not in outputs:
        raise ExportError('the SavedModel does not return a dict with an "image" output')
    return flatten_outputs(outputs)


def is_compared(key: str) -> bool:
    return key.split('/')[0] in COMPARED_OUTPUTS


def compare(tf_outputs: Mapping[str, np.ndarray], torch_outputs: Mapping[str, torch.Tensor]) -> Dict[str, float]:
    """{output: max|pt - tf| / max|tf|} for the image and every flow level the TF model returns."""
    errors = {}
    for key, expected in tf_outputs.items():
        if not is_compared(key):
            continue
        if key not in torch_outputs:
            raise ExportError(f'TF output {key} has no PyTorch counterpart (different pyramid_levels?)')
        actual = torch_outputs[key].float().permute(0, 2, 3, 1).cpu().numpy()
        if actual.shape != expected.shape:
            raise ExportError(f'{key}: PyTorch gives {actual.shape}, TF {expected.shape} '
                              f'(is --pyramid_levels right?)')
        errors[key] = float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))
    if not any(key.startswith('image') for key in errors) or len(errors) < 2:
        raise ExportError(f'the SavedModel returns no flow pyramids to compare (outputs: {", ".join(tf_outputs)})')
    return errors


def print_errors(label: str, errors: Mapping[str, float]) -> float:
    """One line per output (pyramids: every level, finest first); returns the worst error."""
    print(f'  {label}:')
    by_output: Dict[str, list] = {name: [] for name in COMPARED_OUTPUTS}
    for key in sorted(errors, key=lambda key: int(key.split('/')[1]) if '/' in key else 0):
        by_output[key.split('/')[0]].append(errors[key])
    width = max(len(name) for name in by_output)
    for name, values in by_output.items():
        if values:
            print(f'    {name:<{width}}  ' + ' '.join(f'{value:.1e}' for value in values))
    return max(errors.values())


@torch.no_grad()
def self_test(loaded, model, dtype, tolerance, gpu, verbose):
    height, width = TEST_SIZE
    x0, x1 = test_frames(height, width)
    dt = torch.full((1, 1), 0.5)
    start = time.perf_counter()
    with native_stderr_hidden(not verbose):
        tf_outputs = run_tensorflow(loaded, x0, x1)
    print(f'Self-test on {width}x{height} frames at t = 0.5, max|pt - tf| / max|tf| per output '
          f'(pyramid levels finest first; TF ran in {time.perf_counter() - start:.1f} s):')
    failures = []
    worst_fp32 = print_errors('fp32', compare(tf_outputs, model.debug_forward(x0, x1, dt)))
    if worst_fp32 > tolerance:
        failures.append(f'fp32 error {worst_fp32:.2e} > {tolerance:.0e}')
    passed = [f'fp32 worst {worst_fp32:.1e} <= --tolerance {tolerance:g}']
    if dtype != torch.float32:
        # What is stored is rounded to dtype; its effect, isolated from compute precision.
        rounded = Interpolator(**model.config).eval()
        rounded.load_state_dict({k: v.to(dtype).to(v.dtype) for k, v in model.state_dict().items()})
        worst = print_errors(f'{str(dtype)[6:]} weights, fp32 compute',
                             compare(tf_outputs, rounded.debug_forward(x0, x1, dt)))
        if worst > ROUNDED_WEIGHTS_TOLERANCE:
            failures.append(f'{dtype} weights error {worst:.2e} > {ROUNDED_WEIGHTS_TOLERANCE:.0e}')
        passed.append(f'{str(dtype)[6:]} weights worst {worst:.1e} <= {ROUNDED_WEIGHTS_TOLERANCE:g}')
    if gpu:
        device = pick_gpu()
        if device is None:
            print('  --gpu: no CUDA or MPS device here, skipped the GPU run')
        else:
            on_gpu = Interpolator(**model.config).eval()
            on_gpu.load_state_dict(model.state_dict())
            on_gpu.to(device=device, dtype=dtype)
            args = [t.to(device=device, dtype=dtype) for t in (x0, x1, dt)]
            # Reported, not enforced: half-precision compute is for speed, its error is the user's call.
            print_errors(f'{device} {str(dtype)[6:]} compute (informational)',
                         compare(tf_outputs, on_gpu.debug_forward(*args)))
    if failures:
        raise ExportError('self-test failed: ' + '; '.join(failures) + ' (nothing written)')
    print(f'  passed: {"; ".join(passed)}')


def pick_gpu():
    if torch.cuda.is_available():
        return torch.device('cuda')
    if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
        return torch.device('mps')
    return None


def export(args) -> int:
    start = time.perf_counter()
    check_model_folder(args.model_path)
    destination = open_destination(args.save_path)
    try:
        with native_stderr_hidden(not args.verbose):
            loaded, variables = load_saved_model(args.model_path)
        try:
            config, state_dict = convert.convert_tf_variables(variables, args.pyramid_levels)
        except convert.ConversionError as error:
            raise ExportError(str(error)) from None
        model = Interpolator(**config).eval()
        model.load_state_dict(state_dict)
        parameters = sum(p.numel() for p in model.parameters())
        print(f'Read {len(variables)} variables ({parameters:,} parameters) from {args.model_path}')
        print(f'Configuration: {config}')
        dtype = torch.float32 if args.fp32 else torch.float16
        if args.skiptest:
            print('Self-test skipped (--skiptest)')
        else:
            self_test(loaded, model, dtype, args.tolerance, args.gpu, args.verbose)
        model.to(dtype)
        if args.statedict:
            torch.save(model.state_dict(), destination.temporary)
            kind = 'state dict'
        else:
            # Through memory: saved to a path, the archive's root folder is named
            # after the (temporary) file, and two exports would differ.
            archive = io.BytesIO()
            torch.jit.save(torch.jit.script(model), archive)
            with open(destination.temporary, "wb") as file:
                file.write(archive.getvalue())
            kind = 'TorchScript'
        destination.commit()
    except BaseException:
        destination.discard()
        raise
    print(f'Wrote {kind} ({str(dtype)[6:]}) to {args.save_path} in {time.perf_counter() - start:.1f} s')
    return 0


def main(argv=None) -> int:
    return cli.run_reporting_errors(export, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
