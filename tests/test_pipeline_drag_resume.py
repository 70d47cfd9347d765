"""A run SIGKILLed in the middle of a drag resumes from the drag's checkpoint (loop state and
the trajectory frames so far) and ends with the uninterrupted run's edit results; a damaged
drag checkpoint is reported and ignored."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from pipeline_fixtures import assert_same_files, computed, copy_project, run
from safetensors import safe_open
from safetensors.torch import load_file, save_file

# Runs the CLI in a subprocess that SIGKILLs itself right after the first drag saved its
# checkpoint at step 2 (of 3): a hard kill in the middle of a drag, at a known step.
_KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pipeline.stages import edit

    original = edit._save_checkpoint

    def killing(pending, state, frames, saved):
        original(pending, state, frames, saved)
        if state.step == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    edit._save_checkpoint = killing
    from pipeline.cli import main
    sys.exit(main(["run", sys.argv[1], "--workdir", sys.argv[2], "--out", sys.argv[3],
                   "--checkpoint-every", "1", "--only", "edit"]))
    """
)


@pytest.fixture
def killed(pipeline_run, tmp_path):
    """(first run, spec, workdir, the killed drag's partial directory)."""
    spec, work = copy_project(pipeline_run, tmp_path)
    for stage in ("edit", "composite"):  # keep alignment and inversion: not the point
        shutil.rmtree(work / "results" / stage)
    result = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(spec), str(work), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -9, result.stderr[-2000:]
    assert not (work / "results" / "edit").exists()
    (partial,) = (work / "partial").glob("edit-*")
    return pipeline_run, spec, work, partial


def _meta(path):
    with safe_open(str(path), "pt") as handle:
        return json.loads(handle.metadata()["meta"])


def test_run_killed_during_a_drag_resumes_and_matches_an_uninterrupted_run(killed, tmp_path):
    pipeline_run, spec, work, partial = killed
    checkpoints = partial / "checkpoints"
    meta = _meta(checkpoints / "drag.safetensors")
    # The state of step 2 (two updates done, records of steps 0 and 1) and the frames the
    # drag rendered before it (render_every 1).
    assert (meta["state"]["step"], len(meta["state"]["history"])) == (2, 2)
    assert meta["frames"] == [0, 1]
    assert sorted(p.name for p in checkpoints.glob("drag-frame-*")) == [
        "drag-frame-0.safetensors",
        "drag-frame-1.safetensors",
    ]

    log: list[str] = []
    report, warnings = run(spec, work, tmp_path / "out", log=log, checkpoint_every=1, only="edit")
    assert warnings == []
    assert sum("drag: resuming at step 2" in line for line in log) == 1
    assert {stage for stage, _ in computed(report)} == {"edit"}
    assert not partial.exists()  # published, checkpoints dropped
    # The same results as the uninterrupted first run (same keys, same files, the
    # trajectory animation with all its frames).
    assert_same_files(work / "results" / "edit", pipeline_run[2] / "results" / "edit")
    for result in (work / "results" / "edit").iterdir():
        history = json.loads((result / "history.json").read_text())
        expected = json.loads(
            (pipeline_run[2] / "results" / "edit" / result.name / "history.json").read_text()
        )
        assert [r["handles"] for r in history] == [r["handles"] for r in expected]


def test_a_damaged_drag_checkpoint_is_reported_and_ignored(killed, tmp_path):
    pipeline_run, spec, work, partial = killed
    state = partial / "checkpoints" / "drag.safetensors"
    meta = _meta(state)
    meta["state"]["inputs_digest"] = "0" * 64  # a state of other ws / points
    save_file(load_file(str(state)), str(state), metadata={"meta": json.dumps(meta)})

    log: list[str] = []
    report, warnings = run(spec, work, tmp_path / "out", log=log, checkpoint_every=1, only="edit")
    assert len(warnings) == 1 and "ignoring its checkpoint" in warnings[0]
    assert "ws, points or mask differs" in warnings[0] and "\n" not in warnings[0]
    # It was read, then refused by the drag before any step: the drag ran from step 0.
    assert sum("drag: resuming at step 2" in line for line in log) == 1
    assert {stage for stage, _ in computed(report)} == {"edit"}
    assert_same_files(work / "results" / "edit", pipeline_run[2] / "results" / "edit")
