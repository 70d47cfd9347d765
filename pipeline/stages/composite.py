"""Composite stage: every face's edit put back into the photo, written in its own format.

Key: the composite config, the photo's digest, the alignment's key and, per face, the keys
of the inversion (reconstruction) and of the edit. Result files: ``output<.ext>`` (the
photo's own format and extension, or PNG with ``output_format: png``); metrics: the fraction
of photo pixels the edit touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from pipeline.compositing import CompositeConfig
from pipeline.jobs import Info, Metrics
from pipeline.stages.align import faces as align_faces
from pipeline.stages.context import StageContext
from pipeline.stages.edit import EDITED, MASK
from pipeline.stages.images import load_png
from pipeline.stages.invert import RECONSTRUCTION
from pipeline.store import KeyMaterial, Pending, Ref, Result, Store

VERSION = 1

_DEFAULT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp"}


def output_extension(photo_path: Path, fmt: str, config: CompositeConfig) -> str:
    """The output file's extension: the photo's own when it names its format."""
    fmt = "PNG" if config.output_format == "png" else fmt.upper()
    suffix = Path(photo_path).suffix
    if Image.registered_extensions().get(suffix.lower()) == fmt:
        return suffix.lower()
    if fmt in _DEFAULT_EXTENSIONS:
        return _DEFAULT_EXTENSIONS[fmt]
    for ext, name in Image.registered_extensions().items():
        if name == fmt:
            return ext
    return ".png"


def output_file(result: Result) -> Path:
    """The composite result's output photo."""
    names = [name for name in result.manifest["files"] if name.startswith("output")]
    return result.file(names[0])


@dataclass(frozen=True)
class CompositeTask:
    """Put the edits of ``faces`` (indices into the alignment's faces) back into the photo."""

    STAGE: ClassVar[str] = "composite"

    edit: str  # the edit's name (names the user-facing files; not part of the key)
    photo: Path
    config: CompositeConfig
    align: Ref
    faces: tuple[int, ...]
    inverts: tuple[Ref, ...]  # per face: its inversion (the reconstruction)
    edits: tuple[Ref, ...]  # per face: the edit's result

    def material(self, store: Store) -> KeyMaterial:
        return KeyMaterial(
            stage=self.STAGE,
            version=VERSION,
            params={"composite": self.config.to_dict(), "faces": {"edited": list(self.faces)}},
            inputs={
                "photo": store.file_digest(self.photo),
                "align": self.align.key,
                "invert": [ref.key for ref in self.inverts],
                "edits": [ref.key for ref in self.edits],
            },
        )

    def needs(self) -> tuple[Ref, ...]:
        return (self.align, *self.inverts, *self.edits)

    def compute(self, ctx: StageContext, pending: Pending, label: str) -> tuple[Metrics, Info]:
        from pipeline.compositing import FaceEdit, composite_faces
        from pipeline.photo import load_photo
        from pipeline.photo_output import save_output, working_rgb

        photo = load_photo(self.photo)
        everyone = align_faces(ctx.store.result(self.align))
        edits = []
        for k, invert_ref, edit_ref in zip(self.faces, self.inverts, self.edits, strict=True):
            record, invert = everyone[k], ctx.store.result(invert_ref)
            edit = ctx.store.result(edit_ref)
            mask = None
            if edit.has(MASK):
                mask = load_png(edit.file(MASK))[:, :, 0].astype(np.float32) / 255.0
            edits.append(
                FaceEdit(
                    transform=record.transform,
                    reconstruction=load_png(invert.file(RECONSTRUCTION)),
                    edited=load_png(edit.file(EDITED)),
                    landmarks=record.aligned_landmarks,
                    user_mask=mask,
                    name=f"face {record.index}",
                )
            )
        result = composite_faces(working_rgb(photo), edits, self.config)
        ext = output_extension(self.photo, photo.format, self.config)
        save_output(photo, result, pending.file(f"output{ext}"), self.config)
        touched = float(np.mean(result.changed))
        return {"touched_fraction": round(touched, 6)}, {"format": photo.format, "mode": photo.mode}
