"""draggan: pure-PyTorch StyleGAN2 generator, safe checkpoint loading and the DragGAN engine.

Depends on none of dragpipe's other packages.
"""

from draggan.errors import DragganError
from draggan.version import __version__

__all__ = ["DragganError", "__version__"]
