"""Shared fixtures: the suite's small generators, and one complete pipeline run.

The suite runs single-threaded, in this process and in the processes it starts (through
``OMP_NUM_THREADS``): a resumed or recomputed result is then the same computation repeated,
and the tests compare its bytes (with several threads, oneDNN may split reductions
differently from one call to the next on tiny feature maps). One thread is also the fastest
for these tiny networks on a shared machine.

Generators built by the tests (and the CLI processes they start) use the autotuner's default
candidates (``DRAGPIPE_AUTOTUNE=off``): nothing is measured, nothing is written to the user's
cache folder. The tuner's own tests pass an ``Autotuner`` of their own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from draggan import Generator, GeneratorConfig, save_generator

os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the CLI runs the tests start
os.environ["DRAGPIPE_AUTOTUNE"] = "off"  # likewise
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "examples" / "photos" / "grace_hopper.jpg"


def tiny_config(
    resolution: int = 32, width: int = 32, channel_max: int = 64, **overrides
) -> GeneratorConfig:
    """The suite's small StyleGAN2 configurations: z_dim = w_dim = ``width``, 2 mapping
    layers, ``min(16 * resolution // r, channel_max)`` channels at block r; ``overrides``
    for anything else (e.g. ``channel_base``, ``architecture``, ``conv_clamp``)."""
    base = dict(
        img_resolution=resolution,
        z_dim=width,
        w_dim=width,
        mapping_layers=2,
        channel_base=16 * resolution,
        channel_max=channel_max,
    )
    return GeneratorConfig(**{**base, **overrides})


def seeded_generator(config: GeneratorConfig, seed: int = 0) -> Generator:
    """``Generator(config)`` with torch's default initialisation after ``manual_seed(seed)``,
    in eval mode."""
    torch.manual_seed(seed)
    return Generator(config).eval()


@pytest.fixture
def tiny_generator():
    """``tiny_generator(resolution=32, seed=0, width=32, channel_max=64, **overrides)``:
    a seeded generator of ``tiny_config`` (the inversion and network tests')."""

    def make(resolution: int = 32, seed: int = 0, **options) -> Generator:
        return seeded_generator(tiny_config(resolution, **options), seed)

    return make


@pytest.fixture
def checkpoint_generator():
    """``checkpoint_generator(seed=0, **overrides)``: a 16 px generator (8 channels, w_dim 8,
    conv_clamp 256) whose parameters are all non-trivial (random, not the initial zeros and
    ones), so a checkpoint reader that drops or mixes up a tensor is caught."""

    def make(seed: int = 0, **overrides) -> Generator:
        options = dict(width=8, channel_max=8, channel_base=64, conv_clamp=256)
        config = tiny_config(16, **{**options, **overrides})
        G = seeded_generator(config, seed)
        with torch.no_grad():
            for name, p in G.named_parameters():
                p.add_(torch.randn_like(p) * (0.5 if "noise_strength" in name else 0.1))
            if hasattr(G.mapping, "w_avg"):
                G.mapping.w_avg.normal_()
        return G

    return make


# The pipeline's tiny project ---------------------------------------------------------------
def make_project_folder(folder: Path) -> None:
    """gen.safetensors (a 32 px generator) and hopper.jpg for the tiny spec."""
    folder.mkdir(parents=True, exist_ok=True)
    save_generator(seeded_generator(tiny_config(32, channel_max=32)), folder / "gen.safetensors")
    shutil.copyfile(PHOTO, folder / "hopper.jpg")


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """One complete run of the tiny project per test session (shared by the pipeline test
    modules): (project folder, spec, workdir, out, report). Tests must not modify its
    folders; ``pipeline_fixtures.copy_project`` gives a copy to change."""
    from pipeline_fixtures import run, write_spec

    folder = tmp_path_factory.mktemp("project")
    make_project_folder(folder)
    spec = write_spec(folder)
    report, warnings = run(spec, folder / "work", folder / "out")
    assert warnings == [] and report.failures == {}
    return folder, spec, folder / "work", folder / "out", report
