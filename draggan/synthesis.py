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
class SynthesisOptions:
    """How to run the synthesis (not what it computes)."""

    noise_mode: str = "const"  # 'const' | 'random' | 'none'
    fused_modconv: bool | None = None  # None: NVIDIA's choice (fused in eval mode)
    force_fp32: bool = False  # ignore num_fp16_res (only matters on CUDA)
    impl: str = "fast"  # 'fast' (tuned layer candidates, folded gains) | 'ref' (NVIDIA's op order)
    tuner: Autotuner | None = None  # 'fast': picks each layer's candidate; None: defaults
    grad_ws: int | None = None  # only ws[:, :grad_ws] are differentiated (None: all)


DEFAULT_OPTIONS = SynthesisOptions()
IMPLS = ("fast", "ref")

Box = tuple[int, int, int, int]  # (top, left, bottom, right) pixels of a map, half-open
# A block's ws: [N, n, w_dim], or its n rows [N, w_dim] each (rows can differ in whether
# they carry gradients, which the slices of one tensor cannot).
Rows = torch.Tensor | Sequence[torch.Tensor]


def _row(ws: Rows, n: int) -> torch.Tensor:  # [N, w_dim]
    return ws[n] if isinstance(ws, (list, tuple)) else ws[:, n]


@dataclass(frozen=True)
class BlockWindow:
    """What one block computes for a window of its output: ``out`` (its output pixels),
    ``mid`` (conv0's output pixels that conv1 reads, in the block's resolution) and
    ``source`` (the input pixels conv0 reads, at half the resolution)."""

    out: Box
    mid: Box
    source: Box


def _grow(box: Box, margin: int, size: int) -> Box:
    top, left, bottom, right = box
    return (
        max(top - margin, 0),
        max(left - margin, 0),
        min(bottom + margin, size),
        min(right + margin, size),
    )


def block_window(out: Box, resolution: int) -> BlockWindow:
    """The windows a block needs: conv1 (3x3) reads 1 pixel around each output pixel; the
    x2 up-sampling conv0 (stride-2 transposed 3x3 conv, then the 4-tap FIR filter with
    padding 1) reads input pixels ceil((j - 3) / 2) ... floor((j + 2) / 2) for output pixel
    j: 1 input pixel of margin around the halved window. Windows are clipped to the maps
    (outside, the convolutions read zeros in the full computation too), and a window of
    conv0's output starting at row 2 t is computed from input rows t, t + 1, ... exactly."""
    mid = _grow(out, 1, resolution)
    top, left, bottom, right = mid
    half = (top // 2, left // 2, -(-bottom // 2), -(-right // 2))
    return BlockWindow(out, mid, _grow(half, 1, resolution // 2))


def _crop(x: torch.Tensor, box: Box, origin: tuple[int, int]) -> torch.Tensor:
    """The pixels ``box`` of a map whose window ``x`` starts at ``origin`` (top, left)."""
    top, left, bottom, right = box
    return x[:, :, top - origin[0] : bottom - origin[0], left - origin[1] : right - origin[1]]


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

    def resolve_fused(self, opts: SynthesisOptions, dtype: torch.dtype, batch: int) -> bool | None:
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
        ws: Rows,  # [N, >= num_conv, w_dim] (or rows): the block's conv ws first
        opts: SynthesisOptions = DEFAULT_OPTIONS,
    ) -> torch.Tensor:  # [N, C_out, res, res]
        """The block's feature map ``x`` (no ToRGB)."""
        w0 = _row(ws, 0)
        dtype = self.block_dtype(w0.device, opts.force_fp32)
        fused = self.resolve_fused(opts, dtype, w0.shape[0])
        if opts.impl == "fast":

            def conv(layer: SynthesisLayer, x: torch.Tensor, w: torch.Tensor, gain: float = 1):
                return layer.forward_fast(x, w, opts.noise_mode, gain, fused, opts.tuner)
        else:

            def conv(layer: SynthesisLayer, x: torch.Tensor, w: torch.Tensor, gain: float = 1):
                return layer(x, w, opts.noise_mode, fused, gain)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([w0.shape[0], 1, 1, 1])
            return conv(self.conv1, x, w0)
        x = x.to(dtype=dtype)
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = conv(self.conv0, x, w0)
            x = conv(self.conv1, x, _row(ws, 1), gain=math.sqrt(0.5))
            return y + x
        x = conv(self.conv0, x, w0)
        return conv(self.conv1, x, _row(ws, 1))

    def features_window(
        self,
        x: torch.Tensor,  # [N, C_in, ...]: the input map restricted to window.source
        ws: Rows,  # [N, >= num_conv, w_dim] (or rows)
        window: BlockWindow,
        opts: SynthesisOptions,
    ) -> torch.Tensor:  # [N, C_out, window.out height, window.out width]
        """The block's output on ``window.out`` from its input on ``window.source``
        ('skip' and 'orig' architectures; the same values as the full map's, up to rounding)."""
        w0 = _row(ws, 0)
        dtype = self.block_dtype(w0.device, opts.force_fp32)
        fused = self.resolve_fused(opts, dtype, w0.shape[0])
        top, left, _, _ = window.source
        x = self.conv0.forward_window(
            x.to(dtype), w0, opts.noise_mode, 1, fused, (2 * top, 2 * left)
        )
        x = _crop(x, window.mid, (2 * top, 2 * left))
        x = self.conv1.forward_window(
            x, _row(ws, 1), opts.noise_mode, 1, fused, (window.mid[0], window.mid[1])
        )
        return _crop(x, window.out, (window.mid[0], window.mid[1]))

    def forward(
        self,
        x: torch.Tensor | None,  # [N, C_in, res / 2, res / 2]; None for the first block
        img: torch.Tensor | None,  # [N, img_channels, res / 2, res / 2] float32, or None
        ws: Rows,  # [N, num_conv + num_torgb, w_dim] (or rows)
        opts: SynthesisOptions = DEFAULT_OPTIONS,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:  # x [N, C_out, res, res], img [N, C, res, res]
        x = self.features(x, ws, opts)
        return x, self.rgb(x, img, ws, opts)

    def rgb(
        self,
        x: torch.Tensor,  # [N, C_out, res, res] this block's features
        img: torch.Tensor | None,  # [N, img_channels, res / 2, res / 2] float32, or None
        ws: Rows,  # [N, num_conv + num_torgb, w_dim] (or rows)
        opts: SynthesisOptions = DEFAULT_OPTIONS,
    ) -> torch.Tensor | None:  # [N, img_channels, res, res] the running image
        """The running image after this block ('skip': up-sampled, plus this ToRGB)."""
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.num_torgb:
            w = _row(ws, self.num_conv)
            fused = self.resolve_fused(opts, x.dtype, w.shape[0])
            y = self.torgb(
                x,
                w,
                fused_modconv=fused is not False,
                as_matmul=opts.impl == "fast",
            )
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return img


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

    def _check(self, ws: torch.Tensor, opts: SynthesisOptions) -> torch.Tensor:
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
        grad_until: int | None = None,  # gradients only through the blocks up to this res
        grad_ws: int | None = None,  # gradients only to ws[:, :grad_ws]
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Image [N, img_channels, R, R] (about [-1, 1]); with ``return_features`` also the
        list of every block's output ``x`` ([N, C_res, res, res] float32), b4 first.

        ``grad_until``: for callers that differentiate only the features of the blocks up
        to that resolution (DragGAN's loss on b128): the higher blocks and every ToRGB run
        without autograd (the same values; no graph kept for them). ``grad_ws``: only the
        first ``grad_ws`` rows of ws are differentiated, the others are constants even when
        ``ws`` as a whole requires gradients (e.g. ``torch.cat([optimised, fixed], 1)``:
        without it every layer's modulation would be differentiated, in a fused modulated
        conv a full weight-gradient convolution per layer). The same values."""
        opts = SynthesisOptions(
            noise_mode, fused_modconv, force_fp32, impl, self.autotuner, grad_ws
        )
        ws = self._check(ws, opts)
        grad = torch.is_grad_enabled()
        x = img = None
        features = []
        for block in self.blocks():
            i = self.w_index[block.resolution]
            block_ws = _rows(ws, i, block.num_conv + block.num_torgb, opts)
            with torch.set_grad_enabled(
                grad and (grad_until is None or block.resolution <= grad_until)
            ):
                x = block.features(x, block_ws, opts)
            with torch.set_grad_enabled(grad and grad_until is None):
                img = block.rgb(x, img, block_ws, opts)
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
        grad_ws: int | None = None,  # as in forward
    ) -> torch.Tensor:  # [N, C_res, res, res] float32
        """Output of block ``b{resolution}`` only: no ToRGB, no higher block is run."""
        if resolution not in self.block_resolutions:
            raise GeneratorInputError(
                f"resolution must be one of {self.block_resolutions}, got {resolution}"
            )
        opts = SynthesisOptions(
            noise_mode, fused_modconv, force_fp32, impl, self.autotuner, grad_ws
        )
        ws = self._check(ws, opts)
        x = None
        for block in self.blocks():
            i = self.w_index[block.resolution]
            x = block.features(x, _rows(ws, i, block.num_conv, opts), opts)
            if block.resolution == resolution:
                break
        return x.to(torch.float32).contiguous()

    def features_in(
        self,
        ws: torch.Tensor,  # [N, num_ws, w_dim]
        resolution: int,  # one of block_resolutions, e.g. 128
        boxes: Sequence[Box],  # windows of the b{resolution} map: (top, left, bottom, right)
        noise_mode: str = "const",
        *,
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
        impl: str = "fast",
        grad_ws: int | None = None,  # as in forward
    ) -> list[torch.Tensor]:  # per box [N, C_res, bottom - top, right - left] float32
        """The output of block ``b{resolution}`` on the given windows only: each block
        above the highest resolution some window needs in full computes just the pixels its
        windows depend on (a few pixels of margin per block; see ``block_window``), the
        blocks below run in full once. Equal to ``features_at`` cropped, up to rounding
        (different convolution shapes); cheap when the windows are small. The 'resnet'
        architecture (its skip path) and ``impl='ref'`` are computed in full and cropped."""
        if resolution not in self.block_resolutions:
            raise GeneratorInputError(
                f"resolution must be one of {self.block_resolutions}, got {resolution}"
            )
        for box in boxes:
            top, left, bottom, right = box
            if not (0 <= top < bottom <= resolution and 0 <= left < right <= resolution):
                raise GeneratorInputError(
                    f"window {tuple(box)} is not a non-empty part of the {resolution} x "
                    f"{resolution} map (top, left, bottom, right)"
                )
        if self.b4.architecture == "resnet" or impl == "ref":
            full = self.features_at(
                ws,
                resolution,
                noise_mode,
                fused_modconv=fused_modconv,
                force_fp32=force_fp32,
                impl=impl,
                grad_ws=grad_ws,
            )
            return [_crop(full, box, (0, 0)).contiguous() for box in boxes]
        opts = SynthesisOptions(
            noise_mode, fused_modconv, force_fp32, impl, self.autotuner, grad_ws
        )
        ws = self._check(ws, opts)
        chains = [self._windows(resolution, tuple(box)) for box in boxes]
        full_res = max(self._whole_from(chain, resolution) for chain in chains)
        x = None
        for block in self.blocks():
            if block.resolution > full_res:
                break
            i = self.w_index[block.resolution]
            x = block.features(x, _rows(ws, i, block.num_conv, opts), opts)
        out = []
        for box, chain in zip(boxes, chains, strict=True):
            if full_res == resolution:
                out.append(_crop(x, tuple(box), (0, 0)).to(torch.float32).contiguous())
                continue
            y = _crop(x, chain[2 * full_res].source, (0, 0))
            res = 2 * full_res
            while res <= resolution:
                block = getattr(self, f"b{res}")
                i = self.w_index[res]
                y = block.features_window(y, _rows(ws, i, block.num_conv, opts), chain[res], opts)
                res *= 2
            out.append(y.to(torch.float32).contiguous())
        return out

    def _windows(self, resolution: int, box: Box) -> dict[int, BlockWindow]:
        """The window of every block from ``b{resolution}`` down to b8 for one output box."""
        chain = {}
        res = resolution
        while res > 4:
            chain[res] = block_window(box, res)
            box = chain[res].source
            res //= 2
        return chain

    @staticmethod
    def _whole_from(chain: dict[int, BlockWindow], resolution: int) -> int:
        """The highest resolution (>= 4) at which the chain needs the whole map."""
        if resolution in chain and _is_whole(chain[resolution].out, resolution):
            return resolution
        res = resolution
        while res > 4 and not _is_whole(chain[res].source, res // 2):
            res //= 2
        return max(res // 2, 4)


def _is_whole(box: Box, size: int) -> bool:
    return tuple(box) == (0, 0, size, size)


def _rows(ws: torch.Tensor, first: int, count: int, opts: SynthesisOptions) -> list[torch.Tensor]:
    """Rows ``first ... first + count - 1`` of ws [N, num_ws, w_dim] as [N, w_dim] each; rows
    at or after ``opts.grad_ws`` detached (constants: their layers get no gradient work,
    e.g. no weight-gradient convolution of a fused modulated conv)."""
    limit = opts.grad_ws
    return [
        ws[:, j] if limit is None or j < limit else ws[:, j].detach()
        for j in range(first, first + count)
    ]
