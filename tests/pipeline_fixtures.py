"""Shared helpers of the tests/test_pipeline_*.py files: a tiny generator, a tiny spec, runs.

Not a test module (no ``test_`` prefix); imported by the pipeline tests.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import torch

from draggan import Generator, GeneratorConfig, save_generator
from pipeline.progress import Display
from pipeline.runner import RunOptions, RunReport, run_spec
from pipeline.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "examples" / "photos" / "grace_hopper.jpg"

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


def make_generator(path: Path) -> None:
    torch.manual_seed(0)
    config = GeneratorConfig(
        img_resolution=32, channel_base=512, channel_max=32, z_dim=32, w_dim=32, mapping_layers=2
    )
    save_generator(Generator(config), path)


def make_project(
    folder: Path, tune_steps: int = 6, brow_landmark: str = "left_eyebrow_outer"
) -> Path:
    """A spec folder: gen.safetensors, hopper.jpg and spec.yaml; returns the spec path."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "gen.safetensors").exists():
        make_generator(folder / "gen.safetensors")
    if not (folder / "hopper.jpg").exists():
        shutil.copyfile(PHOTO, folder / "hopper.jpg")
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


_FIRST: dict[str, tuple] = {}


def first_run(tmp_path_factory) -> tuple[Path, Path, Path, Path, RunReport]:
    """One complete run of the tiny project per test session (shared by the test modules):
    (project folder, spec, workdir, out, report). Tests must not modify its folders."""
    if "run" not in _FIRST:
        folder = tmp_path_factory.mktemp("project")
        spec = make_project(folder)
        report, warnings = run(spec, folder / "work", folder / "out")
        assert warnings == [] and report.failures == {}
        _FIRST["run"] = (folder, spec, folder / "work", folder / "out", report)
    return _FIRST["run"]


def copy_project(first, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the first run's project folder (spec, inputs, workdir): (spec, workdir)."""
    folder = tmp_path / "project"
    shutil.copytree(first[0], folder, ignore=shutil.ignore_patterns("out"))
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


def assert_same_files(a: Path, b: Path, atol: float = 1e-5, grey_levels: int = 1) -> None:
    """The files under ``a`` and ``b`` match: same names; tensors within ``atol``; images within
    ``grey_levels``; other files (except manifests, whose timings differ) byte for byte.

    Recomputing on CPU can differ from the first computation in the last bit of a float
    (MKL kernels are not bit-reproducible across buffer alignments), hence the tolerances.
    """
    import numpy as np
    from PIL import Image, ImageSequence
    from safetensors.torch import load_file

    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert names_a == names_b
    for name in names_a:
        fa, fb = a / name, b / name
        if fa.name == "manifest.json":
            continue
        if fa.suffix == ".safetensors":
            ta, tb = load_file(str(fa)), load_file(str(fb))
            assert ta.keys() == tb.keys(), name
            for key in ta:
                assert torch.allclose(ta[key].float(), tb[key].float(), atol=atol), (name, key)
        elif fa.suffix in (".png", ".jpg", ".gif"):
            with Image.open(fa) as ia, Image.open(fb) as ib:
                frames_a = [
                    np.asarray(f.convert("RGB"), dtype=np.int16) for f in ImageSequence.Iterator(ia)
                ]
                frames_b = [
                    np.asarray(f.convert("RGB"), dtype=np.int16) for f in ImageSequence.Iterator(ib)
                ]
            assert len(frames_a) == len(frames_b), name
            for x, y in zip(frames_a, frames_b, strict=True):
                diff = np.abs(x - y)
                if fa.suffix == ".jpg":  # a 1-level change moves whole re-encoded 8x8 blocks
                    assert diff.mean() < 0.25 and (diff > 8).mean() < 1e-3, name
                elif fa.suffix == ".gif":  # and can change the adaptive palette
                    assert diff.mean() < 1.0, name
                else:
                    assert diff.max() <= grey_levels, name
        elif fa.name == "history.json":
            continue  # per-step float losses; the tensors and images above pin the result
        else:
            assert fa.read_bytes() == fb.read_bytes(), name
