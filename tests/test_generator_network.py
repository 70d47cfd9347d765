"""draggan.Generator: shapes, NVIDIA state-dict names, features, truncation, noise, gradients."""

import copy

import pytest
import torch

from draggan import DragganError, Generator


@pytest.fixture
def make(tiny_generator):
    """``make(seed=0, **overrides)``: the 32 px tiny generator (32 channels at most, 8
    mapping layers) with non-trivial noise strengths, biases and w_avg."""

    def build(seed: int = 0, **overrides) -> Generator:
        G = tiny_generator(32, seed, channel_max=32, mapping_layers=8, **overrides)
        with torch.no_grad():
            for name, p in G.named_parameters():
                if name.endswith("noise_strength"):
                    p.fill_(0.3)
                elif name.endswith("bias") and "affine" not in name:
                    p.normal_(0, 0.1)
            G.mapping.w_avg.normal_()
        return G

    return build


def ws_for(G: Generator, n: int = 1, seed: int = 1) -> torch.Tensor:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    return G.mapping(z).detach()


@pytest.mark.parametrize("arch", ["skip", "resnet", "orig"])
def test_shapes_and_num_ws(arch, make):
    G = make(architecture=arch)
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution, G.img_channels) == (32, 0, 32, 32, 3)
    assert G.num_ws == 8 and G.mapping.num_ws == 8 and G.synthesis.num_ws == 8
    ws = ws_for(G, n=2)
    assert ws.shape == (2, 8, 32)
    img, feats = G.synthesis(ws, return_features=True)
    assert img.shape == (2, 3, 32, 32) and img.dtype == torch.float32
    assert [tuple(f.shape) for f in feats] == [
        (2, 32, 4, 4),
        (2, 32, 8, 8),
        (2, 32, 16, 16),
        (2, 16, 32, 32),
    ]
    assert G(torch.randn(2, 32)).shape == (2, 3, 32, 32)


def test_state_dict_names_and_shapes_are_nvidias(make):
    sd = make(architecture="resnet", c_dim=3).state_dict()
    pinned = {
        "mapping.fc0.weight": (32, 64),  # z_dim + embed_features
        "mapping.fc7.bias": (32,),
        "mapping.w_avg": (32,),
        "mapping.embed.weight": (32, 3),
        "synthesis.b4.const": (32, 4, 4),
        "synthesis.b4.resample_filter": (4, 4),
        "synthesis.b4.conv1.weight": (32, 32, 3, 3),
        "synthesis.b4.conv1.affine.weight": (32, 32),
        "synthesis.b4.conv1.affine.bias": (32,),
        "synthesis.b4.conv1.noise_strength": (),
        "synthesis.b4.conv1.noise_const": (4, 4),
        "synthesis.b4.conv1.resample_filter": (4, 4),
        "synthesis.b8.conv0.weight": (32, 32, 3, 3),
        "synthesis.b32.conv0.weight": (16, 32, 3, 3),
        "synthesis.b32.skip.weight": (16, 32, 1, 1),
        "synthesis.b32.skip.resample_filter": (4, 4),
        "synthesis.b32.torgb.weight": (3, 16, 1, 1),
        "synthesis.b32.torgb.affine.weight": (16, 32),
    }
    for name, shape in pinned.items():
        assert tuple(sd[name].shape) == shape, name
    assert "synthesis.b16.torgb.weight" not in sd  # resnet: ToRGB only in the last block
    assert "synthesis.b32.skip.bias" not in sd
    assert len(sd) == 83
    skip_sd = make().state_dict()
    assert "synthesis.b16.torgb.weight" in skip_sd and "mapping.embed.weight" not in skip_sd
    G2 = make(seed=1, architecture="resnet", c_dim=3)
    G2.load_state_dict(sd, strict=True)


def test_fused_and_unfused_modulation_agree(make):
    G = make(architecture="resnet")
    ws = ws_for(G, n=2)
    a = G.synthesis(ws, fused_modconv=True)
    b = G.synthesis(ws, fused_modconv=False)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    G.train()  # NVIDIA's rule ('ref'): unfused in training mode
    ref_b = G.synthesis(ws, impl="ref", fused_modconv=False)
    torch.testing.assert_close(G.synthesis(ws, impl="ref"), ref_b, rtol=0, atol=0)


def test_fast_path_matches_reference_order_of_operations(make):
    G = make(architecture="skip", conv_clamp=0.5)  # clamp active in several layers
    ws = ws_for(G, n=2)
    grads = {}
    for impl in ("fast", "ref"):
        w = ws.clone().requires_grad_()
        img, feats = G.synthesis(w, return_features=True, impl=impl)
        (img.square().sum() + sum(f.mean() for f in feats)).backward()
        grads[impl] = (img.detach(), [f.detach() for f in feats], w.grad)
    fast, ref = grads["fast"], grads["ref"]
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-4)
    for a, b in zip(fast[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
        assert a.is_contiguous()  # channels_last stays internal
    assert (fast[2] - ref[2]).abs().max() <= 1e-3 * ref[2].abs().max()


def test_features_match_blocks_and_features_at_stops_early(make):
    G = make()
    ws = ws_for(G, n=2)
    img, feats = G.synthesis(ws, return_features=True)
    x, manual = None, []
    for block in G.synthesis.blocks():
        i = G.synthesis.w_index[block.resolution]
        x = block.features(x, ws[:, i : i + block.num_conv])
        manual.append(x)
    for a, b in zip(feats, manual, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(G.synthesis(ws), img, rtol=0, atol=0)

    called = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: called.append(name))
        for name, m in G.synthesis.named_modules()
        if name.count(".") == 1
    ]
    x16 = G.synthesis.features_at(ws, 16)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(x16, feats[2], rtol=0, atol=0)
    assert not any(n.startswith("b32") or n.endswith("torgb") for n in called), called
    assert "b16.conv1" in called
    with pytest.raises(DragganError, match="resolution must be one of"):
        G.synthesis.features_at(ws, 12)


def test_truncation(make):
    G = make()
    z = torch.randn(3, 32)
    ws = G.mapping(z, truncation_psi=0.0)
    torch.testing.assert_close(ws, G.mapping.w_avg.expand(3, 8, 32), rtol=0, atol=1e-6)
    full = G.mapping(z)
    half = G.mapping(z, truncation_psi=0.5, truncation_cutoff=3)
    torch.testing.assert_close(half[:, 3:], full[:, 3:], rtol=0, atol=0)
    torch.testing.assert_close(half[:, :3], (full[:, :3] + G.mapping.w_avg) / 2)


def test_conditional_mapping(make):
    G = make(c_dim=4)
    z = torch.randn(2, 32)
    c = torch.eye(4)[:2]
    ws = G.mapping(z, c)
    assert ws.shape == (2, 8, 32)
    assert not torch.allclose(ws, G.mapping(z, torch.eye(4)[2:]))
    with pytest.raises(DragganError, match="conditional"):
        G.mapping(z)
    with pytest.raises(DragganError, match=r"expected c \[N, 4\]"):
        G.mapping(z, torch.zeros(2, 3))


def test_noise_modes(make):
    G = make()
    ws = ws_for(G)
    const1 = G.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(G.synthesis(ws, noise_mode="const"), const1, rtol=0, atol=0)
    none = G.synthesis(ws, noise_mode="none")
    assert (none - const1).abs().max() > 1e-3
    r1 = G.synthesis(ws, noise_mode="random")
    r2 = G.synthesis(ws, noise_mode="random")
    assert (r1 - r2).abs().max() > 1e-3
    with pytest.raises(DragganError, match="noise_mode must be one of"):
        G.synthesis(ws, noise_mode="off")


def test_gradients_reach_ws_and_every_parameter(make):
    G = make(architecture="resnet", c_dim=2)
    z = torch.randn(2, 32)
    ws = G.mapping(z, torch.eye(2))
    ws.retain_grad()
    img = G.synthesis(ws)
    (img.square().mean() + G.synthesis.features_at(ws, 16).mean()).backward()
    assert ws.grad is not None and ws.grad.abs().sum(dim=2).min() > 0
    for name, p in G.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name

    G.zero_grad()
    w = ws.detach()[:1].clone().requires_grad_()
    (g,) = torch.autograd.grad(G.synthesis.features_at(w, 8).sum(), w)
    assert g[:, :4].abs().sum() > 0 and g[:, 4:].abs().sum() == 0  # b8 uses ws 0..3 only


def test_shape_errors_are_readable(make):
    G = make()
    with pytest.raises(DragganError, match=r"expected ws \[N, 8, 32\], got ws \[1, 32\]"):
        G.synthesis(torch.zeros(1, 32))
    with pytest.raises(ValueError, match=r"expected z \[N, 32\]"):
        G.mapping(torch.zeros(1, 31))


def test_deepcopy_and_fp16_request_on_cpu(make):
    G = make(num_fp16_res=2)
    ws = ws_for(G)
    G2 = copy.deepcopy(G)
    with torch.no_grad():
        G2.synthesis.b32.conv1.weight.add_(1.0)
    img = G.synthesis(ws)
    assert img.dtype == torch.float32  # fp16 blocks run in float32 off CUDA
    assert not torch.allclose(G2.synthesis(ws), img)
    G3 = make(num_fp16_res=0)
    G3.load_state_dict(G.state_dict())
    torch.testing.assert_close(G3.synthesis(ws), img, rtol=0, atol=0)


def test_pinned_outputs(make):
    G = make(seed=123)
    z = torch.randn(1, 32, generator=torch.Generator().manual_seed(7))
    ws = G.mapping(z, truncation_psi=0.7)
    img = G.synthesis(ws)
    got_ws = ws[0, 0, :4].tolist()
    got_img = [img[0, 0, 0, 0].item(), img[0, 1, 5, 7].item(), img[0, 2, 31, 31].item()]
    got_mean = img.mean().item()
    assert got_ws == pytest.approx(PINNED_WS, abs=1e-4)
    assert got_img == pytest.approx(PINNED_IMG, abs=1e-4)
    assert got_mean == pytest.approx(PINNED_MEAN, abs=1e-4)


# Recorded from this implementation after it matched NVIDIA's reference ops bit for bit.
PINNED_WS = [0.03367816, 0.11937661, -0.43763483, 0.16663207]
PINNED_IMG = [-0.44274354, 1.53679729, 0.32126379]
PINNED_MEAN = -0.32072601


@pytest.mark.parametrize("arch", ["skip", "orig", "resnet"])
def test_features_in_windows_equal_the_full_map(arch, make):
    """Windows (inside, at borders, the whole map) computed from the blocks' own windows:
    the full map's values and the same ws gradients, up to rounding."""
    G = make(architecture=arch, img_resolution=64, conv_clamp=None)
    ws = ws_for(G, n=2)
    boxes = [(3, 5, 9, 12), (0, 0, 4, 4), (28, 20, 32, 32), (0, 0, 32, 32)]
    w_full, w_part = ws.clone().requires_grad_(), ws.clone().requires_grad_()
    full = G.synthesis.features_at(w_full, 32)
    parts = G.synthesis.features_in(w_part, 32, boxes)
    weights = [
        torch.randn(p.shape, generator=torch.Generator().manual_seed(i))
        for i, p in enumerate(parts)
    ]
    crops = [full[:, :, top:bottom, left:right] for top, left, bottom, right in boxes]
    sum((c * q).sum() for c, q in zip(crops, weights, strict=True)).backward()
    sum((p * q).sum() for p, q in zip(parts, weights, strict=True)).backward()
    for crop, part in zip(crops, parts, strict=True):
        torch.testing.assert_close(part, crop.detach(), rtol=0, atol=1e-5)
    assert (w_part.grad - w_full.grad).abs().max() <= 1e-5 * w_full.grad.abs().max()
    with pytest.raises(DragganError, match="not a non-empty part"):
        G.synthesis.features_in(ws, 32, [(4, 4, 4, 9)])


def test_grad_until_differentiates_only_the_lower_blocks(make):
    G = make()
    ws = ws_for(G, n=2).requires_grad_()
    img, feats = G.synthesis(ws, return_features=True)
    img_cut, feats_cut = G.synthesis(ws, return_features=True, grad_until=16)
    torch.testing.assert_close(img_cut, img, rtol=0, atol=1e-5)
    for a, b in zip(feats_cut, feats, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert feats_cut[2].requires_grad and not feats_cut[3].requires_grad
    assert not img_cut.requires_grad


def test_grad_ws_makes_the_later_rows_constants(make):
    """ws = cat(optimised, fixed) requires grad as a whole; grad_ws=k keeps the layers of
    rows >= k out of the backward (their styles are constants), values and the optimised
    rows' gradients unchanged."""
    G = make()
    seen = {}
    for name in ("b8.conv1", "b16.conv1"):  # rows 2 and 4
        layer = G.synthesis.get_submodule(name)
        layer.register_forward_pre_hook(lambda m, args, name=name: seen.update({name: args[1]}))
    ws = ws_for(G, n=2)
    grads = []
    for k in (None, 3):
        head = ws[:, :3].clone().requires_grad_()
        feat = G.synthesis.features_at(torch.cat([head, ws[:, 3:]], 1), 16, grad_ws=k)
        feat.square().mean().backward()
        grads.append((feat.detach(), head.grad))
    assert seen["b8.conv1"].requires_grad and not seen["b16.conv1"].requires_grad
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-5, atol=1e-7)
