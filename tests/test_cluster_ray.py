"""A spec run on a local Ray cluster (2 worker processes of 1 thread each, loopback only)
keeps every promise of the local executor: byte-identical outputs, a worker killed in the
middle of tuning retried and resumed from its checkpoint, the same progress lines and
failure reports, a second run that computes nothing, Ctrl-C that leaves the cache
consistent and resumable.

One cluster for the module (``ray.init(num_cpus=2)``, no dashboard, a small object store);
its workers run ``cluster_hooks.install``, which can hold a job at a given tuning step so
the tests can kill or interrupt it at a known point. The spec: three photos with a face
(one with two independent edits) and one without, on the demo generator with a few steps
per loop.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cluster_hooks import PAUSE_ENV
from PIL import Image, ImageOps
from pipeline_fixtures import computed, digests

from pipeline.cli import main
from pipeline.progress import Display
from pipeline.runner import RunOptions, RunReport, run_spec
from pipeline.spec import load_spec
from pipeline.store import RunLock, Store, run_holder
from pipeline.store.lease import process_alive, read_holder

try:
    import ray
except ImportError:  # pragma: no cover - the test extra installs ray
    ray = None

pytestmark = pytest.mark.skipif(
    ray is None,
    reason="RAY IS NOT INSTALLED: the cluster executor is untested here; "
    "pip install -e '.[test]' (the test extra includes ray)",
)

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "examples" / "photos" / "grace_hopper.jpg"
GENERATOR = REPO / "examples" / "demo" / "generator.safetensors"
TUNE_STEPS = 12
PAUSE_STEP = 4
EDIT = """    edits:
      - name: lift
        points:
          - handle: {landmark: nose_tip}
            target: {landmark: nose_tip, offset: [0.0, -0.05]}
"""
TWO_EDITS = (
    EDIT
    + """      - name: wide
        points:
          - handle: {landmark: left_eye_outer}
            target: {landmark: left_eye_outer, offset: [-0.04, 0.0]}
"""
)
SPEC = f"""\
generator: {GENERATOR}
invert:
  project: {{num_steps: 4, w_avg_samples: 16, lpips_net: alex, perceptual_backbone: random}}
  tune: {{max_steps: {TUNE_STEPS}, lpips_threshold: 0.0, perceptual_backbone: random}}
drag: {{max_steps: 4, render_every: 1, lr: 0.02}}
photos:
  - id: grace
    path: grace.jpg
{TWO_EDITS}  - id: astro
    path: astronaut.png
{EDIT}  - id: blank
    path: blank.png
{EDIT}  - id: mirror
    path: mirror.png
{EDIT}"""


@dataclass
class Run:
    spec: Path
    work: Path
    out: Path
    report: RunReport
    log: list[str]
    warnings: list[str]


def _run(spec: Path, work: Path, out: Path, cluster=None) -> Run:
    """Run ``spec`` in-process (with ``cluster``: on Ray), --keep-going, checkpoints every 2
    steps; collects the progress lines and warnings the driver shows."""
    warnings: list[str] = []
    display = Display(0, stream=io.StringIO(), tty=False)
    display.warn = warnings.append  # type: ignore[method-assign]
    options = RunOptions(workdir=work, out=out, keep_going=True, checkpoint_every=2)
    if cluster is None:
        report = run_spec(load_spec(spec), options, display)
    else:
        from pipeline.cluster.driver import run_spec_on_ray

        report = run_spec_on_ray(load_spec(spec), options, cluster, display)
    return Run(spec, work, out, report, display.stream.getvalue().splitlines(), warnings)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cluster-project")
    shutil.copyfile(PHOTO, folder / "grace.jpg")
    shutil.copyfile(REPO / "examples" / "photos" / "astronaut.png", folder / "astronaut.png")
    with Image.open(PHOTO) as photo:
        ImageOps.mirror(photo).save(folder / "mirror.png")
    Image.new("RGB", (64, 48), (120, 130, 140)).save(folder / "blank.png")  # no face
    (folder / "spec.yaml").write_text(SPEC)
    return folder / "spec.yaml"


@pytest.fixture(scope="module")
def local(project) -> Run:
    """The local executor's run, single-threaded like the cluster's workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = _run(project, project.parent / "local-work", project.parent / "local-out")
    finally:
        torch.set_num_threads(threads)
    assert set(run.report.failures) == {"blank"}
    return run


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster for the module: yields the file through which tests tell the
    workers where to pause (``cluster_hooks``)."""
    orders = tmp_path_factory.mktemp("cluster-orders") / "pause.json"
    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p)
    from pipeline.cluster.connect import init_local

    threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    init_local(
        2,
        runtime_env={
            "env_vars": {**threads, "PYTHONPATH": path, PAUSE_ENV: str(orders)},
            "worker_process_setup_hook": "cluster_hooks.install",
        },
    )
    yield orders
    ray.shutdown()


@contextmanager
def _pause_at(orders: Path, folder: Path, label: str, step: int, then: Callable[[int], None]):
    """Hold the worker that reaches ``step`` of loop ``label`` and call ``then(pid)`` from
    a thread once it is held."""
    marker = folder / "paused.pid"
    orders.write_text(json.dumps({"label": label, "step": step, "marker": str(marker)}))
    seen: dict[str, int] = {}

    def watch() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            text = marker.read_text() if marker.exists() else ""
            if text:
                seen["pid"] = int(text)
                then(int(text))
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        orders.unlink(missing_ok=True)
        watcher.join(timeout=5)


def _slot_key(work: Path, photo: str, slot: str) -> str:
    return Store(work).read_ref(photo, slot)["key"]


def _result_files(work: Path) -> dict[str, str]:
    """{relative path: sha256} of every stored result file (manifests hold timings)."""
    found = digests(work / "results")
    return {name: sha for name, sha in found.items() if not name.endswith("manifest.json")}


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _progress(lines: list[str]) -> set[str]:
    """Progress lines without their timings ('done in 3s (4 steps)' -> 'done (4 steps)')."""
    normal = set()
    for line in lines:
        if re.search(r": step \d+", line):
            continue  # periodic lines depend on time
        normal.add(re.sub(r"done in \S+", "done", line))
    return normal


@pytest.fixture(scope="module")
def killed(project, local, cluster, tmp_path_factory) -> tuple[Run, dict]:
    """The spec run on the cluster from scratch; the worker tuning 'mirror' is SIGKILLed
    (by pid) once it saved its checkpoint at step 4."""
    folder = tmp_path_factory.mktemp("cluster-killed")
    work = folder / "work"
    facts: dict = {}

    def kill(pid: int) -> None:
        leases = {p.name: read_holder(p) for p in (work / "leases").iterdir()}
        facts["leases"] = sorted(name for name, h in leases.items() if h and h.pid == pid)
        os.kill(pid, signal.SIGKILL)

    from pipeline.cluster import ClusterOptions

    with _pause_at(cluster, folder, "mirror tune", PAUSE_STEP, kill) as seen:
        run = _run(project, work, folder / "out", ClusterOptions())
    facts["pid"] = seen.get("pid")
    return run, facts


def test_cluster_outputs_are_byte_identical_to_the_local_executors(local, killed):
    run, _ = killed
    assert computed(run.report) == computed(local.report)
    assert digests(run.out) == digests(local.out)
    assert _result_files(run.work) == _result_files(local.work)
    assert len(_result_files(run.work)) > 20  # 3 photos: align, invert, edit, composite each


def test_a_killed_worker_is_retried_and_resumes_from_its_tuning_checkpoint(local, killed):
    run, facts = killed
    assert facts["pid"] is not None, "no worker reached the pause"
    key = _slot_key(run.work, "mirror", "invert-face0")
    # the process killed was the one holding the job's lease, i.e. computing the inversion
    assert facts["leases"] == [f"invert-{key}"]
    assert not process_alive(facts["pid"], None)
    lost = [w for w in run.warnings if "was lost; Ray started it again" in w]
    assert len(lost) == 1 and f"pid {facts['pid']} on" in lost[0] and "mirror" in lost[0]
    assert "mirror tuning: resuming at step 4" in run.log
    # The run record: the retry kept the pivot and resumed tuning at step 4, so it computed
    # TUNE_STEPS - 4 tuning steps and no projection step; a restart computes all of them.
    info = Store(run.work).result_dir("invert", key).joinpath("manifest.json").read_text()
    info = json.loads(info)["info"]
    assert info["resumed"] == [
        {"loop": "projection", "from_step": 4, "of": 4},
        {"loop": "tuning", "from_step": PAUSE_STEP, "of": TUNE_STEPS},
    ]
    recomputed, restart = TUNE_STEPS - PAUSE_STEP, 4 + TUNE_STEPS
    assert recomputed < TUNE_STEPS < restart
    # nothing left behind but what the local run leaves: the failed photo's alignment
    assert _names(run.work / "partial") == _names(local.work / "partial")
    assert not list((run.work / "leases").iterdir())
    assert run_holder(run.work) is None  # the run lock was released


def test_the_driver_shows_the_progress_and_failures_a_local_run_shows(local, killed):
    run, _ = killed
    # every stage start/end line (with its step count), every 'computing (why)' line
    assert _progress(local.log) <= _progress(run.log)
    assert any(line.startswith("mirror tune: done") for line in run.log)
    assert run.report.failures == local.report.failures
    assert "no face found" in run.report.failures["blank"]
    assert [w for w in run.warnings if "photo blank failed" in w] == [
        w for w in local.warnings if "photo blank failed" in w
    ]
    # the summary rows are the local run's, in its order; the killed inversion's says that
    # it resumed
    resumed = "; projection resumed at step 4; tuning resumed at step 4"
    rows = [(r.photo, r.stage, r.what, r.status, r.metrics) for r in run.report.rows]
    expected = [
        (r.photo, r.stage, r.what, r.status, r.metrics + (resumed if r.photo == "mirror" else ""))
        if r.stage == "invert"
        else (r.photo, r.stage, r.what, r.status, r.metrics)
        for r in local.report.rows
    ]
    assert rows == expected


def test_independent_photos_run_at_once_on_different_workers(killed):
    run, _ = killed
    spans = list(run.report.placements.items())
    overlapping = [
        (a, b)
        for i, (a, pa) in enumerate(spans)
        for b, pb in spans[i + 1 :]
        if a[0] != b[0] and pa.pid != pb.pid and pa.started < pb.ended and pb.started < pa.ended
    ]
    assert overlapping, spans


def test_a_second_cluster_run_computes_nothing(project, cluster, killed):
    run, _ = killed
    files, mtimes = digests(run.out), {p: p.stat().st_mtime_ns for p in run.out.rglob("*")}
    from pipeline.cluster import ClusterOptions

    again = _run(project, run.work, run.out, ClusterOptions())
    assert computed(again.report) == set()
    assert {row.status for row in again.report.rows} == {"cached", "failed"}
    assert digests(run.out) == files  # nothing rewritten:
    assert {p: p.stat().st_mtime_ns for p in run.out.rglob("*")} == mtimes
    # only the photo without a face is tried again (as a local run does)
    assert [line for line in again.log if "computing" in line] == [
        "blank align: computing (never computed)"
    ]


def test_a_driver_in_another_process_joins_the_cluster_by_its_address(project, cluster, killed):
    run, _ = killed
    address = ray.get_runtime_context().gcs_address
    args = ["-m", "pipeline", "run", str(project), "--workdir", str(run.work), "--out"]
    args += [str(run.out), "--keep-going", "--executor", "ray", "--address", address]
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # an explicit address: Ray's token mode
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stderr[-3000:]  # the photo without a face
    assert f"connecting to the Ray cluster at {address}" in done.stderr
    assert "Ray cluster: 1 node(s), 2 CPUs, 0 GPUs" in done.stderr
    assert "photo blank failed: no face found" in done.stdout
    results = sum(row.status != "failed" for row in run.report.rows)
    assert done.stdout.count(" cached ") == results and " computed " not in done.stdout


def test_without_an_address_the_run_starts_a_local_cluster_of_its_own(project, killed):
    """``--executor ray`` alone (no --address, no $RAY_ADDRESS): a new local cluster for the
    run, stopped with it (the process ends: nothing of Ray's holds its output open)."""
    run, _ = killed
    args = ["-m", "pipeline", "run", str(project), "--workdir", str(run.work), "--out"]
    args += [str(run.out), "--keep-going", "--executor", "ray"]
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 1, done.stderr[-3000:]  # the photo without a face
    assert "starting a local Ray cluster" in done.stderr
    assert re.search(r"Ray cluster: 1 node\(s\), [1-9]\d* CPUs, 0 GPUs", done.stderr)
    assert "photo blank failed: no face found" in done.stdout
    results = sum(row.status != "failed" for row in run.report.rows)
    assert done.stdout.count(" cached ") == results and " computed " not in done.stdout
    assert run_holder(run.work) is None


def test_a_cluster_driver_on_a_workdir_another_run_holds_is_refused_or_waits(
    project, cluster, killed, capsys
):
    """Two drivers on one spec: the second cluster run fails at once with --no-wait (exit
    1, saying who holds the workdir), and otherwise waits for the lock, then runs."""
    run, _ = killed
    args = ["run", str(project), "--workdir", str(run.work), "--out", str(run.out)]
    args += ["--keep-going", "--executor", "ray"]
    lock = RunLock(run.work)
    lock.acquire()
    try:
        assert main([*args, "--no-wait"]) == 1
        err = capsys.readouterr().err
        assert f"is in use by pid {os.getpid()} on " in err and "--workdir" in err
        waited: list[int] = []
        second = threading.Thread(target=lambda: waited.append(main(args)))
        second.start()
        time.sleep(2.0)
        assert second.is_alive()  # waiting for the lock, nothing computed meanwhile
    finally:
        lock.release()
    second.join(300)
    assert waited == [1]  # then it ran: the photo without a face fails again
    assert "waiting for the workdir lock held by pid" in capsys.readouterr().err
    assert run_holder(run.work) is None


def test_without_keep_going_a_failing_photo_stops_the_cluster_run(project, cluster, killed, capsys):
    run, _ = killed
    args = ["run", str(project), "--workdir", str(run.work), "--out", str(run.out)]
    assert main([*args, "--executor", "ray"]) == 1
    captured = capsys.readouterr()
    assert "photo blank failed: no face found" in captured.out
    assert run_holder(run.work) is None


def test_ctrl_c_cancels_the_jobs_and_leaves_the_cache_consistent(
    project, local, cluster, tmp_path, capsys
):
    work, out = tmp_path / "work", tmp_path / "out"
    shutil.copytree(local.work, work)
    store = Store(work)
    for slot, stage in (("invert-face0", "invert"), ("edit-lift-face0", "edit")):
        store.remove(stage, _slot_key(work, "mirror", slot))
    store.remove("composite", _slot_key(work, "mirror", "composite-lift"))

    def interrupt(pid: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C on the driver (this process)

    args = ["run", str(project), "--workdir", str(work), "--out", str(out), "--keep-going"]
    args += ["--executor", "ray", "--checkpoint-every", "2"]
    with _pause_at(cluster, tmp_path, "mirror tune", PAUSE_STEP, interrupt) as seen:
        assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err
    # The held job was cancelled (KeyboardInterrupt in its worker, which unwound: the
    # process lives on) and released its lease; the run lock is free; only complete,
    # verified results are published; the tuning state of step 4 is kept.
    assert process_alive(seen["pid"], None)
    assert not list((work / "leases").iterdir()) and run_holder(work) is None
    assert all(store._verify(store.result_dir(s, k), k) for s, k in store.all_results())
    assert not store.exists("invert", _slot_key(work, "mirror", "invert-face0"))
    (partial,) = (work / "partial").glob("invert-*")
    from safetensors import safe_open

    with safe_open(str(partial / "checkpoints" / "tune.safetensors"), "pt") as handle:
        assert json.loads(handle.metadata()["meta"])["step"] == PAUSE_STEP

    from pipeline.cluster import ClusterOptions

    resumed = _run(project, work, out, ClusterOptions())
    assert "mirror tuning: resuming at step 4" in resumed.log
    assert computed(resumed.report) == {
        ("invert", "face 0"),
        ("edit", "lift"),
        ("composite", "lift"),
    }
    assert digests(out / "mirror") == digests(local.out / "mirror")
