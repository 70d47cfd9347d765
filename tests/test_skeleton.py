"""The package installs, the CLI answers, and dlib's landmark model is on disk and loads."""

import subprocess
import sys

import numpy as np
import pytest

from draggan.version import __version__
from inversion import face_models
from pipeline.cli import main


def test_packages_import_and_version_is_installed():
    import draggan  # noqa: F401
    import inversion  # noqa: F401
    import pipeline  # noqa: F401

    assert __version__ != "0+unknown", "the dragpipe distribution is not installed"
    assert __version__[0].isdigit()


def test_cli_help_lists_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "usage: dragpipe" in capsys.readouterr().out


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"dragpipe {__version__}"


def test_python_dash_m_pipeline_is_the_same_cli():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"dragpipe {__version__}"


def test_unknown_command_is_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "dragpipe: error:" in err


def test_landmark_model_file_found_and_loads_in_dlib():
    import dlib

    path = face_models.model_path(face_models.LANDMARKS_68)
    predictor = dlib.shape_predictor(str(path))
    blank = np.zeros((100, 100, 3), dtype=np.uint8)
    shape = predictor(blank, dlib.rectangle(10, 10, 90, 90))
    assert shape.num_parts == 68


def test_broken_pipe_ends_quietly_without_traceback():
    # `dragpipe inspect X | head`: a reader that goes away must not produce a traceback.
    code = (
        "import sys, pipeline.cli as cli, pipeline.commands.inspect as cmd\n"
        "def boom(args):\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "cmd.run = boom\n"
        'sys.stderr.write(f\'exit={cli.main(["inspect", "x"])}\\n\')\n'
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stderr.strip().splitlines()[-1] == "exit=1"
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
