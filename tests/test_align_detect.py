"""Detection on real photos: ordering, face choice, several faces, no face, tiny faces,
large photos (reduced detection), EXIF-rotated photos, and landmarks that land where the
transform record says on the aligned image."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.alignment import (
    AlignConfig,
    FaceSelectionError,
    LandmarksFileError,
    NoFaceError,
    align_face,
    detect_faces,
    face_warning,
    find_faces,
    photo_to_aligned,
    select_faces,
)
from pipeline.photo import EXIF_ORIENTATION_TAG, load_photo

PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "photos"
SMALL = AlignConfig(output_size=256, transform_size=1024)


@pytest.fixture(scope="module")
def hopper():
    photo = load_photo(PHOTOS / "grace_hopper.jpg")
    return photo, find_faces(photo)


@pytest.fixture(scope="module")
def astronaut():
    photo = load_photo(PHOTOS / "astronaut.png")
    return photo, find_faces(photo)


@pytest.fixture(scope="module")
def tiled(tmp_path_factory, hopper, astronaut):
    """Astronaut (left) and Grace Hopper (right) side by side: three detections."""
    canvas = np.zeros((600, 1024, 3), dtype=np.uint8)
    canvas[:512, :512] = astronaut[0].rgb
    canvas[:, 512:] = hopper[0].rgb
    path = tmp_path_factory.mktemp("tiled") / "two_people.png"
    Image.fromarray(canvas).save(path)
    photo = load_photo(path)
    return photo, find_faces(photo)


def test_one_face_in_grace_hopper_with_plausible_landmarks(hopper):
    _, faces = hopper
    assert len(faces) == 1
    face = faces[0]
    assert face.index == 0 and face.source == "dlib" and face.score > 0.5
    np.testing.assert_allclose(face.box, (180, 139, 366, 325), atol=3)
    lm = face.landmarks
    assert lm.shape == (68, 2) and lm.dtype == np.float64
    eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    assert eye_left[0] < lm[30, 0] < eye_right[0]  # nose tip between the eyes in x
    assert max(eye_left[1], eye_right[1]) < lm[30, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1]
    np.testing.assert_allclose(lm[30], (267, 238), atol=3)


def test_astronaut_faces_are_ordered_left_to_right_and_largest_is_the_face(astronaut):
    _, faces = astronaut
    assert len(faces) == 2  # the face and a false detection on the suit's badge
    assert [f.index for f in faces] == [0, 1]
    assert faces[0].center[0] < faces[1].center[0]
    (largest,) = select_faces(faces, "largest")
    assert largest.index == 1 and largest.center[1] < 200  # the real face, at the top
    assert largest.size > faces[0].size


def test_several_faces_largest_index_all(tiled):
    _, faces = tiled
    assert len(faces) == 3
    xs = [f.center[0] for f in faces]
    assert xs == sorted(xs) and xs[2] > 512  # Grace Hopper is the rightmost
    assert select_faces(faces, "largest")[0].index == 2
    assert select_faces(faces, 1)[0].index == 1
    assert select_faces(faces, "0")[0].index == 0
    assert [f.index for f in select_faces(faces, "all")] == [0, 1, 2]
    with pytest.raises(FaceSelectionError, match=r"face 5 does not exist: 3 faces found.*0-2"):
        select_faces(faces, 5)
    with pytest.raises(FaceSelectionError, match="'largest', 'all' or an index"):
        select_faces(faces, "biggest")


def test_each_face_of_a_tiled_photo_aligns_exactly_like_the_single_photo(tiled, hopper):
    photo, faces = tiled
    (right,) = select_faces(faces, 2)
    # dlib's box (and so its landmarks) depends a little on the surroundings ...
    shift = np.hypot(*(right.landmarks - [512, 0] - hopper[1][0].landmarks).T)
    assert np.median(shift) < 3.0
    # ... but the same landmarks give the same crop wherever the face is. The two quads
    # agree to float64 rounding, not bit for bit, and PIL truncates the warped values to
    # uint8, so a pixel may land one grey level apart (identical here when measured).
    aligned_tiled, transform = align_face(photo, right.landmarks, SMALL)
    aligned_single, single = align_face(hopper[0], right.landmarks - [512, 0], SMALL)
    diff = np.abs(np.asarray(aligned_tiled, int) - np.asarray(aligned_single, int))
    assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3
    np.testing.assert_allclose(transform.quad - [512, 0], single.quad, atol=1e-9)


def test_mapped_landmarks_match_landmarks_detected_on_the_aligned_face(astronaut):
    photo, faces = astronaut
    (face,) = select_faces(faces, "largest")
    config = AlignConfig(output_size=512, transform_size=2048)
    aligned, transform = align_face(photo, face.landmarks, config)
    expected = photo_to_aligned(face.landmarks, transform)  # [68, 2] aligned pixels
    (again,) = select_faces(detect_faces(aligned), "largest")
    error = again.landmarks - expected
    distance = np.hypot(*error.T)
    # dlib's landmarks are integers and jitter with the resampling (photo scale x3 here).
    assert np.median(distance) < 3.0 and distance.max() < 8.0
    assert np.abs(error.mean(axis=0)).max() < 1.0  # no systematic offset


def test_no_face_is_a_one_line_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(100, 156, size=(160, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "wall.png")
    photo = load_photo(tmp_path / "wall.png")
    with pytest.raises(NoFaceError) as exc:
        find_faces(photo)
    message = str(exc.value)
    assert "wall.png" in message and "landmarks" in message and "\n" not in message
    assert exc.value.exit_code == 1


def test_tiny_faces_are_detected_with_a_warning_or_refused_clearly(tmp_path, hopper):
    photo, faces = hopper
    # A quarter size: the face box is about 50 px; dlib (upsample 1) still finds it.
    quarter = Image.fromarray(photo.rgb).resize((128, 150), Image.Resampling.LANCZOS)
    quarter.save(tmp_path / "quarter.png")
    small = load_photo(tmp_path / "quarter.png")
    (face,) = find_faces(small)
    np.testing.assert_allclose(face.landmarks[30], (faces[0].landmarks[30] + 0.5) / 4 - 0.5, atol=2)
    warning = face_warning(face, 1024)
    assert warning is not None and "tiny" in warning and "blurry" in warning
    assert face_warning(faces[0], 1024) is None
    aligned, _ = align_face(small, face.landmarks, SMALL)
    assert aligned.size == (256, 256)

    # A sixteenth (face about 12 px): not detected, so a clear error; the override works.
    speck = Image.fromarray(photo.rgb).resize((32, 38), Image.Resampling.LANCZOS)
    speck.save(tmp_path / "speck.png")
    tiny = load_photo(tmp_path / "speck.png")
    with pytest.raises(NoFaceError, match=r"speck\.png.*40 px.*landmarks"):
        find_faces(tiny)
    given = (faces[0].landmarks + 0.5) / 16 - 0.5
    (face,) = find_faces(tiny, landmarks=[given])
    assert face.source == "override" and np.isnan(face.score)
    aligned, transform = align_face(tiny, face.landmarks, SMALL)
    assert aligned.size == (256, 256) and transform.scale < 0.1
    assert np.asarray(aligned).std() > 10  # a (blurry) face, not an empty image


def test_large_photo_detects_on_a_reduced_copy_and_aligns_from_full_resolution(hopper):
    photo, faces = hopper
    big = np.asarray(Image.fromarray(photo.rgb).resize((2048, 2400), Image.Resampling.BICUBIC))
    config = AlignConfig(output_size=256, transform_size=1024, detect_max_side=600)
    (face,) = detect_faces(big, upsample=config.upsample, max_side=config.detect_max_side)
    scaled = (faces[0].landmarks + 0.5) * 4 - 0.5  # the same face in the big photo
    assert np.median(np.hypot(*(face.landmarks - scaled).T)) < 4 * 1.5
    aligned_big, transform = align_face(big, face.landmarks, config)
    assert transform.photo_size == (2048, 2400)
    # The crop found on the reduced copy is the small photo's crop, 4x (within 3 %).
    _, small = align_face(photo, faces[0].landmarks, config)
    expected = (small.quad + 0.5) * 4 - 0.5
    assert np.abs(transform.quad - expected).max() < 0.03 * 4 * faces[0].size
    # Aligned from full resolution: the same face, sharper than the small photo's.
    same_crop, _ = align_face(big, scaled, config)
    blurry, _ = align_face(photo, faces[0].landmarks, config)
    sharp, soft = np.asarray(same_crop, float), np.asarray(blurry, float)
    assert np.abs(sharp - soft).mean() < 4.0
    assert np.abs(np.diff(sharp, axis=1)).mean() > np.abs(np.diff(soft, axis=1)).mean()


def test_exif_rotated_jpeg_aligns_like_the_upright_photo(tmp_path, hopper):
    photo, faces = hopper
    # Stored turned 90 degrees clockwise with orientation 6 (how phones save portraits).
    stored = Image.fromarray(photo.rgb).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    (tmp_path / "phone.jpg").write_bytes(buffer.getvalue())

    rotated = load_photo(tmp_path / "phone.jpg")
    assert rotated.orientation == 6 and rotated.size == photo.size
    (face,) = find_faces(rotated)
    assert np.median(np.hypot(*(face.landmarks - faces[0].landmarks).T)) < 2.0
    _, transform = align_face(rotated, face.landmarks, SMALL)
    _, upright_transform = align_face(photo, faces[0].landmarks, SMALL)
    np.testing.assert_allclose(transform.quad, upright_transform.quad, atol=0.03 * faces[0].size)
    # Same landmarks: the same crop up to the JPEG re-encoding.
    aligned_rotated, _ = align_face(rotated, faces[0].landmarks, SMALL)
    aligned_upright, _ = align_face(photo, faces[0].landmarks, SMALL)
    diff = np.abs(np.asarray(aligned_rotated, int) - np.asarray(aligned_upright, int))
    assert diff.mean() < 2.0


def test_override_landmarks_outside_the_photo_are_refused(hopper):
    photo, faces = hopper
    far = faces[0].landmarks + [5000, 0]
    with pytest.raises(LandmarksFileError, match=r"outside the 512x600 photo"):
        find_faces(photo, landmarks=[far])
    (face,) = find_faces(photo, landmarks=[faces[0].landmarks])
    np.testing.assert_array_equal(face.landmarks, faces[0].landmarks)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16"])
def test_every_photo_mode_is_detected_and_aligned_in_rgb(tmp_path, hopper, mode):
    photo, faces = hopper
    image = Image.fromarray(photo.rgb)
    if mode == "I;16":  # 16-bit grey with the full range
        grey = np.asarray(image.convert("L")).astype(np.uint16) * 257
        image = Image.fromarray(grey)
    elif mode == "P":
        image = image.quantize(colors=256)
    else:
        image = image.convert(mode)
    path = tmp_path / ("photo.tif" if mode == "CMYK" else "photo.png")
    image.save(path)
    loaded = load_photo(path)
    assert loaded.mode == image.mode and loaded.rgb.shape == (600, 512, 3)
    (face,) = find_faces(loaded)
    assert np.median(np.hypot(*(face.landmarks - faces[0].landmarks).T)) < 3.0
    aligned, _ = align_face(loaded, face.landmarks, SMALL)
    assert aligned.mode == "RGB" and aligned.size == (256, 256)
