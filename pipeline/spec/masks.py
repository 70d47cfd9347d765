"""An edit's drag mask rasterised in the aligned image (1 = may move, 0 = keep fixed).

Mask items (their union is the mask):

- ``{png: FILE, space: photo | aligned}``: the image's alpha channel when it has one, else
  its grey levels (white = may move). A photo-space PNG has the photo's size (after EXIF
  orientation) and is warped with the face's ``AlignTransform`` (bilinear, pre-blurred in
  proportion to the downscale so thin strokes do not alias); an aligned-space PNG is square
  and resized to the mask size when needed.
- ``{shape: circle, center: P, radius: R}``, ``{shape: ellipse, center: P, radii: [RX, RY],
  angle: DEG}``, ``{shape: polygon, points: [P, P, P, ...]}``: P is any point form of the
  spec (photo or aligned pixels, or landmark-anchored), sizes are fractions of the aligned
  image side, ``angle`` turns the ellipse's x axis toward its y axis (clockwise on screen).
  A pixel is inside when its centre is (polygons: even-odd rule).

``feather`` (per item, a fraction of the side) blurs an item's edge with a gaussian of that
sigma, keeping the 0.5 level on the outline.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage
from PIL import Image, ImageOps

from pipeline.alignment.transform import AlignTransform
from pipeline.errors import PipelineError
from pipeline.image_files import ImageFileError, decode, open_image
from pipeline.spec.models import CircleMask, EditSpec, EllipseMask, PngMask, PolygonMask
from pipeline.spec.points import as_landmarks, resolve_point

_HIGH_BIT_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0}


def resolve_mask(
    edit: EditSpec,
    landmarks_aligned: np.ndarray,  # [68, 2] float, aligned pixels (x, y)
    transform: AlignTransform,
    output_size: int | None = None,
) -> np.ndarray | None:
    """The edit's mask [S, S] float32 in [0, 1] (1 = may move), or None without a mask.

    ``S = output_size`` (default: the aligned image's side); coordinates are aligned pixels
    of ``transform`` and are scaled when S differs. Raises ``PipelineError`` naming the
    photo, edit and file for an unreadable or wrongly sized PNG, or a mask that covers no
    pixel of this face.
    """
    if not edit.mask:
        return None
    landmarks = as_landmarks(landmarks_aligned)
    size = int(output_size or transform.output_size)
    if size < 1:
        raise ValueError(f"output_size must be >= 1, got {size}")
    mask = np.zeros((size, size), dtype=np.float32)
    for item in edit.mask:
        space = item.space or edit.space
        if isinstance(item, PngMask):
            layer = _png_layer(edit, item, space, transform, size)
        else:
            layer = _shape_layer(item, space, landmarks, transform, size)
        if item.feather > 0:
            layer = scipy.ndimage.gaussian_filter(layer, sigma=item.feather * size, mode="constant")
        np.maximum(mask, layer, out=mask)
    np.clip(mask, 0.0, 1.0, out=mask)
    if not np.any(mask > 0):
        raise PipelineError(
            f"{edit.where}: photo {edit.photo_id!r}, edit {edit.name!r}: the mask covers no "
            "pixel of the aligned face, so nothing could move: check its position and space"
        )
    return mask


def _pixel_grid(size: int, transform: AlignTransform) -> tuple[np.ndarray, np.ndarray]:
    """Aligned-pixel coordinates (x [S, S], y [S, S]) of the mask pixels' centres."""
    scale = transform.output_size / size
    coords = (np.arange(size, dtype=np.float64) + 0.5) * scale - 0.5
    return np.meshgrid(coords, coords, indexing="xy")


def _shape_layer(
    item: CircleMask | EllipseMask | PolygonMask,
    space: str,
    landmarks: np.ndarray,
    transform: AlignTransform,
    size: int,
) -> np.ndarray:
    side = float(transform.output_size)  # sizes are fractions of the aligned side
    x, y = _pixel_grid(size, transform)
    if isinstance(item, PolygonMask):
        vertices = np.stack([resolve_point(p, space, landmarks, transform) for p in item.points])
        return _polygon(x, y, vertices)
    cx, cy = resolve_point(item.center, space, landmarks, transform)
    dx, dy = x - cx, y - cy
    if isinstance(item, CircleMask):
        inside = dx * dx + dy * dy <= (item.radius * side) ** 2
    else:
        angle = math.radians(item.angle)
        cos, sin = math.cos(angle), math.sin(angle)
        u = (dx * cos + dy * sin) / (item.radii[0] * side)
        v = (-dx * sin + dy * cos) / (item.radii[1] * side)
        inside = u * u + v * v <= 1.0
    return inside.astype(np.float32)


def _polygon(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd inside test of every (x, y) for a polygon given by vertices [V, 2]."""
    inside = np.zeros(x.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        if y0 == y1:
            continue  # a horizontal edge never crosses a horizontal ray
        crosses = (y0 > y) != (y1 > y)
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < x_cross)
    return inside.astype(np.float32)


def _read_png(edit: EditSpec, item: PngMask) -> np.ndarray:
    """The mask image as float64 [H, W] in [0, 1]: alpha if present, else luminance."""
    try:
        image = decode(open_image(item.png, "mask image"), item.png, "mask image")
    except ImageFileError as exc:
        raise PipelineError(
            f"{edit.where}: photo {edit.photo_id!r}, edit {edit.name!r}: {exc}"
        ) from None
    with image:
        image = ImageOps.exif_transpose(image)
        if image.mode in _HIGH_BIT_MODES:
            return np.asarray(image, dtype=np.float64) / _HIGH_BIT_MODES[image.mode]
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        if has_alpha:
            return np.asarray(image.convert("RGBA"), dtype=np.float64)[..., 3] / 255.0
        return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _png_layer(
    edit: EditSpec, item: PngMask, space: str, transform: AlignTransform, size: int
) -> np.ndarray:
    values = _read_png(edit, item)
    height, width = values.shape
    if space == "aligned":
        if height != width:
            raise PipelineError(
                f"{edit.where}: photo {edit.photo_id!r}, edit {edit.name!r}: aligned-space mask "
                f"{item.png} is {width}x{height}: an aligned mask is square (the aligned image "
                f"is {transform.output_size}x{transform.output_size})"
            )
        if width == size:
            return values.astype(np.float32)
        resized = Image.fromarray(values.astype(np.float32)).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        return np.asarray(resized, dtype=np.float32)
    if (width, height) != tuple(transform.photo_size):
        photo_w, photo_h = transform.photo_size
        raise PipelineError(
            f"{edit.where}: photo {edit.photo_id!r}, edit {edit.name!r}: photo-space mask "
            f"{item.png} is {width}x{height} but the photo is {photo_w}x{photo_h}: draw the "
            "mask on the photo itself (same size), or say 'space: aligned'"
        )
    x, y = _pixel_grid(size, transform)
    a = transform.affine_aligned_to_photo()
    photo_x = a[0, 0] * x + a[0, 1] * y + a[0, 2]
    photo_y = a[1, 0] * x + a[1, 1] * y + a[1, 2]
    step = transform.scale * transform.output_size / size  # photo pixels per mask pixel
    sigma = 0.5 * math.sqrt(step * step - 1) if step > 1.0 else 0.0
    # Work on the part of the photo the face covers (plus the blur's reach), not all of it.
    reach = int(math.ceil(4 * sigma)) + 2
    x0 = max(int(math.floor(photo_x.min())) - reach, 0)
    y0 = max(int(math.floor(photo_y.min())) - reach, 0)
    x1 = min(int(math.ceil(photo_x.max())) + reach + 1, width)
    y1 = min(int(math.ceil(photo_y.max())) + reach + 1, height)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((size, size), dtype=np.float32)  # the crop lies outside the photo
    values = values[y0:y1, x0:x1]
    if sigma > 0:
        values = scipy.ndimage.gaussian_filter(values, sigma=sigma, mode="nearest")
    warped = scipy.ndimage.map_coordinates(
        values, [photo_y - y0, photo_x - x0], order=1, mode="constant", cval=0.0
    )
    return np.clip(warped, 0.0, 1.0).astype(np.float32)
