"""The FILM network in plain TensorFlow (tf.Module, no Keras): the TensorFlow side of comparisons.

It re-creates the network of google-research/frame-interpolation with the same
variables and numerics, so that tests can compare the PyTorch port with a TF
model holding arbitrary weights, and write SavedModels that behave like the
ones Google released (which Keras 2's ``model.save`` wrote).

Conventions, once for the whole module:

* NHWC, float32. Conv kernels are ``[kh, kw, in, out]`` (TF layout).
* Flow channel 0 is the x displacement, channel 1 is y (see warp()).
* Pyramids are Python lists, finest level first.
* Variable names are the original's Keras names, e.g.
  ``feat_net/sub_extractor/cfeat_conv_0/kernel:0``, and ``model.variables``
  lists them in the original's order: feature extractor, flow predictors,
  fusion; kernel before bias. The original's fusion convs have no names of
  their own: Keras numbered them ``conv2d``, ``conv2d_1``, ... in creation order
  (finest level first, output conv last), per process, so the numbers can
  start at an offset (``fusion_conv_offset``).
* Called as ``model({'x0': x0, 'x1': x1, 'time': t}, training=False)``, the
  model (and a SavedModel of it, reloaded) returns what the original returns:
  a dict with the tensors ``image``, ``x0_warped``, ``x1_warped`` (B, H, W, 3)
  and the LISTS ``forward_residual_flow_pyramid``,
  ``backward_residual_flow_pyramid`` (pyramid_levels tensors (B, h, w, 2)),
  ``forward_flow_pyramid`` and ``backward_flow_pyramid``
  (fusion_pyramid_levels tensors). Like the original it ignores ``time`` and
  always synthesises t = 0.5. The calls run one traced graph (tf.function)
  whose input shapes are (None, None, None, 3) and (None, 1).
* "Flat" outputs (flatten_outputs, output_keys) name pyramid level i of
  ``forward_flow_pyramid`` ``forward_flow_pyramid/i``, as the reference
  vectors' .npz files do; the serving signature uses these keys too.

Public API:
    FilmModel(config, fusion_conv_offset=0, seed=0)    (also build_tf_film)
    output_keys(config), flatten_outputs(outputs), input_specs()
    warp(image, flow)
Weights by the original's variable names: ``benchmarks.tf_film_weights``;
SavedModels like Google's: ``tests/tf_savedmodel.py``. The benchmark's
TensorFlow row runs it; ``tests/test_tf_fixture.py`` holds it to the
original code's outputs.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TF is imported

import types  # noqa: E402
from typing import Any, Dict, List, Mapping  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = [
    "FilmModel",
    "build_tf_film",
    "output_keys",
    "flatten_outputs",
    "input_specs",
    "warp",
]

_CONFIG_KEYS = ("pyramid_levels", "fusion_pyramid_levels", "specialized_levels",
                "sub_levels", "flow_convs", "flow_filters", "filters")

IMAGE_OUTPUTS = ("image", "x0_warped", "x1_warped")
PYRAMID_OUTPUTS = ("forward_residual_flow_pyramid",
                   "backward_residual_flow_pyramid", "forward_flow_pyramid",
                   "backward_flow_pyramid")


def _check_config(config: Mapping[str, Any]) -> Dict[str, Any]:
  missing = [k for k in _CONFIG_KEYS if k not in config]
  if missing:
    raise ValueError(f"FILM config is missing keys {missing}")
  cfg = {k: config[k] for k in _CONFIG_KEYS}
  cfg["flow_convs"] = [int(v) for v in cfg["flow_convs"]]
  cfg["flow_filters"] = [int(v) for v in cfg["flow_filters"]]
  for k in _CONFIG_KEYS:
    if k not in ("flow_convs", "flow_filters"):
      cfg[k] = int(cfg[k])
  if len(cfg["flow_convs"]) != len(cfg["flow_filters"]):
    raise ValueError("flow_convs and flow_filters must have the same length")
  if len(cfg["flow_convs"]) < cfg["specialized_levels"] + 1:
    raise ValueError("flow_convs/flow_filters need specialized_levels + 1 "
                     "entries (the last one is the shared predictor)")
  if not 2 <= cfg["fusion_pyramid_levels"] <= cfg["pyramid_levels"]:
    raise ValueError("need 2 <= fusion_pyramid_levels <= pyramid_levels")
  if cfg["specialized_levels"] > cfg["pyramid_levels"]:
    raise ValueError("specialized_levels must be <= pyramid_levels")
  if cfg["specialized_levels"] < cfg["sub_levels"] - 1:
    # The shared predictor would see features of different widths (in the
    # original, Keras would refuse to reuse the built layer).
    raise ValueError("specialized_levels must be >= sub_levels - 1")
  return cfg


def output_keys(config: Mapping[str, Any]) -> List[str]:
  """Flat output keys (see flatten_outputs) of the model for `config`."""
  cfg = _check_config(config)
  keys = list(IMAGE_OUTPUTS)
  for name in PYRAMID_OUTPUTS:
    n = (cfg["pyramid_levels"] if "residual" in name
         else cfg["fusion_pyramid_levels"])
    keys += [f"{name}/{i}" for i in range(n)]
  return keys


def flatten_outputs(outputs: Mapping[str, Any]) -> Dict[str, Any]:
  """{key: value} with every list output split into 'key/0', 'key/1', ...

  Values are returned as they are (tensors stay tensors; call np.asarray on
  them for arrays).
  """
  flat = {}
  for key, value in outputs.items():
    if isinstance(value, (list, tuple)):
      for i, level in enumerate(value):
        flat[f"{key}/{i}"] = level
    else:
      flat[key] = value
  return flat


def input_specs() -> Dict[str, tf.TensorSpec]:
  """The original's input signature: x0, x1 (None, None, None, 3), time (None, 1)."""
  image = (None, None, None, 3)
  return {"x0": tf.TensorSpec(image, tf.float32, name="x0"),
          "x1": tf.TensorSpec(image, tf.float32, name="x1"),
          "time": tf.TensorSpec((None, 1), tf.float32, name="time")}


# ----------------------------------------------------------------------------
# Numerics shared by several parts.
# ----------------------------------------------------------------------------


def _lrelu(x):
  return tf.nn.leaky_relu(x, alpha=0.2)


def _avg_pool(x):
  """Keras AveragePooling2D(pool_size=2, strides=2, padding='valid')."""
  return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="VALID")


def _resize_like(x, like, method=tf.image.ResizeMethod.BILINEAR):
  return tf.image.resize(x, tf.shape(like)[1:3], method=method)


def warp(image: tf.Tensor, flow: tf.Tensor) -> tf.Tensor:
  """Bilinear backward warp: out[y, x] = image[y + flow[..., 1], x + flow[..., 0]].

  FLOW CHANNEL 0 IS x (dx), CHANNEL 1 IS y (dy), as in the original
  models/film_net/util.py, which calls
  ``tfa.image.dense_image_warp(image, -flow[..., ::-1])`` (tfa itself wants
  (y, x); FILM reverses the channels "for compatibility with older saved
  models"). The reference outputs confirm this order.

  Same ops and numerics as tfa's dense_image_warp / interpolate_bilinear: per
  axis the lower neighbour is clip(floor(q), 0, size - 2) and the weight
  clip(q - floor, 0, 1) (samples outside the image are clamped to the
  border); the four neighbours are gathered from the image flattened to
  [B * H * W, C]. Needs spatial sizes >= 2.
  """
  flow = tf.convert_to_tensor(flow)
  image = tf.convert_to_tensor(image)
  shape = tf.shape(image)
  batch, height, width = shape[0], shape[1], shape[2]
  channels = image.shape[-1] if image.shape[-1] is not None else shape[3]
  grid_y, grid_x = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
  grid = tf.cast(tf.stack([grid_y, grid_x], axis=-1), flow.dtype)[tf.newaxis]
  # dense_image_warp computes grid - f with f = -flow[..., ::-1]; in IEEE
  # arithmetic a - (-b) == a + b exactly. query[..., 0] is y, [..., 1] is x.
  query = grid + flow[..., ::-1]

  zero_q = tf.constant(0.0, query.dtype)
  zero_i = tf.constant(0.0, image.dtype)
  one_i = tf.constant(1.0, image.dtype)
  floors, ceils, alphas = [], [], []
  for axis, size in ((0, height), (1, width)):
    q = query[..., axis]
    max_floor = tf.cast(size - 2, q.dtype)
    floor = tf.minimum(tf.maximum(zero_q, tf.floor(q)), max_floor)
    int_floor = tf.cast(floor, tf.int32)
    floors.append(int_floor)
    ceils.append(int_floor + 1)
    alpha = tf.minimum(tf.maximum(zero_i, tf.cast(q - floor, image.dtype)),
                       one_i)
    alphas.append(alpha[..., tf.newaxis])

  flat_image = tf.reshape(image, [-1, channels])
  batch_offsets = tf.reshape(tf.range(batch) * (height * width), [-1, 1, 1])

  def gather(ys, xs):
    return tf.gather(flat_image, batch_offsets + ys * width + xs)

  top_left = gather(floors[0], floors[1])
  top_right = gather(floors[0], ceils[1])
  bottom_left = gather(ceils[0], floors[1])
  bottom_right = gather(ceils[0], ceils[1])
  interp_top = alphas[1] * (top_right - top_left) + top_left
  interp_bottom = alphas[1] * (bottom_right - bottom_left) + bottom_left
  return alphas[0] * (interp_bottom - interp_top) + interp_top


# ----------------------------------------------------------------------------
# Parts with weights. Each is a tf.Module; the variables get the original's
# full Keras names explicitly (no name scopes involved).
# ----------------------------------------------------------------------------


class _Conv(tf.Module):
  """Keras Conv2D(padding='same'): conv2d, bias_add, then the activation."""

  def __init__(self, name: str, kernel_size, in_channels: int, filters: int,
               activation, rng: np.random.Generator):
    super().__init__()
    kh, kw = ((kernel_size, kernel_size) if isinstance(kernel_size, int)
              else kernel_size)
    # Keras' defaults: Glorot-uniform kernel, zero bias.
    limit = np.sqrt(6.0 / ((in_channels + filters) * kh * kw))
    kernel = rng.uniform(-limit, limit, (kh, kw, in_channels, filters))
    self.kernel = tf.Variable(kernel.astype(np.float32), name=f"{name}/kernel")
    self.bias = tf.Variable(np.zeros(filters, np.float32), name=f"{name}/bias")
    self.activation = activation

  def __call__(self, x):
    x = tf.nn.bias_add(tf.nn.conv2d(x, self.kernel, strides=1, padding="SAME"),
                       self.bias)
    return x if self.activation is None else self.activation(x)

  def ordered_variables(self):
    return [self.kernel, self.bias]


def _feature_channels(cfg, level: int) -> int:
  """Channels of the feature pyramid at `level`: sub-level j has filters << j."""
  return sum(cfg["filters"] << j
             for j in range(min(level, cfg["sub_levels"] - 1) + 1))


class _FeatureExtractor(tf.Module):
  """'feat_net': cascaded features from a shared 'sub_extractor'.

  Sub level i is two 3x3 lrelu convs 'cfeat_conv_{2i}', 'cfeat_conv_{2i+1}'
  with filters << i channels, then an average pool.
  """

  def __init__(self, cfg, rng):
    super().__init__()
    self.sub_levels = cfg["sub_levels"]
    self.convs = []
    in_channels = 3
    for i in range(cfg["sub_levels"]):
      out = cfg["filters"] << i
      for j in (2 * i, 2 * i + 1):
        self.convs.append(_Conv(f"feat_net/sub_extractor/cfeat_conv_{j}", 3,
                                in_channels, out, _lrelu, rng))
        in_channels = out

  def _sub_pyramid(self, image, n):
    head = image
    pyramid = []
    for i in range(n):
      head = self.convs[2 * i + 1](self.convs[2 * i](head))
      pyramid.append(head)
      if i < n - 1:
        head = _avg_pool(head)
    return pyramid

  def __call__(self, image_pyramid):
    levels = len(image_pyramid)
    sub_pyramids = [
        self._sub_pyramid(image_pyramid[i], min(levels - i, self.sub_levels))
        for i in range(levels)
    ]
    # Level i concatenates sub level j of the sub-pyramid started j levels
    # finer, for every j that exists.
    feature_pyramid = []
    for i in range(levels):
      features = sub_pyramids[i][0]
      for j in range(1, self.sub_levels):
        if j <= i:
          features = tf.concat([features, sub_pyramids[i - j][j]], axis=-1)
      feature_pyramid.append(features)
    return feature_pyramid

  def ordered_variables(self):
    return [v for conv in self.convs for v in conv.ordered_variables()]


class _FlowEstimator(tf.Module):
  """conv_0..conv_{n-1} 3x3 lrelu, conv_n 1x1 nf//2 lrelu, conv_{n+1} 1x1 2."""

  def __init__(self, name, num_convs, num_filters, in_channels, rng):
    super().__init__()
    self.convs = []
    for i in range(num_convs):
      self.convs.append(_Conv(f"{name}/conv_{i}", 3, in_channels, num_filters,
                              _lrelu, rng))
      in_channels = num_filters
    self.convs.append(_Conv(f"{name}/conv_{num_convs}", 1, num_filters,
                            num_filters // 2, _lrelu, rng))
    self.convs.append(_Conv(f"{name}/conv_{num_convs + 1}", 1,
                            num_filters // 2, 2, None, rng))

  def __call__(self, features_a, features_b):
    net = tf.concat([features_a, features_b], axis=-1)
    for conv in self.convs:
      net = conv(net)
    return net

  def ordered_variables(self):
    return [v for conv in self.convs for v in conv.ordered_variables()]


class _PyramidFlowEstimator(tf.Module):
  """'predict_flow': coarse-to-fine residual flows, returned finest first."""

  def __init__(self, cfg, rng):
    super().__init__()
    self.specialized = []
    for i in range(cfg["specialized_levels"]):
      self.specialized.append(_FlowEstimator(
          f"predict_flow/flow_predictor_{i}", cfg["flow_convs"][i],
          cfg["flow_filters"][i], 2 * _feature_channels(cfg, i), rng))
    self.shared = _FlowEstimator(
        "predict_flow/flow_predictor_shared", cfg["flow_convs"][-1],
        cfg["flow_filters"][-1],
        2 * _feature_channels(cfg, cfg["specialized_levels"]), rng)
    self.levels = cfg["pyramid_levels"]

  def _predictor(self, level):
    return (self.specialized[level] if level < len(self.specialized)
            else self.shared)

  def __call__(self, feature_pyramid_a, feature_pyramid_b):
    levels = len(feature_pyramid_a)
    v = self._predictor(levels - 1)(feature_pyramid_a[-1],
                                    feature_pyramid_b[-1])
    residuals = [v]
    for i in reversed(range(levels - 1)):
      v = _resize_like(2 * v, feature_pyramid_a[i])
      warped = warp(feature_pyramid_b[i], v)
      residual = self._predictor(i)(feature_pyramid_a[i], warped)
      residuals.append(residual)
      v = residual + v
    return list(reversed(residuals))

  def ordered_variables(self):
    return [v for p in self.specialized + [self.shared]
            for v in p.ordered_variables()]


class _Fusion(tf.Module):
  """'fusion': U-Net style decoder from the coarsest aligned level up.

  Level i (finest 0) has a 2x2 conv (no activation) after the nearest-neighbour
  upsampling, then two 3x3 lrelu convs, with nf_i = filters << min(i,
  specialized_levels) channels; a 1x1 conv to 3 channels ends it.
  """

  def __init__(self, cfg, offset, rng):
    super().__init__()
    levels = cfg["fusion_pyramid_levels"]
    m = cfg["specialized_levels"]
    widths = [cfg["filters"] << min(i, m) for i in range(levels - 1)]
    # What the fusion sees at each level: both warped (image + features),
    # then the backward and forward flows.
    aligned = [2 * (3 + _feature_channels(cfg, i)) + 4 for i in range(levels)]
    numbers = iter(range(offset, offset + 3 * (levels - 1) + 1))

    def conv(*args):
      n = next(numbers)
      return _Conv(f'fusion/conv2d{f"_{n}" if n else ""}', *args, rng=rng)

    self.convs = []  # per level, finest first, in the original's order
    for i in range(levels - 1):
      coarser = aligned[i + 1] if i == levels - 2 else widths[i + 1]
      self.convs.append([
          conv([2, 2], coarser, widths[i], None),
          conv([3, 3], aligned[i] + widths[i], widths[i], _lrelu),
          conv([3, 3], widths[i], widths[i], _lrelu),
      ])
    self.output_conv = conv(1, widths[0], 3, None)

  def __call__(self, pyramid):
    net = pyramid[-1]
    for i in reversed(range(len(self.convs))):
      net = _resize_like(net, pyramid[i],
                         method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
      net = self.convs[i][0](net)
      net = tf.concat([pyramid[i], net], axis=-1)
      net = self.convs[i][2](self.convs[i][1](net))
    return self.output_conv(net)

  def ordered_variables(self):
    convs = [c for level in self.convs for c in level] + [self.output_conv]
    return [v for c in convs for v in c.ordered_variables()]


# ----------------------------------------------------------------------------
# The model.
# ----------------------------------------------------------------------------


def _flow_pyramid_synthesis(residual_pyramid):
  """Residual pyramid -> flow pyramid (both finest first)."""
  flow = residual_pyramid[-1]
  flow_pyramid = [flow]
  for residual in reversed(residual_pyramid[:-1]):
    flow = residual + _resize_like(2 * flow, residual)
    flow_pyramid.append(flow)
  return list(reversed(flow_pyramid))


def _multiply_pyramid(pyramid, scalar):
  """Each level times a per-batch-item scalar (B,), as the original does it."""
  return [tf.transpose(tf.transpose(level, [3, 1, 2, 0]) * scalar,
                       [3, 1, 2, 0]) for level in pyramid]


class FilmModel(tf.Module):
  """The FILM interpolator; see the module docstring for calls and names.

  Args:
    config: pyramid_levels, fusion_pyramid_levels, specialized_levels,
      sub_levels, flow_convs, flow_filters, filters.
    fusion_conv_offset: number of the first fusion conv: 0 names them
      conv2d, conv2d_1, ... like a fresh Keras process (and Google's
      SavedModels); n > 0 gives conv2d_n, conv2d_{n+1}, ...
    seed: for the initial weights (Glorot-uniform kernels, zero biases, as
      Keras would); set real ones with set_weights_by_name.
  """

  # Plain attributes here instead of tf.Module's properties (which collect
  # variables sorted by attribute name): lists in the original's order, which
  # tf.saved_model.save stores, so that a reloaded SavedModel has `variables`
  # and `trainable_variables` in that order, as a Keras SavedModel has.
  variables = ()
  trainable_variables = ()

  def __init__(self, config: Mapping[str, Any], fusion_conv_offset: int = 0,
               seed: int = 0):
    super().__init__(name="film")
    if fusion_conv_offset < 0:
      raise ValueError("fusion_conv_offset must be >= 0")
    cfg = _check_config(config)
    # Read-only, and not a dict: tf.Module would track a dict and write it into
    # the SavedModel, which the original's does not have.
    self.config = types.MappingProxyType(cfg)
    rng = np.random.default_rng(seed)
    self.feat_net = _FeatureExtractor(cfg, rng)
    self.predict_flow = _PyramidFlowEstimator(cfg, rng)
    self.fusion = _Fusion(cfg, fusion_conv_offset, rng)
    self.variables = (self.feat_net.ordered_variables() +
                      self.predict_flow.ordered_variables() +
                      self.fusion.ordered_variables())
    self.trainable_variables = self.variables
    # One trace for every input size and batch (as a loaded SavedModel runs).
    self.__call__.get_concrete_function(input_specs(), False, None)

  @tf.function(autograph=False)
  def __call__(self, inputs, training=False, mask=None):
    """inputs: {'x0', 'x1': (B, H, W, 3), 'time': (B, 1)}; see module docstring.

    `training` and `mask` are there because Keras models take them (FILM has
    no layer that behaves differently in training); both are ignored.
    """
    del training, mask
    levels = self.config["pyramid_levels"]
    fusion_levels = self.config["fusion_pyramid_levels"]

    def image_pyramid(image):
      pyramid = [image]
      for _ in range(levels - 1):
        pyramid.append(_avg_pool(pyramid[-1]))
      return pyramid

    image_pyramids = [image_pyramid(inputs["x0"]), image_pyramid(inputs["x1"])]
    feature_pyramids = [self.feat_net(image_pyramids[0]),
                        self.feat_net(image_pyramids[1])]
    forward_residual = self.predict_flow(feature_pyramids[0],
                                         feature_pyramids[1])
    backward_residual = self.predict_flow(feature_pyramids[1],
                                          feature_pyramids[0])
    forward_flow_pyramid = _flow_pyramid_synthesis(
        forward_residual)[:fusion_levels]
    backward_flow_pyramid = _flow_pyramid_synthesis(
        backward_residual)[:fusion_levels]

    # The original ignores `time`: t = 0.5 with the batch size of `time`.
    mid_time = tf.ones_like(inputs["time"]) * 0.5
    backward_flow = _multiply_pyramid(backward_flow_pyramid, mid_time[:, 0])
    forward_flow = _multiply_pyramid(forward_flow_pyramid, 1 - mid_time[:, 0])

    to_warp = [[tf.concat([image_pyramids[k][i], feature_pyramids[k][i]],
                          axis=-1) for i in range(fusion_levels)]
               for k in (0, 1)]
    # Backward warping: the backward flow reads from x0, the forward from x1.
    forward_warped = [warp(to_warp[0][i], backward_flow[i])
                      for i in range(fusion_levels)]
    backward_warped = [warp(to_warp[1][i], forward_flow[i])
                       for i in range(fusion_levels)]
    aligned = [tf.concat([forward_warped[i], backward_warped[i],
                          backward_flow[i], forward_flow[i]], axis=-1)
               for i in range(fusion_levels)]
    prediction = self.fusion(aligned)

    return {
        "image": prediction[..., :3],
        "x0_warped": forward_warped[0][..., 0:3],
        "x1_warped": backward_warped[0][..., 0:3],
        "forward_residual_flow_pyramid": forward_residual,
        "backward_residual_flow_pyramid": backward_residual,
        "forward_flow_pyramid": forward_flow_pyramid,
        "backward_flow_pyramid": backward_flow_pyramid,
    }


def build_tf_film(config: Mapping[str, Any],
                  fusion_conv_offset: int = 0) -> FilmModel:
  """FilmModel(config, fusion_conv_offset)."""
  return FilmModel(config, fusion_conv_offset=fusion_conv_offset)
