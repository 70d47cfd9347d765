"""The job graph: one description of every stage result a spec needs, read by run, status
and clean alike; jobs are plain data that another process can compute."""

from __future__ import annotations

import pickle
import shutil

import torch
from pipeline_fixtures import copy_project, digests, run

from pipeline.execute import CACHED, STALE, TO_COMPUTE, judge, run_job
from pipeline.plan import JobGraph
from pipeline.progress import Display
from pipeline.spec import load_spec
from pipeline.stages.context import StageContext
from pipeline.store import Ref, Store


def _graph(spec, work) -> JobGraph:
    ctx = StageContext.open(work, load_spec(spec).generator, torch.device("cpu"), Display(-1))
    return JobGraph.of(load_spec(spec), ctx)


def _files(folder) -> dict[str, str]:
    """{relative path: sha256} of a results folder, manifests (timings) left out."""
    return {name: d for name, d in digests(folder).items() if not name.endswith("manifest.json")}


def test_the_graph_lists_every_result_of_the_spec_with_its_inputs(pipeline_run):
    _, spec, work, _, _ = pipeline_run
    jobs = _graph(spec, work).all_jobs()
    assert [(job.stage, job.slot, job.what) for job in jobs] == [
        ("align", "align", "faces"),
        ("invert", "invert-face0", "face 0"),
        ("edit", "edit-smile-face0", "smile"),
        ("composite", "composite-smile", "smile"),
        ("edit", "edit-brow-face0", "brow"),
        ("composite", "composite-brow", "brow"),
        ("edit", "edit-more-face0", "more"),
        ("composite", "composite-more", "more"),
    ]
    by_slot = {job.slot: job for job in jobs}
    # Each job names the results it reads; 'more' starts from 'smile'.
    assert by_slot["invert-face0"].needs == (by_slot["align"].ref,)
    assert by_slot["edit-more-face0"].needs == (
        by_slot["align"].ref,
        by_slot["invert-face0"].ref,
        by_slot["edit-smile-face0"].ref,
    )
    assert by_slot["edit-more-face0"].material.inputs["start"] == by_slot["edit-smile-face0"].key
    assert by_slot["composite-brow"].needs == (
        by_slot["align"].ref,
        by_slot["invert-face0"].ref,
        by_slot["edit-brow-face0"].ref,
    )
    # The keys are those of the stored results, and every upstream job comes first.
    assert sorted((job.stage, job.key) for job in jobs) == sorted(Store(work).all_results())
    seen: set[Ref] = set()
    for job in jobs:
        assert set(job.needs) <= seen, job.slot
        seen.add(job.ref)


def test_a_pickled_job_computes_in_a_fresh_context_like_the_run(pipeline_run, tmp_path):
    spec, work = copy_project(pipeline_run, tmp_path)
    shutil.rmtree(work / "results" / "composite")
    every = _graph(spec, work).all_jobs()
    # A worker gets the job as bytes and opens its own context on the same workdir.
    shipped_all = [pickle.loads(pickle.dumps(job)) for job in every]
    assert [job.key for job in shipped_all] == [job.key for job in every]
    assert [job.task.material(Store(work)) for job in shipped_all] == [j.material for j in every]
    jobs = [job for job in every if job.stage == "composite"]
    shipped = [job for job in shipped_all if job.stage == "composite"]
    ctx = StageContext.open(work, spec.parent / "gen.safetensors", torch.device("cpu"), Display(-1))
    outcomes = [run_job(ctx, job) for job in shipped]
    assert all(outcome.computed for outcome in outcomes)
    assert _files(work / "results" / "composite") == _files(
        pipeline_run[2] / "results" / "composite"
    )
    assert [judge(ctx.store, job).state for job in jobs] == [CACHED] * 3
    assert run_job(ctx, shipped[0]).computed is False  # now served from the store


def test_judge_says_why_and_run_announces_it(pipeline_run, tmp_path):
    spec, work = copy_project(pipeline_run, tmp_path)
    spec.write_text(spec.read_text().replace("photos:", "composite: {feather: 0.05}\nphotos:"))
    graph = _graph(spec, work)
    verdicts = {job.slot: judge(graph.store, job) for job in graph.all_jobs()}
    assert verdicts["edit-smile-face0"].state == CACHED
    stale = verdicts["composite-smile"]
    assert stale.state == STALE
    assert stale.why == "composite parameters changed (feather: 0.03 -> 0.05)"
    assert judge(graph.store, graph.all_jobs()[0], forced=True).state == TO_COMPUTE

    log: list[str] = []
    report, _ = run(spec, work, tmp_path / "out", log=log)
    assert report.computed == 3
    assert "hopper smile composite: computing (composite parameters changed (feather: " in (
        "\n".join(log)
    )
    assert not any("edit: computing" in line for line in log)
