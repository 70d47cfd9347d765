"""``EditorSession``: what the editor's page can ask of one spec, done with the pipeline's jobs.

Every piece of work is a job of the spec's ``JobGraph`` (``pipeline.plan``), run with
``pipeline.execute.run_job`` on the spec's store, exactly as ``dragpipe run`` runs it: the
page's alignments, inversions, drags and composites are stored results that a later
``dragpipe run`` finds (and results a run made are found by the page).

The page's unsaved edits become a spec text first: the file's current text with the page's
edit chain and face choice spliced in (``pipeline.editor.spec_text``), loaded with the
ordinary spec loader. That text, with the painted masks' final paths, is what "save"
writes, so after a save ``dragpipe run SPEC`` has the same jobs with the same keys as the
page had, and gives the page's result byte for byte.

Faces. The photo's faces are listed from an alignment with ``face: all`` (its own stored
result); the spec's ``face:`` choice says which are selected. Choosing a face the choice
does not select sets ``face: <index>`` for the photo (written on save); with ``face: all``
every face stays selected and the edit belongs to the face its photo points are on.

Stop. A drag stopped at step k is finished as the same edit with ``drag: {max_steps: k}``:
the stage keeps its loop state at step k, the editor moves it to the capped edit's pending
result and computes that, which resumes at step k (one forward, no step done twice). The
edit then carries ``max_steps: k`` in the spec, so a run reproduces it.

The store is written by the editor's one worker thread, and only while it holds the
workdir's run lock, so a ``dragpipe run`` of the same workdir waits for the current job, and
a job of the page fails with a clear message while a run holds the lock.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from draggan.atomic_write import write_bytes_atomic
from pipeline.editor import spec_text
from pipeline.editor.forms import BadRequest, ChainIn, EditIn, FaceIn, page_edit, spec_edit
from pipeline.editor.work import EventDisplay, Stopped, Work, Worker
from pipeline.errors import PipelineError, UsageError
from pipeline.execute import CACHED, Outcome, judge, run_job
from pipeline.jobs import Job
from pipeline.plan import JobGraph, PhotoPlan
from pipeline.spec import Spec, load_spec_text
from pipeline.spec.yaml_loader import load_yaml
from pipeline.stages import align as align_stage
from pipeline.stages.align import FaceRecord
from pipeline.stages.context import StageContext
from pipeline.store import RunLock

DISPLAY_SIDE = 1600  # photos and results are shown as JPEG copies at most this long
MAX_MASK_SIDE = 4096
MAX_RESTARTS = 4  # re-keyings of a drag after stops, per request


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(image: np.ndarray) -> str:
    """An [H, W, C] uint8 image as a PNG data URL."""
    return "data:image/png;base64," + base64.b64encode(_png_bytes(image)).decode("ascii")


def _jpeg_copy(image: Image.Image) -> bytes:
    image = image.convert("RGB")
    image.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class EditorSession:
    """The editor's operations on the spec at ``spec_path`` (see the module docstring).

    ``submit_*`` queue work and return its ``Work`` at once (``FaceBusy`` when the face has
    a job); ``serve``d files are the only files the server hands out.
    """

    def __init__(
        self, spec_path: Path, workdir: Path, device: str = "auto", checkpoint_every: int = 10
    ) -> None:
        from pipeline.runner import resolve_device

        self.spec_path = Path(spec_path).resolve()
        self.workdir = Path(workdir).resolve()
        self.device = resolve_device(device)
        self.checkpoint_every = checkpoint_every
        self.worker = Worker()
        self.masks_dir = Path(tempfile.mkdtemp(prefix="dragpipe-edit-"))
        self._served: dict[str, tuple[str, Path | bytes]] = {}
        self._served_lock = threading.Lock()
        self._ctx: StageContext | None = None

    def close(self) -> None:
        self.worker.close()
        self.worker.join(timeout=30)
        shutil.rmtree(self.masks_dir, ignore_errors=True)

    # The spec ---------------------------------------------------------------------------------
    def read_text(self) -> str:
        try:
            return self.spec_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the spec {self.spec_path}: {exc}") from None

    def load(self, text: str) -> Spec:
        return load_spec_text(text, self.spec_path)

    def summary(self) -> dict[str, Any]:
        """The spec's photos and their edits, for the page's choosers."""
        from pipeline.alignment.landmark_names import landmark_name

        spec = self.load(self.read_text())
        return {
            "spec": str(self.spec_path),
            "photos": [
                {
                    "id": photo.id,
                    "file": photo.path.name,
                    "face": photo.face,
                    "edits": [edit.name for edit in photo.edits],
                }
                for photo in spec.photos
            ],
            "landmarks": [landmark_name(i) for i in range(68)],
        }

    # Files the page may fetch -------------------------------------------------------------------
    def serve(self, content: Path | bytes, content_type: str) -> str:
        """The URL path under which the page may fetch ``content`` (a file read when asked,
        or bytes); nothing else is ever served from disk."""
        if isinstance(content, bytes):
            ident = hashlib.sha256(content).hexdigest()[:32]
        else:
            ident = hashlib.sha256(f"file:{Path(content).resolve()}".encode()).hexdigest()[:32]
        with self._served_lock:
            self._served[ident] = (content_type, content)
        return f"/api/files/{ident}"

    def served(self, ident: str) -> tuple[str, bytes] | None:
        """(content type, bytes) of a served item, or None."""
        with self._served_lock:
            item = self._served.get(ident)
        if item is None:
            return None
        content_type, content = item
        if isinstance(content, bytes):
            return content_type, content
        try:
            return content_type, content.read_bytes()
        except OSError:
            return None

    def _serve_result_file(self, path: Path) -> str:
        kind = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg"}
        return self.serve(path, kind.get(path.suffix.lower(), "application/octet-stream"))

    def _serve_display(self, path: Path) -> dict[str, Any]:
        """A JPEG copy of a photo (orientation applied) and its scale, plus the file itself."""
        from pipeline.photo import load_photo

        photo = load_photo(path)
        image = Image.fromarray(photo.rgb)
        data = _jpeg_copy(image)
        with Image.open(io.BytesIO(data)) as shown:
            width = shown.width
        return {
            "url": self.serve(data, "image/jpeg"),
            "width": photo.rgb.shape[1],
            "height": photo.rgb.shape[0],
            "scale": width / photo.rgb.shape[1],
        }

    # Painted masks ----------------------------------------------------------------------------
    def upload_mask(self, data: bytes) -> str:
        """Keep a painted mask (a square PNG, white = may move) for this session; its id."""
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "PNG":
                    raise BadRequest(f"a painted mask must be a PNG, got {image.format}")
                width, height = image.size
                if width != height or not 1 <= width <= MAX_MASK_SIDE:
                    raise BadRequest(
                        f"a painted mask must be square, at most {MAX_MASK_SIDE} px, got "
                        f"{width}x{height}"
                    )
                grey = np.asarray(image.convert("L"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BadRequest(f"the painted mask is not a readable PNG ({exc})") from None
        if not np.any(grey > 0):
            raise BadRequest("the painted mask is empty: paint where the face may move")
        png = _png_bytes(np.ascontiguousarray(grey))
        ident = hashlib.sha256(png).hexdigest()
        path = self.masks_dir / f"{ident}.png"
        if not path.exists():
            write_bytes_atomic(path, png)
        return ident

    def _painted(self, ident: str) -> Path:
        path = self.masks_dir / f"{ident}.png"
        if not path.is_file():
            raise BadRequest(f"no painted mask {ident[:12]}... in this session: paint it again")
        return path

    # Submitting work ----------------------------------------------------------------------------
    def submit_open(self, photo: str) -> Work:
        return self.worker.submit("open", None, lambda work: self._open(work, photo))

    def submit_invert(self, request: FaceIn) -> Work:
        face = (request.photo, request.face)
        return self.worker.submit("invert", face, lambda work: self._invert(work, request))

    def submit_drag(self, request: ChainIn) -> Work:
        face = (request.photo, request.face)
        return self.worker.submit("drag", face, lambda work: self._drag(work, request))

    def submit_save(self, request: ChainIn) -> Work:
        face = (request.photo, request.face)
        return self.worker.submit("save", face, lambda work: self._save(work, request))

    # Running jobs (worker thread) -----------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with RunLock(self.workdir, timeout=0):
            yield

    def _context(self, work: Work, spec: Spec) -> StageContext:
        generator = Path(spec.generator)
        if self._ctx is None or self._ctx.generators.path != generator:
            self._ctx = StageContext.open(
                self.workdir,
                generator,
                self.device,
                EventDisplay(work, True),
                self.checkpoint_every,
            )
            ctx = self._ctx
            ctx.store.report = lambda message: ctx.display.warn(message)  # the current job's
        self._ctx.display = EventDisplay(work, True)
        self._ctx.watch = None
        return self._ctx

    def _graph(
        self, work: Work, text: str, photo_id: str
    ) -> tuple[StageContext, JobGraph, PhotoPlan]:
        spec = self.load(text)
        ctx = self._context(work, spec)
        graph = JobGraph(spec, ctx.store, ctx.generators.digest, ctx.generators.resolution())
        for plan in graph.photos:
            if plan.photo_id == photo_id:
                return ctx, graph, plan
        raise UsageError(f"{self.spec_path} has no photo {photo_id!r} (was it renamed?)")

    def _run(self, ctx: StageContext, work: Work, job: Job) -> Outcome:
        """``run_job`` as ``dragpipe run`` does it, with the page told what happens."""
        status = judge(ctx.store, job)
        work.emit(
            "job",
            stage=job.stage,
            label=job.label,
            state="cached" if status.state == CACHED else "computing",
            why=status.why,
        )
        ctx.display = EventDisplay(work, stoppable=job.stage != "edit")
        return run_job(ctx, job)

    def _faces(
        self, ctx: StageContext, work: Work, graph: JobGraph, plan: PhotoPlan
    ) -> tuple[list[FaceRecord], list[int], Any]:
        """(every face of the photo, the indices the spec's choice selects, the all-faces
        alignment result)."""
        chosen = self._run(ctx, work, graph.align_job(plan))
        every_plan = PhotoPlan(
            plan.spec.model_copy(update={"face": "all"}),
            plan.resolution,
            plan.align,
            plan.project,
            plan.tune,
            plan.edits,
        )
        every = self._run(ctx, work, graph.align_job(every_plan))
        selected = [record.index for record in align_stage.faces(chosen.result)]
        return align_stage.faces(every.result), selected, every.result

    def _face_text(
        self, text: str, plan: PhotoPlan, selected: list[int], face: int, count: int
    ) -> str:
        """``text`` with the photo's face choice changed so that ``face`` is selected."""
        if not 0 <= face < count:
            raise BadRequest(f"photo {plan.photo_id!r} has {count} face(s): no face {face}")
        if plan.spec.face == "all" or face in selected:
            return text
        return spec_text.set_photo_key(text, plan.photo_id, "face", face, str(self.spec_path))

    def _working(
        self,
        text: str,
        photo_id: str,
        chain: list[EditIn],
        record: FaceRecord,
        painted: dict[str, str] | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """``text`` with the chain's edits written in (``painted``: the path to write for
        each painted mask id, default the session's copy); the edits as written."""
        written = []
        for edit in chain:
            paths = painted or {}

            def path_of(ident: str, paths: dict[str, str] = paths) -> str:
                return paths.get(ident) or str(self._painted(ident))

            item = spec_edit(edit, record.transform, path_of)
            text = spec_text.set_edit(text, photo_id, item, str(self.spec_path))
            written.append(item)
        return text, written

    # The operations ---------------------------------------------------------------------------
    def _open(self, work: Work, photo_id: str) -> dict[str, Any]:
        text = self.read_text()
        with self._locked():
            ctx, graph, plan = self._graph(work, text, photo_id)
            records, selected, every = self._faces(ctx, work, graph, plan)
        spec = self.load(text)
        raw = self._raw_photo(text, photo_id)
        edits = []
        for edit, written in zip(spec.photo(photo_id).edits, raw.get("edits") or [], strict=True):
            form = page_edit(written)
            form["resolved"] = {
                str(record.index): self._resolved(edit, record) for record in records
            }
            edits.append(form)
        return {
            "photo": {"id": photo_id, **self._serve_display(plan.spec.path)},
            "face_setting": plan.spec.face,
            "selected": selected,
            "faces": [self._face_payload(record, k, every) for k, record in enumerate(records)],
            "edits": edits,
        }

    def _raw_photo(self, text: str, photo_id: str) -> dict[str, Any]:
        """The photo's entry as written (landmark names as written, paths unresolved)."""
        for photo in load_yaml(text).data.get("photos") or []:
            if isinstance(photo, dict) and photo.get("id") == photo_id:
                return photo
        raise UsageError(f"{self.spec_path} has no photo {photo_id!r}")

    def _face_payload(self, record: FaceRecord, k: int, every: Any) -> dict[str, Any]:
        return {
            "index": record.index,
            "box": list(record.box),
            "landmarks": record.landmarks.tolist(),
            "aligned_landmarks": record.aligned_landmarks.tolist(),
            "to_photo": record.transform.affine_aligned_to_photo().tolist(),
            "resolution": record.transform.output_size,
            "image": self._serve_result_file(every.file(align_stage.face_image(k))),
        }

    def _resolved(self, edit: Any, record: FaceRecord) -> dict[str, Any]:
        """An edit's points (aligned pixels) and mask overlay on one face, or why not."""
        from pipeline.spec.masks import resolve_mask
        from pipeline.spec.points import resolve_points

        try:
            handles, targets = resolve_points(edit, record.aligned_landmarks, record.transform)
            mask = resolve_mask(edit, record.aligned_landmarks, record.transform)
        except PipelineError as exc:
            return {"error": str(exc)}
        overlay = None
        if mask is not None:
            rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
            rgba[..., 1] = 200
            rgba[..., 3] = (np.clip(mask, 0, 1) * 255).astype(np.uint8)
            overlay = data_url(rgba)
        return {"handles": handles.tolist(), "targets": targets.tolist(), "mask": overlay}

    def _prepare(
        self, work: Work, request: FaceIn, chain: list[EditIn], painted: dict[str, str] | None
    ) -> tuple[str, list[dict[str, Any]], StageContext, JobGraph, PhotoPlan, list, int]:
        """The working text for the request (face choice + chain) and, on it, the graph, the
        alignment's faces and the position of the page's face among them."""
        text = self.read_text()
        ctx, graph, plan = self._graph(work, text, request.photo)
        records, selected, _ = self._faces(ctx, work, graph, plan)
        text = self._face_text(text, plan, selected, request.face, len(records))
        text, written = self._working(text, request.photo, chain, records[request.face], painted)
        ctx, graph, plan = self._graph(work, text, request.photo)
        faces = align_stage.faces(self._run(ctx, work, graph.align_job(plan)).result)
        position = [record.index for record in faces].index(request.face)
        return text, written, ctx, graph, plan, faces, position

    def _invert(self, work: Work, request: FaceIn) -> dict[str, Any]:
        from pipeline.stages.invert import RECONSTRUCTION

        with self._locked():
            _, _, ctx, graph, plan, faces, k = self._prepare(work, request, [], None)
            job = next(j for j in graph.face_jobs(plan, faces) if j.slot == f"invert-face{k}")
            outcome = self._run(ctx, work, job)
        return {
            "reconstruction": self._serve_result_file(outcome.result.file(RECONSTRUCTION)),
            "metrics": outcome.result.metrics,
        }

    def _drag(self, work: Work, request: ChainIn) -> dict[str, Any]:
        from pipeline.stages.edit import DragStopped, carry_stopped_drag

        chain = list(request.edits)
        stopped_at = None
        with self._locked():
            for _ in range(MAX_RESTARTS):
                text, written, ctx, graph, plan, faces, k = self._prepare(
                    work, request, chain, None
                )
                jobs = graph.face_jobs(plan, faces)
                target = next(j for j in jobs if j.slot == f"composite-{chain[-1].name}")
                ctx.watch = self._watch(work)
                running: Job | None = None
                outcomes: dict[str, Outcome] = {}
                try:
                    for job in _closure(jobs, target):
                        running = job
                        outcomes[job.slot] = self._run(ctx, work, job)
                except DragStopped as stop:
                    if self.worker.closing:  # the editor is shutting down: no capped drag
                        raise Stopped(f"{stop}; the editor is closing") from None
                    assert running is not None
                    name = running.task.edit.name  # type: ignore[attr-defined]
                    at = [edit.name for edit in chain].index(name)
                    drag_section = {**(chain[at].drag or {}), "max_steps": stop.step}
                    chain[at] = chain[at].model_copy(update={"drag": drag_section})
                    stopped_at = stop.step
                    work.stop_requested.clear()  # the capped drag must finish
                    work.emit("stopped", step=stop.step, edit=name)
                    _, _, ctx, graph, plan, faces, _ = self._prepare(work, request, chain, None)
                    capped = next(j for j in graph.face_jobs(plan, faces) if j.slot == running.slot)
                    carry_stopped_drag(
                        ctx.store.begin(running.material), ctx.store.begin(capped.material)
                    )
                    continue
                finally:
                    ctx.watch = None
                break
            else:
                raise PipelineError("the drag was stopped too often: press Drag again")
        spec = self.load(text)
        return self._drag_payload(spec, request, chain, written, outcomes, faces, k, stopped_at)

    def _watch(self, work: Work):
        def watch(label: str, record: Any, frame: np.ndarray | None) -> bool:
            work.emit(
                "drag",
                label=label,
                step=record.step,
                distances=list(record.distances),
                handles=[list(h) for h in record.handles],
            )
            if frame is not None:
                work.emit("frame", label=label, step=record.step, image=data_url(frame))
            return work.stop_requested.is_set()

        return watch

    def _drag_payload(
        self,
        spec: Spec,
        request: ChainIn,
        chain: list[EditIn],
        written: list[dict[str, Any]],
        outcomes: dict[str, Outcome],
        faces: list[FaceRecord],
        k: int,
        stopped_at: int | None,
    ) -> dict[str, Any]:
        from pipeline.stages.composite import output_file
        from pipeline.stages.edit import BEFORE, EDITED, POINTS

        name = chain[-1].name
        edit = outcomes.get(f"edit-{name}-face{k}")
        if edit is None:  # the edit's photo points are on another face
            edit = next(o for slot, o in outcomes.items() if slot.startswith(f"edit-{name}-"))
        composite = outcomes[f"composite-{name}"].result
        points = edit.result.json(POINTS)
        forms = [
            page_edit(item, mask=[dict(m) for m in link.mask], painted=link.painted)
            for item, link in zip(written, chain, strict=True)
        ]
        for form in forms:
            form["resolved"] = {
                str(faces[k].index): self._resolved(
                    spec.photo(request.photo).edit(form["name"]), faces[k]
                )
            }
        output = output_file(composite)
        return {
            "chain": forms,
            "stopped_at": stopped_at,
            "edit": {
                "before": self._serve_result_file(edit.result.file(BEFORE)),
                "edited": self._serve_result_file(edit.result.file(EDITED)),
                "handles": points["handles"],
                "targets": points["targets"],
                "final_handles": edit.result.info.get("final_handles"),
                "metrics": edit.result.metrics,
                "computed": edit.computed,
            },
            "composite": {**self._serve_display(output), "file": self._serve_result_file(output)},
        }

    def _save(self, work: Work, request: ChainIn) -> dict[str, Any]:
        with self._locked():
            text = self.read_text()
            ctx, graph, plan = self._graph(work, text, request.photo)
            records, selected, _ = self._faces(ctx, work, graph, plan)
        chain = list(request.edits)
        record = records[request.face] if 0 <= request.face < len(records) else None
        if record is None:
            raise BadRequest(f"photo {request.photo!r} has no face {request.face}")
        text = self._face_text(text, plan, selected, request.face, len(records))
        checked, _ = self._working(text, request.photo, chain, record)
        self.load(checked)  # every problem is reported before anything is written
        painted = {
            edit.painted: self._keep_mask(request.photo, edit.name, self._painted(edit.painted))
            for edit in chain
            if edit.painted is not None
        }
        final, written = self._working(text, request.photo, chain, record, painted)
        self.load(final)
        write_bytes_atomic(self.spec_path, final.encode("utf-8"))
        return {
            "spec": str(self.spec_path),
            "edits": [item["name"] for item in written],
            "masks": sorted(painted.values()),
        }

    def _keep_mask(self, photo_id: str, edit: str, source: Path) -> str:
        """Copy a painted mask next to the spec (``masks/<photo>-<edit>.png``, or with a
        number when another file has that name); the path to write, relative to the spec."""
        data = source.read_bytes()
        folder = self.spec_path.parent / "masks"
        for n in range(1, 1000):
            name = f"{photo_id}-{edit}" + ("" if n == 1 else f"-{n}") + ".png"
            target = folder / name
            if target.is_file() and target.read_bytes() != data:
                continue
            if not target.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(target, data)
            return f"masks/{name}"
        raise PipelineError(f"too many mask files in {folder}: remove unused ones")


def _closure(jobs: list[Job], target: Job) -> list[Job]:
    """``target`` and the jobs of ``jobs`` it needs (transitively), in ``jobs``' order."""
    by_ref = {job.ref: job for job in jobs}
    needed, stack = set(), [target]
    while stack:
        job = stack.pop()
        if job.ref in needed:
            continue
        needed.add(job.ref)
        stack += [by_ref[ref] for ref in job.needs if ref in by_ref]
    return [job for job in jobs if job.ref in needed]
