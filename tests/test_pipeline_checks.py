"""Cheap checks first: what the spec, the photo's size or its alignment decide is reported
before any inversion (an inversion costs up to most of an hour with a real checkpoint)."""

from __future__ import annotations

import shutil

from PIL import Image
from pipeline_fixtures import copy_project

from pipeline.cli import main

SECOND_PHOTO = """
  - id: second
    path: hopper.jpg
    edits:
      - name: far
        points: [[[5000, 5000], [5010, 5000]]]
"""


def test_point_outside_the_crop_fails_before_any_inversion_of_any_photo(
    pipeline_run, tmp_path, capsys
):
    spec, work = copy_project(pipeline_run, tmp_path)
    for stage in ("invert", "edit", "composite"):  # the alignment stays cached
        shutil.rmtree(work / "results" / stage)
    spec.write_text(spec.read_text() + SECOND_PHOTO.lstrip("\n"))  # after a valid photo
    assert main(["run", str(spec), "--workdir", str(work), "--out", str(tmp_path / "o")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    # Not even the first, valid photo was inverted: the second's problem came first.
    assert not (work / "results" / "invert").exists()
    assert not list((work / "partial").glob("invert-*"))
    # Which face, how far outside, in words that do not read as a position inside the crop.
    assert (
        "photo 'second', edit 'far', point 0 handle [5000, 5000] (photo pixels) falls outside "
        "face 0's aligned crop, " in out
    )
    assert " px right of and " in out and " px below its edge" in out
    assert "photo px away" in out and "lands at aligned" not in out
    assert "stopped after the alignments, before any inversion" in out


def test_photo_space_mask_of_the_wrong_size_is_a_spec_error(pipeline_run, tmp_path, capsys):
    spec, _ = copy_project(pipeline_run, tmp_path)
    Image.new("L", (100, 80), 255).save(spec.parent / "mask.png")
    spec.write_text(
        spec.read_text().replace(
            "mask: {shape: circle, center: {landmark: nose_tip}, radius: 0.4}",
            "mask: {png: mask.png}",
        )
    )
    fresh = tmp_path / "fresh"
    assert main(["run", str(spec), "--workdir", str(fresh)]) == 2
    err = capsys.readouterr().err
    assert "edits[1].mask.png" in err or "mask.png:" in err
    assert "is 100x80 but the photo hopper.jpg is 512x600" in err
    assert not fresh.exists()  # found when the spec was checked, before any work
