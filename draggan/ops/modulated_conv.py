"""StyleGAN2 modulated (and optionally demodulated) convolution.

Two execution paths with the same mathematics:
- fused: per-sample weights ``w * styles`` (demodulated) and one grouped convolution;
- unfused: scale the activations by ``styles`` before and by the demodulation coefficients
  after one shared-weight convolution (cheaper when the batch is large or for backward).
"""

from __future__ import annotations

import torch

from draggan.ops.conv2d_resample import conv2d_resample
from draggan.ops.upfirdn2d import Padding


def modulated_conv2d(
    x: torch.Tensor,  # [N, C_in, H, W]
    weight: torch.Tensor,  # [C_out, C_in, kh, kw]
    styles: torch.Tensor,  # [N, C_in]
    noise: torch.Tensor | None = None,  # broadcastable to [N, C_out, H_out, W_out]
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    resample_filter: torch.Tensor | None = None,  # from setup_filter
    demodulate: bool = True,
    flip_weight: bool = True,  # True: correlation (F.conv2d), False: convolution
    fused_modconv: bool = True,
    out_gain: float = 1,  # multiply the result (noise included); folded into the weights
    factored: bool = False,  # demodulated only: cheaper weight-sized arithmetic (fast path)
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """Modulate ``weight`` by ``styles``, demodulate by ``rsqrt(sum w^2 + 1e-8)``, convolve,
    add ``noise``; ``out_gain`` scales the result at the cost of a few weight-sized ops."""
    N = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"modulated_conv2d: expected x [N, {in_channels}, H, W], got {list(x.shape)}"
        )
    if styles.shape != (N, in_channels):
        raise ValueError(
            f"modulated_conv2d: expected styles [{N}, {in_channels}], got {list(styles.shape)}"
        )

    # Pre-normalise to avoid float16 overflow (a no-op mathematically after demodulation).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (
            1
            / (in_channels * kh * kw) ** 0.5
            / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    if factored and demodulate:
        # sum_ik (W_oik s_i)^2 = sum_i s_i^2 sum_k W_oik^2: the demodulation from per-(o, i)
        # weight energies; fused: ONE weight-sized product W * (s_i d_o g) instead of four.
        energy = weight.square().sum(dim=[2, 3])  # [C_out, C_in]
        dcoefs = (styles.square() @ energy.t() + 1e-8).rsqrt() * out_gain  # [N, C_out]
        noise = noise * out_gain if noise is not None and out_gain != 1 else noise
        if not fused_modconv:
            return _unfused(
                x, weight, styles, dcoefs, noise, resample_filter, up, down, padding, flip_weight
            )
        scale = styles.reshape(N, 1, -1) * dcoefs.reshape(N, -1, 1)  # [N, C_out, C_in]
        w = weight.unsqueeze(0) * scale.reshape(N, out_channels, in_channels, 1, 1)
        return _fused(x, w, noise, N, resample_filter, up, down, padding, flip_weight)
    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(N, 1, -1, 1, 1)  # [N, C_out, C_in, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, C_out]
    if out_gain != 1:
        if demodulate:
            dcoefs = dcoefs * out_gain
        else:
            styles = styles * out_gain
            w = w * out_gain if w is not None else None
        noise = noise * out_gain if noise is not None else None
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(N, -1, 1, 1, 1)

    if not fused_modconv:
        x = _modulated_shared_conv(
            x, weight, styles, resample_filter, up, down, padding, flip_weight
        )
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(N, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(N, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    return _fused(x, w, noise, N, resample_filter, up, down, padding, flip_weight)


def _fused(
    x: torch.Tensor,  # [N, C_in, H, W]
    w: torch.Tensor,  # [N, C_out, C_in, kh, kw] per-sample weights
    noise: torch.Tensor | None,
    N: int,
    resample_filter: torch.Tensor | None,
    up: int,
    down: int,
    padding: Padding,
    flip_weight: bool,
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """The batch becomes the groups of one grouped convolution."""
    in_channels, kh, kw = w.shape[2:]
    # (A batch of one keeps its strides, so a channels_last input stays channels_last.)
    if N > 1:
        x = x.reshape(1, -1, *x.shape[2:])  # [1, N * C_in, H, W]
    w = w.reshape(-1, in_channels, kh, kw)  # [N * C_out, C_in, kh, kw]
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=N,
        flip_weight=flip_weight,
    )
    if N > 1:
        x = x.reshape(N, -1, *x.shape[2:])  # [N, C_out, H_out, W_out]
    if noise is not None:
        x = x.add_(noise)  # x is the convolution's fresh output
    return x


def _unfused(
    x: torch.Tensor,  # [N, C_in, H, W]
    weight: torch.Tensor,  # [C_out, C_in, kh, kw] shared by the batch
    styles: torch.Tensor,  # [N, C_in]
    dcoefs: torch.Tensor,  # [N, C_out] demodulation (times the output gain)
    noise: torch.Tensor | None,  # already times the output gain
    resample_filter: torch.Tensor | None,
    up: int,
    down: int,
    padding: Padding,
    flip_weight: bool,
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """Scale the activations, convolve with the shared weight, scale the result: when only
    the styles need gradients the convolution needs no weight gradient."""
    x = _modulated_shared_conv(x, weight, styles, resample_filter, up, down, padding, flip_weight)
    x = x * dcoefs.to(x.dtype).reshape(x.shape[0], -1, 1, 1)
    if noise is not None:
        x = x.add_(noise.to(x.dtype))  # x is a fresh product nobody saved
    return x


def _modulated_shared_conv(
    x: torch.Tensor,  # [N, C_in, H, W]
    weight: torch.Tensor,  # [C_out, C_in, kh, kw]
    styles: torch.Tensor,  # [N, C_in]
    resample_filter: torch.Tensor | None,
    up: int,
    down: int,
    padding: Padding,
    flip_weight: bool,
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """``conv(x * styles, weight)``: the unfused modulation before demodulation and noise."""
    x = x * styles.to(x.dtype).reshape(x.shape[0], -1, 1, 1)
    return conv2d_resample(
        x,
        weight.to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        flip_weight=flip_weight,
    )
