"""Export a generator and its drag step to ONNX: ``export_artifacts`` and ``open_artifacts``.

An artifact directory holds:

- ``mapping.onnx``: z [N, z_dim] (+ c [N, c_dim]) and ``truncation_psi`` [] -> ws
  [N, num_ws, w_dim] (inference; plain ``onnxruntime`` runs it);
- ``synthesis.onnx``: ws [1, num_ws, w_dim] -> image [1, C, R, R] (constant noise);
- ``training_model.onnx``, ``eval_model.onnx``, ``optimizer_model.onnx``, ``checkpoint``:
  ONNX Runtime training artifacts (``onnxruntime.training.artifacts.generate_artifacts``) of
  the drag step (``graph.DragStepGraph``), whose only trainable parameter is ``latent``;
- ``manifest.json``, written last: format, dragpipe / onnx / onnxruntime versions, the
  generator's digest and shape, the ``ExportParams``, the learning rate and tracking window
  the export was made for, and every file's SHA-256 and size.

Export is atomic: everything is written into a hidden sibling directory, which replaces the
target with one rename once the manifest is in it; an interrupted export leaves only that
hidden directory (never something that looks complete). ``open_artifacts`` uses a directory
only when its manifest matches the generator, the parameters and this dragpipe version and
every file is intact; otherwise it re-exports in its place.

The optimiser is ONNX Runtime's only Adam, ``AdamWOptimizer``, set to PyTorch's update
(``adam_mode=0``: bias corrections as ``torch.optim.Adam``, epsilon 1e-8 added to the
bias-corrected root of the second moment) with weight decay 0, which is Adam. (Its
``generate_artifacts`` default is the Hugging Face form, ``adam_mode=1``, with epsilon 1e-6,
which divides by ``sqrt(v) + eps`` before the bias correction: a different step wherever the
gradient is small.)
"""

from __future__ import annotations

import copy
import io
import json
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from draggan.atomic_write import fsync_path, write_bytes_atomic
from draggan.digests import file_digest, module_digest
from draggan.dragging.errors import DragInputError
from draggan.onnx.graph import OUTPUT_NAMES, DragStepGraph, input_names
from draggan.onnx.params import ExportParams
from draggan.onnx.requirements import import_module, require_training
from draggan.version import __version__

FORMAT = "dragpipe-onnx-1"
OPSET = 17
MANIFEST = "manifest.json"
MAPPING = "mapping.onnx"
SYNTHESIS = "synthesis.onnx"
TRAINING = "training_model.onnx"
EVAL = "eval_model.onnx"
OPTIMIZER = "optimizer_model.onnx"
CHECKPOINT = "checkpoint"
FILES = (MAPPING, SYNTHESIS, TRAINING, EVAL, OPTIMIZER, CHECKPOINT)
ADAM = {"alpha": 0.9, "beta": 0.999, "epsilon": 1e-8, "weight_decay": 0.0, "adam_mode": 0}


class ArtifactMismatch(DragInputError):
    """An artifact directory that is not (or no longer) the export this drag needs."""


class _MappingGraph(torch.nn.Module):
    """z (+ c) and truncation_psi -> ws, truncated towards w_avg on every ws."""

    def __init__(self, G: torch.nn.Module) -> None:
        super().__init__()
        self.mapping = G.mapping

    def forward(self, *args: torch.Tensor) -> torch.Tensor:  # -> [N, num_ws, w_dim]
        *latents, psi = args
        z = latents[0] if self.mapping.z_dim > 0 else None
        c = latents[-1] if self.mapping.c_dim > 0 else None
        ws = self.mapping(z, c)
        if hasattr(self.mapping, "w_avg"):
            ws = self.mapping.w_avg + (ws - self.mapping.w_avg) * psi
        return ws


class _SynthesisGraph(torch.nn.Module):
    def __init__(self, G: torch.nn.Module, noise_mode: str) -> None:
        super().__init__()
        self.synthesis = G.synthesis
        self.noise_mode = noise_mode

    def forward(self, ws: torch.Tensor) -> torch.Tensor:  # [1, num_ws, w_dim] -> [1, C, R, R]
        return self.synthesis(ws, noise_mode=self.noise_mode, fused_modconv=True)


def generator_digest(G: torch.nn.Module) -> str:
    """The digest that ties artifacts to a generator (its parameters and buffers)."""
    return module_digest(G)


def _export(
    module: torch.nn.Module,
    args: tuple,
    inputs: list[str],
    outputs: list[str],
    target: Any,
    dynamic: dict | None = None,
) -> None:
    with warnings.catch_warnings():
        # The tracer's notes on Python values frozen into the graph (shapes, the filter
        # taps): intended here, the graph is built for one generator and one set of
        # ExportParams. And torch's note that this exporter is the TorchScript one, which
        # is deliberate: ONNX Runtime training needs its training-mode export.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            module,
            args,
            target,
            input_names=inputs,
            output_names=outputs,
            opset_version=OPSET,
            dynamo=False,
            training=torch.onnx.TrainingMode.TRAINING,
            do_constant_folding=False,
            export_params=True,
            dynamic_axes=dynamic,
        )


def _cpu_generator(G: torch.nn.Module) -> torch.nn.Module:
    on_cpu = all(t.device.type == "cpu" for t in list(G.parameters()) + list(G.buffers()))
    G = G if on_cpu else copy.deepcopy(G).to("cpu")
    return G.eval().requires_grad_(False)


def _export_inference(G: torch.nn.Module, directory: Path, noise_mode: str) -> None:
    mapping = G.mapping
    args, names = [], []
    if mapping.z_dim > 0:
        args.append(torch.zeros(1, mapping.z_dim))
        names.append("z")
    if mapping.c_dim > 0:
        args.append(torch.zeros(1, mapping.c_dim))
        names.append("c")
    args.append(torch.tensor(1.0))
    names.append("truncation_psi")
    dynamic = {name: {0: "batch"} for name in names if name != "truncation_psi"}
    dynamic["ws"] = {0: "batch"}
    _export(_MappingGraph(G), tuple(args), names, ["ws"], str(directory / MAPPING), dynamic)
    ws = torch.zeros(1, int(G.num_ws), int(G.w_dim))
    _export(_SynthesisGraph(G, noise_mode), (ws,), ["ws"], ["image"], str(directory / SYNTHESIS))


def _drag_inputs(G: torch.nn.Module, spec: ExportParams) -> tuple[torch.Tensor, ...]:
    """Example inputs for tracing the drag step (their values do not matter)."""
    R = int(G.img_resolution)
    with torch.no_grad():
        ws = torch.zeros(1, int(G.num_ws), int(G.w_dim))
        feat = G.synthesis.features_at(ws, spec.feature_resolution, noise_mode=spec.noise_mode)
    side = R if spec.mode == "official" else int(feat.shape[-1])
    points = torch.full([spec.handles, 2], R / 2)
    args = [points, points + 4, feat, feat, torch.zeros(1, 1, side, side), torch.tensor(20.0)]
    if spec.layers < int(G.num_ws):
        args.append(ws[:, spec.layers :].clone())
    return tuple(args)


def _export_training(G: torch.nn.Module, directory: Path, spec: ExportParams) -> None:
    onnx = import_module("onnx")
    artifacts = import_module("onnxruntime.training.artifacts")
    onnxblock = import_module("onnxruntime.training.onnxblock")
    graph = DragStepGraph(G, spec)
    args = _drag_inputs(G, spec)
    buffer = io.BytesIO()
    _export(graph, args, input_names(len(args) == 7), OUTPUT_NAMES, buffer)
    model = onnx.load_from_string(buffer.getvalue())
    frozen = [t.name for t in model.graph.initializer if t.name != "latent"]
    optimizer = onnxblock.optim.AdamW(
        betas=(ADAM["alpha"], ADAM["beta"]), eps=ADAM["epsilon"], weight_decay=0.0
    )
    with _native_log_captured():
        artifacts.generate_artifacts(
            model,
            requires_grad=["latent"],
            frozen_params=frozen,
            optimizer=optimizer,
            artifact_directory=str(directory),
        )
    _torch_adam(onnx, directory / OPTIMIZER)


@contextmanager
def _native_log_captured() -> Iterator[None]:
    """Keep ONNX Runtime's native log (every graph transformer at INFO while it builds the
    gradient graph, whatever the severity set) off the terminal: it goes to a temporary
    file, whose tail is attached to the exception (a note, shown with its traceback) when
    the block fails. (Python's own stderr is line-buffered: nothing of ours is pending.)"""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except Exception as exc:
            os.dup2(saved, 2)
            log.seek(0)
            tail = log.read().decode(errors="replace")[-20000:]
            if tail and hasattr(exc, "add_note"):  # Python >= 3.11
                exc.add_note(f"ONNX Runtime's log (last 20000 characters):\n{tail}")
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _torch_adam(onnx: Any, path: Path) -> None:
    """Set the optimizer model's AdamW node to PyTorch's Adam update (see the docstring)."""
    model = onnx.load(str(path))
    nodes = [n for n in model.graph.node if n.op_type == "AdamWOptimizer"]
    if len(nodes) != 1:
        raise RuntimeError(f"expected one AdamWOptimizer node in {path}, found {len(nodes)}")
    node = nodes[0]
    kept = [a for a in node.attribute if a.name not in ADAM]
    del node.attribute[:]
    node.attribute.extend(kept + [onnx.helper.make_attribute(k, v) for k, v in ADAM.items()])
    # generate_artifacts builds this model with the installed onnx's IR version, which can be
    # newer than ONNX Runtime training reads; the training model's is.
    model.ir_version = onnx.load(str(path.with_name(TRAINING)), load_external_data=False).ir_version
    onnx.save(model, str(path))


def export_artifacts(
    G: torch.nn.Module,
    directory: str | os.PathLike[str],
    spec: ExportParams,
    lr: float = 1e-3,
    window: int | None = None,
    digest: str | None = None,  # generator_digest(G), when the caller has it
) -> dict[str, Any]:
    """Export ``G`` and its drag step for ``spec`` into ``directory`` (atomically replacing
    whatever is there); returns the manifest. ``lr`` and ``window`` (the tracking half-size,
    px) are recorded for applications that drive the artifacts themselves."""
    require_training()
    onnxruntime = import_module("onnxruntime")
    onnx = import_module("onnx")
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    G = _cpu_generator(G)
    started = time.perf_counter()
    work = target.parent / f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        _export_inference(G, work, spec.noise_mode)
        _export_training(G, work, spec)
        manifest = {
            "format": FORMAT,
            "dragpipe": __version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "opset": OPSET,
            "generator": _generator_facts(G, digest),
            "params": spec.to_dict(),
            "feature_channels": int(
                getattr(G.synthesis, f"b{spec.feature_resolution}").out_channels
            ),
            "lr": float(lr),
            "r2": window,
            "optimizer": dict(ADAM),
            "seconds": round(time.perf_counter() - started, 3),
            "files": {
                name: {"sha256": file_digest(work / name), "size": (work / name).stat().st_size}
                for name in FILES
            },
        }
        text = json.dumps(manifest, indent=1, sort_keys=True)
        write_bytes_atomic(work / MANIFEST, text.encode())
        _publish(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _generator_facts(G: torch.nn.Module, digest: str | None) -> dict[str, Any]:
    return {
        "digest": digest or generator_digest(G),
        "img_resolution": int(G.img_resolution),
        "num_ws": int(G.num_ws),
        "w_dim": int(G.w_dim),
        "z_dim": int(G.z_dim),
        "c_dim": int(G.c_dim),
    }


def _publish(work: Path, target: Path) -> None:
    """Replace ``target`` by the complete ``work`` directory (one rename each way)."""
    stale = None
    if target.exists():
        stale = target.parent / f".{target.name}.stale-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(target, stale)
    os.replace(work, target)
    fsync_path(target.parent)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The directory's manifest, or None when it has none or an unreadable one."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_artifacts(
    directory: str | os.PathLike[str],
    G: torch.nn.Module,
    spec: ExportParams,
    digest: str | None = None,
) -> dict[str, Any]:
    """The manifest of ``directory`` if it is the export of ``G`` for ``spec`` by this
    dragpipe with every file intact; ``ArtifactMismatch`` saying what differs otherwise."""
    path = Path(directory)
    manifest = read_manifest(path)
    if manifest is None:
        raise ArtifactMismatch(f"{path} has no readable {MANIFEST} (not a complete export)")
    if manifest.get("format") != FORMAT or manifest.get("dragpipe") != __version__:
        raise ArtifactMismatch(
            f"{path} was exported by another version ({manifest.get('format')!r}, dragpipe "
            f"{manifest.get('dragpipe')!r}; this is {FORMAT!r}, dragpipe {__version__!r})"
        )
    facts = manifest.get("generator") or {}
    if facts.get("digest") != (digest or generator_digest(G)):
        raise ArtifactMismatch(f"{path} was exported from another generator (digest differs)")
    if manifest.get("params") != spec.to_dict():
        raise ArtifactMismatch(f"{path} was exported for other drag parameters")
    files = manifest.get("files") or {}
    for name in FILES:
        file, entry = path / name, files.get(name) or {}
        if not file.is_file() or file.stat().st_size != entry.get("size"):
            raise ArtifactMismatch(f"{path}: {name} is missing or has the wrong size")
        if file_digest(file) != entry.get("sha256"):
            raise ArtifactMismatch(f"{path}: {name} is damaged (digest mismatch)")
    return manifest


def open_artifacts(
    G: torch.nn.Module,
    directory: str | os.PathLike[str],
    spec: ExportParams,
    lr: float = 1e-3,
    window: int | None = None,
    report: Any = None,  # report(message) when an existing directory is refused
) -> dict[str, Any]:
    """The manifest of a verified export of ``G`` for ``spec`` in ``directory``, exporting
    (or re-exporting over a stale or foreign one) first when needed."""
    path = Path(directory)
    digest = generator_digest(G)
    if path.exists():
        try:
            return check_artifacts(path, G, spec, digest)
        except ArtifactMismatch as exc:
            if report is not None:
                report(f"{exc}; exporting again")
    return export_artifacts(G, path, spec, lr=lr, window=window, digest=digest)
