"""Weight files of every FILM PyTorch port in (checkpoints.py), ONNX out (onnx_export.py).

The foreign layouts' names are written here from what is known about the
files, independently of checkpoints.file_key: ComfyUI core's
film_net_fp16.safetensors (82 fp16 tensors, 68,882,302 bytes) and the
original PyTorch port's modules, both of which store the specialised flow
predictors and the fusion levels coarsest first. The shapes of the released
Style file follow from FILM's structure (TF code), computed by hand below.
"""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

import checkpoints
import export
import inference
import inference_video
import runtime
from conftest import ROOT, error_lines, random_interpolator, run_main
from interpolator import STYLE_CONFIG, Interpolator

pytestmark = pytest.mark.usefixtures("one_thread")

# Every per-level setting differs, so that a predictor or fusion level taken
# from the wrong place has the wrong shape (or conv count) and is refused.
CONFIG = dict(pyramid_levels=7, fusion_pyramid_levels=5, specialized_levels=3, sub_levels=4, filters=4,
              flow_convs=(2, 3, 1, 2), flow_filters=(4, 6, 8, 10))
SIZE = (270, 478)  # not a multiple of 64 (nor of 2 at the coarser levels)
COMFY_FILE_BYTES = 68_882_302  # Comfy-Org/frame_interpolation's film_net_fp16.safetensors


# --------------------------------------------------------------------------- the name table

# (our name, ComfyUI's name) for the Style network: rows written from the
# ports' module trees, not from checkpoints.file_key.
STYLE_ROWS = [
    ("feature_extractor.sub_extractor.convs.0.weight", "extract.extract_sublevels.convs.0.0.conv.weight"),
    ("feature_extractor.sub_extractor.convs.1.bias", "extract.extract_sublevels.convs.0.1.conv.bias"),
    ("feature_extractor.sub_extractor.convs.7.weight", "extract.extract_sublevels.convs.3.1.conv.weight"),
    ("flow_estimator.shared.convs.0.weight", "predict_flow._predictor._convs.0.conv.weight"),
    ("flow_estimator.shared.convs.4.bias", "predict_flow._predictor._convs.4.conv.bias"),
    ("flow_estimator.predictors.2.convs.0.weight", "predict_flow._predictors.0._convs.0.conv.weight"),
    ("flow_estimator.predictors.0.convs.3.weight", "predict_flow._predictors.2._convs.3.conv.weight"),
    ("fusion.levels.3.up_conv.weight", "fuse.convs.0.0.conv.weight"),
    ("fusion.levels.0.conv1.weight", "fuse.convs.3.1.conv.weight"),
    ("fusion.levels.1.conv2.bias", "fuse.convs.2.2.conv.bias"),
    ("fusion.output_conv.weight", "fuse.output_conv.weight"),
    ("fusion.output_conv.bias", "fuse.output_conv.bias"),
]

# Shapes of the released Style file (PyTorch layout [out, in, kh, kw]) by hand:
# feature channels per level 64, 192, 448, 960, 960 ...; a predictor sees both
# frames' features; a fusion level's input is 2 x (3 + features) + 4 flow channels.
STYLE_SHAPES = {
    "extract.extract_sublevels.convs.0.0.conv.weight": (64, 3, 3, 3),
    "extract.extract_sublevels.convs.3.1.conv.weight": (512, 512, 3, 3),
    "predict_flow._predictors.0._convs.0.conv.weight": (128, 2 * 448, 3, 3),  # level 2
    "predict_flow._predictors.1._convs.0.conv.weight": (64, 2 * 192, 3, 3),   # level 1
    "predict_flow._predictors.2._convs.0.conv.weight": (32, 2 * 64, 3, 3),    # level 0
    "predict_flow._predictors.2._convs.4.conv.weight": (2, 16, 1, 1),
    "predict_flow._predictor._convs.0.conv.weight": (256, 2 * 960, 3, 3),
    "fuse.convs.0.0.conv.weight": (512, 2 * (3 + 960) + 4, 2, 2),             # level 3 from level 4's input
    "fuse.convs.0.1.conv.weight": (512, 2 * (3 + 960) + 4 + 512, 3, 3),
    "fuse.convs.3.0.conv.weight": (64, 128, 2, 2),                            # level 0 from level 1
    "fuse.convs.3.1.conv.weight": (64, 2 * (3 + 64) + 4 + 64, 3, 3),
    "fuse.output_conv.weight": (3, 64, 1, 1),
}


def seed_name(comfy_name):
    return comfy_name.replace(".conv.", ".0.")


def test_the_tables_rows():
    comfy = checkpoints.name_table(STYLE_CONFIG, "comfyui")
    seed = checkpoints.name_table(STYLE_CONFIG, "seed")
    assert len(comfy) == len(seed) == 82  # the released file's tensor count
    for ours, name in STYLE_ROWS:
        assert comfy[ours] == name
        assert seed[ours] == seed_name(name)
    assert len(set(comfy.values())) == 82 and len(set(seed.values())) == 82
    # Ours: identity, with the one setting no shape reveals.
    assert checkpoints.name_table(STYLE_CONFIG, "ours") == {k: k for k in Interpolator(**STYLE_CONFIG).state_dict()}


def style_file_tensors(layout="comfyui", dtype=torch.float16):
    """Zero tensors of the released Style file's names and shapes (from the table and our network)."""
    with torch.device("meta"):
        template = Interpolator(**STYLE_CONFIG).state_dict()
    table = checkpoints.name_table(STYLE_CONFIG, layout)
    return {name: torch.zeros(template[key].shape, dtype=dtype) for key, name in table.items()}


def test_the_table_gives_the_released_files_shapes_and_size(tmp_path):
    tensors = style_file_tensors()
    for name, shape in STYLE_SHAPES.items():
        assert tuple(tensors[name].shape) == shape, name
    assert sum(t.numel() for t in tensors.values()) == 34_436_667
    path = tmp_path / "film_net_fp16.safetensors"
    checkpoints.save_safetensors(tensors, str(path))
    # The header spells every name and shape: the same byte count as Comfy-Org's file.
    assert path.stat().st_size == COMFY_FILE_BYTES
    config, state_dict, layout, stored = checkpoints.load_weights(str(path))
    assert layout == "comfyui" and stored == torch.float16
    assert config == {**STYLE_CONFIG, "flow_convs": (3, 3, 3, 3), "flow_filters": (32, 64, 128, 256)}


@pytest.mark.parametrize("layout", ["comfyui", "seed"])
def test_configuration_from_shapes(layout):
    tensors = {checkpoints.file_key(k, layout, 3, 5): v
               for k, v in random_interpolator(**CONFIG).state_dict().items() if k != "pyramid_levels_"}
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    assert checkpoints.detect_layout(tensors) == layout
    assert checkpoints.config_from_foreign_shapes(shapes, layout) == CONFIG


def test_the_predictors_in_the_tf_order_are_refused():
    """A file storing the specialised predictors finest first (not the ports' order) does not fit."""
    model = random_interpolator(**CONFIG)
    tensors = {}
    for key, value in model.state_dict().items():
        name = checkpoints.file_key(key, "comfyui", 3, 5)
        if name and "_predictors." in name:
            index = int(name.split(".")[2])
            name = name.replace(f"_predictors.{index}.", f"_predictors.{2 - index}.")
        if name:
            tensors[name] = value
    with pytest.raises(checkpoints.CheckpointError, match="of the wrong shape"):
        checkpoints.our_state_dict(tensors)


# --------------------------------------------------------------------------- files in

def write_weights(model, path, layout, dtype):
    """``model``'s weights in a ``layout`` file of ``dtype`` (safetensors or torch.save by extension)."""
    config = model.config
    tensors = {}
    for key, value in model.state_dict().items():
        name = checkpoints.file_key(key, layout, config["specialized_levels"], config["fusion_pyramid_levels"])
        if name is not None:
            tensors[name] = value.to(dtype) if value.is_floating_point() else value
    if str(path).endswith(".safetensors"):
        checkpoints.save_safetensors(tensors, str(path))
    else:
        torch.save(tensors, path)
    return path


def rounded(model, dtype):
    """A copy of ``model`` whose weights are rounded to ``dtype`` (what a file of that dtype holds), fp32."""
    copy = Interpolator(**model.config).eval()
    copy.load_state_dict({k: v.to(dtype).float() if v.is_floating_point() else v
                          for k, v in model.state_dict().items()})
    return copy


FILES = {
    "comfyui-fp16.safetensors": ("comfyui", torch.float16, "film_net_fp16.safetensors"),
    "seed-fp32.pt": ("seed", torch.float32, "seed.pt"),
    "seed-fp16.pth": ("seed", torch.float16, "seed.pth"),
    "ours-fp32.safetensors": ("ours", torch.float32, "ours.safetensors"),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """(random network, {case: file}, {dtype: our TorchScript of the weights that dtype stores})."""
    folder = tmp_path_factory.mktemp("weights")
    model = random_interpolator(seed=3, **CONFIG)
    files = {case: str(write_weights(model, folder / name, layout, dtype))
             for case, (layout, dtype, name) in FILES.items()}
    scripts = {}
    for dtype in (torch.float32, torch.float16):
        scripts[dtype] = str(folder / f"ours-{str(dtype)[6:]}.pt")
        torch.jit.script(rounded(model, dtype)).save(scripts[dtype])
    return model, files, scripts


def frame_pair(height, width, seed=0):
    x0, x1 = export.test_frames(height, width, seed)
    return x0, x1


@pytest.mark.parametrize("case", FILES)
def test_a_file_gives_our_torchscripts_frames(weights, case):
    _, files, scripts = weights
    dtype = FILES[case][1]
    loaded = runtime.load_model(files[case])
    ours = runtime.load_model(scripts[dtype])  # what our programs run for our TorchScript file
    # The TorchScript module itself (plain convolutions: another summation order).
    scripted = torch.jit.load(scripts[dtype]).eval()
    x0, x1 = frame_pair(*SIZE)
    dt = torch.full((1, 1), 0.5)
    with torch.no_grad(), torch.jit.optimized_execution(False):
        actual = loaded(x0, x1, dt)
        expected = ours(x0, x1, dt)
        by_script = scripted(x0, x1, dt)
    assert actual.dtype == torch.float32 and actual.shape == (1, 3) + SIZE
    assert (actual - expected).abs().max() <= 1e-6 * expected.abs().max()
    assert (actual - by_script).abs().max() <= 1e-5 * by_script.abs().max()


def write_png(path, array):
    import cv2
    cv2.imwrite(str(path), np.ascontiguousarray(array[:, :, ::-1]))
    return path


@pytest.mark.parametrize("case", ["comfyui-fp16.safetensors", "seed-fp32.pt"])
def test_inference_gives_the_same_frames_from_either_file(weights, tmp_path, capsys, case):
    import cv2
    _, files, scripts = weights
    x0, x1 = frame_pair(*SIZE, seed=5)
    to_png = lambda t: np.round(t[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    first = write_png(tmp_path / "a.png", to_png(x0))
    second = write_png(tmp_path / "b.png", to_png(x1))
    frames = {}
    for name, path in (("file", files[case]), ("torchscript", scripts[FILES[case][1]])):
        status, _, err = run_main(inference.main, capsys, path, first, second, "--frames", 1,
                                  "--save_path", tmp_path / name)
        assert status == 0, err
        frames[name] = [cv2.imread(str(tmp_path / name / f)) for f in sorted(os.listdir(tmp_path / name))]
    assert len(frames["file"]) == 3 and frames["file"][1].shape == SIZE + (3,)
    for made, expected in zip(frames["file"], frames["torchscript"]):
        assert np.array_equal(made, expected)


def test_a_torchscript_file_of_the_original_port_converts(weights, tmp_path):
    """Its state dict has the seed's names: checkpoints reads it (export.py converts it)."""
    model, _, scripts = weights

    class SeedLike(torch.nn.Module):  # the seed port's module tree, as far as names go
        def __init__(self, tensors):
            super().__init__()
            for name, value in tensors.items():
                *path, leaf = name.split(".")
                module = self
                for part in path:
                    if not hasattr(module, part):
                        module.add_module(part, torch.nn.Module())
                    module = getattr(module, part)
                module.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=False))

        def forward(self, x):
            return x

    path = write_weights(model, tmp_path / "seed.pt", "seed", torch.float16)
    scripted = torch.jit.script(SeedLike(torch.load(path)))
    scripted.save(str(tmp_path / "seed_script.pt"))
    assert checkpoints.file_kind(str(tmp_path / "seed_script.pt")) == "torchscript"
    rebuilt = checkpoints.interpolator_from_file(str(tmp_path / "seed_script.pt"))
    for key, value in rounded(model, torch.float16).state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


# --------------------------------------------------------------------------- bad files

def tiny_onnx(path):
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "not_film", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(path))


def bad_file(kind, folder, weights):
    model, files, _ = weights
    path = folder / {"truncated": "cut.safetensors", "onnx": "model.onnx", "not_a_state_dict": "list.pt"}.get(
        kind, f"{kind}.safetensors")
    if kind == "wrong_keys":
        checkpoints.save_safetensors({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, str(path))
    elif kind == "wrong_shape":
        tensors = checkpoints.read_tensors(files["comfyui-fp16.safetensors"])
        tensors["fuse.convs.1.1.conv.weight"] = tensors["fuse.convs.1.1.conv.weight"][:, :-1].contiguous()
        checkpoints.save_safetensors(tensors, str(path))
    elif kind == "missing_tensor":
        tensors = checkpoints.read_tensors(files["comfyui-fp16.safetensors"])
        del tensors["predict_flow._predictor._convs.2.conv.bias"]
        checkpoints.save_safetensors(tensors, str(path))
    elif kind == "truncated":
        data = open(files["comfyui-fp16.safetensors"], "rb").read()
        path.write_bytes(data[:len(data) * 2 // 3])
    elif kind == "truncated_header":
        data = open(files["comfyui-fp16.safetensors"], "rb").read()
        header = struct.unpack("<Q", data[:8])[0]
        path.write_bytes(data[:8 + header // 2])
    elif kind == "unreadable":
        path.write_bytes(b"this is not a model\n" * 100)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "onnx":
        tiny_onnx(path)
    elif kind == "not_a_state_dict":
        torch.save([torch.zeros(2)], path)
    return path


BAD = {
    "wrong_keys": "no FILM tensor names",
    "wrong_shape": "of the wrong shape (fuse.convs.1.1.conv.weight is",
    "missing_tensor": "1 missing (predict_flow._predictor._convs.2.conv.bias)",
    "truncated": "a truncated safetensors file",
    "truncated_header": "a truncated safetensors file",
    "unreadable": "none of safetensors, torch.save or TorchScript",
    "empty": "none of safetensors, torch.save or TorchScript",
    "onnx": "an ONNX model",
    "not_a_state_dict": "holds no state dict",
}


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_file_is_one_line_and_exit_1(weights, tmp_path, capsys, kind):
    path = bad_file(kind, tmp_path, weights)
    with pytest.raises(runtime.ModelLoadError, match=None) as error:
        runtime.load_model(str(path))
    assert len(str(error.value).splitlines()) == 1 and BAD[kind] in str(error.value), str(error.value)
    (tmp_path / "frames").mkdir()
    x = write_png(tmp_path / "frames" / "frame_00000.png", np.zeros((64, 64, 3), np.uint8))
    write_png(tmp_path / "frames" / "frame_00001.png", np.zeros((64, 64, 3), np.uint8))
    for main, argv in ((inference.main, [path, x, x, "--save_path", tmp_path / "out"]),
                       (inference_video.main, [path, tmp_path / "frames", "--save_path", tmp_path / "out"]),
                       (export.main, [path, tmp_path / "out.pt"])):
        status, out, err = run_main(main, capsys, *argv)
        lines = error_lines(err)
        assert status == 1 and len(lines) == 1 and lines[0].startswith("error: ") and BAD[kind] in lines[0], err
        assert not (tmp_path / "out").exists() and not (tmp_path / "out.pt").exists()


def test_a_bad_file_through_the_command_line(weights, tmp_path):
    path = bad_file("truncated", tmp_path, weights)
    result = subprocess.run([sys.executable, str(ROOT / "export.py"), str(path), str(tmp_path / "film.pt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "truncated" in result.stderr
    assert not (tmp_path / "film.pt").exists()


# --------------------------------------------------------------------------- export.py from weight files

@pytest.mark.parametrize("flags, kind", [([], "torchscript"), (["--statedict"], "safetensors"),
                                         (["--statedict", "--fp32"], "torch")])
def test_export_converts_a_comfyui_file(weights, tmp_path, capsys, flags, kind):
    model, files, scripts = weights
    save_path = tmp_path / ("film.safetensors" if kind == "safetensors" else "film.pt")
    status, out, err = run_main(export.main, capsys, files["comfyui-fp16.safetensors"], save_path, *flags)
    assert status == 0, err
    assert "ComfyUI core's names" in out and "Written file:" in out
    assert checkpoints.file_kind(str(save_path)) == kind
    if kind == "safetensors":
        with open(save_path, "rb") as file:
            header = file.read(8 + struct.unpack("<Q", file.read(8))[0])
        assert b"pyramid_levels_" in header  # ours: the setting no shape reveals travels with it
    rebuilt = runtime.load_model(str(save_path))
    for key, value in rounded(model, torch.float16).state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


def test_export_of_a_file_needs_no_tensorflow(weights, tmp_path):
    """A weight file converts in a process where TensorFlow cannot be imported."""
    _, files, _ = weights
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "tensorflow.py").write_text('raise ImportError("TensorFlow must not be imported")\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(ROOT)]))
    result = subprocess.run([sys.executable, str(ROOT / "export.py"), files["seed-fp16.pth"], str(tmp_path / "f.pt")],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f.pt").exists()


# --------------------------------------------------------------------------- ONNX out

onnx_required = pytest.mark.skipif(
    any(__import__("importlib").util.find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="needs onnx, onnxscript and onnxruntime")


@pytest.fixture(scope="module")
def tensorflow():
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def onnx_from_savedmodel(original_savedmodel, tmp_path_factory, tensorflow):
    """export.py --onnx of the SavedModel the original code wrote: (path, stdout)."""
    path = tmp_path_factory.mktemp("onnx") / "film.onnx"
    status = export.main([str(original_savedmodel), str(path), "--onnx"])
    assert status == 0
    return path


def tf_image(tf, saved_model, x0, x1):
    loaded = tf.saved_model.load(str(saved_model))
    nhwc = lambda t: tf.constant(t.permute(0, 2, 3, 1).numpy())
    outputs = loaded({"x0": nhwc(x0), "x1": nhwc(x1), "time": tf.constant([[0.5]] * x0.shape[0])}, training=False)
    return outputs["image"].numpy().transpose(0, 3, 1, 2)


@onnx_required
@pytest.mark.parametrize("batch, size", [(1, (270, 480)), (2, (200, 328))], ids=["270x480", "2x200x328"])
def test_onnx_runtime_matches_tensorflow(onnx_from_savedmodel, original_savedmodel, tensorflow, batch, size):
    import onnx_export
    pairs = [frame_pair(*size, seed=s) for s in range(batch)]
    x0 = torch.cat([p[0] for p in pairs])
    x1 = torch.cat([p[1] for p in pairs])
    expected = tf_image(tensorflow, original_savedmodel, x0, x1)
    actual = onnx_export.run(onnx_export.session(str(onnx_from_savedmodel)), x0, x1, torch.full((batch, 1), 0.5))
    assert actual.shape == expected.shape
    assert onnx_export.relative_error(actual, expected) <= 2e-5


@onnx_required
def test_onnx_graph_is_for_tensorrt(onnx_from_savedmodel):
    import onnx
    import onnx_export
    model = onnx.load(str(onnx_from_savedmodel))
    assert onnx_export.opset(str(onnx_from_savedmodel)) == onnx_export.OPSET == 18
    ops = set(onnx_export.op_types(str(onnx_from_savedmodel)))
    assert ops <= onnx_export.TENSORRT_OPS and "GridSample" in ops and "Resize" in ops
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert inputs["x0"][1] == 3 and all(isinstance(d, str) for d in inputs["x0"][::2] + inputs["x0"][3:])
    assert set(inputs) == {"x0", "x1", "dt"} and isinstance(inputs["dt"][0], str)
    # Weights inside: one file (no external data).
    assert not [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]


@onnx_required
def test_onnx_from_a_weight_file_matches_our_network(tmp_path, capsys):
    """A small network (fewer levels: a quicker export) from a seed-port file, through export.py --onnx."""
    import onnx_export
    config = dict(pyramid_levels=4, fusion_pyramid_levels=3, specialized_levels=2, sub_levels=2, filters=3,
                  flow_convs=(1, 2, 1), flow_filters=(4, 6, 4))
    model = random_interpolator(seed=4, **config)
    source = write_weights(model, tmp_path / "seed.pt", "seed", torch.float32)
    save_path = tmp_path / "film.onnx"
    status, out, err = run_main(export.main, capsys, source, save_path, "--onnx", "--pyramid_levels", 4)
    assert status == 0, err
    assert "ONNX Runtime (CPU) on 2 x 328x200, image vs our network" in out
    run = onnx_export.session(str(save_path))
    for height, width in ((16, 16), (67, 101)):
        x0, x1 = frame_pair(height, width)
        dt = torch.full((1, 1), 0.3)
        with torch.no_grad():
            expected = model(x0, x1, dt).numpy()
        assert onnx_export.relative_error(onnx_export.run(run, x0, x1, dt), expected) <= 2e-5


# --------------------------------------------------------------------------- the install

def test_pyproject_lists_every_module_and_script():
    """The flat layout's module list is written out: it must name every top-level module, and only those."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    modules = set(project["tool"]["setuptools"]["py-modules"])
    assert modules == {p.stem for p in ROOT.glob("*.py")}
    for target in project["project"]["scripts"].values():
        module, _, function = target.partition(":")
        assert module in modules and f"def {function}(" in (ROOT / f"{module}.py").read_text()
    base = " ".join(project["project"]["dependencies"])
    assert "safetensors" in base and "tensorflow" not in base and "ray" not in base and "onnx" not in base
