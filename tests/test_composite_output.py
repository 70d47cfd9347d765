"""Output file: same format/size/mode, alpha/ICC/EXIF kept, provenance, never the input."""

import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from image_writers import chunk, png16, read_png16
from PIL import Image, ImageCms
from scipy import ndimage

from pipeline.alignment.transform import AlignTransform
from pipeline.compositing import CompositeConfig, CompositeResult, FaceEdit, composite_faces
from pipeline.compositing.synthetic import imperfect
from pipeline.compositing.warp import warp_to_aligned
from pipeline.errors import PipelineError, UsageError
from pipeline.photo import load_photo
from pipeline.photo_output import EXIF_SOFTWARE, save_output, working_rgb

RNG = np.random.default_rng(7)
BASE = np.clip(
    RNG.normal(128, 40, (48, 64, 3)) + np.linspace(0, 60, 64)[None, :, None], 0, 255
).astype(np.uint8)


def _edit(photo, value=(250.0, 20.0, 20.0)) -> CompositeResult:
    """A result that paints a 10x12 square (weight 1) and leaves the rest untouched."""
    rgb = working_rgb(photo)
    weight = np.zeros(rgb.shape[:2], dtype=np.float32)
    weight[20:30, 30:42] = 1.0
    rgb[20:30, 30:42] = value
    return CompositeResult(rgb=rgb, weight=weight)


def _untouched(shape):
    mask = np.ones(shape[:2], dtype=bool)
    mask[20:30, 30:42] = False
    return mask


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "CMYK"])
def test_mode_alpha_and_untouched_pixels_preserved(tmp_path, mode):
    rgba = np.dstack([BASE, np.linspace(0, 255, 64, dtype=np.uint8)[None, :].repeat(48, 0)])
    if mode == "I;16":
        grey = (BASE.mean(axis=2) * 257 + RNG.integers(0, 257, (48, 64))).astype(np.uint16)
        source = Image.fromarray(grey)
    elif mode == "P":
        source = Image.fromarray(BASE).quantize(64)
    else:
        source = Image.fromarray(rgba, "RGBA").convert(mode)
    suffix = ".tif" if mode == "CMYK" else ".png"
    src_path = tmp_path / f"in{suffix}"
    source.save(src_path)
    photo = load_photo(src_path)
    noop_path = save_output(
        photo, CompositeResult(working_rgb(photo), np.zeros((48, 64))), tmp_path / f"noop{suffix}"
    )
    out_path = save_output(photo, _edit(photo), tmp_path / f"out{suffix}")
    original = np.asarray(Image.open(src_path))
    with Image.open(noop_path) as noop:
        assert noop.mode == source.mode and np.array_equal(np.asarray(noop), original)
    with Image.open(out_path) as out:
        assert out.mode == source.mode and out.size == source.size
        pixels = np.asarray(out)
    keep = _untouched(pixels.shape)
    assert np.array_equal(pixels[keep], original[keep])  # bit for bit, 16-bit included
    assert not np.array_equal(pixels[~keep], original[~keep])
    if mode in ("RGBA", "LA"):
        assert np.array_equal(pixels[..., -1], original[..., -1])  # alpha kept everywhere
    if mode in ("RGB", "RGBA"):
        assert np.abs(pixels[~keep][:, :3].astype(int) - [250, 20, 20]).max() <= 1
    if mode == "I;16":
        expected = round((0.299 * 250 + 0.587 * 20 + 0.114 * 20) * 257)
        assert np.all(pixels[~keep] == expected)


def test_png_metadata_icc_exif_and_provenance(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    src = tmp_path / "in.png"
    Image.fromarray(BASE).save(src, icc_profile=icc, exif=exif.tobytes())
    photo = load_photo(src)
    out = save_output(photo, _edit(photo), tmp_path / "out.png")
    with Image.open(out) as image:
        assert image.info["icc_profile"] == icc
        assert "dragpipe" in image.text["Description"] and "DragGAN" in image.text["Description"]
        assert image.text["Software"].startswith("dragpipe")
        assert image.getexif()[0x010F] == "TestCam"
        assert "dragpipe" in image.getexif()[EXIF_SOFTWARE]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_whole_jpeg_reencode_orientation_and_provenance(tmp_path):
    # A CMYK JPEG cannot be edited block by block (pipeline.jpeg_blocks): it is re-encoded
    # whole with its own tables, and then the rotated pixels are written upright.
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the loader turns the pixels upright
    src = tmp_path / "in.jpg"
    smooth = ndimage.gaussian_filter(BASE.astype(float), (1.2, 1.2, 0)).astype(np.uint8)
    Image.fromarray(smooth).convert("CMYK").save(src, quality=88, exif=exif.tobytes())
    photo = load_photo(src)
    assert photo.size == (48, 64)
    upright = np.asarray(photo.image).astype(int)
    result = CompositeResult(rgb=working_rgb(photo), weight=np.zeros((64, 48), dtype=np.float32))
    result.rgb[40:48, 16:24] = 255.0  # one 8x8 block
    result.weight[40:48, 16:24] = 1.0
    out = save_output(photo, result, tmp_path / "out.jpg")
    with Image.open(src) as original, Image.open(out) as written:
        assert written.format == "JPEG" and written.size == (48, 64)
        assert written.getexif().get(0x0112) == 1
        assert "orientation 6 normalised to 1" in written.info["comment"].decode()
        assert "dragpipe" in written.getexif()[EXIF_SOFTWARE]
        # 'keep': the input's tables, transposed because the pixels turned a quarter.
        turned = {
            k: np.reshape(v, (8, 8)).T.ravel().tolist() for k, v in original.quantization.items()
        }
        assert {k: list(v) for k, v in written.quantization.items()} == turned
        decoded = np.asarray(written).astype(int)
    far = np.ones((64, 48), dtype=bool)
    far[24:64, 0:40] = False  # away from the edited block
    diff = np.abs(decoded - upright)[far]
    # Stated bound: the untouched JPEG area within 1 level on average, 99.9 % of the values
    # within 8 levels, of the decoded input.
    assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 8
    assert (255 - decoded[40:48, 16:24]).mean() > 200  # white: no ink


def test_jpeg_to_lossless_png_by_option(tmp_path):
    src = tmp_path / "in.jpg"
    Image.fromarray(BASE).save(src, quality=90)
    photo = load_photo(src)
    config = CompositeConfig(output_format="png")
    out = save_output(photo, _edit(photo), tmp_path / "out.png", config)
    with Image.open(out) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image)
    keep = _untouched(pixels.shape)
    assert np.array_equal(pixels[keep], photo.rgb[keep])
    with pytest.raises(UsageError, match="has extension '.png' but the output format is JPEG"):
        save_output(photo, _edit(photo), tmp_path / "out2.png")


def test_refuses_to_overwrite_the_input(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(BASE).save(src)
    before = src.read_bytes()
    photo = load_photo(src)
    with pytest.raises(UsageError, match="never overwrites its input"):
        save_output(photo, _edit(photo), src)
    link = tmp_path / "link.png"
    os.link(src, link)
    with pytest.raises(UsageError, match="never overwrites its input"):
        save_output(photo, _edit(photo), link)
    assert src.read_bytes() == before
    with pytest.raises(PipelineError, match="does not exist"):
        save_output(photo, _edit(photo), tmp_path / "missing" / "out.png")


def test_uint8_array_result_is_accepted(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(BASE).save(src)
    photo = load_photo(src)
    rgb = photo.rgb.copy()
    rgb[0, 0] = [1, 2, 3]
    out = save_output(photo, rgb, tmp_path / "out.png")
    pixels = np.asarray(Image.open(out))
    assert np.array_equal(pixels, rgb)
    with pytest.raises(PipelineError, match=r"must be \[48, 64, 3\]"):
        save_output(photo, rgb[:10], tmp_path / "bad.png")


def test_real_photo_end_to_end_grey_and_jpeg(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "photos" / "grace_hopper.jpg"
    grey_path = tmp_path / "grey.png"
    Image.open(example).convert("L").save(grey_path)
    for src in (example, grey_path):
        photo = load_photo(src)
        quad = np.array([[170.0, 120.0], [160.0, 380.0], [420.0, 390.0], [430.0, 130.0]])
        quad[2] = quad[1] + quad[3] - quad[0]  # a parallelogram, as FFHQ alignment makes
        transform = AlignTransform(quad=quad, output_size=128, photo_size=photo.size)
        recon = imperfect(warp_to_aligned(working_rgb(photo), transform))
        edited = recon.copy()
        edited[60:75, 50:80] = np.clip(edited[60:75, 50:80] * 0.6, 0, 255)  # darken a patch
        face = FaceEdit(
            transform, recon, edited, landmarks=np.array([[40, 40], [88, 40], [64, 100]])
        )
        result = composite_faces(working_rgb(photo), [face])
        assert result.changed.any()
        out = save_output(photo, result, tmp_path / f"out_{src.stem}{src.suffix}")
        with Image.open(out) as written:
            assert written.mode == photo.mode and written.size == photo.size
            pixels = np.asarray(written).astype(int)
        original = np.asarray(photo.image).astype(int)
        far = ~ndimage.binary_dilation(result.changed, iterations=16)
        if src.suffix == ".png":
            assert np.array_equal(pixels[~result.changed], original[~result.changed])
        else:  # JPEG: untouched blocks kept, so beyond the touched MCUs the input exactly
            assert np.array_equal(pixels[far], original[far])
        assert np.abs(pixels - original)[result.weight >= 1].mean() > 5


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_rgb_png_comes_out_sixteen_bit(tmp_path, channels):
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65536, size=(48, 64, channels), dtype=np.uint16)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    iccp = chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc))
    src = png16(tmp_path / "in16.png", values, extra_chunks=iccp)
    photo = load_photo(src)
    out = save_output(photo, _edit(photo), tmp_path / "out.png")
    written, chunks = read_png16(out)  # raises unless the file is 16-bit
    keep = _untouched(values.shape)
    assert written.shape == values.shape
    assert np.array_equal(written[keep], values[keep])  # untouched: the 16-bit originals
    assert (written[20:30, 30:42, :3] == np.array([250, 20, 20]) * 257).all()
    if channels == 4:
        assert np.array_equal(written[..., 3], values[..., 3])  # alpha untouched
    _, _, profile = chunks[b"iCCP"][0].partition(b"\x00")  # name, 0, method, zlib data
    assert zlib.decompress(profile[1:]) == icc
    assert any(b"dragpipe" in text for text in chunks[b"iTXt"])
