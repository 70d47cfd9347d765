"""``load_spec``: read, validate and cross-check a spec file, reporting every problem at once.

Order: YAML reading (syntax, duplicate keys, tags), schema validation (types, unknown keys,
landmark names), then checks across the document (unique photo ids and edit names,
``from:`` chains, referenced files) and finally the merge of every photo's and edit's stage
settings (the configs' own range checks). Problems of all phases are collected and raised
together as one ``SpecError``; nothing else happens before the spec is valid.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError

from draggan.errors import DragganError
from draggan.loading import JSON, PICKLE, SAFETENSORS, ZIP, sniff_format
from pipeline.alignment.landmarks_io import load_landmarks_json
from pipeline.errors import PipelineError
from pipeline.image_files import ImageFileError, check_image_file
from pipeline.spec.errors import Problem, SpecError
from pipeline.spec.models import Spec
from pipeline.spec.report import describe, format_path, validation_problems
from pipeline.spec.settings import (
    AlignSection,
    CompositeSection,
    DragSection,
    InvertSection,
    SettingsRejected,
    merge_settings,
)
from pipeline.spec.yaml_loader import LoadedYaml, Path_, load_yaml

EXTENSION_PREFIX = "x-"  # top-level keys ignored by validation (a home for YAML anchors)


class _Collector:
    """Problems of one spec file, located through the loaded YAML's positions."""

    def __init__(self, file: str, loaded: LoadedYaml):
        self.file = file
        self.loaded = loaded
        self.problems: list[Problem] = []

    def add(self, path: Path_, message: str, expected: str, got: Any = ..., key: bool = False):
        mark = self.loaded.mark_of(path, key=key)
        if got is ...:
            got = describe(self.loaded, path, _lookup(self.loaded.data, path))
        self.problems.append(
            Problem(self.file, mark.line, mark.column, format_path(path), message, got, expected)
        )

    def where(self, path: Path_) -> str:
        mark = self.loaded.mark_of(path)
        return f"{self.file}:{mark.line}:{mark.column}"


def _lookup(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def load_spec(path: str | Path, *, require_generator: bool = True) -> Spec:
    """The validated spec at ``path``; raises ``SpecError`` listing every problem.

    ``require_generator=False`` skips the check that the generator file exists (commands
    that never load it, such as ``clean``, and documentation tests); every other
    referenced file must exist.
    """
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(
            [
                Problem(
                    file,
                    1,
                    1,
                    "",
                    f"cannot read the spec file: {reason}",
                    repr(file),
                    "a readable UTF-8 YAML file",
                )
            ]
        ) from None
    return load_spec_text(text, path, require_generator=require_generator)


def load_spec_text(text: str, path: str | Path, *, require_generator: bool = True) -> Spec:
    """``load_spec`` of ``text`` as if it were the content of the file ``path`` (relative
    paths resolve against ``path``'s directory; problems name ``path``). The editor checks
    a spec it is about to write with this before writing it."""
    path = Path(path)
    file = str(path)
    loaded = load_yaml(text, file)
    found = _Collector(file, loaded)
    for p in loaded.problems:
        found.problems.append(
            Problem(
                file, p.mark.line, p.mark.column, format_path(p.path), p.message, p.got, p.expected
            )
        )
    data = loaded.data
    if not isinstance(data, dict):
        if not loaded.problems:
            found.add(
                (),
                "the spec is not a mapping" if data is not None else "empty spec",
                "a mapping with 'generator:' and 'photos:' keys",
                got=... if data is not None else None,
            )
        raise SpecError(found.problems)
    data = {k: v for k, v in data.items() if not k.startswith(EXTENSION_PREFIX)}
    base_dir = path.resolve().parent
    allowed: dict[int, list[str]] = {}
    spec = None
    try:
        spec = Spec.model_validate(data, context={"base_dir": base_dir, "allowed": allowed})
    except ValidationError as exc:
        found.problems.extend(validation_problems(exc, loaded, file, allowed))
    _check_names(data, found)
    _check_files(data, base_dir, found, require_generator)
    _check_settings(data, found)
    if found.problems:
        raise SpecError(_unique(found.problems))
    _locate(spec, path, found)
    return spec


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _dicts(value: Any) -> list[tuple[int, dict]]:
    return [(i, v) for i, v in enumerate(value)] if isinstance(value, list) else []


def _check_names(data: dict, found: _Collector) -> None:
    """Unique photo ids, unique edit names per photo, ``from:`` targets and no cycles."""
    seen_ids: dict[str, int] = {}
    for i, photo in _dicts(data.get("photos")):
        if not isinstance(photo, dict):
            continue
        photo_id = photo.get("id")
        if isinstance(photo_id, str):
            if photo_id in seen_ids:
                found.add(
                    ("photos", i, "id"),
                    "duplicate photo id",
                    f"a unique id (also used at line {seen_ids[photo_id]})",
                )
            else:
                seen_ids[photo_id] = found.loaded.mark_of(("photos", i, "id")).line
        edits = {}
        for j, edit in _dicts(photo.get("edits")):
            name = edit.get("name") if isinstance(edit, dict) else None
            if not isinstance(name, str):
                continue
            if name in edits:
                line = found.loaded.mark_of(("photos", i, "edits", edits[name], "name")).line
                found.add(
                    ("photos", i, "edits", j, "name"),
                    "duplicate edit name",
                    f"a name unique within this photo (also used at line {line})",
                )
            else:
                edits[name] = j
        _check_chains(photo, i, edits, found)


def _check_chains(photo: dict, i: int, edits: dict[str, int], found: _Collector) -> None:
    parents: dict[str, str] = {}
    for j, edit in _dicts(photo.get("edits")):
        if not isinstance(edit, dict) or not isinstance(edit.get("from"), str):
            continue
        parent, name = edit["from"], edit.get("name")
        where = ("photos", i, "edits", j, "from")
        if parent == name:
            found.add(where, "an edit cannot start from itself", "the name of another edit")
        elif parent not in edits:
            known = ", ".join(edits) or "none"
            found.add(
                where,
                "no edit of this photo has that name",
                f"the name of another edit of this photo ({known})",
            )
        elif isinstance(name, str):
            parents[name] = parent
    reported: set[str] = set()
    for start in parents:
        chain, node = [start], parents[start]
        while node in parents and node not in chain:
            chain.append(node)
            node = parents[node]
        if node in chain and node not in reported:
            cycle = chain[chain.index(node) :]
            reported.update(cycle)
            found.add(
                ("photos", i, "edits", edits[node], "from"),
                "chained edits form a cycle",
                "a chain that starts from an edit without 'from:'",
                got=" -> ".join([*cycle, node]),
            )


def _resolve(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _check_file(
    found: _Collector, where: Path_, base_dir: Path, what: str, image: bool = False
) -> Path | None:
    value = _lookup(found.loaded.data, where)
    if not isinstance(value, str) or not value.strip():
        return None
    path = _resolve(base_dir, value)
    if not path.is_file():
        state = "is a directory" if path.is_dir() else "does not exist"
        found.add(where, f"the {what} {path} {state}", f"an existing {what}")
        return None
    if image:
        try:
            check_image_file(path, what)
        except ImageFileError as exc:
            found.add(where, f"the {what} {path} {exc.reason}", f"a usable {what}: {exc.advice}")
            return None
    return path


def _check_generator(found: _Collector, base_dir: Path) -> None:
    """The generator file exists and its first bytes are a checkpoint format we read.

    Only the first bytes are read (a checkpoint is hundreds of MB); a file that passes and
    is damaged further in is reported when it is loaded.
    """
    where = ("generator",)
    path = _check_file(found, where, base_dir, "generator file")
    if path is None:
        return
    try:
        kind = sniff_format(path)
    except DragganError as exc:
        found.add(where, f"the generator file is unusable: {exc}", _CHECKPOINT_EXPECTED)
        return
    if kind not in (PICKLE, SAFETENSORS, JSON):
        what = "a torch.save archive" if kind == ZIP else "not a checkpoint dragpipe reads"
        found.add(where, f"the generator file {path} is {what}", _CHECKPOINT_EXPECTED)


_CHECKPOINT_EXPECTED = "an NVIDIA StyleGAN2 .pkl (PyTorch or TensorFlow) or a dragpipe .safetensors"


def _check_files(data: dict, base_dir: Path, found: _Collector, require_generator: bool):
    if require_generator:
        _check_generator(found, base_dir)
    for i, photo in _dicts(data.get("photos")):
        if not isinstance(photo, dict):
            continue
        _check_file(found, ("photos", i, "path"), base_dir, "photo", image=True)
        landmarks = _check_file(found, ("photos", i, "landmarks"), base_dir, "landmarks file")
        if landmarks is not None:
            _check_landmarks(landmarks, photo.get("face"), ("photos", i), found)
        for j, edit in _dicts(photo.get("edits")):
            mask = edit.get("mask") if isinstance(edit, dict) else None
            items = [(None, mask)] if isinstance(mask, dict) else _dicts(mask)
            for k, item in items:
                if isinstance(item, dict) and "png" in item:
                    where = ("photos", i, "edits", j, "mask") + (() if k is None else (k,))
                    _check_file(found, where + ("png",), base_dir, "mask image", image=True)


def _check_landmarks(path: Path, face: Any, where: Path_, found: _Collector) -> None:
    try:
        faces = load_landmarks_json(path)
    except PipelineError as exc:
        found.add(
            where + ("landmarks",),
            f"bad landmarks file: {exc}",
            'a JSON list of 68 [x, y] pairs or {"faces": [...]}',
        )
        return
    if isinstance(face, int) and not isinstance(face, bool) and face >= len(faces):
        found.add(
            where + ("face",),
            f"face index beyond the {len(faces)} face(s) of {path}",
            f"an index 0-{len(faces) - 1}, 'largest' or 'all'",
        )


def _locate(spec: Spec, path: Path, found: _Collector) -> None:
    """Give every model its position, for runtime errors that name the spec line."""
    spec._path = path
    for i, photo in enumerate(spec.photos):
        photo._where = found.where(("photos", i))
        for j, edit in enumerate(photo.edits):
            edit._photo_id = photo.id
            edit._where = found.where(("photos", i, "edits", j))
            for k, pair in enumerate(edit.points):
                pair._where = found.where(("photos", i, "edits", j, "points", k))


def _check_settings(data: dict, found: _Collector) -> None:
    """Merge every photo's and edit's stage settings so the configs' own checks run now.

    Works on the raw document, section by section, so a schema error elsewhere does not hide
    a rejected setting; sections that fail validation were reported already and are skipped.
    """
    top = _level(data, _PHOTO_SECTIONS)
    for i, photo in _dicts(data.get("photos")):
        if not isinstance(photo, dict):
            continue
        paths: list[Path_] = [(), ("photos", i)]
        levels = [top, _level(photo, _PHOTO_SECTIONS)]
        _settings_problems(levels, paths, found)
        for j, edit in _dicts(photo.get("edits")):
            if isinstance(edit, dict):
                _settings_problems(
                    levels + [_level(edit, _EDIT_SECTIONS)],
                    paths + [("photos", i, "edits", j)],
                    found,
                )


_PHOTO_SECTIONS = {
    "align": AlignSection,
    "invert": InvertSection,
    "drag": DragSection,
    "composite": CompositeSection,
}
_EDIT_SECTIONS = {"drag": DragSection, "composite": CompositeSection}


def _level(data: dict, sections: dict[str, type]) -> SimpleNamespace:
    """The sections of one level that validate on their own (others are None)."""
    level = SimpleNamespace()
    for name, model in sections.items():
        try:
            value = model.model_validate(data[name]) if data.get(name) is not None else None
        except ValidationError:
            value = None
        setattr(level, name, value)
    return level


def _settings_problems(levels: list[Any], paths: list[Path_], found: _Collector) -> None:
    try:
        merge_settings(levels)
    except SettingsRejected as exc:
        for p in exc.problems:
            section = paths[p.level] + p.section
            where = section + ((p.field,) if p.field else ())
            if where not in found.loaded.value_marks:
                where = section if section in found.loaded.value_marks else paths[p.level]
            found.add(
                where,
                f"rejected by the {'.'.join(p.section)} settings: {p.message}",
                "values the stage accepts (see its config's documentation)",
            )
