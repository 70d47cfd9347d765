"""Composite stage: put edited faces back into the photo with no seams.

Public API: ``CompositeConfig``, ``FaceEdit``, ``CompositeResult``, ``composite_face``,
``composite_faces``, ``seam_ratio``; the output file is written by
``pipeline.photo_output.save_output``.
"""

from pipeline.compositing.compose import CompositeResult, FaceEdit, composite_face, composite_faces
from pipeline.compositing.config import CompositeConfig, CompositeConfigError
from pipeline.compositing.seam import seam_ratio

__all__ = [
    "CompositeConfig",
    "CompositeConfigError",
    "CompositeResult",
    "FaceEdit",
    "composite_face",
    "composite_faces",
    "seam_ratio",
]
