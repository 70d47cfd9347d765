"""Composite stage: every face's edit put back into the photo, written in its own format.

Key: the composite config, the photo's digest, the alignment's key and, per face, the keys
of the inversion (reconstruction) and of the edit. Result files: ``output<.ext>`` (the
photo's own format and extension, or PNG with ``output_format: png``); metrics: the fraction
of photo pixels the edit touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.stages.align import faces as align_faces
from pipeline.stages.align import transform_of
from pipeline.stages.common import Outcome, StageContext, load_png, run_cached
from pipeline.store import KeyMaterial, Pending, Result

VERSION = 1

_DEFAULT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp"}


def material(
    ctx: StageContext,
    photo_path: Path,
    align_key: str,
    faces: list[int],
    invert_keys: list[str],
    edit_keys: list[str],
    config: Any,
) -> KeyMaterial:
    return KeyMaterial(
        stage="composite",
        version=VERSION,
        params={"composite": config.to_dict(), "faces": {"edited": list(faces)}},
        inputs={
            "photo": ctx.store.file_digest(photo_path),
            "align": align_key,
            "invert": list(invert_keys),
            "edits": list(edit_keys),
        },
    )


def output_extension(photo_path: Path, fmt: str, config: Any) -> str:
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


def run(
    ctx: StageContext,
    photo_path: Path,
    align: Result,
    faces: list[int],
    inverts: list[Result],
    edits: list[Result],
    config: Any,
) -> Outcome:
    """Composite the edits of faces ``faces`` (indices into the alignment's faces)."""
    key = material(
        ctx, photo_path, align.key, faces, [r.key for r in inverts], [r.key for r in edits], config
    )
    return run_cached(
        ctx,
        key,
        lambda pending: _compute(pending, photo_path, align, faces, inverts, edits, config),
    )


def output_file(result: Result) -> Path:
    names = [name for name in result.manifest["files"] if name.startswith("output")]
    return result.file(names[0])


def _compute(
    pending: Pending,
    photo_path: Path,
    align: Result,
    face_ids: list[int],
    inverts: list[Result],
    edits: list[Result],
    config: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from pipeline.composite import FaceEdit, composite_faces
    from pipeline.photo import load_photo
    from pipeline.photo_output import save_output, working_rgb

    photo = load_photo(photo_path)
    everyone = align_faces(align)
    records = [everyone[k] for k in face_ids]
    faces = []
    for record, invert, edit in zip(records, inverts, edits, strict=True):
        mask = None
        if edit.has("mask.png"):
            mask = load_png(edit.file("mask.png"))[:, :, 0].astype(np.float32) / 255.0
        faces.append(
            FaceEdit(
                transform=transform_of(record),
                reconstruction=load_png(invert.file("reconstruction.png")),
                edited=load_png(edit.file("edited.png")),
                landmarks=np.asarray(record["aligned_landmarks"], dtype=np.float64),
                user_mask=mask,
                name=f"face {record['index']}",
            )
        )
    result = composite_faces(working_rgb(photo), faces, config)
    ext = output_extension(photo_path, photo.format, config)
    save_output(photo, result, pending.file(f"output{ext}"), config)
    touched = float(np.mean(result.changed))
    return {"touched_fraction": round(touched, 6)}, {"format": photo.format, "mode": photo.mode}
