"""StyleGAN2 synthesis network: ws [N, num_ws, w_dim] -> image [N, C, R, R].

Blocks ``b4, b8, ..., bR``; each returns its feature map ``x`` and the running image.
``features_at`` stops after the block at a given resolution (DragGAN's b128 features)
without computing the higher blocks or any ToRGB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from draggan.autotune import Autotuner
from draggan.checks import GeneratorInputError, check_choice, check_shape
from draggan.config import ARCHITECTURES
from draggan.layers import NOISE_MODES, Conv2dLayer, SynthesisLayer, ToRGBLayer
from draggan.ops import setup_filter, upsample2d


@dataclass(frozen=True)
class RunOptions:
    """How to run the synthesis (not what it computes)."""

    noise_mode: str = "const"  # 'const' | 'random' | 'none'
    fused_modconv: bool | None = None  # None: NVIDIA's choice (fused in eval mode)
    force_fp32: bool = False  # ignore num_fp16_res (only matters on CUDA)
    impl: str = "fast"  # 'fast' (tuned layer candidates, folded gains) | 'ref' (NVIDIA's op order)
    tuner: Autotuner | None = None  # 'fast': picks each layer's candidate; None: defaults


DEFAULT_OPTIONS = RunOptions()
IMPLS = ("fast", "ref")


class SynthesisBlock(torch.nn.Module):
    """One resolution: [const | conv0 (up x2)], conv1, optional ToRGB and resnet skip."""

    def __init__(
        self,
        in_channels: int,  # 0: first block (learned constant input)
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[int] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        use_noise: bool = True,
    ) -> None:
        super().__init__()
        check_choice(architecture, "architecture", ARCHITECTURES)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        layer_kwargs = dict(
            w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, use_noise=use_noise
        )
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, up=2, resample_filter=resample_filter, **layer_kwargs
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                up=2,
                resample_filter=resample_filter,
            )

    def block_dtype(self, device: torch.device, force_fp32: bool) -> torch.dtype:
        """float16 only for fp16 blocks on CUDA; float32 everywhere else."""
        if self.use_fp16 and not force_fp32 and device.type == "cuda":
            return torch.float16
        return torch.float32

    def resolve_fused(self, opts: RunOptions, dtype: torch.dtype, batch: int) -> bool | None:
        """Fused (grouped) or unfused modulation when ``opts.fused_modconv`` is None.

        'ref': NVIDIA's rule (fused in eval mode, unfused in training mode). 'fast': None,
        the tuner measures both (fused needs a convolution weight gradient whenever the
        styles need gradients, unfused does not; unfused scales activations instead of the
        weights), except where NVIDIA never fuses (float16 with a batch > 1).
        """
        if opts.fused_modconv is not None:
            return opts.fused_modconv
        allowed = dtype == torch.float32 or batch == 1
        if opts.impl == "fast":
            return None if allowed else False
        return (not self.training) and allowed

    def features(
        self,
        x: torch.Tensor | None,  # [N, C_in, res / 2, res / 2]; None for the first block
        ws: torch.Tensor,  # [N, >= num_conv, w_dim]: the block's conv ws first
        opts: RunOptions = DEFAULT_OPTIONS,
    ) -> torch.Tensor:  # [N, C_out, res, res]
        """The block's feature map ``x`` (no ToRGB)."""
        dtype = self.block_dtype(ws.device, opts.force_fp32)
        fused = self.resolve_fused(opts, dtype, ws.shape[0])
        if opts.impl == "fast":

            def conv(layer: SynthesisLayer, x: torch.Tensor, w: torch.Tensor, gain: float = 1):
                return layer.forward_fast(x, w, opts.noise_mode, gain, fused, opts.tuner)
        else:

            def conv(layer: SynthesisLayer, x: torch.Tensor, w: torch.Tensor, gain: float = 1):
                return layer(x, w, opts.noise_mode, fused, gain)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            return conv(self.conv1, x, ws[:, 0])
        x = x.to(dtype=dtype)
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = conv(self.conv0, x, ws[:, 0])
            x = conv(self.conv1, x, ws[:, 1], gain=math.sqrt(0.5))
            return y + x
        x = conv(self.conv0, x, ws[:, 0])
        return conv(self.conv1, x, ws[:, 1])

    def forward(
        self,
        x: torch.Tensor | None,  # [N, C_in, res / 2, res / 2]; None for the first block
        img: torch.Tensor | None,  # [N, img_channels, res / 2, res / 2] float32, or None
        ws: torch.Tensor,  # [N, num_conv + num_torgb, w_dim]
        opts: RunOptions = DEFAULT_OPTIONS,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:  # x [N, C_out, res, res], img [N, C, res, res]
        x = self.features(x, ws, opts)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.num_torgb:
            fused = self.resolve_fused(opts, x.dtype, ws.shape[0])
            y = self.torgb(
                x,
                ws[:, self.num_conv],
                fused_modconv=fused is not False,
                as_matmul=opts.impl == "fast",
            )
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(torch.nn.Module):
    """Blocks ``b4 ... bR``; block ``bRES`` reads ws[:, i : i + num_conv + num_torgb]."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        architecture: str = "skip",
        resample_filter: Sequence[int] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        use_noise: bool = True,
        autotuner: Autotuner | None = None,  # None: Autotuner.from_environment()
    ) -> None:
        super().__init__()
        # Chooses each layer's implementation for impl='fast' (measured once per shape and
        # machine, cached on disk; see draggan/autotune.py). Replaceable attribute.
        self.autotuner = autotuner if autotuner is not None else Autotuner.from_environment()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        self.w_index: dict[int, int] = {}  # block resolution -> index of its first w
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=is_last,
                architecture=architecture,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                use_fp16=res >= fp16_resolution,
                use_noise=use_noise,
            )
            self.w_index[res] = self.num_ws
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        """The synthesis blocks in resolution order (b4 first)."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def _check(self, ws: torch.Tensor, opts: RunOptions) -> torch.Tensor:
        check_shape(ws, "ws", ["N", self.num_ws, self.w_dim])
        check_choice(opts.noise_mode, "noise_mode", NOISE_MODES)
        check_choice(opts.impl, "impl", IMPLS)
        return ws.to(torch.float32)

    def forward(
        self,
        ws: torch.Tensor,  # [N, num_ws, w_dim]
        noise_mode: str = "const",  # 'const' | 'random' | 'none'
        return_features: bool = False,
        *,
        fused_modconv: bool | None = None,  # None: 'ref' NVIDIA's rule, 'fast' the tuner's
        force_fp32: bool = False,  # ignore num_fp16_res (only matters on CUDA)
        impl: str = "fast",  # 'fast' | 'ref' (NVIDIA's exact op order; slower)
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Image [N, img_channels, R, R] (about [-1, 1]); with ``return_features`` also the
        list of every block's output ``x`` ([N, C_res, res, res] float32), b4 first."""
        opts = RunOptions(noise_mode, fused_modconv, force_fp32, impl, self.autotuner)
        ws = self._check(ws, opts)
        x = img = None
        features = []
        for block in self.blocks():
            i = self.w_index[block.resolution]
            x, img = block(x, img, ws[:, i : i + block.num_conv + block.num_torgb], opts)
            if return_features:
                features.append(x.to(torch.float32).contiguous())
        return (img, features) if return_features else img

    def features_at(
        self,
        ws: torch.Tensor,  # [N, num_ws, w_dim]
        resolution: int,  # one of block_resolutions, e.g. 128
        noise_mode: str = "const",
        *,
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
        impl: str = "fast",
    ) -> torch.Tensor:  # [N, C_res, res, res] float32
        """Output of block ``b{resolution}`` only: no ToRGB, no higher block is run."""
        if resolution not in self.block_resolutions:
            raise GeneratorInputError(
                f"resolution must be one of {self.block_resolutions}, got {resolution}"
            )
        opts = RunOptions(noise_mode, fused_modconv, force_fp32, impl, self.autotuner)
        ws = self._check(ws, opts)
        x = None
        for block in self.blocks():
            i = self.w_index[block.resolution]
            x = block.features(x, ws[:, i : i + block.num_conv], opts)
            if block.resolution == resolution:
                break
        return x.to(torch.float32).contiguous()
