"""The DragGAN engine: ``drag(G, ws, handles, targets, mask, config, callback, resume)``.

Modules: ``config`` (DragConfig), ``inputs`` (argument checks), ``official`` and ``fast``
(the two modes' per-step operations), ``tracking`` and ``sampling`` (fast mode's point
tracking and sub-pixel feature sampling), ``engine`` (the loop), ``result`` (DragStep,
DragProgress: what the callback gets, DragResult) and ``state`` (DragState, the resumable
loop state, and the digests that tie it to its run). Callbacks and states follow the loop
protocol of ``draggan.loop_state``.
"""

from draggan.dragging.config import DragConfig, DragParams
from draggan.dragging.engine import drag
from draggan.dragging.errors import DragInputError, DragResumeError
from draggan.dragging.result import DragProgress, DragResult, DragStep
from draggan.dragging.state import DragState

__all__ = [
    "DragConfig",
    "DragInputError",
    "DragParams",
    "DragProgress",
    "DragResult",
    "DragResumeError",
    "DragState",
    "DragStep",
    "drag",
]
