"""dragpipe's own format: safetensors + JSON, bit-exact, atomic, strictly checked."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import draggan
from draggan import CheckpointError, load_generator
from draggan.native_format import load_native, save_generator


def test_round_trip_is_bit_exact_from_either_file(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=21, architecture="resnet", conv_clamp=None)
    weights, descriptor = save_generator(G, tmp_path / "gen.safetensors")
    assert (weights.name, descriptor.name) == ("gen.safetensors", "gen.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.json", "gen.safetensors"]
    description = json.loads(descriptor.read_text())
    assert description["dragpipe_version"] == draggan.__version__
    assert description["config"]["architecture"] == "resnet"
    for path in (weights, descriptor):
        H = load_generator(path)
        assert H.config == G.config
        for name, tensor in G.state_dict().items():
            other = H.state_dict()[name]
            assert other.dtype == tensor.dtype and torch.equal(other, tensor), name
    torch.manual_seed(0)
    z = torch.randn(2, G.z_dim)
    assert torch.equal(G(z), load_native(weights)(z))


def test_save_generator_with_a_suffixless_path(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=22)
    draggan.save_generator(G, tmp_path / "model")
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "model.json").is_file()
    H = load_native(tmp_path / "model.safetensors")
    assert torch.equal(H.mapping.w_avg, G.mapping.w_avg)
    with pytest.raises(CheckpointError, match=r"\.safetensors"):
        draggan.save_generator(G, tmp_path / "model.pt")


def test_weights_alone_load_without_the_json(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=23)
    weights, descriptor = save_generator(G, tmp_path / "g.safetensors")
    descriptor.unlink()
    assert load_generator(weights).config == G.config


def test_changed_weights_are_caught_by_the_json_digest(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=24)
    weights, descriptor = save_generator(G, tmp_path / "g.safetensors")
    save_generator(checkpoint_generator(seed=25), tmp_path / "other.safetensors")
    weights.write_bytes((tmp_path / "other.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_generator(descriptor)


def _rewrite(weights, state, metadata_change=None):
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        metadata = f.metadata()
    if metadata_change:
        metadata_change(metadata)
    save_file(state, str(weights), metadata=metadata)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.pop("synthesis.b8.conv0.noise_const"),
            "missing: synthesis.b8.conv0.noise_const",
        ),
        (lambda s: s.update(extra=torch.zeros(2)), "unexpected tensor.*extra"),
        (
            lambda s: s.update({"mapping.fc1.weight": torch.zeros(8, 7)}),
            r"mapping.fc1.weight has shape \[8, 7\].*needs \[8, 8\]",
        ),
    ],
)
def test_missing_extra_and_misshaped_tensors(tmp_path, edit, message, checkpoint_generator):
    G = checkpoint_generator(seed=26)
    weights, _ = save_generator(G, tmp_path / "g.safetensors")
    state = {k: v.clone() for k, v in G.state_dict().items()}
    edit(state)
    _rewrite(weights, state)
    with pytest.raises(CheckpointError, match=message) as info:
        load_generator(weights)
    assert "\n" not in str(info.value) and str(weights) in str(info.value)


def test_unknown_config_key_and_truncation(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=27)
    weights, _ = save_generator(G, tmp_path / "g.safetensors")

    def add_key(metadata):
        config = json.loads(metadata["config"])
        config["fancy_mode"] = True
        metadata["config"] = json.dumps(config)

    _rewrite(weights, dict(G.state_dict()), add_key)
    with pytest.raises(CheckpointError, match="unknown generator config keys: fancy_mode"):
        load_generator(weights)
    save_generator(G, weights)
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        load_generator(weights)


def test_bad_device_is_a_one_line_error(tmp_path, checkpoint_generator):
    weights, _ = save_generator(checkpoint_generator(seed=28), tmp_path / "g.safetensors")
    with pytest.raises(draggan.DragganError, match="'gpu' is not a torch device"):
        load_generator(weights, device="gpu")
