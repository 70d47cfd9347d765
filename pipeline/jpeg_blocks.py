"""JPEG output that keeps every 8x8 block the edit did not touch, coefficient for coefficient.

Re-encoding a decoded JPEG changes all of it (14% of a photo's pixels moved by up to 20
levels for an edit that changed nothing). Instead the input's quantised DCT coefficients are
read (``jpeglib``, libjpeg-turbo 2.1), the edit's change is added only to the blocks it
touches, and the same coefficients, quantisation tables and sampling factors are written
back (Huffman tables optimised, baseline):

- change: ``after - before`` in decoded RGB (zero where the composite did not write),
  turned back from upright to the file's own grid (the file keeps its EXIF orientation),
  converted to the JPEG's components (JFIF YCbCr, or luma for a greyscale JPEG) and
  averaged down to each component's sampling (4:2:0: one chroma sample per 2x2 pixels, so
  a touched pixel dirties its luma block and the chroma block of its 16x16 MCU).
- a touched block gets ``coefficients + round(DCT(change) / Q)``: its untouched pixels move
  only by the rounding of the change, never by a second quantisation of the whole block;
  a block whose change rounds to nothing stays as it was. Untouched blocks are copied.

Decoded with the same decoder, every pixel whose luma block and chroma samples (and, with
the decoder's smooth chroma upsampling, the chroma samples beside them) are untouched is the
input's pixel bit for bit; a no-op edit gives the input's pixels everywhere.

Inputs whose components are not YCbCr or grey (CMYK, YCCK, Adobe RGB JPEGs) raise
``NotBlockEditable``; the caller then re-encodes the whole image.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import fft

from pipeline.orientation import stored

LIBJPEG = "turbo210"  # jpeglib's libjpeg-turbo 2.1 build (reads arithmetic coding too)

_RGB_TO_YCBCR = np.array(  # JFIF (ITU-R BT.601 full range), the transform JPEG decoders invert
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_SOI, _SOS, _COM = 0xD8, 0xDA, 0xFE
_APP0, _APP15 = 0xE0, 0xEF


class NotBlockEditable(Exception):
    """The JPEG's coefficients cannot be edited in place (unsupported colour space or coding)."""


@dataclass(frozen=True)
class BlockEdit:
    """What the coefficient edit rewrote."""

    blocks_rewritten: int  # 8x8 blocks over all components whose coefficients were recomputed
    blocks_total: int


def edit_blocks(
    source: Path,
    before: np.ndarray,  # [H, W, 3] decoded RGB levels the composite started from, upright
    after: np.ndarray,  # [H, W, 3] the composited RGB levels, upright
    touched: np.ndarray,  # [H, W] bool, upright: pixels the composite wrote
    orientation: int,  # the file's EXIF orientation (1-8): the change is turned back to it
    meta: bytes,  # a JPEG whose APPn/COM segments (EXIF, ICC, JFIF, comment) the output gets
) -> tuple[bytes, BlockEdit]:
    """The bytes of ``source`` with ``after - before`` added to the blocks ``touched`` reaches.

    Only the MCU-aligned bounding box of the touched pixels is transformed.
    """
    import jpeglib

    before, after, touched = (stored(a, orientation) for a in (before, after, touched))
    with jpeglib.version(LIBJPEG), tempfile.TemporaryDirectory() as folder:
        try:
            jpeg = jpeglib.read_dct(str(source))
            jpeg.load()
        except OSError as exc:
            raise NotBlockEditable(f"its coefficients cannot be read ({exc})") from None
        space = str(jpeg.jpeg_color_space)
        if space.endswith("YCbCr") and jpeg.num_components == 3:
            matrix = _RGB_TO_YCBCR  # [3, 3]
        elif space.endswith("GRAYSCALE") and jpeg.num_components == 1:
            matrix = _RGB_TO_YCBCR[:1]  # [1, 3]: luma
        else:
            raise NotBlockEditable(f"its colour space is {space.split('.')[-1]}")
        if touched.shape != (jpeg.height, jpeg.width):
            raise NotBlockEditable(
                f"its pixel grid is {jpeg.width}x{jpeg.height}, the photo's "
                f"{touched.shape[1]}x{touched.shape[0]}"
            )
        names = ("Y", "Cb", "Cr")[: jpeg.num_components]
        sampling = np.asarray(jpeg.samp_factor, dtype=int).reshape(-1, 2)  # (v, h) per component
        window = _mcu_window(touched, 8 * sampling.max(axis=0))
        rewritten = total = 0
        if window is not None:
            (r0, r1), (c0, c1) = window
            height, width = touched.shape
            inside = (slice(r0, min(r1, height)), slice(c0, min(c1, width)))
            change = (after[inside].astype(np.float64) - before[inside]) * touched[inside][
                :, :, None
            ]  # [h, w, 3]: zero where not touched
            pad = ((0, r1 - r0 - change.shape[0]), (0, c1 - c0 - change.shape[1]))
            planes = np.pad(change @ matrix.T, pad + ((0, 0),), mode="edge")  # like libjpeg
            mask = np.pad(touched[inside], pad)
        for index, name in enumerate(names):
            coefficients = getattr(jpeg, name)  # [hb, wb, 8, 8] int16, natural order
            total += coefficients.shape[0] * coefficients.shape[1]
            if window is None:
                continue
            table = np.asarray(jpeg.qt[jpeg.quant_tbl_no[index]], dtype=np.float64)  # [8, 8]
            factor = sampling.max(axis=0) // sampling[index]  # (v, h) pixels per sample
            origin = (r0 // (8 * factor[0]), c0 // (8 * factor[1]))  # first block
            count = _add_change(coefficients, origin, planes[:, :, index], mask, factor, table)
            rewritten += count
        jpeg.markers = []  # ours come from ``meta``
        written = Path(folder) / "out.jpg"
        jpeg.write_dct(str(written), flags=["+OPTIMIZE_CODING"])
        data = written.read_bytes()
    ids = _component_ids(Path(source).read_bytes())
    return _with_segments(data, meta, ids), BlockEdit(rewritten, total)


def _mcu_window(touched: np.ndarray, mcu: np.ndarray):
    """((r0, r1), (c0, c1)): the touched pixels' bounding box grown to whole MCUs, or None."""
    rows = np.flatnonzero(touched.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(touched.any(axis=0))
    mh, mw = int(mcu[0]), int(mcu[1])
    return (
        (rows[0] // mh * mh, (rows[-1] // mh + 1) * mh),
        (cols[0] // mw * mw, (cols[-1] // mw + 1) * mw),
    )


def _add_change(
    coefficients: np.ndarray,  # [hb, wb, 8, 8] int16, changed in place
    origin: tuple[int, int],  # block (row, column) of the window's top-left corner
    plane: np.ndarray,  # [h, w] float64: the change in this component, full resolution
    mask: np.ndarray,  # [h, w] bool: touched pixels
    factor: np.ndarray,  # (v, h) full-resolution pixels per sample of this component
    table: np.ndarray,  # [8, 8] quantisation table, natural order
) -> int:  # blocks rewritten
    fv, fh = int(factor[0]), int(factor[1])
    height, width = plane.shape
    if fv > 1 or fh > 1:  # the encoder's downsampling: the mean of each sample's pixels
        plane = plane.reshape(height // fv, fv, width // fh, fh).mean(axis=(1, 3))
        mask = mask.reshape(height // fv, fv, width // fh, fh).any(axis=(1, 3))
    bh, bw = plane.shape[0] // 8, plane.shape[1] // 8
    # Blocks past the component's last one are libjpeg's dummy MCU padding: not stored.
    bh = min(bh, coefficients.shape[0] - origin[0])
    bw = min(bw, coefficients.shape[1] - origin[1])
    blocks = plane[: 8 * bh, : 8 * bw].reshape(bh, 8, bw, 8).swapaxes(1, 2)  # [bh, bw, 8, 8]
    dirty = mask[: 8 * bh, : 8 * bw].reshape(bh, 8, bw, 8).any(axis=(1, 3))  # [bh, bw]
    if not dirty.any():
        return 0
    step = np.rint(fft.dctn(blocks[dirty], axes=(1, 2), norm="ortho") / table)  # JPEG's FDCT
    region = coefficients[origin[0] : origin[0] + bh, origin[1] : origin[1] + bw]
    new = region[dirty].astype(np.int32) + step.astype(np.int32)  # [n, 8, 8]
    # Baseline 8-bit limits: DC within the level-shifted sample range, AC within 10 bits.
    new[:, 0, 0] = np.clip(new[:, 0, 0], -1024 // int(table[0, 0]), 1023 // int(table[0, 0]))
    region[dirty] = np.clip(new, -1023, 1023).astype(np.int16)
    return int(dirty.sum())


def _segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """Marker segments between SOI and the first SOS as (marker, bytes); the SOS offset."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream")
    position, found = 2, []
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ValueError(f"no marker at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == _SOS:
            return found, position
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        found.append((marker, data[position : position + 2 + length]))
        position += 2 + length
    raise ValueError("no start of scan")


def _is_frame(marker: int) -> bool:
    """SOF0-SOF15 (0xC4 DHT, 0xC8 JPG and 0xCC DAC are not frame headers)."""
    return 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)


def _component_ids(data: bytes) -> list[int]:
    """The component identifiers of a JPEG's frame header, in order."""
    segments, _ = _segments(data)
    frame = next(segment for marker, segment in segments if _is_frame(marker))
    count = frame[9]
    return [frame[10 + 3 * i] for i in range(count)]


def _with_segments(data: bytes, meta: bytes, ids: list[int]) -> bytes:
    """``data`` with its APPn/COM segments replaced by those of ``meta`` and its component
    identifiers (frame header and scan header) replaced by ``ids`` (libjpeg numbers them
    its own way; the input's are kept)."""

    def is_meta(marker: int) -> bool:
        return _APP0 <= marker <= _APP15 or marker == _COM

    own, sos = _segments(data)
    theirs, _ = _segments(meta)
    kept = [segment for marker, segment in theirs if is_meta(marker)]
    tables = [segment for marker, segment in own if not is_meta(marker)]
    mapping = dict(zip(_component_ids(data), ids, strict=True))
    for index, segment in enumerate(tables):
        if _is_frame(segment[1]):
            frame = bytearray(segment)
            for i in range(frame[9]):
                frame[10 + 3 * i] = mapping[frame[10 + 3 * i]]
            tables[index] = bytes(frame)
    scan = bytearray(data[sos:])  # one interleaved baseline scan: its header first
    for i in range(scan[4]):
        scan[5 + 2 * i] = mapping[scan[5 + 2 * i]]
    return b"\xff\xd8" + b"".join(kept) + b"".join(tables) + bytes(scan)


def metadata_carrier(mode: str, params: dict) -> bytes:
    """A tiny JPEG written by PIL with ``params`` (exif, icc_profile, dpi, comment): the same
    metadata segments a full PIL save would write, for ``edit_blocks``'s output."""
    stream = io.BytesIO()
    Image.new(mode, (8, 8)).save(stream, format="JPEG", **params)
    return stream.getvalue()
