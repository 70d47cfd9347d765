"""``drag: {backend: onnxruntime}`` in a spec and ``dragpipe export-onnx``: the edits run on one
ONNX export kept in the store (keyed by the tuned generator and the export parameters),
reused by a rerun, with results that agree with the torch backend's; without ONNX Runtime
training the spec is refused before any work, naming the extra."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from pipeline_fixtures import computed, copy_project, run

from pipeline.cli import main


def test_spec_with_onnxruntime_backend_is_refused_without_the_extra(
    pipeline_run, tmp_path, monkeypatch, capsys
):
    import draggan.onnx.requirements as requirements
    from pipeline.spec import SpecError, load_spec

    spec, _ = copy_project(pipeline_run, tmp_path)
    spec.write_text(spec.read_text().replace("lr: 0.01}", "lr: 0.01, backend: onnxruntime}"))
    monkeypatch.setattr(requirements.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SpecError) as error:
        load_spec(spec)
    message = str(error.value)
    assert "drag.backend" in message and "pip install 'dragpipe[onnx]'" in message
    assert main(["run", str(spec), "--workdir", str(tmp_path / "work2")]) == 2
    assert not (tmp_path / "work2").exists()  # nothing ran
    assert "dragpipe[onnx]" in capsys.readouterr().err


def test_edits_run_on_one_stored_export_reused_by_a_rerun(pipeline_run, tmp_path):
    pytest.importorskip("onnxruntime.training.api")
    from pipeline.runner import forced_stages

    spec, work = copy_project(pipeline_run, tmp_path)
    spec.write_text(spec.read_text().replace("lr: 0.01}", "lr: 0.01, backend: onnxruntime}"))
    out = tmp_path / "out"
    report, warnings = run(spec, work, out)
    assert warnings == [] and report.failures == {}
    assert {stage for stage, _ in computed(report)} == {"edit", "composite"}  # align, invert cached
    # One export serves the face's three edits (same generator, same export parameters).
    exports = list((work / "artifacts" / "onnx").iterdir())
    assert len(exports) == 1
    manifest = json.loads((exports[0] / "manifest.json").read_text())
    assert manifest["params"]["handles"] == 1 and manifest["params"]["mode"] == "fast"
    for edit in ("smile", "brow", "more"):
        ours = np.asarray(Image.open(out / "hopper" / f"{edit}_after.png"), dtype=np.int16)
        torch_run = np.asarray(
            Image.open(pipeline_run[3] / "hopper" / f"{edit}_after.png"), dtype=np.int16
        )
        assert np.abs(ours - torch_run).max() <= 1, edit
    checkpoint = exports[0] / "checkpoint"
    mtime = checkpoint.stat().st_mtime_ns
    report, warnings = run(spec, work, out, force=forced_stages("edit"))
    assert warnings == [] and {stage for stage, _ in computed(report)} == {"edit", "composite"}
    assert list((work / "artifacts" / "onnx").iterdir()) == exports
    assert checkpoint.stat().st_mtime_ns == mtime  # reused, not exported again


def test_export_onnx_command(tmp_path, capsys):
    pytest.importorskip("onnxruntime.training.api")
    from pathlib import Path

    weights = Path(__file__).resolve().parent / "fixtures" / "disc_generator.safetensors"
    out = tmp_path / "exported"
    code = main(["export-onnx", str(weights), str(out), "--mode", "official", "--handles", "2"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["mode"] == "official" and manifest["params"]["handles"] == 2
    assert manifest["generator"]["img_resolution"] == 64 and manifest["lr"] == 1e-3
    for name in ("mapping.onnx", "synthesis.onnx", "training_model.onnx", "checkpoint"):
        assert (out / name).stat().st_size == manifest["files"][name]["size"]
    assert "exported" in capsys.readouterr().out
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["export-onnx", str(weights), str(busy)]) == 2
    assert (busy / "notes.txt").read_text() == "mine"
    assert "not an earlier export" in capsys.readouterr().err


def test_edits_of_one_face_computed_at_once_make_one_export(tmp_path, monkeypatch):
    """Two edits of one face on two cluster workers need the same export at the same time:
    the second waits on the export's lease and reuses it (without the lease both exported,
    and the later one replaced the directory the other was opening)."""
    pytest.importorskip("onnxruntime.training.api")
    import threading
    import time
    from pathlib import Path
    from types import SimpleNamespace

    from draggan import DragConfig
    from draggan.native_format import load_native
    from draggan.onnx import export as onnx_export
    from pipeline.stages.edit import onnx_artifacts
    from pipeline.store import Store

    weights = Path(__file__).resolve().parent / "fixtures" / "disc_generator.safetensors"
    G = load_native(weights).eval()
    config = DragConfig(backend="onnxruntime", feature_resolution=32, r1=3.0, r2=6.0)
    said: list[str] = []
    display = SimpleNamespace(info=said.append, warn=said.append)
    ctx = SimpleNamespace(store=Store(tmp_path / "work"), run=None, display=display)
    real, exports = onnx_export.export_artifacts, []

    def exporting(*args, **kwargs):
        exports.append(threading.current_thread().name)
        deadline = time.monotonic() + 30  # hold the export until the other edit waits
        while not any("waiting for" in text for text in said) and time.monotonic() < deadline:
            time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx_export, "export_artifacts", exporting)
    found: dict[str, Path | None] = {}

    def edit(name: str) -> None:
        found[name] = onnx_artifacts(ctx, G, config, 1, f"hopper {name}")  # type: ignore[arg-type]

    first = threading.Thread(target=edit, args=("smile",), name="smile")
    first.start()
    while not exports and first.is_alive():
        time.sleep(0.02)
    second = threading.Thread(target=edit, args=("brow",), name="brow")
    second.start()
    first.join(120)
    second.join(120)
    assert exports == ["smile"]
    waits = [text for text in said if "waiting for" in text]
    assert len(waits) == 1, said
    assert waits[0].startswith(f"hopper brow drag: waiting for pid {os.getpid()} on ")
    assert waits[0].endswith("which is making the ONNX export it needs")
    assert found["smile"] == found["brow"] is not None
    assert onnx_export.read_manifest(found["smile"])["params"]["handles"] == 1
    assert list((tmp_path / "work" / "artifacts" / "onnx").iterdir()) == [found["smile"]]
    assert not list((tmp_path / "work" / "leases").iterdir())
