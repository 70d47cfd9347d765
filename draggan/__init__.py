"""draggan: pure-PyTorch StyleGAN2 generator, safe checkpoint loading and the DragGAN engine.

Depends on none of dragpipe's other packages.
"""

from draggan.config import GeneratorConfig
from draggan.errors import DragganError
from draggan.generator import Generator
from draggan.version import __version__

__all__ = ["DragganError", "Generator", "GeneratorConfig", "__version__"]
