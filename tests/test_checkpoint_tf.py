"""TensorFlow StyleGAN2 (G, D, Gs) pickles, built here by inverting legacy.py's conversion."""

from __future__ import annotations

import pytest
import torch
from checkpoint_writers import tf_pickle_bytes

from draggan import CheckpointError, load_generator


@pytest.mark.parametrize(
    ("architecture", "protocol", "numpy_spelling"),
    [("skip", 3, "numpy1"), ("resnet", 4, "numpy2"), ("orig", 3, "numpy2")],
)
def test_tf_pickle_converts_to_the_same_generator(
    tmp_path, architecture, protocol, numpy_spelling, checkpoint_generator
):
    G = checkpoint_generator(seed=11, architecture=architecture)
    marker = tmp_path / "build_module_src_ran"
    src = f"open({str(marker)!r}, 'w').write('ran')\n"  # must never be executed
    data = tf_pickle_bytes(G, protocol, numpy_spelling, build_module_src=src)
    assert b"dnnlib.tflib.network" in data and data[1] == protocol
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(data)
    H = load_generator(path)
    assert not marker.exists()
    assert H.config == G.config and H.config.source == "stylegan2 (TensorFlow)"
    for name, tensor in G.state_dict().items():
        # mod_bias went through -1/+1 in float32: allow one rounding step.
        torch.testing.assert_close(H.state_dict()[name], tensor, rtol=0, atol=1e-7, msg=name)
    torch.manual_seed(0)
    z = torch.randn(2, G.z_dim)
    img_g, img_h = G(z), H(z)
    assert img_g.abs().max() > 0.01
    torch.testing.assert_close(img_h, img_g, rtol=0, atol=1e-5)


def test_tf_pickle_missing_variable_is_named(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=12)
    path = tmp_path / "g.pkl"
    path.write_bytes(tf_pickle_bytes(G, drop="8x8/Conv0_up/mod_weight"))
    with pytest.raises(CheckpointError, match=r"synthesis/8x8/Conv0_up/mod_weight.*missing"):
        load_generator(path)


def test_tf_pickle_unknown_setting_is_named(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=13)
    path = tmp_path / "g.pkl"
    path.write_bytes(tf_pickle_bytes(G, static_kwargs={"fmap_decay": 1.0}))
    with pytest.raises(CheckpointError, match="unknown TensorFlow generator setting.*fmap_decay"):
        load_generator(path)
