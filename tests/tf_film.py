"""A TensorFlow (tf_keras / legacy Keras 2) FILM network used as a test fixture.

This re-creates the network of google-research/frame-interpolation with the
same layer structure, variable names, variable order and numerics, so tests
can

* compare a PyTorch port against a TF model with arbitrary weights, and
* produce SavedModels shaped like Google's released ones
  (``tf.saved_model.load(d).keras_api.variables``) to test weight conversion.

Everything is NHWC. Flow channel 0 is the x displacement, channel 1 is y
(see warp()).

Public API:
    build_tf_film(config, flat_outputs=True, fresh_names=True) -> tf_keras.Model
    set_weights_by_name(model, weights) -> None
    save_film(model, directory, verify=True) -> loaded SavedModel | None
    make_film_savedmodel(directory, config, weights, flat_outputs=True,
                         verify=True) -> tf_keras.Model
    output_keys(config) -> list of the flat output keys
    warp(image, flow) -> tf.Tensor
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Sequence, Union

import numpy as np
import tensorflow as tf
import tf_keras as keras

__all__ = [
    'build_tf_film',
    'set_weights_by_name',
    'save_film',
    'make_film_savedmodel',
    'warp',
    'output_keys',
]

_CONFIG_KEYS = ('pyramid_levels', 'fusion_pyramid_levels', 'specialized_levels',
                'sub_levels', 'flow_convs', 'flow_filters', 'filters')

_PYRAMID_OUTPUTS = ('forward_residual_flow_pyramid',
                    'backward_residual_flow_pyramid', 'forward_flow_pyramid',
                    'backward_flow_pyramid')


def _no_autograph(fn):
  """Marks `fn` so AutoGraph calls it as is (no wrapper: keeps the signature).

  The call methods below have no tensor-dependent control flow; skipping
  AutoGraph's source conversion makes building the functional model, tracing
  and SavedModel export much faster. Same marker as AutoGraph's own
  `autograph_artifact` (tf.autograph.experimental.do_not_convert would wrap
  the method in (*args, **kwargs), and Keras would then pass it `training`).
  """
  fn.autograph_info__ = None
  return fn


def _lrelu(x):
  return tf.nn.leaky_relu(x, alpha=0.2)


def _check_config(config: Mapping[str, Any]) -> Dict[str, Any]:
  missing = [k for k in _CONFIG_KEYS if k not in config]
  if missing:
    raise ValueError(f'FILM config is missing keys {missing}')
  cfg = {k: config[k] for k in _CONFIG_KEYS}
  cfg['flow_convs'] = [int(v) for v in cfg['flow_convs']]
  cfg['flow_filters'] = [int(v) for v in cfg['flow_filters']]
  for k in _CONFIG_KEYS:
    if k not in ('flow_convs', 'flow_filters'):
      cfg[k] = int(cfg[k])
  if len(cfg['flow_convs']) != len(cfg['flow_filters']):
    raise ValueError('flow_convs and flow_filters must have the same length')
  if len(cfg['flow_convs']) < cfg['specialized_levels'] + 1:
    raise ValueError('flow_convs/flow_filters need specialized_levels + 1 '
                     'entries (the last one is the shared predictor)')
  if not (2 <= cfg['fusion_pyramid_levels'] <= cfg['pyramid_levels']):
    raise ValueError('need 2 <= fusion_pyramid_levels <= pyramid_levels')
  if cfg['specialized_levels'] > cfg['pyramid_levels']:
    raise ValueError('specialized_levels must be <= pyramid_levels')
  return cfg


def output_keys(config: Mapping[str, Any]) -> List[str]:
  """Flat output keys of the model built by build_tf_film(config)."""
  cfg = _check_config(config)
  keys = ['image', 'x0_warped', 'x1_warped']
  for name in _PYRAMID_OUTPUTS:
    n = (cfg['pyramid_levels'] if 'residual' in name
         else cfg['fusion_pyramid_levels'])
    keys += [f'{name}/{i}' for i in range(n)]
  return keys


# ----------------------------------------------------------------------------
# Numerics shared by several layers.
# ----------------------------------------------------------------------------


def warp(image: tf.Tensor, flow: tf.Tensor) -> tf.Tensor:
  """Bilinear backward warp: out[y, x] = image[y + flow[..., 1], x + flow[..., 0]].

  FLOW CHANNEL 0 IS x (dx), CHANNEL 1 IS y (dy), as in the original
  models/film_net/util.py, which calls
  ``tfa.image.dense_image_warp(image, -flow[..., ::-1])`` (tfa itself wants
  (y, x); FILM reverses the channels "for compatibility with older saved
  models"). The reference outputs confirm this order.

  Same numerics as tfa: per axis the lower neighbour is
  clip(floor(q), 0, size - 2), the weight clip(q - floor, 0, 1) (samples
  outside the image are clamped to the border). Needs spatial sizes >= 2.
  """
  flow = tf.convert_to_tensor(flow)
  image = tf.convert_to_tensor(image)
  shape = tf.shape(image)
  batch, height, width = shape[0], shape[1], shape[2]
  channels = image.shape[-1] if image.shape[-1] is not None else shape[3]
  grid_y, grid_x = tf.meshgrid(tf.range(height), tf.range(width), indexing='ij')
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

  # Gather from the image flattened to [B * H * W, C] with linear indices.
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


def _resize_like(x: tf.Tensor, like: tf.Tensor, method='bilinear') -> tf.Tensor:
  return tf.image.resize(x, tf.shape(like)[1:3], method=method)


# ----------------------------------------------------------------------------
# Layers with weights (names matter: they become the variable names).
# ----------------------------------------------------------------------------


class _FilmLayer(keras.layers.Layer):
  """Base holding the FILM config so get_config works for SavedModel."""

  def __init__(self, config: Mapping[str, Any], name: str, **kwargs):
    super().__init__(name=name, **kwargs)
    self.film_config = dict(config)

  def get_config(self):
    base = super().get_config()
    base['config'] = self.film_config
    return base


class SubTreeExtractor(_FilmLayer):
  """2 * sub_levels convs 'cfeat_conv_{k}'; filters << i at sub level i."""

  def __init__(self, config, name='sub_extractor'):
    super().__init__(config, name=name)
    k = config['filters']
    self.convs = []
    for i in range(config['sub_levels']):
      for j in (2 * i, 2 * i + 1):
        self.convs.append(
            keras.layers.Conv2D(filters=k << i, kernel_size=3, padding='same',
                                activation=_lrelu, name=f'cfeat_conv_{j}'))
    self.pool = keras.layers.AveragePooling2D(pool_size=2, strides=2,
                                              padding='valid')

  @_no_autograph
  def call(self, image, n):
    head = image
    pyramid = []
    for i in range(n):
      head = self.convs[2 * i](head)
      head = self.convs[2 * i + 1](head)
      pyramid.append(head)
      if i < n - 1:
        head = self.pool(head)
    return pyramid


class FeatureExtractor(_FilmLayer):
  """Cascaded feature pyramid ('feat_net')."""

  def __init__(self, config, name='feat_net'):
    super().__init__(config, name=name)
    self.extract_sublevels = SubTreeExtractor(config, name='sub_extractor')

  @_no_autograph
  def call(self, image_pyramid):
    sub_levels = self.film_config['sub_levels']
    levels = len(image_pyramid)
    sub_pyramids = [
        self.extract_sublevels(image_pyramid[i], min(levels - i, sub_levels))
        for i in range(levels)
    ]
    feature_pyramid = []
    for i in range(levels):
      features = sub_pyramids[i][0]
      for j in range(1, sub_levels):
        if j <= i:
          features = tf.concat([features, sub_pyramids[i - j][j]], axis=-1)
      feature_pyramid.append(features)
    return feature_pyramid


class FlowEstimator(keras.layers.Layer):
  """conv_0..conv_{n-1} 3x3 lrelu, conv_n 1x1 nf//2 lrelu, conv_{n+1} 1x1 2."""

  def __init__(self, num_convs: int, num_filters: int, name: str):
    super().__init__(name=name)
    self.num_convs = num_convs
    self.num_filters = num_filters
    self.convs = []
    for i in range(num_convs):
      self.convs.append(
          keras.layers.Conv2D(filters=num_filters, kernel_size=3,
                              padding='same', activation=_lrelu,
                              name=f'conv_{i}'))
    self.convs.append(
        keras.layers.Conv2D(filters=num_filters // 2, kernel_size=1,
                            padding='same', activation=_lrelu,
                            name=f'conv_{num_convs}'))
    self.convs.append(
        keras.layers.Conv2D(filters=2, kernel_size=1, padding='same',
                            activation=None, name=f'conv_{num_convs + 1}'))

  @_no_autograph
  def call(self, features_a, features_b):
    net = tf.concat([features_a, features_b], axis=-1)
    for conv in self.convs:
      net = conv(net)
    return net

  def get_config(self):
    base = super().get_config()
    base.update(num_convs=self.num_convs, num_filters=self.num_filters)
    return base


class PyramidFlowEstimator(_FilmLayer):
  """Coarse-to-fine residual flow ('predict_flow'); returns finest first."""

  def __init__(self, config, name='predict_flow'):
    super().__init__(config, name=name)
    self.predictors = []
    for i in range(config['specialized_levels']):
      self.predictors.append(
          FlowEstimator(config['flow_convs'][i], config['flow_filters'][i],
                        name=f'flow_predictor_{i}'))
    shared = FlowEstimator(config['flow_convs'][-1],
                           config['flow_filters'][-1],
                           name='flow_predictor_shared')
    for _ in range(config['specialized_levels'], config['pyramid_levels']):
      self.predictors.append(shared)

  @_no_autograph
  def call(self, feature_pyramid_a, feature_pyramid_b):
    levels = len(feature_pyramid_a)
    v = self.predictors[levels - 1](feature_pyramid_a[-1],
                                    feature_pyramid_b[-1])
    residuals = [v]
    for i in reversed(range(levels - 1)):
      v = _resize_like(2 * v, feature_pyramid_a[i])
      warped = warp(feature_pyramid_b[i], v)
      residual = self.predictors[i](feature_pyramid_a[i], warped)
      residuals.append(residual)
      v = residual + v
    return list(reversed(residuals))


class Fusion(_FilmLayer):
  """U-Net style decoder ('fusion') with auto-named Conv2D layers."""

  def __init__(self, config, name='fusion'):
    super().__init__(config, name=name)
    self.levels = config['fusion_pyramid_levels']
    m = config['specialized_levels']
    k = config['filters']
    self.convs = []
    for i in range(self.levels - 1):
      nf = (k << i) if i < m else (k << m)
      # No explicit names: Keras numbers them conv2d, conv2d_1, ... exactly
      # as in the original code.
      self.convs.append([
          keras.layers.Conv2D(filters=nf, kernel_size=[2, 2], padding='same'),
          keras.layers.Conv2D(filters=nf, kernel_size=[3, 3], padding='same',
                              activation=_lrelu),
          keras.layers.Conv2D(filters=nf, kernel_size=[3, 3], padding='same',
                              activation=_lrelu),
      ])
    self.output_conv = keras.layers.Conv2D(filters=3, kernel_size=1)

  @_no_autograph
  def call(self, pyramid):
    net = pyramid[-1]
    for i in reversed(range(self.levels - 1)):
      net = _resize_like(net, pyramid[i],
                         method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
      net = self.convs[i][0](net)
      net = tf.concat([pyramid[i], net], axis=-1)
      net = self.convs[i][1](net)
      net = self.convs[i][2](net)
    return self.output_conv(net)


# ----------------------------------------------------------------------------
# Weightless glue layers used at the functional-model level.
# ----------------------------------------------------------------------------


class _Warp(keras.layers.Layer):

  @_no_autograph
  def call(self, inputs):
    image, flow = inputs
    return warp(image, flow)


class _FlowPyramidSynthesis(keras.layers.Layer):
  """Residual pyramid -> flow pyramid (finest first), first `levels` kept."""

  def __init__(self, levels: int, **kwargs):
    super().__init__(**kwargs)
    self.levels = levels

  @_no_autograph
  def call(self, residual_pyramid):
    flow = residual_pyramid[-1]
    flow_pyramid = [flow]
    for residual in reversed(residual_pyramid[:-1]):
      flow = _resize_like(2 * flow, residual)
      flow = residual + flow
      flow_pyramid.append(flow)
    return list(reversed(flow_pyramid))[:self.levels]

  def get_config(self):
    base = super().get_config()
    base['levels'] = self.levels
    return base


class _MidTime(keras.layers.Layer):
  """The original ignores the time input: always t = 0.5."""

  @_no_autograph
  def call(self, time):
    return tf.ones_like(time) * 0.5


class _ScalePyramid(keras.layers.Layer):
  """pyramid * scalar per batch item; `one_minus` uses (1 - t)."""

  def __init__(self, one_minus: bool, **kwargs):
    super().__init__(**kwargs)
    self.one_minus = one_minus

  @_no_autograph
  def call(self, inputs):
    pyramid, time = inputs
    t = time[:, 0]
    if self.one_minus:
      t = 1 - t
    return [
        tf.transpose(tf.transpose(level, [3, 1, 2, 0]) * t, [3, 1, 2, 0])
        for level in pyramid
    ]

  def get_config(self):
    base = super().get_config()
    base['one_minus'] = self.one_minus
    return base


# ----------------------------------------------------------------------------
# Model.
# ----------------------------------------------------------------------------


def _auto_conv_counter():
  """(uid map, key) of the Keras counter that numbers unnamed Conv2D layers."""
  try:
    from tf_keras.src import backend as keras_backend_impl  # pylint: disable=g-import-not-at-top
    uid_map = keras_backend_impl.get_default_graph_uid_map()
  except (ImportError, AttributeError) as e:
    raise RuntimeError('fresh_names=True needs tf_keras.src.backend.'
                       'get_default_graph_uid_map; use fresh_names=False') from e
  # Layer names are made unique per (namespace, snake_case class name).
  return uid_map, ('', 'conv2d')


def _make_fusion(cfg, fresh_names: bool) -> Fusion:
  if not fresh_names:
    return Fusion(cfg, name='fusion')
  # Number the fusion convs from conv2d like a fresh process does, then put
  # the global counter back (never lower than before) so other code is not
  # affected.
  uid_map, key = _auto_conv_counter()
  saved = uid_map[key]
  uid_map[key] = 0
  try:
    return Fusion(cfg, name='fusion')
  finally:
    uid_map[key] = max(saved, uid_map[key])


def build_tf_film(config: Mapping[str, Any],
                  flat_outputs: bool = True,
                  fresh_names: bool = True) -> keras.Model:
  """Builds the FILM interpolator as a tf_keras functional model.

  Args:
    config: pyramid_levels, fusion_pyramid_levels, specialized_levels,
      sub_levels, flow_convs, flow_filters, filters.
    flat_outputs: True -> outputs dict with flat keys ('image', 'x0_warped',
      'x1_warped', 'forward_residual_flow_pyramid/0', ...). False -> like the
      original model: the four pyramid outputs are lists (finest first).
    fresh_names: True -> the fusion convs are named conv2d ... conv2d_{n}
      even if other auto-named Conv2D layers exist in this process (variable
      names then equal those of Google's SavedModels). False -> plain Keras
      numbering, which may start at an offset.

  Returns:
    Model taking {'x0': (B,H,W,3), 'x1': (B,H,W,3), 'time': (B,1)} (float32,
    any H, W that the pyramid depth supports).
  """
  cfg = _check_config(config)
  levels = cfg['pyramid_levels']
  fusion_levels = cfg['fusion_pyramid_levels']

  x0 = keras.Input(shape=(None, None, 3), batch_size=None, name='x0',
                   dtype=tf.float32)
  x1 = keras.Input(shape=(None, None, 3), batch_size=None, name='x1',
                   dtype=tf.float32)
  time = keras.Input(shape=(1,), batch_size=None, name='time',
                     dtype=tf.float32)

  def image_pyramid(image):
    pool = keras.layers.AveragePooling2D(pool_size=2, strides=2,
                                         padding='valid')
    pyramid = []
    for i in range(levels):
      pyramid.append(image)
      if i < levels - 1:
        image = pool(image)
    return pyramid

  image_pyramids = [image_pyramid(x0), image_pyramid(x1)]

  feature_extractor = FeatureExtractor(cfg, name='feat_net')
  feature_pyramids = [feature_extractor(image_pyramids[0]),
                      feature_extractor(image_pyramids[1])]

  predict_flow = PyramidFlowEstimator(cfg, name='predict_flow')
  forward_residual = predict_flow(feature_pyramids[0], feature_pyramids[1])
  backward_residual = predict_flow(feature_pyramids[1], feature_pyramids[0])

  synthesis = _FlowPyramidSynthesis(fusion_levels, name='flow_synthesis')
  forward_flow_pyramid = synthesis(forward_residual)
  backward_flow_pyramid = synthesis(backward_residual)

  mid_time = _MidTime(name='mid_time')(time)
  backward_flow = _ScalePyramid(False, name='scale_backward')(
      [backward_flow_pyramid, mid_time])
  forward_flow = _ScalePyramid(True, name='scale_forward')(
      [forward_flow_pyramid, mid_time])

  concat = keras.layers.Concatenate(axis=-1, name='pyramid_concat')
  to_warp = [[concat([image_pyramids[k][i], feature_pyramids[k][i]])
              for i in range(fusion_levels)] for k in (0, 1)]

  warp_layer = _Warp(name='warp')
  forward_warped = [warp_layer([to_warp[0][i], backward_flow[i]])
                    for i in range(fusion_levels)]
  backward_warped = [warp_layer([to_warp[1][i], forward_flow[i]])
                     for i in range(fusion_levels)]
  aligned = [concat([forward_warped[i], backward_warped[i], backward_flow[i],
                     forward_flow[i]]) for i in range(fusion_levels)]

  fusion = _make_fusion(cfg, fresh_names)
  prediction = fusion(aligned)

  outputs = {
      'image': prediction[..., :3],
      'x0_warped': forward_warped[0][..., 0:3],
      'x1_warped': backward_warped[0][..., 0:3],
  }
  pyramids = {
      'forward_residual_flow_pyramid': forward_residual,
      'backward_residual_flow_pyramid': backward_residual,
      'forward_flow_pyramid': forward_flow_pyramid,
      'backward_flow_pyramid': backward_flow_pyramid,
  }
  for name, pyramid in pyramids.items():
    if flat_outputs:
      for i, level in enumerate(pyramid):
        outputs[f'{name}/{i}'] = level
    else:
      outputs[name] = list(pyramid)
  return keras.Model(inputs={'x0': x0, 'x1': x1, 'time': time},
                     outputs=outputs, name='film')


# ----------------------------------------------------------------------------
# Weights by name.
# ----------------------------------------------------------------------------

# A path segment 'conv2d' / 'conv2d_<n>' (Keras auto-numbered Conv2D) followed
# by the variable's own last segment.
_AUTO_CONV = re.compile(r'^(?P<parent>(?:.*/)?)conv2d(?:_(?P<num>\d+))?'
                        r'(?P<rest>/[^/]+)$')


def _strip_suffix(name: str) -> str:
  return name[:-2] if name.endswith(':0') else name


def _canonical_names(names: Sequence[str]) -> List[str]:
  """Replaces auto-numbered conv2d segments by their rank in their scope.

  'fusion/conv2d_13/kernel:0' ... 'fusion/conv2d_25/kernel:0' and
  'fusion/conv2d/kernel:0' ... 'fusion/conv2d_12/kernel:0' both become
  'fusion/<conv2d#0>/kernel' ... 'fusion/<conv2d#12>/kernel'. Ranks come
  from the integer number (conv2d == 0), never from string order.
  """
  parsed = []
  numbers = defaultdict(set)
  for name in names:
    base = _strip_suffix(name)
    m = _AUTO_CONV.match(base)
    if m:
      num = int(m.group('num') or 0)
      numbers[m.group('parent')].add(num)
      parsed.append((m.group('parent'), num, m.group('rest')))
    else:
      parsed.append(base)
  ranks = {parent: {num: r for r, num in enumerate(sorted(nums))}
           for parent, nums in numbers.items()}
  out = []
  for p in parsed:
    if isinstance(p, tuple):
      parent, num, rest = p
      out.append(f'{parent}<conv2d#{ranks[parent][num]}>{rest}')
    else:
      out.append(p)
  return out


def set_weights_by_name(model: keras.Model,
                        weights: Mapping[str, np.ndarray]) -> None:
  """Assigns every variable of `model` from `weights` (TF name -> array).

  Names must match exactly, except for Keras auto-numbered 'conv2d[_n]'
  segments (the fusion convs), which are matched by the rank of their number
  within the same scope, so 'fusion/conv2d_13' in this process can receive
  'fusion/conv2d' of the reference. A trailing ':0' is optional in `weights`.
  Raises ValueError listing all missing, unused, duplicate or mis-shaped
  entries; nothing is assigned in that case.
  """
  variables = list(model.variables)
  var_names = [v.name for v in variables]
  ref_names = list(weights.keys())
  var_canon = _canonical_names(var_names)
  ref_canon = _canonical_names(ref_names)

  problems = []
  ref_by_canon = {}
  for canon, name in zip(ref_canon, ref_names):
    if canon in ref_by_canon:
      problems.append(f'duplicate weight entries {ref_by_canon[canon]!r} and '
                      f'{name!r}')
    ref_by_canon[canon] = name
  if len(set(var_canon)) != len(var_canon):
    problems.append('model has duplicate variable names: '
                    f'{sorted(n for n in var_names if var_names.count(n) > 1)}')

  assignments = []
  used = set()
  for var, canon in zip(variables, var_canon):
    ref = ref_by_canon.get(canon)
    if ref is None:
      problems.append(f'no weight for model variable {var.name!r} '
                      f'(shape {var.shape.as_list()})')
      continue
    used.add(canon)
    value = np.asarray(weights[ref])
    if tuple(value.shape) != tuple(var.shape.as_list()):
      problems.append(f'shape mismatch for {var.name!r} <- {ref!r}: model '
                      f'{var.shape.as_list()} vs weights {list(value.shape)}')
      continue
    assignments.append((var, value))
  unused = [ref_by_canon[c] for c in ref_by_canon if c not in used]
  if unused:
    problems.append(f'weights not used by the model: {unused}')
  if problems:
    raise ValueError('set_weights_by_name: weights do not match the model:\n  '
                     + '\n  '.join(problems))
  for var, value in assignments:
    var.assign(value.astype(var.dtype.as_numpy_dtype, copy=False))


# ----------------------------------------------------------------------------
# SavedModel.
# ----------------------------------------------------------------------------


def _dummy_inputs(model: keras.Model):
  # 2 ** levels pixels: the coarsest level is 2x2 and the coarsest warped
  # level 4x4 (warp needs sizes >= 2).
  levels = 1
  for layer in model.layers:
    cfg = getattr(layer, 'film_config', None)
    if cfg:
      levels = cfg['pyramid_levels']
      break
  size = 2 ** levels
  rng = np.random.default_rng(0)
  return {
      'x0': tf.constant(rng.random((1, size, size, 3), dtype=np.float32)),
      'x1': tf.constant(rng.random((1, size, size, 3), dtype=np.float32)),
      'time': tf.constant([[0.5]], dtype=tf.float32),
  }


def _flatten_outputs(out) -> Dict[str, np.ndarray]:
  flat = {}
  for key, value in out.items():
    if isinstance(value, (list, tuple)):
      for i, level in enumerate(value):
        flat[f'{key}/{i}'] = np.asarray(level)
    else:
      flat[key] = np.asarray(value)
  return flat


def save_film(model: keras.Model, directory: Union[str, os.PathLike],
              verify: bool = True):
  """Saves `model` in the legacy TF SavedModel format (like Google's models).

  With verify=True the directory is re-loaded with tf.saved_model.load and
  checked: `loaded.keras_api.variables` has the model's variable names, shapes
  and order, and `loaded({'x0', 'x1', 'time'}, training=False)` returns a dict
  with the model's outputs (same keys, values equal to the Keras model's).
  Returns that loaded object (None with verify=False).
  """
  directory = os.fspath(directory)
  model.save(directory, save_format='tf', include_optimizer=False)
  if not verify:
    return None
  loaded = tf.saved_model.load(directory)
  expected = [(v.name, v.shape.as_list()) for v in model.variables]
  got = [(v.name, v.shape.as_list()) for v in loaded.keras_api.variables]
  if got != expected:
    raise RuntimeError('save_film: keras_api.variables of the saved model '
                       f'differ from the model:\n got {got}\n want {expected}')
  inputs = _dummy_inputs(model)
  out = loaded(inputs, training=False)
  if not isinstance(out, dict):
    raise RuntimeError(f'save_film: loaded model returned {type(out)}, '
                       'expected a dict')
  got_out = _flatten_outputs(out)
  want_out = _flatten_outputs(model(inputs, training=False))
  if sorted(got_out) != sorted(want_out):
    raise RuntimeError(f'save_film: output keys {sorted(got_out)} != '
                       f'{sorted(want_out)}')
  for key, want in want_out.items():
    err = float(np.max(np.abs(got_out[key] - want)))
    scale = float(np.max(np.abs(want))) or 1.0
    if got_out[key].shape != want.shape or err > 1e-5 * scale:
      raise RuntimeError(f'save_film: reloaded output {key!r} differs '
                         f'(max abs err {err}, scale {scale})')
  return loaded


def make_film_savedmodel(directory: Union[str, os.PathLike],
                         config: Mapping[str, Any],
                         weights: Union[Mapping[str, np.ndarray], str,
                                        os.PathLike],
                         flat_outputs: bool = True,
                         verify: bool = True) -> keras.Model:
  """build_tf_film + set_weights_by_name + save_film; returns the Keras model.

  `weights` is a name -> array mapping or a path to an .npz of that form.
  The fusion convs are numbered from conv2d (fresh_names), so the SavedModel's
  variable names equal those of Google's released models.
  """
  if isinstance(weights, (str, os.PathLike)):
    with np.load(weights) as npz:
      weights = {k: npz[k] for k in npz.files}
  model = build_tf_film(config, flat_outputs=flat_outputs)
  set_weights_by_name(model, weights)
  save_film(model, directory, verify=verify)
  return model
