"""The run / status / clean / demo commands: exit codes, reasons, what they leave behind."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pipeline_fixtures import copy_project

from pipeline.cli import main
from pipeline.store import RunLock, Store

BLANK_PHOTO = """
  - id: blank
    path: blank.png
    edits:
      - name: smile
        points: [[[10, 10], [12, 10]]]
"""


def _add_blank_photo(spec, first_in_list: bool) -> None:
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(spec.parent / "blank.png")
    text = spec.read_text()
    if first_in_list:
        text = text.replace("photos:\n", "photos:" + BLANK_PHOTO, 1)
    else:
        text += BLANK_PHOTO.lstrip("\n")
    spec.write_text(text)


def test_bad_spec_exits_2_and_computes_nothing(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("generator: nowhere.pkl\nphotos:\n  - id: a\n    pathh: x.jpg\n")
    assert main(["run", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "spec.yaml:4:" in err and "pathh" in err and "Traceback" not in err
    assert not (tmp_path / ".dragpipe").exists()


def test_usage_errors_exit_2(capsys):
    assert main(["clean"]) == 2
    assert "needs a SPEC" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["run", "spec.yaml", "--only", "paint"])
    assert exc.value.code == 2


def test_failing_photo_with_keep_going_exits_1_and_the_others_finish(
    pipeline_run, tmp_path, capsys
):
    spec, work = copy_project(pipeline_run, tmp_path)
    _add_blank_photo(spec, first_in_list=True)
    out = tmp_path / "out"
    assert main(["run", str(spec), "--workdir", str(work), "--out", str(out), "--keep-going"]) == 1
    captured = capsys.readouterr()
    assert "photo blank failed: no face found in" in captured.out
    assert (out / "hopper" / "smile.jpg").is_file()
    # without --keep-going the run stops at the failing (first) photo
    out2 = tmp_path / "out2"
    assert main(["run", str(spec), "--workdir", str(work), "--out", str(out2)]) == 1
    assert not (out2 / "hopper").exists()


def test_interrupted_run_exits_130_and_leaves_the_store_consistent(
    pipeline_run, tmp_path, monkeypatch, capsys
):
    import shutil

    from pipeline.stages import edit

    spec, work = copy_project(pipeline_run, tmp_path)
    shutil.rmtree(work / "results" / "edit")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(edit.EditTask, "compute", interrupted)
    assert main(["-q", "run", str(spec), "--workdir", str(work)]) == 130
    assert "interrupted" in capsys.readouterr().err
    store = Store(work)
    assert not (work / "results" / "edit").exists()
    assert all(store._verify(store.result_dir(s, k), k) for s, k in store.all_results())
    with RunLock(work, timeout=0):  # released
        pass


def test_status_says_why_a_stage_will_rerun(pipeline_run, tmp_path, capsys):
    spec, work = copy_project(pipeline_run, tmp_path)
    assert main(["status", str(spec), "--workdir", str(work)]) == 0
    assert "8 cached, 0 to be computed, 0 stale" in capsys.readouterr().out
    spec.write_text(spec.read_text().replace("lr: 0.01", "lr: 0.02"))
    assert main(["status", str(spec), "--workdir", str(work)]) == 0
    out = capsys.readouterr().out
    assert "2 cached, 0 to be computed, 6 stale" in out
    assert "drag parameters changed (lr: 0.01 -> 0.02)" in " ".join(out.split()).replace("│ ", "")
    # --dry-run says the same and computes nothing
    assert main(["run", str(spec), "--workdir", str(work), "--dry-run"]) == 0
    assert "6 of 8 stage results would be computed" in capsys.readouterr().out
    assert len(Store(work).all_results()) == 8


def test_clean_removes_what_the_spec_no_longer_uses(pipeline_run, tmp_path, capsys):
    spec, work = copy_project(pipeline_run, tmp_path)
    spec.write_text(spec.read_text().replace("lr: 0.01", "lr: 0.02"))
    assert main(["clean", str(spec), "--workdir", str(work)]) == 0
    assert "removed 6 cached results" in capsys.readouterr().out
    assert sorted(stage for stage, _ in Store(work).all_results()) == ["align", "invert"]
    assert main(["clean", "--all", "--workdir", str(work)]) == 0
    assert Store(work).all_results() == []


def test_demo_without_its_generator_says_how_to_make_it(tmp_path, monkeypatch, capsys):
    from pipeline.commands import demo

    (tmp_path / "examples" / "demo").mkdir(parents=True)
    (tmp_path / "examples" / "example.yaml").write_text("generator: demo/generator.safetensors\n")
    monkeypatch.setattr(demo, "source_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "demo generator" in err and "make_demo_generator.py" in err
    assert not (tmp_path / "dragpipe-demo").exists()


def test_example_spec_is_valid():
    from pipeline.commands.demo import source_root
    from pipeline.spec import load_spec

    spec = load_spec(source_root() / "examples" / "example.yaml", require_generator=False)
    assert spec.photos and all(photo.edits for photo in spec.photos)


def test_missing_lpips_weights_fail_before_any_work(pipeline_run, tmp_path, monkeypatch, capsys):
    spec, _ = copy_project(pipeline_run, tmp_path)
    spec.write_text(
        spec.read_text().replace("perceptual_backbone: random", "perceptual_backbone: pretrained")
    )
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    work = tmp_path / "fresh"
    assert main(["run", str(spec), "--workdir", str(work)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "alexnet-owt-7be5be79.pth" in err[0] and "TORCH_HOME" in err[0]
    assert Store(work).all_results() == []  # not even the alignment ran
