"""StyleGAN2 layers with equalised learning rate; parameter names match NVIDIA's checkpoints.

- ``FullyConnectedLayer``: ``weight`` [out, in], ``bias`` [out].
- ``Conv2dLayer``: ``weight`` [out, in, k, k], optional ``bias``, ``resample_filter`` buffer.
- ``SynthesisLayer``: ``affine`` (FC), ``weight``, ``bias``, ``noise_strength``,
  ``noise_const`` and ``resample_filter`` buffers.
- ``ToRGBLayer``: ``affine``, ``weight`` [img_channels, in, 1, 1], ``bias``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from draggan.autotune import OPS, Autotuner
from draggan.ops import ACTIVATIONS, bias_act, conv2d_resample, modulated_conv2d, setup_filter
from draggan.ops.tracing import tracing

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

    def forward_linear(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        """The linear layer with its gains applied to the product instead of the weight
        (fast path: no weight-sized multiplication; rounding differs from ``forward``)."""
        if self.activation != "linear" or self.bias is None:
            return self(x)
        b = self.bias.to(x.dtype)
        b = b * self.bias_gain if self.bias_gain != 1 else b
        return torch.addmm(b.unsqueeze(0), x, self.weight.to(x.dtype).t(), alpha=self.weight_gain)

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
        window: tuple[int, int] | None = None,  # x is a window of the input: output's (top, left)
    ) -> torch.Tensor:  # [N, C_out, res, res] (a window: [N, C_out, h * up, w * up])
        styles = self.affine.forward_linear(w) if fold_gain else self.affine(w)  # [N, C_in]
        act_gain = self.act_gain * gain
        noise = None
        height, width = x.shape[2] * self.up, x.shape[3] * self.up
        if self.use_noise and noise_mode == "random":
            noise = (
                torch.randn([x.shape[0], 1, height, width], device=x.device) * self.noise_strength
            )
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const
            if window is not None:  # the constant noise of the output window
                top, left = window
                noise = noise[top : top + height, left : left + width]
            noise = noise * self.noise_strength
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
            # act(z) * g == act(z * g): every ACTIVATIONS entry is positively homogeneous
            bias=self.bias * act_gain if fold_gain else None,
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if fold_gain:  # the bias came with the convolution
            return bias_act(x, None, act=self.activation, gain=1, clamp=act_clamp, inplace=True)
        return bias_act(
            x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp
        )

    def forward_fast(
        self,
        x: torch.Tensor,  # [N, C_in, res // up, res // up]
        w: torch.Tensor,  # [N, w_dim]
        noise_mode: str,
        gain: float,
        fused_modconv: bool | None,  # None: tuner's choice; True/False: that modulation
        tuner: Autotuner | None,  # None: the default candidate
    ) -> torch.Tensor:  # [N, C_out, res, res], memory format of the chosen candidate
        """The fast arithmetic (gain folded into the conv, factored demodulation) with the
        candidate of the ``modulated_conv`` op that the tuner measured fastest for this
        signature: fused or unfused modulation, channels_last or contiguous activations.

        All candidates compute the same function. Measured against ``impl='ref'`` (float32,
        256 px, random weights): images within 2e-5, ws gradients within 8e-4 of their
        largest magnitude, about as far as ``ref`` itself is from a float64 computation.
        """
        allowed = [
            name
            for name in OPS["modulated_conv"]
            if fused_modconv is None or name.startswith("fused-" if fused_modconv else "unfused-")
        ]
        choice = allowed[0]
        if tuner is not None and len(allowed) > 1 and not tracing():  # (export: defaults)
            choice = tuner.choose(
                "modulated_conv",
                self._signature(x, w, noise_mode, gain),
                allowed,
                lambda name: self._timed_call(x, w, noise_mode, gain, name),
                x.device,
            )
        fused, memory_format = _parse_candidate(choice)
        x = x.contiguous(memory_format=memory_format)
        return self(x, w, noise_mode, fused, gain, fold_gain=True)

    def forward_window(
        self,
        x: torch.Tensor,  # [N, C_in, h, w]: a window of this layer's input
        w: torch.Tensor,  # [N, w_dim]
        noise_mode: str,
        gain: float,
        fused_modconv: bool | None,
        window: tuple[int, int],  # (top, left) of the output window in the output map
    ) -> torch.Tensor:  # [N, C_out, h * up, w * up]
        """The fast arithmetic on a window of the map (``SynthesisNetwork.features_in``).
        Window shapes vary from call to call, so the candidate is fixed instead of tuned:
        contiguous activations, unfused when the styles need gradients (no weight-gradient
        convolution), else fused (or as ``fused_modconv`` says)."""
        if fused_modconv is None:
            fused_modconv = not self._grads_needed(x, w)[1]
        x = x.contiguous()
        return self(x, w, noise_mode, fused_modconv, gain, fold_gain=True, window=window)

    def _grads_needed(self, x: torch.Tensor, w: torch.Tensor) -> tuple[bool, bool, bool]:
        """(x, styles, conv weight) need gradients in this call."""
        if not torch.is_grad_enabled():
            return False, False, False
        styles = w.requires_grad or any(p.requires_grad for p in self.affine.parameters())
        return x.requires_grad, styles, self.weight.requires_grad

    def _signature(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str, gain: float) -> str:
        gx, gs, gw = self._grads_needed(x, w)
        source = "channels_last" if _is_channels_last(x) else "contiguous"
        noise = self.use_noise and noise_mode != "none"
        return (
            f"synthesis_layer in={self.in_channels} out={self.out_channels} "
            f"k={self.weight.shape[-1]} up={self.up} res={self.resolution} x={list(x.shape)} "
            f"{str(x.dtype).replace('torch.', '')} from={source} noise={int(noise)} "
            f"clamp={int(self.conv_clamp is not None)} grad(x,styles,weight)={int(gx)}{int(gs)}"
            f"{int(gw)}"
        )

    def _timed_call(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str, gain: float, name: str
    ) -> Callable[[], None]:
        """One forward (+ the backward the real call will need) of candidate ``name`` on
        random inputs shaped like ``x`` and ``w``. Touches neither the global RNG nor any
        ``.grad``."""
        gx, gs, gw = self._grads_needed(x, w)
        fused, memory_format = _parse_candidate(name)
        rng = torch.Generator().manual_seed(0)
        source = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
        xm = torch.randn(x.shape, generator=rng).to(x.device, x.dtype)
        xm = xm.contiguous(memory_format=source).requires_grad_(gx)
        wm = torch.randn(w.shape, generator=rng).to(w.device, w.dtype)
        wm = wm.requires_grad_(w.requires_grad and gs)
        mode = "const" if noise_mode == "random" else noise_mode  # no global RNG draws
        inputs = [t for t in (xm, wm) if t.requires_grad]
        if torch.is_grad_enabled():
            inputs += [p for p in self.parameters() if p.requires_grad]
        grad_out = []

        def call() -> None:
            with torch.set_grad_enabled(bool(inputs)):
                y = self(xm.contiguous(memory_format=memory_format), wm, mode, fused, gain, True)
                if inputs:
                    if not grad_out:
                        grad_out.append(torch.randn(y.shape, generator=rng).to(y))
                    torch.autograd.grad(y, inputs, grad_out[0], allow_unused=True)

        return call

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
        if as_matmul and self.weight.shape[2:] == (1, 1):
            styles = self.affine.forward_linear(w) * self.weight_gain
            N, C, H, W = x.shape
            wm = (self.weight[:, :, 0, 0].unsqueeze(0) * styles.unsqueeze(1)).to(
                x.dtype
            )  # [N, O, C]
            if _is_channels_last(x):
                pixels = x.permute(0, 2, 3, 1).reshape(N, H * W, C)  # a view
                y = torch.bmm(pixels, wm.transpose(1, 2))  # [N, H * W, O]
                y = y.reshape(N, H, W, -1).permute(0, 3, 1, 2)  # [N, O, H, W]
            else:
                y = torch.bmm(wm, x.reshape(N, C, H * W)).reshape(N, -1, H, W)
            return bias_act(y, self.bias.to(x.dtype), clamp=self.conv_clamp)
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


def _is_channels_last(x: torch.Tensor) -> bool:
    return (
        x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    )


def _parse_candidate(name: str) -> tuple[bool, torch.memory_format]:
    """'fused-channels_last' -> (True, torch.channels_last), etc."""
    modulation, memory_format = name.split("-", 1)
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    return modulation == "fused", fmt
