"""Inversion metrics: MSE/PSNR/LPIPS values, LPIPS equal to the lpips package, dlib identity."""

import math

import lpips
import numpy as np
import pytest
import torch
from inversion_helpers import PHOTO, render
from PIL import Image

import inversion
from inversion.metrics import SAME_PERSON_DISTANCE, describe, identity_scores
from inversion.perceptual import Perceptual


def _photo(path, size=None) -> torch.Tensor:
    image = Image.open(path).convert("RGB")
    if size:
        image = image.resize(size, Image.LANCZOS)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_lpips_with_cached_features_equals_the_lpips_package():
    """The same operations as ``lpips.LPIPS.forward``; our input is channels_last, which may
    select another convolution kernel, so equal up to float32 rounding (bit-identical on
    the machines measured)."""
    perceptual = Perceptual("alex", "random")
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand(2, 3, 64, 64, generator=generator) * 2 - 1).unbind(0)
    reference = perceptual.model(a[None], b[None])  # lpips.LPIPS.forward
    assert isinstance(perceptual.model, lpips.LPIPS)
    torch.testing.assert_close(
        perceptual(a[None], b[None]), reference.flatten(), rtol=1e-5, atol=1e-8
    )
    assert float(reference) > 0
    assert float(perceptual(a[None], a[None])) == 0.0


def test_evaluate_values(tiny_generator):
    G = tiny_generator(32)
    ws, image = render(G, z_seed=0)
    same = inversion.evaluate(G, ws, image, perceptual_backbone="random")
    assert (same.mse, same.psnr, same.lpips) == (0.0, math.inf, 0.0)
    assert same.identity_distance is None
    assert same.identity_note == "dlib found no face in the target (32x32 px)"
    shifted = (image + 0.2).clamp(-1, 1)
    other = inversion.evaluate(G, ws, shifted, perceptual_backbone="random", identity=False)
    mse = float((image - shifted).square().mean())
    assert other.mse == pytest.approx(mse)
    assert other.psnr == pytest.approx(10 * math.log10(4 / mse))  # peak-to-peak 2
    assert other.lpips > 0 and other.to_dict()["lpips_net"] == "alex"


def test_identity_of_real_faces():
    hopper = _photo(PHOTO)
    distance, similarity, note = identity_scores(hopper, hopper)
    assert (distance, note) == (0.0, "") and similarity == pytest.approx(1.0)
    # The same face, degraded (downscaled and back): still the same person.
    _, _, height, width = hopper.shape
    blurred = _photo(PHOTO, (width // 3, height // 3))
    blurred = torch.nn.functional.interpolate(blurred, size=(height, width), mode="bilinear")
    distance, similarity, _ = identity_scores(blurred, hopper)
    assert 0 < distance < SAME_PERSON_DISTANCE and similarity > 0.9
    # Another person (the astronaut photo).
    astronaut = _photo(PHOTO.parent / "astronaut.png")
    distance, _, _ = identity_scores(astronaut, hopper)
    assert distance > SAME_PERSON_DISTANCE


def test_metrics_say_their_direction_and_threshold(tiny_generator):
    record = {
        "psnr": 17.0521,
        "lpips": 0.04487,
        "identity_distance": 0.6483,
        "identity_similarity": 0.8897,
    }
    assert describe(record) == (
        "PSNR 17.05 dB (higher better), LPIPS 0.045 (lower better), "
        "identity dist 0.648 (same person < 0.6)"
    )
    G = tiny_generator(32)
    ws, image = render(G, z_seed=0)
    metrics = inversion.evaluate(G, ws, image, perceptual_backbone="random")
    assert metrics.describe() == (
        "PSNR inf dB (higher better), LPIPS 0.000 (lower better), "
        "identity n/a (dlib found no face in the target (32x32 px))"
    )
    meaning = metrics.to_dict()["meaning"]  # the JSON record explains itself
    assert "higher is better" in meaning["psnr"] and "lower is better" in meaning["lpips"]
    assert "< 0.6 = the same person" in meaning["identity_distance"]
