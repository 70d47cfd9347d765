"""``dragpipe landmarks``: previews, printed faces, JSON round trip, exit codes."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.alignment.preview import FACE_COLOURS
from pipeline.cli import main

PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "photos"
FAST = ["--size", "64", "--transform-size", "256"]


def exit_code(argv: list[str]) -> int:
    """main's return value, or argparse's exit code for command-line errors."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def test_landmarks_writes_previews_json_and_lists_faces(tmp_path, capsys):
    out = tmp_path / "preview.png"
    data = tmp_path / "faces.json"
    photo = PHOTOS / "astronaut.png"
    rc = main(["landmarks", str(photo), "-o", str(out), "--json", str(data), *FAST])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "2 face(s)" in printed and "(175, 76, 265, 166)" in printed
    preview = np.asarray(Image.open(out).convert("RGB"))
    assert preview.shape[0] == preview.shape[1] >= 1024  # enlarged for legible labels
    for index in (0, 1):  # each face's box is drawn in its colour
        colour = np.array(FACE_COLOURS[index])
        assert np.all(preview == colour, axis=2).sum() > 100
    for index in (0, 1):
        aligned = Image.open(tmp_path / f"preview_aligned_{index}.png")
        assert aligned.size == (1024, 1024)  # 64 px crops are drawn enlarged
    records = json.loads(data.read_text())
    assert records["photo_size"] == [512, 512] and len(records["faces"]) == 2
    face = records["faces"][1]
    assert face["source"] == "dlib" and len(face["landmarks"]) == 68
    assert face["transform"]["output_size"] == 64 and len(face["aligned_landmarks"]) == 68

    # The JSON is a valid landmark override: same faces, no detection.
    again = tmp_path / "again.png"
    rc = main(["landmarks", str(photo), "-o", str(again), "--landmarks", str(data), *FAST])
    assert rc == 0 and "override" in capsys.readouterr().out
    assert (tmp_path / "again_aligned_1.png").is_file()


def test_landmarks_single_face_choice(tmp_path, capsys):
    out = tmp_path / "p.png"
    rc = main(["landmarks", str(PHOTOS / "astronaut.png"), "-o", str(out), "--face", "1", *FAST])
    assert rc == 0
    assert (tmp_path / "p_aligned_1.png").is_file()
    assert not (tmp_path / "p_aligned_0.png").exists()


def test_no_face_exits_1_with_one_line(tmp_path, capsys):
    Image.fromarray(np.full((80, 90, 3), 120, np.uint8)).save(tmp_path / "blank.png")
    rc = main(["landmarks", str(tmp_path / "blank.png"), "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("dragpipe: error: no face found in")
    assert "blank.png" in err and "\n" not in err and not (tmp_path / "x.png").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    photo = str(PHOTOS / "grace_hopper.jpg")
    bad = tmp_path / "bad.json"
    bad.write_text("[[1, 2]]")
    cases = [
        ["landmarks", photo, "--landmarks", str(bad)],
        ["landmarks", photo, "-o", str(tmp_path / "missing_dir" / "p.png")],
        ["landmarks", photo, "-o", str(tmp_path / "p.jpg")],
        ["landmarks", photo, "-o", str(tmp_path / "p.png"), "--face", "3", *FAST],
        ["landmarks", photo, "--max-side", "10"],
        ["landmarks", photo, "--size", "0"],
    ]
    for argv in cases:
        assert exit_code(argv) == 2, argv
        # argparse errors print the usage first (pipeline.cli); the error is one line.
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("dragpipe: error:") and "Traceback" not in err[0], argv
    assert main(["landmarks", str(tmp_path / "nope.jpg")]) == 1
    assert "nope.jpg not found" in capsys.readouterr().err
