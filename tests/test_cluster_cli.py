"""``dragpipe run --executor ray``: what the command line checks before any cluster work,
with or without ray installed."""

from __future__ import annotations

import sys

import pytest

from pipeline.cli import main


def test_without_ray_the_ray_executor_fails_at_once_saying_what_to_install(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    spec = tmp_path / "spec.yaml"  # never read: the check comes first
    assert main(["run", str(spec), "--executor", "ray"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [
        "dragpipe: error: --executor ray needs the ray package: "
        "pip install 'dragpipe[ray]' (or: pip install ray)"
    ]
    assert captured.out == "" and not (tmp_path / ".dragpipe").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--address", "auto"], "--address is an option of --executor ray"),
        (["--gpus-per-job", "1"], "--gpus-per-job is an option of --executor ray"),
        (["--executor", "ray", "--cpus-per-job", "0"], "--cpus-per-job must be > 0, got 0"),
        (["--executor", "ray", "--gpus-per-job", "-1"], "--gpus-per-job must be >= 0, got -1"),
    ],
)
def test_cluster_options_are_checked_before_anything_runs(tmp_path, capsys, flags, message):
    assert main(["run", str(tmp_path / "spec.yaml"), *flags]) == 2
    assert capsys.readouterr().err.strip() == f"dragpipe: error: {message}"
