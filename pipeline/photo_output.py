"""Write the composited photo: same format, size and mode as the input, metadata kept.

- Pixels: only the pixels the composite touched are re-encoded into the photo's original
  mode (8-bit RGB/grey, 16-bit grey, 16-bit RGB(A) PNG, palette, CMYK, ...); every other
  pixel is copied from the original, so the decoded output equals the input bit for bit
  there. Alpha is copied unchanged.
- JPEG (``jpeg_quality='keep'``, the default): the input's own DCT coefficients are kept for
  every 8x8 block the edit did not touch and the touched blocks get the change added, with
  the input's quantisation tables and chroma subsampling (``pipeline.jpeg_blocks``); the
  file keeps its EXIF orientation (its blocks are the stored, unrotated grid). Decoded, the
  untouched area is the input's decoded pixels exactly; a no-op edit gives the input's
  pixels. JPEGs that are not YCbCr or grey (CMYK, YCCK) are re-encoded whole with the
  input's tables (about one level off on average); an integer ``jpeg_quality`` re-encodes
  the whole image at that quality.
- 16-bit RGB(A) PNG: written in 16 bits (``pipeline.png16``); untouched samples keep their
  16-bit values, touched ones are the composite's value x 257.
- Metadata: ICC profile and EXIF are kept; except for the JPEG block edit above, EXIF
  orientation is 1 because the loader rotated the pixels upright (normalised once), and the
  provenance note records the original tag. The note ("edited with dragpipe (DragGAN)")
  goes into a PNG text chunk, the JPEG comment plus EXIF Software/ImageDescription, or the
  TIFF/WebP/GIF equivalents. WebP is written lossless; ``output_format='png'`` writes
  lossless PNG whatever the input was.
- The input file is never overwritten; the file appears atomically, with the user's umask
  (``draggan.atomic_write``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin, PngImagePlugin

from draggan.atomic_write import write_bytes_atomic
from draggan.version import __version__
from pipeline.compositing.compose import CompositeResult
from pipeline.compositing.config import CompositeConfig
from pipeline.errors import PipelineError, UsageError
from pipeline.image_files import ImageFileError, open_image
from pipeline.jpeg_blocks import NotBlockEditable, edit_blocks, metadata_carrier
from pipeline.orientation import TRANSPOSING
from pipeline.photo import EXIF_ORIENTATION_TAG, Photo
from pipeline.png16 import encode_png16

EXIF_IMAGE_DESCRIPTION = 0x010E
EXIF_SOFTWARE = 0x0131
TIFF_IMAGE_DESCRIPTION = 270

_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
_GREY_MODES = ("L", "LA", "La")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # PIL's RGB -> L weights


def provenance_note(photo: Photo, orientation_kept: bool = False) -> str:
    """The metadata note saying how the file was made."""
    note = f"Edited with dragpipe {__version__} (DragGAN drag editing of the face)"
    if photo.orientation != 1 and not orientation_kept:
        note += f"; EXIF orientation {photo.orientation} normalised to 1 (pixels rotated upright)"
    return note


def working_rgb(photo: Photo) -> np.ndarray:  # [H, W, 3] float32, 0..255
    """The photo's pixels as RGB floats at the original's full precision.

    16-bit grey and 16-bit RGB keep their fraction (value / 257); other modes are ``photo.rgb``.
    """
    if photo.wide is not None:
        return (photo.wide[:, :, :3] / 257.0).astype(np.float32)
    grey = _wide_grey(photo.image)
    if grey is None:
        return photo.rgb.astype(np.float32)
    scaled, _ = grey
    return np.repeat(scaled[:, :, None], 3, axis=2).astype(np.float32)


def encode_native(photo: Photo, result: CompositeResult | np.ndarray) -> Image.Image:
    """The output image in the photo's original (PIL) mode: original pixels where untouched.

    ``result`` is a ``CompositeResult`` (touched = weight > 0) or an [H, W, 3] uint8 RGB
    array (touched = differs from ``photo.rgb``).
    """
    image = photo.image
    rgb, changed = _result_arrays(photo, result)
    if not changed.any():
        return image.copy()
    values = np.clip(rgb[changed].astype(np.float64), 0.0, 255.0)  # [N, 3]
    mode = image.mode
    grey = _wide_grey(image)
    if grey is not None:
        native = np.array(image)
        _, (lo, hi, kind) = grey
        level = values @ _LUMA
        if kind == "sixteen":
            new = np.clip(np.rint(level * 257.0), 0, 65535)
        elif kind == "unit":
            new = level / 255.0
        else:
            new = lo + level * (hi - lo) / 255.0
            if mode == "I":
                new = np.rint(new)
        native[changed] = new.astype(native.dtype)
        return _from_native(native, image)
    if mode in ("RGB", "RGBA"):
        native = np.array(image)
        native[changed, :3] = np.rint(values).astype(np.uint8)
        return _from_native(native, image)
    if mode in _GREY_MODES:
        native = np.array(image)
        new = np.rint(values @ _LUMA).astype(np.uint8)
        if native.ndim == 3:
            native[changed, 0] = new
        else:
            native[changed] = new
        return _from_native(native, image)
    return _converted_paste(image, photo.rgb, values, changed)


def _result_arrays(
    photo: Photo, result: CompositeResult | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # [H, W, 3] 0..255, [H, W] bool (touched)
    width, height = photo.image.size
    if isinstance(result, CompositeResult):
        rgb, changed = result.rgb, result.changed
    else:
        rgb = np.asarray(result)
        if rgb.shape != (height, width, 3):
            raise PipelineError(
                f"result for {photo.path} must be [{height}, {width}, 3], got shape {rgb.shape}"
            )
        changed = np.any(rgb != photo.rgb, axis=2)
    if rgb.shape[:2] != (height, width):
        raise PipelineError(
            f"result for {photo.path} is {rgb.shape[1]}x{rgb.shape[0]} but the photo is "
            f"{width}x{height}"
        )
    return rgb, changed


def output_format(photo: Photo, config: CompositeConfig) -> str:
    """The PIL format name of the output file."""
    return photo.format.upper() if config.output_format == "same" else "PNG"


def save_output(
    photo: Photo,
    result: CompositeResult | np.ndarray,
    path: str | Path,
    config: CompositeConfig | None = None,
) -> Path:
    """Write the composited photo to ``path`` (never the input file); returns the path."""
    config = config or CompositeConfig()
    path = Path(path)
    _refuse_input(photo, path)
    fmt = output_format(photo, config)
    expected = Image.registered_extensions().get(path.suffix.lower())
    if expected != fmt and not (fmt == "JPEG" and expected == "JPEG2000"):
        raise UsageError(
            f"output path {path} has extension {path.suffix or '(none)'!r} but the output "
            f"format is {fmt}; name it with a {fmt} extension"
            + (" or set composite.output_format: png" if fmt != "PNG" else "")
        )
    if not path.parent.is_dir():
        raise PipelineError(f"output folder {path.parent} does not exist: create it first")
    data = encode_output(photo, result, config)
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise PipelineError(f"cannot write output {path}: {exc}") from None
    return path


def encode_output(
    photo: Photo, result: CompositeResult | np.ndarray, config: CompositeConfig | None = None
) -> bytes:
    """The bytes of the output file (``save_output`` without the file)."""
    config = config or CompositeConfig()
    fmt = output_format(photo, config)
    if fmt == "JPEG" and config.jpeg_quality == "keep" and photo.format == "JPEG":
        try:
            return _jpeg_keeping_blocks(photo, result)
        except NotBlockEditable:
            pass  # not YCbCr or grey: re-encoded whole below, with the input's tables
    if fmt == "PNG" and photo.wide is not None:
        return _png_sixteen_bit(photo, result)
    image = encode_native(photo, result)
    if fmt == "JPEG" and image.mode not in ("L", "RGB", "CMYK"):
        raise PipelineError(
            f"cannot write a {image.mode} image as JPEG for {photo.path}; "
            "set composite.output_format: png"
        )
    params = _save_params(photo, image, fmt)
    if fmt == "JPEG":
        params.update(_jpeg_params(photo, config))
    stream = io.BytesIO()
    try:
        image.save(stream, format=fmt, **params)
    except (OSError, ValueError) as exc:
        raise PipelineError(f"cannot encode the output of {photo.path} as {fmt}: {exc}") from None
    return stream.getvalue()


def _jpeg_keeping_blocks(photo: Photo, result: CompositeResult | np.ndarray) -> bytes:
    """The input JPEG with only the touched blocks' coefficients changed (orientation kept)."""
    if photo.image.mode not in ("RGB", "L"):
        raise NotBlockEditable(f"its mode is {photo.image.mode}")
    rgb, changed = _result_arrays(photo, result)
    params = _save_params(photo, photo.image, "JPEG", orientation_kept=True)
    meta = metadata_carrier(photo.image.mode, params)
    # An 8-bit photo: photo.rgb is exactly what the composite started from.
    data, _ = edit_blocks(photo.path, photo.rgb, rgb, changed, photo.orientation, meta)
    return data


def _png_sixteen_bit(photo: Photo, result: CompositeResult | np.ndarray) -> bytes:
    """A 16-bit PNG: the original samples where untouched, the result x 257 where touched."""
    rgb, changed = _result_arrays(photo, result)
    samples = photo.wide.copy()  # [H, W, 3|4] uint16
    values = np.clip(rgb[changed].astype(np.float64), 0.0, 255.0)  # [N, 3]
    samples[changed, :3] = np.rint(values * 257.0).astype(np.uint16)
    params = _save_params(photo, photo.image, "PNG")
    params.pop("transparency", None)  # written by encode_png16 with 16-bit values
    carrier = io.BytesIO()
    Image.new("RGB", (1, 1)).save(carrier, format="PNG", **params)
    key = photo.image.info.get("transparency")
    key = tuple(key) if isinstance(key, tuple) and len(key) == 3 else None
    return encode_png16(samples, carrier.getvalue(), key)


def _refuse_input(photo: Photo, path: Path) -> None:
    source = Path(photo.path)
    same = path.resolve() == source.resolve()
    if not same and path.exists() and source.exists():
        same = os.path.samefile(path, source)
    if same:
        raise UsageError(
            f"output path {path} is the input photo; dragpipe never overwrites its input: "
            "choose another output path"
        )


def _save_params(
    photo: Photo, image: Image.Image, fmt: str, orientation_kept: bool = False
) -> dict:
    """PIL save parameters carrying the metadata (not the JPEG quality settings)."""
    note = provenance_note(photo, orientation_kept)
    params: dict = {}
    if photo.icc_profile:
        params["icc_profile"] = photo.icc_profile
    dpi = photo.image.info.get("dpi")
    if dpi and fmt in ("JPEG", "PNG", "TIFF"):
        params["dpi"] = dpi
    orientation = photo.orientation if orientation_kept else 1
    exif = _exif_with_note(photo, note, fmt in ("JPEG", "TIFF", "WEBP"), orientation)
    if exif is not None and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        params["exif"] = exif
    if fmt == "JPEG":
        comment = photo.image.info.get("comment")
        if isinstance(comment, bytes):
            comment = comment.decode("latin-1")
        params["comment"] = f"{comment}\n{note}" if comment else note
    elif fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for key, value in photo.image.info.items():
            if isinstance(value, str) and key not in ("Software", "Description"):
                info.add_itxt(key, value)
        info.add_itxt("Software", f"dragpipe {__version__} (DragGAN)")
        info.add_itxt("Description", note)
        params["pnginfo"] = info
        if "transparency" in photo.image.info and image.mode in ("P", "L", "RGB", "I", "I;16"):
            params["transparency"] = photo.image.info["transparency"]
    elif fmt == "TIFF":
        compression = photo.image.info.get("compression")
        if compression and compression != "raw":
            params["compression"] = compression
        params["tiffinfo"] = {TIFF_IMAGE_DESCRIPTION: note}
    elif fmt == "WEBP":
        params["lossless"] = True
    elif fmt == "GIF":
        params["comment"] = note
        for key in ("transparency", "duration", "loop"):
            if key in photo.image.info:
                params[key] = photo.image.info[key]
    return params


def _jpeg_params(photo: Photo, config: CompositeConfig) -> dict:
    """Quality settings of a whole-image JPEG encode (the block edit needs none)."""
    if config.jpeg_quality != "keep":
        quality = int(config.jpeg_quality)
        return {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
    try:
        with open_image(photo.path, "photo") as source:
            if source.format != "JPEG":
                return {"quality": 95, "subsampling": 0}
            tables = {k: list(v) for k, v in source.quantization.items()}  # natural order
            if photo.orientation in TRANSPOSING:
                # The pixels were turned a quarter: the block frequencies swap axes too.
                tables = {k: np.reshape(v, (8, 8)).T.ravel().tolist() for k, v in tables.items()}
            sampling = JpegImagePlugin.get_sampling(source)
            progressive = bool(source.info.get("progressive") or source.info.get("progression"))
    except (ImageFileError, OSError) as exc:
        raise PipelineError(
            f"cannot re-read {photo.path} for its JPEG quantisation tables ({exc}); "
            "set composite.jpeg_quality to a number"
        ) from None
    params: dict = {"qtables": tables, "progressive": progressive}
    if sampling >= 0:
        params["subsampling"] = sampling
    return params


def _exif_with_note(photo: Photo, note: str, create: bool, orientation: int = 1) -> bytes | None:
    if photo.exif is None and not create:
        return None
    exif = Image.Exif()
    if photo.exif is not None:
        exif.load(photo.exif)
    exif[EXIF_SOFTWARE] = f"dragpipe {__version__} (DragGAN)"
    if EXIF_IMAGE_DESCRIPTION not in exif:
        exif[EXIF_IMAGE_DESCRIPTION] = note
    if orientation != 1 or EXIF_ORIENTATION_TAG in exif:
        exif[EXIF_ORIENTATION_TAG] = orientation
    return exif.tobytes()


def _wide_grey(image: Image.Image):
    """For 16/32-bit and float grey: (values / 255-scale [H, W] float64, (lo, hi, kind))."""
    mode = image.mode
    if mode not in _SIXTEEN_BIT_GREY and mode not in ("I", "F"):
        return None
    values = np.asarray(image).astype(np.float64)
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    if mode in _SIXTEEN_BIT_GREY or (mode == "I" and lo >= 0 and hi <= 65535):
        return values / 257.0, (0.0, 65535.0, "sixteen")
    if mode == "F" and lo >= 0 and hi <= 1.0:
        return values * 255.0, (0.0, 1.0, "unit")
    if hi <= lo:
        return np.zeros_like(values), (lo, lo, "range")
    scaled = np.nan_to_num((values - lo) * (255.0 / (hi - lo)), nan=0.0, posinf=255.0, neginf=0.0)
    return scaled, (lo, hi, "range")


def _from_native(native: np.ndarray, template: Image.Image) -> Image.Image:
    """An image of ``template``'s mode and metadata-free copy of its palette from ``native``."""
    out = Image.frombytes(template.mode, template.size, np.ascontiguousarray(native).tobytes())
    if template.mode in ("P", "PA") and template.palette is not None:
        out.putpalette(template.getpalette(rawmode="RGB"))
    return out


def _converted_paste(
    image: Image.Image, base_rgb: np.ndarray, values: np.ndarray, changed: np.ndarray
) -> Image.Image:
    """Other modes (P, CMYK, YCbCr, ...): PIL converts the touched pixels only."""
    rgb = base_rgb.copy()
    rgb[changed] = np.rint(values).astype(np.uint8)
    composed = Image.fromarray(rgb)
    if image.mode in ("P", "PA"):
        converted = composed.quantize(palette=_palette_image(image), dither=Image.Dither.NONE)
    else:
        converted = composed.convert(image.mode)
    mask = Image.fromarray(changed.astype(np.uint8) * 255)
    out = image.copy()
    if image.mode == "PA":
        band = out.getchannel("P")
        band.paste(converted, (0, 0), mask)
        out = Image.merge("PA", (band, image.getchannel("A")))
    else:
        out.paste(converted, (0, 0), mask)
    return out


def _palette_image(image: Image.Image) -> Image.Image:
    palette = Image.new("P", (1, 1))
    palette.putpalette(image.getpalette(rawmode="RGB"))
    return palette
