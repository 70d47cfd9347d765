"""Align stage: find the photo's faces, choose which to edit and crop each as FFHQ was built.

Key: the alignment settings (face choice, detector and warp settings, output size = the
generator's resolution), the photo's bytes digest and the landmarks file's digest when
landmarks are given. Result files:

- ``faces.json``: one record per selected face, in the order the later stages use:
  ``index`` (its position among the photo's faces, left to right), ``box``, ``score``,
  ``source`` ('dlib' | 'override'), ``landmarks`` [68, 2] in photo pixels,
  ``aligned_landmarks`` [68, 2] in aligned pixels, and ``transform``
  (``AlignTransform.to_dict()``: the float quad paste-back needs);
- ``face<k>.png``: the aligned RGB crop of the k-th selected face (output_size square).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.align.transform import AlignTransform, photo_to_aligned
from pipeline.stages.common import Outcome, StageContext, run_cached, save_png
from pipeline.store import KeyMaterial, Pending, Result

VERSION = 1


def material(
    ctx: StageContext,
    photo_path: Path,
    landmarks_path: Path | None,
    face: str | int,
    config: Any,
    output_size: int,
) -> KeyMaterial:
    inputs: dict[str, Any] = {"photo": ctx.store.file_digest(photo_path)}
    if landmarks_path is not None:
        inputs["landmarks"] = ctx.store.file_digest(landmarks_path)
    return KeyMaterial(
        stage="align",
        version=VERSION,
        params={
            "align": config.to_dict(),
            "face": {"choice": face},
            "output": {"size": int(output_size)},
        },
        inputs=inputs,
    )


def run(
    ctx: StageContext,
    photo_path: Path,
    landmarks_path: Path | None,
    face: str | int,
    config: Any,
    output_size: int,
) -> Outcome:
    key = material(ctx, photo_path, landmarks_path, face, config, output_size)
    return run_cached(
        ctx,
        key,
        lambda pending: _compute(pending, photo_path, landmarks_path, face, config, output_size),
    )


def _compute(
    pending: Pending,
    photo_path: Path,
    landmarks_path: Path | None,
    face: str | int,
    config: Any,
    output_size: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from pipeline.align import (
        align_face,
        face_warning,
        find_faces,
        load_landmarks_json,
        select_faces,
    )
    from pipeline.photo import load_photo

    photo = load_photo(photo_path)
    override = load_landmarks_json(landmarks_path) if landmarks_path is not None else None
    found = find_faces(photo, config, landmarks=override)
    chosen = select_faces(found, face)
    records, warnings = [], []
    for k, item in enumerate(chosen):
        aligned, transform = align_face(photo, item.landmarks, config, output_size)
        save_png(pending.file(f"face{k}.png"), np.asarray(aligned.convert("RGB")))
        note = face_warning(item, output_size)
        if note:
            warnings.append(note)
        records.append(
            {
                "index": int(item.index),
                "box": [float(v) for v in item.box],
                "score": float(item.score) if np.isfinite(item.score) else None,
                "source": item.source,
                "landmarks": item.landmarks.tolist(),
                "aligned_landmarks": photo_to_aligned(item.landmarks, transform).tolist(),
                "transform": transform.to_dict(),
            }
        )
    pending.write_json("faces.json", records)
    metrics = {"faces_found": len(found), "faces_selected": len(chosen)}
    return metrics, {"photo_size": list(photo.size), "warnings": warnings}


def faces(result: Result) -> list[dict[str, Any]]:
    """The selected faces' records (see the module docstring)."""
    return list(result.json("faces.json"))


def transform_of(record: dict[str, Any]) -> AlignTransform:
    return AlignTransform.from_dict(record["transform"])
