"""An edit's drag points in aligned-image pixels, and which face a photo-space edit is for.

Every point form of the spec ends up as float64 aligned-image pixel coordinates (x, y),
pixel centres at integers (``pipeline/alignment/transform.py``):

- ``[x, y]`` in photo space: mapped through the face's ``AlignTransform``;
- ``[x, y]`` in aligned space: taken as is;
- ``{landmark: L, offset: [dx, dy]}``: the aligned landmark L plus ``offset`` times the
  aligned image side, so the same definition follows every face.

``face: all``. Landmark-anchored and aligned-space points fit every face, so such an edit is
applied to each face. An edit with photo-space points belongs to ONE face: the face whose
aligned crop contains all of them (``owning_face``); when several crops do (neighbouring
faces' crops overlap), the face whose crop centre is nearest the points' mean, measured in
units of each crop's side. The runner applies the edit to that face only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.alignment.landmark_names import landmark_name
from pipeline.alignment.transform import AlignTransform, photo_to_aligned
from pipeline.errors import PipelineError
from pipeline.spec.models import EditSpec, LandmarkPoint

NUM_LANDMARKS = 68


def as_landmarks(landmarks_aligned: np.ndarray) -> np.ndarray:
    """``landmarks_aligned`` as float64 [68, 2], or ValueError naming the shape."""
    landmarks = np.asarray(landmarks_aligned, dtype=np.float64)
    if landmarks.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected landmarks_aligned [68, 2], got {list(landmarks.shape)}")
    return landmarks


def point_space(edit: EditSpec, index: int) -> str:
    """The space of the ``[x, y]`` points of pair ``index``: the pair's, else the edit's."""
    return edit.points[index].space or edit.space


def resolve_point(
    point: tuple[float, float] | LandmarkPoint,
    space: str,
    landmarks_aligned: np.ndarray,  # [68, 2] aligned pixels
    transform: AlignTransform,
) -> np.ndarray:
    """One spec point as aligned-image pixels [2] (x, y), float64."""
    if isinstance(point, LandmarkPoint):
        side = float(transform.output_size)
        return landmarks_aligned[point.landmark] + np.asarray(point.offset) * side
    xy = np.asarray(point, dtype=np.float64)
    if space == "photo":
        return photo_to_aligned(xy, transform)[0]
    return xy


def _describe(point: tuple[float, float] | LandmarkPoint, space: str) -> str:
    if isinstance(point, LandmarkPoint):
        offset = f" + offset {list(point.offset)}" if any(point.offset) else ""
        return f"landmark {landmark_name(point.landmark)}{offset}"
    return f"[{point[0]:g}, {point[1]:g}] ({space} pixels)"


def resolve_points(
    edit: EditSpec,
    landmarks_aligned: np.ndarray,  # [68, 2] float, aligned pixels (x, y)
    transform: AlignTransform,
) -> tuple[np.ndarray, np.ndarray]:
    """The edit's handles and targets: two float64 arrays [K, 2] of aligned pixels (x, y).

    Raises ``PipelineError`` naming the photo, edit and point (with its spec line) when a
    point lands outside the aligned image (0 .. output_size - 1 on both axes). For a
    ``face: all`` photo, call it only for the face ``owning_face`` picks.
    """
    landmarks = as_landmarks(landmarks_aligned)
    side = transform.output_size
    handles, targets = [], []
    for index, pair in enumerate(edit.points):
        space = point_space(edit, index)
        for role, point, out in (
            ("handle", pair.handle, handles),
            ("target", pair.target, targets),
        ):
            xy = resolve_point(point, space, landmarks, transform)
            if not (np.all(np.isfinite(xy)) and np.all(xy >= 0) and np.all(xy <= side - 1)):
                raise PipelineError(
                    f"{edit.point_where(index)}: photo {edit.photo_id!r}, edit {edit.name!r}, "
                    f"point {index} {role} {_describe(point, space)} lands at aligned "
                    f"({xy[0]:.1f}, {xy[1]:.1f}), outside the {side}x{side} aligned face: "
                    "move it inside the face crop (see the aligned image) or use a landmark"
                )
            out.append(xy)
    return np.stack(handles), np.stack(targets)


def photo_space_points(edit: EditSpec) -> np.ndarray:
    """The edit's ``[x, y]`` points given in photo space, [P, 2] float64 (P may be 0)."""
    points = [
        np.asarray(point, dtype=np.float64)
        for index, pair in enumerate(edit.points)
        if point_space(edit, index) == "photo"
        for point in (pair.handle, pair.target)
        if not isinstance(point, LandmarkPoint)
    ]
    return np.stack(points) if points else np.zeros((0, 2))


def owning_face(edit: EditSpec, transforms: Sequence[AlignTransform]) -> int | None:
    """Index of the face (into ``transforms``) an edit with photo-space points is for.

    None when the edit has no photo-space points (it applies to every face). Raises
    ``PipelineError`` when no face's aligned crop contains all of them.
    """
    points = photo_space_points(edit)
    if len(points) == 0:
        return None
    best, best_distance = None, np.inf
    for face, transform in enumerate(transforms):
        side = transform.output_size
        aligned = photo_to_aligned(points, transform)
        if not (np.all(aligned >= 0) and np.all(aligned <= side - 1)):
            continue
        centre_offset = (aligned.mean(axis=0) - (side - 1) / 2) / side
        distance = float(np.hypot(*centre_offset))
        if distance < best_distance:
            best, best_distance = face, distance
    if best is None:
        raise PipelineError(
            f"{edit.where}: photo {edit.photo_id!r}, edit {edit.name!r}: no face's aligned crop "
            f"contains all its photo-space points ({len(transforms)} face(s) found): put the "
            "points on one face, or use landmark-anchored points to edit every face"
        )
    return best
