"""``dragpipe inspect CHECKPOINT``: the resolved generator configuration, without running it.

Reads the checkpoint with the same safe loaders as every other command (official PyTorch
or TensorFlow pickle, or dragpipe's own format) and prints what dragpipe will build from
it: resolution, number of ws, channels per block, mapping layers, conditioning, fp16 and
clamp settings, the code base that wrote it and the parameter count. ``--json`` prints the
same facts as one JSON object. The network is neither built nor run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from draggan.building import CheckpointContents, parameter_count
from draggan.loading import read_checkpoint
from pipeline.commands._shared import add_checkpoint_argument

NAME = "inspect"
HELP = "print a generator checkpoint's resolved configuration (without running it)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def summary(contents: CheckpointContents, path: Path) -> dict[str, Any]:
    """The facts ``inspect`` prints, as a JSON-ready dict."""
    c = contents.config
    blocks = c.block_resolutions
    fp16_blocks = [r for r in blocks if r >= max(2 ** (len(blocks) + 2 - c.num_fp16_res), 8)]
    return {
        "checkpoint": str(path),
        "format": contents.format,
        "network": contents.network,
        "code_base": c.source,
        "resolution": c.img_resolution,
        "img_channels": c.img_channels,
        "num_ws": 2 * len(blocks),
        "z_dim": c.z_dim,
        "w_dim": c.w_dim,
        "c_dim": c.c_dim,
        "conditional": c.c_dim > 0,
        "mapping_layers": c.mapping_layers,
        "mapping_lr_multiplier": c.mapping_lr_multiplier,
        "truncation_available": "mapping.w_avg" in contents.state,
        "architecture": c.architecture,
        "channel_base": c.channel_base,
        "channel_max": c.channel_max,
        "channels": {f"b{r}": c.channels(r) for r in blocks},
        "num_fp16_res": c.num_fp16_res,
        "fp16_blocks": [f"b{r}" for r in fp16_blocks],
        "conv_clamp": c.conv_clamp,
        "use_noise": c.use_noise,
        "resample_filter": list(c.resample_filter),
        "parameters": parameter_count(contents.state),
        **contents.details,
    }


def _text(facts: dict[str, Any]) -> list[str]:
    fp16 = (
        f"{', '.join(facts['fp16_blocks'])} (num_fp16_res {facts['num_fp16_res']}), CUDA only"
        if facts["fp16_blocks"]
        else "none (float32 everywhere)"
    )
    clamp = "off" if facts["conv_clamp"] is None else f"+-{facts['conv_clamp']:g}"
    cond = f"yes (c_dim {facts['c_dim']})" if facts["conditional"] else "no"
    rows = [
        ("checkpoint", facts["checkpoint"]),
        ("format", f"{facts['format']}, network {facts['network']}"),
        ("code base", facts["code_base"]),
        (
            "resolution",
            f"{facts['resolution']} x {facts['resolution']}, {facts['img_channels']} channels",
        ),
        ("num_ws", facts["num_ws"]),
        ("z_dim / w_dim", f"{facts['z_dim']} / {facts['w_dim']}"),
        ("conditional", cond),
        (
            "mapping",
            f"{facts['mapping_layers']} layers, lr multiplier "
            f"{facts['mapping_lr_multiplier']:g}, truncation "
            f"{'available (w_avg)' if facts['truncation_available'] else 'unavailable'}",
        ),
        ("architecture", facts["architecture"]),
        ("channels", ", ".join(f"{k} {v}" for k, v in facts["channels"].items())),
        ("channel_base/max", f"{facts['channel_base']} / {facts['channel_max']}"),
        ("fp16", fp16),
        ("conv_clamp", clamp),
        ("noise", "per-layer noise inputs" if facts["use_noise"] else "none"),
        ("parameters", f"{facts['parameters']:,}"),
    ]
    if "dragpipe_version" in facts:
        rows.append(("written by", f"dragpipe {facts['dragpipe_version']}"))
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def run(args: argparse.Namespace) -> int:
    facts = summary(read_checkpoint(args.checkpoint), args.checkpoint)
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        print("\n".join(_text(facts)))
    return 0
