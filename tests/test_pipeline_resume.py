"""A run SIGKILLed in the middle of tuning resumes from its checkpoint; concurrent runs on one
workdir take turns through the lock."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time

from pipeline_fixtures import assert_same_files, computed, copy_project, run

from pipeline.cli import main
from pipeline.store import RunLock, Store

# Runs the CLI in a subprocess that SIGKILLs itself right after the tuning loop saved its
# checkpoint at step 4 (of 6): a hard kill in the middle of tuning, at a known step.
_KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pipeline.stages import invert

    original = invert._checkpointing

    def killing(pending, name, every, bar, total):
        callback = original(pending, name, every, bar, total)

        def wrapped(progress):
            callback(progress)
            if name == "tune" and progress.step == 4:
                os.kill(os.getpid(), signal.SIGKILL)

        return wrapped

    invert._checkpointing = killing
    from pipeline.cli import main
    sys.exit(main(["run", sys.argv[1], "--workdir", sys.argv[2], "--out", sys.argv[3],
                   "--checkpoint-every", "2", "--only", "invert"]))
    """
)


def test_run_killed_during_tuning_resumes_and_matches_an_uninterrupted_run(pipeline_run, tmp_path):
    spec, work = copy_project(pipeline_run, tmp_path)
    for stage in ("invert", "edit", "composite"):  # keep the alignment: it is not the point
        shutil.rmtree(work / "results" / stage)
    out = tmp_path / "out"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(spec), str(work), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    # Killed mid-tuning: no inversion published, its partial directory holds the pivot and
    # the tuning state of step 4.
    assert not (work / "results" / "invert").exists()
    (partial,) = (work / "partial").glob("invert-*")
    assert (partial / "ws.safetensors").is_file()
    from safetensors import safe_open

    with safe_open(str(partial / "checkpoints" / "tune.safetensors"), "pt") as handle:
        assert json.loads(handle.metadata()["meta"])["step"] == 4

    log: list[str] = []
    report, warnings = run(spec, work, out, log=log, checkpoint_every=2, only="invert")
    assert warnings == []
    assert any("tuning: resuming at step 4" in line for line in log)
    assert not any(" project: started" in line for line in log)  # the pivot was kept
    assert computed(report) == {("invert", "face 0")}
    assert not partial.exists()  # published
    # The same result as the uninterrupted first run (same key, same files).
    assert_same_files(work / "results" / "invert", pipeline_run[2] / "results" / "invert")


def _start(spec, work, out, log):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(spec),
            "--workdir",
            str(work),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),  # noqa: SIM115 - closed with the process
        text=True,
    )


def test_two_concurrent_runs_on_one_workdir_take_turns(pipeline_run, tmp_path):
    spec, work = copy_project(pipeline_run, tmp_path)
    shutil.rmtree(work / "results" / "composite")  # some work left for the runs to do
    lock = RunLock(work)
    lock.acquire()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    runs = [_start(spec, work, tmp_path / f"out{i}", log) for i, log in enumerate(logs)]
    try:
        deadline = time.monotonic() + 240
        while not all("waiting for the workdir lock" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            assert all(p.poll() is None for p in runs), [log.read_text() for log in logs]
            time.sleep(0.2)
        # a third run that does not wait fails at once, clearly
        assert main(["run", str(spec), "--workdir", str(work), "--no-wait"]) == 1
    finally:
        lock.release()
    outputs = [p.communicate(timeout=300)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [log.read_text() for log in logs]
    # One run computed the three composites, the other found them cached.
    counts = sorted(out.count("computed") for out in outputs)
    assert counts == [0, 3], outputs
    store = Store(work)
    assert len(store.all_results()) == 8 and not list((work / "partial").iterdir())
    assert_same_files(tmp_path / "out0", pipeline_run[3])
    assert_same_files(tmp_path / "out1", pipeline_run[3])
