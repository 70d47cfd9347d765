"""Turn validation errors into located ``Problem``s: file:line:col, field path, got, expected."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from pipeline.spec.errors import Problem
from pipeline.spec.sections import did_you_mean
from pipeline.spec.yaml_loader import LoadedYaml, Path_

YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}
_PAIR_PARTS = {"handle": 0, "target": 1}

# pydantic error type -> (what was wrong, what was expected) where its own text is not enough.
_PLAIN = {
    "float_type": ("not a number", "a number"),
    "float_parsing": ("not a number", "a number"),
    "finite_number": ("not a finite number", "a finite number"),
    "int_type": ("not an integer", "an integer"),
    "int_parsing": ("not an integer", "an integer"),
    "int_from_float": ("not an integer", "an integer"),
    "bool_type": ("not a boolean", "true or false"),
    "bool_parsing": ("not a boolean", "true or false"),
    "list_type": ("not a list", "a list ('- item' lines or [a, b])"),
    "tuple_type": ("not a list", "a list ('- item' lines or [a, b])"),
    "dict_type": ("not a mapping", "a mapping of 'key: value' lines"),
    "model_type": ("not a mapping", "a mapping of 'key: value' lines"),
    "model_attributes_type": ("not a mapping", "a mapping of 'key: value' lines"),
    "dataclass_type": ("not a mapping", "a mapping of 'key: value' lines"),
    "point_form": ("not a point", "[x, y] or {landmark: NAME, offset: [dx, dy]}"),
    "mask_shape": ("unknown mask shape", "circle, ellipse or polygon (or {png: FILE})"),
    "mask_form": (
        "not a mask",
        "{png: FILE} or {shape: circle | ellipse | polygon, ...}",
    ),
}


def format_path(path: Path_) -> str:
    """``('photos', 0, 'edits', 1, 'name')`` -> ``photos[0].edits[1].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(loaded: LoadedYaml, path: Path_, value: Any) -> str:
    """A short rendering of the value at ``path`` as the user wrote it."""
    if path in loaded.source_text:
        return loaded.source_text[path] or "an empty value"
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:4]) + (", ..." if len(value) > 4 else "")
        return f"a mapping {{{keys}}}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return repr(value)


def _walk(data: Any, loc: tuple) -> tuple[Path_, Any, list]:
    """Follow ``loc`` through ``data``. Parts that name nothing in the data (union tags,
    a missing key) are skipped into ``rest``; the parts after them may still match."""
    path: list = []
    node = data
    rest: list = []
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and type(part) is int and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and len(node) == 2 and part in _PAIR_PARTS:
            path.append(_PAIR_PARTS[part])  # a point pair written as [HANDLE, TARGET]
            node = node[_PAIR_PARTS[part]]
        else:
            rest.append(part)
    return tuple(path), node, rest


def _walk_data(data: Any, path: Path_) -> Any:
    node = data
    for part in path:
        node = node[part]
    return node


def validation_problems(
    exc: ValidationError, loaded: LoadedYaml, file: str, allowed: dict[int, list[str]]
) -> list[Problem]:
    """One ``Problem`` per distinct error of ``exc`` (union alternatives merged)."""
    merged: dict[tuple, Problem] = {}
    for error in exc.errors(include_url=False):
        kind = error["type"]
        path, node, rest = _walk(loaded.data, tuple(error["loc"]))
        if kind == "missing":
            name = next((p for p in reversed(rest) if isinstance(p, str)), "?")
            mark = loaded.mark_of(path)
            problem = Problem(
                file,
                mark.line,
                mark.column,
                format_path(path + (name,)),
                "missing required key",
                None,
                f"a '{name}:' key here",
            )
        elif kind == "extra_forbidden":
            mark = loaded.mark_of(path, key=True)
            key = path[-1] if path else "?"
            parent = _walk_data(loaded.data, path[:-1]) if path else None
            choices = allowed.get(id(parent), [])
            hint = did_you_mean(str(key), choices)
            expected = f"one of: {', '.join(choices)}" if choices else "a known key"
            problem = Problem(
                file,
                mark.line,
                mark.column,
                format_path(path),
                f"unknown key{hint}",
                repr(key),
                expected,
            )
        else:
            if kind == "mask_form" and isinstance(node, dict) and "shape" in node:
                path, node, kind = path + ("shape",), node["shape"], "mask_shape"
            mark = loaded.mark_of(path)
            message, expected = _message(kind, error, node)
            problem = Problem(
                file,
                mark.line,
                mark.column,
                format_path(path),
                message,
                describe(loaded, path, node),
                expected,
            )
        key = (problem.field, kind == "missing", problem.message if kind == "missing" else "")
        if key in merged and kind not in ("missing", "extra_forbidden"):
            previous = merged[key]
            if problem.expected not in previous.expected.split(" or "):
                merged[key] = Problem(
                    previous.file,
                    previous.line,
                    previous.column,
                    previous.field,
                    previous.message,
                    previous.got,
                    f"{previous.expected} or {problem.expected}",
                )
        else:
            merged.setdefault(key, problem)
    return list(merged.values())


def _message(kind: str, error: dict, node: Any) -> tuple[str, str]:
    ctx = error.get("ctx") or {}
    if kind == "spec":
        return str(ctx["message"]), str(ctx["expected"])
    if kind in ("bool_type", "bool_parsing") and isinstance(node, str):
        if node.lower() in YAML11_BOOLEANS:
            return (
                "a YAML 1.1 yes/no word is a string here, not a boolean",
                "true or false",
            )
    if kind == "string_type" and not isinstance(node, (dict, list)):
        return "not a string", f"a string (quote it: '{node}')"
    if kind in ("too_short", "too_long"):
        word = "few" if kind == "too_short" else "many"
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        side = "at least" if kind == "too_short" else "at most"
        return f"too {word} items", f"{side} {bound} item{'s' if bound != 1 else ''}"
    if kind == "literal_error":
        return "not one of the choices", str(ctx.get("expected", error.get("msg")))
    if kind in _PLAIN:
        return _PLAIN[kind]
    text = str(error.get("msg", kind))
    for prefix in ("Input should be ", "Value should be "):
        if text.startswith(prefix):
            return "invalid value", text[len(prefix) :]
    return "invalid value", text
