"""draggan.ops: values against direct computations, path equivalences, float64 gradcheck."""

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from draggan.ops import (
    bias_act,
    conv2d_resample,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_setup_filter_is_normalised_outer_product():
    f = setup_filter([1, 3, 3, 1])
    expected = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    assert f.dtype == torch.float32 and f.shape == (4, 4)
    np.testing.assert_allclose(f.numpy(), expected, rtol=0, atol=1e-7)
    assert setup_filter(list(range(1, 9))).shape == (8,)  # >= 8 taps stays separable


def test_upfirdn2d_matches_scipy_upfirdn_pipeline():
    x = torch.randn(1, 2, 5, 6, generator=_gen(0), dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    got = upfirdn2d(x, f, up=2, down=1, padding=[2, 1, 2, 1])
    for c in range(2):
        up = np.zeros((10, 12))
        up[::2, ::2] = x[0, c].numpy()
        padded = np.pad(up, ((2, 1), (2, 1)))
        want = scipy.signal.convolve2d(padded, f.numpy(), mode="valid")
        np.testing.assert_allclose(got[0, c].numpy(), want, atol=1e-12)


def test_upfirdn2d_down_and_crop():
    x = torch.randn(2, 3, 8, 8, generator=_gen(1), dtype=torch.float64)
    got = upfirdn2d(x, None, down=2, padding=[-1, 0, 0, -1])
    np.testing.assert_allclose(got.numpy(), x[:, :, :-1:2, 1::2].numpy())


def test_upsample2d_keeps_constant_level_in_the_interior():
    x = torch.full([1, 1, 6, 6], 2.0)
    y = upsample2d(x, setup_filter([1, 3, 3, 1]))
    assert y.shape == (1, 1, 12, 12)
    torch.testing.assert_close(y[:, :, 2:-2, 2:-2], torch.full([1, 1, 8, 8], 2.0))


def test_bias_act_order_bias_lrelu_gain_clamp():
    x = torch.tensor([[-2.0, 1.0, 3.0], [0.5, -0.5, 10.0]])  # [N=2, C=3]
    b = torch.tensor([1.0, -2.0, 0.0])
    y = bias_act(x, b, act="lrelu", gain=2.0, clamp=5.0)
    want = torch.tensor([[-0.4, -0.4, 5.0], [3.0, -1.0, 5.0]])
    torch.testing.assert_close(y, want)
    y = bias_act(x, None, act="lrelu")  # default gain sqrt(2)
    torch.testing.assert_close(y[0, 1], torch.tensor(2**0.5))
    # A clamp that touches nothing is skipped: same values and same gradient.
    z = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    y = bias_act(z, None, act="lrelu", gain=1.0, clamp=2.0)
    y.sum().backward()
    torch.testing.assert_close(z.grad, torch.tensor([0.2, 1.0, 1.0]))
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(x, act="gelu")
    with pytest.raises(ValueError, match="expected bias"):
        bias_act(x, torch.zeros(2))


def test_conv2d_resample_upsampling_equals_upsample_then_conv():
    # The transposed-conv formulation must equal zero insertion, padding (once, before
    # everything), FIR filtering and a valid 3x3 convolution.
    x = torch.randn(2, 3, 5, 5, generator=_gen(2), dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, generator=_gen(3), dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1])
    got = conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False)
    want = F.conv2d(upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2], gain=4), w.flip([2, 3]))
    assert got.shape == (2, 4, 10, 10)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # Grouped and 1x1 variants take other branches.
    wg = torch.randn(6, 1, 3, 3, generator=_gen(4), dtype=torch.float64)
    xg = torch.randn(1, 6, 5, 5, generator=_gen(5), dtype=torch.float64)
    got = conv2d_resample(xg, wg, f=f, up=2, padding=1, groups=6, flip_weight=False)
    want = F.conv2d(upfirdn2d(xg, f, up=2, padding=[3, 2, 3, 2], gain=4), wg.flip([2, 3]), groups=6)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    w1 = torch.randn(4, 3, 1, 1, generator=_gen(6), dtype=torch.float64)
    torch.testing.assert_close(
        conv2d_resample(x, w1, f=f, up=2), F.conv2d(upsample2d(x, f), w1), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_fused_equals_unfused_and_per_sample(up, demodulate):
    g = _gen(7)
    x = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    styles = torch.randn(3, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(6 * up, 6 * up, generator=g, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1])
    kw = dict(up=up, padding=1, resample_filter=f, demodulate=demodulate, flip_weight=(up == 1))
    fused = modulated_conv2d(x, weight, styles, noise=noise, fused_modconv=True, **kw)
    unfused = modulated_conv2d(x, weight, styles, noise=noise, fused_modconv=False, **kw)
    torch.testing.assert_close(fused, unfused, rtol=1e-10, atol=1e-10)
    for n in range(3):
        wn = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            wn = wn / (wn.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        want = conv2d_resample(x[n : n + 1], wn, f=f, up=up, padding=1, flip_weight=(up == 1))
        torch.testing.assert_close(fused[n : n + 1], want + noise, rtol=1e-10, atol=1e-10)


def _gradcheck(func, *inputs) -> bool:
    return torch.autograd.gradcheck(func, inputs, fast_mode=True)


def test_ops_gradcheck_float64():
    g = _gen(8)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert _gradcheck(lambda t: upfirdn2d(t, f, up=2, padding=[2, 1, 2, 1]), x)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    xa = (torch.rand(1, 2, 3, 3, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    assert _gradcheck(lambda t, bb: bias_act(t, bb, act="lrelu", clamp=50), xa, b)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert _gradcheck(
        lambda t, ww: conv2d_resample(t, ww, f=f, up=2, padding=1, flip_weight=False), x, w
    )
    s = torch.randn(1, 2, generator=g, dtype=torch.float64, requires_grad=True)
    for fused in (True, False):
        assert _gradcheck(
            lambda t, ww, ss, fused=fused: modulated_conv2d(
                t,
                ww,
                ss,
                up=2,
                padding=1,
                resample_filter=f,
                flip_weight=False,
                fused_modconv=fused,
            ),
            x,
            w,
            s,
        )


@pytest.mark.parametrize(
    "kernel,stride,padding,groups",
    [(3, 2, 0, 1), (3, 2, 1, 1), (3, 2, [1, 0], 2), (1, 2, 0, 1), (4, 2, 1, 1), (3, 3, 1, 1)],
)
def test_polyphase_transposed_conv_equals_conv_transpose2d(kernel, stride, padding, groups):
    """The export form of a strided transposed convolution (stride^2 ordinary convolutions,
    no ConvTranspose) against torch's, values and gradients."""
    from draggan.ops.conv_transpose import conv_transpose2d_polyphase

    gen = torch.Generator().manual_seed(kernel * 10 + stride)
    x = torch.randn(2, 4, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 6 // groups, kernel, kernel, generator=gen, dtype=torch.float64)
    w.requires_grad_(True)
    want = F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    got = conv_transpose2d_polyphase(x, w, stride=stride, padding=padding, groups=groups)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    probe = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    grads_want = torch.autograd.grad((want * probe).sum(), [x, w])
    grads_got = torch.autograd.grad((got * probe).sum(), [x, w])
    for a, b in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
