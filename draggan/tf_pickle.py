"""TensorFlow StyleGAN2 pickles -> ``GeneratorConfig`` + NVIDIA-named state dict.

The file is a tuple ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` states (``Gs`` alone
is accepted too); ``Gs`` (the moving average) is converted. Its ``build_module_src`` is
never executed: the conversion reads ``static_kwargs`` and the ``variables`` of ``Gs`` and
its components, as NVIDIA's ``legacy.py`` does: dense weights are transposed, conv weights
go from [kh, kw, in, out] to [out, in, kh, kw], the up-sampling conv and the resnet skip
are flipped spatially (TF used a transposed conv), modulation biases get +1 (TF added the
1 at run time), per-layer noise inputs become ``noise_const`` buffers, and
``channel_base = 2 x fmap_base``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from draggan.building import CheckpointContents, channels_config
from draggan.config import GeneratorConfig
from draggan.errors import CheckpointError
from draggan.generator import Generator
from draggan.ops import setup_filter
from draggan.safe_unpickle import TFNetwork

FORMAT = "TensorFlow StyleGAN2 pickle"

# TF static kwarg -> (GeneratorConfig field, default when absent, value when given as None).
_KWARGS: dict[str, tuple[str, Any, Any]] = {
    "latent_size": ("z_dim", 512, None),
    "label_size": ("c_dim", 0, None),
    "dlatent_size": ("w_dim", 512, None),
    "resolution": ("img_resolution", 1024, None),
    "num_channels": ("img_channels", 3, None),
    "mapping_layers": ("mapping_layers", 8, None),
    "label_fmaps": ("embed_features", None, None),
    "mapping_fmaps": ("mapping_layer_features", None, None),
    "mapping_lrmul": ("mapping_lr_multiplier", 0.01, None),
    "w_avg_beta": ("w_avg_beta", 0.995, 1.0),
    "fmap_base": ("channel_base", 16384, None),  # doubled below
    "fmap_max": ("channel_max", 512, None),
    "num_fp16_res": ("num_fp16_res", 0, None),
    "conv_clamp": ("conv_clamp", None, None),
    "architecture": ("architecture", "skip", None),
    "resample_kernel": ("resample_filter", (1, 3, 3, 1), None),
    "use_noise": ("use_noise", True, None),
}
_ACTIVATIONS = ("nonlinearity", "mapping_nonlinearity")  # must be 'lrelu'
_IGNORED = ("truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure")
_IGNORED_VARIABLES = re.compile(r"(.*/)?lod")  # level-of-detail scalars of progressive growing


def find_gs(data: Any, source: str) -> TFNetwork:
    """``Gs`` of a ``(G, D, Gs)`` tuple (or a lone Network)."""
    if isinstance(data, TFNetwork):
        return data
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetwork) for n in data):
        return data[2]
    raise CheckpointError(f"{source}: not a TensorFlow StyleGAN2 (G, D, Gs) pickle")


def _collect(net: TFNetwork, prefix: str, out: dict[str, np.ndarray], source: str) -> None:
    for item in net.state.get("variables") or []:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise CheckpointError(f"{source}: a malformed TensorFlow variable list")
        name, value = item
        out[prefix + name] = np.asarray(value)
    for name, comp in (net.state.get("components") or {}).items():
        if not isinstance(comp, TFNetwork):
            raise CheckpointError(f"{source}: component {prefix}{name} is not a Network")
        _collect(comp, f"{prefix}{name}/", out, source)


def _config(kwargs: dict[str, Any], source: str) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_KWARGS) - set(_ACTIVATIONS) - set(_IGNORED))
    if unknown:
        raise CheckpointError(
            f"{source}: unknown TensorFlow generator setting(s) {', '.join(unknown)}; "
            "not a plain StyleGAN2 network"
        )
    for name in _ACTIVATIONS:
        if kwargs.get(name, "lrelu") not in ("lrelu", None):
            raise CheckpointError(
                f"{source}: {name}={kwargs[name]!r}; only StyleGAN2's 'lrelu' is supported"
            )
    fields: dict[str, Any] = {}
    for tf_name, (field_name, default, if_none) in _KWARGS.items():
        value = kwargs.get(tf_name, default)
        fields[field_name] = if_none if value is None else value
    fields["channel_base"] = int(fields["channel_base"]) * 2
    fields["resample_filter"] = tuple(int(v) for v in np.asarray(fields["resample_filter"]))
    return fields


def _dense(a: np.ndarray) -> np.ndarray:  # TF [in, out] -> [out, in]
    return a.T


def _conv(a: np.ndarray) -> np.ndarray:  # TF [kh, kw, in, out] -> [out, in, kh, kw]
    return a.transpose(3, 2, 0, 1)


def _flipped_conv(a: np.ndarray) -> np.ndarray:  # spatial flip (TF's transposed conv)
    return a[::-1, ::-1].transpose(3, 2, 0, 1)


def _plus_one(a: np.ndarray) -> np.ndarray:
    return a + 1


def _first(a: np.ndarray) -> np.ndarray:
    return a[0]


def _noise(a: np.ndarray) -> np.ndarray:  # [1, 1, r, r] -> [r, r]
    return a[0, 0]


def _same(a: np.ndarray) -> np.ndarray:
    return a


Rule = tuple[str, Callable[[np.ndarray], np.ndarray]]
_LAYER_TF = {"conv0": "Conv0_up", "conv1": "Conv1", "torgb": "ToRGB"}


def _tf_rule(name: str) -> Rule | None:
    """(TF variable name, conversion) for one of our state names; None for resample filters."""
    if name.endswith("resample_filter"):
        return None
    if name == "mapping.w_avg":
        return "dlatent_avg", _same
    m = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", name)
    if m:
        layer = "LabelEmbed" if m.group(1) == "embed" else f"Dense{m.group(2)}"
        return f"mapping/{layer}/{m.group(3)}", _dense if m.group(3) == "weight" else _same
    m = re.fullmatch(r"synthesis\.b(\d+)\.(.+)", name)
    if not m:
        raise CheckpointError(f"no TensorFlow counterpart for {name}")
    res, rest = int(m.group(1)), m.group(2)
    scope = f"synthesis/{res}x{res}"
    if rest == "const":
        return f"{scope}/Const/const", _first
    if rest == "skip.weight":
        return f"{scope}/Skip/weight", _flipped_conv
    layer, _, param = rest.partition(".")
    tf_layer = "Conv" if (res == 4 and layer == "conv1") else _LAYER_TF[layer]
    if param == "noise_const":
        index = 2 * int(math.log2(res)) - (5 if layer == "conv0" else 4)
        return f"synthesis/noise{index}", _noise
    if param == "weight":
        return f"{scope}/{tf_layer}/weight", _flipped_conv if layer == "conv0" else _conv
    if param == "affine.weight":
        return f"{scope}/{tf_layer}/mod_weight", _dense
    if param == "affine.bias":
        return f"{scope}/{tf_layer}/mod_bias", _plus_one
    return f"{scope}/{tf_layer}/{param}", _same  # bias, noise_strength


def _expected(config: GeneratorConfig) -> list[str]:
    """Our state-dict names for ``config`` (a throwaway CPU build: the meta device's first
    use costs seconds of lazy initialisation)."""
    return list(Generator(config).state_dict())


def tf_contents(data: Any, source: str) -> CheckpointContents:
    """Config and NVIDIA-named tensors converted from a TensorFlow StyleGAN2 pickle."""
    Gs = find_gs(data, source)
    version = Gs.state.get("version")
    if version != 4:
        raise CheckpointError(
            f"{source}: TensorFlow network format version {version!r}; only StyleGAN2's "
            "version 4 is supported (StyleGAN1 pickles are not)"
        )
    kwargs = Gs.state.get("static_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{source}: the network's static_kwargs are not a dict")
    fields = _config(dict(kwargs), source)
    variables: dict[str, np.ndarray] = {}
    _collect(Gs, "", variables, source)
    for name in list(variables):
        m = re.fullmatch(r"synthesis/ToRGB_lod(\d+)/(.*)", name)
        if m:  # 'orig' architecture: one ToRGB per level of detail
            r = int(fields["img_resolution"]) // 2 ** int(m.group(1))
            variables[f"synthesis/{r}x{r}/ToRGB/{m.group(2)}"] = variables.pop(name)
            fields["architecture"] = "orig"
    try:
        config = GeneratorConfig(**fields, source="stylegan2 (TensorFlow)")
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: unusable generator settings: {exc}") from None
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name in _expected(config):
        rule = _tf_rule(name)
        if rule is None:  # resampling filters are fixed by the config, not stored by TF
            state[name] = setup_filter(list(config.resample_filter))
            continue
        tf_name, convert = rule
        if tf_name not in variables:
            raise CheckpointError(
                f"{source}: TensorFlow variable {tf_name} (for {name}) is missing; the file is "
                "incomplete or not a StyleGAN2 generator"
            )
        used.add(tf_name)
        value = np.array(convert(variables[tf_name]), dtype=np.float32, order="C")
        state[name] = torch.from_numpy(value)
    unused = set(variables) - used
    if config.architecture == "orig":  # ToRGB of every level of detail; only the last is used
        unused = {n for n in unused if not re.fullmatch(r"synthesis/\d+x\d+/ToRGB/.*", n)}
    extra = sorted(n for n in unused if not _IGNORED_VARIABLES.fullmatch(n))
    if extra:
        raise CheckpointError(
            f"{source}: unexpected TensorFlow variable(s) {', '.join(extra[:4])}"
            f"{' ...' if len(extra) > 4 else ''}; the network differs from its settings"
        )
    # fmap_base defaults differ between TF configs: the weights' shapes settle it.
    base, cmax = channels_config(
        config.img_resolution, state, config.channel_base, config.channel_max
    )
    if (base, cmax) != (config.channel_base, config.channel_max):
        fields.update(channel_base=base, channel_max=cmax)
        config = GeneratorConfig(**fields, source=config.source)
    return CheckpointContents(config=config, state=state, format=FORMAT, network="Gs")
