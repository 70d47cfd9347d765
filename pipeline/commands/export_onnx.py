"""``dragpipe export-onnx CHECKPOINT OUT_DIR``: the generator and its drag step as ONNX.

Writes ``mapping.onnx`` and ``synthesis.onnx`` (inference; plain ``onnxruntime`` runs them),
the drag step's ONNX Runtime training artifacts (``training_model.onnx``, ``eval_model.onnx``,
``optimizer_model.onnx``, ``checkpoint``) and ``manifest.json`` (see ``draggan.onnx.export``),
atomically. The drag settings are ``DragConfig``'s, with its defaults; ``--handles`` fixes
the number of points the step takes. An existing OUT_DIR is replaced only when it is an
earlier export (it has a manifest) or empty. Needs the ``onnx`` extra.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from draggan.dragging.config import DragConfig
from draggan.onnx.export import MANIFEST, export_artifacts
from draggan.onnx.params import ExportParams
from pipeline.commands._shared import add_checkpoint_argument
from pipeline.errors import UsageError

NAME = "export-onnx"
HELP = "export a generator and its DragGAN step to ONNX (inference + ONNX Runtime training)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(parser)
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the artifact directory")
    defaults = DragConfig()
    parser.add_argument("--mode", choices=["fast", "official"], default=defaults.mode)
    parser.add_argument("--handles", type=int, default=1, metavar="K", help="handle points (1)")
    parser.add_argument(
        "--layers", type=int, default=defaults.layers, help=f"ws optimised ({defaults.layers})"
    )
    parser.add_argument(
        "--w", dest="w_plus", action="store_false", help="one w shared by the optimised ws"
    )
    parser.add_argument(
        "--feature-resolution",
        type=int,
        default=defaults.feature_resolution,
        help=f"the feature block ({defaults.feature_resolution})",
    )
    parser.add_argument("--r1", type=float, default=None, help="disc radius px (3 at 512)")
    parser.add_argument("--r2", type=float, default=None, help="tracking half-size px (12 at 512)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help=f"Adam ({defaults.lr:g})")
    parser.add_argument("--noise-mode", choices=["const", "none"], default=defaults.noise_mode)
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args: argparse.Namespace) -> int:
    from draggan.dragging.errors import DragInputError
    from draggan.loading import load_generator

    if args.handles < 1:
        raise UsageError(f"export-onnx: --handles must be >= 1, got {args.handles}")
    out = args.out_dir
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())
    ):
        raise UsageError(
            f"export-onnx: {out} exists and is not an earlier export (no {MANIFEST}): "
            "give a new or empty directory"
        )
    try:
        config = DragConfig(
            mode=args.mode,
            layers=args.layers,
            w_plus=args.w_plus,
            feature_resolution=args.feature_resolution,
            r1=args.r1,
            r2=args.r2,
            lr=args.lr,
            noise_mode=args.noise_mode,
            backend="onnxruntime",
        )
    except DragInputError as exc:
        raise UsageError(f"export-onnx: {exc}") from None
    G = load_generator(args.checkpoint)
    try:
        params = config.resolve(int(G.img_resolution), int(G.num_ws))
    except DragInputError as exc:
        raise UsageError(f"export-onnx: {exc}") from None
    spec = ExportParams.for_drag(config, params, args.handles)
    started = time.perf_counter()
    manifest = export_artifacts(G, out, spec, lr=config.lr, window=params.window)
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    size = sum(entry["size"] for entry in manifest["files"].values())
    print(
        f"exported {args.checkpoint} ({params.img_resolution} px, {G.num_ws} ws) for "
        f"{spec.mode} drags of {spec.handles} handle(s) to {out} "
        f"({size / 2**20:.1f} MiB, {time.perf_counter() - started:.1f} s)"
    )
    for name, entry in sorted(manifest["files"].items()):
        print(f"  {name:<22} {entry['size'] / 2**20:8.2f} MiB")
    return 0
