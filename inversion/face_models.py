"""Locate dlib's model files shipped by the ``face-recognition-models`` package.

The package's ``__init__`` imports ``pkg_resources`` (gone from current setuptools), so
we find its directory through the import system without importing it.
"""

import importlib.util
from pathlib import Path

from inversion.errors import InversionError

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"


def model_path(filename: str) -> Path:
    """Return the path of one of the package's model files, e.g. ``LANDMARKS_68``."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "models" / filename
        if candidate.is_file():
            return candidate
    raise InversionError(
        f"dlib model file {filename} not found: install it with "
        "'pip install face-recognition-models'"
    )
