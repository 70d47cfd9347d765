"""Spec section models generated from the stages' config dataclasses.

A stage's YAML section (``align:``, ``drag:``, ...) accepts exactly the fields of that
stage's config dataclass, each optional (an override), with the dataclass's own type:
``section_model(DragConfig)`` builds the pydantic model from ``dataclasses.fields`` and the
type hints, so a field added to a config is settable in YAML with no change here. Leaves are
validated strictly (``true`` is not a number, ``5`` is not a string, ``yes`` is not a
boolean); nested dataclasses become nested sections. ``apply_overrides`` merges what a
section set (``model_dump(exclude_unset=True)``) into a config instance; the dataclass's
``__post_init__`` still checks the combined values.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import enum
import functools
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    create_model,
    model_validator,
)
from pydantic.types import AllowInfNan

StrictBool = Annotated[bool, Strict()]
StrictInt = Annotated[int, Strict()]
StrictFloat = Annotated[float, Strict(), AllowInfNan(False)]  # ints accepted, nan/inf not
StrictStr = Annotated[str, Strict()]


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are errors, and their near misses are recorded.

    When validated with a context holding ``"allowed"`` (a dict), each mapping's allowed keys
    are stored under ``id(mapping)`` so the error report can say "did you mean ...".
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _record_allowed_keys(cls, data: Any, info: ValidationInfo) -> Any:
        context = info.context
        if isinstance(data, dict) and isinstance(context, dict) and "allowed" in context:
            context["allowed"][id(data)] = allowed_keys(cls)
        return data


def allowed_keys(model: type[BaseModel]) -> list[str]:
    """The YAML keys a model accepts (aliases where set), in declaration order."""
    return [info.alias or name for name, info in model.model_fields.items()]


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def yaml_type(tp: Any) -> Any:
    """The pydantic type that validates YAML values for a dataclass field of type ``tp``."""
    if tp is bool:
        return StrictBool
    if tp is int:
        return StrictInt
    if tp is float:
        return StrictFloat
    if tp is str:
        return StrictStr
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return section_model(tp)
    if isinstance(tp, type) and issubclass(tp, (Path, enum.Enum)):
        return tp
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return Annotated[(yaml_type(args[0]), *tp.__metadata__)]
    if origin in (Union, types.UnionType):
        return Union[tuple(yaml_type(a) for a in args)]  # noqa: UP007 - built at run time
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple[yaml_type(args[0]), ...]
        return tuple[tuple(yaml_type(a) for a in args)] if args else tuple
    if origin in (list, collections.abc.Sequence):
        return list[yaml_type(args[0])] if args else list
    if origin is dict:
        return dict[StrictStr, yaml_type(args[1])] if args else dict
    if origin is Literal:
        return tp
    return tp


@functools.cache
def section_model(config_type: type) -> type[SpecModel]:
    """A pydantic model with every init field of ``config_type`` as an optional override."""
    if not (isinstance(config_type, type) and dataclasses.is_dataclass(config_type)):
        raise TypeError(f"section_model needs a dataclass type, got {config_type!r}")
    hints = typing.get_type_hints(config_type, include_extras=True)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(config_type):
        if not f.init or f.name.startswith("_"):
            continue
        fields[f.name] = (
            yaml_type(hints[f.name]),
            Field(default=None, description=f"override of {config_type.__name__}.{f.name}"),
        )
    return create_model(
        f"{config_type.__name__}Section",
        __base__=SpecModel,
        __module__=__name__,
        __doc__=f"Overrides of {config_type.__module__}.{config_type.__name__}.",
        **fields,
    )


def section_overrides(section: BaseModel | None) -> dict[str, Any]:
    """The fields a section set explicitly, as nested dicts (empty for no section)."""
    if section is None:
        return {}
    return section.model_dump(exclude_unset=True)


def merge_overrides(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge override dicts, later layers winning (nested dicts merge key by key)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge_overrides(merged[key], value)
            else:
                merged[key] = value
    return merged


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """``config`` (a dataclass instance) with ``overrides`` applied; nested dataclasses merge.

    The dataclass's ``__init__``/``__post_init__`` runs on the result, so its own checks
    raise (usually ``ValueError``) on a bad combination.
    """
    if not overrides:
        return config
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        current = getattr(config, key)
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            changes[key] = apply_overrides(current, value)
        elif isinstance(value, dict) and current is None:
            nested = _dataclass_in(hints[key])
            changes[key] = nested(**value) if nested is not None else value
        else:
            changes[key] = value
    return dataclasses.replace(config, **changes)


def _dataclass_in(tp: Any) -> type | None:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None
