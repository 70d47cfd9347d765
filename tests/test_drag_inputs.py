"""Bad drag input is refused with one line before any synthesis; config and records
round-trip through dicts."""

from __future__ import annotations

import json

import pytest
import torch

import draggan
from draggan import DragConfig, DragganError, DragInputError, DragStep, drag

R = 16
NUM_WS = 8
W_DIM = 4


class Forbidden:
    """Stands for the synthesis network: any use fails the test."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("drag ran the generator before refusing its input")

    features_at = __call__


class NoSynthesis(torch.nn.Module):
    """Looks like a 16 px generator whose synthesis must never run."""

    def __init__(self) -> None:
        super().__init__()
        self.img_resolution = R
        self.num_ws = NUM_WS
        self.w_dim = W_DIM
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.synthesis = Forbidden()


def _ws() -> torch.Tensor:
    return torch.zeros(1, NUM_WS, W_DIM)


def _refused(match: str, **kwargs) -> str:
    args = dict(G=NoSynthesis(), ws=_ws(), handles=[[4, 4]], targets=[[8, 4]])
    args.update(kwargs)
    with pytest.raises(DragInputError, match=match) as info:
        drag(**args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_exports_and_error_class():
    assert draggan.drag is drag
    assert issubclass(DragInputError, DragganError)


def test_handle_outside_the_image():
    message = _refused(
        r"handles\[1\] = \(16, 3\) is outside", handles=[[4, 4], [16, 3]], targets=[[8, 4], [9, 9]]
    )
    assert "[0, 15]" in message


def test_target_outside_the_image():
    _refused(r"targets\[0\] = \(-1, 4\) is outside", targets=[[-1, 4]])


@pytest.mark.parametrize(
    "handles, match",
    [
        ([4, 4], r"handles must have shape \[K, 2\]"),
        ([[4, 4, 1]], r"handles must have shape \[K, 2\]"),
        ([], r"handles must have shape \[K, 2\]"),
        ([[float("nan"), 4]], "NaN"),
        ("abc", "handles must be a"),
    ],
)
def test_handles_of_the_wrong_shape(handles, match):
    _refused(match, handles=handles)


def test_mismatched_counts():
    _refused("2 handles but 1 targets", handles=[[4, 4], [5, 5]], targets=[[8, 4]])


@pytest.mark.parametrize(
    "mask, match",
    [
        (torch.ones(R, R + 1), r"mask must have shape \[16, 16\]"),
        (torch.ones(R * R), r"mask must have shape \[16, 16\]"),
        (torch.full((R, R), 2.0), r"mask values must be in \[0, 1\]"),
        (torch.zeros(R, R), "no pixel as movable"),
    ],
)
def test_bad_mask(mask, match):
    _refused(match, mask=mask)


def test_bad_ws():
    _refused(r"ws must have shape \[1, 8, 4\]", ws=torch.zeros(2, NUM_WS, W_DIM))
    _refused(r"ws must have shape \[1, 8, 4\]", ws=torch.zeros(1, W_DIM))
    _refused("ws must be a tensor", ws=[[0.0]])
    ws = _ws()
    ws[0, 1, 0] = 1.0
    _refused("w_plus=False", ws=ws, config=DragConfig(w_plus=False))


def test_layers_beyond_num_ws():
    _refused("layers is 9 but the generator has only 8 ws", config=DragConfig(layers=9))


def test_not_a_generator_or_config():
    _refused("G must be a draggan Generator", G=object())
    _refused("config must be a DragConfig", config={"mode": "fast"})
    _refused("callback must be callable", callback=3)


@pytest.mark.parametrize(
    "field, value",
    [
        ("mode", "exact"),
        ("lr", 0),
        ("r1", -1.0),
        ("stop_distance", 0.5),
        ("feature_resolution", 100),
        ("layers", 0),
        ("max_steps", -1),
        ("tracking_norm", "cosine"),
        ("render_every", 1.5),
        ("stall_steps", 0),
        ("w_plus", "yes"),
        ("noise_mode", "random"),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(DragInputError, match=f"DragConfig.{field}"):
        DragConfig(**{field: value})


def test_config_round_trip_and_resolution():
    config = DragConfig(mode="official", lr=2e-3, r1=4.0)
    assert DragConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(DragInputError, match="unknown DragConfig keys: speed"):
        DragConfig.from_dict({"speed": 1})
    at512 = DragConfig().resolve(512, 16)
    assert (at512.disc_radius, at512.window, at512.stop_distance) == (3, 12, 2.0)
    assert (at512.feature_resolution, at512.feature_index) == (128, 5)
    at1024 = DragConfig().resolve(1024, 18)
    assert (at1024.disc_radius, at1024.window, at1024.stop_distance) == (6, 24, 4.0)
    at256 = DragConfig().resolve(256, 14)
    assert (at256.r1, at256.disc_radius, at256.window) == (1.5, 2, 6)
    at64 = DragConfig().resolve(64, 10)  # official radii would round to 0 and 2
    assert (at64.feature_resolution, at64.feature_index) == (64, 4)
    assert (at64.r1, at64.disc_radius, at64.window, at64.stop_distance) == (1.0, 1, 2, 2.0)


def test_step_record_round_trip():
    record = DragStep(
        step=3,
        handles=((1.0, 2.0), (3.5, 4.0)),
        distances=(5.0, 0.5),
        loss_motion=0.25,
        loss_mask=0.0,
        loss=0.25,
        updated=True,
    )
    data = json.loads(json.dumps(record.to_dict()))
    assert data["handles"] == [[1.0, 2.0], [3.5, 4.0]]
    assert DragStep.from_dict(data) == record
