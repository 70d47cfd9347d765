"""Test helpers: write official-format StyleGAN2 pickles from one of our generators.

The files are laid out like NVIDIA's (NVlabs/stylegan2-ada-pytorch d72cc7d,
``torch_utils/persistence.py`` and ``legacy.py``): network objects pickled through
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with the module's
``__dict__`` as ``meta['state']``, kwargs as ``dnnlib.util.EasyDict``, tensors and
parameters pickled by torch itself, gains as numpy float64 scalars; TensorFlow files as a
``(G, D, Gs)`` tuple of ``dnnlib.tflib.network.Network`` states. Stand-in modules with
those names sit in ``sys.modules`` only while dumping, so pickle records the real global
names. ``numpy_spelling='numpy1'`` writes numpy 1.x's ``numpy.core.multiarray`` globals.
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from draggan import Generator, GeneratorConfig


@contextlib.contextmanager
def stand_in_modules(numpy_spelling: str = "numpy2") -> Iterator[types.SimpleNamespace]:
    """Register ``torch_utils.persistence``, ``dnnlib.util``, ``dnnlib.tflib.network`` (and
    for numpy 1.x spelling ``numpy.core.multiarray``) stand-ins while the block runs."""

    def module(name: str) -> types.ModuleType:
        return types.ModuleType(name)

    mods = {
        n: module(n)
        for n in (
            "torch_utils",
            "torch_utils.persistence",
            "dnnlib",
            "dnnlib.util",
            "dnnlib.tflib",
            "dnnlib.tflib.network",
        )
    }

    def _reconstruct_persistent_obj(meta: Any) -> Any:
        raise AssertionError("only used for writing")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    mods["dnnlib.util"].EasyDict = EasyDict

    class Network:
        def __init__(self, state: dict[str, Any]) -> None:
            self._state = state

        def __getstate__(self) -> dict[str, Any]:
            return self._state

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    mods["dnnlib.tflib.network"].Network = Network

    if numpy_spelling == "numpy1":
        mods["numpy.core"] = module("numpy.core")
        mods["numpy.core.multiarray"] = np1 = module("numpy.core.multiarray")

        def scalar(dtype: Any, data: Any) -> Any:
            raise AssertionError("only used for writing")

        def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> Any:
            raise AssertionError("only used for writing")

        for fn in (scalar, _reconstruct):
            fn.__module__, fn.__qualname__ = "numpy.core.multiarray", fn.__name__
            setattr(np1, fn.__name__, fn)
    saved = {n: sys.modules.get(n) for n in mods}
    sys.modules.update(mods)
    try:
        yield types.SimpleNamespace(
            reconstruct=_reconstruct_persistent_obj,
            EasyDict=EasyDict,
            Network=Network,
            numpy1=mods.get("numpy.core.multiarray"),
        )
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


class _Persistent:
    """Pickles as NVIDIA's persistent objects do."""

    def __init__(self, reconstruct: Any, class_name: str, module_src: str, state: dict) -> None:
        self.reconstruct, self.class_name, self.module_src, self.state = (
            reconstruct,
            class_name,
            module_src,
            state,
        )

    def __reduce__(self) -> tuple:
        meta = dict(
            type="class",
            version=6,
            module_src=self.module_src,
            class_name=self.class_name,
            state=self.state,
        )
        return (self.reconstruct, (meta,))


def _module_state() -> dict[str, Any]:
    """torch.nn.Module's own __dict__ entries, as a recent torch pickles them."""
    return {
        "training": False,
        "_parameters": OrderedDict(),
        "_buffers": OrderedDict(),
        "_non_persistent_buffers_set": set(),
        "_backward_pre_hooks": OrderedDict(),
        "_backward_hooks": OrderedDict(),
        "_is_full_backward_hook": None,
        "_forward_hooks": OrderedDict(),
        "_forward_hooks_with_kwargs": OrderedDict(),
        "_forward_hooks_always_called": OrderedDict(),
        "_forward_pre_hooks": OrderedDict(),
        "_forward_pre_hooks_with_kwargs": OrderedDict(),
        "_state_dict_hooks": OrderedDict(),
        "_state_dict_pre_hooks": OrderedDict(),
        "_load_state_dict_pre_hooks": OrderedDict(),
        "_load_state_dict_post_hooks": OrderedDict(),
        "_modules": OrderedDict(),
    }


def _class_and_attrs(path: str, cfg: GeneratorConfig, layout: str) -> tuple[str, dict]:
    """NVIDIA class name and resolved attributes of the module at ``path``."""
    last = path.rsplit(".", 1)[-1]
    gain = np.float64(math.sqrt(2))
    n_blocks = len(cfg.block_resolutions)
    if path == "":
        return "Generator", dict(
            z_dim=cfg.z_dim,
            c_dim=cfg.c_dim,
            w_dim=cfg.w_dim,
            img_resolution=cfg.img_resolution,
            img_channels=cfg.img_channels,
            num_ws=2 * n_blocks,
        )
    if path == "mapping":
        return "MappingNetwork", dict(
            z_dim=cfg.z_dim,
            c_dim=cfg.c_dim,
            w_dim=cfg.w_dim,
            num_ws=2 * n_blocks,
            num_layers=cfg.mapping_layers,
            w_avg_beta=cfg.w_avg_beta,
        )
    if last.startswith("fc") or last in ("embed", "affine"):
        lr = cfg.mapping_lr_multiplier if path.startswith("mapping.fc") else 1.0
        return "FullyConnectedLayer", dict(
            activation="lrelu" if path.startswith("mapping.fc") else "linear",
            weight_gain=np.float64(lr),  # exact value irrelevant to the loader
            bias_gain=lr,
        )
    if path == "synthesis":
        attrs = dict(
            w_dim=cfg.w_dim,
            img_resolution=cfg.img_resolution,
            img_resolution_log2=int(math.log2(cfg.img_resolution)),
            img_channels=cfg.img_channels,
            block_resolutions=cfg.block_resolutions,
            num_ws=2 * n_blocks,
        )
        if layout == "sg3":
            attrs["num_fp16_res"] = cfg.num_fp16_res
        return "SynthesisNetwork", attrs
    if last.startswith("b") and last[1:].isdigit():
        res = int(last[1:])
        return "SynthesisBlock", dict(
            w_dim=cfg.w_dim,
            resolution=res,
            img_channels=cfg.img_channels,
            is_last=res == cfg.img_resolution,
            architecture=cfg.architecture,
            use_fp16=False,
            channels_last=False,
            num_conv=1 if res == 4 else 2,
            num_torgb=int(res == cfg.img_resolution or cfg.architecture == "skip"),
        )
    if last in ("conv0", "conv1"):
        return "SynthesisLayer", dict(
            up=2 if last == "conv0" else 1,
            use_noise=cfg.use_noise,
            activation="lrelu",
            conv_clamp=cfg.conv_clamp,
            padding=1,
            act_gain=gain,
        )
    if last == "torgb":
        return "ToRGBLayer", dict(conv_clamp=cfg.conv_clamp, weight_gain=np.float64(0.5))
    if last == "skip":
        return "Conv2dLayer", dict(
            activation="linear", up=2, down=1, conv_clamp=None, padding=0, act_gain=1.0
        )
    raise AssertionError(f"unexpected module path {path}")


def init_kwargs(cfg: GeneratorConfig, layout: str, ns: Any, explicit: bool = True) -> dict:
    """Generator init_kwargs as train.py writes them: 'ada' nested or 'sg3' flattened.

    ``explicit=False`` leaves conv_clamp / num_fp16_res out (the code base's default).
    """
    synthesis = ns.EasyDict(channel_base=cfg.channel_base, channel_max=cfg.channel_max)
    if cfg.architecture != "skip":
        synthesis["architecture"] = cfg.architecture
    if explicit:
        synthesis.update(num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp)
    kwargs: dict[str, Any] = dict(
        z_dim=cfg.z_dim,
        w_dim=cfg.w_dim,
        mapping_kwargs=ns.EasyDict(num_layers=cfg.mapping_layers),
        c_dim=cfg.c_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
    )
    if layout == "ada":
        kwargs["synthesis_kwargs"] = synthesis
    else:
        kwargs.update(synthesis, fused_modconv_default="inference_only")
    return kwargs


ADA_SRC = "def forward(self, z, c, truncation_psi=1, skip_w_avg_update=False): pass\n"
SG3_SRC = "def forward(self, z, c, truncation_psi=1, update_emas=False): pass\n"


def official_tree(
    G: Generator,
    ns: Any,
    layout: str = "ada",
    explicit_kwargs: bool = True,
    resolved_attrs: bool = True,
    module_src: str | None = None,
    state_override: dict[str, Any] | None = None,
    extra_synthesis_kwargs: dict[str, Any] | None = None,
) -> _Persistent:
    """G as a tree of persistent objects laid out like NVIDIA's pickled G_ema.

    ``resolved_attrs=False`` leaves the layers' resolved attributes out (older or stripped
    files: the loader then falls back to kwargs and defaults); ``state_override`` replaces
    tensors (None drops one); ``extra_synthesis_kwargs`` adds init kwargs.
    """
    cfg = G.config
    src = module_src if module_src is not None else (ADA_SRC if layout == "ada" else SG3_SRC)
    params = dict(G.named_parameters())
    state = dict(G.state_dict())
    state.update(state_override or {})
    modules: dict[str, dict[str, Any]] = {}

    def node(path: str) -> dict[str, Any]:
        if path not in modules:
            class_name, attrs = _class_and_attrs(path, cfg, layout)
            st = _module_state()
            if resolved_attrs or path == "":
                st.update(attrs)
            st["_init_args"] = ()
            st["_init_kwargs"] = {}
            modules[path] = {"class": class_name, "state": st}
            if path:
                parent, _, name = path.rpartition(".")
                node(parent)["state"]["_modules"][name] = path
        return modules[path]

    for name, tensor in state.items():
        if tensor is None:  # an override of None leaves the tensor out
            continue
        path, _, leaf = name.rpartition(".")
        st = node(path)["state"]
        if name in params:
            st["_parameters"][leaf] = torch.nn.Parameter(tensor.detach().clone(), False)
        else:
            st["_buffers"][leaf] = tensor.detach().clone()
    kwargs = init_kwargs(cfg, layout, ns, explicit_kwargs)
    if extra_synthesis_kwargs:
        target = kwargs["synthesis_kwargs"] if layout == "ada" else kwargs
        target.update(extra_synthesis_kwargs)
    node("")["state"]["_init_kwargs"] = kwargs

    def build(path: str) -> _Persistent:
        entry = modules[path]
        st = entry["state"]
        st["_modules"] = OrderedDict((k, build(v)) for k, v in st["_modules"].items())
        return _Persistent(ns.reconstruct, entry["class"], src, st)

    return build("")


class _Numpy1Pickler(pickle.Pickler):
    """Writes numpy scalars and arrays with numpy 1.x's ``numpy.core.multiarray`` names."""

    def __init__(self, file: Any, protocol: int, np1: Any) -> None:
        super().__init__(file, protocol=protocol)
        self.np1 = np1

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return (self.np1.scalar, (obj.dtype, obj.tobytes()))
        if type(obj) is np.ndarray:
            return (self.np1._reconstruct, (np.ndarray, (0,), b"b"), obj.__reduce__()[2])
        return NotImplemented


def dump(obj: Any, protocol: int, ns: Any) -> bytes:
    """Pickle ``obj`` (inside ``stand_in_modules``) with numpy 1.x names if registered."""
    f = io.BytesIO()
    if ns.numpy1 is not None:
        _Numpy1Pickler(f, protocol, ns.numpy1).dump(obj)
    else:
        pickle.Pickler(f, protocol=protocol).dump(obj)
    return f.getvalue()


def official_pickle_bytes(
    G: Generator,
    protocol: int = 4,
    layout: str = "ada",
    numpy_spelling: str = "numpy2",
    g_ema_only: bool = False,
    **tree_kwargs: Any,
) -> bytes:
    """A whole official-format network pickle of ``G``."""
    with stand_in_modules(numpy_spelling) as ns:
        G_ema = official_tree(G, ns, layout, **tree_kwargs)
        if g_ema_only:
            data: dict[str, Any] = {"G_ema": G_ema}
        else:
            training = ns.EasyDict(path="ffhq.zip", resolution=G.img_resolution, use_labels=False)
            data = {
                "G": official_tree(G, ns, layout, **tree_kwargs),
                "D": _Persistent(ns.reconstruct, "Discriminator", "", _module_state()),
                "G_ema": G_ema,
                "training_set_kwargs": training,
                "augment_pipe": None,
            }
            if layout == "sg3":  # the stylegan3 repo writes another key order
                data = {k: data[k] for k in ("G", "D", "G_ema", "augment_pipe")} | {
                    "training_set_kwargs": training
                }
        return dump(data, protocol, ns)


# ------------------------------------------------------------------- TensorFlow format


def _tf_conv(w: torch.Tensor, flip: bool = False) -> np.ndarray:  # [out,in,kh,kw] -> TF
    a = w.numpy().transpose(2, 3, 1, 0)
    return np.ascontiguousarray(a[::-1, ::-1] if flip else a)


def tf_variables(G: Generator) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(Gs own, mapping, synthesis) TF variables: the inverse of legacy.py's conversion."""
    sd = {k: v.detach().float() for k, v in G.state_dict().items()}
    cfg = G.config
    top = {"dlatent_avg": sd["mapping.w_avg"].numpy(), "lod": np.float32(0)}
    mapping: dict[str, Any] = {}
    for i in range(cfg.mapping_layers):
        mapping[f"Dense{i}/weight"] = sd[f"mapping.fc{i}.weight"].numpy().T.copy()
        mapping[f"Dense{i}/bias"] = sd[f"mapping.fc{i}.bias"].numpy()
    synthesis: dict[str, Any] = {}
    for res in cfg.block_resolutions:
        b, scope = f"synthesis.b{res}", f"{res}x{res}"
        layers = [("conv1", "Conv")] if res == 4 else [("conv0", "Conv0_up"), ("conv1", "Conv1")]
        if res == 4:
            synthesis["4x4/Const/const"] = sd[f"{b}.const"].numpy()[None]
        for layer, tf in layers:
            p = f"{b}.{layer}"
            synthesis[f"{scope}/{tf}/weight"] = _tf_conv(sd[f"{p}.weight"], layer == "conv0")
            synthesis[f"{scope}/{tf}/bias"] = sd[f"{p}.bias"].numpy()
            synthesis[f"{scope}/{tf}/noise_strength"] = sd[f"{p}.noise_strength"].numpy()
            synthesis[f"{scope}/{tf}/mod_weight"] = sd[f"{p}.affine.weight"].numpy().T.copy()
            synthesis[f"{scope}/{tf}/mod_bias"] = sd[f"{p}.affine.bias"].numpy() - 1
            index = 2 * int(math.log2(res)) - (5 if layer == "conv0" else 4)
            synthesis[f"noise{index}"] = sd[f"{p}.noise_const"].numpy()[None, None]
        if f"{b}.torgb.weight" in sd:
            synthesis[f"{scope}/ToRGB/weight"] = _tf_conv(sd[f"{b}.torgb.weight"])
            synthesis[f"{scope}/ToRGB/bias"] = sd[f"{b}.torgb.bias"].numpy()
            synthesis[f"{scope}/ToRGB/mod_weight"] = sd[f"{b}.torgb.affine.weight"].numpy().T.copy()
            synthesis[f"{scope}/ToRGB/mod_bias"] = sd[f"{b}.torgb.affine.bias"].numpy() - 1
        if f"{b}.skip.weight" in sd:
            synthesis[f"{scope}/Skip/weight"] = _tf_conv(sd[f"{b}.skip.weight"], flip=True)
    return top, mapping, synthesis


def tf_pickle_bytes(
    G: Generator,
    protocol: int = 3,
    numpy_spelling: str = "numpy1",
    build_module_src: str = "",
    static_kwargs: dict[str, Any] | None = None,
    drop: str | None = None,
) -> bytes:
    """A TensorFlow StyleGAN2 ``(G, D, Gs)`` pickle of ``G`` (``drop``: leave a variable out)."""
    cfg = G.config
    top, mapping, synthesis = tf_variables(G)
    for part in (top, mapping, synthesis):
        part.pop(drop or "", None)
    if cfg.architecture == "orig":  # TF 'orig' nets name ToRGB by level of detail, all kept
        for name in [n for n in synthesis if "/ToRGB/" in n]:
            synthesis["ToRGB_lod0/" + name.split("/ToRGB/")[1]] = synthesis.pop(name)
        channels = cfg.channels(cfg.img_resolution // 2)
        synthesis["ToRGB_lod1/weight"] = np.ones((1, 1, channels, 3), np.float32)
        synthesis["ToRGB_lod1/bias"] = np.ones(3, np.float32)
    kwargs = dict(
        num_channels=cfg.img_channels,
        resolution=cfg.img_resolution,
        label_size=cfg.c_dim,
        latent_size=cfg.z_dim,
        dlatent_size=cfg.w_dim,
        mapping_layers=cfg.mapping_layers,
        fmap_base=cfg.channel_base // 2,
        fmap_max=cfg.channel_max,
        architecture=cfg.architecture,
        conv_clamp=cfg.conv_clamp,
        truncation_psi=0.5,
    )
    kwargs.update(static_kwargs or {})
    with stand_in_modules(numpy_spelling) as ns:

        def net(name: str, func: str, variables: dict[str, Any], **components: Any) -> Any:
            return ns.Network(
                dict(
                    version=4,
                    name=name,
                    static_kwargs=dict(kwargs) if name in ("G", "Gs") else {},
                    components=components,
                    build_module_src=build_module_src,
                    build_func_name=func,
                    variables=list(variables.items()),
                )
            )

        def generator(name: str) -> Any:
            return net(
                name,
                "G_main",
                top,
                mapping=net("G_mapping", "G_mapping", mapping),
                synthesis=net("G_synthesis", "G_synthesis_stylegan2", synthesis),
            )

        D = net("D", "D_stylegan2", {"Output/weight": np.ones((4, 1), np.float32)})
        return dump((generator("G"), D, generator("Gs")), protocol, ns)
