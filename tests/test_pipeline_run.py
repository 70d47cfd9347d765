"""End-to-end runs on a tiny generator: outputs, caching, what recomputes, damaged results."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from pipeline_fixtures import (
    assert_same_files,
    computed,
    copy_project,
    digests,
    run,
    write_spec,
)

ALL_STAGES = {
    ("align", "1 face(s)"),
    ("invert", "face 0"),
    ("edit", "smile"),
    ("edit", "brow"),
    ("edit", "more"),
    ("composite", "smile"),
    ("composite", "brow"),
    ("composite", "more"),
}


def test_first_run_computes_everything_and_writes_the_outputs(pipeline_run):
    folder, _, _, out, report = pipeline_run
    assert computed(report) == ALL_STAGES
    files = sorted(p.name for p in (out / "hopper").iterdir())
    expected = [
        f"{edit}{suffix}"
        for edit in ("brow", "more", "smile")
        for suffix in (".jpg", "_after.png", "_before.png", "_trajectory.gif")
    ]
    assert files == sorted(expected)
    with (
        Image.open(folder / "hopper.jpg") as photo,
        Image.open(out / "hopper" / "smile.jpg") as edited,
    ):
        assert edited.format == "JPEG" and edited.size == photo.size and edited.mode == photo.mode
    with Image.open(out / "hopper" / "smile_trajectory.gif") as gif:
        assert gif.n_frames >= 3  # before, the steps, the result
    # the chained edit starts where 'smile' ended
    assert (out / "hopper" / "more_before.png").read_bytes() == (
        out / "hopper" / "smile_after.png"
    ).read_bytes()
    # every metric the summary shows says which way is better (and its threshold)
    invert = next(r for r in report.rows if r.stage == "invert")
    assert "dB (higher better)" in invert.metrics and "(lower better)" in invert.metrics
    assert "identity n/a (dlib found no face" in invert.metrics  # a 32 px test generator
    edit = next(r for r in report.rows if r.what == "smile" and r.stage == "edit")
    assert "distance to target" in edit.metrics and "px (goal <= 2 px)" in edit.metrics
    assert "3 steps" in edit.metrics


def test_second_run_computes_nothing_and_rewrites_identical_files(pipeline_run):
    _, spec, work, out, _ = pipeline_run
    before = digests(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    report, warnings = run(spec, work, out)
    assert computed(report) == set() and warnings == []
    assert {row.status for row in report.rows} == {"cached"}
    assert digests(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes


def test_changing_an_edits_points_recomputes_only_that_edit_and_its_composite(
    pipeline_run, tmp_path
):
    spec, work = copy_project(pipeline_run, tmp_path)
    write_spec(spec.parent, brow_landmark="right_eyebrow_outer")  # rewrites spec.yaml
    report, _ = run(spec, work, tmp_path / "out")
    assert computed(report) == {("edit", "brow"), ("composite", "brow")}


def test_changing_the_inversion_recomputes_inversion_edits_and_composites(pipeline_run, tmp_path):
    spec, work = copy_project(pipeline_run, tmp_path)
    write_spec(spec.parent, tune_steps=5)
    report, _ = run(spec, work, tmp_path / "out")
    assert computed(report) == ALL_STAGES - {("align", "1 face(s)")}


def test_changing_the_output_folder_recomputes_nothing(pipeline_run, tmp_path):
    _, spec, work, out, _ = pipeline_run
    report, _ = run(spec, work, tmp_path / "elsewhere")
    assert computed(report) == set()
    assert digests(tmp_path / "elsewhere") == digests(out)


def test_damaged_results_of_every_stage_are_detected_and_recomputed(pipeline_run, tmp_path):
    _, _, original_work, out, _ = pipeline_run
    spec, work = copy_project(pipeline_run, tmp_path)
    damaged = {}
    for stage, name in (
        ("align", "faces.json"),
        ("invert", "generator.safetensors"),
        ("edit", "ws.safetensors"),
        ("composite", None),
    ):
        result = sorted((work / "results" / stage).iterdir())[0]
        manifest = json.loads((result / "manifest.json").read_text())
        name = name or next(n for n in manifest["files"] if n.startswith("output"))
        target = result / name
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        damaged[stage] = target
    report, warnings = run(spec, work, tmp_path / "out")
    for stage, target in damaged.items():
        assert any(str(target) in w and "damaged" in w for w in warnings), stage
        assert target.is_file()  # recomputed and published again
    assert {stage for stage, _ in computed(report)} == {"align", "invert", "edit", "composite"}
    # Recomputed results equal the first run's, byte for byte.
    assert_same_files(work / "results", original_work / "results")
    assert_same_files(tmp_path / "out", out)


def test_half_written_result_without_manifest_is_not_used(pipeline_run, tmp_path):
    spec, work = copy_project(pipeline_run, tmp_path)
    result = sorted((work / "results" / "composite").iterdir())[0]
    (result / "manifest.json").unlink()
    report, warnings = run(spec, work, tmp_path / "out")
    assert len(computed(report)) == 1 and "no manifest" in warnings[0]


def test_tuned_generator_is_stored_once_as_a_compact_delta(pipeline_run):
    folder, _, work, _, _ = pipeline_run
    inverts = list((work / "results" / "invert").iterdir())
    assert len(inverts) == 1  # three edits share the one tuned generator
    delta = inverts[0] / "generator.safetensors"
    base = folder / "gen.safetensors"
    assert (
        delta.stat().st_size < 0.6 * base.stat().st_size
    )  # fp16 delta, unchanged buffers left out
    edits = list((work / "results" / "edit").iterdir())
    assert all(not (e / "generator.safetensors").exists() for e in edits)


def test_only_and_force(pipeline_run, tmp_path):
    spec, work = copy_project(pipeline_run, tmp_path)
    report, _ = run(spec, work, tmp_path / "out", only="align")
    assert [row.stage for row in report.rows] == ["align"]
    from pipeline.runner import forced_stages

    report, _ = run(spec, work, tmp_path / "out", force=forced_stages("composite"))
    assert computed(report) == {r for r in ALL_STAGES if r[0] == "composite"}
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "out" / "hopper" / "smile.jpg")),
        np.asarray(Image.open(pipeline_run[3] / "hopper" / "smile.jpg")),
    )
