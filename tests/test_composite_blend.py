"""Blend weight and compositing: identity outside the mask, the edit inside, no seam."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from pipeline.compositing import (
    CompositeConfig,
    CompositeConfigError,
    composite_face,
    composite_faces,
    seam_ratio,
)
from pipeline.compositing.flow import estimate_flow
from pipeline.compositing.synthetic import FacePlacement, make_scene
from pipeline.errors import PipelineError

# Seam bound (stated in docs/composite.md): the blend band's gradient energy is within 20 % of
# the untouched pixels beside it, and within 10 % of what the ideal result has there.
SEAM_LOW, SEAM_HIGH = 0.8, 1.2


@pytest.fixture(scope="module")
def scene():
    return make_scene()


def _ring(face, config):
    return config.feather * face.transform.output_size * face.transform.scale


def test_noop_edit_gives_the_photo_itself(scene):
    faces = [dataclasses.replace(f, edited=f.reconstruction.copy()) for f in scene.faces]
    result = composite_faces(scene.photo, faces, CompositeConfig())
    assert not result.changed.any()
    assert np.array_equal(result.rgb, scene.photo.astype(np.float32))
    assert result.boxes == [None]
    assert np.isnan(result.seams[0])


@pytest.mark.parametrize("transfer", ["displace", "residual", "lowpass", "paste"])
def test_real_edit_changes_only_inside_the_mask(scene, transfer):
    config = CompositeConfig(transfer=transfer)
    result = composite_faces(scene.photo, scene.faces, config)
    out = np.clip(np.rint(result.rgb), 0, 255).astype(np.uint8)
    changed = result.changed
    assert np.array_equal(out[~changed], scene.photo[~changed])
    # The blob moved: the edited area now resembles the ideal far more than the photo does.
    moved = np.any(scene.photo != scene.ideal, axis=2) & changed
    assert moved.sum() > 500
    photo_error = np.abs(scene.photo.astype(float) - scene.ideal)[moved].mean()
    out_error = np.abs(out.astype(float) - scene.ideal)[moved].mean()
    assert out_error < 0.4 * photo_error
    # Everything the edit moved lies inside the mask.
    assert (np.any(scene.photo != scene.ideal, axis=2) & ~changed).sum() == 0


@pytest.mark.parametrize("transfer", ["displace", "residual"])
def test_additive_transfers_have_no_seam(scene, transfer):
    config = CompositeConfig(transfer=transfer)
    result = composite_faces(scene.photo, scene.faces, config)
    ring = _ring(scene.faces[0], config)
    ratio = seam_ratio(result.rgb, result.weight, ring)
    ideal_ratio = seam_ratio(scene.ideal.astype(np.float32), result.weight, ring)
    assert SEAM_LOW < ratio < SEAM_HIGH
    assert abs(ratio / ideal_ratio - 1.0) < 0.1
    assert abs(result.seams[0] - ratio) < 1e-6  # the per-face figure the run records
    # Where nothing moved, the photo's pixels stay (residual: up to rounding).
    still = result.changed & np.all(scene.photo == scene.ideal, axis=2)
    assert np.abs(result.rgb[still] - scene.photo[still]).mean() < 1.0 + 0.8 * (
        transfer == "displace"
    )


def test_displace_moves_the_photo_detail_with_the_feature(scene):
    assert CompositeConfig().transfer == "displace"
    moved = np.any(scene.photo != scene.ideal, axis=2)
    errors = {}
    for transfer in ("displace", "residual"):
        result = composite_faces(scene.photo, scene.faces, CompositeConfig(transfer=transfer))
        assert result.changed[moved].all()
        errors[transfer] = np.abs(result.rgb - scene.ideal)[moved].mean()
    assert errors["displace"] < 0.75 * errors["residual"]


def test_flow_recovers_a_translation():
    rng = np.random.default_rng(1)
    base = ndimage.gaussian_filter(rng.normal(128, 50, (96, 96, 3)), (2, 2, 0)).astype(np.float32)
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float64)
    shifted = np.stack(
        [
            ndimage.map_coordinates(base[:, :, c], [yy + 2.5, xx - 3.25], order=3, mode="nearest")
            for c in range(3)
        ],
        -1,
    )
    flow = estimate_flow(base, shifted)  # shifted(a) = base(a + (-3.25, 2.5))
    centre = flow[24:72, 24:72]
    assert np.abs(centre[..., 0] + 3.25).mean() < 0.1
    assert np.abs(centre[..., 1] - 2.5).mean() < 0.1


def test_paste_loses_the_photo_detail_and_shows_a_seam(scene):
    config = CompositeConfig(transfer="paste")
    result = composite_faces(scene.photo, scene.faces, config)
    assert seam_ratio(result.rgb, result.weight, _ring(scene.faces[0], config)) < SEAM_LOW


def test_user_mask_limits_and_joins(scene):
    face = scene.faces[0]
    size = face.transform.output_size
    away = np.zeros((size, size), dtype=np.float32)
    away[:, : size // 8] = 1.0  # only the far left may move: the blob is in the middle
    limited = composite_faces(scene.photo, [dataclasses.replace(face, user_mask=away)])
    assert not limited.changed.any()
    joined = composite_faces(
        scene.photo,
        [dataclasses.replace(face, user_mask=away)],
        CompositeConfig(user_mask="union"),
    )
    plain = composite_faces(scene.photo, [face])
    assert joined.changed.sum() >= plain.changed.sum()
    ignored = composite_faces(
        scene.photo,
        [dataclasses.replace(face, user_mask=away)],
        CompositeConfig(user_mask="ignore"),
    )
    assert np.array_equal(ignored.weight, plain.weight)


def test_changes_outside_the_face_region_are_dropped(scene):
    face = scene.faces[0]
    edited = face.reconstruction.copy()
    edited[5:40, 5:40] += 40.0  # a change in the crop's corner, far from the landmarks
    result = composite_faces(scene.photo, [dataclasses.replace(face, edited=edited)])
    assert not result.changed.any()
    no_limit = composite_faces(
        scene.photo, [dataclasses.replace(face, edited=edited, landmarks=None)]
    )
    assert no_limit.changed.any()


def test_feather_scales_with_the_face():
    widths = []
    for half in (80.0, 160.0):
        sc = make_scene(faces=(FacePlacement((320.0, 240.0), half, 0.0, move=(0.1 * half, 0)),))
        result = composite_faces(sc.photo, sc.faces)
        band = (result.weight > 0) & (result.weight < 1)
        row = int(np.argmax(band.sum(axis=1)))  # a row crossing the band twice
        widths.append(band[row].sum())
    assert 1.7 < widths[1] / widths[0] < 2.3


def test_several_faces_are_composited_in_turn():
    placements = (
        FacePlacement((170.0, 200.0), 110.0, 0.1, move=(10.0, 4.0)),
        FacePlacement((480.0, 260.0), 90.0, -0.25, move=(-8.0, 6.0)),
    )
    sc = make_scene(size=(640, 480), faces=placements, output_size=128, seed=3)
    result = composite_faces(sc.photo, sc.faces)
    assert all(box is not None for box in result.boxes)
    out = np.clip(np.rint(result.rgb), 0, 255).astype(np.uint8)
    assert np.array_equal(out[~result.changed], sc.photo[~result.changed])
    # Same as applying composite_face by hand, one face after the other.
    canvas = sc.photo.astype(np.float32)
    for face in sc.faces:
        composite_face(canvas, face, CompositeConfig())
    assert np.array_equal(canvas, result.rgb)
    for face, placement in zip(sc.faces, placements, strict=True):
        x0, y0, x1, y1 = (
            int(placement.centre[0] - 40),
            int(placement.centre[1] - 40),
            int(placement.centre[0] + 40),
            int(placement.centre[1] + 40),
        )
        err_out = np.abs(out[y0:y1, x0:x1].astype(float) - sc.ideal[y0:y1, x0:x1]).mean()
        err_photo = np.abs(sc.photo[y0:y1, x0:x1].astype(float) - sc.ideal[y0:y1, x0:x1]).mean()
        assert err_out < 0.5 * err_photo, face.name


def test_bad_inputs_raise_one_line_errors(scene):
    face = scene.faces[0]
    with pytest.raises(PipelineError, match=r"face 1: edited image must be \[256, 256, 3\]"):
        composite_faces(scene.photo, [dataclasses.replace(face, edited=face.edited[:100])])
    with pytest.raises(PipelineError, match="values must be finite and in 0..255"):
        composite_faces(scene.photo, [dataclasses.replace(face, edited=face.edited / 127.5 - 1)])
    with pytest.raises(PipelineError, match="rerun the align stage"):
        composite_faces(scene.photo[:100], scene.faces)
    with pytest.raises(PipelineError, match="looks like a 0..1 image"):
        composite_faces(scene.photo, [dataclasses.replace(face, edited=face.edited / 255.0)])
    with pytest.raises(PipelineError, match="drag mask must be"):
        composite_faces(scene.photo, [dataclasses.replace(face, user_mask=np.ones((3, 3)))])
    with pytest.raises(CompositeConfigError, match="composite.transfer must be one of"):
        CompositeConfig(transfer="poisson")
    with pytest.raises(CompositeConfigError, match="composite.feather"):
        CompositeConfig(feather=2.0)
    with pytest.raises(CompositeConfigError, match="jpeg_quality"):
        CompositeConfig(jpeg_quality=0)
    with pytest.raises(ValueError, match="unknown composite config keys: blur"):
        CompositeConfig.from_dict({"blur": 1})
    assert CompositeConfig.from_dict(CompositeConfig().to_dict()) == CompositeConfig()


def test_face_partly_outside_the_photo():
    # The quad reaches past the top-left corner, as the align stage's padded crops do.
    placement = FacePlacement((70.0, 60.0), 120.0, 0.3, move=(10.0, 6.0))
    sc = make_scene(size=(320, 240), faces=(placement,), output_size=128, seed=5)
    result = composite_faces(sc.photo, sc.faces)
    assert result.changed.any()
    out = np.clip(np.rint(result.rgb), 0, 255).astype(np.uint8)
    assert np.array_equal(out[~result.changed], sc.photo[~result.changed])


def test_a_face_that_moves_as_a_whole_moves_in_one_piece():
    # A drag that lifts the whole face: its flat skin and the edges along the motion barely
    # differ between reconstruction and edit, yet they move. Left out of the blend and of
    # the motion, they stayed put while everything around them moved, and the face tore
    # into patches (a group photo's hair/cheek boundary torn and kinked).
    face = FacePlacement((320.0, 240.0), 150.0, 0.1, move=(0.0, -5.0), kind="face")
    scene = make_scene(faces=(face,))
    result = composite_faces(scene.photo, scene.faces, CompositeConfig())
    assert np.array_equal(ndimage.binary_fill_holes(result.changed), result.changed)  # one piece
    yy, xx = np.mgrid[0:480, 0:640]
    # The moved face away from its outline (0.55 x 150 px tall, 0.8 of that wide), where the
    # ideal is the photo's own face moved up 5 px.
    interior = np.hypot((xx - 320) / 66.0, (yy - 235) / 82.5) < 0.8
    error = np.abs(result.rgb - scene.ideal).max(axis=2)[interior]
    photo_error = np.abs(scene.photo.astype(float) - scene.ideal).max(axis=2)[interior]
    assert photo_error.mean() > 15  # the edit is large
    assert error.mean() < 1.5 and np.percentile(error, 95) <= 4
