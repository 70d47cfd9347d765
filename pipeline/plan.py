"""The job graph of a spec: which stage results a run needs, and the jobs that make them.

``plan_photos(spec, resolution)`` turns the validated spec into ``PhotoPlan``s: the photo's
spec, its merged stage configs and its edits in dependency order (an edit ``from:`` another
comes after it). ``JobGraph`` turns them into ``Job``s (``pipeline.jobs``), per photo:

1. ``align_job(photo)``: the alignment;
2. ``face_jobs(photo, faces)``, once the alignment's faces are known: the inversion of each
   face, then per edit (in dependency order) its drag of each face it applies to and its
   composite.

How many faces a photo has (``face: all``) and which face a photo-space edit belongs to
are only known from the alignment's result, so the graph grows in two steps. ``jobs(photo)``
gives the whole list without computing anything: with the stored alignment's faces when
there is one, else one face (or, for ``face: all``, as many as the last run had).

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
        owner = owning_face(self.spec, [face.transform for face in faces])
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

    def face_jobs(
        self, photo: PhotoPlan, faces: list[FaceRecord] | None, count: int | None = None
    ) -> list[Job]:
        """The jobs after the alignment, in run order: each face's inversion, then per edit
        its drags and its composite. ``faces``: the alignment's records; None when it is not
        computed yet (then ``count`` faces, each edit applied to all of them)."""
        pid = photo.photo_id
        align_ref = self.align_job(photo).ref
        count = len(faces) if faces is not None else max(1, count or 1)
        several = count > 1
        names = [faces[k].index if faces is not None else k for k in range(count)]
        jobs: list[Job] = []
        inverts: list[Ref] = []
        for k in range(count):
            label = f"{pid} face {names[k]}" if several else pid
            task = invert.InvertTask(align_ref, k, photo.project, photo.tune, self.generator)
            job = Job.make(pid, f"invert-face{k}", label, f"face {names[k]}", task, self.store)
            jobs.append(job)
            inverts.append(job.ref)
        done: dict[str, dict[int, Ref]] = {}
        for plan in photo.edits:
            indices = plan.face_indices(faces) if faces is not None else list(range(count))
            refs: dict[int, Ref] = {}
            for k in indices:
                start = done[plan.start].get(k) if plan.start else None
                task = edit.EditTask(plan.spec, plan.drag, align_ref, k, inverts[k], start)
                what = plan.name + (f" (face {names[k]})" if several else "")
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
        """Every job of the photo, in run order, computing nothing (see the module doc)."""
        faces = self.stored_faces(photo)
        count = None
        if faces is None and photo.spec.face == "all":
            slots = self.store.ref_slots(photo.photo_id)
            count = sum(slot.startswith("invert-face") for slot in slots)
        return [self.align_job(photo), *self.face_jobs(photo, faces, count)]

    def all_jobs(self) -> list[Job]:
        """Every job of the spec, photo by photo, in run order."""
        return [job for photo in self.photos for job in self.jobs(photo)]
