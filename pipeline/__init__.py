"""pipeline: dragpipe's stages (align, invert, edit, composite), stage cache, spec and CLI."""

from draggan.version import __version__
from pipeline.errors import PipelineError, UsageError

__all__ = ["PipelineError", "UsageError", "__version__"]
