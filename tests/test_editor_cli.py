"""``dragpipe edit``: a new spec from --photo/--generator, a photo added by path, one-line
errors, and the command itself serving the page until Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "examples" / "photos" / "grace_hopper.jpg"
GENERATOR = REPO / "examples" / "demo" / "generator.safetensors"


def test_a_new_spec_is_written_for_the_photo_and_generator(tmp_path, monkeypatch):
    shutil.copyfile(PHOTO, tmp_path / "my photo.jpg")
    from pipeline.commands import edit

    monkeypatch.setattr(edit, "run", lambda args: print(edit.prepare_spec(args)) or 0, raising=True)
    spec = tmp_path / "new.yaml"
    argv = ["edit", str(spec), "--photo", str(tmp_path / "my photo.jpg")]
    assert main([*argv, "--generator", str(GENERATOR)]) == 0
    loaded = load_spec(spec)
    assert [(p.id, p.path.name) for p in loaded.photos] == [("my-photo", "my photo.jpg")]
    assert Path(loaded.generator) == GENERATOR
    assert "photos:\n  - id: my-photo\n    path: my photo.jpg\n" in spec.read_text()
    # An existing spec gets a new photo by path; its id does not clash.
    assert main(["edit", str(spec), "--photo", str(tmp_path / "my photo.jpg")]) == 0
    assert [p.id for p in load_spec(spec).photos] == ["my-photo", "my-photo-2"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--photo", "nothing.jpg", "--generator", "g"], "--photo nothing.jpg: no such file"),
        (["--photo", str(PHOTO)], "give --generator CKPT"),
        (["--photo", str(PHOTO), "--generator", "missing.pkl"], "--generator missing.pkl"),
        ([], "to create it: give the photo file with --photo PATH"),
    ],
)
def test_bad_options_for_a_new_spec_are_one_line_errors(tmp_path, capsys, args, words):
    assert main(["edit", str(tmp_path / "new.yaml"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and not (tmp_path / "new.yaml").exists()


def test_the_command_serves_the_page_until_interrupted(tmp_path):
    shutil.copyfile(PHOTO, tmp_path / "grace.jpg")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"generator: {GENERATOR}\nphotos:\n  - id: grace\n    path: grace.jpg\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "edit", str(spec), "--no-browser", "--photo", "grace"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=([\w-]+)&photo=grace", line)
        assert found, line
        url, token = found.groups()
        with urllib.request.urlopen(f"{url}api/session?token={token}", timeout=30) as answer:
            assert json.loads(answer.read())["photos"][0]["id"] == "grace"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}api/session", timeout=30)
        assert refused.value.code == 403
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "stopped" in err
