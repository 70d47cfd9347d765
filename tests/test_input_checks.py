"""Inputs that cannot work are refused before any work, by every command, with one true line:
oversized and truncated photos, garbage generator files; files are written with the umask."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
from image_writers import header_only_png

from pipeline.cli import main
from pipeline.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO / "examples" / "photos"
DEMO_GENERATOR = REPO / "examples" / "demo" / "generator.safetensors"


def write_spec(folder: Path, photo: str, generator: Path = DEMO_GENERATOR) -> Path:
    spec = folder / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""\
            generator: {generator}
            photos:
              - id: p
                path: {photo}
                edits:
                  - name: lift
                    points:
                      - handle: {{landmark: nose_tip}}
                        target: {{landmark: nose_tip, offset: [0.0, -0.03]}}
            """
        )
    )
    return spec


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "internal error" not in err and "Traceback" not in err, err
    return err


def test_oversized_photo_is_refused_by_every_command_with_its_size(tmp_path, capsys):
    header_only_png(tmp_path / "big.png", 30_000, 30_000)  # 900 MP announced, 100 bytes
    spec = write_spec(tmp_path, "big.png")
    work = tmp_path / "work"
    for command in (["status"], ["run", "--dry-run"], ["run"]):
        assert main([command[0], str(spec), "--workdir", str(work), *command[1:]]) == 2
        err = one_error_line(capsys)
        assert "spec.yaml:4:" in err and "photos[0].path" in err
        assert "big.png is 30000x30000 pixels (900 megapixels)" in err
        assert "limit of 250 megapixels" in err
    assert not work.exists()
    preview = tmp_path / "preview.png"
    assert main(["landmarks", str(tmp_path / "big.png"), "-o", str(preview)]) == 1
    err = one_error_line(capsys)
    assert "big.png is 30000x30000 pixels (900 megapixels), over dragpipe's limit of 250" in err
    assert not preview.exists()


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "astronaut.png"])
def test_truncated_photo_is_found_when_the_spec_is_checked(tmp_path, name, capsys):
    data = (PHOTOS / name).read_bytes()
    cut = tmp_path / f"cut{Path(name).suffix}"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    spec = write_spec(tmp_path, cut.name)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    (problem,) = info.value.problems
    assert problem.field == "photos[0].path" and problem.line == 4
    assert f"the photo {cut.resolve()} is damaged or truncated" in problem.message
    assert main(["status", str(spec), "--workdir", str(tmp_path / "work")]) == 2
    assert "is damaged or truncated" in one_error_line(capsys)


@pytest.mark.parametrize(
    "content, says",
    [
        (b"this is not a checkpoint\n" * 10, "is not a checkpoint dragpipe reads"),
        (b"", "the file is empty"),
        (b"PK\x03\x04" + bytes(60), "is a torch.save archive"),
    ],
    ids=["text", "empty", "zip"],
)
def test_garbage_generator_is_a_spec_problem(tmp_path, content, says, capsys):
    generator = tmp_path / "gen.pkl"
    generator.write_bytes(content)
    spec = write_spec(tmp_path, str(PHOTOS / "grace_hopper.jpg"), generator)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    (problem,) = info.value.problems
    assert problem.field == "generator" and problem.line == 1 and says in problem.message
    work = tmp_path / "work"
    assert main(["run", str(spec), "--workdir", str(work)]) == 2
    assert says in one_error_line(capsys)
    assert not work.exists()


def test_damaged_checkpoint_found_when_loading_exits_2(tmp_path, capsys):
    # Starts like a pickle (passes the spec check), then garbage: found when it is loaded,
    # which a run does before any photo is touched.
    generator = tmp_path / "gen.pkl"
    generator.write_bytes(b"\x80\x04\x95" + b"\xff" * 200)
    spec = write_spec(tmp_path, str(PHOTOS / "grace_hopper.jpg"), generator)
    assert main(["run", str(spec), "--workdir", str(tmp_path / "work")]) == 2
    err = one_error_line(capsys)
    assert err.startswith("dragpipe: error: generator: ") and "gen.pkl" in err


def test_landmarks_writes_files_with_the_users_umask(tmp_path, capsys):
    out, data = tmp_path / "preview.png", tmp_path / "faces.json"
    fast = ["--size", "64", "--transform-size", "256"]
    previous = os.umask(0o022)
    try:
        argv = ["landmarks", str(PHOTOS / "grace_hopper.jpg"), "-o", str(out), "--json", str(data)]
        assert main([*argv, *fast]) == 0
    finally:
        os.umask(previous)
    written = [out, data, tmp_path / "preview_aligned_0.png"]
    assert [stat.S_IMODE(path.stat().st_mode) for path in written] == [0o644] * 3
    assert not list(tmp_path.glob(".*.tmp"))
