"""The exported file loads on every torch build, and every device's code path runs here.

- Portability: a TorchScript file naming an op that the loading torch lacks
  fails in ``torch.jit.load`` even if the op's branch is never taken. The
  macOS arm64 wheels have no oneDNN ops, so the exported network may name
  only ``aten::`` and ``prim::`` ops (``util.fused_cpu_kernels`` keeps the
  oneDNN kernels to eager code, which ``runtime.load_model`` runs).
- Off-CPU branches (grid_sample warp, plain convolutions) run on CPU tensors
  through ``util.device_branches`` and are held to the ORIGINAL's reference
  outputs in fp32, fp16 and bf16; the meta device checks that every op gets
  the device and dtype it should, end to end.
"""
import io
import subprocess
from fractions import Fraction
import sys
import zipfile

import pytest
import torch

import runtime
import util
from conftest import REFERENCE_CONFIGS, reference_case
from interpolator import Interpolator
from test_reference import RELATIVE_TOLERANCE, WARPED_IMAGE_TOLERANCE, build_reference_model, nchw, relative_errors

METHODS = ("forward", "encode", "estimate_flows", "synthesize", "debug_forward")


def exported_bytes(model):
    archive = io.BytesIO()
    torch.jit.save(torch.jit.script(model), archive)
    return archive.getvalue()


def test_the_scripted_network_names_only_aten_and_prim_ops():
    model = build_reference_model("small")
    scripted = torch.jit.script(model)
    kinds = set()
    for name in METHODS:
        kinds |= {node.kind() for node in getattr(scripted, name).inlined_graph.nodes()}
    foreign = sorted(kind for kind in kinds if not kind.startswith(("aten::", "prim::")))
    assert not foreign, foreign
    assert "aten::_convolution" in kinds or "aten::conv2d" in kinds
    code = zipfile.ZipFile(io.BytesIO(exported_bytes(model)))
    texts = [code.read(name).decode() for name in code.namelist() if name.endswith(".py")]
    assert texts and not any("mkldnn" in text for text in texts)


def test_the_exported_file_loads_and_runs_in_a_fresh_process(tmp_path):
    path = tmp_path / "film.pt"
    path.write_bytes(exported_bytes(build_reference_model("small")))
    program = ("import sys, torch\n"
               "model = torch.jit.load(sys.argv[1])\n"
               "x = torch.rand(1, 3, 64, 64)\n"
               "with torch.no_grad():\n"
               "    print(tuple(model(x, x, torch.full((1, 1), 0.5)).shape))\n")
    done = subprocess.run([sys.executable, "-c", program, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 3, 64, 64)"


def test_two_exports_of_one_model_are_identical_bytes():
    model = build_reference_model("small")
    assert exported_bytes(model) == exported_bytes(model)


def test_runtime_runs_our_file_eagerly_with_the_same_result(tmp_path):
    model = build_reference_model("small")
    path = tmp_path / "film.pt"
    path.write_bytes(exported_bytes(model))
    loaded = runtime.load_model(str(path))
    assert isinstance(loaded, Interpolator)  # eager: oneDNN's kernels where this torch has them
    case = reference_case("small", "photos_192x256")
    x0, x1, dt = nchw(case["x0"]), nchw(case["x1"]), torch.from_numpy(case["time"])
    with torch.no_grad():
        assert util.fused_cpu_kernels(x0) == torch.backends.mkldnn.is_available()
        # oneDNN's fused kernels sum in another order than the plain ones (1.5e-5 measured).
        torch.testing.assert_close(loaded(x0, x1, dt), torch.jit.load(str(path))(x0, x1, dt), rtol=0, atol=5e-5)


def test_the_original_ports_files_keep_their_own_code():
    class ForwardOnly(torch.nn.Module):
        def forward(self, x0, x1, dt):
            return x0
    scripted = torch.jit.script(ForwardOnly())
    assert runtime._eager_if_ours(scripted) is scripted


# Bounds against the ORIGINAL's outputs, as fractions of each output's largest
# magnitude (max over both reference configs, photos case, measured with the
# off-CPU branches): fp16 image 2.2e-3, flow levels 4.7e-3, warped frames
# 3.4e-3; bf16 image 1.8e-2, flow levels 4.1e-2, warped frames 4.6e-2. The
# bounds leave about 2x room; fp32 keeps the reference tests' bounds.
BOUNDS = {torch.float32: (RELATIVE_TOLERANCE, RELATIVE_TOLERANCE, WARPED_IMAGE_TOLERANCE),
          torch.float16: (5e-3, 1e-2, 1e-2),
          torch.bfloat16: (4e-2, 8e-2, 1e-1)}


@pytest.mark.parametrize("dtype", list(BOUNDS), ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("branches", ["cuda", "cpu"])
@pytest.mark.parametrize("config_name", REFERENCE_CONFIGS)
def test_every_device_path_and_precision_matches_the_original(config_name, branches, dtype):
    case = reference_case(config_name, "photos_192x256")
    model = build_reference_model(config_name).to(dtype)
    with util.device_branches(branches), torch.no_grad():
        outputs = model.debug_forward(nchw(case["x0"]).to(dtype), nchw(case["x1"]).to(dtype),
                                      torch.from_numpy(case["time"]))  # dt stays float32
    assert outputs["image"].dtype == dtype
    errors = relative_errors({key: value.float() for key, value in outputs.items()}, case)
    warped = max(errors.pop("x0_warped"), errors.pop("x1_warped"))
    image_bound, flow_bound, warped_bound = BOUNDS[dtype]
    assert errors.pop("image") <= image_bound
    assert max(errors.values()) <= flow_bound
    assert warped <= warped_bound


def test_the_off_cpu_branches_are_the_ones_taken():
    flow = torch.zeros(1, 2, 4, 4)
    assert len(util.warp_sampler(flow)[1].shape) == 4  # CPU: bilinear taps
    with util.device_branches("cuda"):
        assert util.warp_sampler(flow)[1].numel() == 0  # grid_sample's grid and a placeholder
        assert not util.fused_cpu_kernels(torch.zeros(1, 64, 32, 32))
    assert util.branch_device(flow) == "cpu"


@pytest.mark.parametrize("dtype", list(BOUNDS), ids=["fp32", "fp16", "bf16"])
def test_the_whole_network_keeps_device_and_dtype_on_meta(dtype):
    model = Interpolator(filters=4, flow_filters=(4, 4, 8, 8)).eval().to(device="meta", dtype=dtype)
    x = torch.empty(2, 3, 128, 192, device="meta", dtype=dtype)
    with torch.no_grad():
        image = model(x, x, torch.empty(2, 1, device="meta"))
        flows = model.estimate_flows(model.encode(x)[1], model.encode(x)[1])
    assert (image.device.type, image.dtype, tuple(image.shape)) == ("meta", dtype, (2, 3, 128, 192))
    assert all(level.dtype == torch.float32 and level.device.type == "meta" for level in flows[0] + flows[1])


@pytest.mark.parametrize("capability, native", [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_cuda_bf16_is_native_only_from_ampere(monkeypatch, capability, native):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert runtime.native_precision_support(torch.device("cuda"), "bf16") is native
    assert runtime.native_precision_support(torch.device("cuda"), "fp16")


@pytest.mark.parametrize("macos, native", [(13, False), (14, True), (15, True)])
def test_mps_bf16_needs_macos_14(monkeypatch, macos, native):
    monkeypatch.setattr(runtime, "_macos_major", lambda: macos)
    assert runtime.native_precision_support(torch.device("mps"), "bf16") is native
    assert runtime.native_precision_support(torch.device("mps"), "fp16")


# --------------------------------------------------------------------------- around the network

class TimeRecorder(torch.nn.Module):
    """Our network, recording the dtype and value of every dt it is given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.times = model, []

    def encode(self, image):
        return self.model.encode(image)

    def estimate_flows(self, features0, features1):
        return self.model.estimate_flows(features0, features1)

    def synthesize(self, *args):
        self.times.append(args[-1])
        return self.model.synthesize(*args)

    def forward(self, x0, x1, dt):
        self.times.append(dt)
        return self.model(x0, x1, dt)


@pytest.mark.parametrize("reuse", [True, False])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_dt_stays_float32_into_the_network_in_every_precision(dtype, reuse):
    import frame_schedule
    import image_pipeline
    import tiling
    import video_pipeline
    model = TimeRecorder(Interpolator(filters=4, flow_filters=(4, 4, 8, 8)).eval().to(dtype))
    x = torch.rand(1, 3, 64, 64).to(dtype)
    list(image_pipeline.run_schedule(model, x, x, frame_schedule.direct_schedule(2), reuse=reuse))
    renderer = video_pipeline.PairRenderer(runtime.ModelRuntime(model, torch.device("cpu"), dtype), "direct", reuse)
    list(renderer.render(runtime.ModelFrame(x), runtime.ModelFrame(x), [Fraction(1, 3)]))
    # float32's nearest values, not bf16's (1/3 would be 0.33398).
    expected = [torch.tensor(float(t)).item() for t in (Fraction(1, 3), Fraction(2, 3), Fraction(1, 3))]
    assert [(dt.dtype, dt.item()) for dt in model.times] == [(torch.float32, value) for value in expected]
    # Tiled, our network still takes float32; a forward-only file gets its frames' dtype.
    assert runtime.time_input(tiling.TiledInterpolator(model, 64), x, 0.5).dtype == torch.float32

    class ForwardOnly(torch.nn.Module):
        def forward(self, x0, x1, dt):
            return x0
    assert runtime.time_input(ForwardOnly(), x, Fraction(1, 3)).dtype == dtype


def test_gpu_ray_workers_are_refused_where_ray_sees_no_gpu():
    import ray_workers
    from video_jobs import JobError

    class FakeRay:
        def __init__(self, resources):
            self.resources = resources

        def cluster_resources(self):
            return self.resources
    with pytest.raises(JobError, match="needs a CUDA GPU that Ray can see"):
        ray_workers.gpus_per_worker(FakeRay({"CPU": 8.0}), 2)
    assert ray_workers.gpus_per_worker(FakeRay({"GPU": 1.0}), 2) == 0.5  # two workers share one GPU
    assert ray_workers.gpus_per_worker(FakeRay({"GPU": 4.0}), 2) == 1.0


def test_gpu_workers_on_a_mac_get_a_word_about_mps(monkeypatch):
    import video_interpolation
    from video_jobs import JobError
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    options = video_interpolation.VideoOptions(workers=2, runtime=runtime.RuntimeOptions(gpu=True))
    with pytest.raises(JobError, match="Ray cannot use Apple's MPS"):
        video_interpolation.prepare_workers(options, "unused.pt", (64, 64))


@pytest.mark.parametrize("device", ["cuda", "mps"])
@pytest.mark.parametrize("gigabytes, tiled", [(4, True), (80, False)])
def test_the_tile_budget_comes_from_the_devices_memory(monkeypatch, device, gigabytes, tiled):
    class Properties:
        total_memory = gigabytes * 2 ** 30
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: Properties())
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: gigabytes * 2 ** 30)
    budget = runtime.default_memory_budget_gb(torch.device(device))
    assert budget == pytest.approx(0.6 * gigabytes)
    # A 4K frame in fp16: tiled on a 4 GB device, in tiles that fit its budget; whole on 80 GB.
    import tiling
    model = Interpolator(filters=64).eval()
    made = runtime.apply_tiling(model, 2176, 3840, None, None, torch.float16, torch.device(device))
    assert isinstance(made, tiling.TiledInterpolator) is tiled
    if tiled:
        assert tiling.required_memory(2176, 3840, made.tile_size, made.tile_size, 64, 2) <= budget * 2 ** 30
