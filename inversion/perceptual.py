"""LPIPS (the ``lpips`` package) as a loss with cached target features.

``lpips.LPIPS.forward`` runs the backbone on both images every call; in an optimisation loop
the target never changes, so ``Perceptual`` splits the metric into ``features`` (run once for
the target) and ``distance`` (per step), with the same operations in the same order as
``lpips.LPIPS.forward`` (v0.1: scaling layer, backbone, unit-normalised channels, learned
1x1 weights, spatial mean, sum over layers), so values are identical.

The backbone's ImageNet weights are torchvision's, which torchvision would download on first
use. We never download: ``check_weights`` looks for the file first and raises
``PerceptualWeightsMissing`` naming it and where to put it.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from inversion.errors import InversionError, PerceptualWeightsMissing

# torchvision's ImageNet weight files for the LPIPS backbones, and where they come from.
WEIGHT_FILES = {
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "alex": (
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
}
RANDOM_BACKBONE_SEED = 0  # the 'random' backbone is the same network every time


def weights_path(net: str) -> Path:
    """Where torchvision looks for the backbone weights of ``net`` ('vgg' | 'alex')."""
    filename, _ = WEIGHT_FILES[net]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def check_weights(net: str, backbone: str) -> None:
    """Raise ``PerceptualWeightsMissing`` unless LPIPS-``net`` can be built without a download.

    ``backbone='random'`` needs no file (untrained backbone, for tests and offline demos).
    """
    if net not in WEIGHT_FILES:
        raise InversionError(f"lpips_net must be one of {sorted(WEIGHT_FILES)}, got {net!r}")
    if backbone == "random":
        return
    path = weights_path(net)
    if not path.is_file():
        filename, url = WEIGHT_FILES[net]
        raise PerceptualWeightsMissing(
            f"LPIPS-{net} needs torchvision's ImageNet weights {filename}, not found in "
            f"{path.parent}: download {url} into that folder (or set TORCH_HOME to a folder "
            f"whose hub/checkpoints/ holds it)"
        )


class Perceptual:
    """LPIPS distance on images in [-1, 1], with reusable features.

    ``distance(features(a), features(b))`` runs the operations of ``lpips.LPIPS(a, b)``
    (flattened to [N]) in the same order, on channels_last inputs (the network is kept
    channels_last): equal up to the convolution kernels' float32 rounding (tested to 1e-5
    relative; bit-identical where the same kernels are picked).
    The wrapped network is frozen (no parameter gradients) and in eval mode.
    """

    def __init__(self, net: str, backbone: str, device: torch.device | str = "cpu") -> None:
        check_weights(net, backbone)
        self.net_name = net
        self.backbone = backbone
        self.model = _load_lpips(net, backbone, str(torch.device(device)))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised backbone features, one [N, C_l, H_l, W_l] per layer.

        ``images``: [N, 3, H, W] in [-1, 1].
        """
        import lpips

        scaled = self.model.scaling_layer(images).contiguous(memory_format=torch.channels_last)
        return [lpips.normalize_tensor(out) for out in self.model.net(scaled)]

    def distance(self, feats0: list[torch.Tensor], feats1: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS distance [N] between two feature lists from ``features``."""
        total = 0
        for lin, f0, f1 in zip(self.model.lins, feats0, feats1, strict=True):
            total = total + lin((f0 - f1) ** 2).mean([2, 3], keepdim=True)
        return total.flatten()  # [N]

    def __call__(self, images0: torch.Tensor, images1: torch.Tensor) -> torch.Tensor:
        """LPIPS distance [N] between two image batches [N, 3, H, W] in [-1, 1]."""
        return self.distance(self.features(images0), self.features(images1))


def resize_for_loss(images: torch.Tensor, size: int) -> torch.Tensor:
    """Area-downsample [N, C, H, W] to [N, C, size, size] when larger (as NVIDIA's projector)."""
    if images.shape[-1] > size:
        return F.interpolate(images, size=(size, size), mode="area")
    return images


@functools.lru_cache(maxsize=4)
def _load_lpips(net: str, backbone: str, device: str) -> torch.nn.Module:
    """Build a frozen ``lpips.LPIPS`` (cached per process: building VGG16 takes a second)."""
    try:
        import lpips
    except ImportError as exc:  # torchvision missing or built against another torch
        raise InversionError(
            f"the lpips package cannot be imported ({exc}): reinstall torch and torchvision "
            "together ('pip install -U torch torchvision')"
        ) from exc
    with warnings.catch_warnings():
        # lpips passes torchvision's deprecated ``pretrained=`` argument.
        warnings.simplefilter("ignore", UserWarning)
        if backbone == "random":
            # Seeded, and without disturbing the caller's global RNG.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_BACKBONE_SEED)
                model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        else:
            model = lpips.LPIPS(net=net, pnet_rand=False, verbose=False)
    # channels_last: about 20-25% faster convolutions on CPU, same values up to rounding.
    return model.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)
