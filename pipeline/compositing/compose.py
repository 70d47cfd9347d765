"""Composite edited faces into the photo: ``composite_face`` and ``composite_faces``.

Outside every face's blend weight the result is the photo's own value, bit for bit (the
weight is exactly zero there and those pixels are never written); a no-op edit (edited ==
reconstruction) gives an all-zero weight and so the photo itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.alignment.transform import AlignTransform
from pipeline.compositing.blend_mask import blend_weight, changed_region
from pipeline.compositing.config import CompositeConfig
from pipeline.compositing.seam import seam_ratio
from pipeline.compositing.transfer import transfer_payload
from pipeline.compositing.warp import (
    Box,
    sample_points,
    support_box,
    warp_to_aligned,
    warp_to_photo,
)
from pipeline.errors import PipelineError


@dataclass
class FaceEdit:
    """One face's edit, in its aligned space (S = ``transform.output_size``)."""

    transform: AlignTransform
    reconstruction: np.ndarray  # [S, S, 3] uint8, or float in 0..255: the inversion's pivot image
    edited: np.ndarray  # [S, S, 3] uint8, or float in 0..255: the edited image
    landmarks: np.ndarray | None = None  # [68, 2] (x, y) in aligned pixels
    user_mask: np.ndarray | None = None  # [S, S], 1 = may move (the drag mask)
    name: str = "face"  # used in error messages, e.g. 'face 2'


@dataclass
class CompositeResult:
    """The composited photo at working precision and where it was touched."""

    rgb: np.ndarray  # [H, W, 3] float32, 0..255 (the photo's exact values where weight == 0)
    weight: np.ndarray  # [H, W] float32 in 0..1, max over faces (0: untouched)
    boxes: list[Box | None] = field(default_factory=list)  # per face, photo pixels it touched
    seams: list[float] = field(default_factory=list)  # per face, seam_ratio (nan: untouched)

    @property
    def changed(self) -> np.ndarray:  # [H, W] bool
        return self.weight > 0


def composite_face(
    canvas: np.ndarray,  # [H, W, 3] float32, 0..255; modified in place
    face: FaceEdit,
    config: CompositeConfig,
    weight_out: np.ndarray | None = None,  # [H, W] float32, max-accumulated in place
) -> Box | None:
    """Blend one face's edit into ``canvas`` in place; returns the photo box it touched."""
    edited, reconstruction, landmarks, user_mask = _checked(face, canvas)
    size = face.transform.output_size
    change = changed_region(edited, reconstruction, config)  # [S, S] bool, one piece
    weight = blend_weight(edited, reconstruction, landmarks, user_mask, config, change)
    box = support_box(weight, face.transform)
    if box is None:
        return None
    payload, additive, flow = transfer_payload(
        config.transfer,
        edited,
        reconstruction,
        weight,
        lambda: warp_to_aligned(canvas, face.transform),
        config.lowpass_sigma * size,
        change,
    )
    layers = [payload, weight[:, :, None]] + ([] if flow is None else [flow])
    warped = warp_to_photo(np.concatenate(layers, axis=2), face.transform, box)  # [h, w, 4|6]
    x0, y0, x1, y1 = box
    w_photo = np.clip(warped[:, :, 3], 0.0, 1.0)
    touched = w_photo > 0
    region = canvas[y0:y1, x0:x1]
    if flow is not None:
        moved = _moved_photo(canvas, face.transform, box, warped[:, :, 4:6])
        blended = region + warped[:, :, :3] + w_photo[:, :, None] * (moved - region)
    elif additive:
        blended = region + warped[:, :, :3]
    else:
        blended = region * (1.0 - w_photo[:, :, None]) + warped[:, :, :3]
    blended = np.clip(blended, 0.0, 255.0)
    region[touched] = blended[touched]
    if weight_out is not None:
        np.maximum(weight_out[y0:y1, x0:x1], w_photo, out=weight_out[y0:y1, x0:x1])
    return box


def _moved_photo(
    canvas: np.ndarray,  # [H, W, 3] float32
    transform: AlignTransform,
    box: Box,
    flow: np.ndarray,  # [h, w, 2] aligned-pixel flow (premultiplied by the weight) on box
) -> np.ndarray:  # [h, w, 3]: canvas(p + D(p))
    """The photo's own pixels moved by the edit's motion (bicubic, full resolution)."""
    x0, y0, x1, y1 = box
    lin = transform.affine_aligned_to_photo()[:, :2]
    disp = flow @ lin.T  # [h, w, 2] photo pixels
    reach = int(np.ceil(np.abs(disp).max())) + 3
    height, width = canvas.shape[:2]
    sx0, sy0 = max(0, x0 - reach), max(0, y0 - reach)
    sx1, sy1 = min(width, x1 + reach), min(height, y1 + reach)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    return sample_points(
        canvas[sy0:sy1, sx0:sx1],
        xx + disp[:, :, 0] - sx0,
        yy + disp[:, :, 1] - sy0,
        mode="bicubic",
    )


def composite_faces(
    photo_rgb: np.ndarray,  # [H, W, 3] uint8 or float 0..255 (e.g. photo_output.working_rgb)
    faces: list[FaceEdit],
    config: CompositeConfig | None = None,
) -> CompositeResult:
    """Composite each face's edit in turn into one copy of the photo."""
    config = config or CompositeConfig()
    if photo_rgb.ndim != 3 or photo_rgb.shape[2] != 3:
        raise PipelineError(f"photo pixels must be [H, W, 3], got shape {photo_rgb.shape}")
    canvas = photo_rgb.astype(np.float32, copy=True)
    weight = np.zeros(canvas.shape[:2], dtype=np.float32)
    boxes = [composite_face(canvas, face, config, weight_out=weight) for face in faces]
    seams = []
    for face, box in zip(faces, boxes, strict=True):
        if box is None:
            seams.append(float("nan"))
            continue
        ring = config.feather * face.transform.output_size * face.transform.scale
        pad = int(np.ceil(ring)) + 2  # the untouched ring lies outside the box
        x0, y0 = max(0, box[0] - pad), max(0, box[1] - pad)
        x1, y1 = box[2] + pad, box[3] + pad
        seams.append(seam_ratio(canvas[y0:y1, x0:x1], weight[y0:y1, x0:x1], ring))
    return CompositeResult(rgb=canvas, weight=weight, boxes=boxes, seams=seams)


def _checked(face: FaceEdit, canvas: np.ndarray):
    """Validate one face's arrays; returns float32 edited, reconstruction, landmarks, mask."""
    size = int(face.transform.output_size)
    height, width = canvas.shape[:2]
    if tuple(face.transform.photo_size) != (width, height):
        raise PipelineError(
            f"{face.name}: alignment was made on a {face.transform.photo_size[0]}x"
            f"{face.transform.photo_size[1]} photo but the photo is {width}x{height}; "
            "rerun the align stage"
        )
    images = []
    for label, image in (("edited", face.edited), ("reconstruction", face.reconstruction)):
        image = np.asarray(image)
        if image.shape != (size, size, 3):
            raise PipelineError(
                f"{face.name}: {label} image must be [{size}, {size}, 3] (the aligned size), "
                f"got shape {image.shape}"
            )
        floating = np.issubdtype(image.dtype, np.floating)
        image = image.astype(np.float32)
        if not np.all(np.isfinite(image)) or image.min() < -0.5 or image.max() > 255.5:
            raise PipelineError(
                f"{face.name}: {label} image values must be finite and in 0..255, got "
                f"{float(np.nanmin(image)):.3g}..{float(np.nanmax(image)):.3g}"
            )
        if floating and 0.0 < image.max() <= 1.0:
            raise PipelineError(
                f"{face.name}: {label} image values are in 0..{image.max():.3g}, which looks "
                "like a 0..1 image; pass 0..255 values (multiply by 255)"
            )
        images.append(image)
    landmarks = None
    if face.landmarks is not None:
        landmarks = np.asarray(face.landmarks, dtype=np.float64)
        if landmarks.ndim != 2 or landmarks.shape[1] != 2 or not np.all(np.isfinite(landmarks)):
            raise PipelineError(
                f"{face.name}: landmarks must be a finite [K, 2] array, got shape {landmarks.shape}"
            )
    user_mask = None
    if face.user_mask is not None:
        user_mask = np.asarray(face.user_mask, dtype=np.float32)
        if user_mask.shape != (size, size):
            raise PipelineError(
                f"{face.name}: drag mask must be [{size}, {size}], got shape {user_mask.shape}"
            )
    return images[0], images[1], landmarks, user_mask
