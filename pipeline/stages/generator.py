"""The run's generators: the base checkpoint (loaded once per run) and tuned copies.

The base checkpoint's identity in stage keys is the SHA-256 of its file (cached in the store
by path, size and mtime), never its path. A tuned generator is rebuilt from its inversion
result (base + stored delta) and kept in memory for the other edits of the same face.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pipeline.errors import PipelineError
from pipeline.stages.tuned import load_tuned
from pipeline.store import Store
from pipeline.store.store import write_json_atomic

if TYPE_CHECKING:
    from pipeline.stages.common import StageContext


def checkpoint_digest(store: Store, path: Path) -> str:
    """SHA-256 of the checkpoint's bytes (for dragpipe's NAME.json + NAME.safetensors pair:
    of the .safetensors file, which holds the weights and the config)."""
    path = Path(path)
    if path.suffix == ".json" and path.with_suffix(".safetensors").is_file():
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise PipelineError(
            f"generator checkpoint {path} not found: set 'generator:' in the spec to a "
            "StyleGAN2 .pkl or a dragpipe .safetensors file"
        )
    return store.file_digest(path)


def base_generator(ctx: StageContext) -> torch.nn.Module:
    """The spec's generator, loaded once per run (eval mode, no gradients on its weights)."""
    if ctx._base is None:
        from draggan import load_generator
        from draggan.autotune import Autotuner

        G = load_generator(ctx.generator_path, device=str(ctx.device))
        G.eval().requires_grad_(False)
        # The layers' implementations are measured once per machine into the user's cache
        # folder (DRAGPIPE_AUTOTUNE overrides); a cache file that cannot be used is said.
        G.synthesis.autotuner = Autotuner.from_environment(on_warning=ctx.display.warn)
        ctx._base = G
    return ctx._base


def tuned_generator(ctx: StageContext, key: str, delta: Path) -> torch.nn.Module:
    """The tuned generator of inversion ``key`` from its stored ``delta`` (kept in memory)."""
    if key not in ctx._tuned:
        base = base_generator(ctx)
        G = load_tuned(delta, base, ctx.generator_digest)
        G.eval().requires_grad_(False)
        ctx._tuned.clear()  # one face at a time: keep memory bounded
        ctx._tuned[key] = G
    return ctx._tuned[key]


def generator_resolution(ctx: StageContext) -> int:
    """The checkpoint's output resolution, remembered in the store by the file's digest.

    ``status`` needs it for the alignment key (the crop size); loading a large checkpoint
    only to learn it is done once per checkpoint.
    """
    info_path = ctx.store.root / "generators" / f"{ctx.generator_digest}.json"
    try:
        return int(json.loads(info_path.read_text())["img_resolution"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    G = base_generator(ctx)
    info = {"img_resolution": int(G.img_resolution), "num_ws": int(G.num_ws), "w_dim": int(G.w_dim)}
    info_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(info_path, info)
    return info["img_resolution"]
