"""The DragGAN engine: ``drag(G, ws, handles, targets, mask, config, callback)``.

Modules: ``config`` (DragConfig), ``inputs`` (argument checks), ``official`` and ``fast``
(the two modes' per-step operations), ``tracking`` and ``sampling`` (fast mode's point
tracking and sub-pixel feature sampling), ``engine`` (the loop), ``result`` (DragResult,
DragStep), ``state`` (DragState, the resumable loop state) and ``resume`` (its digests and
the callback's ``state()``).
"""

from draggan.dragging.config import DragConfig, DragParams
from draggan.dragging.engine import drag
from draggan.dragging.errors import DragInputError, DragResumeError
from draggan.dragging.result import DragResult, DragStep
from draggan.dragging.state import DragState

__all__ = [
    "DragConfig",
    "DragInputError",
    "DragParams",
    "DragResult",
    "DragResumeError",
    "DragState",
    "DragStep",
    "drag",
]
