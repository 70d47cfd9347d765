"""``clean`` never deletes another spec's work: specs sharing a workdir are recorded by
``run``; ``clean SPEC`` removes only what none of them references, lists it with sizes and
asks first (``--yes``, ``--dry-run``)."""

from __future__ import annotations

import io

from pipeline_fixtures import SPEC, copy_project, run

from pipeline.cli import main
from pipeline.store import Store

# The tiny spec with only its first edit: a second spec of the same folder, a subset.
ONLY_SMILE = SPEC.format(tune_steps=6, brow_landmark="-").split("      - name: brow")[0]


def _clean(capsys, monkeypatch, *args, answer: str | None = None) -> tuple[int, str]:
    if answer is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    code = main(["clean", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_clean_keeps_every_recorded_specs_work_and_asks(
    pipeline_run, tmp_path, capsys, monkeypatch
):
    spec, work = copy_project(pipeline_run, tmp_path)  # spec.yaml ran here: 8 results
    smile = spec.parent / "smile.yaml"  # a second spec in the same folder: a subset
    smile.write_text(ONLY_SMILE)
    report, _ = run(smile, work, tmp_path / "out")
    assert report.computed == 0
    assert len(Store(work).all_results()) == 8

    code, out = _clean(capsys, monkeypatch, smile, "--workdir", work, "--yes")
    assert code == 0 and "nothing to remove" in out
    assert "kept 8 cached results used by smile.yaml, spec.yaml" in out
    assert len(Store(work).all_results()) == 8  # spec.yaml's brow and more are kept

    text = spec.read_text()
    spec.write_text("photos: [")  # a recorded spec that cannot be read: its last run counts
    code, out = _clean(capsys, monkeypatch, smile, "--workdir", work, "--dry-run")
    assert code == 0 and "cannot be read now" in out and "keeping the 8 results" in out
    assert "nothing to remove" in out

    spec.write_text(text.replace("lr: 0.01", "lr: 0.02"))  # spec.yaml's edits change
    code, out = _clean(capsys, monkeypatch, smile, "--workdir", work, "--dry-run")
    # smile.yaml still uses the smile edit and composite; brow and more are nobody's now
    assert code == 0 and "4 cached results (" in out and "dry run: nothing removed" in out
    assert "hopper edit-brow-face0" in out and "hopper composite-more" in out
    assert "edit-smile" not in out and " KB" in out
    assert "kept 4 cached results used by smile.yaml, spec.yaml" in out
    assert len(Store(work).all_results()) == 8

    code, out = _clean(capsys, monkeypatch, smile, "--workdir", work, answer="n\n")
    assert code == 0 and "remove these 4" in out and "nothing removed" in out
    code, out = _clean(capsys, monkeypatch, smile, "--workdir", work, answer="")  # no input
    assert code == 2 and "--yes" in out
    assert len(Store(work).all_results()) == 8

    spec.unlink()  # a recorded spec that no longer exists keeps nothing, and says so
    code, out = _clean(capsys, monkeypatch, smile, "--workdir", work, answer="y\n")
    assert code == 0 and "spec.yaml ran in this workdir but no longer exists" in out
    assert "removed 4 cached results" in out
    stages = sorted(stage for stage, _ in Store(work).all_results())
    assert stages == ["align", "composite", "edit", "invert"]
    assert [rec.path.name for rec in Store(work).recorded_specs()] == ["smile.yaml"]
