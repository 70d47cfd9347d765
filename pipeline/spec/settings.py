"""Stage sections of a spec and their merge into the libraries' config instances.

Sections (each optional, at the top of the spec and per photo; ``drag:`` and
``composite:`` per edit too):

    align:     fields of pipeline.alignment.AlignConfig
    invert:    preset: NAME (inversion.PROJECT_PRESETS), project: fields of
               inversion.ProjectConfig, tune: fields of inversion.TuneConfig
    drag:      fields of draggan.DragConfig
    composite: fields of pipeline.compositing.CompositeConfig

Precedence: the config's defaults, then the ``invert.preset`` named at the most specific
level (edit > photo > top) replaces the projection defaults, then every explicitly set
field, top-level first, then the photo's, then the edit's: an explicit field always wins
over a preset, and a more specific level over a less specific one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from draggan import DragConfig
from draggan.errors import DragganError
from inversion import PROJECT_PRESETS, ProjectConfig, TuneConfig
from pipeline.alignment import AlignConfig
from pipeline.compositing import CompositeConfig
from pipeline.errors import PipelineError
from pipeline.spec.sections import (
    SpecModel,
    apply_overrides,
    merge_overrides,
    section_model,
    section_overrides,
)

AlignSection = section_model(AlignConfig)
DragSection = section_model(DragConfig)
CompositeSection = section_model(CompositeConfig)
ProjectSection = section_model(ProjectConfig)
TuneSection = section_model(TuneConfig)
PresetName = Literal[tuple(PROJECT_PRESETS)]  # type: ignore[valid-type]


class InvertSection(SpecModel):
    """``invert:``: a named preset plus ``project:`` and ``tune:`` field overrides."""

    preset: PresetName | None = None
    project: ProjectSection | None = None
    tune: TuneSection | None = None


@dataclass(frozen=True)
class StageSettings:
    """The merged configs one photo (and edit) runs with."""

    align: AlignConfig
    project: ProjectConfig
    tune: TuneConfig
    drag: DragConfig
    composite: CompositeConfig


@dataclass(frozen=True)
class SettingsProblem:
    """A config that rejected its merged fields.

    ``section`` is the YAML section path (``("invert", "project")``), ``level`` the index
    into the merged levels (0 = top) that is blamed, ``field`` the field named in the
    config's message when one set in YAML is, else None.
    """

    section: tuple[str, ...]
    level: int
    field: str | None
    message: str


class SettingsRejected(ValueError):
    """Raised by ``merge_settings`` with every ``SettingsProblem`` found."""

    def __init__(self, problems: list[SettingsProblem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def _section_layers(levels: Sequence[Any], path: tuple[str, ...]) -> list[dict[str, Any]]:
    layers = []
    for level in levels:
        node: Any = level
        for name in path:
            node = getattr(node, name, None)
            if node is None:
                break
        layers.append(section_overrides(node) if node is not None else {})
    return layers


def _build(
    base: Any, levels: Sequence[Any], path: tuple[str, ...], problems: list[SettingsProblem]
) -> Any:
    layers = _section_layers(levels, path)
    try:
        return apply_overrides(base, merge_overrides(*layers))
    except (ValueError, TypeError, PipelineError, DragganError) as exc:
        message = str(exc) or type(exc).__name__
        field, level = None, max((i for i, layer in enumerate(layers) if layer), default=0)
        for i in reversed(range(len(layers))):
            named = [k for k in layers[i] if re.search(rf"\b{re.escape(k)}\b", message)]
            if named:
                field, level = named[0], i
                break
        problems.append(SettingsProblem(path, level, field, message))
        return base


def merge_settings(levels: Sequence[Any]) -> StageSettings:
    """Merge the sections of ``levels`` (top spec, photo, edit: objects with optional
    ``align``/``invert``/``drag``/``composite`` attributes) into ``StageSettings``.

    Raises ``SettingsRejected`` listing every config that refused the merged values.
    """
    preset = None
    for level in levels:
        invert = getattr(level, "invert", None)
        if invert is not None and invert.preset is not None:
            preset = invert.preset
    problems: list[SettingsProblem] = []
    project_base = ProjectConfig.preset(preset) if preset else ProjectConfig()
    settings = StageSettings(
        align=_build(AlignConfig(), levels, ("align",), problems),
        project=_build(project_base, levels, ("invert", "project"), problems),
        tune=_build(TuneConfig(), levels, ("invert", "tune"), problems),
        drag=_build(DragConfig(), levels, ("drag",), problems),
        composite=_build(CompositeConfig(), levels, ("composite",), problems),
    )
    if problems:
        raise SettingsRejected(problems)
    return settings
