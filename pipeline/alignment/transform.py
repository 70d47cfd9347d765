"""The alignment transform record: everything paste-back needs to map aligned <-> photo.

Coordinate convention (both spaces): pixel centres at integer coordinates, x = column,
y = row, as dlib's landmarks are. The FFHQ quad is a parallelogram (a rotated square), so
the aligned image is an affine image of the photo:

    photo(x, y) = quad[0] + u * (quad[3] - quad[0]) + v * (quad[1] - quad[0]),
    u = (x + 0.5) / output_size,  v = (y + 0.5) / output_size

for an aligned-pixel centre (x, y). ``quad`` is the quad that was actually warped,
expressed in ORIGINAL photo pixels (after undoing the reference's integer shrink, crop and
padding), corner order top-left, bottom-left, bottom-right, top-right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AlignTransform:
    """Record of one face's alignment (JSON-serialisable through ``to_dict``)."""

    quad: np.ndarray  # [4, 2] float64, photo pixels: TL, BL, BR, TR
    output_size: int  # side of the aligned square image
    photo_size: tuple[int, int]  # (width, height) of the photo (EXIF orientation applied)

    def __post_init__(self) -> None:
        quad = np.asarray(self.quad, dtype=np.float64)
        if quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
            raise ValueError(f"quad must be a finite [4, 2] array, got shape {quad.shape}")
        object.__setattr__(self, "quad", quad)
        object.__setattr__(self, "photo_size", (int(self.photo_size[0]), int(self.photo_size[1])))

    def affine_aligned_to_photo(self) -> np.ndarray:
        """[2, 3] matrix A with photo = A @ [x, y, 1] for aligned pixel centres (x, y)."""
        s = float(self.output_size)
        ex = (self.quad[3] - self.quad[0]) / s  # photo step per aligned column
        ey = (self.quad[1] - self.quad[0]) / s  # photo step per aligned row
        origin = self.quad[0] + 0.5 * ex + 0.5 * ey
        return np.stack([ex, ey, origin], axis=1)

    def affine_photo_to_aligned(self) -> np.ndarray:
        """[2, 3] matrix B with aligned = B @ [x, y, 1] for photo pixel centres (x, y)."""
        a = self.affine_aligned_to_photo()
        lin_inv = np.linalg.inv(a[:, :2])
        return np.concatenate([lin_inv, -(lin_inv @ a[:, 2:])], axis=1)

    @property
    def scale(self) -> float:
        """Photo pixels per aligned pixel (mean of the two axes)."""
        a = self.affine_aligned_to_photo()
        return float(np.sqrt(abs(np.linalg.det(a[:, :2]))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "quad": self.quad.tolist(),
            "output_size": int(self.output_size),
            "photo_size": list(self.photo_size),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlignTransform:
        return cls(
            quad=np.asarray(data["quad"], dtype=np.float64),
            output_size=int(data["output_size"]),
            photo_size=tuple(data["photo_size"]),
        )


def aligned_to_photo(points: np.ndarray, transform: AlignTransform) -> np.ndarray:
    """Map aligned-image points [K, 2] (x, y) to photo points [K, 2] (float64)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    a = transform.affine_aligned_to_photo()
    return pts @ a[:, :2].T + a[:, 2]


def photo_to_aligned(points: np.ndarray, transform: AlignTransform) -> np.ndarray:
    """Map photo points [K, 2] (x, y) to aligned-image points [K, 2] (float64)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    b = transform.affine_photo_to_aligned()
    return pts @ b[:, :2].T + b[:, 2]
