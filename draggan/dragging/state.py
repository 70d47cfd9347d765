"""The resumable state of a drag (``DragState``) and the digests that tie it to one run.

A state is the drag loop at the START of step ``step``: ``step`` Adam updates done, the
step-``step`` forward not yet run. It holds the optimised latent, Adam's moments, the tracked
handles before that step's tracking, the stall detector's anchor and the records of steps
``0 .. step - 1``. The initial features (F0) and the handles' reference features are not
stored: ``drag(resume=...)`` recomputes them with step 0's forward on the initial ws, which
on the same device, torch build and thread count gives the same bits, so a resumed drag
returns exactly the result of an uninterrupted one.

``to_tensors()`` -> ``(tensors, meta)``: a flat ``dict[str, Tensor]`` of contiguous CPU
tensors (ready for ``safetensors.torch.save_file``) and a JSON-ready ``dict``;
``DragState.from_tensors(tensors, meta)`` is the inverse. Digests of the config, the inputs
(ws, handles, targets, mask) and the generator refuse a state of another run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from draggan.dragging.errors import DragResumeError
from draggan.dragging.result import DragStep

STATE_KIND = "draggan.drag"
STATE_VERSION = 1
ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")


def _cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", copy=True).contiguous()


@dataclass
class DragState:
    """A drag at the start of step ``step`` (see the module docstring).

    - ``latent``: [1, layers, w_dim] (``w_plus``) or [1, 1, w_dim], the optimised ws head.
    - ``optimizer``: Adam's ``step``, ``exp_avg``, ``exp_avg_sq`` for the latent (empty
      before the first update).
    - ``handles``: [K, 2] (x, y) float64, the handles step ``step`` starts tracking from.
    - ``stall_anchor``: [K, 2] float64 and ``stall_anchor_step``: where and when the handles
      last moved more than ``stall_tolerance``.
    - ``history``: the ``DragStep`` records of steps ``0 .. step - 1``.
    - ``config``: ``DragConfig.to_dict()``; ``inputs_digest``: of ws, handles, targets and
      mask; ``generator_digest``: of the generator's parameters and buffers.
    """

    KIND: ClassVar[str] = STATE_KIND

    step: int
    latent: torch.Tensor
    optimizer: dict[str, torch.Tensor]
    handles: torch.Tensor
    stall_anchor: torch.Tensor
    stall_anchor_step: int
    history: list[DragStep] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    inputs_digest: str = ""
    generator_digest: str = ""

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, meta)``: flat contiguous CPU tensors and JSON-ready metadata."""
        tensors = {
            "latent": _cpu_copy(self.latent),
            "handles": _cpu_copy(self.handles),
            "stall_anchor": _cpu_copy(self.stall_anchor),
        }
        tensors.update({f"optimizer.{k}": _cpu_copy(v) for k, v in self.optimizer.items()})
        meta = {
            "kind": self.KIND,
            "version": STATE_VERSION,
            "step": self.step,
            "stall_anchor_step": self.stall_anchor_step,
            "history": [record.to_dict() for record in self.history],
            "config": dict(self.config),
            "inputs_digest": self.inputs_digest,
            "generator_digest": self.generator_digest,
        }
        return tensors, meta

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> DragState:
        """Inverse of ``to_tensors``; ``DragResumeError`` for anything else."""
        if not isinstance(meta, dict) or meta.get("kind") != cls.KIND:
            got = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
            raise DragResumeError(f"drag resume state: expected a {cls.KIND!r} state, got {got!r}")
        if meta.get("version") != STATE_VERSION:
            raise DragResumeError(
                f"drag resume state has version {meta.get('version')!r}, this dragpipe reads "
                f"version {STATE_VERSION}: start the drag afresh"
            )
        for name in ("latent", "handles", "stall_anchor"):
            if name not in tensors:
                raise DragResumeError(
                    f"drag resume state is incomplete: tensor {name!r} is missing"
                )
        optimizer = {
            k[len("optimizer.") :]: v for k, v in tensors.items() if k.startswith("optimizer.")
        }
        try:
            return cls(
                step=_integer(meta["step"]),
                latent=tensors["latent"],
                optimizer=optimizer,
                handles=tensors["handles"],
                stall_anchor=tensors["stall_anchor"],
                stall_anchor_step=_integer(meta["stall_anchor_step"]),
                history=[DragStep.from_dict(record) for record in meta["history"]],
                config=dict(meta["config"]),
                inputs_digest=str(meta["inputs_digest"]),
                generator_digest=str(meta["generator_digest"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DragResumeError(
                f"drag resume state is damaged ({type(exc).__name__}: {exc}): start the drag afresh"
            ) from exc

    def check_matches(
        self, config: dict[str, Any], inputs_digest: str, generator_digest: str
    ) -> None:
        """``DragResumeError`` naming the first thing that differs from this run."""
        for what, mine, theirs in (
            ("drag config", self.config, config),
            ("ws, points or mask", self.inputs_digest, inputs_digest),
            ("generator", self.generator_digest, generator_digest),
        ):
            if mine != theirs:
                raise DragResumeError(
                    f"drag resume state (step {self.step}) belongs to another run: its {what} "
                    "differs from this drag's; start the drag afresh"
                )

    def check_shapes(self, latent_shape: torch.Size, num_points: int, max_steps: int) -> None:
        """``DragResumeError`` when the tensors cannot continue this drag."""
        problems = []
        if tuple(self.latent.shape) != tuple(latent_shape):
            problems.append(f"latent {list(self.latent.shape)}, expected {list(latent_shape)}")
        for name in ("handles", "stall_anchor"):
            shape = tuple(getattr(self, name).shape)
            if shape != (num_points, 2):
                problems.append(f"{name} {list(shape)}, expected [{num_points}, 2]")
        if not 0 <= self.step <= max_steps or len(self.history) != self.step:
            problems.append(f"step {self.step} with {len(self.history)} records")
        if self.optimizer and sorted(self.optimizer) != sorted(ADAM_KEYS):
            problems.append(f"optimizer entries {sorted(self.optimizer)}")
        for name in ("exp_avg", "exp_avg_sq"):
            moment = self.optimizer.get(name)
            if moment is not None and tuple(moment.shape) != tuple(latent_shape):
                problems.append(f"optimizer {name} {list(moment.shape)}")
        if problems:
            raise DragResumeError(
                f"drag resume state is damaged: {'; '.join(problems)}: start the drag afresh"
            )


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value
