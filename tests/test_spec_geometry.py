"""resolve_points / owning_face / resolve_mask: every point space and mask kind, in pixels."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from pipeline.alignment.transform import AlignTransform, aligned_to_photo
from pipeline.errors import PipelineError
from pipeline.spec import load_spec
from pipeline.spec.masks import resolve_mask
from pipeline.spec.points import owning_face, resolve_points

S = 100  # aligned side in these tests


def shifted(dx: float, dy: float = 50.0) -> AlignTransform:
    """An axis-aligned crop, 1 photo px per aligned px: photo = aligned + (dx + 0.5, dy + 0.5)."""
    quad = np.array([[dx, dy], [dx, dy + S], [dx + S, dy + S], [dx + S, dy]], dtype=np.float64)
    return AlignTransform(quad=quad, output_size=S, photo_size=(400, 200))


def rotated() -> AlignTransform:
    """A crop turned 30 degrees and scaled 1.5 photo px per aligned px."""
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    ex, ey = 1.5 * S * np.array([c, s]), 1.5 * S * np.array([-s, c])
    origin = np.array([150.0, 20.0])
    quad = np.stack([origin, origin + ey, origin + ex + ey, origin + ex])
    return AlignTransform(quad=quad, output_size=S, photo_size=(400, 300))


LANDMARKS = np.stack([np.arange(68) * 1.0 + 10.0, np.full(68, 40.0)], axis=1)  # [68, 2]


def edit_of(tmp_path, edit_yaml: str):
    """The single edit of a one-photo spec whose edit block is ``edit_yaml``."""
    Image.new("RGB", (400, 200)).save(tmp_path / "photo.png")
    (tmp_path / "gen.pkl").write_bytes(b"\x80\x04")  # a pickle's first bytes
    body = "generator: gen.pkl\nphotos:\n  - id: face\n    path: photo.png\n    edits:\n"
    body += textwrap.indent(textwrap.dedent(edit_yaml).strip("\n"), "      ") + "\n"
    (tmp_path / "spec.yaml").write_text(body)
    return load_spec(tmp_path / "spec.yaml").photos[0].edits[0]


def test_points_in_photo_space_by_default(tmp_path):
    edit = edit_of(tmp_path, "- name: e\n  points: [[[70.5, 80.5], [60.5, 90.5]]]")
    handles, targets = resolve_points(edit, LANDMARKS, shifted(20.0))
    assert handles.dtype == np.float64 and handles.shape == (1, 2)
    np.testing.assert_allclose(handles, [[50.0, 30.0]], atol=1e-12)
    np.testing.assert_allclose(targets, [[40.0, 40.0]], atol=1e-12)


def test_photo_points_follow_a_rotated_transform(tmp_path):
    transform = rotated()
    photo = aligned_to_photo(np.array([[30.0, 60.0], [70.0, 20.0]]), transform)
    (hx, hy), (tx, ty) = (map(float, p) for p in photo)
    points = f"[[[{hx!r}, {hy!r}], [{tx!r}, {ty!r}]]]"
    edit = edit_of(tmp_path, f"- name: e\n  points: {points}")
    handles, targets = resolve_points(edit, LANDMARKS, transform)
    np.testing.assert_allclose(handles, [[30.0, 60.0]], atol=1e-9)
    np.testing.assert_allclose(targets, [[70.0, 20.0]], atol=1e-9)


def test_aligned_space_at_edit_and_point_level(tmp_path):
    edit = edit_of(
        tmp_path,
        """
        - name: e
          space: aligned
          points:
            - [[10, 20], [30, 40]]
            - {handle: [70.5, 80.5], target: [71.5, 80.5], space: photo}
        """,
    )
    handles, targets = resolve_points(edit, LANDMARKS, shifted(20.0))
    np.testing.assert_allclose(handles, [[10.0, 20.0], [50.0, 30.0]], atol=1e-12)
    np.testing.assert_allclose(targets, [[30.0, 40.0], [51.0, 30.0]], atol=1e-12)


def test_landmark_anchored_points_with_offsets(tmp_path):
    edit = edit_of(
        tmp_path,
        """
        - name: e
          points:
            - handle: {landmark: mouth_left}
              target: {landmark: mouth_left, offset: [0.0, -0.04]}
            - [{landmark: 30}, {landmark: nose_tip, offset: [0.1, 0.05]}]
        """,
    )
    handles, targets = resolve_points(edit, LANDMARKS, shifted(20.0))
    np.testing.assert_allclose(handles, [[58.0, 40.0], [40.0, 40.0]])  # x = index + 10
    np.testing.assert_allclose(targets, [[58.0, 36.0], [50.0, 45.0]])


def test_point_outside_the_aligned_image_names_photo_edit_and_point(tmp_path):
    edit = edit_of(
        tmp_path,
        """
        - name: lift
          points:
            - [[60.5, 80.5], [61.5, 80.5]]
            - [{landmark: chin}, {landmark: chin, offset: [0.0, 0.7]}]
        """,
    )
    with pytest.raises(PipelineError) as info:
        resolve_points(edit, LANDMARKS, shifted(20.0))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'spec.yaml'}:9:13: photo 'face', edit 'lift', point 1")
    assert "target landmark chin + offset [0.0, 0.7] lands at aligned (18.0, 110.0)" in message
    assert "outside the 100x100 aligned face" in message
    with pytest.raises(ValueError, match=r"landmarks_aligned \[68, 2\], got \[5, 2\]"):
        resolve_points(edit, LANDMARKS[:5], shifted(20.0))


def test_owning_face_picks_the_crop_that_holds_the_points(tmp_path):
    faces = [shifted(0.0), shifted(150.0), shifted(200.0)]  # crops 1 and 2 overlap
    edit = edit_of(tmp_path, "- name: e\n  points: [[[205.5, 100.5], [215.5, 100.5]]]")
    assert owning_face(edit, faces) == 1  # aligned x 55-65 in crop 1, 5-15 in crop 2
    edit = edit_of(tmp_path, "- name: e\n  points: [[[230.5, 100.5], [240.5, 100.5]]]")
    assert owning_face(edit, faces) == 2  # aligned x 80-90 in crop 1, 30-40 in crop 2
    edit = edit_of(tmp_path, "- name: e\n  points: [[[280.5, 100.5], [285.5, 100.5]]]")
    assert owning_face(edit, faces) == 2
    edit = edit_of(tmp_path, "- name: e\n  points: [[[20.5, 60.5], [380, 60]]]")
    with pytest.raises(PipelineError, match="no face's aligned crop contains all its photo-space"):
        owning_face(edit, faces)
    edit = edit_of(tmp_path, "- name: e\n  space: aligned\n  points: [[[1, 2], [3, 4]]]")
    assert owning_face(edit, faces) is None  # fits every face


def mask_of(tmp_path, mask_yaml: str, transform=None, size=None, space="photo"):
    edit = edit_of(
        tmp_path, f"- name: e\n  space: {space}\n  points: [[[1, 2], [3, 4]]]\n  mask: {mask_yaml}"
    )
    return resolve_mask(edit, LANDMARKS, transform or shifted(20.0), size)


def test_no_mask_is_none(tmp_path):
    edit = edit_of(tmp_path, "- name: e\n  points: [[[1, 2], [3, 4]]]")
    assert resolve_mask(edit, LANDMARKS, shifted(20.0)) is None


def test_circle_area_and_centre(tmp_path):
    mask = mask_of(tmp_path, "{shape: circle, center: [49.5, 49.5], radius: 0.2}", space="aligned")
    assert mask.shape == (S, S) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert abs(mask.sum() - math.pi * 20**2) / (math.pi * 20**2) < 0.02
    assert mask[49, 49] == 1 and mask[49, 69] == 1 and mask[49, 71] == 0 and mask[0, 0] == 0


def test_circle_at_a_landmark_and_at_half_resolution(tmp_path):
    mask = mask_of(tmp_path, "{shape: circle, center: {landmark: nose_tip}, radius: 0.1}", size=50)
    assert mask.shape == (50, 50)
    # nose_tip (30) is at aligned (40, 40): mask pixel (19.75, 19.75); radius 5 mask pixels.
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 19.75) < 0.3 and abs(ys.mean() - 19.75) < 0.3
    assert abs(mask.sum() - math.pi * 25) / (math.pi * 25) < 0.1


def test_ellipse_axes_and_rotation(tmp_path):
    flat = mask_of(
        tmp_path, "{shape: ellipse, center: [50, 50], radii: [0.3, 0.1]}", space="aligned"
    )
    assert flat[50, 75] == 1 and flat[75, 50] == 0 and flat[50, 85] == 0
    assert abs(flat.sum() - math.pi * 30 * 10) / (math.pi * 300) < 0.02
    turned = mask_of(
        tmp_path,
        "{shape: ellipse, center: [50, 50], radii: [0.3, 0.1], angle: 90}",
        space="aligned",
    )
    assert turned[75, 50] == 1 and turned[50, 75] == 0
    assert np.abs(turned - flat.T).sum() <= 8  # the same up to rounding on the outline


def test_polygon_covers_pixel_centres_inside(tmp_path):
    square = "{shape: polygon, points: [[10, 10], [10, 30], [30, 30], [30, 10]], space: aligned}"
    mask = mask_of(tmp_path, square)
    assert mask.sum() == 400 and mask[10:30, 10:30].all()
    triangle = "{shape: polygon, points: [[0, 0], [99, 0], [0, 99]], space: aligned}"
    area = mask_of(tmp_path, triangle).sum()
    assert abs(area - 99 * 99 / 2) < 100


def test_photo_space_polygon_and_union_of_items(tmp_path):
    items = (
        "[{shape: polygon, points: [[30.5, 60.5], [30.5, 80.5], [50.5, 80.5], [50.5, 60.5]]}, "
        "{shape: circle, center: [80, 80], radius: 0.05, space: aligned}]"
    )
    mask = mask_of(tmp_path, items)
    assert mask[10:30, 10:30].all() and mask[10:30, 10:30].sum() == 400  # photo - 20.5, - 50.5
    assert mask[80, 80] == 1 and mask[80, 86] == 0
    assert abs(mask.sum() - 400 - math.pi * 25) < 10


def test_feather_softens_the_edge(tmp_path):
    mask = mask_of(
        tmp_path, "{shape: circle, center: [50, 50], radius: 0.2, feather: 0.03}", space="aligned"
    )
    assert 0.4 < mask[50, 70] < 0.6  # on the outline
    assert mask[50, 50] > 0.99 and mask[50, 80] < 0.01
    assert 0 < mask[50, 73] < 0.4 and 0.6 < mask[50, 67] < 1


def test_png_in_aligned_space_and_resized(tmp_path):
    image = np.zeros((S, S), dtype=np.uint8)
    image[20:40, 60:90] = 255
    Image.fromarray(image).save(tmp_path / "m.png")
    mask = mask_of(tmp_path, "{png: m.png, space: aligned}")
    np.testing.assert_array_equal(mask, image / 255.0)
    half = mask_of(tmp_path, "{png: m.png, space: aligned}", size=50)
    assert half.shape == (50, 50) and half[15, 37] == pytest.approx(1.0) and half[5, 5] == 0
    assert abs(half.sum() - 20 * 30 / 4) < 8


def test_png_alpha_channel_wins_over_colour(tmp_path):
    rgba = np.zeros((S, S, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white everywhere ...
    rgba[50:60, 50:60, 3] = 128  # ... but only this square is (half) opaque
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "m.png")
    mask = mask_of(tmp_path, "{png: m.png, space: aligned}")
    assert mask[55, 55] == pytest.approx(128 / 255) and mask.sum() == pytest.approx(100 * 128 / 255)


def test_png_in_photo_space_is_warped(tmp_path):
    photo = np.zeros((200, 400), dtype=np.uint8)
    photo[80:100, 50:70] = 255  # aligned x 29.5..48.5, y 29.5..48.5 under shifted(20)
    Image.fromarray(photo).save(tmp_path / "m.png")
    mask = mask_of(tmp_path, "{png: m.png}")
    assert mask[35, 35] == pytest.approx(1.0) and mask[35, 60] == 0 and mask[35, 10] == 0
    assert mask[35, 29] == pytest.approx(0.5) and mask[49, 35] == pytest.approx(0.5)
    assert abs(mask.sum() - 400) < 25
    transform = rotated()
    big = np.zeros((300, 400), dtype=np.uint8)
    centre = aligned_to_photo(np.array([[50.0, 50.0]]), transform)[0]
    yy, xx = np.mgrid[:300, :400]
    big[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= 30**2] = 255  # 20 aligned px radius
    Image.fromarray(big).save(tmp_path / "m.png")
    mask = mask_of(tmp_path, "{png: m.png}", transform=transform)
    assert mask[50, 50] == pytest.approx(1.0) and mask[50, 75] == 0
    assert abs(mask.sum() - math.pi * 400) / (math.pi * 400) < 0.05
    # the same as blurring and sampling the whole photo (the crop changes nothing)
    grid = np.arange(S, dtype=np.float64)
    x, y = np.meshgrid(grid, grid, indexing="xy")
    aff = transform.affine_aligned_to_photo()
    px, py = aff[0, 0] * x + aff[0, 1] * y + aff[0, 2], aff[1, 0] * x + aff[1, 1] * y + aff[1, 2]
    blurred = scipy.ndimage.gaussian_filter(
        big / 255.0, sigma=0.5 * math.sqrt(1.5**2 - 1), mode="nearest"
    )
    full = scipy.ndimage.map_coordinates(blurred, [py, px], order=1, mode="constant")
    np.testing.assert_allclose(mask, full, atol=1e-6)


def test_png_errors_name_the_edit(tmp_path):
    Image.new("L", (10, 10), 255).save(tmp_path / "m.png")
    with pytest.raises(
        PipelineError, match=r"photo 'face', edit 'e': photo-space mask .* is 10x10"
    ):
        mask_of(tmp_path, "{png: m.png}")
    Image.new("L", (10, 20), 255).save(tmp_path / "m.png")
    with pytest.raises(PipelineError, match="aligned-space mask .* is 10x20: an aligned mask is"):
        mask_of(tmp_path, "{png: m.png, space: aligned}")


def test_mask_outside_the_face_is_an_error(tmp_path):
    with pytest.raises(PipelineError, match="the mask covers no pixel of the aligned face"):
        mask_of(tmp_path, "{shape: circle, center: [300, 300], radius: 0.1, space: aligned}")
