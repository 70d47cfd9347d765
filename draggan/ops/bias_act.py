"""Bias + activation + gain + clamp, in that order (NVIDIA's ``bias_act`` reference path)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from draggan.ops.tracing import tracing


@dataclass(frozen=True)
class Activation:
    """An activation function with its default slope ``alpha`` and output ``gain``."""

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, alpha: x, 0.0, 1.0),
    "relu": Activation(lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
}


def _flat(x: torch.Tensor) -> torch.Tensor:  # [numel], a view when x is dense
    """All elements in memory order (no copy for contiguous or channels_last tensors)."""
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(-1)
    return x.reshape(-1)


def bias_act(
    x: torch.Tensor,  # [N, C, ...] (any shape; bias along `dim`)
    b: torch.Tensor | None = None,  # [C] or None
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,  # None: the activation's default gain
    clamp: float | None = None,  # clamp the result to [-clamp, clamp]; None: off
    inplace: bool = False,  # overwrite x (a fresh intermediate nobody else reads)
) -> torch.Tensor:  # same shape and dtype as x
    """Add ``b`` along ``dim``, apply ``act``, multiply by ``gain``, then clamp.

    ``inplace=True`` saves the allocation of three large temporaries; autograd allows it
    for these activations (their backward needs only the output).
    """
    if act not in ACTIVATIONS:
        raise ValueError(
            f"bias_act: unknown activation {act!r}; expected one of {list(ACTIVATIONS)}"
        )
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be >= 0 or None, got {clamp}")
    spec = ACTIVATIONS[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)

    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: expected bias [{x.shape[dim]}], got {list(b.shape)}")
        b = b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        x = x.add_(b) if inplace else x + b
    if inplace and act == "lrelu":
        x = F.leaky_relu_(x, alpha)
    elif inplace and act == "relu":
        x = F.relu_(x)
    else:
        x = spec.func(x, alpha)
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None:
        # Clamping values already inside [-clamp, clamp] changes nothing (forward or
        # backward), so on CPU the clamp and its backward masks are skipped when no value
        # is outside. (On accelerators the check would cost a host sync per layer.)
        # Never while tracing for export: the check would be frozen into the graph.
        needed = True
        if x.device.type == "cpu" and x.numel() > 0 and not tracing():
            lo, hi = torch.aminmax(_flat(x.detach()))
            needed = bool(lo < -clamp or hi > clamp)
        if needed:
            x = x.clamp(-float(clamp), float(clamp))
    return x
