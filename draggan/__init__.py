"""draggan: pure-PyTorch StyleGAN2 generator, safe checkpoint loading and the DragGAN engine.

Depends on none of dragpipe's other packages.
"""

from draggan.autotune import AutotuneError, Autotuner
from draggan.config import GeneratorConfig
from draggan.dragging import (
    DragConfig,
    DragInputError,
    DragProgress,
    DragResult,
    DragResumeError,
    DragState,
    DragStep,
    drag,
)
from draggan.errors import CheckpointError, DragganError, UnsafeCheckpointError
from draggan.generator import Generator
from draggan.loading import load_generator
from draggan.native_format import save_generator
from draggan.version import __version__

__all__ = [
    "Autotuner",
    "AutotuneError",
    "DragConfig",
    "DragInputError",
    "DragProgress",
    "DragResult",
    "DragResumeError",
    "DragState",
    "DragStep",
    "DragganError",
    "Generator",
    "GeneratorConfig",
    "CheckpointError",
    "UnsafeCheckpointError",
    "__version__",
    "load_generator",
    "save_generator",
    "drag",
]
