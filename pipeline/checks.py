"""What a photo's alignment decides about its edits, checked before any inversion.

An inversion costs minutes to most of an hour; whether an edit can run at all is known as
soon as the photo is aligned: which face a photo-space edit belongs to, whether every
point lands inside its face's aligned crop, whether its mask resolves (a mask image of the
photo's size, a mask that covers part of the face). ``edit_problems`` runs all of this for
every edit and face of a photo; the runner calls it right after the alignments, for every
photo, and starts no inversion of a photo with a problem. ``edit_notes`` says what would
run but do nothing (handles that already sit on their targets).
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError
from pipeline.plan import PhotoPlan
from pipeline.stages import edit as edit_stage
from pipeline.stages.align import FaceRecord


def edit_problems(photo: PhotoPlan, faces: list[FaceRecord]) -> list[str]:
    """Every problem of ``photo``'s edits that its alignment's ``faces`` decide (one line
    each, naming the spec line, photo, edit and face); empty when every edit can run."""
    problems: list[str] = []
    for plan in photo.edits:
        try:
            indices = plan.face_indices(faces)
        except PipelineError as exc:
            problems.append(str(exc))
            continue
        for k in indices:
            try:
                edit_stage.resolve(plan.spec, faces[k])
            except PipelineError as exc:
                problems.append(str(exc))
    return problems


def edit_notes(photo: PhotoPlan, faces: list[FaceRecord]) -> list[str]:
    """Edits that can run but will change nothing: every handle already within the drag's
    stop distance of its target (call after ``edit_problems`` found none)."""
    notes = []
    for plan in photo.edits:
        for k in plan.face_indices(faces):
            handles, targets, _ = edit_stage.resolve(plan.spec, faces[k])
            distances = np.linalg.norm(handles - targets, axis=1)  # [K] aligned px
            stop = plan.drag.stop_distance_at(photo.resolution)
            if np.all(distances <= stop):
                apart = " ".join(f"{d:.1f}" for d in distances)
                notes.append(
                    f"{plan.spec.where}: photo {photo.photo_id!r}, edit {plan.name!r} (face "
                    f"{faces[k].index}): every handle already sits on its target ({apart} "
                    f"aligned px apart, the drag stops within {stop:g}): it will change "
                    "nothing; move the targets further"
                )
    return notes
