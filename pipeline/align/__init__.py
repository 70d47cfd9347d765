"""Align stage: FFHQ face alignment and its transform record."""

from pipeline.align.transform import AlignTransform, aligned_to_photo, photo_to_aligned

__all__ = ["AlignTransform", "aligned_to_photo", "photo_to_aligned"]
