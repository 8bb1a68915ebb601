"""The original's optimizer and schedules: TF Keras Adam, ExponentialDecay, PiecewiseConstantDecay.

``KerasAdam`` computes what ``tf.keras.optimizers.Adam`` (TF 2.x, Keras 2)
computes, in the parameters' dtype:

    alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    m += (g - m) * (1 - beta1);  v += (g^2 - v) * (1 - beta2)
    w -= m * alpha / (sqrt(v) + epsilon)

``torch.optim.Adam`` instead adds epsilon to the bias-corrected sqrt(v), i.e.
its epsilon is Keras's times sqrt(1 - beta2^t): at the first step with
epsilon 1e-7 that is the difference between 1e-7 and 3.2e-6 in the
denominator, which changes the step of every weight whose gradient is below
about 1e-4. Hence an optimizer of its own.

Steps are counted from 0, as Keras's ``optimizer.iterations``: the learning
rate and the loss weights of step ``s`` are the schedules' values at ``s``,
and the Adam update of step ``s`` uses ``t = s + 1``.
"""
import math
from typing import Sequence

import torch


class ExponentialDecay:
    """``tf.keras.optimizers.schedules.ExponentialDecay``: lr * rate^(step / steps), floored with staircase."""

    def __init__(self, initial: float, decay_steps: int, decay_rate: float, staircase: bool = True):
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be positive, got {decay_steps}")
        self.initial, self.decay_steps, self.decay_rate, self.staircase = initial, decay_steps, decay_rate, staircase

    def __call__(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        # float32, as Keras computes it.
        as_float32 = lambda value: torch.tensor(value, dtype=torch.float32)
        return float(as_float32(self.initial) * as_float32(self.decay_rate) ** as_float32(exponent))

    def __repr__(self):
        return (f"ExponentialDecay({self.initial}, decay_steps={self.decay_steps}, decay_rate={self.decay_rate}, "
                f"staircase={self.staircase})")


class PiecewiseConstant:
    """``PiecewiseConstantDecay``: ``values[i]`` while ``step <= boundaries[i]`` (and after the last, the last)."""

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]):
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"need one value more than boundaries, got {len(boundaries)} boundaries and "
                             f"{len(values)} values")
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"boundaries must increase, got {list(boundaries)}")
        self.boundaries, self.values = [int(b) for b in boundaries], [float(v) for v in values]

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    @classmethod
    def constant(cls, value: float) -> "PiecewiseConstant":
        return cls([0], [value, value])

    def __repr__(self):
        return f"PiecewiseConstant({self.boundaries}, {self.values})"


class KerasAdam(torch.optim.Optimizer):
    """Adam as TF Keras computes it (see the module docstring). ``lr`` is set per step by the caller."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-7):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid Adam settings lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                dtype = param.dtype
                # The scalars in the parameters' dtype, in Keras's order of operations.
                t = torch.tensor(state["step"], dtype=dtype)
                lr = torch.tensor(group["lr"], dtype=dtype)
                beta1_power = torch.tensor(beta1, dtype=dtype) ** t
                beta2_power = torch.tensor(beta2, dtype=dtype) ** t
                alpha = lr * torch.sqrt(1 - beta2_power) / (1 - beta1_power)
                grad, m, v = param.grad, state["m"], state["v"]
                m.add_((grad - m) * (1 - torch.tensor(beta1, dtype=dtype)))
                v.add_((grad.square() - v) * (1 - torch.tensor(beta2, dtype=dtype)))
                param.sub_((m * alpha) / (v.sqrt() + torch.tensor(group["eps"], dtype=dtype)))
        return loss
