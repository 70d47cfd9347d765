"""load_photo: every PIL mode becomes RGB (alpha kept), EXIF orientation is applied, bad
files are one-line PipelineErrors naming the file."""

from pathlib import Path

import numpy as np
import pytest
from image_writers import chunk, header_only_png, png16
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.photo import EXIF_ORIENTATION_TAG, load_photo, to_rgb

PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "photos"

# The stored image for EXIF orientation o: its exif_transpose must give back the upright one.
STORE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture(scope="module")
def upright() -> np.ndarray:
    """A small non-symmetric RGB test image [40, 60, 3] (rows != columns)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)


def test_example_photos_load_as_rgb_with_metadata():
    photo = load_photo(PHOTOS / "astronaut.png")
    assert photo.format == "PNG" and photo.mode == "RGB" and photo.size == (512, 512)
    assert photo.rgb.shape == (512, 512, 3) and photo.rgb.dtype == np.uint8
    assert photo.alpha is None and photo.orientation == 1
    assert photo.icc_profile == Image.open(PHOTOS / "astronaut.png").info["icc_profile"]
    np.testing.assert_array_equal(photo.rgb, np.asarray(Image.open(PHOTOS / "astronaut.png")))
    hopper = load_photo(PHOTOS / "grace_hopper.jpg")
    assert hopper.format == "JPEG" and hopper.rgb.shape == (600, 512, 3)


@pytest.mark.parametrize("orientation", sorted(STORE_FOR_ORIENTATION))
def test_exif_orientation_is_applied_and_reset(tmp_path, upright, orientation):
    stored = Image.fromarray(upright).transpose(STORE_FOR_ORIENTATION[orientation])
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    exif[0x010F] = "dragpipe-test-camera"  # Make: must survive
    path = tmp_path / f"o{orientation}.png"
    stored.save(path, exif=exif.tobytes())

    photo = load_photo(path)
    np.testing.assert_array_equal(photo.rgb, upright)
    assert photo.size == (60, 40) and photo.orientation == orientation
    kept = Image.Exif()
    kept.load(photo.exif)
    assert kept[EXIF_ORIENTATION_TAG] == 1 and kept[0x010F] == "dragpipe-test-camera"


def test_grey_palette_and_alpha_modes(tmp_path, upright):
    grey = upright[:, :, 0]
    alpha = upright[:, :, 1]
    Image.fromarray(grey).save(tmp_path / "l.png")
    Image.fromarray(np.stack([grey, alpha], axis=2), "LA").save(tmp_path / "la.png")
    Image.fromarray(np.dstack([upright, alpha])).save(tmp_path / "rgba.png")

    photo = load_photo(tmp_path / "l.png")
    assert photo.mode == "L" and photo.alpha is None
    np.testing.assert_array_equal(photo.rgb, np.repeat(grey[:, :, None], 3, axis=2))

    photo = load_photo(tmp_path / "la.png")
    assert photo.mode == "LA"
    np.testing.assert_array_equal(photo.rgb[:, :, 2], grey)
    np.testing.assert_array_equal(photo.alpha, alpha)

    photo = load_photo(tmp_path / "rgba.png")
    assert photo.mode == "RGBA"
    np.testing.assert_array_equal(photo.rgb, upright)
    np.testing.assert_array_equal(photo.alpha, alpha)


def test_palette_with_and_without_transparency(tmp_path, upright):
    palette_image = Image.fromarray(upright).quantize(colors=16)
    palette_image.save(tmp_path / "p.png")
    expected = np.asarray(palette_image.convert("RGB"))
    photo = load_photo(tmp_path / "p.png")
    assert photo.mode == "P" and photo.alpha is None
    np.testing.assert_array_equal(photo.rgb, expected)

    transparent_index = int(np.asarray(palette_image)[0, 0])
    palette_image.save(tmp_path / "pt.png", transparency=transparent_index)
    photo = load_photo(tmp_path / "pt.png")
    assert photo.alpha is not None
    is_clear = np.asarray(palette_image) == transparent_index
    np.testing.assert_array_equal(photo.alpha, np.where(is_clear, 0, 255))
    np.testing.assert_array_equal(photo.rgb, expected)


def test_cmyk_tiff_round_trips_to_rgb(tmp_path, upright):
    Image.fromarray(upright).convert("CMYK").save(tmp_path / "cmyk.tif")
    photo = load_photo(tmp_path / "cmyk.tif")
    assert photo.mode == "CMYK" and photo.format == "TIFF"
    np.testing.assert_array_equal(photo.rgb, upright)


def test_sixteen_bit_grey_png_uses_the_full_range(tmp_path):
    values = np.linspace(0, 65535, 40 * 60).round().astype(np.uint16).reshape(40, 60)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    photo = load_photo(tmp_path / "grey16.png")
    assert photo.mode.startswith("I")
    assert photo.image.getpixel((59, 39)) == 65535  # the original keeps 16 bits
    expected = np.rint(values / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(photo.rgb[:, :, 0], expected)
    assert photo.rgb[0, 0, 0] == 0 and photo.rgb[-1, -1, 1] == 255


def test_sixteen_bit_rgb_png(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16)
    png16(tmp_path / "rgb16.png", values)
    photo = load_photo(tmp_path / "rgb16.png")
    assert photo.rgb.shape == (20, 30, 3)
    np.testing.assert_array_equal(photo.wide, values)  # the exact samples (PIL: high byte)
    np.testing.assert_array_equal(photo.rgb, np.rint(values / 257.0).astype(np.uint8))
    # EXIF orientation 6 (eXIf chunk): the 16-bit samples are turned upright with the image.
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    raw = exif.tobytes().removeprefix(b"Exif\x00\x00")
    png16(tmp_path / "turned16.png", values, extra_chunks=chunk(b"eXIf", raw))
    photo = load_photo(tmp_path / "turned16.png")
    assert photo.size == (20, 30) and photo.orientation == 6
    np.testing.assert_array_equal(photo.wide, np.rot90(values, k=-1))
    np.testing.assert_array_equal(photo.rgb, np.rint(photo.wide / 257.0).astype(np.uint8))


def test_float_and_wide_integer_grey_are_scaled():
    unit = Image.fromarray(np.array([[0.0, 0.2, 1.0]], dtype=np.float32))
    rgb, alpha = to_rgb(unit)
    assert alpha is None and rgb[0, :, 0].tolist() == [0, 51, 255]
    wide = Image.fromarray(np.array([[-100, 60, 100]], dtype=np.int32), "I")
    rgb, _ = to_rgb(wide)
    assert rgb[0, :, 0].tolist() == [0, 204, 255]


def test_missing_directory_and_non_image_are_one_line_errors(tmp_path):
    with pytest.raises(PipelineError, match=r"photo .*nope\.jpg not found"):
        load_photo(tmp_path / "nope.jpg")
    with pytest.raises(PipelineError, match="is a directory"):
        load_photo(tmp_path)
    (tmp_path / "notes.jpg").write_text("not an image\n")
    with pytest.raises(PipelineError, match=r"notes\.jpg is not an image format") as exc:
        load_photo(tmp_path / "notes.jpg")
    assert "\n" not in str(exc.value)


def test_truncated_file_is_reported_as_damaged(tmp_path):
    data = (PHOTOS / "astronaut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(PipelineError, match=r"cut\.png is damaged or truncated"):
        load_photo(tmp_path / "cut.png")


def test_absurdly_large_photo_is_refused_before_decoding(tmp_path):
    # 900 megapixels announced: refused from the header with the real size and the limit.
    huge = header_only_png(tmp_path / "huge.png", 30_000, 30_000)
    with pytest.raises(PipelineError) as exc:
        load_photo(huge)
    message = str(exc.value)
    assert "huge.png is 30000x30000 pixels (900 megapixels)" in message
    assert "limit of 250 megapixels" in message and "\n" not in message
    assert "DecompressionBomb" not in message and "178956970" not in message
    # 203 MP is under the one limit: not refused for its size (PIL alone refuses it at 179 MP);
    # this file has no pixel data, so it is reported as truncated.
    with pytest.raises(PipelineError, match=r"mid\.png is damaged or truncated"):
        load_photo(header_only_png(tmp_path / "mid.png", 14_500, 14_000))
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # PIL's own setting is left as it was
    with pytest.raises(
        PipelineError, match=r"512x600 pixels \(0.307 megapixels\), over .* limit of 0.1 megapixels"
    ):
        load_photo(PHOTOS / "grace_hopper.jpg", max_pixels=100_000)
