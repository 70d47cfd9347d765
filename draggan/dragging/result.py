"""What a drag reports and returns: one ``DragStep`` per step (handed to the callback in a
``DragProgress``) and the final ``DragResult``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from draggan.loop_state import LoopProgress


@dataclass(frozen=True)
class DragStep:
    """One step of a drag: point tracking on the current latent, then the losses.

    ``step`` k is evaluated on the ws after k optimisation steps; ``handles`` are the
    tracked positions on that latent's features, as (x, y) = (column, row) image pixels;
    ``distances`` from each handle to its target (px). ``updated`` says whether an
    optimisation step followed (False on the last record of a run).
    """

    step: int
    handles: tuple[tuple[float, float], ...]
    distances: tuple[float, ...]
    loss_motion: float
    loss_mask: float
    loss: float
    updated: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            "step": self.step,
            "handles": [list(p) for p in self.handles],
            "distances": list(self.distances),
            "loss_motion": self.loss_motion,
            "loss_mask": self.loss_mask,
            "loss": self.loss,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DragStep:
        """Inverse of ``to_dict``."""
        return cls(
            step=int(data["step"]),
            handles=tuple((float(x), float(y)) for x, y in data["handles"]),
            distances=tuple(float(d) for d in data["distances"]),
            loss_motion=float(data["loss_motion"]),
            loss_mask=float(data["loss_mask"]),
            loss=float(data["loss"]),
            updated=bool(data.get("updated", True)),
        )


@dataclass(frozen=True)
class DragProgress(LoopProgress):
    """What the drag's callback receives after each step's tracking (``phase`` 'drag',
    ``losses`` motion / mask / loss). ``record``: the step's ``DragStep``; ``image``: the
    [1, C, R, R] render when the step made one, else None; ``state()`` (during the call
    only): the ``DragState`` from which step ``record.step`` is recomputed."""

    record: DragStep = field(kw_only=True)
    image: torch.Tensor | None = field(default=None, kw_only=True, repr=False)


@dataclass
class DragResult:
    """The outcome of ``drag``.

    - ``ws``: [1, num_ws, w_dim] final latent (detached, on the generator's device).
    - ``handles``: [K, 2] final tracked handles, (x, y) image pixels (float64, CPU).
    - ``targets``: [K, 2] the targets, (x, y) (float64, CPU).
    - ``image``: [1, img_channels, R, R] the image of the final ws (generator output,
      about [-1, 1]), rendered once at the end (or taken from the last step's forward).
    - ``steps``: optimisation steps taken; ``history`` has ``steps + 1`` records.
    - ``converged``: every handle ended within ``stop_distance`` of its target.
    - ``stop_reason``: 'converged', 'max_steps', 'stalled' (handles stopped moving) or
      'callback' (the callback asked to stop).
    """

    ws: torch.Tensor
    handles: torch.Tensor
    targets: torch.Tensor
    image: torch.Tensor
    steps: int
    converged: bool
    stop_reason: str
    stop_distance: float
    history: list[DragStep] = field(default_factory=list)

    @property
    def distances(self) -> torch.Tensor:  # [K] float64
        """Final distance of each handle to its target (px)."""
        return (self.targets - self.handles).norm(dim=1)

    def trajectory_dict(self) -> dict[str, Any]:
        """JSON-ready summary: final points, outcome and every step record (no tensors
        other than as lists)."""
        return {
            "handles": self.handles.tolist(),
            "targets": self.targets.tolist(),
            "steps": self.steps,
            "converged": self.converged,
            "stop_reason": self.stop_reason,
            "stop_distance": self.stop_distance,
            "history": [record.to_dict() for record in self.history],
        }
