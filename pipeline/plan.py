"""What a spec asks for, per photo and edit, in the form the stages take.

``plan_photos(spec, resolution)`` turns the validated spec into ``PhotoPlan``s: the photo's
files and face choice, its merged stage configs and its edits in dependency order (an edit
``from:`` another comes after it). An edit's key parameters are its points and mask as
written in the spec (paths of mask images replaced by their digests), so ``status`` can
compute every key without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UsageError
from pipeline.store import Store


@dataclass
class EditPlan:
    name: str
    start: str | None  # name of the edit this one starts from
    spec: Any  # the EditSpec
    drag_config: Any
    composite_config: Any
    photo: Any  # the PhotoSpec

    @property
    def key_params(self) -> dict[str, Any]:
        """The edit's points and mask as written (mask image paths become their names)."""
        data = self.spec.model_dump(
            mode="json", by_alias=True, include={"points", "space", "mask"}, warnings=False
        )
        for item in data.get("mask") or []:
            if "png" in item:
                item["png"] = "<file digest in inputs>"
        return data

    def mask_files(self) -> list[Path]:
        return [Path(item.png) for item in (self.spec.mask or []) if hasattr(item, "png")]

    def mask_digest(self, store: Store) -> str | None:
        files = self.mask_files()
        if not files:
            return None
        for path in files:
            if not path.is_file():
                raise UsageError(
                    f"edit {self.name!r} of photo {self.photo.id!r}: mask image {path} not found"
                )
        return ",".join(store.file_digest(path) for path in files)

    def face_indices(self, faces: list[dict[str, Any]]) -> list[int]:
        """The faces (indices into the alignment's records) this edit applies to: the one
        holding its photo-space points, else every face."""
        from pipeline.align.transform import AlignTransform
        from pipeline.spec.points import owning_face

        if len(faces) == 1:
            return [0]
        owner = owning_face(self.spec, [AlignTransform.from_dict(f["transform"]) for f in faces])
        return list(range(len(faces))) if owner is None else [owner]

    def resolve(self, record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, Any]:
        """(handles [K, 2], targets [K, 2], mask [S, S] float or None) in aligned pixels."""
        from pipeline.align.transform import AlignTransform
        from pipeline.spec.masks import resolve_mask
        from pipeline.spec.points import resolve_points

        transform = AlignTransform.from_dict(record["transform"])
        landmarks = np.asarray(record["aligned_landmarks"], dtype=np.float64)
        handles, targets = resolve_points(self.spec, landmarks, transform)
        mask = resolve_mask(self.spec, landmarks, transform)
        return np.asarray(handles), np.asarray(targets), mask


@dataclass
class PhotoPlan:
    photo_id: str
    path: Path
    landmarks: Path | None
    face: str | int
    resolution: int
    align_config: Any
    project_config: Any
    tune_config: Any
    edits: list[EditPlan] = field(default_factory=list)
    spec: Any = None


def _ordered(edits: list[Any], photo_id: str) -> list[Any]:
    """Edits with every ``from:`` edit before the edits that start from it."""
    by_name = {edit.name: edit for edit in edits}
    done: dict[str, Any] = {}
    visiting: set[str] = set()

    def visit(edit: Any) -> None:
        if edit.name in done:
            return
        if edit.name in visiting:
            raise UsageError(f"photo {photo_id!r}: edits {edit.name!r} chain back to themselves")
        visiting.add(edit.name)
        if edit.from_ is not None:
            if edit.from_ not in by_name:
                raise UsageError(
                    f"photo {photo_id!r}: edit {edit.name!r} starts from unknown edit "
                    f"{edit.from_!r}"
                )
            visit(by_name[edit.from_])
        visiting.discard(edit.name)
        done[edit.name] = edit

    for edit in edits:
        visit(edit)
    return list(done.values())


def plan_photos(spec: Any, resolution: int) -> list[PhotoPlan]:
    plans = []
    for photo in spec.photos:
        base = spec.settings(photo, None)
        size = base.align.resolved_output_size(resolution)
        if size != resolution:
            raise UsageError(
                f"photo {photo.id!r}: align.output_size {size} differs from the generator's "
                f"resolution {resolution}; the inversion needs crops at {resolution} px "
                "(remove align.output_size)"
            )
        plan = PhotoPlan(
            photo_id=photo.id,
            path=Path(photo.path),
            landmarks=Path(photo.landmarks) if photo.landmarks else None,
            face=photo.face,
            resolution=resolution,
            align_config=base.align,
            project_config=base.project,
            tune_config=base.tune,
            spec=photo,
        )
        for edit in _ordered(list(photo.edits), photo.id):
            settings = spec.settings(photo, edit)
            plan.edits.append(
                EditPlan(
                    name=edit.name,
                    start=edit.from_,
                    spec=edit,
                    drag_config=settings.drag,
                    composite_config=settings.composite,
                    photo=photo,
                )
            )
        plans.append(plan)
    return plans
