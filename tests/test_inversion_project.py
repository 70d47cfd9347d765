"""W projection: recovers a known latent, resumes exactly, validates its inputs."""

import pytest
import torch
from inversion_helpers import StopAt, render, stop_at

import inversion
from inversion import ProjectConfig, ProjectState
from inversion.errors import ConfigError, InversionError, ResumeMismatch
from inversion.projection import w_statistics
from inversion.regularizers import noise_regularization, renormalize_noise
from inversion.schedule import latent_noise_scale, learning_rate

FAST = dict(perceptual_backbone="random", w_avg_samples=100)


def test_projection_recovers_a_rendered_latent(tiny_generator):
    G = tiny_generator(16)
    w_true, target = render(G, z_seed=5)
    losses = []
    config = ProjectConfig(num_steps=100, initial_learning_rate=0.1, **FAST)
    ws = inversion.project(G, target, config, callback=lambda p: losses.append(p.losses["lpips"]))

    assert ws.shape == (1, G.num_ws, G.w_dim)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))  # W mode: one w broadcast
    assert len(losses) == 100
    assert losses[-1] < losses[0] / 10
    w_avg, _ = w_statistics(G, 100, 123)
    start_distance = float((w_true[0, 0] - w_avg[0, 0]).norm())
    assert float((ws[0, 0] - w_true[0, 0]).norm()) < 0.4 * start_distance


@pytest.mark.parametrize("w_plus", [False, True])
def test_projection_resumed_equals_uninterrupted(w_plus, tiny_generator):
    G = tiny_generator(16)
    _, target = render(G, z_seed=1)
    config = ProjectConfig(num_steps=8, initial_learning_rate=0.1, w_plus=w_plus, **FAST)
    full = inversion.project(G, target, config)

    saved = {}
    with pytest.raises(StopAt):
        inversion.project(G, target, config, callback=stop_at(3, saved))
    state = ProjectState.from_tensors(saved["tensors"], saved["meta"])
    assert state.step == 3 and state.w_opt.shape[1] == (G.num_ws if w_plus else 1)
    steps = []
    resumed = inversion.project(G, target, config, lambda p: steps.append(p.step), state)
    assert steps == [4, 5, 6, 7, 8]
    assert torch.equal(resumed, full)
    assert not torch.equal(full[:, 0], full[:, -1]) if w_plus else True


def test_resume_refuses_a_state_of_another_run(tiny_generator):
    G = tiny_generator(16)
    _, target = render(G, z_seed=1)
    config = ProjectConfig(num_steps=4, **FAST)
    saved = {}
    with pytest.raises(StopAt):
        inversion.project(G, target, config, callback=stop_at(2, saved))
    state = ProjectState.from_tensors(saved["tensors"], saved["meta"])
    with pytest.raises(ResumeMismatch, match="config"):
        inversion.project(G, target, ProjectConfig(num_steps=5, **FAST), resume=state)
    with pytest.raises(ResumeMismatch, match="target"):
        inversion.project(G, -target, config, resume=state)
    with pytest.raises(InversionError, match="inversion.tune"):
        inversion.TuneState.from_tensors(saved["tensors"], saved["meta"])


def test_state_works_only_during_its_callback(tiny_generator):
    G = tiny_generator(16)
    _, target = render(G, z_seed=1)
    offered = []
    inversion.project(G, target, ProjectConfig(num_steps=2, **FAST), callback=offered.append)
    assert [p.phase for p in offered] == ["project", "project"]
    with pytest.raises(InversionError, match="only be called during the callback"):
        offered[0].state()


def test_projection_leaves_the_generator_unchanged(tiny_generator):
    G = tiny_generator(16)
    _, target = render(G, z_seed=2)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    inversion.project(G, target, ProjectConfig(num_steps=2, **FAST))
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not b.requires_grad for b in G.buffers())


@pytest.mark.parametrize(
    "target, message",
    [
        (torch.zeros(1, 3, 8, 8), r"target must have shape \[1, 3, 16, 16\]"),
        (torch.full((1, 3, 16, 16), 200.0), r"target values must lie in \[-1, 1\]"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), "target must be a float tensor"),
    ],
)
def test_bad_target_is_a_one_line_error(target, message, tiny_generator):
    G = tiny_generator(16)
    with pytest.raises(InversionError, match=message) as error:
        inversion.project(G, target, ProjectConfig(num_steps=1, **FAST))
    assert "\n" not in str(error.value)


def test_presets_and_config_checks():
    assert ProjectConfig.preset("pti") == ProjectConfig()
    assert ProjectConfig.preset("pti_wplus").w_plus is True
    nvidia = ProjectConfig.preset("nvidia")
    assert (nvidia.num_steps, nvidia.initial_learning_rate) == (1000, 0.1)
    assert ProjectConfig.preset("pti", num_steps=7).num_steps == 7
    assert set(inversion.PROJECT_PRESETS) == {"pti", "pti_wplus", "nvidia"}
    assert ProjectConfig.from_dict(nvidia.to_dict()) == nvidia
    with pytest.raises(ConfigError, match="unknown projection preset 'fast'"):
        ProjectConfig.preset("fast")
    with pytest.raises(ConfigError, match="ProjectConfig.lpips_net must be one of"):
        ProjectConfig(lpips_net="squeeze")
    with pytest.raises(ConfigError, match="unknown ProjectConfig keys: steps"):
        ProjectConfig.from_dict({"steps": 3})


def test_schedules_match_the_released_projector():
    config = ProjectConfig()  # 450 steps: ramp-up over 22.5 steps, ramp-down over 112.5
    assert learning_rate(config, 0) == 0.0
    assert learning_rate(config, 11) == pytest.approx(0.01 * 11 / 22.5)
    assert learning_rate(config, 200) == pytest.approx(0.01)
    t = 400 / 450
    assert learning_rate(config, 400) == pytest.approx(
        0.01 * (0.5 - 0.5 * torch.cos(torch.tensor((1 - t) / 0.25 * torch.pi)).item())
    )
    assert latent_noise_scale(config, 0, 2.0) == pytest.approx(2.0 * 0.05)
    assert latent_noise_scale(config, 225, 2.0) == pytest.approx(2.0 * 0.05 * (1 - 0.5 / 0.75) ** 2)
    assert latent_noise_scale(config, 340, 2.0) == 0.0


def test_noise_regularization_and_renormalisation():
    ones = torch.ones(16, 16)
    # Levels 16 and 8; at each, mean(n * roll(n)) = 1 along x and along y.
    assert float(noise_regularization([ones])) == pytest.approx(4.0)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1  # +-1
    # Level 16: correlation -1 both ways (2); level 8 is all zeros after pooling.
    assert float(noise_regularization([checker])) == pytest.approx(2.0)
    noise = torch.randn(16, 16, generator=torch.Generator().manual_seed(0)) * 3 + 1
    renormalize_noise([noise])
    assert float(noise.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(noise.square().mean()) == pytest.approx(1.0, abs=1e-5)
