"""What a photo's alignment decides about its edits, checked before any inversion.

An inversion costs minutes to most of an hour; whether an edit can run at all is known as
soon as the photo is aligned: which face a photo-space edit belongs to, whether every
point lands inside its face's aligned crop, whether its mask resolves (a mask image of the
photo's size, a mask that covers part of the face). ``edit_problems`` runs all of this for
every edit and face of a photo; the runner calls it right after the alignments, for every
photo, and starts no inversion of a photo with a problem.
"""

from __future__ import annotations

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
