"""Official PyTorch StyleGAN2 pickles (written here, laid out like NVIDIA's) load exactly."""

from __future__ import annotations

import pytest
import torch
from checkpoint_writers import official_pickle_bytes

from draggan import CheckpointError, load_generator
from draggan.official_pickle import ADA, SG3


def _write(tmp_path, data: bytes, name: str = "network.pkl"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _same_state(G, H) -> None:
    assert H.config == G.config
    assert list(H.state_dict()) == list(G.state_dict())
    for name, tensor in G.state_dict().items():
        assert torch.equal(tensor, H.state_dict()[name]), name


def _same_outputs(G, H, c=None) -> None:
    torch.manual_seed(1)
    z = torch.randn(2, G.z_dim)
    ws_g, ws_h = G.mapping(z, c, truncation_psi=0.7), H.mapping(z, c, truncation_psi=0.7)
    assert torch.equal(ws_g, ws_h)
    img_g, feats_g = G.synthesis(ws_g, return_features=True)
    img_h, feats_h = H.synthesis(ws_h, return_features=True)
    assert torch.equal(img_g, img_h)
    assert all(torch.equal(a, b) for a, b in zip(feats_g, feats_h, strict=True))
    assert img_g.abs().max() > 0.01  # a real image, not zeros


@pytest.mark.parametrize("layout", ["ada", "sg3"])
@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("numpy_spelling", ["numpy1", "numpy2"])
def test_official_pickle_loads_exactly(
    tmp_path, layout, protocol, numpy_spelling, checkpoint_generator
):
    G = checkpoint_generator(seed=protocol)
    data = official_pickle_bytes(G, protocol, layout, numpy_spelling)
    module = b"numpy.core.multiarray" if numpy_spelling == "numpy1" else b"numpy._core.multiarray"
    assert module in data and b"torch_utils.persistence" in data and data[1] == protocol
    assert b"_load_from_bytes" in data  # storages pickled the way torch does
    H = load_generator(_write(tmp_path, data))
    assert H.config.source == (ADA if layout == "ada" else SG3)
    assert not any(p.requires_grad for p in H.parameters()) and not H.training
    _same_state(G, H)
    if protocol == 4 and numpy_spelling == "numpy2":  # identical weights: run one per layout
        _same_outputs(G, H)


def test_g_ema_only_file_and_architecture_from_contents(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=3, architecture="resnet")
    # The file name says 'skip': the loader must ignore it.
    path = _write(tmp_path, official_pickle_bytes(G, g_ema_only=True), "ffhq-skip-256.pkl")
    H = load_generator(path)
    assert H.config.architecture == "resnet"
    assert "synthesis.b8.skip.weight" in H.state_dict()
    _same_outputs(G, H)


def test_conditional_generator(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=4, c_dim=3)
    H = load_generator(_write(tmp_path, official_pickle_bytes(G, layout="sg3")))
    assert H.config.c_dim == 3
    _same_outputs(G, H, c=torch.eye(3)[:2])


@pytest.mark.parametrize(
    ("layout", "clamp", "fp16"),
    [("ada", None, 0), ("sg3", 256.0, 4)],
)
def test_code_base_defaults_when_kwargs_and_attributes_are_absent(
    tmp_path, layout, clamp, fp16, checkpoint_generator
):
    beta = 0.995 if layout == "ada" else 0.998
    G = checkpoint_generator(seed=5, conv_clamp=clamp, num_fp16_res=fp16, w_avg_beta=beta)
    data = official_pickle_bytes(G, layout=layout, explicit_kwargs=False, resolved_attrs=False)
    H = load_generator(_write(tmp_path, data))
    assert (H.config.conv_clamp, H.config.num_fp16_res) == (clamp, fp16)
    _same_state(G, H)


def test_resolved_attributes_beat_code_base_defaults(tmp_path, checkpoint_generator):
    # stylegan3-repo layout with conv_clamp absent from the kwargs (default 256), but the
    # layers record conv_clamp=None: the recorded value wins.
    G = checkpoint_generator(seed=6, conv_clamp=None)
    data = official_pickle_bytes(G, layout="sg3", explicit_kwargs=False)
    H = load_generator(_write(tmp_path, data))
    assert H.config.conv_clamp is None
    _same_state(G, H)


def test_channel_base_inferred_from_weights_when_kwargs_disagree(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=7)
    data = official_pickle_bytes(G, extra_synthesis_kwargs={"channel_base": 4096})
    H = load_generator(_write(tmp_path, data))
    assert [H.config.channels(r) for r in (4, 8, 16)] == [8, 8, 4]
    _same_state(G, H)


def test_stylegan3_generator_is_refused(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=8)
    data = official_pickle_bytes(G, module_src="class SynthesisInput(torch.nn.Module): pass\n")
    path = _write(tmp_path, data)
    with pytest.raises(CheckpointError, match="StyleGAN3 .alias-free."):
        load_generator(path)
