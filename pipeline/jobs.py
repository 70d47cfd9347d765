"""Jobs: the unit of work of a run, one stage result each.

A ``Job`` says everything about one piece of work without running it:

- ``photo`` and ``slot``: which photo it belongs to and its stable name within the photo
  ('align', 'invert-face0', 'edit-smile-face0', 'composite-smile'; the store keeps, per
  slot, the key material it last used, which is how ``status`` explains a change);
- ``label`` and ``what``: how progress lines and the summary table name it;
- ``task``: the stage's parameters (``AlignTask``, ``InvertTask``, ``EditTask``,
  ``CompositeTask`` in ``pipeline/stages/``): plain, picklable data (paths, configs, the
  spec's edit, and ``Ref``s to the upstream results it reads), with
  ``task.compute(ctx, pending, label)``, the function that computes the result;
- ``material``: the key material of its result (``KeyMaterial``; ``key`` is its hash).

A job holds no closures and no live objects, so it can be pickled and computed in another
process: given a ``StageContext`` opened on the same store (``StageContext.open``), the
job's result is ``pipeline.execute.run_job(ctx, job)``. A job's upstream results are named
by ``Ref`` (stage, key) in ``job.needs``; they must be in the store before it runs.

``pipeline.plan.JobGraph`` yields the jobs of a spec; ``pipeline.execute`` runs one job
(cached or computed) and judges whether it is cached, to be computed or stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pipeline.store import KeyMaterial, Pending, Ref, Store

if TYPE_CHECKING:
    from pipeline.stages.context import StageContext

Metrics = dict[str, Any]  # numbers recorded in the result's manifest (shown in summaries)
Info = dict[str, Any]  # other facts recorded in the manifest (warnings, formats, counts)


class Task(Protocol):
    """The stage-specific part of a job (a frozen dataclass in each stage module)."""

    STAGE: ClassVar[str]  # 'align' | 'invert' | 'edit' | 'composite'

    def material(self, store: Store) -> KeyMaterial:
        """The key material of the result (digests of user files come from ``store``)."""
        ...

    def needs(self) -> tuple[Ref, ...]:
        """The upstream results ``compute`` reads."""
        ...

    def compute(self, ctx: StageContext, pending: Pending, label: str) -> tuple[Metrics, Info]:
        """Write the result's files into ``pending``; return (metrics, info)."""
        ...


@dataclass(frozen=True)
class Job:
    """One stage result to obtain (see the module docstring)."""

    photo: str  # photo id
    slot: str  # stable name within the photo, e.g. 'edit-smile-face0'
    label: str  # for progress lines, e.g. 'hopper smile (face 1)'
    what: str  # for the summary table, e.g. 'smile (face 1)'
    task: Task
    material: KeyMaterial

    @property
    def stage(self) -> str:
        return self.material.stage

    @property
    def key(self) -> str:
        return self.material.key

    @property
    def ref(self) -> Ref:
        return Ref(self.stage, self.key)

    @property
    def needs(self) -> tuple[Ref, ...]:
        return self.task.needs()

    @classmethod
    def make(cls, photo: str, slot: str, label: str, what: str, task: Task, store: Store) -> Job:
        """A job for ``task``, its key material computed now (``store`` gives file digests)."""
        return cls(photo, slot, label, what, task, task.material(store))
