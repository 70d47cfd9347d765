"""Inverse warp: sub-pixel exactness, point consistency with the transform, antialiasing."""

import numpy as np
import pytest

from pipeline.alignment.transform import AlignTransform, aligned_to_photo
from pipeline.compositing.warp import (
    sample_affine,
    supersample_factor,
    support_box,
    warp_to_aligned,
    warp_to_photo,
)


def _transform(half: float, size: int, angle: float = 0.3, centre=(200.0, 170.0)):
    c = np.asarray(centre)
    ex = np.array([np.cos(angle), np.sin(angle)]) * half
    ey = np.array([-np.sin(angle), np.cos(angle)]) * half
    quad = np.stack([c - ex - ey, c - ex + ey, c + ex + ey, c + ex - ey])
    return AlignTransform(quad=quad, output_size=size, photo_size=(400, 340))


def _linear(points: np.ndarray) -> np.ndarray:  # [..., 2] -> [..., 3]
    x, y = points[..., 0], points[..., 1]
    return np.stack([0.3 * x + 0.1 * y + 5, -0.2 * x + 0.4 * y + 120, 0.05 * x + 60], -1)


def _aligned_from_function(transform: AlignTransform) -> np.ndarray:
    s = transform.output_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    photo_pts = aligned_to_photo(np.stack([xx, yy], -1).reshape(-1, 2), transform)
    return _linear(photo_pts).reshape(s, s, 3).astype(np.float32)


@pytest.mark.parametrize("size", [64, 512])  # face larger / smaller than the aligned crop
def test_inverse_warp_reproduces_photo_function(size):
    transform = _transform(half=90.0, size=size)
    aligned = _aligned_from_function(transform)
    box = (170, 140, 230, 200)  # well inside the quad
    warped = warp_to_photo(aligned, transform, box)
    yy, xx = np.mgrid[140:200, 170:230].astype(np.float64)
    expected = _linear(np.stack([xx, yy], -1))
    # Bilinear and box averaging of a linear function are exact: only float32 rounding.
    assert np.abs(warped - expected).max() < 2e-3
    assert supersample_factor(transform.affine_photo_to_aligned()) == (1 if size == 64 else 3)


@pytest.mark.parametrize("size", [64, 512])
def test_points_map_like_aligned_to_photo(size):
    transform = _transform(half=90.0, size=size)
    s = transform.output_size
    point = np.array([0.37 * s + 0.3, 0.61 * s + 0.7])
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    sigma = 2.5 * max(1.0, s / 180.0)  # a spot a few photo pixels wide
    spot = np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * sigma**2))
    box = (0, 0, 400, 340)
    warped = warp_to_photo(spot[:, :, None].astype(np.float32), transform, box)[:, :, 0]
    py, px = np.mgrid[0:340, 0:400].astype(np.float64)
    total = warped.sum()
    centroid = np.array([(warped * px).sum() / total, (warped * py).sum() / total])
    expected = aligned_to_photo(point[None], transform)[0]
    assert np.abs(centroid - expected).max() < 0.03


def test_downscaling_is_antialiased():
    transform = _transform(half=60.0, size=512)  # 120 photo px for 512 aligned px
    yy, xx = np.mgrid[0:512, 0:512]
    checker = (((xx + yy) % 2) * 255.0).astype(np.float32)[:, :, None]  # [512, 512, 1]
    box = (180, 150, 220, 190)
    smooth = warp_to_photo(checker, transform, box)
    aliased = sample_affine(checker, transform.affine_photo_to_aligned(), box, supersample=1)
    assert abs(float(smooth.mean()) - 127.5) < 3.0
    assert float(smooth.std()) < 6.0
    assert float(aliased.std()) > 30.0  # plain bilinear at one sample per pixel aliases


def test_round_trip_photo_aligned_photo():
    transform = _transform(half=90.0, size=128)
    py, px = np.mgrid[0:340, 0:400].astype(np.float64)
    photo = _linear(np.stack([px, py], -1)).astype(np.float32)
    aligned = warp_to_aligned(photo, transform)
    assert np.abs(aligned - _aligned_from_function(transform)).max() < 2e-3
    back = warp_to_photo(aligned, transform, (180, 150, 220, 190))
    assert np.abs(back - photo[150:190, 180:220]).max() < 2e-3


def test_support_box_contains_every_reached_pixel():
    transform = _transform(half=90.0, size=256)
    weight = np.zeros((256, 256), dtype=np.float32)
    weight[100:120, 140:150] = 1.0
    box = support_box(weight, transform)
    assert box is not None
    full = warp_to_photo(weight[:, :, None], transform, (0, 0, 400, 340))[:, :, 0]
    ys, xs = np.nonzero(full > 0)
    x0, y0, x1, y1 = box
    assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
    assert (x1 - x0) * (y1 - y0) < 3 * (np.ptp(xs) + 1) * (np.ptp(ys) + 1)
    assert support_box(np.zeros((256, 256)), transform) is None
