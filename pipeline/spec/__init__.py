"""The YAML edit spec: ``load_spec(path) -> Spec``, validated with every problem located.

- ``load_spec`` / ``Spec`` / ``PhotoSpec`` / ``EditSpec``: the document (``models.py``);
- ``Spec.settings(photo, edit) -> StageSettings``: the stages' configs merged top -> photo
  -> edit (``settings.py``);
- ``resolve_points`` / ``owning_face``: an edit's handles and targets in aligned pixels
  (``points.py``); ``resolve_mask``: its mask in the aligned image (``masks.py``);
- ``SpecError`` (exit code 2): every problem of the file, one per line (``errors.py``).
"""

from pipeline.spec.errors import Problem, SpecError
from pipeline.spec.loader import load_spec, load_spec_text
from pipeline.spec.models import (
    CircleMask,
    EditSpec,
    EllipseMask,
    LandmarkPoint,
    PhotoSpec,
    PngMask,
    PointPair,
    PolygonMask,
    Spec,
)
from pipeline.spec.settings import StageSettings

__all__ = [
    "CircleMask",
    "EditSpec",
    "EllipseMask",
    "LandmarkPoint",
    "PhotoSpec",
    "PngMask",
    "PointPair",
    "PolygonMask",
    "Problem",
    "Spec",
    "SpecError",
    "StageSettings",
    "load_spec",
    "load_spec_text",
]
