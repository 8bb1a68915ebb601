"""One training step of our port against the ORIGINAL's (train_step.npz, see tests/data/README.md).

The reference holds the original small model's weights (by TF variable name), a batch of
two triplets, and for the loss weights before (`early`: l1 1, vgg 1, style 0) and after
(`late`: 1, 0.25, 40) step 1.5M of film_net-Style.gin: the model's image with
training=True, the loss parts and total, and the gradient of every variable; and the weights
after one Keras Adam step on the `late` gradients. Our model is built from those weights
(convert.convert_tf_variables), its gradients compared by TF name (convert.tf_name_for).

Targets: image within 2e-5 (max abs), parts and total 1e-5 relative, every gradient 1e-4
norm-relative, weights after Adam within 1e-6.
"""
import numpy as np
import pytest
import torch

import convert
from conftest import REFERENCE
from interpolator import Interpolator
from training import optim, recipes, step, vgg19

TRAINING = REFERENCE / "training"
PARTS = ("l1", "vgg", "style")


@pytest.fixture(scope="module")
def reference():
    with np.load(TRAINING / "train_step.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def vgg():
    return vgg19.VGG19Features.from_file(str(TRAINING / "vgg19_narrow.mat"))


def variables(reference, prefix):
    return {key[len(prefix):]: value for key, value in reference.items() if key.startswith(prefix)}


def build(reference):
    config, state_dict = convert.convert_tf_variables(variables(reference, "before/"), pyramid_levels=7)
    model = Interpolator(**config)
    model.load_state_dict(state_dict)
    return model


def nchw(array):
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def batch_of(reference):
    return {"x0": nchw(reference["x0"]), "x1": nchw(reference["x1"]), "y": nchw(reference["y"]),
            "time": torch.from_numpy(reference["time"])}


def by_tf_name(model):
    levels = model.config["fusion_pyramid_levels"]
    return {convert.tf_name_for(key, levels): param for key, param in model.named_parameters()}


def in_torch_layout(array):
    return convert.tf_to_torch(array).numpy()


def relative(got, want):
    return float(np.linalg.norm(np.ravel(got) - np.ravel(want)) / np.linalg.norm(np.ravel(want)))


def test_the_reference_is_the_small_original_model(reference):
    model = build(reference)
    assert model.config["filters"] == 6 and model.config["flow_filters"] == (8, 16, 16, 32)
    assert sum(p.numel() for p in model.parameters()) == 347_845 and len(list(model.parameters())) == 82


@pytest.mark.parametrize("label", ("early", "late"))
def test_forward_losses_and_gradients_equal_the_originals(reference, vgg, label, one_thread):
    model = build(reference)
    weights = reference[f"{label}/weights"]
    loss = step.WeightedLoss({name: optim.PiecewiseConstant.constant(float(w)) for name, w in zip(PARTS, weights)},
                             vgg)
    image, total, parts = step.forward_and_loss(model, loss, batch_of(reference), 0)
    total.backward()
    assert np.abs(image.detach().numpy() - reference[f"{label}/image"].transpose(0, 3, 1, 2)).max() <= 2e-5
    for name, want in zip(PARTS, reference[f"{label}/parts"]):
        assert relative(parts[name].item(), want) <= 1e-5, name
    assert relative(total.item(), reference[f"{label}/total"]) <= 1e-5
    gradients = variables(reference, f"{label}/grad/")
    params = by_tf_name(model)
    assert sorted(params) == sorted(gradients)
    worst = max(relative(params[name].grad.numpy(), in_torch_layout(g)) for name, g in gradients.items())
    assert worst <= 1e-4


def test_recipe_weights_are_the_references(reference):
    style = recipes.loss_weights("style")
    early = [style[name](1_500_000) for name in PARTS]
    late = [style[name](1_500_001) for name in PARTS]
    assert early == list(reference["early/weights"]) and late == list(reference["late/weights"])


def test_one_adam_step_equals_keras(reference, vgg, one_thread):
    """Our whole step (late weights, our gradients, KerasAdam) lands on the original's weights."""
    model = build(reference)
    optimizer = optim.KerasAdam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-7)
    loss = step.WeightedLoss(recipes.loss_weights("style"), vgg)
    step.train_step(model, optimizer, loss, batch_of(reference), 1_500_001, learning_rate=1e-4)
    after = variables(reference, "after_adam/")
    worst = max(float(np.abs(p.detach().numpy() - in_torch_layout(after[name])).max())
                for name, p in by_tf_name(model).items())
    assert worst <= 1e-6


def test_keras_adam_on_the_originals_gradients_where_torch_adam_differs(reference):
    """The optimizer alone; torch.optim.Adam puts epsilon elsewhere and misses by far more than 1e-6."""
    errors = {}
    for kind in ("keras", "torch"):
        model = build(reference)
        params = by_tf_name(model)
        for name, gradient in variables(reference, "late/grad/").items():
            params[name].grad = convert.tf_to_torch(gradient).to(memory_format=torch.preserve_format)
        if kind == "keras":
            optimizer = optim.KerasAdam(model.parameters(), lr=1e-4)
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
        optimizer.step()
        after = variables(reference, "after_adam/")
        errors[kind] = max(float(np.abs(p.detach().numpy() - in_torch_layout(after[n])).max())
                           for n, p in params.items())
    assert errors["keras"] <= 1e-6 < 1e-5 < errors["torch"]


def test_schedules_match_keras():
    decay = recipes.learning_rate()
    assert decay(0) == pytest.approx(1e-4) and decay(749_999) == decay(0)
    assert decay(750_000) == pytest.approx(1e-4 * 0.464158, rel=1e-6)
    assert decay(2_250_000) == pytest.approx(1e-4 * 0.464158 ** 3, rel=1e-6)
    smooth = optim.ExponentialDecay(1e-4, 750_000, 0.464158, staircase=False)
    assert smooth(375_000) == pytest.approx(1e-4 * 0.464158 ** 0.5, rel=1e-6)
    piecewise = optim.PiecewiseConstant([10, 20], [1.0, 2.0, 3.0])
    assert [piecewise(s) for s in (0, 10, 11, 20, 21)] == [1.0, 1.0, 2.0, 2.0, 3.0]


def test_a_loss_scaled_step_lands_where_the_plain_one_does(reference, vgg, one_thread):
    """The fp16 path's GradScaler (here in fp32, where it is exact up to rounding) changes nothing but the scale."""
    results = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)):
        model = build(reference)
        optimizer = optim.KerasAdam(model.parameters(), lr=1e-4)
        loss = step.WeightedLoss(recipes.loss_weights("style"), vgg)
        step.train_step(model, optimizer, loss, batch_of(reference), 1_500_001, 1e-4, scaler=scaler)
        results.append({k: v.detach().clone() for k, v in model.named_parameters()})
    assert max(float((results[0][k] - results[1][k]).abs().max()) for k in results[0]) <= 1e-7


# Autocast against the original's fp32 step. Bounds are about twice what was measured (2026-12-03, emulated
# bf16/fp16 on a CPU without native kernels; the arithmetic is the same where they are native): bf16 keeps
# 8 bits of mantissa, fp16 11, so the image and losses move by ~1e-2 / ~1e-3 and the gradients by more.
# fp16's loss scale is what GradScaler would settle on for the case: at the early weights small gradients
# underflow unscaled (worst 5.8e-2), at the late ones (style weight 40) a scale of 2^8 already overflows.
AUTOCAST_CASES = [  # (precision, label, loss scale, image, total, worst gradient, median gradient)
    ("bf16", "early", 1.0, 2.5e-2, 1e-2, 1.2e-1, 2e-2),
    ("bf16", "late", 1.0, 2.5e-2, 1e-2, 1.2e-1, 2e-2),
    ("fp16", "early", 2.0 ** 8, 4e-3, 2e-3, 1.5e-2, 4e-3),
    ("fp16", "late", 1.0, 4e-3, 2e-3, 1.5e-2, 4e-3),
]


@pytest.mark.parametrize("precision, label, scale, image_bound, total_bound, worst_bound, median_bound",
                         AUTOCAST_CASES)
def test_an_autocast_step_stays_near_the_originals_fp32_step(reference, vgg, one_thread, precision, label, scale,
                                                             image_bound, total_bound, worst_bound, median_bound):
    model = build(reference)
    weights = reference[f"{label}/weights"]
    loss = step.WeightedLoss({name: optim.PiecewiseConstant.constant(float(w)) for name, w in zip(PARTS, weights)},
                             vgg)
    with torch.autocast("cpu", dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision]):
        image, total, _ = step.forward_and_loss(model, loss, batch_of(reference), 0)
    assert image.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]  # autocast did run
    (total * scale).backward()
    want_image = reference[f"{label}/image"].transpose(0, 3, 1, 2)
    assert np.abs(image.detach().float().numpy() - want_image).max() <= image_bound
    assert relative(total.item(), reference[f"{label}/total"]) <= total_bound
    params = by_tf_name(model)
    errors = [relative(params[name].grad.numpy() / scale, in_torch_layout(g))
              for name, g in variables(reference, f"{label}/grad/").items()]
    assert all(np.isfinite(errors)) and max(errors) <= worst_bound and np.median(errors) <= median_bound
