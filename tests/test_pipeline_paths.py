"""Folders a run cannot write are found before any work (one line naming the path, exit 2);
``status`` and ``run --dry-run`` write nothing, so they work on a read-only cache."""

from __future__ import annotations

import os
import shutil

import pytest
from pipeline_fixtures import copy_project

from pipeline.cli import main


def _tree(folder) -> dict[str, tuple[bytes, int]]:
    """{relative path: (bytes, mtime_ns)} of every file and folder under ``folder``."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "internal error" not in err[0] and "Traceback" not in err[0]
    return err[0]


def test_out_naming_a_file_fails_before_any_work(pipeline_run, tmp_path, capsys):
    spec, work = copy_project(pipeline_run, tmp_path)
    shutil.rmtree(work / "results" / "composite")  # work the run would do first
    (tmp_path / "taken").write_text("a file")
    out = tmp_path / "taken" / "results"
    assert main(["-q", "run", str(spec), "--workdir", str(work), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert f"{tmp_path / 'taken'} is a file" in line and "--out" in line
    assert not (work / "results" / "composite").exists()  # nothing was computed
    assert main(["-q", "run", str(spec), "--workdir", str(work), "--out", str(out), "--dry-run"])
    assert "is a file" in _one_error_line(capsys)


def test_workdir_naming_a_file_fails_before_any_work(pipeline_run, tmp_path, capsys):
    spec, _ = copy_project(pipeline_run, tmp_path)
    (tmp_path / "cache").write_text("a file")
    assert main(["-q", "run", str(spec), "--workdir", str(tmp_path / "cache")]) == 2
    line = _one_error_line(capsys)
    assert f"{tmp_path / 'cache'} is a file, not a folder" in line and "--workdir" in line
    assert not (spec.parent / "dragpipe-out").exists()


def test_status_and_dry_run_write_nothing(pipeline_run, tmp_path, capsys):
    spec, work = copy_project(pipeline_run, tmp_path)
    # Make them learn something: the photo's digest (new mtime) and the generator's facts.
    os.utime(spec.parent / "hopper.jpg", ns=(1, 1))
    shutil.rmtree(work / "generators")
    before = _tree(work)
    assert main(["status", str(spec), "--workdir", str(work)]) == 0
    assert "8 cached, 0 to be computed, 0 stale" in capsys.readouterr().out
    assert main(["run", str(spec), "--workdir", str(work), "--dry-run"]) == 0
    assert "0 of 8 stage results would be computed" in capsys.readouterr().out
    assert _tree(work) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_status_works_and_run_says_so(pipeline_run, tmp_path, capsys):
    spec, work = copy_project(pipeline_run, tmp_path)
    folders = [p for p in [work, *work.rglob("*")] if p.is_dir()]
    for folder in folders:
        folder.chmod(0o555)
    try:
        assert main(["status", str(spec), "--workdir", str(work)]) == 0
        assert "8 cached" in capsys.readouterr().out
        assert main(["-q", "run", str(spec), "--workdir", str(work)]) == 2
        assert "not writable" in _one_error_line(capsys)
    finally:
        for folder in folders:
            folder.chmod(0o755)
