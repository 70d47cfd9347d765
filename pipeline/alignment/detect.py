"""Face detection and 68-point landmarks with dlib, and choosing which faces to edit.

Detector: dlib's HOG frontal face detector (upsampled ``upsample`` times), landmarks:
``shape_predictor_68_face_landmarks.dat`` from ``face-recognition-models`` (the model FFHQ
was aligned with). Large photos are detected on a reduced copy (longest side
``max_side``); boxes and landmarks are mapped back to the original's pixel centres with the
real resize ratio, so the FFHQ crop is then taken from the full-resolution photo.

Coordinates: pixel centres at integers, x = column, y = row (as ``transform.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from inversion import face_models
from pipeline.alignment.errors import FaceSelectionError
from pipeline.alignment.ffhq import ffhq_quad


@dataclass(frozen=True)
class Face:
    """One face: detector box and score, 68 landmarks, position in left-to-right order."""

    box: tuple[float, float, float, float]  # (left, top, right, bottom), photo pixels
    score: float  # dlib detector score (nan for user-given landmarks)
    landmarks: np.ndarray  # [68, 2] float64, (x, y) photo pixels
    index: int = 0  # position among the photo's faces, ordered left to right
    source: str = "dlib"  # 'dlib' (detected) or 'override' (user-given landmarks)

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.1f}" for v in self.box)
        return (
            f"Face(index={self.index}, box=({box}), score={self.score:.3f}, source={self.source})"
        )

    @property
    def center(self) -> tuple[float, float]:
        """Centre of the box (x, y)."""
        left, top, right, bottom = self.box
        return ((left + right) / 2.0, (top + bottom) / 2.0)

    @property
    def size(self) -> float:
        """Face size in photo pixels: side of the FFHQ crop square (``2 |x|`` of the quad)."""
        quad = ffhq_quad(self.landmarks)
        return float(np.hypot(*(quad[3] - quad[0])))


@functools.lru_cache(maxsize=1)
def _detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=1)
def _predictor():
    import dlib

    return dlib.shape_predictor(str(face_models.model_path(face_models.LANDMARKS_68)))


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """A C-contiguous [H, W, 3] uint8 array from a PIL image or an [H, W(, 3)] uint8 array."""
    if isinstance(image, Image.Image):
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an image array [H, W, 3], got shape {list(array.shape)}")
    return np.ascontiguousarray(array)


def detect_faces(
    image: Image.Image | np.ndarray,  # PIL image or [H, W, 3] uint8
    upsample: int = 1,
    max_side: int | None = None,
) -> list[Face]:
    """Every face dlib finds, ordered left to right (by box centre x, then y).

    ``max_side``: detect on a copy reduced so its longest side is at most this (None: full
    size); results are mapped back to the original's pixels.
    """
    if isinstance(image, Image.Image):
        width, height = image.size
    else:
        image = as_rgb_array(image)
        height, width = image.shape[:2]
    scale_x = scale_y = 1.0
    if max_side is not None and max(width, height) > max_side:
        # Reduce straight from the PIL image when given one (no full-size array copy).
        pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
        ratio = max_side / max(width, height)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        pil = pil if pil.mode == "RGB" else pil.convert("RGB")
        work = np.asarray(pil.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))
        scale_x, scale_y = width / size[0], height / size[1]
    else:
        work = as_rgb_array(image)

    rects, scores, _ = _detector().run(work, int(upsample), 0.0)
    predictor = _predictor()
    scale = np.array([scale_x, scale_y])
    faces = []
    for rect, score in zip(rects, scores, strict=True):
        shape = predictor(work, rect)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)  # [68, 2]
        corners = np.array([[rect.left(), rect.top()], [rect.right(), rect.bottom()]], float)
        # Pixel centres of the reduced copy -> pixel centres of the original.
        points = (points + 0.5) * scale - 0.5
        corners = (corners + 0.5) * scale - 0.5
        box = (corners[0, 0], corners[0, 1], corners[1, 0], corners[1, 1])
        faces.append(Face(box=tuple(float(v) for v in box), score=float(score), landmarks=points))
    return order_faces(faces)


def order_faces(faces: list[Face]) -> list[Face]:
    """Faces sorted left to right (box centre x, then y), with ``index`` set to the rank."""
    ranked = sorted(faces, key=lambda face: (face.center[0], face.center[1]))
    return [dataclasses.replace(face, index=i) for i, face in enumerate(ranked)]


def face_from_landmarks(landmarks: np.ndarray, index: int = 0) -> Face:
    """A user-given face: landmarks [68, 2] (photo pixels); box = their bounding box."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
    lo, hi = points.min(axis=0), points.max(axis=0)
    box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    return Face(box=box, score=float("nan"), landmarks=points, index=index, source="override")


def select_faces(faces: list[Face] | list[np.ndarray], face: str | int = "largest") -> list[Face]:
    """The faces to edit: 'largest' (biggest FFHQ crop), an index (left to right) or 'all'.

    ``faces``: non-empty (a photo without faces raises ``NoFaceError`` earlier); bare
    landmark arrays [68, 2] (e.g. from ``load_landmarks_json``) are wrapped and ordered.
    """
    if not faces:
        raise FaceSelectionError("no faces to choose from")
    if not all(isinstance(f, Face) for f in faces):  # bare [68, 2] landmark arrays
        faces = order_faces([f if isinstance(f, Face) else face_from_landmarks(f) for f in faces])
    choice = face.strip().lower() if isinstance(face, str) else face
    if isinstance(choice, str) and choice.lstrip("-").isdigit():
        choice = int(choice)
    if choice == "all":
        return list(faces)
    if choice == "largest":
        return [max(faces, key=lambda f: f.size)]
    if isinstance(choice, int) and not isinstance(choice, bool):
        if not 0 <= choice < len(faces):
            found = f"{len(faces)} face" + ("s" if len(faces) != 1 else "")
            raise FaceSelectionError(
                f"face {choice} does not exist: {found} found, so use an index "
                f"0-{len(faces) - 1} (left to right), 'largest' or 'all'"
            )
        return [faces[choice]]
    raise FaceSelectionError(
        f"face must be 'largest', 'all' or an index 0-{len(faces) - 1}, got {face!r}"
    )
