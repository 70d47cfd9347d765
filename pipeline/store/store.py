"""The content-addressed stage store: one directory per stage result, published atomically.

Layout under the workdir::

    results/<stage>/<key>/        a complete result: its files + manifest.json (written last)
    partial/<stage>-<key>/        a result being computed: files so far + checkpoints/
    refs/<photo id>/<slot>.json   the key material last used for a slot (for ``status``)
    specs/<id>.json               a spec that ran here and the results it used (for ``clean``)
    generators/<digest>.json      facts about a generator checkpoint (its resolution, ...)
    artifacts/<kind>/<key>/       reusable exports (e.g. ``onnx``), keyed by what made them
    digests.json                  file digests cached by path, size and mtime
    lock                          the run lock (``pipeline.store.lock``)
    leases/<stage>-<key>          the lease of the process computing that result
    leases/artifact-<kind>-<key>  the lease of the process writing that artifact directory

Only this module knows these names: everything else asks ``Store`` (results by stage and
key, partial results, refs, generator facts, artifact directories, file digests). Every file is written through
``draggan.atomic_write`` (temporary file, fsync, ``os.replace``, fsync of the folder).
``Store(root, read_only=True)`` (``status``, ``run --dry-run``) writes nothing: digests it
computes and generator facts it learns stay in memory, a damaged result is reported but
left in place, and any write is refused. ``unwritable()`` says, before a run does any
work, which of the store's folders or files it could not write.

A result is computed in its ``partial`` directory; long loops save their state in its
``checkpoints/`` subdirectory every few steps so a killed run resumes there. Publishing
writes ``manifest.json`` LAST (inputs, parameters, every file's SHA-256 and size, metrics,
timings), drops the checkpoints and renames the directory into ``results/`` in one
``os.rename``. Reading verifies the manifest and every file's digest: a damaged or
half-written result is reported, removed and recomputed, never used.

Whoever computes into ``partial/<stage>-<key>/`` holds that result's lease
(``job_lease``, a ``pipeline.store.lease.Lease``): on a cluster, Ray may start a job again
on another machine while the first attempt is still alive (a lost node), and two attempts
must never write one partial directory. A ``Pending`` given the lease's ``check`` calls it
before every checkpoint and before publishing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from draggan.atomic_write import atomic_write, fsync_path, write_bytes_atomic
from pipeline.errors import PipelineError
from pipeline.folders import folder_problem
from pipeline.store.keys import (
    DigestCache,
    KeyMaterial,
    canonical,
    canonical_json,
    sha256_bytes,
    sha256_file,
)
from pipeline.store.lease import Lease
from pipeline.store.lock import LOCK_NAME

MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
MANIFEST_FORMAT = "dragpipe-result-1"
RESULTS, PARTIAL, REFS, GENERATORS, ARTIFACTS, DIGESTS, SPECS, LEASES = (
    "results",
    "partial",
    "refs",
    "generators",
    "artifacts",
    "digests.json",
    "specs",
    "leases",
)

Reporter = Callable[[str], None]


class DamagedResult(PipelineError):
    """A stored result failed verification (it is removed and recomputed)."""


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, indented) to ``path`` through ``atomic_write``."""
    text = json.dumps(data, indent=1, sort_keys=True)
    write_bytes_atomic(path, text.encode())


@dataclass(frozen=True)
class Ref:
    """A stage result by identity: what a job needs from another job (picklable)."""

    stage: str
    key: str


@dataclass(frozen=True)
class Result:
    """A verified, complete stage result (read only)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    @property
    def stage(self) -> str:
        return str(self.manifest["stage"])

    @property
    def ref(self) -> Ref:
        return Ref(self.stage, self.key)

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.manifest.get("info", {}))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics", {}))

    @property
    def timings(self) -> dict[str, float]:
        return dict(self.manifest.get("timings", {}))

    def file(self, name: str) -> Path:
        if name not in self.manifest["files"]:
            raise DamagedResult(f"stored result {self.path} has no file {name!r}")
        return self.path / name

    def has(self, name: str) -> bool:
        return name in self.manifest["files"]

    def json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        return load_file(str(self.file(name)))


class Pending:
    """A result being computed, in ``partial/<stage>-<key>/``; ``commit`` publishes it."""

    def __init__(
        self, store: Store, material: KeyMaterial, guard: Callable[[], None] | None = None
    ):
        self.store = store
        self.material = material
        self.key = material.key
        self.guard = guard or (lambda: None)  # raises when this process may no longer write
        self.path = store.partial_dir(material.stage, self.key)
        self.path.mkdir(parents=True, exist_ok=True)
        self._checkpoints = self.path / CHECKPOINTS

    def file(self, name: str) -> Path:
        """Where to write output file ``name`` (a plain name, no directories)."""
        if "/" in name or name in (MANIFEST, CHECKPOINTS) or name.startswith("."):
            raise ValueError(f"bad result file name {name!r}")
        return self.path / name

    def write_json(self, name: str, data: Any) -> None:
        write_json_atomic(self.file(name), canonical(data))

    def write_tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        with atomic_write(self.file(name)) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))

    # Loop checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, name: str, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        """Save a loop's state (tensors + JSON-able meta) atomically as ``checkpoints/<name>``."""
        self.guard()
        self._checkpoints.mkdir(exist_ok=True)
        data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        with atomic_write(self._checkpoints / f"{name}.safetensors") as tmp:
            save_file(data, str(tmp), metadata={"meta": json.dumps(canonical(meta))})

    def load_checkpoint(self, name: str) -> tuple[dict[str, torch.Tensor], Any] | None:
        """The last saved state of loop ``name``, or None (none saved, or unreadable)."""
        target = self._checkpoints / f"{name}.safetensors"
        if not target.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(target), framework="pt") as handle:
                meta = json.loads((handle.metadata() or {})["meta"])
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            self.store.report(f"ignoring unreadable checkpoint {target}: {exc}")
            target.unlink(missing_ok=True)
            return None
        return tensors, meta

    def drop_checkpoint(self, name: str) -> None:
        (self._checkpoints / f"{name}.safetensors").unlink(missing_ok=True)

    # Publishing ---------------------------------------------------------------------------
    def commit(
        self,
        metrics: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None,
        info: dict[str, Any] | None = None,
    ) -> Result:
        """Write the manifest last and move the directory into ``results/`` atomically."""
        files: dict[str, dict[str, Any]] = {}
        for entry in sorted(self.path.iterdir()):
            if entry.name in (MANIFEST, CHECKPOINTS) or entry.name.startswith("."):
                continue
            if not entry.is_file():
                raise PipelineError(f"unexpected entry {entry} in a stage result")
            fsync_path(entry)
            files[entry.name] = {"sha256": sha256_file(entry), "size": entry.stat().st_size}
        manifest = {
            "format": MANIFEST_FORMAT,
            "key": self.key,
            "stage": self.material.stage,
            "material": self.material.to_dict(),
            "files": files,
            "metrics": canonical(metrics or {}),
            "timings": canonical(timings or {}),
            "info": canonical(info or {}),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.guard()
        write_json_atomic(self.path / MANIFEST, manifest)
        shutil.rmtree(self._checkpoints, ignore_errors=True)
        for leftover in self.path.glob(".*"):
            leftover.unlink(missing_ok=True)
        fsync_path(self.path)
        final = self.store.result_dir(self.material.stage, self.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # a damaged copy that verification rejected: replace it
            shutil.rmtree(final)
        os.rename(self.path, final)
        fsync_path(final.parent)
        result = Result(final, manifest)
        self.store._remember(result)
        return result

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Store:
    """A workdir of stage results. Not thread-safe; hold ``RunLock`` while writing.

    Results: ``exists`` (cheap), ``lookup(material)`` / ``result(ref)`` (verified),
    ``begin(material)`` -> ``Pending`` -> ``commit`` (under ``job_lease(ref)``),
    ``wait_visible``; ``all_results``, ``partials``,
    ``remove``, ``remove_partial``, ``size_of``. Refs (what each slot of a photo last
    resolved to, for ``status``): ``write_ref``, ``read_ref``, ``ref_slots``, ``drop_refs``,
    ``ref_names``. Specs that ran here (for ``clean``): ``record_spec``,
    ``recorded_specs``, ``forget_spec``, ``forget_specs``.
    Generator facts: ``generator_info``, ``remember_generator``. User files:
    ``file_digest``.
    """

    def __init__(self, root: Path, report: Reporter | None = None, read_only: bool = False):
        self.root = Path(root)
        self.report = report or (lambda message: None)
        self.read_only = read_only
        self._digests: DigestCache | None = None
        self._generators: dict[str, dict[str, Any]] = {}  # learnt while read-only
        # Results this process verified (or committed), with their files' (size, mtime):
        # ``result`` re-verifies only when those changed.
        self._verified: dict[Ref, tuple[Result, tuple]] = {}

    # Paths --------------------------------------------------------------------------------
    def result_dir(self, stage: str, key: str) -> Path:
        return self.root / RESULTS / stage / key

    def partial_dir(self, stage: str, key: str) -> Path:
        return self.root / PARTIAL / f"{stage}-{key}"

    @property
    def digests(self) -> DigestCache:
        if self._digests is None:
            self._digests = DigestCache(self.root / DIGESTS, persist=not self.read_only)
        return self._digests

    def file_digest(self, path: Path) -> str:
        """SHA-256 of a user file, cached by path, size and mtime."""
        return self.digests.digest(Path(path))

    # Results ------------------------------------------------------------------------------
    def exists(self, stage: str, key: str) -> bool:
        """Cheap check (manifest present, files present with the recorded sizes)."""
        path = self.result_dir(stage, key)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            return (
                all(
                    (path / name).stat().st_size == entry["size"]
                    for name, entry in manifest["files"].items()
                )
                and manifest.get("key") == key
            )
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def lookup(self, material: KeyMaterial) -> Result | None:
        """The verified result for ``material``, or None. A damaged one is reported and removed.

        Every file's digest is checked on each call."""
        return self._verified_result(Ref(material.stage, material.key), "recomputing")

    def result(self, ref: Ref) -> Result:
        """The verified result ``ref`` names (an upstream result a job reads); a missing or
        damaged one is a ``DamagedResult``, since the job that makes it ran before.

        A result this process verified or committed is not hashed again unless a file's
        size or modification time changed since."""
        known = self._verified.get(ref)
        if known is not None and _stamp(known[0]) == known[1]:
            return known[0]
        found = self._verified_result(ref, "it must be recomputed")
        if found is None:
            raise DamagedResult(
                f"stored {ref.stage} result {ref.key} is missing; run the spec again to "
                "recompute it"
            )
        return found

    def _verified_result(self, ref: Ref, then: str) -> Result | None:
        path = self.result_dir(ref.stage, ref.key)
        if not path.exists():
            return None
        try:
            result = self._verify(path, ref.key)
        except DamagedResult as exc:
            if self.read_only:
                self.report(f"{exc}; a run will remove it and recompute it")
                return None
            self.report(f"{exc}; removing it and {then}")
            shutil.rmtree(path, ignore_errors=True)
            self._verified.pop(ref, None)
            return None
        self._remember(result)
        return result

    def _remember(self, result: Result) -> None:
        self._verified[result.ref] = (result, _stamp(result))

    def _verify(self, path: Path, key: str) -> Result:
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise DamagedResult(f"stored result {path} has no manifest (half-written)") from None
        except (OSError, ValueError) as exc:
            raise DamagedResult(
                f"stored result {path} has an unreadable manifest ({exc})"
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise DamagedResult(f"stored result {path} has a manifest of unknown format")
        if manifest.get("key") != key:
            raise DamagedResult(f"stored result {path} has the manifest of another key")
        material = manifest.get("material", {})
        recomputed = KeyMaterial(
            stage=material.get("stage", ""),
            version=material.get("version", -1),
            params=material.get("params", {}),
            inputs=material.get("inputs", {}),
            package=material.get("package", ""),
        ).key
        if recomputed != key:
            raise DamagedResult(f"stored result {path} has a manifest that does not match its key")
        for name, entry in manifest.get("files", {}).items():
            file = path / name
            if not file.is_file():
                raise DamagedResult(f"stored result {path} is missing its file {name}")
            if file.stat().st_size != entry["size"] or sha256_file(file) != entry["sha256"]:
                raise DamagedResult(f"stored file {file} is damaged (digest mismatch)")
        return Result(path, manifest)

    def begin(self, material: KeyMaterial, guard: Callable[[], None] | None = None) -> Pending:
        """Start (or resume, keeping its checkpoints) computing the result for ``material``;
        ``guard`` (the job lease's ``check``) runs before each checkpoint and the commit."""
        self._writing()
        return Pending(self, material, guard)

    def job_lease(self, ref: Ref, run: str | None = None) -> Lease:
        """The lease (not yet acquired) that whoever computes ``ref`` holds meanwhile."""
        self._writing()
        return Lease(
            self.root / LEASES / f"{ref.stage}-{ref.key}",
            run=run,
            what=f"the computation of {ref.stage} result {ref.key}",
        )

    def wait_visible(self, ref: Ref, timeout: float = 30.0) -> bool:
        """Wait until result ``ref``, published by another machine, is visible here.

        Network filesystems may answer from a cached directory listing for a while (NFS
        caches "no such file" for up to ``acdirmax``); listing the folder again refreshes
        it. True once ``exists``; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.exists(ref.stage, ref.key):
            if time.monotonic() >= deadline:
                return False
            with contextlib.suppress(OSError):
                os.listdir(self.root / RESULTS / ref.stage)
            time.sleep(0.2)
        return True

    def _writing(self) -> None:
        if self.read_only:
            raise PipelineError(f"internal: a write to the read-only store {self.root}")

    def unwritable(self) -> str | None:
        """Why a run could not write this store (its folder, an existing subfolder of its
        layout or the lock file), in words naming the path; None when it can."""
        problem = folder_problem(self.root)
        if problem is not None or not self.root.is_dir():
            return problem
        names = (RESULTS, PARTIAL, REFS, GENERATORS, ARTIFACTS, SPECS, LEASES)
        folders = [self.root / name for name in names]
        folders += [p for name in (RESULTS, REFS) for p in _subfolders(self.root / name)]
        for folder in folders:
            if folder.exists() and (problem := folder_problem(folder)) is not None:
                return problem
        lock = self.root / LOCK_NAME
        if lock.exists() and not os.access(lock, os.W_OK):
            return f"{lock} is not writable"
        return None

    def remove(self, stage: str, key: str) -> bool:
        """Delete a complete result; False when there was none."""
        self._writing()
        self._verified.pop(Ref(stage, key), None)
        path = self.result_dir(stage, key)
        if path.exists():
            shutil.rmtree(path)
            return True
        return False

    def all_results(self) -> list[tuple[str, str]]:
        """Every (stage, key) under ``results/``."""
        out = []
        base = self.root / RESULTS
        if base.is_dir():
            for stage_dir in sorted(base.iterdir()):
                if stage_dir.is_dir():
                    out += [(stage_dir.name, p.name) for p in sorted(stage_dir.iterdir())]
        return out

    def size_of(self, stage: str, key: str) -> int:
        """Bytes a complete result takes."""
        return _tree_size(self.result_dir(stage, key))

    # Partial results (interrupted computations, with their checkpoints) -------------------
    def partials(self) -> list[tuple[str, str]]:
        """Every (stage, key) being computed or interrupted, under ``partial/``."""
        base = self.root / PARTIAL
        if not base.is_dir():
            return []
        found = []
        for entry in sorted(base.iterdir()):
            stage, _, key = entry.name.partition("-")
            if entry.is_dir() and key:
                found.append((stage, key))
        return found

    def partial_size(self, stage: str, key: str) -> int:
        return _tree_size(self.partial_dir(stage, key))

    def partial_state(self, stage: str, key: str) -> PartialState | None:
        """What an interrupted computation of (stage, key) left (read only): the result files
        it wrote and the JSON meta of each loop checkpoint; None when there is none."""
        folder = self.partial_dir(stage, key)
        if not folder.is_dir():
            return None
        files = frozenset(
            p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        metas: dict[str, Any] = {}
        for path in sorted((folder / CHECKPOINTS).glob("*.safetensors")):
            try:
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as handle:
                    metas[path.stem] = json.loads((handle.metadata() or {})["meta"])
            except (SafetensorError, OSError, KeyError, ValueError):
                continue  # unreadable: the run will report and ignore it
        return PartialState(files, metas)

    def remove_partial(self, stage: str, key: str) -> None:
        self._writing()
        shutil.rmtree(self.partial_dir(stage, key), ignore_errors=True)

    # Refs: what each slot (photo, stage, edit) last resolved to, for `status` ----------------
    def _ref_path(self, photo_id: str, slot: str) -> Path:
        return self.root / REFS / photo_id / f"{slot}.json"

    def write_ref(self, photo_id: str, slot: str, material: KeyMaterial) -> None:
        self._writing()
        path = self._ref_path(photo_id, slot)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"key": material.key, "material": material.to_dict()})

    def read_ref(self, photo_id: str, slot: str) -> dict[str, Any] | None:
        """``{'key': ..., 'material': KeyMaterial.to_dict()}`` last written, or None."""
        try:
            data = json.loads(self._ref_path(photo_id, slot).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "material" in data else None

    def ref_slots(self, photo_id: str) -> list[str]:
        """The slots of ``photo_id`` that have a ref, sorted."""
        folder = self.root / REFS / photo_id
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def drop_refs(self) -> None:
        """Forget every ref (``clean --all``)."""
        self._writing()
        shutil.rmtree(self.root / REFS, ignore_errors=True)

    def ref_names(self) -> dict[Ref, list[str]]:
        """Every result some slot last resolved to, with those slots' names
        ('<photo> <slot>'), for people to recognise a key."""
        names: dict[Ref, list[str]] = {}
        base = self.root / REFS
        for path in sorted(base.glob("*/*.json")) if base.is_dir() else []:
            data = self.read_ref(path.parent.name, path.stem)
            if data is not None and isinstance(data["material"], dict):
                ref = Ref(str(data["material"].get("stage")), str(data.get("key")))
                names.setdefault(ref, []).append(f"{path.parent.name} {path.stem}")
        return names

    # Specs that use this workdir (so `clean` keeps every spec's work) ----------------------
    def record_spec(self, spec: Path, results: Iterable[Ref] | None = None) -> None:
        """Remember that ``spec`` runs in this workdir, with the results it uses (None: keep
        those recorded before). The path is also kept relative to the workdir, which is the
        one read once the workdir is no longer where it was (a project folder moved or
        copied as a whole still finds its own specs)."""
        self._writing()
        spec = Path(spec).resolve()
        known = self.recorded_specs()
        previous = next((item for item in known if item.path == spec), None)
        if results is None:
            results = previous.results if previous is not None else ()
        for item in known:  # older records of the same file (e.g. before a move)
            if item.path == spec and item.file.name != _spec_file_name(spec):
                item.file.unlink(missing_ok=True)
        folder = self.root / SPECS
        folder.mkdir(parents=True, exist_ok=True)
        data = {
            "spec": str(spec),
            "workdir": str(self.root.resolve()),
            "relative": os.path.relpath(spec, self.root.resolve()),
            "results": sorted([ref.stage, ref.key] for ref in set(results)),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json_atomic(folder / _spec_file_name(spec), data)

    def recorded_specs(self) -> list[RecordedSpec]:
        """The specs recorded as running in this workdir (one per spec file)."""
        found: dict[Path, RecordedSpec] = {}
        folder = self.root / SPECS
        for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                data = json.loads(file.read_text())
                moved = data["workdir"] != str(self.root.resolve())
                path = (self.root / data["relative"]).resolve() if moved else Path(data["spec"])
                results = frozenset(Ref(str(s), str(k)) for s, k in data["results"])
            except (OSError, ValueError, KeyError, TypeError):
                self.report(f"ignoring the unreadable spec record {file}")
                continue
            if path in found:  # two records of one file: both sets of results
                results |= found[path].results
            found[path] = RecordedSpec(path, results, file)
        return list(found.values())

    def forget_spec(self, recorded: RecordedSpec) -> None:
        """Drop a spec's record (``clean`` when the spec no longer exists)."""
        self._writing()
        recorded.file.unlink(missing_ok=True)

    def forget_specs(self) -> None:
        """Drop every spec record (``clean --all``)."""
        self._writing()
        shutil.rmtree(self.root / SPECS, ignore_errors=True)

    # Generator facts, by checkpoint digest (so `status` need not load a checkpoint) --------
    def generator_info(self, digest: str) -> dict[str, Any] | None:
        if digest in self._generators:
            return dict(self._generators[digest])
        try:
            data = json.loads((self.root / GENERATORS / f"{digest}.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def remember_generator(self, digest: str, info: dict[str, Any]) -> None:
        """Keep facts about a checkpoint (on disk; in memory only when read-only)."""
        if self.read_only:
            self._generators[digest] = dict(info)
            return
        path = self.root / GENERATORS / f"{digest}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, canonical(info))

    # Reusable artifacts: directories keyed by what they are made from -------------------
    def artifact_dir(self, kind: str, material: dict[str, Any]) -> Path:
        """``artifacts/<kind>/<key>/`` (not created), ``key`` the SHA-256 of ``material``'s
        canonical JSON plus the package version. Its producer writes, verifies and replaces
        it (e.g. ``draggan.onnx``: manifest last, refused when stale); the store names it."""
        from draggan.version import __version__

        key = sha256_bytes(canonical_json({"material": material, "package": __version__}).encode())
        return self.root / ARTIFACTS / kind / key

    def artifact_lease(self, directory: Path, run: str | None = None) -> Lease:
        """The lease (not yet acquired) whoever writes the artifact ``directory`` (from
        ``artifact_dir``) holds meanwhile: jobs that need one export at the same time (two
        edits of a face on two cluster workers) make it once and never replace it under
        each other."""
        self._writing()
        kind, key = directory.parent.name, directory.name
        return Lease(
            self.root / LEASES / f"artifact-{kind}-{key}",
            run=run,
            what=f"the {kind} export {key}",
        )

    def artifacts_size(self) -> int:
        """Bytes the reusable artifacts take (0 without any)."""
        base = self.root / ARTIFACTS
        return _tree_size(base) if base.is_dir() else 0

    def remove_artifacts(self) -> int:
        """Remove every reusable artifact (``clean --all``); returns the bytes freed."""
        self._writing()
        base = self.root / ARTIFACTS
        if not base.is_dir():
            return 0
        freed = _tree_size(base)
        shutil.rmtree(base, ignore_errors=True)
        return freed


def _stamp(result: Result) -> tuple:
    """(name, size, mtime_ns) of a result's files and manifest; () when one is missing."""
    try:
        return tuple(
            (name, stat.st_size, stat.st_mtime_ns)
            for name in sorted([*result.manifest["files"], MANIFEST])
            for stat in [(result.path / name).stat()]
        )
    except OSError:
        return ()


@dataclass(frozen=True)
class PartialState:
    """What an interrupted computation left: its result files so far and its loop
    checkpoints' meta (checkpoint name -> JSON meta; the stage knows what they mean)."""

    files: frozenset[str]
    checkpoints: dict[str, Any]


@dataclass(frozen=True)
class RecordedSpec:
    """A spec recorded as running in a workdir, and the results its last run used."""

    path: Path  # the spec file (it may no longer exist)
    results: frozenset[Ref]
    file: Path  # the record itself


def _spec_file_name(spec: Path) -> str:
    return f"{sha256_bytes(str(spec).encode())[:16]}.json"


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
