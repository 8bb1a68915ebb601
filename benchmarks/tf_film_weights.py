"""The original's variable names onto a ``benchmarks.tf_film.FilmModel`` (its Keras names, auto-numbered convs).

Public API:
    set_weights_by_name(model, weights)
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import List, Mapping, Sequence

import numpy as np

from benchmarks.tf_film import FilmModel


# ----------------------------------------------------------------------------
# Weights by name.
# ----------------------------------------------------------------------------

# A path segment 'conv2d' / 'conv2d_<n>' (Keras auto-numbered Conv2D) followed
# by the variable's own last segment.
_AUTO_CONV = re.compile(r"^(?P<parent>(?:.*/)?)conv2d(?:_(?P<num>\d+))?"
                        r"(?P<rest>/[^/]+)$")


def _strip_suffix(name: str) -> str:
  return name[:-2] if name.endswith(":0") else name


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
      num = int(m.group("num") or 0)
      numbers[m.group("parent")].add(num)
      parsed.append((m.group("parent"), num, m.group("rest")))
    else:
      parsed.append(base)
  ranks = {parent: {num: r for r, num in enumerate(sorted(nums))}
           for parent, nums in numbers.items()}
  out = []
  for p in parsed:
    if isinstance(p, tuple):
      parent, num, rest = p
      out.append(f"{parent}<conv2d#{ranks[parent][num]}>{rest}")
    else:
      out.append(p)
  return out


def set_weights_by_name(model: FilmModel,
                        weights: Mapping[str, np.ndarray]) -> None:
  """Assigns every variable of `model` from `weights` (TF name -> array).

  Names must match exactly, except for Keras auto-numbered 'conv2d[_n]'
  segments (the fusion convs), which are matched by the rank of their number
  within the same scope, so 'fusion/conv2d_13' of a model built with an
  offset receives 'fusion/conv2d' of the reference. A trailing ':0' is
  optional in `weights`. Raises ValueError listing all missing, unused,
  duplicate or mis-shaped entries; nothing is assigned in that case.
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
      problems.append(f"duplicate weight entries {ref_by_canon[canon]!r} and "
                      f"{name!r}")
    ref_by_canon[canon] = name
  if len(set(var_canon)) != len(var_canon):
    problems.append("model has duplicate variable names: "
                    f"{sorted(n for n in var_names if var_names.count(n) > 1)}")

  assignments = []
  used = set()
  for var, canon in zip(variables, var_canon):
    ref = ref_by_canon.get(canon)
    if ref is None:
      problems.append(f"no weight for model variable {var.name!r} "
                      f"(shape {var.shape.as_list()})")
      continue
    used.add(canon)
    value = np.asarray(weights[ref])
    if tuple(value.shape) != tuple(var.shape.as_list()):
      problems.append(f"shape mismatch for {var.name!r} <- {ref!r}: model "
                      f"{var.shape.as_list()} vs weights {list(value.shape)}")
      continue
    assignments.append((var, value))
  unused = [ref_by_canon[c] for c in ref_by_canon if c not in used]
  if unused:
    problems.append(f"weights not used by the model: {unused}")
  if problems:
    raise ValueError("set_weights_by_name: weights do not match the model:\n  "
                     + "\n  ".join(problems))
  for var, value in assignments:
    var.assign(value.astype(var.dtype.as_numpy_dtype, copy=False))
