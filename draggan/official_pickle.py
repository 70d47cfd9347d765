"""Official PyTorch StyleGAN2 pickles -> ``GeneratorConfig`` + state dict, without running code.

Two code bases write these files:

- NVlabs/stylegan2-ada-pytorch (d72cc7d) ``training/networks.py``: ``Generator(...,
  mapping_kwargs={}, synthesis_kwargs={})`` (nested); absent kwargs default to
  ``conv_clamp=None``, ``num_fp16_res=0``, ``w_avg_beta=0.995``;
- NVlabs/stylegan3 (c233a91) ``training/networks_stylegan2.py``: ``Generator(...,
  mapping_kwargs={}, **synthesis_kwargs)`` (flattened); defaults ``conv_clamp=256``,
  ``num_fp16_res=4``, ``w_avg_beta=0.998``.

Every layer's pickled ``__dict__`` also records the resolved values (``conv_clamp``,
``architecture``, ``use_noise``, ``num_layers``, ``bias_gain``, ...); those are preferred,
the kwargs and then the code base's defaults fill what is absent. The code base is told
from the kwargs layout (and, when no synthesis kwarg was given, from markers in the stored
module source, read as text). Nothing depends on the file name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from draggan.building import CheckpointContents, channels_config
from draggan.config import GeneratorConfig
from draggan.errors import CheckpointError
from draggan.safe_unpickle import PersistentObject

ADA = "stylegan2-ada-pytorch"
SG3 = "stylegan3 (networks_stylegan2)"

# Defaults when a kwarg is absent, per code base.
_DEFAULTS: dict[str, dict[str, Any]] = {
    ADA: {"conv_clamp": None, "num_fp16_res": 0, "w_avg_beta": 0.995},
    SG3: {"conv_clamp": 256, "num_fp16_res": 4, "w_avg_beta": 0.998},
}
_COMMON_DEFAULTS: dict[str, Any] = {
    "channel_base": 32768,
    "channel_max": 512,
    "architecture": "skip",
    "resample_filter": [1, 3, 3, 1],
    "use_noise": True,
    "activation": "lrelu",
    "num_layers": 8,
    "lr_multiplier": 0.01,
    "embed_features": None,
    "layer_features": None,
}
_TOP_KEYS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"}
_SYNTHESIS_KEYS = {
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "architecture",
    "resample_filter",
    "use_noise",
    "activation",
    # Speed/memory-layout switches with no effect on the numbers:
    "fp16_channels_last",
    "fused_modconv_default",
}
_MAPPING_KEYS = {
    "num_layers",
    "embed_features",
    "layer_features",
    "activation",
    "lr_multiplier",
    "w_avg_beta",
    # Training-only (Freeze-M / Freeze-E): no effect on the numbers.
    "freeze_layers",
    "freeze_embed",
}
_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_MISSING = object()


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers; everything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def find_generator(data: Any, source: str) -> tuple[PersistentObject, str]:
    """The generator object in an unpickled official file and its key ('G_ema', 'G' or '')."""
    if isinstance(data, PersistentObject):
        return data, ""
    if isinstance(data, Mapping):
        for key in ("G_ema", "G"):
            if isinstance(data.get(key), PersistentObject):
                return data[key], key
        keys = ", ".join(repr(k) for k in list(data)[:8]) or "none"
        raise CheckpointError(
            f"{source}: no 'G_ema' generator in this pickle (keys: {keys}); "
            "give a StyleGAN2 network pickle"
        )
    raise CheckpointError(
        f"{source}: the pickle holds a {type(data).__name__}, not a StyleGAN2 network; "
        "give a StyleGAN2 network pickle"
    )


def _flatten(
    obj: PersistentObject,
    prefix: str,
    tensors: dict[str, torch.Tensor],
    objects: dict[str, PersistentObject],
    source: str,
) -> None:
    objects[prefix.rstrip(".")] = obj
    state = obj.state
    for group in ("_parameters", "_buffers", "_modules"):
        if not isinstance(state.get(group) or {}, Mapping):
            raise CheckpointError(f"{source}: {prefix}{group} of the network is not a dict")
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{source}: {prefix}{name} is not a tensor")
            tensors[prefix + name] = tensor
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise CheckpointError(
                f"{source}: submodule {prefix}{name} is a {type(child).__name__}, "
                "not a StyleGAN network layer"
            )
        _flatten(child, f"{prefix}{name}.", tensors, objects, source)


def _code_base(G: PersistentObject, kwargs: Mapping[str, Any]) -> str:
    if "synthesis_kwargs" in kwargs:
        return ADA
    if any(key in _SYNTHESIS_KEYS for key in kwargs):
        return SG3
    # No synthesis kwarg given: the stored source (text only) tells the two apart.
    return SG3 if "update_emas" in G.module_src else ADA


def _split_kwargs(
    G: PersistentObject, source: str
) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(code base, top-level kwargs, mapping kwargs, synthesis kwargs); unknown keys raise."""
    raw = G.state.get("_init_kwargs")
    if raw is None:
        raw = G.state.get("init_kwargs", {})
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{source}: the generator's init_kwargs are not a dict")
    kwargs = dict(raw)
    args = G.state.get("_init_args") or ()
    for name, value in zip(_POSITIONAL, args, strict=False):
        kwargs.setdefault(name, value)
    code_base = _code_base(G, kwargs)
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    if code_base == ADA:
        synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    else:
        synthesis = {k: kwargs.pop(k) for k in list(kwargs) if k not in _TOP_KEYS}
    unknown = sorted(
        [k for k in kwargs if k not in _TOP_KEYS]
        + [f"mapping_kwargs.{k}" for k in mapping if k not in _MAPPING_KEYS]
        + [f"synthesis.{k}" for k in synthesis if k not in _SYNTHESIS_KEYS]
    )
    if unknown:
        raise CheckpointError(
            f"{source}: unknown generator setting(s) {', '.join(unknown)}; this is not a plain "
            "StyleGAN2 generator (modified code base?) and cannot be loaded faithfully"
        )
    return code_base, kwargs, mapping, synthesis


def _resolve(objects: Mapping[str, PersistentObject], path: str, attr: str, *fallbacks: Any) -> Any:
    """The attribute ``attr`` of the pickled layer at ``path``, else the first fallback given
    (``_MISSING`` entries are skipped)."""
    obj = objects.get(path)
    if obj is not None and attr in obj.state:
        return _plain(obj.state[attr])
    for value in fallbacks:
        if value is not _MISSING:
            return _plain(value)
    return None


def official_contents(data: Any, source: str) -> CheckpointContents:
    """Config and tensors of the StyleGAN2 generator in an unpickled official file."""
    G, key = find_generator(data, source)
    if G.class_name != "Generator":
        raise CheckpointError(
            f"{source}: network class {G.class_name!r} is not a StyleGAN2 Generator"
        )
    tensors: dict[str, torch.Tensor] = {}
    objects: dict[str, PersistentObject] = {}
    _flatten(G, "", tensors, objects, source)
    if "synthesis.input" in objects or "class SynthesisInput" in G.module_src:
        raise CheckpointError(
            f"{source}: a StyleGAN3 (alias-free) generator; dragpipe runs StyleGAN2 generators "
            "(use a stylegan2-*.pkl)"
        )
    for part in ("mapping", "synthesis"):
        if part not in objects:
            raise CheckpointError(f"{source}: the generator has no '{part}' network")
    code_base, top, mk, sk = _split_kwargs(G, source)
    defaults = {**_COMMON_DEFAULTS, **_DEFAULTS[code_base]}

    def setting(path: str, attr: str, kw: Mapping[str, Any], name: str) -> Any:
        return _resolve(objects, path, attr, kw.get(name, _MISSING), defaults.get(name))

    res = int(_resolve(objects, "", "img_resolution", top.get("img_resolution", _MISSING)) or 0)
    w_dim = int(_resolve(objects, "", "w_dim", top.get("w_dim", _MISSING), 512))
    c_dim = int(_resolve(objects, "", "c_dim", top.get("c_dim", _MISSING), 0))
    num_layers = int(setting("mapping", "num_layers", mk, "num_layers"))
    layer_features = mk.get("layer_features")
    if num_layers > 1 and "mapping.fc0.weight" in tensors:
        layer_features = int(tensors["mapping.fc0.weight"].shape[0])
    embed_features = mk.get("embed_features")
    if c_dim > 0 and "mapping.embed.weight" in tensors:
        embed_features = int(tensors["mapping.embed.weight"].shape[0])
    for path in ("mapping.fc0", f"synthesis.b{res}.conv1", "synthesis.b4.conv1"):
        activation = _resolve(objects, path, "activation", mk.get("activation", "lrelu"))
        if activation != "lrelu":
            raise CheckpointError(
                f"{source}: activation {activation!r} in {path}; only StyleGAN2's 'lrelu' "
                "is supported"
            )
    last = f"synthesis.b{res}"
    architecture = setting(last, "architecture", sk, "architecture")
    conv_clamp = setting("synthesis.b4.conv1", "conv_clamp", sk, "conv_clamp")
    num_fp16_res = setting("synthesis", "num_fp16_res", sk, "num_fp16_res")
    channel_base, channel_max = channels_config(
        res,
        tensors,
        sk.get("channel_base", defaults["channel_base"]),
        sk.get("channel_max", defaults["channel_max"]),
    )
    try:
        config = GeneratorConfig(
            img_resolution=res,
            img_channels=int(
                _resolve(objects, "", "img_channels", top.get("img_channels", _MISSING), 3)
            ),
            z_dim=int(_resolve(objects, "", "z_dim", top.get("z_dim", _MISSING), 512)),
            c_dim=c_dim,
            w_dim=w_dim,
            mapping_layers=num_layers,
            mapping_lr_multiplier=float(setting("mapping.fc0", "bias_gain", mk, "lr_multiplier")),
            mapping_layer_features=None if layer_features == w_dim else layer_features,
            embed_features=None if embed_features == w_dim else embed_features,
            w_avg_beta=setting("mapping", "w_avg_beta", mk, "w_avg_beta"),
            channel_base=channel_base,
            channel_max=channel_max,
            num_fp16_res=int(num_fp16_res),
            conv_clamp=None if conv_clamp is None else float(conv_clamp),
            architecture=str(architecture),
            resample_filter=tuple(sk.get("resample_filter", defaults["resample_filter"])),
            use_noise=bool(setting("synthesis.b4.conv1", "use_noise", sk, "use_noise")),
            source=code_base,
        )
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: unusable generator settings: {exc}") from None
    state = {name: t.to(torch.float32) for name, t in tensors.items()}
    return CheckpointContents(
        config=config, state=state, format=f"{code_base} pickle", network=key or "generator"
    )
