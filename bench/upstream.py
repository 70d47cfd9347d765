"""dragpipe next to the upstream code, timed in one process: NVIDIA's stylegan2-ada-pytorch
generator (its reference ops, as it runs on a CPU) and the official DragGAN renderer's drag
step (XingangPan/DragGAN ``viz/renderer.py``, run headless).

The upstream code is not part of dragpipe (its licences forbid copying it): point the
script at checkouts you have, e.g. ``git clone https://github.com/NVlabs/stylegan2-ada-pytorch``
and ``https://github.com/XingangPan/DragGAN`` (measured with d72cc7d and 336f120):

    python bench/upstream.py --stylegan2-ada DIR --draggan DIR [--quick] [--threads 2]
        [--repeats 5] [--sections generator drag memory] [--autotune-cache FILE]

Every network gets the same seeded random weights (state-dict names are NVIDIA's; 512 px:
channel_base 32768, 256 px: 16384, 1024 px: 32768; conv_clamp 256, float32, batch 1). The
upstream modules are imported from the checkouts; their custom CUDA ops are never
compiled (on a CPU they fall back to their reference code). Modules the measured code never
calls but that upstream imports at load time (``click``, ``requests``, ``matplotlib``) are
replaced by empty stand-ins when they are not installed.

Sections (each prints the foreign load: cores other processes kept busy meanwhile):
- generator: synthesis forward (no grad), forward + backward to ws (weights frozen), and
  the drag's work: blocks up to b128, backward to ws (upstream: its blocks run up to b128,
  truncated). Columns: NVIDIA, dragpipe 'fast' (autotuned), 'fast' with the default
  candidates (``DRAGPIPE_AUTOTUNE=off``: the fixed choices before autotuning), 'ref'.
  Implementations alternate in every round; medians, and ratios to NVIDIA.
- drag: one drag step. Upstream: ``Renderer._render_drag_impl`` (its drag step without the
  GUI's watermark and pinned-memory copy) on DragGAN's own generator with the same
  weights, weights requiring gradients as in the GUI. dragpipe: ``drag()`` in 'official'
  mode (median step) and 'fast' mode (mean step over a run with the default
  render_every=10, and the median step between renders).
- memory: peak resident memory of a drag step and of a PTI projection / tuning step at
  512 and 1024 px, upstream next to dragpipe; PTI's published loops are run with NVIDIA's
  generator and the ``lpips`` package (random backbone: no download; the same networks).

Autotuning: dragpipe's 'fast' rows measure their layer candidates at first use into a fresh
temporary cache (the time it took is printed) unless ``--autotune-cache FILE`` is given.
``--quick``: 256 px only, 2 repeats, fewer drag steps (a smoke run, about a minute quiet).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import _benchpath  # noqa: F401  (bench/ off sys.path: see _benchpath.py)
import torch

from draggan import Generator, GeneratorConfig
from draggan.autotune import Autotuner

measure = _benchpath.sibling("_measure")

UPSTREAM_PACKAGES = ("dnnlib", "torch_utils", "training", "legacy", "viz", "gui_utils")
STAND_INS = ("click", "requests", "matplotlib", "matplotlib.cm")
CHANNEL_BASE = {256: 16384, 512: 32768, 1024: 32768}


# ----------------------------------------------------------------------------------------
# Upstream code, imported from the user's checkouts


class _StandIn(types.ModuleType):
    """An absent module upstream imports but the measured code never calls: any attribute
    is a decorator factory that leaves the decorated function alone."""

    def __getattr__(self, name: str) -> Callable:
        def factory(*args, **kwargs):
            if len(args) == 1 and callable(args[0]) and not kwargs:
                return args[0]
            return lambda fn: fn

        return factory


class UpstreamCode:
    """Modules imported from one checkout. Both repositories have packages named
    ``torch_utils``, ``training``, ``dnnlib``: each checkout's are kept apart and put into
    ``sys.modules`` only inside ``with code.active():`` (NVIDIA's persistence decorator
    needs its own module importable while networks are constructed)."""

    def __init__(self, root: Path, modules: list[str]) -> None:
        if not root.is_dir():
            sys.exit(f"upstream checkout {root} is not a folder: give the path of a git clone")
        self.root = root
        self.own: dict[str, types.ModuleType] = {}
        self.stand_ins: list[str] = []
        with self.active():
            for name in STAND_INS:
                top = name.split(".")[0]
                if name in sys.modules:
                    continue
                if top in self.stand_ins or importlib.util.find_spec(top) is None:
                    sys.modules[name] = self.own[name] = _StandIn(name)
                    self.stand_ins.append(name)
            try:
                self.modules = {m: importlib.import_module(m) for m in modules}
            except ImportError as exc:
                sys.exit(f"cannot import {exc.name!r} from the checkout {root}: {exc}")

    def _ours(self, name: str) -> bool:
        return name.split(".")[0] in UPSTREAM_PACKAGES or name in self.stand_ins

    @contextlib.contextmanager
    def active(self):
        saved = {k: sys.modules.pop(k) for k in list(sys.modules) if self._ours(k)}
        sys.modules.update(self.own)
        sys.path.insert(0, str(self.root))
        try:
            yield
        finally:
            sys.path.remove(str(self.root))
            self.own = {k: sys.modules.pop(k) for k in list(sys.modules) if self._ours(k)}
            sys.modules.update(saved)

    def __getitem__(self, module: str) -> types.ModuleType:
        return self.modules[module]


def upstream_kwargs(config: GeneratorConfig) -> dict:
    return dict(
        z_dim=config.z_dim,
        c_dim=config.c_dim,
        w_dim=config.w_dim,
        img_resolution=config.img_resolution,
        img_channels=config.img_channels,
        mapping_kwargs=dict(num_layers=config.mapping_layers),
        synthesis_kwargs=dict(
            channel_base=config.channel_base,
            channel_max=config.channel_max,
            num_fp16_res=0,
            conv_clamp=config.conv_clamp,
            architecture=config.architecture,
        ),
    )


def nvidia_generator(ada: UpstreamCode, G: Generator) -> torch.nn.Module:
    """stylegan2-ada-pytorch's Generator with ``G``'s weights, eval, frozen (like G_ema)."""
    with ada.active():
        net = ada["training.networks"].Generator(**upstream_kwargs(G.config))
    net.load_state_dict(G.state_dict(), strict=True)
    return net.eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------
# Generator section


def build(resolution: int, tuner: Autotuner) -> tuple[Generator, torch.Tensor]:
    torch.manual_seed(0)
    config = GeneratorConfig(
        img_resolution=resolution, channel_base=CHANNEL_BASE[resolution], conv_clamp=256
    )
    G = Generator(config, autotuner=tuner).eval().requires_grad_(False)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, config.z_dim))  # [1, num_ws, 512]
    return G, ws


def nvidia_features(net: torch.nn.Module, ws: torch.Tensor, resolution: int) -> torch.Tensor:
    """NVIDIA's synthesis blocks run up to ``b{resolution}`` (truncated); its x output."""
    synthesis = net.synthesis
    x = img = None
    index = 0
    for res in synthesis.block_resolutions:
        block = getattr(synthesis, f"b{res}")
        block_ws = ws.narrow(1, index, block.num_conv + block.num_torgb)
        index += block.num_conv
        x, img = block(x, img, block_ws, noise_mode="const", force_fp32=True)
        if res == resolution:
            return x
    raise ValueError(f"no block b{resolution}")


def generator_workloads(
    run: Callable[..., torch.Tensor], feats: Callable[..., torch.Tensor], ws0, proj, feat_res
) -> dict[str, Callable[[], None]]:
    def forward() -> None:
        with torch.no_grad():
            run(ws0)

    def backward() -> None:
        ws = ws0.clone().requires_grad_()
        (run(ws) * proj).sum().backward()

    def features() -> None:
        ws = ws0.clone().requires_grad_()
        feats(ws).square().mean().backward()

    return {
        "synthesis forward": forward,
        "forward + backward to ws": backward,
        f"to b{feat_res} + backward (drag's work)": features,
    }


def generator_section(args, ada, resolution: int, tuner: Autotuner, results: dict) -> None:
    G, ws0 = build(resolution, tuner)
    nv = nvidia_generator(ada, G)
    proj = torch.randn(1, 3, resolution, resolution, generator=torch.Generator().manual_seed(1))
    feat_res = min(128, resolution)
    before = Autotuner(override="off")
    tuned = G.synthesis.autotuner

    def ours(impl: str, choose: Autotuner):
        def run(ws):
            G.synthesis.autotuner = choose
            return G.synthesis(ws, impl=impl)

        def feats(ws):
            G.synthesis.autotuner = choose
            return G.synthesis.features_at(ws, feat_res, impl=impl)

        return run, feats

    impls = {
        "NVIDIA": (
            lambda ws: nv.synthesis(ws, noise_mode="const", force_fp32=True),
            lambda ws: nvidia_features(nv, ws, feat_res),
        ),
        "fast": ours("fast", tuned),
        "fast, before": ours("fast", before),
        "ref": ours("ref", before),
    }
    with torch.no_grad():
        image = {name: fns[0](ws0) for name, fns in impls.items()}
    start = time.perf_counter()
    for name in generator_workloads(*impls["fast"], ws0, proj, feat_res).values():
        name()
    tuning = time.perf_counter() - start
    diffs = ", ".join(
        f"{n} {float((image[n] - image['NVIDIA']).abs().max()):.1e}" for n in impls if n != "NVIDIA"
    )
    print(
        f"\n{resolution} px (channel_base {G.config.channel_base}); max |image - NVIDIA's|: "
        f"{diffs}; first 'fast' calls incl. autotuning {tuning:.1f} s"
    )
    loads = {name: generator_workloads(*fns, ws0, proj, feat_res) for name, fns in impls.items()}
    header = f"  {'seconds (median of ' + str(args.repeats) + ')':<38}" + "".join(
        f"{n:>14}" for n in impls
    )
    print(header)
    for work in loads["NVIDIA"]:
        with measure.ForeignLoad() as load:
            times = measure.interleaved({n: loads[n][work] for n in impls}, args.repeats)
        med = {n: measure.median(t) for n, t in times.items()}
        cells = "".join(
            f"{med[n]:>8.2f}" + (f" {med[n] / med['NVIDIA']:4.2f}x" if n != "NVIDIA" else " " * 6)
            for n in impls
        )
        print(f"  {work:<38}{cells}   ({load})", flush=True)
        results[(resolution, work)] = med


# ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stylegan2-ada", type=Path, required=True, help="NVlabs/stylegan2-ada-pytorch checkout"
    )
    parser.add_argument("--draggan", type=Path, required=True, help="XingangPan/DragGAN checkout")
    parser.add_argument("--quick", action="store_true", help="256 px, 2 repeats, short drags")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["generator", "drag", "memory"],
        choices=["generator", "drag", "memory"],
    )
    parser.add_argument(
        "--autotune-cache",
        type=Path,
        default=None,
        help="reuse this autotune cache file (default: a fresh temporary one)",
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2
    torch.set_num_threads(args.threads)
    ada = UpstreamCode(args.stylegan2_ada, ["training.networks"])
    print(f"machine: {measure.machine_line()}")
    print(f"upstream: stylegan2-ada-pytorch at {args.stylegan2_ada}, DragGAN at {args.draggan}")
    cache = args.autotune_cache or Path(tempfile.mkdtemp()) / "autotune.json"
    tuner = Autotuner(cache)
    results: dict = {}
    if "generator" in args.sections:
        for resolution in [256] if args.quick else [512, 256]:
            generator_section(args, ada, resolution, tuner, results)


if __name__ == "__main__":
    main()
