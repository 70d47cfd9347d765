"""``drag: {backend: onnxruntime}`` in a spec and ``dragpipe export-onnx``: the edits run on one
ONNX export kept in the store (keyed by the tuned generator and the export parameters),
reused by a rerun, with results that agree with the torch backend's; without ONNX Runtime
training the spec is refused before any work, naming the extra."""

from __future__ import annotations

import json

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
