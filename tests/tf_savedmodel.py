"""SavedModels of ``benchmarks.tf_film.FilmModel`` that behave like the ones Google released (a test fixture).

Public API:
    save_film(model, directory, verify=True) -> reloaded SavedModel | None
    make_film_savedmodel(directory, config, weights, verify=True) -> FilmModel
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Union

import numpy as np
import tensorflow as tf

from benchmarks.tf_film import FilmModel, flatten_outputs, input_specs
from benchmarks.tf_film_weights import set_weights_by_name


# ----------------------------------------------------------------------------
# SavedModel.
# ----------------------------------------------------------------------------


def _serving_function(model: FilmModel):
  """serving_default: keyword inputs x0, x1, time; flat outputs."""

  @tf.function(autograph=False)
  def serving_default(x0, x1, time):
    return flatten_outputs(model({"x0": x0, "x1": x1, "time": time},
                                 training=False))

  return serving_default.get_concrete_function(**input_specs())


def _dummy_inputs(model: FilmModel):
  # 2 ** levels pixels: the coarsest level is 2x2 and the coarsest warped
  # level 4x4 (warp needs sizes >= 2).
  size = 2 ** model.config["pyramid_levels"]
  rng = np.random.default_rng(0)
  return {
      "x0": tf.constant(rng.random((1, size, size, 3), dtype=np.float32)),
      "x1": tf.constant(rng.random((1, size, size, 3), dtype=np.float32)),
      "time": tf.constant([[0.5]], dtype=tf.float32),
  }


def _structure(outputs) -> Dict[str, Any]:
  """{key: 'tensor' or ('list', n)} of an output dict."""
  return {k: ("list", len(v)) if isinstance(v, list) else "tensor"
          for k, v in outputs.items()}


def save_film(model: FilmModel, directory: Union[str, os.PathLike],
              verify: bool = True):
  """Writes `model` as a SavedModel like Google's (minus Keras' extras).

  The SavedModel has the original's `__call__` (traced for training=False
  and True on inputs of any size), `variables` / `trainable_variables` in the
  original's order and a `serving_default` signature with the original's
  inputs (its outputs carry the flat keys of flatten_outputs; Keras named
  the original's after internal layers).

  With verify=True the directory is reloaded with tf.saved_model.load and
  checked against the model: variable names, shapes and order; output
  structure (tensors and lists) and values. Returns that loaded object
  (None with verify=False).
  """
  directory = os.fspath(directory)
  specs = input_specs()
  # Keras saved both; they compute the same.
  model.__call__.get_concrete_function(specs, True, None)
  tf.saved_model.save(model, directory,
                      signatures={"serving_default": _serving_function(model)})
  if not verify:
    return None
  loaded = tf.saved_model.load(directory)
  expected = [(v.name, v.shape.as_list()) for v in model.variables]
  got = [(v.name, v.shape.as_list()) for v in loaded.variables]
  if got != expected:
    raise RuntimeError("save_film: variables of the saved model differ from "
                       f"the model:\n got {got}\n want {expected}")
  inputs = _dummy_inputs(model)
  want = model(inputs, training=False)
  out = loaded(inputs, training=False)
  if not isinstance(out, dict) or _structure(out) != _structure(want):
    raise RuntimeError("save_film: reloaded model returned "
                       f"{_structure(out) if isinstance(out, dict) else out}, "
                       f"expected {_structure(want)}")
  got_flat = flatten_outputs(out)
  for key, value in flatten_outputs(want).items():
    value, got_value = np.asarray(value), np.asarray(got_flat[key])
    # The same graph on the same inputs: equal up to nondeterministic
    # summation order in the convolutions.
    err = float(np.max(np.abs(got_value - value)))
    scale = float(np.max(np.abs(value))) or 1.0
    if got_value.shape != value.shape or err > 1e-5 * scale:
      raise RuntimeError(f"save_film: reloaded output {key!r} differs "
                         f"(max abs err {err}, scale {scale})")
  return loaded


def make_film_savedmodel(directory: Union[str, os.PathLike],
                         config: Mapping[str, Any],
                         weights: Union[Mapping[str, np.ndarray], str,
                                        os.PathLike],
                         verify: bool = True,
                         fusion_conv_offset: int = 0) -> FilmModel:
  """FilmModel + set_weights_by_name + save_film; returns the model.

  `weights` is a name -> array mapping or a path to an .npz of that form.
  With the default offset the fusion convs are conv2d ... conv2d_{n}, so the
  variable names equal those of Google's released SavedModels.
  """
  if isinstance(weights, (str, os.PathLike)):
    with np.load(weights) as npz:
      weights = {k: npz[k] for k in npz.files}
  model = FilmModel(config, fusion_conv_offset=fusion_conv_offset)
  set_weights_by_name(model, weights)
  save_film(model, directory, verify=verify)
  return model
