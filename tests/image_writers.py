"""Test helpers: PNG files PIL cannot write (16-bit RGB(A), a header announcing any size).

Not a test module (no ``test_`` prefix); imported by the tests that need such files.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header announces width x height RGB pixels, with almost no data (tiny file)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data + chunk(b"IEND", b""))
    return path


def png16(path: Path, values: np.ndarray, extra_chunks: bytes = b"") -> Path:
    """A 16-bit RGB or RGBA PNG from uint16 [H, W, 3|4] (rows Sub-filtered, as encoders do)."""
    height, width, channels = values.shape
    raw = values.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    bpp = 2 * channels
    filtered = raw.copy()
    filtered[:, bpp:] = raw[:, bpp:] - raw[:, :-bpp]  # uint8 arithmetic wraps mod 256
    rows = np.concatenate([np.ones((height, 1), np.uint8), filtered], axis=1)
    colour_type = {3: 2, 4: 6}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra_chunks
    png += chunk(b"IDAT", zlib.compress(rows.tobytes())) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


def read_png16(path: Path) -> tuple[np.ndarray, dict[bytes, list[bytes]]]:
    """Samples [H, W, C] uint16 of a 16-bit PNG whose rows use filters 0-2, and its chunks.

    A decoder independent of PIL and of pipeline.png16, for checking what was written.
    """
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks: dict[bytes, list[bytes]] = {}
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunks.setdefault(kind, []).append(data[position + 8 : position + 8 + length])
        position += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 16, f"bit depth {depth}"
    channels = {2: 3, 6: 4}[colour_type]
    bpp = 2 * channels
    raw = np.frombuffer(zlib.decompress(b"".join(chunks[b"IDAT"])), np.uint8)
    rows = raw.reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].copy()
        if kind == 1:
            for x in range(bpp, line.size, bpp):  # cumulative along the row
                line[x : x + bpp] += line[x - bpp : x]
        elif kind == 2 and y > 0:
            line += out[y - 1]
        else:
            assert kind in (0, 2), f"filter {kind}"
        out[y] = line
    samples = out.reshape(height, width, channels, 2).astype(np.uint16)
    return (samples[..., 0] << 8) | samples[..., 1], chunks
