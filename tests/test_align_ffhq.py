"""FFHQ geometry: ffhq_quad's arithmetic, align_image's shrink/crop/pad/warp, and the
transform record mapping aligned <-> photo exactly (checked on linear-gradient photos,
where every resampling step reproduces the coordinates)."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.alignment import (
    AlignTransform,
    align_image,
    aligned_to_photo,
    detect_faces,
    ffhq_quad,
    photo_to_aligned,
)
from pipeline.errors import PipelineError
from pipeline.photo import load_photo

PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "photos"


def synthetic_landmarks(eye_left, eye_right, mouth_left, mouth_right) -> np.ndarray:
    """[68, 2] landmarks with all eye points on the given eye centres (the rest unused)."""
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48] = eye_left, eye_right
    lm[48], lm[54] = mouth_left, mouth_right
    return lm


def gradient_photo(size: int) -> np.ndarray:
    """[size, size, 3] uint8: red = x, green = y (pixel-centre coordinates), blue = 128."""
    ys, xs = np.mgrid[:size, :size]
    return np.stack([xs, ys, np.full_like(xs, 128)], axis=2).astype(np.uint8)


def square_quad(centre, half_side, angle_deg) -> np.ndarray:
    """A rotated square quad [4, 2] (TL, BL, BR, TR) like ffhq_quad returns."""
    a = np.deg2rad(angle_deg)
    x = half_side * np.array([np.cos(a), np.sin(a)])
    y = np.array([-x[1], x[0]])
    c = np.asarray(centre, dtype=np.float64)
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


@pytest.fixture(scope="module")
def hopper():
    photo = load_photo(PHOTOS / "grace_hopper.jpg")
    return photo, detect_faces(photo.rgb)[0].landmarks


def test_ffhq_quad_of_an_upright_face_by_hand():
    # Eyes 100 px apart, mouth 100 px below: x = 2 * eye distance = 200, centre 10 px
    # below the eyes (0.1 * eye-to-mouth).
    lm = synthetic_landmarks((100, 100), (200, 100), (130, 200), (170, 200))
    expected = [[-50, -90], [-50, 310], [350, 310], [350, -90]]
    np.testing.assert_allclose(ffhq_quad(lm), expected, atol=1e-9)


def test_ffhq_quad_uses_mouth_distance_when_it_dominates():
    # Eye-to-mouth 150 px: 1.8 * 150 = 270 > 2 * eye distance (200).
    lm = synthetic_landmarks((100, 100), (200, 100), (130, 250), (170, 250))
    quad = ffhq_quad(lm)
    np.testing.assert_allclose(quad[3] - quad[0], [540, 0], atol=1e-9)
    np.testing.assert_allclose(quad.mean(axis=0), [150, 115], atol=1e-9)


def test_ffhq_quad_is_rotation_and_translation_equivariant(hopper):
    _, lm = hopper
    a = np.deg2rad(23.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = lm @ rot.T + [40.0, -7.0]
    np.testing.assert_allclose(ffhq_quad(moved), ffhq_quad(lm) @ rot.T + [40.0, -7.0], atol=1e-9)


def test_ffhq_quad_pinned_for_the_example_photo(hopper):
    _, lm = hopper
    expected = [
        [96.35151321, 41.16235917],
        [106.28735917, 367.92348679],
        [433.04848679, 357.98764083],
        [423.11264083, 31.22651321],
    ]
    np.testing.assert_allclose(ffhq_quad(lm), expected, atol=1e-6)


def test_ffhq_quad_rejects_bad_landmarks():
    with pytest.raises(ValueError, match=r"\[68, 2\]"):
        ffhq_quad(np.zeros((5, 2)))
    bad = synthetic_landmarks((100, 100), (200, 100), (130, 200), (170, 200))
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ffhq_quad(bad)


def test_aligned_example_pinned_values(hopper):
    # Values checked against NVIDIA's recreate_aligned_images (identical on every pixel).
    photo, lm = hopper
    aligned, transform = align_image(photo.rgb, ffhq_quad(lm), 32, transform_size=128)
    arr = np.asarray(aligned)
    assert aligned.mode == "RGB" and arr.shape == (32, 32, 3)
    red = [[17, 18, 200, 69], [16, 12, 13, 12], [38, 201, 241, 197], [180, 76, 209, 145]]
    blue = [[82, 50, 190, 181], [66, 13, 10, 15], [57, 84, 140, 96], [93, 27, 95, 175]]
    assert np.abs(arr[::8, ::8, 0].astype(int) - red).max() <= 1
    assert np.abs(arr[::8, ::8, 2].astype(int) - blue).max() <= 1
    # Shrink by 5 (512 x 600 -> 102 x 120): the warped quad is quad / 5 in shrunk pixels,
    # i.e. this in photo pixels (the real ratio 512 / 102, not 5, horizontally).
    expected = (ffhq_quad(lm) / 5 + 0.5) * [512 / 102, 600 / 120] - 0.5
    np.testing.assert_allclose(transform.quad, expected, atol=1e-9)
    assert transform.photo_size == (512, 600) and transform.output_size == 32


def test_aligned_border_case_pinned_values(hopper):
    # The face cut by the photo's left edge: the reflect-pad + blur + fade branch runs.
    # Values checked against NVIDIA's recreate_aligned_images (identical on every pixel).
    photo, lm = hopper
    cut, cut_lm = photo.rgb[100:, 200:], lm - [200, 100]
    padded, _ = align_image(cut, ffhq_quad(cut_lm), 64, transform_size=256)
    black, _ = align_image(cut, ffhq_quad(cut_lm), 64, 256, enable_padding=False)
    arr = np.asarray(padded).astype(int)
    green = [[125, 131, 143, 115], [96, 30, 14, 11], [130, 101, 193, 111], [124, 139, 156, 160]]
    blue = [[104, 107, 120, 96], [81, 27, 14, 13], [107, 74, 165, 81], [99, 97, 138, 135]]
    assert np.abs(arr[::16, ::16, 1] - green).max() <= 1
    assert np.abs(arr[::16, ::16, 2] - blue).max() <= 1
    assert np.abs(arr - np.asarray(black, int)).max() > 100  # padding changed the edge


@pytest.mark.parametrize(
    ("half_side", "output_size", "transform_size", "edge"),
    [
        (60.0, 32, 32, 0),  # no shrink, no supersampling: every pixel
        (60.0, 32, 128, 4),  # supersampled: the resize's edge pixels are biased, skip them
        (48.0, 8, 8, 0),  # shrink by 6 (qsize 96 / output 8 / 2)
    ],
)
def test_transform_record_maps_aligned_pixels_to_their_photo_coordinates(
    half_side, output_size, transform_size, edge
):
    # Red/green = photo x/y, so each aligned pixel shows where it was sampled. PIL's
    # bilinear warp truncates to uint8 (as in the reference): values are 0.5 low on average.
    # 255 px: the shrunk size rint(255 / 6) = 42 makes the real ratio 6.07, not 6, so a
    # record built with the nominal factor would be off by about 2 px.
    photo = gradient_photo(255)
    quad = square_quad((128.0, 126.0), half_side, 17.0)
    aligned, transform = align_image(photo, quad, output_size, transform_size, False)
    ys, xs = np.mgrid[:output_size, :output_size]
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    expected = aligned_to_photo(centres, transform).reshape(output_size, output_size, 2)
    got = np.asarray(aligned)[:, :, :2].astype(np.float64) + 0.5
    inner = (slice(edge, output_size - edge), slice(edge, output_size - edge))
    error = got[inner] - expected[inner]
    assert np.abs(error).max() <= 1.0
    assert np.abs(error.mean(axis=(0, 1))).max() < 0.2  # no systematic offset
    if 2 * half_side / output_size * 0.5 >= 2:  # the shrink branch ran
        assert np.abs(transform.quad - quad).max() > 1.0  # ... and its real ratio was used


def test_round_trip_photo_aligned_photo(hopper):
    photo, lm = hopper
    _, transform = align_image(photo.rgb, ffhq_quad(lm), 64, transform_size=64)
    rng = np.random.default_rng(3)
    points = rng.uniform(-100, 700, size=(50, 2))
    back = aligned_to_photo(photo_to_aligned(points, transform), transform)
    np.testing.assert_allclose(back, points, atol=1e-9)
    record = AlignTransform.from_dict(transform.to_dict())
    np.testing.assert_array_equal(record.quad, transform.quad)


def test_padding_branch_fills_outside_the_photo_and_keeps_the_inside():
    # A face quad leaving the photo on the left and the top: padding is needed.
    photo = gradient_photo(200)
    photo[:, :, 2] = 200  # a bright background makes the black of no-padding obvious
    quad = square_quad((40.0, 50.0), 70.0, 8.0)
    padded, _ = align_image(photo, quad, 64, 256, enable_padding=True)
    black, transform = align_image(photo, quad, 64, 256, enable_padding=False)
    padded, black = np.asarray(padded), np.asarray(black)
    corner = (slice(0, 6), slice(0, 6))  # maps far outside the photo
    assert photo_to_aligned(np.array([[0.0, 0.0]]), transform).min() > 6
    assert black[corner].max() == 0
    assert padded[corner][..., 2].min() > 100  # filled from the photo (reflected, faded)
    inside = (slice(40, 60), slice(40, 60))  # maps well inside the photo
    assert np.abs(padded[inside].astype(int) - black[inside].astype(int)).max() <= 1


def test_transform_size_below_output_size_still_gives_output_size(hopper):
    photo, lm = hopper
    aligned, transform = align_image(photo.rgb, ffhq_quad(lm), 48, transform_size=16)
    assert aligned.size == (48, 48) and transform.output_size == 48


def test_align_image_rejects_bad_quads():
    photo = gradient_photo(64)
    with pytest.raises(ValueError, match="parallelogram"):
        align_image(photo, [[0, 0], [0, 10], [12, 12], [10, 0]], 16, 16)
    with pytest.raises(ValueError, match=r"\[4, 2\]"):
        align_image(photo, np.zeros((3, 2)), 16, 16)
    with pytest.raises(PipelineError, match="outside the 64x64 photo: check the landmarks"):
        align_image(photo, square_quad((500.0, 500.0), 10.0, 0.0), 16, 16)
