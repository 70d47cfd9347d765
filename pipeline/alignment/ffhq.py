"""NVIDIA's FFHQ alignment, reproduced step for step so the crops match the training set.

Two steps, as ``recreate_aligned_images`` in ``download_ffhq.py`` of NVlabs/ffhq-dataset
(4826aa6):

1. ``ffhq_quad``: the oriented crop square from the 68 landmarks (eyes, mouth corners).
2. ``align_image``: integer shrink of the photo for big faces (antialiased), crop to the
   quad plus a border, reflect-pad + progressive blur + fade to the median colour where the
   quad leaves the photo, QUAD warp to ``transform_size`` (4096: supersampling), then an
   antialiased resize to ``output_size``.

The arithmetic (operation order and dtypes, including the float32/float64 mix of the pad
mask) follows the reference so results agree to the last bit with the same numpy/scipy/PIL.
``align_image`` also returns the ``AlignTransform`` whose quad is the one actually warped,
mapped back to the ORIGINAL photo's pixel centres (the shrink undone with the real resize
ratio, the crop/pad offsets undone), which makes aligned <-> photo point mapping exact.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
from PIL import Image

from pipeline.alignment.errors import AlignGeometryError
from pipeline.alignment.transform import AlignTransform

DEFAULT_TRANSFORM_SIZE = 4096


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop quad [4, 2] float64 (TL, BL, BR, TR) from dlib landmarks [68, 2]."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise AlignGeometryError(f"expected landmarks [68, 2], got shape {list(lm.shape)}")
    if not np.all(np.isfinite(lm)):
        raise AlignGeometryError("landmarks contain NaN or infinite values")
    eye_left = np.mean(lm[36:42], axis=0)
    eye_right = np.mean(lm[42:48], axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    # Horizontal half-axis: the eye line, corrected by the eye-to-mouth line turned -90 deg.
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    length = np.hypot(*x)
    if not length > 0:
        raise AlignGeometryError("degenerate landmarks: eyes and mouth coincide")
    x /= length
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]  # vertical half-axis: x turned +90 deg
    centre = eye_avg + eye_to_mouth * 0.1
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


def _check_quad(quad: np.ndarray) -> np.ndarray:
    quad = np.array(quad, dtype=np.float64)  # a copy: modified below
    if quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
        raise AlignGeometryError(
            f"quad must be a finite [4, 2] array, got shape {list(quad.shape)}"
        )
    side = np.hypot(*(quad[3] - quad[0]))
    if not side > 0:
        raise AlignGeometryError("quad is degenerate (zero size)")
    if np.abs(quad[0] + quad[2] - quad[1] - quad[3]).max() > 1e-6 * side:
        raise AlignGeometryError(
            "quad must be a parallelogram (TL, BL, BR, TR), as ffhq_quad returns"
        )
    return quad


def _bounds(quad: np.ndarray) -> tuple[int, int, int, int]:
    """Integer bounding box (floor of the minimum, ceil of the maximum) of a quad [4, 2]."""
    return (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )


def _blur_pad(img: Image.Image, pad: np.ndarray, qsize: float) -> Image.Image:
    """Reflect-pad by ``pad`` (left, top, right, bottom), blur and fade the padding.

    The blur weight rises from the image edge into the padding; the padding then fades to
    the per-channel median colour (reference dtypes: float32 image, float64 mask).
    """
    arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
    h, w, _ = arr.shape
    ys, xs, _ = np.ogrid[:h, :w, :1]
    from_x = np.minimum(np.float32(xs) / pad[0], np.float32(w - 1 - xs) / pad[2])
    from_y = np.minimum(np.float32(ys) / pad[1], np.float32(h - 1 - ys) / pad[3])
    mask = np.maximum(1.0 - from_x, 1.0 - from_y)  # [h, w, 1]: 0 inside, 1 at the edge
    sigma = qsize * 0.02
    arr += (scipy.ndimage.gaussian_filter(arr, [sigma, sigma, 0]) - arr) * np.clip(
        mask * 3.0 + 1.0, 0.0, 1.0
    )
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)))


def align_image(
    image: Image.Image | np.ndarray,  # PIL image (any mode) or [H, W, 3] uint8
    quad: np.ndarray,  # [4, 2] float64 photo pixels, TL, BL, BR, TR (from ffhq_quad)
    output_size: int,
    transform_size: int = DEFAULT_TRANSFORM_SIZE,
    enable_padding: bool = True,
) -> tuple[Image.Image, AlignTransform]:
    """The FFHQ-aligned RGB crop [output_size, output_size] and its transform record.

    ``transform_size`` below ``output_size`` is raised to ``output_size`` (the reference
    would return a ``transform_size`` image then). Without padding, the parts of the quad
    outside the photo are black, as in the reference.
    """
    if int(output_size) < 1:
        raise AlignGeometryError(f"output_size must be a positive integer, got {output_size}")
    output_size = int(output_size)
    transform_size = max(int(transform_size), output_size)
    if isinstance(image, np.ndarray):
        img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")
    else:
        img = image if image.mode == "RGB" else image.convert("RGB")
    photo_size = img.size
    quad_in = _check_quad(quad)
    quad = quad_in.copy()
    qsize = np.hypot(*(quad[3] - quad[0]))

    # Shrink: big faces are first reduced by an integer factor (antialiased).
    shrink = int(np.floor(qsize / output_size * 0.5))
    warped_in_photo = quad_in
    if shrink > 1:
        rsize = (
            int(np.rint(float(img.size[0]) / shrink)),
            int(np.rint(float(img.size[1]) / shrink)),
        )
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink
        # The warp samples the shrunk image at quad / shrink; its pixel centres map back
        # to the photo's with the real ratio (photo size / rounded shrunk size).
        ratio = np.array([photo_size[0] / rsize[0], photo_size[1] / rsize[1]])
        warped_in_photo = (quad + 0.5) * ratio - 0.5

    # Crop to the quad's bounding box plus a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    left, top, right, bottom = _bounds(quad)
    crop = (
        max(left - border, 0),
        max(top - border, 0),
        min(right + border, img.size[0]),
        min(bottom + border, img.size[1]),
    )
    if crop[2] <= crop[0] or crop[3] <= crop[1]:
        raise AlignGeometryError(
            f"the face quad {np.round(quad_in, 1).tolist()} lies outside the "
            f"{photo_size[0]}x{photo_size[1]} photo: check the landmarks (photo pixels, "
            "upright as displayed)"
        )
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    # Pad where the quad leaves the (cropped) image.
    left, top, right, bottom = _bounds(quad)
    pad = (
        max(-left + border, 0),
        max(-top + border, 0),
        max(right - img.size[0] + border, 0),
        max(bottom - img.size[1] + border, 0),
    )
    if enable_padding and max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        img = _blur_pad(img, pad, qsize)
        quad += pad[:2]

    # Warp (bilinear, supersampled), then the antialiased resize to the output size.
    img = img.transform(
        (transform_size, transform_size),
        Image.Transform.QUAD,
        (quad + 0.5).flatten(),
        Image.Resampling.BILINEAR,
    )
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    record = AlignTransform(quad=warped_in_photo, output_size=output_size, photo_size=photo_size)
    return img, record
