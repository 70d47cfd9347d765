"""StyleGAN2 modulated (and optionally demodulated) convolution.

Two execution paths with the same mathematics:
- fused: per-sample weights ``w * styles`` (demodulated) and one grouped convolution;
- unfused: scale the activations by ``styles`` before and by the demodulation coefficients
  after one shared-weight convolution (cheaper when the batch is large or for backward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from draggan.ops.conv2d_resample import conv2d_resample
from draggan.ops.upfirdn2d import Padding


@dataclass(frozen=True)
class Resampling:
    """How the convolution resamples (the arguments ``conv2d_resample`` takes besides x, w)."""

    f: torch.Tensor | None = None
    up: int = 1
    down: int = 1
    padding: Padding = 0
    flip_weight: bool = True
    conv_padding: bool = False

    def conv(
        self, x: torch.Tensor, w: torch.Tensor, groups: int = 1, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        if bias is not None:
            bias = bias.to(x.dtype).repeat(groups)  # grouped: one copy per group
        return conv2d_resample(
            x,
            w.to(x.dtype),
            f=self.f,
            up=self.up,
            down=self.down,
            padding=self.padding,
            groups=groups,
            flip_weight=self.flip_weight,
            conv_padding=self.conv_padding,
            bias=bias,
        )


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
    factored: bool = False,  # fast path: cheaper weight-sized arithmetic, padding in the FIR conv
    bias: torch.Tensor | None = None,  # [C_out] factored + demodulated only: added last
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """Modulate ``weight`` by ``styles``, demodulate by ``rsqrt(sum w^2 + 1e-8)``, convolve,
    add ``noise``; ``out_gain`` scales the result at the cost of a few weight-sized ops.
    ``bias`` (fast path) is added by the convolution itself (no extra pass)."""
    N = int(x.shape[0])
    out_channels, in_channels, kh, kw = (int(s) for s in weight.shape)
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

    geometry = Resampling(resample_filter, up, down, padding, flip_weight, conv_padding=factored)
    if bias is not None and not (factored and demodulate):
        raise ValueError("modulated_conv2d: bias is only taken with factored=True, demodulate=True")
    if factored and demodulate:
        # sum_ik (W_oik s_i)^2 = sum_i s_i^2 sum_k W_oik^2: the demodulation from per-(o, i)
        # weight energies; fused: ONE weight-sized product W * (s_i d_o g) instead of four.
        energy = torch.linalg.vector_norm(weight, dim=(2, 3)).square()  # [C_out, C_in], 1 pass
        dcoefs = (styles.square() @ energy.t() + 1e-8).rsqrt() * out_gain  # [N, C_out]
        noise = noise * out_gain if noise is not None and out_gain != 1 else noise
        if not fused_modconv:
            return _unfused(x, weight, styles, dcoefs, noise, geometry, bias)
        scale = styles.reshape(N, 1, -1) * dcoefs.reshape(N, -1, 1)  # [N, C_out, C_in]
        w = weight.unsqueeze(0) * scale.reshape(N, out_channels, in_channels, 1, 1)
        return _fused(x, w, noise, geometry, bias)
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
        x = _modulated_shared_conv(x, weight, styles, geometry)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(N, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(N, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    return _fused(x, w, noise, geometry)


def _fused(
    x: torch.Tensor,  # [N, C_in, H, W]
    w: torch.Tensor,  # [N, C_out, C_in, kh, kw] per-sample weights
    noise: torch.Tensor | None,
    geometry: Resampling,
    bias: torch.Tensor | None = None,  # [C_out]
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """The batch becomes the groups of one grouped convolution."""
    N = int(x.shape[0])
    in_channels, kh, kw = (int(s) for s in w.shape[2:])
    # (A batch of one keeps its strides, so a channels_last input stays channels_last.)
    if N > 1:
        x = x.reshape(1, -1, *x.shape[2:])  # [1, N * C_in, H, W]
    x = geometry.conv(x, w.reshape(-1, in_channels, kh, kw), groups=N, bias=bias)
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
    geometry: Resampling,
    bias: torch.Tensor | None = None,  # [C_out]
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """Scale the activations, convolve with the shared weight, scale the result: when only
    the styles need gradients the convolution needs no weight gradient."""
    x = _modulated_shared_conv(x, weight, styles, geometry)
    dcoefs = dcoefs.to(x.dtype).reshape(x.shape[0], -1, 1, 1)
    if bias is not None:
        x = torch.addcmul(bias.to(x.dtype).reshape(1, -1, 1, 1), x, dcoefs)
    else:
        x = x * dcoefs
    if noise is not None:
        x = x.add_(noise.to(x.dtype))  # x is a fresh product nobody saved
    return x


def _modulated_shared_conv(
    x: torch.Tensor,  # [N, C_in, H, W]
    weight: torch.Tensor,  # [C_out, C_in, kh, kw]
    styles: torch.Tensor,  # [N, C_in]
    geometry: Resampling,
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """``conv(x * styles, weight)``: the unfused modulation before demodulation and noise."""
    x = x * styles.to(x.dtype).reshape(x.shape[0], -1, 1, 1)
    return geometry.conv(x, weight)
