"""Composite configuration: how an edited face is blended back and how the output is written.

Lengths are fractions of the aligned image's side (``output_size``), so they scale with the
face: FFHQ alignment makes the face occupy the same part of every aligned crop, and the
inverse warp carries them into photo pixels. The fields are the spec's ``composite:`` section.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pipeline.errors import UsageError

TRANSFERS = ("displace", "residual", "lowpass", "paste")
USER_MASK_MODES = ("limit", "union", "ignore")
OUTPUT_FORMATS = ("same", "png")


class CompositeConfigError(UsageError, ValueError):
    """A bad ``composite:`` setting (a ValueError too, so pydantic validators report it)."""


@dataclass(frozen=True)
class CompositeConfig:
    """Blend mask, colour/detail transfer and output-file settings (documented defaults)."""

    # How the edit reaches the photo inside the mask (docs/composite.md; BENCHMARKS.md has
    # the measurements behind the default):
    #   'displace': the photo's own pixels moved by the edit's motion (optical flow between
    #               reconstruction and edited image), plus what the motion does not explain
    #   'residual': photo + (edited - reconstruction): the change added to the photo's pixels
    #   'lowpass':  edited + blur(photo - reconstruction): the edit, colour-matched locally
    #   'paste':    the edited image as is (STIT / facexlib style)
    transfer: str = "displace"
    # Blur (sigma, fraction of the aligned side) of the colour correction of 'lowpass'.
    lowpass_sigma: float = 0.02
    # Change detection: per-pixel max |edited - reconstruction| over channels (0..255 levels),
    # smoothed by a gaussian of this sigma, counts as changed above diff_threshold.
    diff_sigma: float = 0.004
    diff_threshold: float = 4.0
    # The changed region is made one piece: gaps narrower than twice this between changed
    # areas are closed and enclosed holes filled, so a feature that moves as a whole (where
    # flat or edge-parallel parts change less than diff_threshold) is moved in one piece
    # instead of in torn patches.
    close: float = 0.04
    # The changed region is grown by this much before feathering ...
    dilate: float = 0.04
    # ... and the blend weight ramps from 0 at the region's edge to 1 this far inside it, so
    # everything that changed is blended at full weight when dilate >= feather.
    feather: float = 0.03
    # The region is limited to the convex hull of the 68 landmarks grown by this much.
    face_grow: float = 0.08
    # The user's drag mask (1 = may move): 'limit' keeps the blend inside it (grown by
    # `dilate`), 'union' adds it to the changed region, 'ignore' does not use it.
    user_mask: str = "limit"
    # Output file: 'same' format as the input, or 'png' (lossless) whatever the input was.
    output_format: str = "same"
    # JPEG output quality: 'keep' reuses the input's quantisation tables and chroma
    # subsampling (untouched areas survive re-encoding almost unchanged), or 1..100.
    jpeg_quality: str | int = "keep"

    def __post_init__(self) -> None:
        _choice("transfer", self.transfer, TRANSFERS)
        _choice("user_mask", self.user_mask, USER_MASK_MODES)
        _choice("output_format", self.output_format, OUTPUT_FORMATS)
        for name in ("lowpass_sigma", "diff_sigma", "close", "dilate", "feather", "face_grow"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 0.5:
                raise CompositeConfigError(
                    f"composite.{name} must be a number in 0..0.5 (a fraction of the aligned "
                    f"image side), got {value!r}"
                )
        if not isinstance(self.diff_threshold, (int, float)) or not (
            0.0 < float(self.diff_threshold) <= 255.0
        ):
            raise CompositeConfigError(
                f"composite.diff_threshold must be in (0, 255] grey levels, "
                f"got {self.diff_threshold!r}"
            )
        quality = self.jpeg_quality
        if quality != "keep" and not (
            isinstance(quality, int) and not isinstance(quality, bool) and 1 <= quality <= 100
        ):
            raise CompositeConfigError(
                f"composite.jpeg_quality must be 'keep' or an integer 1..100, got {quality!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompositeConfig:
        """Inverse of ``to_dict``; unknown keys raise ``CompositeConfigError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CompositeConfigError(f"unknown composite config keys: {', '.join(unknown)}")
        return cls(**data)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CompositeConfigError(
            f"composite.{name} must be one of {', '.join(allowed)}, got {value!r}"
        )
