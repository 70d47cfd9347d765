"""Open the user's image files (photos, mask images) with one size limit, before decoding.

Every command that reads a user's image (``run``, ``status``, ``landmarks``, the spec check)
goes through ``open_image``: the header is read, the size checked against
``MAX_IMAGE_PIXELS``, and only then may the pixels be decoded (``decode``). PIL's own
decompression-bomb check (a warning from 89 MP, an error from 179 MP) is replaced by this one
limit while our code opens and decodes the file, so the message always states the real size
and the real limit.

``check_image_file`` is what the spec check runs: header, size, and the cheapest read that
finds a truncated file (PNG: every chunk's CRC up to IEND; JPEG: an entropy decode at 1/8
scale; other formats: a full decode).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.errors import PipelineError

# 250 megapixels: 750 MB as 8-bit RGB, about 11 GB of working arrays through the composite
# (float32 copies of the photo); far beyond any camera a face photo comes from.
MAX_IMAGE_PIXELS = 250_000_000

_PIL_LIMIT_LOCK = threading.Lock()


class ImageFileError(PipelineError):
    """A user's image file that cannot be used; ``reason`` and ``advice`` without the path."""

    def __init__(self, what: str, path: Path, reason: str, advice: str):
        super().__init__(f"{what} {path} {reason}; {advice}")
        self.reason = reason
        self.advice = advice


@contextmanager
def _pil_limit(limit: int | None) -> Iterator[None]:
    """PIL's decompression-bomb check made to refuse only above ``limit`` pixels (None: off).

    PIL raises above twice ``Image.MAX_IMAGE_PIXELS`` (so it is set to half the limit) and
    warns above it; the warning is silenced (our own limit is the one that speaks). The
    previous value is restored after.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None if limit is None else max(1, limit // 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def megapixels(pixels: int) -> str:
    """'900', '12.3', '0.307': pixels in megapixels, three significant digits below 100."""
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _too_large(what: str, path: Path, width: int, height: int, limit: int) -> ImageFileError:
    return ImageFileError(
        what,
        path,
        f"is {width}x{height} pixels ({megapixels(width * height)} megapixels), over "
        f"dragpipe's limit of {megapixels(limit)} megapixels",
        f"downscale it to at most {megapixels(limit)} megapixels first (a face needs far fewer)",
    )


def _damaged(what: str, path: Path, exc: Exception) -> ImageFileError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ImageFileError(
        what, path, f"is damaged or truncated ({detail})", "re-export or copy the file again"
    )


def open_image(path: Path, what: str = "photo", max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """``path`` opened lazily (header only), its size checked; raises ``ImageFileError``.

    ``what`` names the file in messages ('photo', 'mask image').
    """
    path = Path(path)
    try:
        with _pil_limit(None):
            image = Image.open(path)
    except FileNotFoundError:
        raise ImageFileError(what, path, "not found", "check the path") from None
    except IsADirectoryError:
        raise ImageFileError(what, path, "is a directory", "give an image file") from None
    except UnidentifiedImageError:
        raise ImageFileError(
            what,
            path,
            "is not an image format dragpipe can read",
            "use JPEG, PNG, TIFF, WebP, BMP, ...",
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:  # a header PIL cannot parse
        raise _damaged(what, path, exc) from None
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise ImageFileError(what, path, f"is empty ({width}x{height} pixels)", "give a photo")
    if width * height > max_pixels:
        image.close()
        raise _too_large(what, path, width, height, max_pixels)
    return image


@contextmanager
def _reading(path: Path, what: str, max_pixels: int) -> Iterator[None]:
    """Decoding under our limit; PIL's failures become ``ImageFileError``."""
    try:
        with _pil_limit(max_pixels):
            yield
    except Image.DecompressionBombError:  # a frame or tile larger than the image claims
        raise ImageFileError(
            what,
            Path(path),
            f"holds data larger than dragpipe's limit of {megapixels(max_pixels)} megapixels",
            "re-export it as a plain image",
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _damaged(what, Path(path), exc) from None


def decode(
    image: Image.Image, path: Path, what: str = "photo", max_pixels: int = MAX_IMAGE_PIXELS
) -> Image.Image:
    """Decode an image from ``open_image`` (in place; returns it); ``ImageFileError`` if bad."""
    try:
        with _reading(path, what, max_pixels):
            image.load()
    except ImageFileError:
        image.close()
        raise
    return image


def check_image_file(
    path: Path, what: str = "photo", max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[int, int]:
    """Header, size limit and completeness of an image file; returns its (width, height).

    Cheap enough for the spec check of a large batch (a 12 MP JPEG about 20 ms, a 12 MP PNG
    about 10 ms): a PNG's chunks are read and their CRCs checked up to IEND without
    inflating, a JPEG is entropy-decoded at 1/8 scale, other formats are decoded.
    """
    path = Path(path)
    image = open_image(path, what, max_pixels)
    size = image.size
    try:
        with _reading(path, what, max_pixels):
            if image.format == "PNG":
                image.verify()
            else:
                if image.format in ("JPEG", "MPO"):
                    image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
                image.load()
    finally:
        image.close()
    return size
