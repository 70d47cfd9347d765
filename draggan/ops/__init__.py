"""Pure-PyTorch StyleGAN2 ops: FIR resampling, bias + activation, resampling conv, modulated conv.

Every op is plain PyTorch (no compiled extension) and reproduces the arithmetic of NVIDIA's
reference (non-CUDA) paths in stylegan2-ada-pytorch ``torch_utils/ops`` so float32 outputs
agree with official checkpoints' behaviour.
"""

from draggan.ops.bias_act import ACTIVATIONS, bias_act
from draggan.ops.conv2d_resample import conv2d_resample
from draggan.ops.modulated_conv import modulated_conv2d
from draggan.ops.upfirdn2d import setup_filter, upfirdn2d, upsample2d

__all__ = [
    "ACTIVATIONS",
    "bias_act",
    "conv2d_resample",
    "modulated_conv2d",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]
