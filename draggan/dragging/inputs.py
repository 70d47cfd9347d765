"""Checks of everything ``drag`` is given, before any work: one-line ``DragInputError``s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from draggan.dragging.config import DragConfig
from draggan.dragging.errors import DragInputError


@dataclass(frozen=True)
class DragInputs:
    """Validated inputs: ws on the generator's device, points as float64 CPU tensors."""

    ws: torch.Tensor  # [1, num_ws, w_dim] float32
    handles: torch.Tensor  # [K, 2] (x, y) float64
    targets: torch.Tensor  # [K, 2] (x, y) float64
    fixed: torch.Tensor | None  # [R, R] float32, 1 where the image must stay; None: no mask


def generator_device(G: torch.nn.Module) -> torch.device:
    """The device of the generator's first parameter (CPU for a parameterless module)."""
    for param in G.parameters():
        return param.device
    return torch.device("cpu")


def check_generator(G: Any) -> None:
    for attr in ("img_resolution", "num_ws", "w_dim", "synthesis"):
        if not hasattr(G, attr):
            raise DragInputError(
                f"drag: G must be a draggan Generator (missing attribute {attr!r}), "
                f"got {type(G).__name__}"
            )


def check_points(points: Any, name: str, resolution: int) -> torch.Tensor:  # [K, 2] float64
    """(x, y) pixel points inside the R x R image, as a [K, 2] float64 CPU tensor."""
    try:
        pts = torch.as_tensor(points, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DragInputError(
            f"drag: {name} must be a [K, 2] list or tensor of (x, y) pixels, got {points!r}"
        ) from exc
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
        raise DragInputError(
            f"drag: {name} must have shape [K, 2] with K >= 1 (x, y) points, "
            f"got shape {list(pts.shape)}"
        )
    if not torch.isfinite(pts).all():
        raise DragInputError(f"drag: {name} contains NaN or infinite coordinates: {pts.tolist()}")
    high = resolution - 1
    outside = ((pts < 0) | (pts > high)).any(dim=1)
    if outside.any():
        k = int(outside.nonzero()[0])
        x, y = pts[k].tolist()
        raise DragInputError(
            f"drag: {name}[{k}] = ({x:g}, {y:g}) is outside the {resolution}x{resolution} "
            f"image: x and y must be in [0, {high}]"
        )
    return pts


def check_mask(mask: Any, resolution: int, device: torch.device) -> torch.Tensor | None:
    """The fixed region ``1 - mask`` ([R, R] float32), or None when every pixel may move."""
    if mask is None:
        return None
    try:
        movable = torch.as_tensor(mask).detach()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DragInputError(
            f"drag: mask must be an [H, W] tensor or array, got {type(mask).__name__}"
        ) from exc
    if movable.dtype == torch.bool:
        movable = movable.to(torch.float32)
    if not (
        movable.is_floating_point() or movable.dtype in (torch.uint8, torch.int32, torch.int64)
    ):
        raise DragInputError(f"drag: mask must hold numbers in [0, 1], got dtype {movable.dtype}")
    movable = movable.to(device=device, dtype=torch.float32)
    if tuple(movable.shape) != (resolution, resolution):
        raise DragInputError(
            f"drag: mask must have shape [{resolution}, {resolution}] (the generated image), "
            f"got {list(movable.shape)}"
        )
    if not torch.isfinite(movable).all() or movable.min() < 0 or movable.max() > 1:
        raise DragInputError(
            "drag: mask values must be in [0, 1] (1 = may move, 0 = fixed), "
            f"got range [{float(movable.min()):g}, {float(movable.max()):g}]"
        )
    if movable.max() == 0:
        raise DragInputError(
            "drag: mask marks no pixel as movable (all 0): set 1 where the image may change, "
            "or pass mask=None to let everything move"
        )
    if movable.min() == 1:
        return None
    return 1 - movable


def check_ws(ws: Any, G: Any, config: DragConfig, device: torch.device) -> torch.Tensor:
    want = f"[1, {G.num_ws}, {G.w_dim}]"
    if not isinstance(ws, torch.Tensor):
        raise DragInputError(f"drag: ws must be a tensor {want}, got {type(ws).__name__}")
    if tuple(ws.shape) != (1, G.num_ws, G.w_dim):
        raise DragInputError(f"drag: ws must have shape {want} (one latent), got {list(ws.shape)}")
    ws = ws.detach().to(device=device, dtype=torch.float32)
    if not torch.isfinite(ws).all():
        raise DragInputError("drag: ws contains NaN or infinite values")
    head = ws[:, : config.layers]
    if not config.w_plus and not torch.equal(head, head[:, :1].expand_as(head)):
        raise DragInputError(
            f"drag: w_plus=False optimises one w shared by the first {config.layers} ws, but "
            f"the given ws differ there: use w_plus=True (or a W latent)"
        )
    return ws


def check_inputs(
    G: Any, ws: Any, handles: Any, targets: Any, mask: Any, config: DragConfig
) -> DragInputs:
    """Validate every argument of ``drag``; raise ``DragInputError`` on the first problem."""
    check_generator(G)
    resolution = int(G.img_resolution)
    device = generator_device(G)
    handles_t = check_points(handles, "handles", resolution)
    targets_t = check_points(targets, "targets", resolution)
    if handles_t.shape[0] != targets_t.shape[0]:
        raise DragInputError(
            f"drag: got {handles_t.shape[0]} handles but {targets_t.shape[0]} targets: "
            "give one target per handle"
        )
    return DragInputs(
        ws=check_ws(ws, G, config, device),
        handles=handles_t,
        targets=targets_t,
        fixed=check_mask(mask, resolution, device),
    )
