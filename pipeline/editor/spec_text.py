"""Writing the editor's edits into a spec file, keeping every other character of it.

The spec loader records where each value and key was written (``Span``s of
``pipeline.spec.yaml_loader``), so changing a value is a splice: the text from the key to
the end of its old value is replaced by the new ``key: value``, and nothing else in the
file moves. A value that did not change is not touched at all (its comments stay). New keys
go on a line after the mapping's last value, new list items after the list's last item,
both at the indentation the file already uses there. Only what the editor changes loses
its inner comments.

After every change the new text is parsed again and compared with what was meant (the old
document with that one change); any difference (a layout this splicing cannot handle) is a
``SpecTextError``, never a wrong file.

Values are written in the style of ``examples/``: block mappings and lists of mappings,
flow style (``[x, y]``, ``{landmark: nose_tip}``) for short values; floats as Python's
shortest round-trip repr, so a value reads back bit for bit.

Chosen over a round-trip YAML library (ruamel.yaml): loading and dumping
``examples/spec_reference.yaml`` with it, even at the file's own indentation, moves a
comment that follows a merge key to a line of its own and rewrites ``[{landmark: chin},
...]`` as ``[landmark: chin, ...]``, and it re-indents a whole file whose indentation
differs from its settings; a splice changes only the value being edited.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pipeline.errors import PipelineError
from pipeline.spec.yaml_loader import LoadedYaml, Path_, Span, load_yaml, resolve_plain_scalar

WIDTH = 96  # flow values longer than this (with their indentation) are written as blocks
_PLAIN = re.compile(r"^[A-Za-z0-9_./~][A-Za-z0-9_./~ +-]*$")
_REMOVE = object()  # ``set_key`` value that removes the key


class SpecTextError(PipelineError):
    """The spec could not be changed in place (the message says what to do)."""


# Writing values ---------------------------------------------------------------------------
def scalar(value: Any) -> str:
    """A scalar as YAML 1.2 text that reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if resolve_plain_scalar(text) != value or not isinstance(resolve_plain_scalar(text), float):
            raise SpecTextError(f"cannot write the number {value!r} into a spec")
        return text
    if isinstance(value, str):
        if _PLAIN.match(value) and value == value.strip() and resolve_plain_scalar(value) == value:
            return value
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one
    raise SpecTextError(f"cannot write a {type(value).__name__} into a spec")


def flow(value: Any) -> str:
    """``value`` in flow style on one line."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def entry(key: str, value: Any, column: int) -> str:
    """``key: value`` for a mapping whose keys are at ``column``; the first line carries no
    indentation (it goes where the key starts), later lines carry their own."""
    head = f"{scalar(key)}:"
    short = column + len(head) + 1 + len(flow(value)) <= WIDTH
    if not isinstance(value, (dict, list, tuple)) or not value or (short and not _blocky(value)):
        return f"{head} {flow(value)}"
    inner = column + 2
    if isinstance(value, dict):
        return head + "".join(f"\n{' ' * inner}{entry(k, v, inner)}" for k, v in value.items())
    return head + "".join(f"\n{' ' * inner}- {item(v, inner + 2)}" for v in value)


def item(value: Any, column: int) -> str:
    """A list item's text after its ``- `` (content at ``column``)."""
    if isinstance(value, dict) and value:
        keys = list(value)
        lines = [entry(keys[0], value[keys[0]], column)]
        lines += [" " * column + entry(k, value[k], column) for k in keys[1:]]
        return "\n".join(lines)
    return flow(value)


def _blocky(value: Any) -> bool:
    """Whether ``value`` is written as a block even when short: lists of mappings."""
    return isinstance(value, (list, tuple)) and any(isinstance(v, dict) and v for v in value)


# Splicing ---------------------------------------------------------------------------------
class _Doc:
    """A spec's text with its parse; every change re-parses."""

    def __init__(self, text: str, file: str):
        self.file = file
        self.text = text
        self.loaded = self._parse(text)

    def _parse(self, text: str) -> LoadedYaml:
        loaded = load_yaml(text, self.file)
        if loaded.problems:
            first = loaded.problems[0]
            raise SpecTextError(
                f"{self.file}:{first.mark.line}:{first.mark.column}: {first.message}: fix the "
                "spec file before editing it"
            )
        if not isinstance(loaded.data, dict):
            raise SpecTextError(f"{self.file} is not a YAML mapping: fix it before editing it")
        return loaded

    @property
    def data(self) -> dict[str, Any]:
        return self.loaded.data

    def value(self, path: Path_) -> Any:
        node = self.data
        for part in path:
            node = node[part]
        return node

    def replace(self, start: int, end: int, new: str, expected: dict[str, Any]) -> None:
        text = self.text[:start] + new + self.text[end:]
        loaded = load_yaml(text, self.file)
        if loaded.problems or loaded.data != expected:
            raise SpecTextError(
                f"{self.file}: could not update the spec in place (its layout around line "
                f"{self.text.count(chr(10), 0, start) + 1} is unusual): make the change by hand"
            )
        self.text, self.loaded = text, loaded

    def span(self, path: Path_) -> Span:
        return self.loaded.spans[path]

    def line_end(self, index: int) -> int:
        end = self.text.find("\n", index)
        return len(self.text) if end < 0 else end

    def line_start(self, index: int) -> int:
        return self.text.rfind("\n", 0, index) + 1


def _owned(doc: _Doc, mapping: Path_, key: str) -> Span | None:
    """The span of ``key`` written in the mapping at ``mapping`` itself (None when absent or
    only merged in from an anchor elsewhere)."""
    key_span = doc.loaded.key_spans.get(mapping + (key,))
    outer = doc.span(mapping)
    if key_span is None or not outer.start <= key_span.start < outer.end:
        return None
    return key_span


def set_key(doc: _Doc, mapping: Path_, key: str, value: Any) -> bool:
    """Set (or with ``_REMOVE`` delete) ``key`` of the block mapping at ``mapping``; False
    when it cannot be done in place (a flow mapping, a key on a ``- `` line)."""
    data = doc.value(mapping)
    if value is not _REMOVE and key in data and data[key] == value:
        return True
    if value is _REMOVE and key not in data:
        return True
    outer = doc.span(mapping)
    if outer.flow:
        return False
    expected = copy.deepcopy(doc.data)
    target = expected
    for part in mapping:
        target = target[part]
    if value is _REMOVE:
        del target[key]
    else:
        target[key] = value
    key_span = _owned(doc, mapping, key)
    if key in data and key_span is None:
        return False
    if key_span is not None:
        value_end = doc.span(mapping + (key,)).end
        if value is _REMOVE:
            start = doc.line_start(key_span.start)
            if doc.text[start : key_span.start].strip():
                return False  # the key shares its line with a '- '
            end = doc.line_end(value_end)
            doc.replace(start, min(end + 1, len(doc.text)), "", expected)
        else:
            if "\n" in doc.text[key_span.start : value_end]:
                value_end = doc.line_end(value_end)  # a block's last comment goes with it
            doc.replace(key_span.start, value_end, entry(key, value, key_span.column), expected)
        return True
    column = _key_column(doc, mapping)
    at = doc.line_end(outer.end)
    doc.replace(at, at, "\n" + " " * column + entry(key, value, column), expected)
    return True


def _key_column(doc: _Doc, mapping: Path_) -> int:
    columns = [
        span.column
        for path, span in doc.loaded.key_spans.items()
        if len(path) == len(mapping) + 1 and path[:-1] == mapping
    ]
    return min(columns) if columns else doc.span(mapping).column


def append_item(doc: _Doc, sequence: Path_, value: Any) -> bool:
    """Append ``value`` to the list at ``sequence`` (block or flow style); False when that
    cannot be done in place (an empty block list)."""
    items = doc.value(sequence)
    outer = doc.span(sequence)
    expected = copy.deepcopy(doc.data)
    target = expected
    for part in sequence:
        target = target[part]
    target.append(value)
    if outer.flow:
        close = outer.end - 1  # the ']'
        doc.replace(close, close, (", " if items else "") + flow(value), expected)
        return True
    if not items:
        return False
    first = doc.span(sequence + (0,))
    line = doc.text[doc.line_start(first.start) : first.start]
    dash = line.rfind("-")
    if dash < 0:
        return False
    at = doc.line_end(outer.end)
    doc.replace(at, at, "\n" + " " * dash + "- " + item(value, dash + 2), expected)
    return True


def replace_item(doc: _Doc, path: Path_, value: Any) -> None:
    """Rewrite the list item at ``path`` whole (its inner comments are lost)."""
    span = doc.span(path)
    inside_flow = doc.span(path[:-1]).flow
    expected = copy.deepcopy(doc.data)
    target = expected
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    text = flow(value) if inside_flow else item(value, span.column)
    doc.replace(span.start, span.end, text, expected)


def _set_list_key(doc: _Doc, mapping: Path_, key: str, value: Any) -> None:
    """Append ``value`` to the list ``key`` of ``mapping``, creating or rewriting the key
    when appending in place cannot be done."""
    data = doc.value(mapping)
    current = data.get(key)
    if isinstance(current, list) and append_item(doc, mapping + (key,), value):
        return
    new = (list(current) if isinstance(current, list) else []) + [value]
    if not set_key(doc, mapping, key, new):
        raise SpecTextError(
            f"{doc.file}: could not add to '{key}' of the mapping at line "
            f"{doc.text.count(chr(10), 0, doc.span(mapping).start) + 1} (flow style): write it "
            "in block style"
        )


# What the editor changes ------------------------------------------------------------------
def _photo_path(doc: _Doc, photo_id: str) -> Path_:
    for i, photo in enumerate(doc.data.get("photos") or []):
        if isinstance(photo, dict) and photo.get("id") == photo_id:
            return ("photos", i)
    raise SpecTextError(f"{doc.file} has no photo with id {photo_id!r}")


def set_edit(text: str, photo_id: str, edit: dict[str, Any], file: str = "<spec>") -> str:
    """``text`` with the edit named ``edit['name']`` of photo ``photo_id`` set to ``edit``
    (spec form, as it would be written), added when the photo has no edit of that name."""
    doc = _Doc(text, file)
    photo = _photo_path(doc, photo_id)
    edits = doc.value(photo).get("edits")
    for j, old in enumerate(edits if isinstance(edits, list) else []):
        if isinstance(old, dict) and old.get("name") == edit["name"]:
            where = photo + ("edits", j)
            keys = list(edit) + [k for k in old if k not in edit]
            try:
                in_place = all(set_key(doc, where, key, edit.get(key, _REMOVE)) for key in keys)
            except SpecTextError:
                in_place = False
                doc = _Doc(text, file)
            if not in_place or doc.value(where) != edit:
                doc = _Doc(text, file)
                replace_item(doc, where, edit)
            return doc.text
    _set_list_key(doc, photo, "edits", edit)
    return doc.text


def set_photo_key(text: str, photo_id: str, key: str, value: Any, file: str = "<spec>") -> str:
    """``text`` with ``key`` of photo ``photo_id`` set to ``value`` (e.g. ``face: 1``)."""
    doc = _Doc(text, file)
    photo = _photo_path(doc, photo_id)
    if not set_key(doc, photo, key, value):
        raise SpecTextError(
            f"{file}: could not set '{key}' of photo {photo_id!r} in place: set it by hand"
        )
    return doc.text


def add_photo(text: str, photo: dict[str, Any], file: str = "<spec>") -> str:
    """``text`` with ``photo`` (spec form: id, path, ...) appended to ``photos:``."""
    doc = _Doc(text, file)
    _set_list_key(doc, (), "photos", photo)
    return doc.text


def new_spec(generator: str, photo: dict[str, Any]) -> str:
    """The text of a new spec for one photo."""
    return (
        "# dragpipe spec written by `dragpipe edit` (every option: examples/spec_reference.yaml)\n"
        f"{entry('generator', generator, 0)}\n"
        "photos:\n"
        f"  - {item(photo, 4)}\n"
    )
