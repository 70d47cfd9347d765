"""The same face is the same work: an inversion (and a drag) is keyed by the aligned face,
not by the face selection or spec that found it; before a photo's alignment, status says
what is known ("faces: decided after alignment") and counts right once it is known."""

from __future__ import annotations

import numpy as np
from PIL import Image
from pipeline_fixtures import SPEC, computed, run

from pipeline.cli import main
from pipeline.plan import JobGraph
from pipeline.progress import Display
from pipeline.runner import RunOptions
from pipeline.runner import make_context as _context
from pipeline.spec import load_spec
from pipeline.status import spec_status
from pipeline.store import Store


def make_context(spec, options):
    return _context(spec, options, Display(-1))


def _two_faces_project(folder, conftest_make):
    """Grace Hopper twice side by side (two faces), with the tiny spec as ``face: all`` and
    as ``face: 1`` (the right-hand face), each with one landmark edit."""
    conftest_make(folder)
    hopper = np.asarray(Image.open(folder / "hopper.jpg").convert("RGB"))
    Image.fromarray(np.concatenate([hopper, hopper], axis=1)).save(folder / "pair.png")
    head = SPEC.split("photos:")[0].format(tune_steps=6, brow_landmark="nose_tip")
    edit = (
        "    edits:\n      - name: smile\n        points:\n"
        "          - handle: {landmark: mouth_left}\n"
        "            target: {landmark: mouth_left, offset: [-0.1, -0.05]}\n"
    )
    specs = {}
    for name, face in (("all", "all"), ("one", "1")):
        specs[name] = folder / f"{name}.yaml"
        photo = f"photos:\n  - id: pair\n    path: pair.png\n    face: {face}\n"
        specs[name].write_text(head + photo + edit)
    return specs


def _rows(spec, work) -> list[tuple[str, str, str]]:
    """(stage, what, state) of every row ``status`` shows."""
    graph = JobGraph.of(load_spec(spec), make_context(load_spec(spec), RunOptions(work, work)))
    return [(status.stage, status.what, status.state) for status in spec_status(graph)]


def test_face_all_then_one_face_reuses_the_inversion_and_status_says_what_is_known(
    tmp_path, capsys
):
    from conftest import make_project_folder

    specs = _two_faces_project(tmp_path, make_project_folder)
    work = tmp_path / ".dragpipe"
    # Before any alignment: no invented "face 0", the faces are decided after alignment.
    assert _rows(specs["all"], work) == [
        ("align", "faces", "to be computed"),
        ("invert", "faces: decided after alignment", "after alignment"),
        ("edit", "smile (faces: decided after alignment)", "after alignment"),
        ("composite", "smile (faces: decided after alignment)", "after alignment"),
    ]
    assert main(["status", str(specs["all"])]) == 0
    out = capsys.readouterr().out
    assert "0 cached, 1 to be computed, 0 stale, 3 decided after alignment" in out

    report, _ = run(specs["all"], work, tmp_path / "out", only="invert")
    assert computed(report) == {("align", "2 face(s)"), ("invert", "face 0"), ("invert", "face 1")}
    assert main(["status", str(specs["all"])]) == 0  # counted right once it is known
    out = " ".join(capsys.readouterr().out.split())
    assert "3 cached, 3 to be computed, 0 stale" in out and "after alignment" not in out

    assert [row[:2] for row in _rows(specs["one"], work)][1] == ("invert", "face 1")  # not 0
    assert main(["run", str(specs["one"]), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: 1 of 1 stage results would be computed; 3 more are decided after" in out

    report, _ = run(specs["one"], work, tmp_path / "out", only="edit")
    # face: 1 is the right-hand face of face: all: its inversion is served, not recomputed.
    assert computed(report) == {("align", "1 face(s)"), ("edit", "smile")}
    inverts = [key for stage, key in Store(work).all_results() if stage == "invert"]
    assert len(inverts) == 2
    # ... and its drag is the same work as face: all's drag of face 1.
    report, _ = run(specs["all"], work, tmp_path / "out", only="edit")
    assert computed(report) == {("edit", "smile (face 0)")}
