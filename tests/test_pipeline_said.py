"""Say what happened: where an interrupted run resumes (on Ctrl-C and in ``status``), resumes
in the manifest, losses as LPIPS, why tuning stopped early, an edit with nothing to do, the
files a run wrote, and metrics with units, spaces and directions."""

from __future__ import annotations

import json
import shutil

import torch
from pipeline_fixtures import computed, copy_project, run

from pipeline.cli import main
from pipeline.plan import JobGraph
from pipeline.progress import Display
from pipeline.spec import load_spec
from pipeline.stages import invert
from pipeline.stages.context import StageContext
from pipeline.status import spec_status


def _fresh_inversion(pipeline_run, tmp_path):
    spec, work = copy_project(pipeline_run, tmp_path)
    for stage in ("invert", "edit", "composite"):  # the alignment stays cached
        shutil.rmtree(work / "results" / stage)
    return spec, work


def _why(spec, work, stage: str) -> str:
    ctx = StageContext.open(
        work, load_spec(spec).generator, torch.device("cpu"), Display(-1), read_only=True
    )
    statuses = spec_status(JobGraph.of(load_spec(spec), ctx))
    return next(status.why for status in statuses if status.stage == stage)


def _manifest_info(work, stage: str) -> dict:
    (result,) = (work / "results" / stage).iterdir()
    return json.loads((result / "manifest.json").read_text())["info"]


def test_an_interrupted_run_says_where_it_resumes_and_the_manifest_records_it(
    pipeline_run, tmp_path, monkeypatch, capsys
):
    spec, work = _fresh_inversion(pipeline_run, tmp_path)
    original = invert._checkpointing

    def interrupting(pending, name, every, bar, total):  # Ctrl-C right after tuning step 4
        callback = original(pending, name, every, bar, total)

        def wrapped(progress):
            callback(progress)
            if name == "tune" and progress.step == 4:
                raise KeyboardInterrupt

        return wrapped

    monkeypatch.setattr(invert, "_checkpointing", interrupting)
    args = ["--workdir", str(work), "--checkpoint-every", "2", "--only", "invert"]
    assert main(["-q", "run", str(spec), *args]) == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        "dragpipe: interrupted during hopper invert; projection done, tuning: 4/6 steps saved: "
        "rerun to resume from step 4 of the tuning"
    )
    monkeypatch.setattr(invert, "_checkpointing", original)
    assert _why(spec, work, "invert") == "projection done, tuning: 4/6 steps saved, will resume"

    report, _ = run(spec, work, tmp_path / "out", checkpoint_every=2, only="invert")
    assert computed(report) == {("invert", "face 0")}
    assert _manifest_info(work, "invert")["resumed"] == [
        {"loop": "projection", "from_step": 3, "of": 3},
        {"loop": "tuning", "from_step": 4, "of": 6},
    ]
    row = next(row for row in report.rows if row.stage == "invert")
    assert "tuning resumed at step 4" in row.metrics


def test_projection_shows_lpips_and_tuning_says_why_it_stopped_early(pipeline_run, tmp_path):
    spec, work = _fresh_inversion(pipeline_run, tmp_path)
    spec.write_text(spec.read_text().replace("lpips_threshold: 0.0", "lpips_threshold: 1.0e+9"))
    log: list[str] = []
    report, _ = run(spec, work, tmp_path / "out", log=log, log_interval=0.0, only="invert")
    projection = [line for line in log if line.startswith("hopper project: step")]
    assert len(projection) == 3 and all(", LPIPS 0." in line for line in projection), log
    assert not any("loss" in line or "noise_reg" in line for line in projection)
    said = "tuning stopped early, after 0 of 6 steps: LPIPS fell to lpips_threshold 1e+09"
    assert f"hopper {said}" in log
    assert said in next(row for row in report.rows if row.stage == "invert").metrics
    stop = _manifest_info(work, "invert")["tuning_stopped"]
    assert stop["after_steps"] == 0 and stop["of"] == 6


def test_run_lists_its_files_and_an_edit_with_nothing_to_do_says_so(pipeline_run, tmp_path, capsys):
    spec, work = copy_project(pipeline_run, tmp_path)
    still = "      - name: still\n        points: [[{landmark: nose_tip}, {landmark: nose_tip}]]\n"
    spec.write_text(spec.read_text() + still)
    out = tmp_path / "out"
    assert main(["run", str(spec), "--workdir", str(work), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "edit 'still' (face 0): every handle already sits on its target" in captured.err
    text = " ".join(captured.out.split())
    assert "handles already on their targets" in text
    assert "aligned px: pixels of the face crop the generator works on" in text
    listing = captured.out[captured.out.index("results in") :].splitlines()
    assert listing[0] == (
        f"results in {out}/ (16 files, 16 written, 0 already up to date; cache in {work}/):"
    )
    assert "  hopper/smile.jpg" in listing and "  hopper/still_trajectory.gif" in listing
    assert main(["-q", "run", str(spec), "--workdir", str(work), "--out", str(out)]) == 0
    assert "  hopper/smile.jpg  (unchanged)" in capsys.readouterr().out.splitlines()


def test_edit_metrics_separate_each_handles_distance():
    from pipeline.summary import edit_metrics

    metrics = {"final_distance": [1.04, 0.83], "stop_distance": 2, "steps": 57, "converged": True}
    text = edit_metrics(metrics, scale=2.5)
    assert text.startswith("distance to target 1.0, 0.8 aligned px = 3, 2 photo px")
    assert "57 steps" in text and "not converged" not in text
