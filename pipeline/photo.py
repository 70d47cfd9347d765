"""Load a user's photo: any PIL mode, EXIF orientation applied, original kept for output.

The stages process ``Photo.rgb`` ([H, W, 3] uint8). Everything the final output needs to
look like the input (the original mode's pixels, alpha, ICC profile, EXIF, format) is kept
beside it. Mode conversion to RGB:

- ``L``, ``LA``, ``1``, ``P``, ``PA``, ``RGBA``, ``RGBa``, ``La``, ``YCbCr``, ``LAB``,
  ``HSV``: PIL's conversion; the alpha (``LA``, ``RGBA``, ``PA``, ``P`` with a transparent
  colour) goes to ``Photo.alpha``.
- ``CMYK``: PIL's plain conversion (no colour management), the same one the composite
  stage inverts when it writes a CMYK result, so untouched pixels round-trip.
- 16-bit grey (``I;16``, ``I;16B``, ``I;16L`` and ``I`` with values in 0..65535, which is
  how PIL opens 16-bit grey PNGs and TIFFs): value / 257, rounded. ``I`` images with values
  outside 0..65535 and ``F`` images are scaled from their own min..max range (``F`` with
  values in 0..1 is taken as 0..1).
- 16-bit RGB and RGBA PNGs: PIL opens them as 8-bit ``RGB(A)`` (the high byte); the exact
  16-bit samples are decoded too (``pipeline.png16``) and kept in ``Photo.wide``, so the
  output can be written in 16 bits; ``rgb`` and ``alpha`` are sample / 257, rounded.

Photos are opened through ``pipeline.image_files``: larger than ``MAX_IMAGE_PIXELS`` (250 MP)
is refused from the header, before decoding, with the real size and the limit in the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pipeline.errors import PipelineError
from pipeline.image_files import MAX_IMAGE_PIXELS, decode, open_image
from pipeline.orientation import upright as upright_samples
from pipeline.png16 import is_sixteen_bit, select_low_bytes

EXIF_ORIENTATION_TAG = 0x0112

_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


@dataclass
class Photo:
    """A decoded photo (EXIF orientation applied) and what its output must preserve."""

    path: Path
    image: Image.Image  # original pixels in the ORIGINAL mode, EXIF orientation applied
    rgb: np.ndarray  # [H, W, 3] uint8, what the stages process
    alpha: np.ndarray | None  # [H, W] uint8 alpha of the original, if any
    format: str  # PIL format name: 'JPEG' (also for MPO), 'PNG', ...
    icc_profile: bytes | None
    exif: bytes | None  # original EXIF with the orientation tag reset to 1
    orientation: int  # the original EXIF orientation tag (1 when none)
    wide: np.ndarray | None = None  # [H, W, 3|4] uint16: a 16-bit RGB(A) PNG's samples, upright

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) after EXIF orientation."""
        return self.image.size

    @property
    def mode(self) -> str:
        """The original PIL mode, e.g. 'RGB', 'I;16', 'CMYK'."""
        return self.image.mode


def load_photo(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Photo:
    """Decode ``path`` into a ``Photo``; any failure is a one-line ``PipelineError``."""
    path = Path(path)
    image = open_image(path, "photo", max_pixels)
    low = None
    if is_sixteen_bit(image):
        low = open_image(path, "photo", max_pixels)
        select_low_bytes(low)
    image = decode(image, path, "photo", max_pixels)
    wide = None
    if low is not None:
        with decode(low, path, "photo", max_pixels):
            wide = (np.asarray(image).astype(np.uint16) << 8) | np.asarray(low)
    try:
        fmt = image.format or path.suffix.lstrip(".").upper()
        if fmt == "MPO":  # a phone's multi-picture JPEG: its first picture is the photo
            fmt = "JPEG"
        icc_profile = image.info.get("icc_profile") or None
        exif = image.getexif()
        orientation = int(exif.get(EXIF_ORIENTATION_TAG, 1) or 1)
        if orientation not in range(1, 9):
            orientation = 1
        exif_bytes = None
        # Only a real EXIF block is kept (a TIFF's own tags also show up in getexif()).
        if image.info.get("exif"):
            kept = Image.Exif()  # a copy: exif_transpose below still reads the real tag
            kept.load(exif.tobytes())
            if EXIF_ORIENTATION_TAG in kept:
                kept[EXIF_ORIENTATION_TAG] = 1
            exif_bytes = kept.tobytes()
        upright = image
        if orientation != 1:
            upright = ImageOps.exif_transpose(image)
            image.close()
    except (OSError, ValueError, SyntaxError) as exc:
        image.close()
        raise PipelineError(f"photo {path} is damaged or truncated ({exc})") from None
    if wide is not None:
        wide = np.ascontiguousarray(upright_samples(wide, orientation))
        rgb = np.rint(wide[:, :, :3] / 257.0).astype(np.uint8)
        alpha = np.rint(wide[:, :, 3] / 257.0).astype(np.uint8) if wide.shape[2] == 4 else None
    else:
        rgb, alpha = to_rgb(upright)
    return Photo(
        path=path,
        image=upright,
        rgb=rgb,
        alpha=alpha,
        format=fmt,
        icc_profile=icc_profile,
        exif=exif_bytes,
        orientation=orientation,
        wide=wide,
    )


def to_rgb(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB [H, W, 3] uint8 and alpha [H, W] uint8 (or None) of an image in any PIL mode."""
    mode = image.mode
    if mode == "RGB":
        return np.array(image, dtype=np.uint8), None
    if mode in _SIXTEEN_BIT_GREY or mode in ("I", "F"):
        grey = _wide_grey_to_uint8(np.asarray(image), mode)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        return rgba[:, :, :3].copy(), rgba[:, :, 3].copy()
    return np.array(image.convert("RGB"), dtype=np.uint8), None


def _wide_grey_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Map a 16/32-bit integer or float grey image [H, W] to uint8 [H, W]."""
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    if mode in _SIXTEEN_BIT_GREY or (mode == "I" and lo >= 0 and hi <= 65535):
        scaled = values / 257.0
    elif mode == "F" and lo >= 0 and hi <= 1.0:
        scaled = values * 255.0
    else:
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
