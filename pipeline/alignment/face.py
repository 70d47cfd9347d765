"""The align stage for one photo: find its faces (or take the user's landmarks), align one.

``AlignConfig`` holds every knob with its default; ``find_faces`` returns the photo's
faces left to right (raising ``NoFaceError`` naming the file), ``align_face`` produces the
FFHQ crop and its transform record for one face's landmarks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pipeline.alignment.detect import Face, detect_faces, face_from_landmarks, order_faces
from pipeline.alignment.errors import LandmarksFileError, NoFaceError
from pipeline.alignment.ffhq import DEFAULT_TRANSFORM_SIZE, align_image, ffhq_quad
from pipeline.alignment.transform import AlignTransform
from pipeline.errors import UsageError
from pipeline.photo import Photo

FFHQ_RESOLUTION = 1024  # output size when neither the config nor a generator says
TINY_CROP_PX = 128  # crops this small (faces under about 64 px) come out blurry


@dataclass(frozen=True)
class AlignConfig:
    """Alignment settings; the defaults are NVIDIA's FFHQ ones plus detection knobs."""

    output_size: int | None = None  # aligned side; None: the generator's resolution
    transform_size: int = DEFAULT_TRANSFORM_SIZE  # supersampled warp size (FFHQ: 4096)
    enable_padding: bool = True  # reflect-pad + blur + fade where the crop leaves the photo
    upsample: int = 1  # dlib detector upsampling (1 finds faces down to about 40 px)
    detect_max_side: int | None = 1600  # detect on a copy at most this long (None: full size)

    def __post_init__(self) -> None:
        checks = (
            ("output_size", self.output_size, self.output_size is None or self.output_size >= 1),
            ("transform_size", self.transform_size, self.transform_size >= 1),
            ("upsample", self.upsample, 0 <= self.upsample <= 4),
            (
                "detect_max_side",
                self.detect_max_side,
                self.detect_max_side is None or self.detect_max_side >= 64,
            ),
        )
        for name, value, ok in checks:
            if not ok:
                raise UsageError(f"align.{name} = {value!r} is out of range")

    def resolved_output_size(self, generator_resolution: int | None = None) -> int:
        """``output_size``, else the generator's resolution, else FFHQ's 1024."""
        return int(self.output_size or generator_resolution or FFHQ_RESOLUTION)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _rgb_of(photo: Photo | Image.Image | np.ndarray) -> np.ndarray | Image.Image:
    """The pixels to work on; an RGB photo's own PIL image avoids a full-size copy."""
    if isinstance(photo, Photo):
        return photo.image if photo.image.mode == "RGB" else photo.rgb
    return photo


def find_faces(
    photo: Photo,
    config: AlignConfig | None = None,
    landmarks: list[np.ndarray] | None = None,  # user override: [68, 2] per face
) -> list[Face]:
    """The photo's faces, left to right: detected, or built from override landmarks."""
    config = config or AlignConfig()
    width, height = photo.size
    if landmarks is not None:
        if not landmarks:
            raise LandmarksFileError(f"landmark override for {photo.path} holds no face")
        faces = []
        for i, points in enumerate(landmarks):
            points = np.asarray(points, dtype=np.float64)
            margin = 0.5 * max(width, height)
            lo, hi = points.min(axis=0), points.max(axis=0)
            if (
                lo[0] < -margin
                or lo[1] < -margin
                or hi[0] > width + margin
                or hi[1] > height + margin
            ):
                raise LandmarksFileError(
                    f"override landmarks of face {i} (x {lo[0]:.0f}..{hi[0]:.0f}, y "
                    f"{lo[1]:.0f}..{hi[1]:.0f}) lie outside the {width}x{height} photo "
                    f"{photo.path}: give them in the photo's pixels, upright (EXIF applied)"
                )
            faces.append(face_from_landmarks(points))
        return order_faces(faces)
    faces = detect_faces(_rgb_of(photo), upsample=config.upsample, max_side=config.detect_max_side)
    if not faces:
        raise NoFaceError.for_photo(photo.path)
    return faces


def align_face(
    photo: Photo | Image.Image | np.ndarray,  # a Photo, PIL image or [H, W, 3] uint8
    landmarks: np.ndarray,  # [68, 2] float64, photo pixels
    config: AlignConfig | None = None,
    generator_resolution: int | None = None,
) -> tuple[Image.Image, AlignTransform]:
    """The FFHQ-aligned crop (RGB, output_size^2) of one face and its transform record."""
    config = config or AlignConfig()
    size = config.resolved_output_size(generator_resolution)
    quad = ffhq_quad(landmarks)
    return align_image(_rgb_of(photo), quad, size, config.transform_size, config.enable_padding)


def face_warning(face: Face, output_size: int) -> str | None:
    """A one-line note when a face is so small that its aligned crop will be blurry."""
    size = face.size
    if size >= TINY_CROP_PX:
        return None
    return (
        f"face {face.index} is tiny (its FFHQ crop is {size:.0f} px): the {output_size} px "
        f"aligned image is upscaled {output_size / size:.0f}x and will be blurry"
    )
