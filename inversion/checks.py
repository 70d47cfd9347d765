"""Argument checks at the package boundary: one-line ``InversionError`` messages."""

from __future__ import annotations

import torch

from inversion.errors import InversionError

RANGE_TOLERANCE = 1e-3  # images may overshoot [-1, 1] by this much (rounding)


def generator_device(G: torch.nn.Module) -> torch.device:
    """The device of the generator's parameters."""
    for param in G.parameters():
        return param.device
    return torch.device("cpu")


def check_target(G: torch.nn.Module, target: torch.Tensor, name: str = "target") -> torch.Tensor:
    """Validate an image [1, 3, R, R] in [-1, 1] for ``G``; return it as float32 on G's device."""
    res = G.img_resolution
    expected = (1, 3, res, res)
    if not isinstance(target, torch.Tensor):
        raise InversionError(f"{name} must be a torch.Tensor {list(expected)}, got {type(target)}")
    if tuple(target.shape) != expected:
        raise InversionError(
            f"{name} must have shape {list(expected)} (the generator's resolution), "
            f"got {list(target.shape)}: resize the aligned face to {res}x{res}"
        )
    if not target.is_floating_point():
        raise InversionError(
            f"{name} must be a float tensor in [-1, 1], got {target.dtype}: "
            "convert uint8 images with x / 127.5 - 1"
        )
    target = target.detach().to(generator_device(G), torch.float32)
    if not torch.isfinite(target).all():
        raise InversionError(f"{name} contains NaN or infinite values")
    lo, hi = float(target.min()), float(target.max())
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise InversionError(
            f"{name} values must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]: "
            "map [0, 255] images with x / 127.5 - 1"
        )
    return target


def check_ws(G: torch.nn.Module, ws: torch.Tensor, name: str = "ws") -> torch.Tensor:
    """Validate a latent [1, num_ws, w_dim] for ``G``; return a float32 copy on G's device."""
    expected = (1, G.num_ws, G.w_dim)
    if not isinstance(ws, torch.Tensor) or tuple(ws.shape) != expected:
        got = list(ws.shape) if isinstance(ws, torch.Tensor) else type(ws)
        raise InversionError(f"{name} must have shape {list(expected)}, got {got}")
    ws = ws.detach().to(generator_device(G), torch.float32).clone()
    if not torch.isfinite(ws).all():
        raise InversionError(f"{name} contains NaN or infinite values")
    return ws
