"""Jobs per hour on this machine: the local executor vs Ray with 2 workers of 1 thread each.

The demo spec (examples/example.yaml: the demo generator, its inversion and drag settings,
its two edits) scaled to ``--photos`` photos (8): variants of the demo photo (mirrored,
shifted crops), so every photo has keys of its own. Each photo makes 6 jobs (align,
invert, 2 drags, 2 composites). Measured, each run in a fresh workdir:

1. the local executor with ``--local-threads`` torch threads (2: both cores, as a user
   runs it on this machine; a list runs it once per count);
2. Ray: a local cluster of 2 CPUs (its start timed apart), ``--cpus-per-job 1``: 2 worker
   processes of 1 thread;
3. the overhead Ray adds per job: every job of the finished spec sent once more to a
   worker as a Ray task, one at a time (its result is stored, so the task only dispatches,
   checks the workdir, verifies the stored result and replies), against the same lookup
   in this process (``execute.stored``); and, in the computing run, the time each task
   spent on its worker outside the stage's compute.

The two runs' outputs are compared (file digests).

Usage: python bench/cluster.py [--photos 8] [--steps-scale 1.0] [--local-threads 1,2]
(10-20 minutes on a quiet 2-core CPU at full demo steps). Figures are wall-clock and depend
on what else the machine runs: the first line gives the load.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from PIL import Image, ImageOps

from pipeline.progress import Display
from pipeline.runner import RunOptions, RunReport, run_spec
from pipeline.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "example.yaml"


def make_spec(folder: Path, photos: int, scale: float) -> Path:
    """The demo spec with ``photos`` distinct variants of its photo; loop steps x ``scale``."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["generator"] = str((EXAMPLE.parent / spec["generator"]).resolve())
    for section, field in (("project", "num_steps"), ("tune", "max_steps")):
        settings = spec["invert"][section]
        settings[field] = max(2, round(settings[field] * scale))
    spec["drag"]["max_steps"] = max(2, round(spec["drag"]["max_steps"] * scale))
    template = spec["photos"][0]
    with Image.open(EXAMPLE.parent / template["path"]) as source:
        source = source.convert("RGB")
        entries = []
        for k in range(photos):
            shift = 6 * (k // 2)
            image = source.crop((shift, shift, source.width - 6, source.height - 6))
            if k % 2:
                image = ImageOps.mirror(image)
            name = f"photo{k}.png"
            image.save(folder / name)
            entries.append({**template, "id": f"p{k}", "path": name})
    spec["photos"] = entries
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def timed_run(spec: Path, work: Path, out: Path, cluster=None) -> tuple[float, RunReport]:
    display = Display(-1, stream=io.StringIO(), tty=False)
    options = RunOptions(workdir=work, out=out, checkpoint_every=25)
    start = time.perf_counter()
    if cluster is None:
        report = run_spec(load_spec(spec), options, display)
    else:
        from pipeline.cluster.driver import run_spec_on_ray

        report = run_spec_on_ray(load_spec(spec), options, cluster, display)
    seconds = time.perf_counter() - start
    if report.failures:
        raise SystemExit(f"the run failed: {report.failures}")
    return seconds, report


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def dispatch_overhead(spec: Path, work: Path, out: Path, cluster) -> tuple[float, float]:
    """Median seconds per job: (a stored job sent to a worker as a task, the same lookup in
    this process)."""
    import ray

    from pipeline.cluster.driver import worker_setup
    from pipeline.cluster.events import EventSink
    from pipeline.cluster.worker import run_on_worker
    from pipeline.execute import stored
    from pipeline.runner import locked_run

    display = Display(-1, stream=io.StringIO(), tty=False)
    options = RunOptions(workdir=work, out=out)
    with locked_run(load_spec(spec), options, display, torch.device("cpu")) as (lock, ctx, graph):
        setup = worker_setup(lock, graph, options, cluster)
        task = ray.remote(run_on_worker).options(num_cpus=1)
        sink = ray.remote(num_cpus=0)(EventSink).remote()
        remote, local = [], []
        for job in graph.all_jobs():
            start = time.perf_counter()
            reply = ray.get(task.remote(job, setup, False, 0.0, sink, job.slot))
            remote.append(time.perf_counter() - start)
            assert reply.outcome is not None and not reply.outcome.computed, reply.failure
            start = time.perf_counter()
            assert stored(ctx.store, job) is not None
            local.append(time.perf_counter() - start)
        ray.kill(sink)
    return statistics.median(remote), statistics.median(local)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--steps-scale", type=float, default=1.0)
    parser.add_argument(
        "--local-threads", default="2", help="torch threads of the local runs, e.g. 1,2 (2)"
    )
    args = parser.parse_args()
    import ray

    from pipeline.cluster import ClusterOptions
    from pipeline.cluster.connect import init_local

    folder = Path(tempfile.mkdtemp(prefix="dragpipe-bench-cluster-"))
    spec = make_spec(folder, args.photos, args.steps_scale)
    print(
        f"spec: {args.photos} photos x 6 jobs, generator "
        f"{Path(load_spec(spec).generator).name}, steps x{args.steps_scale:g}; machine load "
        f"(1 min average) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    print(f"{'executor':<46}{'wall s':>9}{'jobs/hour':>11}", flush=True)

    def line(label: str, seconds: float, jobs: int) -> None:
        print(f"{label:<46}{seconds:>9.1f}{jobs / seconds * 3600:>11.0f}", flush=True)

    for threads in [int(n) for n in args.local_threads.split(",")]:
        torch.set_num_threads(threads)
        work = folder / f"local{threads}-work"
        local_s, local = timed_run(spec, work, folder / "local-out")
        jobs = len(local.rows)
        line(f"local, {threads} torch thread(s)", local_s, jobs)

    start = time.perf_counter()
    init_local(2, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}})
    cluster_start_s = time.perf_counter() - start
    cluster = ClusterOptions(cpus_per_job=1)
    try:
        ray_s, on_ray = timed_run(spec, folder / "ray-work", folder / "ray-out", cluster)
        line("Ray, 2 workers x 1 thread", ray_s, jobs)
        line("Ray, 2 workers x 1 thread, + cluster start", ray_s + cluster_start_s, jobs)
        print(f"cluster start (ray.init, 2 CPUs): {cluster_start_s:.1f} s", flush=True)
        remote, here = dispatch_overhead(spec, folder / "ray-work", folder / "ray-out", cluster)
    finally:
        ray.shutdown()
    print(
        f"a stored job as a Ray task, round trip: {remote * 1000:.0f} ms; the same lookup in "
        f"process: {here * 1000:.0f} ms; overhead Ray adds per job: "
        f"{(remote - here) * 1000:.0f} ms (median of {jobs})"
    )
    outside = [p.ended - p.started - p.computing for p in on_ray.placements.values()]
    print(
        f"computing run, per task on its worker outside the stage's compute: median "
        f"{statistics.median(outside) * 1000:.0f} ms, max {max(outside) * 1000:.0f} ms "
        "(a worker's first job opens its context and loads the generator)"
    )
    same = digests(folder / "local-out") == digests(folder / "ray-out")
    print(f"outputs identical (local vs Ray): {same}; files in {folder}")


if __name__ == "__main__":
    main()
