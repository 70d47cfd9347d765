"""The generic machinery: a YAML section model built from any config dataclass, and merging."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.spec.sections import (
    apply_overrides,
    merge_overrides,
    section_model,
    section_overrides,
)
from pipeline.spec.yaml_loader import load_yaml, resolve_plain_scalar


@dataclass(frozen=True)
class Inner:
    size: int = 3
    name: str = "box"


@dataclass(frozen=True)
class Knobs:
    steps: int = 10
    rate: float = 1e-3
    flag: bool = False
    mode: str = "a"
    clamp: float | None = None
    taps: tuple[int, ...] = (1, 3, 3, 1)
    quality: str | int = "keep"
    where: Path = Path("out")
    inner: Inner = field(default_factory=Inner)
    hidden: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"Knobs.steps must be >= 1, got {self.steps}")


def test_every_init_field_is_an_optional_override():
    model = section_model(Knobs)
    assert list(model.model_fields) == [
        "steps", "rate", "flag", "mode", "clamp", "taps", "quality", "where", "inner",
    ]  # fmt: skip
    assert model.model_validate({}).model_dump(exclude_unset=True) == {}
    assert section_model(Knobs) is model  # built once


def test_values_are_validated_strictly():
    model = section_model(Knobs)
    ok = model.model_validate(
        {"steps": 5, "rate": 2, "clamp": None, "taps": [1, 2], "quality": 90, "inner": {"size": 4}}
    )
    assert section_overrides(ok) == {
        "steps": 5, "rate": 2.0, "clamp": None, "taps": (1, 2), "quality": 90, "inner": {"size": 4},
    }  # fmt: skip
    with pytest.raises(ValidationError) as info:
        model.model_validate(
            {"steps": 1.5, "rate": True, "flag": "yes", "mode": 3, "inner": {"sise": 1},
             "rate2": 1, "taps": [1.5]}
        )  # fmt: skip
    errors = {(e["loc"], e["type"]) for e in info.value.errors()}
    assert errors == {
        (("steps",), "int_type"),
        (("rate",), "float_type"),
        (("flag",), "bool_type"),
        (("mode",), "string_type"),
        (("inner", "sise"), "extra_forbidden"),
        (("rate2",), "extra_forbidden"),
        (("taps", 0), "int_type"),
    }
    with pytest.raises(ValidationError, match="finite"):
        model.model_validate({"rate": float("nan")})


def test_merge_and_apply_overrides_deeply():
    layers = [{"steps": 5, "inner": {"size": 4}}, {"inner": {"name": "cap"}}, {"steps": 7}]
    merged = merge_overrides(*layers)
    assert merged == {"steps": 7, "inner": {"size": 4, "name": "cap"}}
    knobs = apply_overrides(Knobs(), merged)
    assert knobs == Knobs(steps=7, inner=Inner(size=4, name="cap"))
    assert apply_overrides(Knobs(), {}) == Knobs()
    with pytest.raises(ValueError, match="Knobs.steps must be >= 1, got 0"):
        apply_overrides(Knobs(), {"steps": 0})


def test_section_model_refuses_a_non_dataclass():
    with pytest.raises(TypeError, match="needs a dataclass type"):
        section_model(dict)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 1e-3), ("2E+2", 200.0), (".5", 0.5), ("-3", -3), ("0x1f", 31), ("0o17", 15),
        ("~", None), ("null", None), ("", None), ("true", True), ("False", False),
        ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"),
        ("2021-01-05", "2021-01-05"), ("1:20", "1:20"), ("1_000", "1_000"), ("nose_tip", "nose_tip"),
    ],
)  # fmt: skip
def test_plain_scalars_follow_yaml_1_2_core(text, value):
    assert resolve_plain_scalar(text) == value and type(resolve_plain_scalar(text)) is type(value)


def test_reader_records_positions_merges_and_quoting():
    loaded = load_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\nq: 'yes'\nf: !!float 1\n")
    assert loaded.problems == []
    assert loaded.data["c"] == {"y": 3, "x": 1} and loaded.data["q"] == "yes"
    assert loaded.data["f"] == 1.0 and isinstance(loaded.data["f"], float)
    assert (loaded.mark_of(("c", "y")).line, loaded.mark_of(("c", "y")).column) == (4, 6)
    assert loaded.mark_of(("c", "x")).line == 1  # the merged value's own place
    assert loaded.mark_of(("c", "y"), key=True).column == 3
    assert loaded.source_text[("q",)] == "'yes'"


def test_reader_problems():
    loaded = load_yaml("a: 1\na: 2\n? [k]\n: v\nr: &r [*r]\nt: !!int x\n")
    found = [(p.mark.line, p.message) for p in loaded.problems]
    assert found == [
        (2, "duplicate key"),
        (3, "a mapping key must be a plain word"),
        (5, "recursive alias"),
        (6, "value does not match its tag tag:yaml.org,2002:int"),
    ]
