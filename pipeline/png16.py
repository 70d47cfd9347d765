"""16-bit RGB and RGBA PNG samples in and out (PIL keeps only the high byte of each sample).

Reading: PIL's PNG decoder unfilters the rows and then unpacks each 16-bit big-endian sample
with the tile's raw mode ``RGB;16B`` (the high byte). Decoding the same file a second time
with ``RGB;16L`` (which takes the other byte of each pair) yields the low bytes; together
they are the exact samples, with PIL's own inflate, unfiltering and interlace handling.

Writing: IHDR (16 bits per sample), the ancillary chunks of a small PNG that PIL wrote with
the output's metadata (ICC profile, text, EXIF, resolution), tRNS, then the rows, each
filtered with whichever of None / Sub / Up gives the smallest sum of absolute bytes (the
usual encoder heuristic), deflated.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

_SIXTEEN_BIT_RAW = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NOT_COPIED = (b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND")


def is_sixteen_bit(image: Image.Image) -> bool:
    """Whether ``image`` (opened, not yet decoded) is a 16-bit RGB or RGBA PNG."""
    if image.format != "PNG" or len(image.tile) != 1:
        return False
    return _raw_mode(image.tile[0]) in _SIXTEEN_BIT_RAW


def select_low_bytes(image: Image.Image) -> None:
    """Make a second, not yet decoded copy of a 16-bit PNG decode to each sample's low byte."""
    tile = image.tile[0]
    low = _SIXTEEN_BIT_RAW[_raw_mode(tile)]
    args = low if isinstance(tile.args, str) else (low, *tile.args[1:])
    image.tile = [tile._replace(args=args)]


def _raw_mode(tile) -> str | None:
    args = tile.args
    raw = args if isinstance(args, str) else (args[0] if args else None)
    return raw if isinstance(raw, str) else None


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk of a PNG stream."""
    position, found = len(_SIGNATURE), []
    while position + 8 <= len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        found.append((kind, png[position + 8 : position + 8 + length]))
        position += 12 + length
    return found


def _filtered_rows(samples: np.ndarray) -> bytes:
    """Rows of [H, W, C] uint16 as PNG scanlines (filter byte + bytes), filter chosen per row."""
    height, width, channels = samples.shape
    raw = np.ascontiguousarray(samples.astype(">u2")).view(np.uint8).reshape(height, -1)
    bpp = 2 * channels
    sub = raw.copy()
    sub[:, bpp:] -= raw[:, :-bpp]  # uint8 arithmetic wraps modulo 256, as PNG's filters do
    up = raw.copy()
    up[1:] -= raw[:-1]
    candidates = np.stack([raw, sub, up])  # filter types 0, 1, 2
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # [3, H]
    choice = cost.argmin(axis=0)  # [H]
    rows = candidates[choice, np.arange(height)]  # [H, W * bpp]
    return np.concatenate([choice.astype(np.uint8)[:, None], rows], axis=1).tobytes()


def encode_png16(
    samples: np.ndarray,  # [H, W, 3|4] uint16
    meta: bytes,  # a PNG from PIL whose ancillary chunks (iCCP, iTXt, eXIf, pHYs, ...) to copy
    transparency: tuple[int, int, int] | None = None,  # RGB colour key (16-bit values)
) -> bytes:
    """A 16-bit RGB or RGBA PNG stream of ``samples``."""
    height, width, channels = samples.shape
    colour_type = {3: 2, 4: 6}[channels]
    out = [
        _SIGNATURE,
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)),
    ]
    out += [_chunk(kind, data) for kind, data in _chunks(meta) if kind not in _NOT_COPIED]
    if transparency is not None and channels == 3:
        out.append(_chunk(b"tRNS", struct.pack(">HHH", *(int(v) & 0xFFFF for v in transparency))))
    out.append(_chunk(b"IDAT", zlib.compress(_filtered_rows(samples), 6)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
