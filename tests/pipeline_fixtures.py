"""Helpers of the tests/test_pipeline_*.py files: the tiny spec, in-process runs, copies of
the session's first run (``conftest.pipeline_run``) and comparisons of their files."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

from pipeline.progress import Display
from pipeline.runner import RunOptions, RunReport, run_spec
from pipeline.spec import load_spec

# Tiny settings: a 32 px generator, a few steps per loop, untrained LPIPS backbones.
SPEC = """\
generator: gen.safetensors
align: {{transform_size: 64}}
invert:
  project: {{num_steps: 3, w_avg_samples: 16, lpips_net: alex, perceptual_backbone: random,
            lpips_size: 32}}
  tune: {{max_steps: {tune_steps}, lpips_threshold: 0.0, perceptual_backbone: random}}
drag: {{max_steps: 3, render_every: 1, lr: 0.01}}
photos:
  - id: hopper
    path: hopper.jpg
    edits:
      - name: smile
        points:
          - handle: {{landmark: mouth_left}}
            target: {{landmark: mouth_left, offset: [-0.1, -0.05]}}
      - name: brow
        points:
          - handle: {{landmark: {brow_landmark}}}
            target: {{landmark: {brow_landmark}, offset: [0.0, -0.1]}}
        mask: {{shape: circle, center: {{landmark: nose_tip}}, radius: 0.4}}
      - name: more
        from: smile
        points:
          - handle: {{landmark: mouth_right}}
            target: {{landmark: mouth_right, offset: [0.1, -0.05]}}
"""


def write_spec(
    folder: Path, tune_steps: int = 6, brow_landmark: str = "left_eyebrow_outer"
) -> Path:
    """Write the tiny spec into ``folder`` (beside its gen.safetensors and hopper.jpg, see
    ``conftest.make_project_folder``); returns its path."""
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.format(tune_steps=tune_steps, brow_landmark=brow_landmark))
    return spec


def run(spec: Path, workdir: Path, out: Path, log: list[str] | None = None, **options):
    """Run ``spec`` in-process; returns (report, warnings shown). ``log`` collects every line."""
    warnings: list[str] = []
    display = Display(0, stream=io.StringIO(), tty=False)
    display.warn = warnings.append  # type: ignore[method-assign]
    report = run_spec(load_spec(spec), RunOptions(workdir=workdir, out=out, **options), display)
    if log is not None:
        log += display.stream.getvalue().splitlines()
    return report, warnings


def copy_project(pipeline_run, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the first run's project folder (spec, inputs, workdir): (spec, workdir)."""
    folder = tmp_path / "project"
    shutil.copytree(pipeline_run[0], folder, ignore=shutil.ignore_patterns("out"))
    return folder / "spec.yaml", folder / "work"


def computed(report: RunReport) -> set[tuple[str, str]]:
    """{(stage, what)} of the stages a run computed."""
    return {(row.stage, row.what) for row in report.rows if row.status == "computed"}


def digests(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_same_files(a: Path, b: Path) -> None:
    """The files under ``a`` and ``b`` are the same: same names, same bytes. A result's
    manifest.json is compared without its timings, creation time and run notes (``info``:
    e.g. which loops a resumed run took up again); its file digests and metrics must match.

    The suite runs single-threaded (``conftest``), so recomputing or resuming is the same
    computation repeated and must give the same bits."""
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert names_a == names_b
    for name in names_a:
        fa, fb = a / name, b / name
        if fa.name == "manifest.json":
            assert _stable(fa) == _stable(fb), name
        else:
            assert fa.read_bytes() == fb.read_bytes(), name


def _stable(manifest: Path) -> dict:
    data = json.loads(manifest.read_text())
    return {k: v for k, v in data.items() if k not in ("timings", "created", "info")}
