"""Speed and memory of this FILM port on the CPU, printed as a table.

    python benchmark.py            # the full run: Style network; slow
    python benchmark.py --quick    # smoke run: tiny network, small frames

Every measurement runs in a child process of its own, so that each row's peak
RSS (``ru_maxrss``) is that workload's alone. The network is the released
Style configuration (filters 64, 34.4 M parameters) with random weights:
speed does not depend on the weights' values. Workloads:

  A  one mid frame at 1280x704; the same network in TensorFlow
     (tests/tf_film.py, same weights) measured in the same run, with the ratio;
     the same torch run with glibc's malloc keeping freed memory
     (``keep_freed_memory``: a setting for the program, not the network);
     and the limit row: the forward's convolutions alone, each distinct shape
     timed in isolation (channels_last, warm) and summed over the forward's
     calls. No implementation of this network can beat that on this machine
     with these convolution kernels; both A rows say what % of it they reach.
  B  7 in-between frames for the two photos (1024x768), each inference.py mode,
     and the baseline of one forward() per frame
  C  2x a 720p sequence through the video path (each frame encoded once,
     flows once per pair) against one forward() per pair
  D  one 3840x2160 frame, tiled to fit the memory budget
  E  a segmented inference_video.py job with the tiny network: one segment,
     several segments, 2 Ray workers, and a resume after SIGKILL

Columns: seconds per output frame (A and the forward() baselines of B and C:
median of --repeats calls after a warm-up, every call costing the same; the
reuse paths of B and C: one timed run of all their frames after a warm-up,
divided by the frames made, since their frames do not cost the same; D: one
run),
counted GFLOP/s (convolution multiply-adds x 2, counted by
torch.utils.flop_counter on the meta device, divided by that time), and the
child process's peak RSS. Figures measured so far, with their machines, and
how long a full run takes: docs/performance.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import cli  # noqa: E402,F401 -- first: the CLIs' OpenMP settings, so that the figures are theirs

ROOT = os.path.dirname(os.path.abspath(__file__))
STYLE = dict(filters=64, flow_filters=(32, 64, 128, 256))
QUICK = dict(filters=4, flow_filters=(4, 4, 8, 8))


def build_model(config: Dict, seed: int = 0):
    """The test suite's random-weight network (default init, non-zero biases)."""
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    from conftest import random_interpolator
    return random_interpolator(seed, **config)


def frames_of_size(height: int, width: int, count: int = 2, seed: int = 0):
    """A textured pattern moving a few pixels per frame: (1, 3, H, W) tensors in [0, 1]."""
    import torch
    import torch.nn.functional as F
    generator = torch.Generator().manual_seed(seed)
    # Room for the whole motion, so that every frame has the full size.
    base = F.interpolate(torch.rand(1, 3, height // 16 + 2, width // 16 + 2, generator=generator),
                         size=(height + 4 * count, width + 6 * count), mode='bicubic',
                         align_corners=False).clamp(0, 1)
    return [base[:, :, 4 * i:4 * i + height, 6 * i:6 * i + width].contiguous() for i in range(count)]


def counted_gflop(model, run) -> float:
    """Convolution FLOPs of run(model_on_meta) in GFLOP, counted without computing."""
    import copy
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    meta_model = copy.deepcopy(model).to('meta')
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run(meta_model, 'meta')
    return counter.get_total_flops() / 1e9


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_description() -> str:
    """The CPU's model and the vector ISA that decides convolution speed."""
    import platform
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open('/proc/cpuinfo') as info:
            for line in info:
                key, _, value = line.partition(':')
                if key.strip() == 'model name':
                    model = value.strip()
                elif key.strip() == 'flags':
                    flags = set(value.split())
    except OSError:  # not Linux: the model as the platform names it, ISA unknown
        return f'CPU: {model}, {os.cpu_count()} logical cores; ISA: unknown'
    features = (('avx2', 'AVX2'), ('avx512f', 'AVX-512'), ('avx512_bf16', 'AVX-512 BF16'), ('amx_tile', 'AMX'))
    isa = [name for flag, name in features if flag in flags]
    missing = [name for flag, name in features[1:] if flag not in flags]  # AVX2 is assumed of any CPU in use
    return (f'CPU: {model}, {os.cpu_count()} logical cores; ISA: {", ".join(isa) or "no AVX2"}'
            + (f' (no {", no ".join(missing)})' if missing else ''))


def convolution_calls(model, run) -> Dict:
    """{(input shape, weight shape, padding): calls} of run(model_on_meta).

    Recorded on the meta device, where the network takes its plain path: the
    convolutions the network defines, each on its whole (concatenated) input,
    whatever fusions the CPU path makes of them.
    """
    import copy
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    calls: Dict = {}

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.convolution.default:
                stride, padding, dilation, transposed, _, groups = args[3:9]
                if list(stride) != [1, 1] or list(dilation) != [1, 1] or transposed or groups != 1:
                    raise ValueError(f'unexpected convolution {func} {args[3:9]}')
                key = (tuple(args[0].shape), tuple(args[1].shape), tuple(padding))
                calls[key] = calls.get(key, 0) + 1
            return func(*args, **(kwargs or {}))

    meta_model = copy.deepcopy(model).to('meta')
    with Recorder(), torch.no_grad():
        run(meta_model, 'meta')
    return calls


def conv_output_shape(input_shape, weight_shape, padding):
    """(B, C_out, H', W') of a stride-1 convolution."""
    return (input_shape[0], weight_shape[0], input_shape[2] + 2 * padding[0] - weight_shape[2] + 1,
            input_shape[3] + 2 * padding[1] - weight_shape[3] + 1)


def convolution_limit(calls: Dict, repeats: int) -> float:
    """Seconds of the recorded convolutions, each shape timed alone (median of
    ``repeats`` after a warm-up) on channels_last tensors, times its calls."""
    import torch
    import torch.nn.functional as F
    total = 0.0
    with torch.no_grad():
        for (input_shape, weight_shape, padding), count in calls.items():
            x = torch.rand(input_shape).contiguous(memory_format=torch.channels_last)
            weight = (torch.rand(weight_shape) - 0.5).contiguous(memory_format=torch.channels_last)
            bias = torch.rand(weight_shape[0])
            F.conv2d(x, weight, bias, padding=padding)
            times = [timed(lambda: F.conv2d(x, weight, bias, padding=padding)) for _ in range(repeats)]
            total += count * statistics.median(times)
    return total


# ----------------------------------------------------------------------------- child workloads

def child_a_torch(args) -> Dict:
    import torch
    config = QUICK if args.quick else STYLE
    height, width = (128, 192) if args.quick else (704, 1280)
    model = torch.jit.script(build_model(config))
    x0, x1 = frames_of_size(height, width)
    dt = torch.full((1, 1), 0.5)
    times = []
    with torch.no_grad():
        model(x0, x1, dt)  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(x0, x1, dt)
            times.append(time.perf_counter() - start)
    gflop = counted_gflop(build_model(config), lambda m, d: m(x0.to(d), x1.to(d), dt.to(d)))
    return dict(seconds=statistics.median(times), gflop=gflop, frames=1)


def child_a_torch_kept_memory(args) -> Dict:
    import cpu_threads
    if not cpu_threads.keep_freed_memory():
        raise RuntimeError('mallopt is not available here (not glibc)')
    return child_a_torch(args)


def child_a_limit(args) -> Dict:
    config = QUICK if args.quick else STYLE
    height, width = (128, 192) if args.quick else (704, 1280)
    x0, x1 = frames_of_size(height, width)
    run = lambda m, d: m(x0.to(d), x1.to(d), torch_full(d))  # noqa: E731
    model = build_model(config)
    calls = convolution_calls(model, run)
    seconds = convolution_limit(calls, max(args.repeats, 3))
    return dict(seconds=seconds, gflop=counted_gflop(model, run), frames=1,
                note=f'{sum(calls.values())} convolutions ({len(calls)} shapes), each timed alone')


def child_a_tensorflow(args) -> Dict:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    import tensorflow as tf
    import tf_film
    import convert
    config = QUICK if args.quick else STYLE
    height, width = (128, 192) if args.quick else (704, 1280)
    torch_model = build_model(config)
    weights = {}
    for key, tensor in torch_model.state_dict().items():
        if key == convert.PYRAMID_LEVELS_KEY:
            continue
        array = tensor.numpy()
        weights[convert.tf_name_for(key, torch_model.fusion_pyramid_levels)] = \
            array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
    tf_model = tf_film.FilmModel(dict(torch_model.config))
    tf_film.set_weights_by_name(tf_model, weights)
    x0, x1 = (f.permute(0, 2, 3, 1).numpy() for f in frames_of_size(height, width))
    inputs = {'x0': tf.constant(x0), 'x1': tf.constant(x1), 'time': tf.constant([[0.5]], tf.float32)}

    def call():
        # The model's one traced graph for any input size, with all outputs, exactly
        # what a loaded SavedModel of it (or of Google's) runs when called.
        return tf_model(inputs, training=False)['image'].numpy()
    call()  # warm-up (graph optimisation on the first run)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    gflop = counted_gflop(torch_model, lambda m, d: m(*(t.to(d) for t in frames_of_size(height, width)),
                                                      torch_full(d)))
    return dict(seconds=statistics.median(times), gflop=gflop, frames=1)


def torch_full(device):
    import torch
    return torch.full((1, 1), 0.5, device=device)


def child_b(args) -> Dict:
    """7 in-between frames of the two photos in one inference.py mode."""
    import torch
    import frame_schedule
    import image_pipeline
    import media.images
    import runtime
    config = QUICK if args.quick else STYLE
    model = torch.jit.script(build_model(config))
    first = media.images.read_image(os.path.join(ROOT, 'photos', 'one.png'))
    second = media.images.read_image(os.path.join(ROOT, 'photos', 'two.png'))
    if args.quick:
        first, second = first[:128, :192], second[:128, :192]
    mode, _, reuse = args.variant.partition('+')
    schedule = frame_schedule.make_schedule(mode, 7)
    reuse = reuse != 'forward'
    warm = [t[:, :, :128, :128] for t in frames_of_size(128, 128)]
    with torch.no_grad():
        model(warm[0], warm[1], torch.full((1, 1), 0.5))
    if not reuse:
        # Every frame of the baseline is one forward() of the same cost:
        # the median of --repeats of them stands for all 7.
        x0 = runtime.pad_to_multiple(runtime.image_to_tensor(first))[0]
        x1 = runtime.pad_to_multiple(runtime.image_to_tensor(second))[0]
        with torch.no_grad():
            seconds = statistics.median(timed(lambda: model(x0, x1, torch.full((1, 1), 0.5)))
                                        for _ in range(args.repeats))
        gflop = counted_gflop(build_model(config), lambda m, d: m(x0.to(d), x1.to(d), torch_full(d)))
        return dict(seconds=seconds, gflop=gflop, frames=args.repeats)
    start = time.perf_counter()
    image_pipeline.make_frames(runtime.ModelRuntime(model, torch.device('cpu'), torch.float32), first, second,
                               schedule, reuse=reuse, show_progress=False)
    seconds = time.perf_counter() - start

    def count(meta_model, device):
        x0 = runtime.pad_to_multiple(runtime.image_to_tensor(first))[0].to(device)
        x1 = runtime.pad_to_multiple(runtime.image_to_tensor(second))[0].to(device)
        for _ in image_pipeline.run_schedule(meta_model, x0, x1, schedule, reuse=reuse):
            pass
    gflop = counted_gflop(build_model(config), count)
    return dict(seconds=seconds / 7, gflop=gflop / 7, frames=7)


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def child_c(args) -> Dict:
    """2x frame rate of a 720p sequence: reuse (encode once per frame) or forward per pair."""
    import torch
    config = QUICK if args.quick else STYLE
    height, width = (72, 128) if args.quick else (720, 1280)
    count = args.sequence_frames
    model = torch.jit.script(build_model(config))
    frames = frames_of_size(height, width, count)
    padded = [torch.nn.functional.pad(f, (0, -width % 64, 0, -height % 64), mode='replicate') for f in frames]
    half = torch.full((1, 1), 0.5)

    def video_path(m, device):
        previous = m.encode(padded[0].to(device))
        for frame in padded[1:]:
            current = m.encode(frame.to(device))
            flows = m.estimate_flows(previous[1], current[1])
            m.synthesize(previous[0], previous[1], current[0], current[1], flows[0], flows[1], half.to(device))
            previous = current

    with torch.no_grad():
        model(padded[0], padded[1], half)  # warm-up
        if args.variant == 'reuse':
            seconds = timed(lambda: video_path(model, 'cpu')) / (count - 1)
            gflop = counted_gflop(build_model(config), video_path) / (count - 1)
            return dict(seconds=seconds, gflop=gflop, frames=count - 1)
        # Every pair of the baseline is one forward() of the same cost: the
        # median of --repeats pairs stands for all of them.
        pairs = list(zip(padded, padded[1:]))[:args.repeats]
        seconds = statistics.median(timed(lambda: model(a, b, half)) for a, b in pairs)
    gflop = counted_gflop(build_model(config), lambda m, d: m(padded[0].to(d), padded[1].to(d), half.to(d)))
    return dict(seconds=seconds, gflop=gflop, frames=len(pairs))


def child_d(args) -> Dict:
    import torch
    import tiling
    config = QUICK if args.quick else STYLE
    height, width = (256, 448) if args.quick else (2160, 3840)
    model = torch.jit.script(build_model(config))
    budget = 8 << 30
    tile = tiling.choose_tile_size(height, width, budget // (16 if args.quick else 2), filters=config['filters'])
    x0, x1 = frames_of_size(height, width)
    dt = torch.full((1, 1), 0.5)
    with torch.no_grad():
        model(x0[:, :, :128, :128], x1[:, :, :128, :128], dt)
        start = time.perf_counter()
        if tile is None:
            model(x0, x1, dt)
        else:
            tiling.interpolate_tiled(model, x0, x1, dt, tile_size=tile)
        seconds = time.perf_counter() - start
    return dict(seconds=seconds, gflop=None, frames=1, note=f'tile {tile}' if tile else 'untiled')


def job_clip(args):
    """The tiny network and a generated clip for workload E (made once, kept in a scratch folder)."""
    import tempfile
    import torch
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    from fractions import Fraction
    from test_inference_video import make_video
    folder = os.path.join(tempfile.gettempdir(), f'film_benchmark_e_{"quick" if args.quick else "full"}')
    os.makedirs(folder, exist_ok=True)
    model, clip = os.path.join(folder, 'tiny.pt'), os.path.join(folder, 'clip.mp4')
    if not os.path.exists(clip):
        torch.jit.script(build_model(QUICK)).save(model)
        count, width, height = len_clip_frames(args), *((64, 64) if args.quick else (256, 144))
        make_video(clip + '.tmp.mp4', count=count, rate=Fraction(24), width=width, height=height, audio=None)
        os.replace(clip + '.tmp.mp4', clip)
    return folder, model, clip


def run_inference_video(*argv, timeout=3600):
    """(seconds, stdout, stderr) of inference_video.py."""
    command = [sys.executable, os.path.join(ROOT, 'inference_video.py'), *map(str, argv)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(command)} failed:\n{result.stderr[-3000:]}')
    return time.perf_counter() - started, result.stdout, result.stderr


def len_clip_frames(args) -> int:
    return 48 if args.quick else 480


def output_frames(stdout: str) -> int:
    return int(stdout.split(' -> ')[1].split()[0])


def child_e(args) -> Dict:
    """Segmented jobs: one process x 2 threads vs 2 Ray workers x 1 thread, and a resume after SIGKILL."""
    import random
    import shutil
    import signal
    folder, model, clip = job_clip(args)
    segment = 12 if args.quick else 48  # 2 s of the 24 fps clip
    out = os.path.join(folder, 'out')
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out + '.parts', ignore_errors=True)
    common = [model, clip, '--save_path', out + '/', '--segment_frames', segment]
    variants = {'one-segment': ['--threads', 2, '--segment_frames', 100000], 'one-process': ['--threads', 2],
                'ray-2-workers': ['--workers', 2, '--threads', 1]}
    if args.variant in variants:
        seconds, stdout, stderr = run_inference_video(*common, *variants[args.variant])
        frames = output_frames(stdout)
        ray = [line for line in stderr.splitlines() if 'Ray workers ready' in line]
        note = f'{seconds:.1f} s for {frames} frames ({" ".join(map(str, variants[args.variant]))})'
        return dict(seconds=seconds / frames, frames=frames, gflop=None, total_seconds=seconds,
                    segments=None if args.variant == 'one-segment' else -(-len_clip_frames(args) // segment),
                    note=note + (f'; {ray[0].split(": ", 1)[1]}' if ray else ''))
    # resume: SIGKILL the job at a random point, run it again, count what was redone.
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'inference_video.py'), *map(str, common),
                                '--threads', '2'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunks = os.path.join(out + '.parts', 'chunks')
    listing = lambda: os.listdir(chunks) if os.path.isdir(chunks) else []
    time.sleep(random.uniform(3, 6 if args.quick else 15))
    done_at_kill = len([name for name in listing() if name.endswith('.json')])
    in_flight = len([name for name in listing() if name.endswith('.partial')])
    process.send_signal(signal.SIGKILL)
    process.wait()
    seconds, stdout, _ = run_inference_video(*common, '--threads', 2)
    frames = output_frames(stdout)
    resumed = int(stdout.split('resumed: ')[1].split()[0]) if 'resumed: ' in stdout else 0
    segments = int(stdout.split('resumed: ')[1].split(' of ')[1].split()[0]) if 'resumed: ' in stdout else None
    return dict(seconds=seconds / frames, frames=frames, gflop=None,
                note=f'killed with {done_at_kill} segments done, {in_flight} in flight; the rerun found '
                     f'{resumed} of {segments} done and rendered {segments - resumed if segments else "all"}')


CHILDREN = {'A': {'torch': child_a_torch, 'torch-kept-memory': child_a_torch_kept_memory,
                  'tensorflow': child_a_tensorflow, 'limit': child_a_limit},
            'B': {'forward-per-frame': child_b, 'balanced': child_b, 'recursive': child_b, 'direct': child_b},
            'C': {'forward-per-pair': child_c, 'reuse': child_c},
            'D': {'tiled': child_d},
            'E': {'one-segment': child_e, 'one-process': child_e, 'ray-2-workers': child_e, 'resume': child_e}}
VARIANT_ARG = {'forward-per-frame': 'balanced+forward'}


# ----------------------------------------------------------------------------- parent

def run_child(workload: str, variant: str, args) -> Dict:
    command = [sys.executable, os.path.abspath(__file__), '--child', workload, variant,
               '--repeats', str(args.repeats), '--sequence_frames', str(args.sequence_frames)]
    if args.quick:
        command.append('--quick')
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f'{workload}/{variant} failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def format_table(rows: List[Dict]) -> str:
    lines = ['| workload | variant | s / output frame | counted GFLOP/s | peak RSS | notes |',
             '|---|---|---|---|---|---|']
    for row in rows:
        rate = f"{row['gflop'] / row['seconds']:.0f}" if row.get('gflop') else '–'
        lines.append(f"| {row['workload']} | {row['variant']} | {row['seconds']:.2f} | {rate} | "
                     f"{row['rss_mb'] / 1024:.2f} GB | {row.get('note', '')} |")
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='tiny network and frames: a smoke run for CI')
    parser.add_argument('--workloads', default='ABCDE', help='which workloads to run (default: ABCDE)')
    parser.add_argument('--repeats', type=int, default=3, help='timed calls for A and for the forward() baselines of B and C (median; default 3)')
    parser.add_argument('--rounds', type=int, default=1,
                        help='run each workload\'s variants this many times in alternation; the table shows '
                             'medians (default 1)')
    parser.add_argument('--sequence_frames', type=int, default=30,
                        help='frames of the workload C sequence (default 30)')
    parser.add_argument('--device', choices=('cuda', 'mps', 'cpu'),
                        help='instead of the CPU workloads: the device table (benchmarks/device.py): '
                             'forward and video path per size and precision, with peak device memory')
    parser.add_argument('--child', nargs=2, metavar=('WORKLOAD', 'VARIANT'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1 or args.sequence_frames < 2:
        parser.error('--repeats and --rounds must be >= 1 and --sequence_frames >= 2')
    sys.path.insert(0, ROOT)

    if args.device:
        from benchmarks import device
        return device.main(args.device, quick=args.quick, repeats=args.repeats,
                           sequence_frames=min(args.sequence_frames, 4 if args.quick else 8))
    if args.child:
        workload, variant = args.child
        args.variant = VARIANT_ARG.get(variant, variant)
        import torch
        # As in inference.py: TorchScript's profiling executor re-specialises
        # for every new input size (seconds each) and gains nothing here.
        with torch.jit.optimized_execution(False):
            result = CHILDREN[workload][variant](args)
        result['rss_mb'] = peak_rss_mb()
        print(json.dumps(result))
        return 0

    unknown = set(args.workloads) - set(CHILDREN)
    if unknown:
        parser.error(f'unknown workloads {sorted(unknown)}; choose from {"".join(CHILDREN)}')
    import torch
    print(f'# FILM benchmark: {"quick (tiny network)" if args.quick else "Style network"}, torch '
          f'{torch.__version__}, {torch.get_num_threads()} threads, {time.strftime("%Y-%m-%d")}', flush=True)
    print(f'# {cpu_description()}; torch uses {torch.backends.cpu.get_cpu_capability()} kernels', flush=True)
    print(f'# load average at the start: {os.getloadavg()[0]:.2f} (anything above ~0.1 on an idle machine is '
          f'someone else\'s work, and the figures are then not to be trusted)', flush=True)
    rows = []
    started = time.perf_counter()
    for workload in args.workloads:
        # Rounds alternate the variants, so that a machine whose speed drifts
        # (shared hosts do, by 20% over minutes) affects them all alike.
        runs: Dict[str, List[Dict]] = {variant: [] for variant in CHILDREN[workload]}
        for round_number in range(args.rounds):
            for variant in CHILDREN[workload]:
                result = run_child(workload, variant, args)
                runs[variant].append(result)
                print(f'  {workload} {variant}: {result["seconds"]:.2f} s/frame, '
                      f'{result["rss_mb"] / 1024:.2f} GB (round {round_number + 1}, load {os.getloadavg()[0]:.2f})',
                      flush=True)
        results = {}
        for variant, variant_runs in runs.items():
            result = dict(variant_runs[0], seconds=statistics.median(r['seconds'] for r in variant_runs),
                          rss_mb=max(r['rss_mb'] for r in variant_runs), workload=workload, variant=variant)
            results[variant] = result
            rows.append(result)
        if workload == 'A':
            ratio = results['tensorflow']['seconds'] / results['torch']['seconds']
            limit = results['limit']['seconds']
            results['torch']['note'] = (f'{ratio:.2f}x TensorFlow\'s speed, '
                                        f'{100 * limit / results["torch"]["seconds"]:.0f}% of the limit')
            results['tensorflow']['note'] = f'{100 * limit / results["tensorflow"]["seconds"]:.0f}% of the limit'
            kept = results['torch-kept-memory']['seconds']
            results['torch-kept-memory']['note'] = (
                f'{results["tensorflow"]["seconds"] / kept:.2f}x TensorFlow\'s speed, {100 * limit / kept:.0f}% of the '
                f'limit; glibc malloc keeps freed memory (mallopt)')
        if workload == 'B':
            base = results['forward-per-frame']['seconds']
            for variant in ('balanced', 'recursive', 'direct'):
                results[variant]['note'] = f'{base / results[variant]["seconds"]:.2f}x forward-per-frame'
        if workload == 'C':
            results['reuse']['note'] = (f'{results["forward-per-pair"]["seconds"] / results["reuse"]["seconds"]:.2f}x '
                                        f'forward-per-pair, {args.sequence_frames} frames')
        if workload == 'E':
            one, many = results['one-segment'], results['one-process']
            overhead = (many['total_seconds'] - one['total_seconds']) / max(1, many['segments'] - 1)
            many['note'] += f'; {many["segments"]} segments: {1000 * overhead:.0f} ms per extra segment'
            ratio = results['one-process']['seconds'] / results['ray-2-workers']['seconds']
            results['ray-2-workers']['note'] += f'; throughput {ratio:.2f}x one process'
    print()
    print(format_table(rows))
    print(f'\nTotal {time.perf_counter() - started:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
