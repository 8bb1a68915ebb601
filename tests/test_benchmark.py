"""benchmark.py --quick: every workload runs and the table is complete (a smoke test, not a timing)."""
import pytest

import benchmark
from benchmarks import common, forward


def test_quick_benchmark_prints_every_row(capsys):
    assert benchmark.main(["--quick", "--repeats", "1", "--sequence_frames", "3"]) == 0
    output = capsys.readouterr().out
    table = [line for line in output.splitlines() if line.startswith("| ") and "workload" not in line]
    variants = [line.split("|")[2].strip() for line in table]
    assert variants == ["torch", "torch-kept-memory", "jit-load", "jit-frozen", "tensorflow", "limit",
                        "forward-per-frame", "balanced",
                        "recursive", "direct", "forward-per-pair", "reuse", "tiled", "one-segment", "one-process",
                        "ray-2-workers", "resume"]
    for line in table:
        seconds = float(line.split("|")[3])
        assert seconds > 0
    assert "TensorFlow's speed" in output and "forward-per-frame" in output
    assert "throughput" in output and "per extra segment" in output and "Ray workers ready" in output
    assert "the rerun found" in output
    # The CPU and its vector ISA head the output: figures depend on them.
    cpu_line = next(line for line in output.splitlines() if line.startswith("# CPU: "))
    assert "ISA: " in cpu_line
    # Every workload A row says how far it is from the limit row.
    notes = {line.split("|")[2].strip(): line.split("|")[6] for line in table}
    for variant in ("torch", "torch-kept-memory", "jit-load", "jit-frozen", "tensorflow"):
        assert "% of the limit" in notes[variant], variant
    assert "each timed alone" in notes["limit"]
    assert "runtime.load_model" in notes["torch"]
    # The TorchScript rows compute what the CLIs' row computes.
    for variant in ("jit-load", "jit-frozen"):
        difference = float(notes[variant].split("max abs difference from the torch row ")[1].split()[0])
        assert difference < 1e-4, variant
    # The resumed job found a segment done (it was killed after its first one).
    found = notes["resume"].split("the rerun found ")[1].split()
    assert int(found[0]) >= 1 and int(found[2]) > 1, notes["resume"]


def test_cpu_description_names_the_vector_isa():
    description = common.cpu_description()
    assert description.startswith("CPU: ") and "ISA: " in description
    with open("/proc/cpuinfo") as info:
        flags = next(line for line in info if line.startswith("flags")).split()
    if "avx512f" in flags:
        assert "AVX-512" in description.split("(no")[0]
    if "avx512_bf16" not in flags:
        assert "no AVX-512 BF16" in description


def test_limit_counts_every_convolution_of_the_forward():
    """The limit row times each distinct convolution once and multiplies by its
    calls: the calls must be all of the forward's convolutions (its counted
    FLOPs), each on its whole concatenated input."""
    import torch
    model = common.random_network(common.QUICK)
    x0, x1 = common.frames_of_size(64, 96)
    run = lambda m, d: m(x0.to(d), x1.to(d), common.mid_time(d))  # noqa: E731
    calls = forward.convolution_calls(model, run)
    flop = sum(2 * count * torch.Size(forward.conv_output_shape(inputs, weight, padding)).numel()
               * torch.Size(weight[1:]).numel()
               for (inputs, weight, padding), count in calls.items())
    assert flop / 1e9 == pytest.approx(common.counted_gflop(model, run), rel=1e-9)
    # The finest flow predictor's first conv sees both feature maps at once.
    first_flow_conv = model.flow_estimator.predictors[0].convs[0].weight.shape
    assert any(weight == first_flow_conv and inputs[1] == first_flow_conv[1] for inputs, weight, _ in calls)
    assert forward.convolution_seconds(calls, 1) > 0


def test_sequence_frames_all_have_the_full_size():
    """The moving pattern once ran out of texture after 11 frames, pairing
    frames of two sizes in workload C."""
    frames = common.frames_of_size(72, 128, count=30)
    assert {tuple(frame.shape) for frame in frames} == {(1, 3, 72, 128)}


def test_device_table_runs_on_the_cpu(capsys):
    """The GPU benchmark's logic (--device cuda/mps) runs here on the CPU: every size, precision and path."""
    assert benchmark.main(["--device", "cpu", "--quick", "--repeats", "1"]) == 0
    output = capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in output.splitlines() if line.startswith("| 192x128")]
    assert [(cells[1].strip(), cells[2].strip(), cells[3].strip()) for cells in rows] == [
        (precision, path, variant) for precision in ("fp32", "fp16", "bf16")
        for path, variant in (("forward", "plain"), ("forward", "channels_last"), ("video", "reuse"))]
    assert all(float(cells[4]) > 0 and len(cells) == 8 for cells in rows)
    errors = {cells[1].strip(): float(cells[7].split()[0]) for cells in rows if cells[3].strip() == "plain"}
    # Against the same network's fp32, within the precisions' bounds (tests/test_devices.py).
    assert errors["fp32"] == 0 and 0 < errors["fp16"] <= 5e-3 and 0 < errors["bf16"] <= 4e-2
    assert all("kept" in cells[7] for cells in rows if cells[3].strip() == "channels_last")


def test_device_table_says_when_a_variant_fails():
    from benchmarks import device
    row = dict(size="1920x1080", precision="fp16", path="forward", variant="cuda-graph", failed="capture failed")
    assert device.format_row(row).endswith("failed: capture failed |")
