"""Missing LPIPS backbone weights: a one-line error naming the file, before any work."""

import pytest
import torch
from inversion_helpers import render

import inversion
from inversion import PerceptualWeightsMissing, ProjectConfig, TuneConfig
from inversion.perceptual import check_weights


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub")
    return tmp_path / "hub" / "checkpoints"


def test_projection_without_vgg_weights_fails_before_any_step(empty_torch_home, tiny_generator):
    G = tiny_generator(16)
    ws, target = render(G, z_seed=0)
    steps = []
    with pytest.raises(PerceptualWeightsMissing) as error:
        inversion.project(G, target, ProjectConfig(), callback=steps.append)
    message = str(error.value)
    assert "\n" not in message
    assert "vgg16-397923af.pth" in message and str(empty_torch_home) in message
    assert steps == []
    assert not empty_torch_home.exists()  # nothing was downloaded or created


def test_tuning_and_invert_without_alexnet_weights(empty_torch_home, tiny_generator):
    G = tiny_generator(16)
    ws, target = render(G, z_seed=0)
    with pytest.raises(PerceptualWeightsMissing, match="alexnet-owt-7be5be79.pth"):
        inversion.tune(G, ws, target, TuneConfig())
    steps = []  # the projection could run (random backbone), but must not start
    with pytest.raises(PerceptualWeightsMissing, match="alexnet-owt-7be5be79.pth"):
        inversion.invert(
            G, target, ProjectConfig(perceptual_backbone="random"), TuneConfig(), steps.append
        )
    assert steps == []
    with pytest.raises(PerceptualWeightsMissing, match="alexnet"):
        inversion.evaluate(G, ws, target)


def test_weights_in_place_pass_the_check(empty_torch_home):
    empty_torch_home.mkdir(parents=True)
    (empty_torch_home / "vgg16-397923af.pth").write_bytes(b"")
    check_weights("vgg", "pretrained")
    check_weights("alex", "random")  # the random backbone needs no file
    with pytest.raises(PerceptualWeightsMissing):
        check_weights("alex", "pretrained")
