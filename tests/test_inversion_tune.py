"""Pivotal tuning: fits a real photo far better than the projection, resumes exactly, never
touches the generator passed in."""

import pytest
import torch
from inversion_helpers import StopAt, photo_target, render, states_equal, stop_at

import inversion
from inversion import ProjectConfig, TuneConfig, TuneState
from inversion.errors import ResumeMismatch

RANDOM = dict(perceptual_backbone="random")


def test_tuning_fits_a_real_photo_far_better_than_projection(tiny_generator):
    G = tiny_generator(32)
    target = photo_target(32)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    flags = [p.requires_grad for p in G.parameters()]
    config = ProjectConfig(num_steps=30, initial_learning_rate=0.1, w_avg_samples=100, **RANDOM)
    # lr 1e-3 instead of PTI's 3e-4: this generator has 8 channels at 32x32.
    tune_config = TuneConfig(max_steps=60, learning_rate=1e-3, lpips_threshold=0, **RANDOM)
    phases = []
    result = inversion.invert(G, target, config, tune_config, callback=phases.append)

    assert [p.phase for p in phases] == ["project"] * 30 + ["tune"] * 60
    projected, tuned = result.projection_metrics, result.tuning_metrics
    assert tuned.mse < 0.35 * projected.mse
    assert tuned.lpips < 0.5 * projected.lpips
    assert tuned.psnr > projected.psnr + 4
    assert (tuned.lpips_net, tuned.perceptual_backbone) == ("alex", "random")
    assert tuned.identity_distance is None and "no face" in tuned.identity_note
    # The input generator is untouched: values and requires_grad flags.
    after = G.state_dict()
    assert states_equal(before, dict(after))
    assert flags == [p.requires_grad for p in G.parameters()]
    assert result.generator is not G
    assert not any(p.requires_grad for p in result.generator.parameters())
    # The tuned generator changed, its noise buffers did not (noise_mode 'const').
    tuned_state = result.generator.state_dict()
    assert not torch.equal(
        tuned_state["synthesis.b32.conv1.weight"], before["synthesis.b32.conv1.weight"]
    )
    noise = [k for k in before if k.endswith("noise_const")]
    assert noise and all(torch.equal(tuned_state[k], before[k]) for k in noise)


@pytest.mark.parametrize("locality", [False, True])
def test_tuning_resumed_equals_uninterrupted(locality, tiny_generator):
    G = tiny_generator(32)
    ws, _ = render(G, z_seed=3)
    _, target = render(G, z_seed=4)
    config = TuneConfig(max_steps=6, lpips_threshold=0, locality_regularization=locality, **RANDOM)
    losses = []
    full = inversion.tune(G, ws, target, config, callback=lambda p: losses.append(p.losses))
    assert ("locality" in losses[0]) == locality

    saved = {}
    with pytest.raises(StopAt):
        inversion.tune(G, ws, target, config, callback=stop_at(2, saved))
    state = TuneState.from_tensors(saved["tensors"], saved["meta"])
    assert state.step == 2
    resumed = inversion.tune(G, ws, target, config, resume=state)
    assert states_equal(full.state_dict(), resumed.state_dict())
    with pytest.raises(ResumeMismatch, match="pivot"):
        inversion.tune(G, ws + 1, target, config, resume=state)


def test_tuning_stops_early_at_the_lpips_threshold(tiny_generator):
    G = tiny_generator(32)
    ws, target = render(G, z_seed=3)  # G renders the target exactly: LPIPS 0
    steps = []
    tuned = inversion.tune(G, ws, target, TuneConfig(**RANDOM), callback=steps.append)
    assert steps == []  # stopped before the first step
    assert states_equal(G.state_dict(), tuned.state_dict())


def test_inversion_loops_synthesise_in_float32_like_pti(tiny_generator):
    """PTI (danielroich/PTI da94d59) calls ``G.synthesis(..., force_fp32=True)`` in its
    projector, coach and locality regulariser: a checkpoint's fp16 blocks run in float32.
    Every synthesis call of projection and tuning (with the regulariser) must ask for it."""
    G = tiny_generator(32, num_fp16_res=2)
    fp16_blocks = [block for block in G.synthesis.blocks() if block.use_fp16]
    cuda = torch.device("cuda")  # what the flag decides there (CPU is float32 anyway)
    assert [b.resolution for b in fp16_blocks] == [16, 32]
    assert all(b.block_dtype(cuda, False) == torch.float16 for b in fp16_blocks)
    assert all(b.block_dtype(cuda, True) == torch.float32 for b in fp16_blocks)
    calls = []

    def record(module, args, kwargs):
        calls.append(kwargs.get("force_fp32", False))

    ws, target = render(G, z_seed=3)
    # The hook is copied with G into the loops' private copies; it records into ``calls``.
    G.synthesis.register_forward_pre_hook(record, with_kwargs=True)
    inversion.project(
        G, target, ProjectConfig(num_steps=2, w_avg_samples=10, lpips_net="alex", **RANDOM)
    )
    config = TuneConfig(max_steps=2, lpips_threshold=0, locality_regularization=True, **RANDOM)
    inversion.tune(G, ws, -target, config)
    # 2 projection steps + 2 tuning steps x (the pivot, the regulariser's old and new image)
    assert calls == [True] * 8


def test_fused_adam_matches_the_default_update_to_rounding():
    """make_adam's fused kernel and torch's default (foreach) Adam run the same update rule
    but are different kernels: they may round the update differently (measured on AMD EPYC:
    5 of 7000 elements differ after 4 steps, by at most 1 ulp of the parameter per step).
    Bound: per element, |fused - default| <= steps x ulp of the parameter's magnitude."""
    from inversion.state import make_adam

    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(n, generator=generator) for n in (5, 300, 7000)]
    grads = [[torch.randn(p.shape, generator=generator) for p in start] for _ in range(4)]
    results = []
    for build in (lambda ps: torch.optim.Adam(ps, lr=3e-4), lambda ps: make_adam(ps, lr=3e-4)):
        params = [p.clone().requires_grad_(True) for p in start]
        optimizer = build(params)
        for step_grads in grads:
            for param, grad in zip(params, step_grads, strict=True):
                param.grad = grad.clone()
            optimizer.step()
        results.append([p.detach() for p in params])
    assert make_adam([torch.zeros(1, requires_grad=True)], lr=1).defaults["fused"]
    eps = torch.finfo(torch.float32).eps
    for default, fused, begin in zip(*results, start, strict=True):
        magnitude = torch.maximum(begin.abs(), default.abs())
        assert bool(((fused - default).abs() <= len(grads) * eps * magnitude).all())
        # and both moved the parameters by Adam's step (about lr per step)
        moved = (default - begin).abs()
        assert float(moved.max()) > 3e-4 and float(moved.max()) < 4 * 3e-4 * 1.01
