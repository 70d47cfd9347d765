"""StyleGAN2 layers with equalised learning rate; parameter names match NVIDIA's checkpoints.

- ``FullyConnectedLayer``: ``weight`` [out, in], ``bias`` [out].
- ``Conv2dLayer``: ``weight`` [out, in, k, k], optional ``bias``, ``resample_filter`` buffer.
- ``SynthesisLayer``: ``affine`` (FC), ``weight``, ``bias``, ``noise_strength``,
  ``noise_const`` and ``resample_filter`` buffers.
- ``ToRGBLayer``: ``affine``, ``weight`` [img_channels, in, 1, 1], ``bias``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from draggan.ops import ACTIVATIONS, bias_act, conv2d_resample, modulated_conv2d, setup_filter

NOISE_MODES = ("random", "const", "none")


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer; weight scaled by ``lr_multiplier / sqrt(in)``, bias by ``lr_multiplier``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1,
        bias_init: float = 0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = (
            torch.nn.Parameter(torch.full([out_features], float(bias_init), dtype=torch.float32))
            if bias
            else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Equalised-lr convolution with optional FIR resampling (the resnet skip uses it)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[int] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(
        self, x: torch.Tensor, gain: float = 1
    ) -> torch.Tensor:  # [N, C_in, H, W] -> [N, C_out, H * up // down, W * up // down]
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(
            x,
            w.to(x.dtype),
            f=self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=(self.up == 1),
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 conv (optionally up-sampling x2) + noise + bias + lrelu + clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[int] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        )
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,  # [N, C_in, res // up, res // up]
        w: torch.Tensor,  # [N, w_dim]
        noise_mode: str = "random",
        fused_modconv: bool = True,
        gain: float = 1,
        fold_gain: bool = False,  # fast path: gain folded into the conv, factored modulation
    ) -> torch.Tensor:  # [N, C_out, res, res]
        styles = self.affine(w)  # [N, C_in]
        act_gain = self.act_gain * gain
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = (
                torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
                * self.noise_strength
            )
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=(self.up == 1),
            fused_modconv=fused_modconv,
            out_gain=act_gain if fold_gain else 1,
            factored=fold_gain,
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if fold_gain:  # act(z) * g == act(z * g): every ACTIVATIONS entry is positively homogeneous
            bias = self.bias.to(x.dtype) * act_gain
            return bias_act(x, bias, act=self.activation, gain=1, clamp=act_clamp, inplace=True)
        return bias_act(
            x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp
        )

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, "
            f"up={self.up}, conv_clamp={self.conv_clamp}"
        )


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation, linear + clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True, as_matmul: bool = False
    ) -> torch.Tensor:  # x [N, C_in, H, W], w [N, w_dim] -> [N, img_channels, H, W]
        """``as_matmul``: the 1x1 modulated conv as one batched matrix product over pixels
        (a GEMM instead of CPU's slow path for convolutions with 3 output channels)."""
        styles = self.affine(w) * self.weight_gain
        if as_matmul and self.weight.shape[2:] == (1, 1):
            N, C, H, W = x.shape
            wm = self.weight[:, :, 0, 0].unsqueeze(0) * styles.unsqueeze(1)  # [N, O, C]
            pixels = x.permute(0, 2, 3, 1).reshape(N, H * W, C)  # a view for channels_last
            y = torch.bmm(pixels, wm.transpose(1, 2).to(x.dtype))  # [N, H * W, O]
            y = y.reshape(N, H, W, -1).permute(0, 3, 1, 2)  # [N, O, H, W]
            return bias_act(y, self.bias.to(x.dtype), clamp=self.conv_clamp)
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)
