"""dragpipe next to the upstream code, timed in one process: NVIDIA's stylegan2-ada-pytorch
generator (its reference ops, as it runs on a CPU) and the official DragGAN renderer's drag
step (XingangPan/DragGAN ``viz/renderer.py``, run headless).

The upstream code is not part of dragpipe (its licences forbid copying it): point the
script at checkouts you have (measured with NVlabs/stylegan2-ada-pytorch d72cc7d and
XingangPan/DragGAN 336f120; ``git clone`` them, or ``git worktree``/``archive`` a copy):

    python bench/upstream.py --stylegan2-ada DIR --draggan DIR [--quick] [--threads 2]
        [--repeats 5] [--sections generator drag memory] [--before DRAGPIPE_DIR]
        [--autotune-cache FILE]

``--before DRAGPIPE_DIR``: a checkout of an earlier dragpipe (e.g. ``git worktree add
/tmp/dragpipe-before <commit>``) timed in the same rounds (columns "... before").
``--quick``: 256 px only, 2 repeats, short drags, memory at 256 px (a smoke run).

Every network gets the same seeded random weights (state-dict names are NVIDIA's; 256 px:
channel_base 16384, 512 and 1024 px: 32768; conv_clamp 256, float32, batch 1). Upstream
modules are imported from the checkouts; their custom CUDA ops are never compiled (on a CPU
they run their reference code). Modules that upstream imports at load time but the measured
code never calls (``click``, ``requests``, ``matplotlib``) get empty stand-ins when they are
not installed.

Sections (each line also prints the foreign load: cores other processes kept busy):
- generator (512 and 256 px): synthesis forward (no grad), forward + backward to ws (weights
  frozen), and the drag's work: blocks up to b128, backward to ws (NVIDIA: its blocks run up
  to b128, truncated). Columns: NVIDIA, dragpipe 'fast' (autotuned), 'ref' (NVIDIA's order
  of operations). Implementations alternate in every round; medians and ratios to NVIDIA.
- drag (512 px): one drag step, one handle dragged R/4 px (never converges). Upstream:
  ``Renderer._render_drag_impl`` (the GUI's step without its watermark and pinned-memory
  copy) on DragGAN's own generator with the same weights, which require gradients as in the
  GUI. dragpipe: ``drag()`` 'official' (median step) and 'fast' (mean step over 20 steps
  with the default render_every=10, and the median step between renders).
- memory (512 and 1024 px): resident memory after set-up and the peak added by 2 drag
  steps and by 2 PTI projection / tuning steps, each job in a fresh process. Upstream PTI: PTI's published loops (bench/pti.py) on
  NVIDIA's generator with the ``lpips`` package (random backbone: no download; the same
  networks); dragpipe: ``inversion.project`` / ``inversion.tune``.

Autotuning: dragpipe's 'fast' rows measure their layer candidates at first use into a fresh
temporary cache (the time it took is printed) unless ``--autotune-cache FILE`` is given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _checkouts as checkouts
import _measure as measure
import pti
import torch

from draggan import DragConfig, Generator, GeneratorConfig, drag
from draggan.autotune import Autotuner

CHANNEL_BASE = {256: 16384, 512: 32768, 1024: 32768}


# ----------------------------------------------------------------------------------------
# Networks: ours, NVIDIA's, DragGAN's, an earlier dragpipe's, all with the same weights


def build(resolution: int, tuner: Autotuner) -> tuple[Generator, torch.Tensor]:
    torch.manual_seed(0)
    config = GeneratorConfig(
        img_resolution=resolution, channel_base=CHANNEL_BASE[resolution], conv_clamp=256
    )
    G = Generator(config, autotuner=tuner).eval().requires_grad_(False)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, config.z_dim))  # [1, num_ws, 512]
    return G, ws


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


def upstream_generator(code, module: str, G: Generator) -> torch.nn.Module:
    """``module``'s Generator from the checkout ``code`` with ``G``'s weights."""
    with code.active():
        net = code[module].Generator(**upstream_kwargs(G.config))
    net.load_state_dict(G.state_dict(), strict=True)
    return net


def nvidia_generator(ada, G: Generator) -> torch.nn.Module:
    """stylegan2-ada-pytorch's Generator, eval, frozen (as NVIDIA's tools use G_ema)."""
    return upstream_generator(ada, "training.networks", G).eval().requires_grad_(False)


def before_generator(before, G: Generator) -> torch.nn.Module:
    """The earlier dragpipe's Generator with ``G``'s weights (eval, frozen)."""
    old = before["draggan"]
    fields = {f: getattr(G.config, f) for f in G.config.__dataclass_fields__}
    net = old.Generator(old.GeneratorConfig(**fields))
    net.load_state_dict(G.state_dict(), strict=True)
    return net.eval().requires_grad_(False)


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


def table_row(label: str, med: dict[str, float], base: str, load) -> str:
    cells = "".join(
        f"{med[n]:>8.2f}" + (f" {med[n] / med[base]:4.2f}x" if n != base else " " * 6) for n in med
    )
    return f"  {label:<38}{cells}   ({load})"


# ----------------------------------------------------------------------------------------
# Generator section


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


def generator_section(args, code, resolution: int, tuner: Autotuner) -> None:
    G, ws0 = build(resolution, tuner)
    nv = nvidia_generator(code["ada"], G)
    proj = torch.randn(1, 3, resolution, resolution, generator=torch.Generator().manual_seed(1))
    feat_res = min(128, resolution)
    impls = {
        "NVIDIA": (
            lambda ws: nv.synthesis(ws, noise_mode="const", force_fp32=True),
            lambda ws: nvidia_features(nv, ws, feat_res),
        ),
        "fast": (
            lambda ws: G.synthesis(ws),
            lambda ws: G.synthesis.features_at(ws, feat_res),
        ),
    }
    if code.get("before") is not None:
        old = before_generator(code["before"], G)
        impls["fast before"] = (
            lambda ws: old.synthesis(ws),
            lambda ws: old.synthesis.features_at(ws, feat_res),
        )
    impls["ref"] = (
        lambda ws: G.synthesis(ws, impl="ref"),
        lambda ws: G.synthesis.features_at(ws, feat_res, impl="ref"),
    )
    start = time.perf_counter()
    for work in generator_workloads(*impls["fast"], ws0, proj, feat_res).values():
        work()
    tuning = time.perf_counter() - start
    with torch.no_grad():
        image = {name: fns[0](ws0) for name, fns in impls.items()}
    diffs = ", ".join(
        f"{n} {float((image[n] - image['NVIDIA']).abs().max()):.1e}" for n in impls if n != "NVIDIA"
    )
    print(
        f"\n{resolution} px generator (channel_base {G.config.channel_base}); max |image - "
        f"NVIDIA's|: {diffs}; first 'fast' calls incl. autotuning {tuning:.1f} s"
    )
    loads = {name: generator_workloads(*fns, ws0, proj, feat_res) for name, fns in impls.items()}
    print(f"  {'seconds, median of ' + str(args.repeats):<38}" + "".join(f"{n:>14}" for n in impls))
    for work in loads["NVIDIA"]:
        with measure.ForeignLoad() as load:
            times = measure.interleaved({n: loads[n][work] for n in impls}, args.repeats)
        med = {n: measure.median(t) for n, t in times.items()}
        print(table_row(work, med, "NVIDIA", load), flush=True)


# ----------------------------------------------------------------------------------------
# Drag section


class RendererStep:
    """The official renderer driven headless: ``init_network`` on DragGAN's generator with
    our weights and ws, then ``_render_drag_impl(is_drag=True)`` per step (forward with
    features, point tracking, motion loss, backward, Adam step; its GUI defaults r1 3,
    r2 12, lambda_mask 20, lr 1e-3, feature block index 5)."""

    def __init__(self, draggan_code, G: Generator, ws: torch.Tensor, handle, target) -> None:
        self.code = draggan_code
        with draggan_code.active():
            renderer_module = draggan_code["viz.renderer"]
            self.net = upstream_generator(draggan_code, "training.networks_stylegan2", G)
            self.renderer = renderer_module.Renderer(disable_timing=True)
            self.easydict = draggan_code["dnnlib"].EasyDict
        self.renderer._device = torch.device("cpu")
        self.renderer.get_network = lambda pkl, key, **kwargs: self.net
        self.ws = ws
        self.handle, self.target = handle, target  # (x, y)

    def reset(self) -> None:
        self.res = self.easydict()
        self.renderer.init_network(
            self.res, pkl="dragpipe-bench", w0_seed=0, w_load=self.ws.clone(), w_plus=True,
            noise_mode="const", trunc_psi=1.0, trunc_cutoff=None, input_transform=None, lr=1e-3,
        )  # fmt: skip
        self.points = [[round(self.handle[1]), round(self.handle[0])]]  # [row, col], integers
        self.targets = [[round(self.target[1]), round(self.target[0])]]

    def step(self) -> None:
        self.renderer._render_drag_impl(
            self.res, points=self.points, targets=self.targets, mask=None, lambda_mask=20,
            reg=0, feature_idx=5, r1=3, r2=12, noise_mode="const", trunc_psi=1.0,
            is_drag=True, to_pil=False,
        )  # fmt: skip
        if "error" in self.res:
            raise RuntimeError(f"the official renderer failed: {self.res.error}")

    def step_times(self, steps: int) -> list[float]:
        """Seconds of steps 2 ... steps + 1 (the first also sets up its references)."""
        self.reset()
        self.step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - start)
        return times


def drag_step_times(
    drag_fn, config_cls, G, ws, handle, target, mode: str, steps: int, render_every: int
) -> list[float]:
    """Seconds between consecutive step callbacks of a ``steps + 1`` step drag (the step
    after the first ... the last; a render every ``render_every`` steps)."""
    stamps: list[float] = []
    config = config_cls(mode=mode, max_steps=steps + 1, render_every=render_every, stall_steps=None)
    drag_fn(
        G,
        ws,
        [handle],
        [target],
        config=config,
        callback=lambda *a: stamps.append(time.perf_counter()),
    )
    return [b - a for a, b in zip(stamps[:steps], stamps[1 : steps + 1], strict=True)]


def drag_points(resolution: int) -> tuple[list[float], list[float]]:
    c = resolution // 2
    return [float(c), float(c)], [float(c + resolution // 4), float(c)]


def drag_section(args, code, resolution: int, tuner: Autotuner) -> None:
    G, ws = build(resolution, tuner)
    handle, target = drag_points(resolution)
    renderer = RendererStep(code["draggan"], G, ws, handle, target)
    steps = 10 if args.quick else 20
    variants = {
        "renderer": lambda: renderer.step_times(2 if args.quick else 3),
        "fast": lambda: drag_step_times(drag, DragConfig, G, ws, handle, target, "fast", steps, 10),
        "official": lambda: drag_step_times(
            drag, DragConfig, G, ws, handle, target, "official", 2 if args.quick else 4, 0
        ),
    }
    if code.get("before") is not None:
        old_draggan = code["before"]["draggan"]
        old = before_generator(code["before"], G)
        variants["fast before"] = lambda: drag_step_times(
            old_draggan.drag, old_draggan.DragConfig, old, ws, handle, target, "fast", steps, 10
        )
        variants["official before"] = lambda: drag_step_times(
            old_draggan.drag, old_draggan.DragConfig, old, ws, handle, target, "official",
            2 if args.quick else 4, 0,
        )  # fmt: skip
    start = time.perf_counter()
    drag_step_times(drag, DragConfig, G, ws, handle, target, "fast", 1, 1)  # autotunes
    print(
        f"\n{resolution} px drag step (handle {handle} -> {target}); first 'fast' steps incl. "
        f"autotuning {time.perf_counter() - start:.1f} s"
    )
    rounds = 1 if args.quick else 2
    times: dict[str, list[list[float]]] = {name: [] for name in variants}
    with measure.ForeignLoad() as load:
        for _ in range(rounds):
            for name, run in variants.items():
                times[name].append(run())
    flat = {name: [t for run in runs for t in run] for name, runs in times.items()}
    renderer_step = measure.median(flat["renderer"])
    rows = {"official renderer step (upstream)": renderer_step}
    for mode in ("official", "official before"):
        if mode in flat:
            rows[f"{mode} mode step"] = measure.median(flat[mode])
    for mode in ("fast", "fast before"):
        if mode in flat:
            runs = times[mode]
            rows[f"{mode} mode step, render_every=10"] = sum(map(sum, runs)) / sum(map(len, runs))
            between = [t for run in runs for i, t in enumerate(run, 1) if i % 10 != 0]
            rows[f"{mode} mode step between renders"] = measure.median(between)
    for label, value in rows.items():
        ratio = "" if label.startswith("official renderer") else f"  {value / renderer_step:4.2f}x"
        print(f"  {label:<46}{value:8.2f} s{ratio}")
    print(f"  ({load}; ratios to the official renderer's step)", flush=True)


# ----------------------------------------------------------------------------------------
# Memory section


MEMORY_JOBS = {
    "renderer": "drag step: official renderer (upstream)",
    "official": "drag step: dragpipe official",
    "fast": "drag step: dragpipe fast",
    "project-published": "PTI projection step: published loop, NVIDIA's G",
    "project": "PTI projection step: dragpipe",
    "tune-published": "PTI tuning step: published loop, NVIDIA's G",
    "tune": "PTI tuning step: dragpipe",
}


def memory_job(args, code, job: str, resolution: int, tuner: Autotuner) -> Callable[[], object]:
    """Set up one memory job (networks, LPIPS) and return its work: 2 steps. (Our G is
    built in every job: it holds the weights the others copy.)"""
    G, ws = build(resolution, tuner)
    handle, target = drag_points(resolution)
    if job == "renderer":
        renderer = RendererStep(code["draggan"], G, ws, handle, target)
        renderer.reset()
        return lambda: (renderer.step(), renderer.step())
    if job in ("official", "fast"):
        return lambda: drag_step_times(drag, DragConfig, G, ws, handle, target, job, 1, 10)
    target_image = pti.build(resolution)[2]
    if job == "project":
        return lambda: pti.project_after(G, target_image, 1)
    if job == "tune":
        return lambda: pti.tune_after(G, ws, target_image, 1)
    nv = nvidia_generator(code["ada"], G)
    if job == "project-published":
        vgg = pti.plain_lpips("vgg")
        return lambda: pti.project_before(nv, target_image, 1, vgg)
    alex = pti.plain_lpips("alex")
    return lambda: pti.tune_before(nv, ws, target_image, 1, alex)


def memory_section(args, resolution: int, tuner: Autotuner, cache: Path) -> None:
    """Each job in a fresh process (``--memory-job``): resident memory after its set-up,
    then the peak during 2 steps. dragpipe's layer choices are tuned here first and read
    from the cache there (tuning would add its own allocations)."""
    G, ws = build(resolution, tuner)
    handle, target = drag_points(resolution)
    for mode in ("official", "fast"):
        drag_step_times(drag, DragConfig, G, ws, handle, target, mode, 1, 10)
    target_image = pti.build(resolution)[2]
    pti.project_after(G, target_image, 1)
    pti.tune_after(G, ws, target_image, 1)
    del G
    print(
        f"\n{resolution} px peak resident memory, MB: set-up (weights, LPIPS) and added by 2 steps"
    )
    for job, label in MEMORY_JOBS.items():
        command = [sys.executable, __file__, "--stylegan2-ada", str(args.stylegan2_ada)]
        command += ["--draggan", str(args.draggan), "--threads", str(args.threads)]
        command += ["--autotune-cache", str(cache), "--memory-job", job, str(resolution)]
        with measure.ForeignLoad() as load:
            done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            print(f"  {label:<52} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        peak = json.loads(lines[-1])
        print(
            f"  {label:<52}{peak['setup']:7.0f} +{peak['peak'] - peak['setup']:6.0f}   ({load})",
            flush=True,
        )


def run_memory_job(args, code, job: str, resolution: int, tuner: Autotuner) -> None:
    work = memory_job(args, code, job, resolution, tuner)
    peak, setup = measure.peak_rss_mb(work)
    print(json.dumps({"setup": setup, "peak": peak}))


# ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stylegan2-ada", type=Path, required=True, help="its checkout")
    parser.add_argument("--draggan", type=Path, required=True, help="its checkout")
    parser.add_argument("--before", type=Path, default=None, help="an earlier dragpipe checkout")
    parser.add_argument("--quick", action="store_true", help="256 px, 2 repeats, short drags")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["generator", "drag", "memory"],
        choices=["generator", "drag", "memory"],
    )
    parser.add_argument("--memory-job", nargs=2, help=argparse.SUPPRESS)  # JOB RESOLUTION
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
    Checkout = checkouts.Checkout
    code = {
        "ada": Checkout(
            args.stylegan2_ada,
            checkouts.UPSTREAM,
            ["training.networks"],
            stand_ins=checkouts.STAND_INS,
        ),
        "draggan": Checkout(
            args.draggan,
            checkouts.UPSTREAM,
            ["dnnlib", "training.networks_stylegan2", "viz.renderer"],
            stand_ins=checkouts.STAND_INS,
        ),
        "before": Checkout(args.before, checkouts.DRAGPIPE, ["draggan", "inversion"])
        if args.before
        else None,
    }
    cache = args.autotune_cache or Path(tempfile.mkdtemp()) / "autotune.json"
    tuner = Autotuner(cache)
    if args.memory_job:
        run_memory_job(args, code, args.memory_job[0], int(args.memory_job[1]), tuner)
        return
    print(f"machine: {measure.machine_line()}")
    print(f"upstream: stylegan2-ada-pytorch at {args.stylegan2_ada}, DragGAN at {args.draggan}")
    if code["draggan"].stand_ins:
        print(
            f"stand-ins for modules upstream imports but never calls here: {code['draggan'].stand_ins}"
        )
    if args.before:
        print(f"before: dragpipe at {args.before}")
    sizes = [256] if args.quick else [512, 256]
    if "generator" in args.sections:
        for resolution in sizes:
            generator_section(args, code, resolution, tuner)
    if "drag" in args.sections:
        drag_section(args, code, 256 if args.quick else 512, tuner)
    if "memory" in args.sections:
        for resolution in [256] if args.quick else [512, 1024]:
            memory_section(args, resolution, tuner, cache)
    print(f"\nautotune cache: {cache} ({len(tuner.entries)} choices)")


if __name__ == "__main__":
    main()
