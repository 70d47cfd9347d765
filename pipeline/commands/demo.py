"""``dragpipe demo``: the whole pipeline on the bundled photo with the bundled demo generator.

Runs ``examples/example.yaml`` of the source tree this package is installed from (an
editable install of a clone), with its cache and results under ``./dragpipe-demo/`` of the
current directory. A second run is served from the cache and rewrites nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.commands import _shared
from pipeline.errors import UsageError

NAME = "demo"
HELP = "run the bundled example (photo + small demo generator) end to end into ./dragpipe-demo/"

DEMO_DIR = "dragpipe-demo"


def source_root() -> Path:
    """The source tree the ``pipeline`` package was imported from (editable install)."""
    import pipeline

    return Path(pipeline.__file__).resolve().parent.parent


def example_spec() -> Path:
    """``examples/example.yaml`` and the files it needs, checked; UsageError when missing."""
    examples = source_root() / "examples"
    spec = examples / "example.yaml"
    generator = examples / "demo" / "generator.safetensors"
    if not spec.is_file():
        raise UsageError(
            f"the demo needs the examples of a source checkout, but {spec} does not exist: "
            "install dragpipe from a clone with 'pip install -e .' and run the demo from there"
        )
    if not generator.is_file():
        raise UsageError(
            f"demo generator {generator} is missing: recreate it with "
            f"'python {examples / 'demo' / 'make_demo_generator.py'}'"
        )
    return spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default=DEMO_DIR,
        metavar="DIR",
        help=f"where the cache and results go (default: ./{DEMO_DIR}/)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, mps"
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.commands import run as run_command

    spec_path = example_spec()
    base = Path(args.dir).resolve()
    workdir, out = base / "cache", base / "results"
    spec = _shared.load(str(spec_path))
    quiet = getattr(args, "quiet", False)
    if not quiet:
        print(
            f"dragpipe demo: {spec_path} (the bundled photo, a small 128 px demo generator, "
            "few steps, untrained LPIPS backbone); cache and results in "
            f"{base}/\nReal edits need a real checkpoint, e.g. stylegan2-ffhq-512x512.pkl: "
            "see README.md."
        )
    options = argparse.Namespace(
        only=None,
        force=None,
        dry_run=False,
        keep_going=False,
        device=args.device,
        checkpoint_every=25,
        no_wait=False,
        quiet=quiet,
        verbose=getattr(args, "verbose", 0),
    )
    return run_command.execute(spec, options, workdir, out)  # it lists the files it wrote
