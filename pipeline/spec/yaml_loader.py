"""A YAML reader for spec files: positions for every node, no PyYAML 1.1 surprises.

PyYAML implements YAML 1.1, whose implicit types surprise people: ``1e-3`` is a string
(1.1 floats need a dot), ``no``/``yes``/``on``/``off`` are booleans, ``2021-01-05`` is a
date, ``1:20`` is a base-60 integer, and a duplicate key silently keeps the last value.
This reader composes the node tree with PyYAML and builds the values itself:

- plain (unquoted) scalars follow the YAML 1.2 core schema: ``null``/``~``/empty,
  ``true``/``false``, integers (``12``, ``0x1f``, ``0o17``), floats (``1e-3``, ``.5``,
  ``.inf``, ``.nan``); everything else, ``yes``/``no``/``on``/``off`` included, stays a string;
- quoted scalars are always strings;
- a duplicate key, a non-scalar key, a recursive alias or an unsupported tag is a problem;
- merge keys (``<<: *defaults``) work, explicit keys winning over merged ones.

Every value's position (1-based line and column) is recorded under its path, a tuple of
mapping keys and list indices, as is every mapping key's position and every scalar's text
as written, so validation errors can point at the file. ``spans`` and ``key_spans`` give
the character range each value and key was written in (a block collection's range ends
where its last value ends, before any comment), so the editor can rewrite one value of a
spec and leave every other character of the file as it was.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path_ = tuple[Any, ...]  # a node's path: mapping keys (str) and list indices (int)

_PLAIN_TAG = "tag:dragpipe:plain"  # marks an unquoted, untagged scalar
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MAX_NODES = 200_000  # alias expansion bomb guard

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE_RE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE_RE = re.compile(r"^(?:false|False|FALSE)$")
_INT10_RE = re.compile(r"^[-+]?[0-9]+$")
_INT8_RE = re.compile(r"^0o[0-7]+$")
_INT16_RE = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT_RE = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF_RE = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN_RE = re.compile(r"^\.(?:nan|NaN|NAN)$")


@dataclass(frozen=True)
class Mark:
    """A 1-based position in the file."""

    line: int
    column: int


@dataclass
class YamlProblem:
    """A problem found while reading (before any validation)."""

    path: Path_
    mark: Mark
    message: str
    got: str | None
    expected: str


@dataclass(frozen=True)
class Span:
    """Where a node was written: character offsets ``start`` .. ``end`` (exclusive) in the
    text, ``end`` being where its last value ends (comments and blank lines after a block
    collection are not part of it); ``flow``: written in flow style (``[..]``, ``{..}``) or
    as a scalar, ``column``: 0-based column of ``start``."""

    start: int
    end: int
    column: int
    flow: bool


@dataclass
class LoadedYaml:
    """The document's value plus where every part of it was written."""

    data: Any = None
    value_marks: dict[Path_, Mark] = field(default_factory=dict)
    key_marks: dict[Path_, Mark] = field(default_factory=dict)
    source_text: dict[Path_, str] = field(default_factory=dict)  # scalars as written
    problems: list[YamlProblem] = field(default_factory=list)
    spans: dict[Path_, Span] = field(default_factory=dict)  # values as written
    key_spans: dict[Path_, Span] = field(default_factory=dict)  # mapping keys as written

    def mark_of(self, path: Path_, *, key: bool = False) -> Mark:
        """Position of ``path`` (its key's position when ``key``), else of its nearest parent."""
        path = tuple(path)
        while True:
            if key and path in self.key_marks:
                return self.key_marks[path]
            if path in self.value_marks:
                return self.value_marks[path]
            if not path:
                return Mark(1, 1)
            path = path[:-1]


def resolve_plain_scalar(text: str) -> Any:
    """Value of an unquoted scalar under the YAML 1.2 core schema."""
    if _NULL_RE.match(text):
        return None
    if _TRUE_RE.match(text):
        return True
    if _FALSE_RE.match(text):
        return False
    if _INT10_RE.match(text):
        return int(text, 10)
    if _INT8_RE.match(text):
        return int(text[2:], 8)
    if _INT16_RE.match(text):
        return int(text[2:], 16)
    if _FLOAT_RE.match(text):
        return float(text)
    if _INF_RE.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN_RE.match(text):
        return math.nan
    return text


class _Composer(yaml.SafeLoader):
    """PyYAML's safe composer with every implicit resolver replaced by ``_PLAIN_TAG``."""

    def resolve(self, kind, value, implicit):  # noqa: D401 - PyYAML API
        if kind is ScalarNode and implicit[0]:
            return _PLAIN_TAG
        return super().resolve(kind, value, implicit)


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns a composed node tree into plain Python values, recording positions."""

    def __init__(self, out: LoadedYaml):
        self.out = out
        self.active: set[int] = set()  # nodes being built (recursive alias detection)
        self.count = 0

    def problem(self, path: Path_, node: Node, message: str, got: str | None, expected: str):
        self.out.problems.append(YamlProblem(path, _mark(node), message, got, expected))

    def build(self, node: Node, path: Path_) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            if self.count == _MAX_NODES + 1:
                self.problem(
                    path,
                    node,
                    "document too large (alias expansion?)",
                    None,
                    f"at most {_MAX_NODES} values",
                )
            return None
        if id(node) in self.active:
            self.problem(
                path, node, "recursive alias", "an alias inside its own anchor", "a finite document"
            )
            return None
        self.out.value_marks.setdefault(path, _mark(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ:
                    self._bad_tag(node, path)
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            if node.tag != _MAP:
                self._bad_tag(node, path)
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _bad_tag(self, node: Node, path: Path_) -> None:
        self.problem(
            path,
            node,
            "unsupported YAML tag",
            node.tag,
            "plain YAML without tags (!!str, !!int, !!float, !!bool, !!null at most)",
        )

    def _scalar(self, node: ScalarNode, path: Path_) -> Any:
        text = node.value
        if node.tag == _PLAIN_TAG:
            self.out.source_text[path] = text
            return resolve_plain_scalar(text)
        self.out.source_text[path] = repr(text)
        if node.tag == _STR:
            return text
        if node.tag in (_NULL, _BOOL, _INT, _FLOAT):
            value = resolve_plain_scalar(text)
            kind = {_NULL: type(None), _BOOL: bool, _INT: int, _FLOAT: (int, float)}[node.tag]
            if isinstance(value, kind) and not (node.tag == _INT and isinstance(value, bool)):
                return float(value) if node.tag == _FLOAT else value
            self.problem(
                path,
                node,
                f"value does not match its tag {node.tag}",
                repr(text),
                "a value of that type",
            )
            return None
        self._bad_tag(node, path)
        return None

    def _mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(
                    path,
                    key_node,
                    "a mapping key must be a plain word",
                    "a list or mapping as key",
                    "a key such as 'name'",
                )
                continue
            key = key_node.value
            if key == "<<" and key_node.tag in (_PLAIN_TAG, "tag:yaml.org,2002:merge"):
                merges.append(value_node)
                continue
            if key in first_line:
                self.problem(
                    path + (key,),
                    key_node,
                    "duplicate key",
                    repr(key),
                    f"each key once in a mapping (first at line {first_line[key]})",
                )
                continue
            first_line[key] = _mark(key_node).line
            self.out.key_marks.setdefault(path + (key,), _mark(key_node))
            result[key] = self.build(value_node, path + (key,))
        for merge_node in merges:
            sources = merge_node.value if isinstance(merge_node, SequenceNode) else [merge_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.problem(
                        path,
                        source,
                        "a merge key (<<) needs a mapping",
                        "a scalar or list",
                        "<<: *anchor_of_a_mapping",
                    )
                    continue
                for key, value in self._merged_items(source, path):
                    result.setdefault(key, value)
        return result

    def _merged_items(self, source: MappingNode, path: Path_):
        if id(source) in self.active:
            self.problem(
                path, source, "recursive alias", "a merge of its own anchor", "a finite document"
            )
            return []
        self.active.add(id(source))
        try:
            merged = self._mapping(source, path)
        finally:
            self.active.discard(id(source))
        return list(merged.items())


def load_yaml(text: str, source: str | Path = "<spec>") -> LoadedYaml:
    """Parse one YAML document; syntax and structure problems go to ``.problems``."""
    out = LoadedYaml()
    try:
        loader = _Composer(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        out.problems.append(
            YamlProblem(
                (),
                Mark(line, column),
                f"YAML syntax error: {what}",
                None,
                f"valid YAML in {source}",
            )
        )
        return out
    except yaml.YAMLError as exc:
        out.problems.append(
            YamlProblem((), Mark(1, 1), f"YAML error: {exc}", None, f"valid YAML in {source}")
        )
        return out
    if node is None:
        return out
    out.data = _Builder(out).build(node, ())
    if not out.problems:
        _record_spans(node, (), out, set())
    return out


def _record_spans(node: Node, path: Path_, out: LoadedYaml, active: set[int]) -> int:
    """Record the spans of ``node`` and its descendants; returns where ``node`` ends."""
    start = node.start_mark.index
    flow = isinstance(node, ScalarNode) or bool(node.flow_style)
    end = node.end_mark.index if flow else start
    if not isinstance(node, ScalarNode) and id(node) not in active:
        active.add(id(node))
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                end = max(end, _record_spans(item, path + (i,), out, active))
        else:
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, ScalarNode) else None
                if key is None or key == "<<":
                    end = max(end, _record_spans(value_node, path + ("<<",), out, active))
                    continue
                out.key_spans.setdefault(
                    path + (key,),
                    Span(
                        key_node.start_mark.index,
                        key_node.end_mark.index,
                        key_node.start_mark.column,
                        True,
                    ),
                )
                end = max(end, _record_spans(value_node, path + (key,), out, active))
        active.discard(id(node))
    out.spans.setdefault(path, Span(start, end, node.start_mark.column, flow))
    return end
