"""The resumable state of a drag (``DragState``) and the digests that tie it to one run.

A state is the drag loop at the START of step ``step``: ``step`` Adam updates done, the
step-``step`` forward not yet run. It holds the optimised latent, Adam's moments, the tracked
handles before that step's tracking, the stall detector's anchor and the records of steps
``0 .. step - 1``. The initial features (F0) and the handles' reference features are not
stored: ``drag(resume=...)`` recomputes them with step 0's forward on the initial ws, which
on the same device, torch build and thread count gives the same bits, so a resumed drag
returns exactly the result of an uninterrupted one.

Storage, callbacks and errors follow the loop protocol of ``draggan.loop_state``; digests of
the config, the inputs (ws, handles, targets, mask) and the generator refuse a state of
another run (``DragResumeError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from draggan.digests import module_digest, tensor_digest
from draggan.dragging.config import DragConfig
from draggan.dragging.errors import DragResumeError
from draggan.dragging.inputs import DragInputs
from draggan.dragging.result import DragStep
from draggan.loop_state import LoopState, integer, meta_field, tensor_field, tensors_field

ADAM_KEYS = ("exp_avg", "exp_avg_sq", "step")  # of the one optimised tensor (index 0)
ENDING_ONLY = ("max_steps",)  # config fields a state may differ in (see check_matches)


def _history_to_json(history: list[DragStep]) -> list[dict[str, Any]]:
    return [record.to_dict() for record in history]


def _history_from_json(data: list[dict[str, Any]]) -> list[DragStep]:
    return [DragStep.from_dict(record) for record in data]


@dataclass
class DragState(LoopState):
    """A drag at the start of step ``step`` (see the module docstring).

    - ``latent``: [1, layers, w_dim] (``w_plus``) or [1, 1, w_dim], the optimised ws head.
    - ``optimizer``: Adam's ``0.step``, ``0.exp_avg``, ``0.exp_avg_sq`` for the latent
      (empty before the first update).
    - ``handles``: [K, 2] (x, y) float64, the handles step ``step`` starts tracking from.
    - ``stall_anchor``: [K, 2] float64 and ``stall_anchor_step``: where and when the handles
      last moved more than ``stall_tolerance``.
    - ``history``: the ``DragStep`` records of steps ``0 .. step - 1``.
    - ``config``: ``DragConfig.to_dict()``; ``inputs_digest``: of ws, handles, targets and
      mask; ``generator_digest``: of the generator's parameters and buffers.
    """

    KIND: ClassVar[str] = "draggan.drag"
    VERSION: ClassVar[int] = 2  # 2: Adam's entries indexed like every loop state's
    ERROR: ClassVar[type[Exception]] = DragResumeError
    MISMATCH: ClassVar[type[Exception]] = DragResumeError
    DIGEST_WORDS: ClassVar[dict[str, str]] = {
        "config": "drag config",
        "inputs_digest": "ws, points or mask",
        "generator_digest": "generator",
    }

    latent: torch.Tensor = tensor_field()
    optimizer: dict[str, torch.Tensor] = tensors_field()
    handles: torch.Tensor = tensor_field()
    stall_anchor: torch.Tensor = tensor_field()
    stall_anchor_step: int = meta_field(lambda v: v, integer)
    history: list[DragStep] = meta_field(_history_to_json, _history_from_json, default=list)
    config: dict[str, Any] = field(default_factory=dict)
    inputs_digest: str = ""
    generator_digest: str = ""

    def check_matches(self, **expected: Any) -> None:
        """As ``LoopState.check_matches``, except that ``max_steps`` may differ: it only
        decides where a drag ends (the steps before the cap are the same computation), so
        a state at step k of a drag capped at 300 continues a drag capped at k or more (the
        editor's Stop); ``check_shapes`` refuses a state beyond the cap."""
        config = expected.get("config")
        if isinstance(config, dict):
            ending = {k: self.config[k] for k in ENDING_ONLY if k in self.config}
            expected["config"] = {**config, **ending}
        super().check_matches(**expected)

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
        if self.optimizer and sorted(self.optimizer) != [f"0.{key}" for key in ADAM_KEYS]:
            problems.append(f"optimizer entries {sorted(self.optimizer)}")
        for name in ("exp_avg", "exp_avg_sq"):
            moment = self.optimizer.get(f"0.{name}")
            if moment is not None and tuple(moment.shape) != tuple(latent_shape):
                problems.append(f"optimizer {name} {list(moment.shape)}")
        if problems:
            raise DragResumeError(
                f"drag resume state is damaged: {'; '.join(problems)}: start the drag afresh"
            )


class RunDigests:
    """The digests that tie a ``DragState`` to one drag (computed on first use: hashing a
    large generator's weights costs a fraction of a second, paid only when resuming or
    snapshotting)."""

    def __init__(self, G: torch.nn.Module, inputs: DragInputs, config: DragConfig) -> None:
        self.config = config.to_dict()
        self._G = G
        self._inputs = inputs
        self._digests: dict[str, str] = {}

    @property
    def inputs(self) -> str:
        if "inputs" not in self._digests:
            parts = [self._inputs.ws, self._inputs.handles, self._inputs.targets]
            if self._inputs.fixed is not None:
                parts.append(self._inputs.fixed)
            self._digests["inputs"] = tensor_digest(parts)
        return self._digests["inputs"]

    @property
    def generator(self) -> str:
        if "generator" not in self._digests:
            self._digests["generator"] = module_digest(self._G)
        return self._digests["generator"]

    def check(self, state: DragState) -> None:
        state.check_matches(
            config=self.config, inputs_digest=self.inputs, generator_digest=self.generator
        )
