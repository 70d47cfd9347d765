"""Landmark override files: the user gives a photo's 68 landmarks instead of detecting them.

Accepted JSON (coordinates in photo pixels after EXIF orientation, x = column, y = row,
pixel centres at integers):

- one face: a list of 68 ``[x, y]`` pairs;
- several faces: ``{"faces": [FACE, ...]}`` where FACE is a list of 68 pairs or an object
  with a ``"landmarks"`` list (the format ``dragpipe landmarks --json`` writes, so its
  output can be corrected by hand and fed back).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.alignment.errors import LandmarksFileError


def load_landmarks_json(path: str | Path) -> list[np.ndarray]:
    """The faces' landmarks in a JSON file: a list of [68, 2] float64 arrays (at least one)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LandmarksFileError(f"landmarks file {path} not found: check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LandmarksFileError(f"landmarks file {path} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LandmarksFileError(
            f"landmarks file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg})"
        ) from None
    return parse_landmarks(data, source=f"landmarks file {path}")


def parse_landmarks(data: Any, source: str = "landmarks") -> list[np.ndarray]:
    """Validate already-parsed landmark data (same shapes as the JSON file; e.g. from a spec)."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"faces", "photo", "photo_size"})
        if "faces" not in data or unknown:
            raise LandmarksFileError(
                f'{source}: expected a list of 68 [x, y] pairs or {{"faces": [...]}}, '
                f"got an object with keys {sorted(data)}"
            )
        faces = data["faces"]
        if not isinstance(faces, list) or not faces:
            raise LandmarksFileError(f"{source}: 'faces' must be a non-empty list of faces")
        return [_parse_face(face, f"{source}: face {i}") for i, face in enumerate(faces)]
    if isinstance(data, list):
        return [_parse_face(data, source)]
    raise LandmarksFileError(
        f'{source}: expected a list of 68 [x, y] pairs or {{"faces": [...]}}, '
        f"got {type(data).__name__}"
    )


def _parse_face(face: Any, where: str) -> np.ndarray:
    if isinstance(face, dict):
        if "landmarks" not in face:
            raise LandmarksFileError(f"{where}: an object face needs a 'landmarks' list")
        face = face["landmarks"]
    if not isinstance(face, list):
        raise LandmarksFileError(f"{where}: expected 68 [x, y] pairs, got {type(face).__name__}")
    if len(face) != 68:
        raise LandmarksFileError(
            f"{where}: expected 68 [x, y] pairs (dlib's 68-point layout), got {len(face)}"
        )
    for i, point in enumerate(face):
        ok = (
            isinstance(point, list | tuple)
            and len(point) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
            and all(math.isfinite(v) for v in point)
        )
        if not ok:
            raise LandmarksFileError(
                f"{where}: point {i} must be a pair of finite numbers [x, y], got {point!r}"
            )
    points = np.asarray(face, dtype=np.float64)  # [68, 2]
    span = points.max(axis=0) - points.min(axis=0)
    if not np.all(span > 0):
        raise LandmarksFileError(f"{where}: the 68 points are degenerate (all on one line)")
    return points
