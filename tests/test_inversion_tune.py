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


def test_fused_adam_matches_the_default_update():
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
        results.append(params)
    assert results[1][0] is not None and make_adam(results[1], lr=1).defaults["fused"]
    # Two kernels (fused and per-tensor): the same update up to rounding, never bit-equality
    # (on AVX-512 machines the fused kernel rounds some elements differently, by 1 ulp).
    # Four steps move each value by about 1e-3; the kernels agree to within 1e-6 of that.
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.equal(results[0][2], start[2])
