"""The job graph of a spec: which stage results a run needs, and the jobs that make them.

``plan_photos(spec, resolution)`` turns the validated spec into ``PhotoPlan``s: the photo's
spec, its merged stage configs and its edits in dependency order (an edit ``from:`` another
comes after it). ``JobGraph`` turns them into ``Job``s (``pipeline.jobs``), per photo:

1. ``align_job(photo)``: the alignment;
2. ``face_jobs(photo, faces)``, once the alignment's faces are known: the inversion of each
   face, then per edit (in dependency order) its drag of each face it applies to and its
   composite.

How many faces a photo has (``face: all``), which face a photo-space edit belongs to and
each face's identity in the later keys (its aligned crop and geometry, so the same face is
the same work whichever selection found it) are only known from the alignment's result, so
the graph grows in two steps. ``jobs(photo)`` gives, without computing anything, every job
known now: all of them when the photo's alignment is stored, else only the alignment;
``outline(photo)`` adds what is known of the rest (``Later``: "faces: decided after
alignment").

Every command reads this one graph: ``run`` computes its jobs in order, ``run --dry-run``
and ``status`` judge them (``pipeline.execute.judge``), ``clean`` keeps their results.
"""

from __future__ import annotations

from dataclasses import dataclass

from draggan import DragConfig
from inversion import ProjectConfig, TuneConfig
from pipeline.alignment import AlignConfig
from pipeline.compositing import CompositeConfig
from pipeline.errors import UsageError
from pipeline.execute import AFTER_ALIGNMENT
from pipeline.jobs import Job
from pipeline.spec import EditSpec, PhotoSpec, Spec
from pipeline.stages import align, composite, edit, invert
from pipeline.stages.align import FaceRecord
from pipeline.stages.context import StageContext
from pipeline.store import Ref, Store


@dataclass(frozen=True)
class EditPlan:
    """One edit of a photo with its merged configs."""

    spec: EditSpec
    drag: DragConfig
    composite: CompositeConfig

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def start(self) -> str | None:
        """The name of the edit this one starts from (``from:``), or None."""
        return self.spec.from_

    def face_indices(self, faces: list[FaceRecord]) -> list[int]:
        """The faces (indices into the alignment's records) this edit applies to: the one
        holding its photo-space points, else every face."""
        from pipeline.spec.points import owning_face

        if len(faces) == 1:
            return [0]
        owner = owning_face(
            self.spec, [face.transform for face in faces], [face.index for face in faces]
        )
        return list(range(len(faces))) if owner is None else [owner]


@dataclass(frozen=True)
class PhotoPlan:
    """One photo of a spec with its merged configs and its edits in dependency order."""

    spec: PhotoSpec
    resolution: int  # the generator's, = the aligned crops' side
    align: AlignConfig
    project: ProjectConfig
    tune: TuneConfig
    edits: tuple[EditPlan, ...]

    @property
    def photo_id(self) -> str:
        return self.spec.id


def _ordered(edits: list[EditSpec], photo_id: str) -> list[EditSpec]:
    """Edits with every ``from:`` edit before the edits that start from it."""
    by_name = {e.name: e for e in edits}
    done: dict[str, EditSpec] = {}
    visiting: set[str] = set()

    def visit(item: EditSpec) -> None:
        if item.name in done:
            return
        if item.name in visiting:
            raise UsageError(f"photo {photo_id!r}: edits {item.name!r} chain back to themselves")
        visiting.add(item.name)
        if item.from_ is not None:
            if item.from_ not in by_name:
                raise UsageError(
                    f"photo {photo_id!r}: edit {item.name!r} starts from unknown edit "
                    f"{item.from_!r}"
                )
            visit(by_name[item.from_])
        visiting.discard(item.name)
        done[item.name] = item

    for item in edits:
        visit(item)
    return list(done.values())


def plan_photos(spec: Spec, resolution: int) -> list[PhotoPlan]:
    """The spec's photos with their merged configs (``UsageError`` for a crop size that is
    not the generator's resolution)."""
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
        edits = []
        for item in _ordered(list(photo.edits), photo.id):
            settings = spec.settings(photo, item)
            edits.append(EditPlan(item, settings.drag, settings.composite))
        plans.append(
            PhotoPlan(photo, resolution, base.align, base.project, base.tune, tuple(edits))
        )
    return plans


class JobGraph:
    """The jobs of a spec (see the module docstring).

    ``store`` gives the digests of the user's files (photos, landmarks, masks) for the keys
    and, for ``jobs``, the stored alignments; ``generator`` is the checkpoint's digest and
    ``resolution`` its output size.
    """

    def __init__(self, spec: Spec, store: Store, generator: str, resolution: int) -> None:
        self.spec = spec
        self.store = store
        self.generator = generator
        self.photos = plan_photos(spec, resolution)

    @classmethod
    def of(cls, spec: Spec, ctx: StageContext) -> JobGraph:
        """The graph of ``spec`` in ``ctx``'s store, for ``ctx``'s generator (its resolution
        is read from the store, or the checkpoint is loaded once to learn it)."""
        return cls(spec, ctx.store, ctx.generators.digest, ctx.generators.resolution())

    # Building the jobs ----------------------------------------------------------------------
    def align_job(self, photo: PhotoPlan) -> Job:
        task = align.AlignTask(
            photo=photo.spec.path,
            landmarks=photo.spec.landmarks,
            face=photo.spec.face,
            config=photo.align,
            output_size=photo.resolution,
        )
        pid = photo.photo_id
        return Job.make(pid, "align", pid, "faces", task, self.store)

    def face_jobs(self, photo: PhotoPlan, faces: list[FaceRecord]) -> list[Job]:
        """The jobs after the alignment, in run order: each face's inversion, then per edit
        its drags and its composite. ``faces``: the alignment's records (their crops and
        geometry are the faces' identities in the keys)."""
        pid = photo.photo_id
        align_ref = self.align_job(photo).ref
        several = len(faces) > 1
        jobs: list[Job] = []
        inverts: list[Ref] = []
        for k, face in enumerate(faces):
            label = f"{pid} face {face.index}" if several else pid
            task = invert.InvertTask(
                align_ref, k, face.crop, photo.project, photo.tune, self.generator
            )
            job = Job.make(pid, f"invert-face{k}", label, f"face {face.index}", task, self.store)
            jobs.append(job)
            inverts.append(job.ref)
        done: dict[str, dict[int, Ref]] = {}
        for plan in photo.edits:
            indices = plan.face_indices(faces)
            refs: dict[int, Ref] = {}
            for k in indices:
                start = done[plan.start].get(k) if plan.start else None
                task = edit.EditTask(
                    plan.spec, plan.drag, align_ref, k, faces[k].geometry, inverts[k], start
                )
                what = plan.name + (f" (face {faces[k].index})" if several else "")
                slot = f"edit-{plan.name}-face{k}"
                job = Job.make(pid, slot, f"{pid} {what}", what, task, self.store)
                jobs.append(job)
                refs[k] = job.ref
            done[plan.name] = refs
            task = composite.CompositeTask(
                edit=plan.name,
                photo=photo.spec.path,
                config=plan.composite,
                align=align_ref,
                faces=tuple(indices),
                inverts=tuple(inverts[k] for k in indices),
                edits=tuple(refs[k] for k in indices),
            )
            slot = f"composite-{plan.name}"
            jobs.append(Job.make(pid, slot, f"{pid} {plan.name}", plan.name, task, self.store))
        return jobs

    # Reading the whole graph without computing ------------------------------------------------
    def stored_faces(self, photo: PhotoPlan) -> list[FaceRecord] | None:
        """The faces of the photo's stored alignment (None when it is not computed)."""
        job = self.align_job(photo)
        if not self.store.exists(job.stage, job.key):
            return None
        result = self.store.lookup(job.material)
        return None if result is None else align.faces(result)

    def jobs(self, photo: PhotoPlan) -> list[Job]:
        """Every job of the photo known now, in run order, computing nothing: all of them
        when its alignment is stored, else only the alignment (the later jobs' keys follow
        the aligned faces)."""
        faces = self.stored_faces(photo)
        return [self.align_job(photo), *([] if faces is None else self.face_jobs(photo, faces))]

    def outline(self, photo: PhotoPlan) -> list[Job | Later]:
        """``jobs(photo)``, and in place of the jobs its alignment has yet to decide, what is
        known of them (``Later``): what ``status`` and ``run --dry-run`` show."""
        faces = self.stored_faces(photo)
        if faces is not None:
            return [self.align_job(photo), *self.face_jobs(photo, faces)]
        pid, choice = photo.photo_id, photo.spec.face
        why = "known once the photo is aligned: the keys follow the aligned faces"
        if choice == "all":
            faces_are = "faces: decided after alignment"
            rows = [Later(pid, "invert", faces_are, why)]
            rows += [
                Later(pid, stage, f"{plan.name} ({faces_are})", why)
                for plan in photo.edits
                for stage in STEPS
            ]
        else:
            face = f"face {choice}" if isinstance(choice, int) else "the largest face"
            rows = [Later(pid, "invert", face, why)]
            rows += [Later(pid, stage, plan.name, why) for plan in photo.edits for stage in STEPS]
        return [self.align_job(photo), *rows]

    def all_jobs(self) -> list[Job]:
        """Every job of the spec known now, photo by photo, in run order."""
        return [job for photo in self.photos for job in self.jobs(photo)]


STEPS = ("edit", "composite")  # the stages each edit adds after the inversions


@dataclass(frozen=True)
class Later:
    """Work the photo's alignment has yet to decide (which faces, hence which keys)."""

    photo: str
    stage: str
    what: str
    why: str
    state: str = AFTER_ALIGNMENT  # as a status (``pipeline.status``)
