"""The tuned generator, stored compactly as an fp16 delta against the base checkpoint.

PTI changes every weight of the generator a little (Adam, lr 3e-4, a few hundred steps), so
``tuned - base`` is small and fp16 keeps it to about 1e-3 of its own size: the rebuilt
weights differ from the tuned ones by far less than the tuning changed them (see
``bench/store.py`` for the measured image difference). Tensors the tuning did not change
(buffers such as ``w_avg`` and the noise constants) are not stored at all. The file is
safetensors; its metadata names the format and the base generator's digest, and loading
refuses a delta made against another base.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from draggan import Generator
from draggan.atomic_write import atomic_write
from pipeline.errors import PipelineError

DELTA_FORMAT = "dragpipe-generator-delta-1"


def save_tuned(path: Path, tuned: Generator, base: Generator, base_digest: str) -> dict[str, int]:
    """Write ``tuned - base`` (fp16, changed tensors only); returns counts for the manifest."""
    base_state = base.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for name, value in tuned.state_dict().items():
        reference = base_state[name]
        if value.shape != reference.shape:
            raise PipelineError(f"tuned generator tensor {name} changed shape")
        if torch.equal(value, reference):
            continue
        delta = value.detach().float().cpu() - reference.detach().float().cpu()
        tensors[name] = delta.to(torch.float16).contiguous()
    meta = {"format": DELTA_FORMAT, "base_digest": base_digest, "dtype": "float16"}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
    return {"stored_tensors": len(tensors), "unchanged_tensors": len(base_state) - len(tensors)}


def load_tuned(path: Path, base: Generator, base_digest: str) -> Generator:
    """Rebuild the tuned generator: a copy of ``base`` plus the stored delta (base untouched)."""
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
        if meta.get("format") != DELTA_FORMAT:
            raise PipelineError(f"{path} is not a dragpipe tuned-generator delta")
        if meta.get("base_digest") != base_digest:
            raise PipelineError(f"{path} was tuned from another generator checkpoint")
        deltas = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    tuned = copy.deepcopy(base)
    state = tuned.state_dict()
    unknown = sorted(set(deltas) - set(state))
    if unknown:
        raise PipelineError(f"{path} holds tensors the generator lacks: {', '.join(unknown[:3])}")
    with torch.no_grad():
        for name, delta in deltas.items():
            target = state[name]
            target.copy_((target.float() + delta.to(target.device).float()).to(target.dtype))
    return tuned
