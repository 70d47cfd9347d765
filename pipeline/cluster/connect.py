"""Connecting the driver to a Ray cluster (or starting a local one), and checking it fits.

``--address`` is passed to ``ray.init``: ``auto`` (the cluster ``ray start`` runs on this
machine) or ``HOST:PORT`` (a head node's GCS address). Without it, ``$RAY_ADDRESS`` (set by
``ray job submit``), else a new local cluster on this machine's cores, which ends with the
run (never a cluster another user started here: ``ray.init()`` alone would join one). A Ray session the
caller already opened in this process (the Python API, tests) is used as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from pipeline.cluster import ClusterOptions
from pipeline.errors import UsageError
from pipeline.progress import Display

# Jobs exchange their results through the shared workdir, never through Ray's object
# store; a local cluster needs only room for the small job and reply records.
LOCAL_OBJECT_STORE = 128 * 1024 * 1024


def init_local(num_cpus: int | None = None, runtime_env: dict | None = None) -> None:
    """Start a new local Ray cluster (all cores, or ``num_cpus``): no dashboard, a small
    object store, only Ray's errors shown."""
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=LOCAL_OBJECT_STORE,
        logging_level=logging.ERROR,
        log_to_driver=False,
        runtime_env=runtime_env,
    )


@contextmanager
def connect(cluster: ClusterOptions, display: Display) -> Iterator[None]:
    """A Ray session for the run (see the module docstring)."""
    if ray.is_initialized():
        _check_fit(cluster, display)
        yield
        return
    address = cluster.address or os.environ.get("RAY_ADDRESS") or "local"
    try:
        if address == "local":
            display.info("starting a local Ray cluster")
            init_local()
        else:
            display.info(f"connecting to the Ray cluster at {address}")
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot connect to the Ray cluster at {address}: {first} (is one running "
            "there? 'ray start --head' starts one; with an explicit address Ray needs "
            "RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token or "
            "$RAY_AUTH_TOKEN when the cluster uses token authentication)"
        ) from None
    try:
        _check_fit(cluster, display)
        yield
    finally:
        ray.shutdown()


def _check_fit(cluster: ClusterOptions, display: Display) -> None:
    """Say what the cluster has; warn when no node can take a job (its tasks would wait
    until such a node joins)."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    cpus = sum(node.get("CPU", 0) for node in nodes)
    gpus = sum(node.get("GPU", 0) for node in nodes)
    display.info(f"Ray cluster: {len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs")
    fits = any(
        node.get("CPU", 0) >= cluster.cpus_per_job and node.get("GPU", 0) >= cluster.gpus_per_job
        for node in nodes
    )
    if not fits:
        display.warn(
            f"no node of the cluster has {cluster.cpus_per_job:g} CPUs and "
            f"{cluster.gpus_per_job:g} GPUs for one job: the jobs wait until such a node "
            "joins (lower --cpus-per-job / --gpus-per-job?)"
        )
