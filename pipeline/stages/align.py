"""Align stage: find the photo's faces, choose which to edit and crop each as FFHQ was built.

Key: the alignment settings (face choice, detector and warp settings, output size = the
generator's resolution), the photo's bytes digest and the landmarks file's digest when
landmarks are given. Result files:

- ``faces.json``: one ``FaceRecord`` per selected face, in the order the later stages use:
  ``index`` (its position among the photo's faces, left to right), ``box``, ``score``,
  ``source`` ('dlib' | 'override'), ``landmarks`` [68, 2] in photo pixels,
  ``aligned_landmarks`` [68, 2] in aligned pixels, and ``transform``
  (``AlignTransform.to_dict()``: the float quad paste-back needs);
- ``face<k>.png``: the aligned RGB crop of the k-th selected face (output_size square).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.alignment import AlignConfig
from pipeline.alignment.transform import AlignTransform, photo_to_aligned
from pipeline.jobs import Info, Metrics
from pipeline.stages.context import StageContext
from pipeline.stages.images import save_png
from pipeline.store import KeyMaterial, Pending, Ref, Result, Store

VERSION = 1
FACES = "faces.json"


def face_image(k: int) -> str:
    """The result file of the k-th selected face's aligned crop."""
    return f"face{k}.png"


@dataclass(frozen=True)
class FaceRecord:
    """One selected face of an alignment result (see the module docstring)."""

    index: int  # among the photo's faces, left to right
    box: tuple[float, float, float, float]
    score: float | None
    source: str  # 'dlib' | 'override'
    landmarks: np.ndarray  # [68, 2] photo pixels, float64
    aligned_landmarks: np.ndarray  # [68, 2] aligned pixels, float64
    transform: AlignTransform

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "box": list(self.box),
            "score": self.score,
            "source": self.source,
            "landmarks": self.landmarks.tolist(),
            "aligned_landmarks": self.aligned_landmarks.tolist(),
            "transform": self.transform.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceRecord:
        return cls(
            index=int(data["index"]),
            box=tuple(float(v) for v in data["box"]),  # type: ignore[arg-type]
            score=None if data["score"] is None else float(data["score"]),
            source=str(data["source"]),
            landmarks=np.asarray(data["landmarks"], dtype=np.float64),
            aligned_landmarks=np.asarray(data["aligned_landmarks"], dtype=np.float64),
            transform=AlignTransform.from_dict(data["transform"]),
        )


def faces(result: Result) -> list[FaceRecord]:
    """The selected faces of an alignment result, in order."""
    return [FaceRecord.from_dict(record) for record in result.json(FACES)]


@dataclass(frozen=True)
class AlignTask:
    """Align the faces of one photo."""

    STAGE: ClassVar[str] = "align"

    photo: Path
    landmarks: Path | None  # a landmarks override file, or None: detect
    face: str | int  # 'largest' | 'all' | an index, left to right
    config: AlignConfig
    output_size: int  # the generator's resolution

    def material(self, store: Store) -> KeyMaterial:
        inputs: dict[str, Any] = {"photo": store.file_digest(self.photo)}
        if self.landmarks is not None:
            inputs["landmarks"] = store.file_digest(self.landmarks)
        return KeyMaterial(
            stage=self.STAGE,
            version=VERSION,
            params={
                "align": self.config.to_dict(),
                "face": {"choice": self.face},
                "output": {"size": int(self.output_size)},
            },
            inputs=inputs,
        )

    def needs(self) -> tuple[Ref, ...]:
        return ()

    def compute(self, ctx: StageContext, pending: Pending, label: str) -> tuple[Metrics, Info]:
        from pipeline.alignment import (
            align_face,
            face_warning,
            find_faces,
            load_landmarks_json,
            select_faces,
        )
        from pipeline.photo import load_photo

        photo = load_photo(self.photo)
        override = load_landmarks_json(self.landmarks) if self.landmarks is not None else None
        found = find_faces(photo, self.config, landmarks=override)
        chosen = select_faces(found, self.face)
        records, warnings = [], []
        for k, item in enumerate(chosen):
            aligned, transform = align_face(photo, item.landmarks, self.config, self.output_size)
            save_png(pending.file(face_image(k)), np.asarray(aligned.convert("RGB")))
            note = face_warning(item, self.output_size)
            if note:
                warnings.append(note)
            record = FaceRecord(
                index=int(item.index),
                box=tuple(float(v) for v in item.box),  # type: ignore[arg-type]
                score=float(item.score) if np.isfinite(item.score) else None,
                source=item.source,
                landmarks=np.asarray(item.landmarks, dtype=np.float64),
                aligned_landmarks=photo_to_aligned(item.landmarks, transform),
                transform=transform,
            )
            records.append(record.to_dict())
        pending.write_json(FACES, records)
        metrics = {"faces_found": len(found), "faces_selected": len(chosen)}
        return metrics, {"photo_size": list(photo.size), "warnings": warnings}
