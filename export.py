"""Converts one of Google's FILM TensorFlow 2 SavedModels into a PyTorch file.

    python export.py MODEL_PATH SAVE_PATH [--statedict] [--fp32] [--skiptest] [--gpu]

MODEL_PATH is a SavedModel folder (e.g. ``pretrained_models/film_net/Style/saved_model``).
The variables are mapped to PyTorch parameters by name (``convert.py``) and the
architecture is inferred from their shapes. Unless ``--skiptest`` is given, the
TF model and the converted network run on the same frames at t = 0.5 and the
image and every flow level are compared; the export fails, writing nothing,
when an error is above the tolerance. The output is written atomically.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

import convert
from interpolator import Interpolator

# Largest accepted max|pt - tf| / max|tf| of the fp32 network, per output. On
# the reference vectors a float32 port lands near 1e-5 (summation order in the
# convolutions); real weights and larger frames accumulate a little more. A
# conversion mistake (wrong tensor, layout or order) is far above 1e-3.
FP32_TOLERANCE = 1e-4
# The same bound for the network with its weights rounded to the saved dtype
# (fp16: ~1e-3 measured on random weights), computed in fp32.
ROUNDED_WEIGHTS_TOLERANCE = 1e-2
TEST_SIZE = (256, 384)


class ExportError(Exception):
    """A problem with the input or the conversion, reported as one line."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a FILM TF2 SavedModel (Style, L1 or VGG) into a TorchScript file '
                    '(fp16 by default) or a PyTorch state dict, checking it against TensorFlow.')
    parser.add_argument('model_path', help='folder of the TF2 SavedModel (holds saved_model.pb and variables/)')
    parser.add_argument('save_path', help='where to write the PyTorch file (missing folders are created)')
    parser.add_argument('--statedict', action='store_true',
                        help='write a state dict (torch.save) instead of TorchScript; inference.py and '
                             'Interpolator.from_state_dict rebuild the network from it')
    parser.add_argument('--fp32', action='store_true', help='keep full precision (default: fp16 weights)')
    parser.add_argument('--skiptest', action='store_true', help='skip the comparison with TensorFlow')
    parser.add_argument('--gpu', action='store_true',
                        help='also run the test on a GPU (CUDA or Apple MPS) when one is there, '
                             'in the saved precision')
    parser.add_argument('--pyramid_levels', type=int, default=7,
                        help='image pyramid depth; the only setting weights do not reveal '
                             '(7 for the released models; default %(default)s)')
    parser.add_argument('--tolerance', type=float, default=FP32_TOLERANCE,
                        help='largest accepted max|pt - tf| / max|tf| of any compared output '
                             '(default %(default)s)')
    return parser.parse_args(argv)


def load_saved_model(model_path):
    """(loaded SavedModel, {variable name: array})."""
    if not os.path.isdir(model_path):
        raise ExportError(f'{model_path} is not a folder')
    if not any(os.path.isfile(os.path.join(model_path, f)) for f in ('saved_model.pb', 'saved_model.pbtxt')):
        raise ExportError(f'{model_path} is not a TF SavedModel (no saved_model.pb in it)')
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


def run_tensorflow(loaded, x0, x1):
    import tensorflow as tf
    nhwc = lambda t: tf.constant(t.permute(0, 2, 3, 1).numpy())
    outputs = loaded({'x0': nhwc(x0), 'x1': nhwc(x1), 'time': tf.constant([[0.5]], tf.float32)}, training=False)
    if not isinstance(outputs, dict) or 'image' not in outputs:
        raise ExportError('the SavedModel does not return a dict with an "image" output')
    return {key: value.numpy() for key, value in outputs.items()}


def compare(tf_outputs, torch_outputs):
    """{output: max|pt - tf| / max|tf|} for the image and every flow level the TF model returns."""
    errors = {}
    for key, expected in tf_outputs.items():
        if key != 'image' and 'flow_pyramid' not in key:
            continue
        if key not in torch_outputs:
            raise ExportError(f'TF output {key} has no PyTorch counterpart (different pyramid_levels?)')
        actual = torch_outputs[key].float().permute(0, 2, 3, 1).cpu().numpy()
        if actual.shape != expected.shape:
            raise ExportError(f'{key}: PyTorch gives {actual.shape}, TF {expected.shape} '
                              f'(is --pyramid_levels right?)')
        errors[key] = float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))
    return errors


def summarize(label, errors):
    flows = {k: v for k, v in errors.items() if k != 'image'}
    worst = max(flows, key=flows.get) if flows else None
    line = f'  {label}: image {errors["image"]:.2e}'
    if worst:
        line += f', worst flow level {worst} {flows[worst]:.2e}'
    print(line)
    return max(errors.values())


@torch.no_grad()
def self_test(loaded, model, dtype, tolerance, gpu):
    height, width = TEST_SIZE
    x0, x1 = test_frames(height, width)
    dt = torch.full((1, 1), 0.5)
    start = time.perf_counter()
    tf_outputs = run_tensorflow(loaded, x0, x1)
    print(f'Self-test on {width}x{height} frames at t = 0.5 '
          f'(max |pt - tf| / max |tf|; TF ran in {time.perf_counter() - start:.1f} s):')
    failures = []
    worst = summarize('fp32', compare(tf_outputs, model.debug_forward(x0, x1, dt)))
    if worst > tolerance:
        failures.append(f'fp32 error {worst:.2e} > {tolerance:.0e}')
    if dtype != torch.float32:
        # What is stored is rounded to dtype; its effect, isolated from compute precision.
        rounded = Interpolator(**model.config).eval()
        rounded.load_state_dict({k: v.to(dtype).to(v.dtype) for k, v in model.state_dict().items()})
        worst = summarize(f'{str(dtype)[6:]} weights, fp32 compute', compare(tf_outputs, rounded.debug_forward(x0, x1, dt)))
        if worst > ROUNDED_WEIGHTS_TOLERANCE:
            failures.append(f'{dtype} weights error {worst:.2e} > {ROUNDED_WEIGHTS_TOLERANCE:.0e}')
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
            summarize(f'{device} {str(dtype)[6:]} compute (informational)',
                      compare(tf_outputs, on_gpu.debug_forward(*args)))
    if failures:
        raise ExportError('self-test failed: ' + '; '.join(failures) + ' (nothing written)')


def pick_gpu():
    if torch.cuda.is_available():
        return torch.device('cuda')
    if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
        return torch.device('mps')
    return None


def write_atomically(save_path, write):
    """Calls write(temp_path) beside save_path, then renames: no partial file under the final name."""
    folder = os.path.dirname(os.path.abspath(save_path))
    os.makedirs(folder, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(save_path), suffix='.tmp')
    os.close(handle)
    try:
        write(temp_path)
        os.replace(temp_path, save_path)
    except BaseException:
        os.unlink(temp_path)
        raise


def export(args):
    start = time.perf_counter()
    if os.path.isdir(args.save_path):
        raise ExportError(f'save_path {args.save_path} is a folder; give a file name')
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
        self_test(loaded, model, dtype, args.tolerance, args.gpu)
    model.to(dtype)
    if args.statedict:
        write_atomically(args.save_path, lambda path: torch.save(model.state_dict(), path))
        kind = 'state dict'
    else:
        scripted = torch.jit.script(model)
        write_atomically(args.save_path, lambda path: torch.jit.save(scripted, path))
        kind = 'TorchScript'
    print(f'Wrote {kind} ({str(dtype)[6:]}) to {args.save_path} in {time.perf_counter() - start:.1f} s')


def main(argv=None):
    args = parse_args(argv)
    try:
        export(args)
    except ExportError as error:
        print(f'export.py: error: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
