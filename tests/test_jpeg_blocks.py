"""JPEG output keeps every untouched 8x8 block's DCT coefficients: the decoded untouched area
is the decoded input, a no-op edit gives the input's pixels, EXIF orientation is kept."""

from __future__ import annotations

import jpeglib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pipeline.compositing import CompositeConfig, CompositeResult
from pipeline.orientation import stored
from pipeline.photo import load_photo
from pipeline.photo_output import save_output, working_rgb

RNG = np.random.default_rng(11)
# 70 x 52: neither side a multiple of 16, so edge MCUs are partial.
TEXTURE = ndimage.gaussian_filter(RNG.normal(128, 50, (52, 70, 3)), (1.0, 1.0, 0))
PICTURE = np.clip(TEXTURE + np.linspace(-40, 40, 70)[None, :, None], 0, 255).astype(np.uint8)
PAINT = (slice(13, 19), slice(21, 28))  # rows 13-18, columns 21-27: crosses block borders


def write_jpeg(path, picture=PICTURE, subsampling=2, mode="RGB", orientation=1):
    """``picture`` as the file's stored pixels, with an EXIF orientation tag unless 1."""
    image = Image.fromarray(picture).convert(mode)
    params = {"quality": 80, "subsampling": subsampling}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    image.save(path, **params)
    return path


def decoded(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).astype(int)


def coefficients(path) -> list[np.ndarray]:
    jpeg = jpeglib.read_dct(str(path))
    jpeg.load()
    return [jpeg.Y] + ([jpeg.Cb, jpeg.Cr] if jpeg.has_chrominance else [])


def painted(photo, rows=PAINT[0], cols=PAINT[1]) -> CompositeResult:
    rgb = working_rgb(photo)
    weight = np.zeros(rgb.shape[:2], dtype=np.float32)
    weight[rows, cols] = 1.0
    rgb[rows, cols] = (230.0, 40.0, 60.0)
    return CompositeResult(rgb=rgb, weight=weight)


@pytest.mark.parametrize("subsampling, mode", [(2, "RGB"), (1, "RGB"), (0, "RGB"), (0, "L")])
def test_noop_edit_writes_the_input_pixels(tmp_path, subsampling, mode):
    src = write_jpeg(tmp_path / "in.jpg", subsampling=subsampling, mode=mode)
    photo = load_photo(src)
    untouched = CompositeResult(working_rgb(photo), np.zeros(photo.rgb.shape[:2], np.float32))
    out = save_output(photo, untouched, tmp_path / "out.jpg")
    assert np.array_equal(decoded(out), decoded(src))
    for before, after in zip(coefficients(src), coefficients(out), strict=True):
        assert np.array_equal(before, after)
    with Image.open(src) as a, Image.open(out) as b:
        assert a.quantization == b.quantization and a.layer == b.layer  # tables, sampling
        assert b.mode == mode and "dragpipe" in b.info["comment"].decode()
    assert abs(out.stat().st_size - src.stat().st_size) < 0.05 * src.stat().st_size + 400


@pytest.mark.parametrize("subsampling", [2, 0])
def test_only_the_touched_blocks_change(tmp_path, subsampling):
    src = write_jpeg(tmp_path / "in.jpg", subsampling=subsampling)
    photo = load_photo(src)
    result = painted(photo)
    out = save_output(photo, result, tmp_path / "out.jpg")
    mcu = 16 if subsampling == 2 else 8
    # Luma: exactly the 8x8 blocks holding a painted pixel; chroma: the MCUs holding one.
    rows, cols = np.arange(13, 19), np.arange(21, 28)
    for index, (before, after) in enumerate(zip(coefficients(src), coefficients(out), strict=True)):
        size = 8 if index == 0 else mcu
        expect = np.zeros(before.shape[:2], dtype=bool)
        expect[np.ix_(np.unique(rows // size), np.unique(cols // size))] = True
        differs = np.any(before != after, axis=(2, 3))
        assert not differs[~expect].any()  # every other block: the same coefficients
        assert differs[expect].any()
    # Decoded: the input's pixels bit for bit outside the touched MCUs (plus the 2 px the
    # decoder's smooth chroma upsampling reaches into a neighbour at 4:2:0).
    dirty = np.zeros(photo.rgb.shape[:2], dtype=bool)
    dirty[(13 // mcu) * mcu : (18 // mcu + 1) * mcu, (21 // mcu) * mcu : (27 // mcu + 1) * mcu] = 1
    reach = ndimage.binary_dilation(dirty, iterations=2 if subsampling == 2 else 0)
    reach |= dirty
    assert np.array_equal(decoded(out)[~reach], decoded(src)[~reach])
    # The painted pixels got the edit as well as encoding the edited image whole at the
    # input's own tables and subsampling would give them.
    whole = tmp_path / "whole.jpg"
    with Image.open(src) as original:
        tables = original.quantization
    Image.fromarray(result.rgb.astype(np.uint8)).save(
        whole, qtables=tables, subsampling=subsampling
    )
    error = np.abs(decoded(out)[PAINT] - result.rgb[PAINT]).mean()
    reference = np.abs(decoded(whole)[PAINT] - result.rgb[PAINT]).mean()
    print(f"painted pixels: mean error {error:.2f} (whole re-encode {reference:.2f})")
    assert error <= 1.2 * reference + 1.0


@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
def test_exif_orientation_is_kept_and_the_edit_lands_upright(tmp_path, orientation):
    src = write_jpeg(tmp_path / "in.jpg", orientation=orientation)
    photo = load_photo(src)  # upright pixels
    result = painted(photo, slice(10, 16), slice(8, 14))
    out = save_output(photo, result, tmp_path / "out.jpg")
    with Image.open(out) as written:
        assert written.getexif().get(0x0112) == orientation
        assert "normalised" not in written.info["comment"].decode()
    again = load_photo(out)  # upright again
    assert again.size == photo.size
    far = ~ndimage.binary_dilation(result.changed, iterations=18)  # beyond the touched MCUs
    assert np.array_equal(again.rgb[far], photo.rgb[far])
    target = result.rgb[10:16, 8:14]
    error = np.abs(again.rgb[10:16, 8:14].astype(int) - target).mean()
    assert error < 0.25 * np.abs(photo.rgb[10:16, 8:14].astype(int) - target).mean()
    # The file's own grid is the stored one: its untouched blocks are the input's.
    touched_stored = stored(result.changed, orientation)
    (before, *_), (after, *_) = coefficients(src), coefficients(out)
    differs = np.any(before != after, axis=(2, 3))
    ys, xs = np.nonzero(touched_stored)
    assert not differs[: ys.min() // 8].any() and not differs[ys.max() // 8 + 1 :].any()
    assert not differs[:, : xs.min() // 8].any() and not differs[:, xs.max() // 8 + 1 :].any()


def test_a_quality_number_reencodes_the_whole_image(tmp_path):
    src = write_jpeg(tmp_path / "in.jpg")
    photo = load_photo(src)
    untouched = CompositeResult(working_rgb(photo), np.zeros(photo.rgb.shape[:2], np.float32))
    out = save_output(photo, untouched, tmp_path / "out.jpg", CompositeConfig(jpeg_quality=95))
    with Image.open(out) as written:
        assert written.quantization != Image.open(src).quantization
