"""Pipelines and their ordered stages, for deals and for tickets."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity
from crmkit.errors import ValidationError

__all__ = ["Pipeline", "PipelineKind", "Stage", "StageKind", "TransitionPolicy"]


class StageKind(enum.StrEnum):
    """Whether a stage is still in progress, or a won or lost end."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class PipelineKind(enum.StrEnum):
    """Which records move through a pipeline."""

    DEALS = "deals"
    TICKETS = "tickets"


class TransitionPolicy(enum.StrEnum):
    """Which stage changes a pipeline allows: any, forward only, or an explicit graph."""

    ANY = "any"
    FORWARD_ONLY = "forward_only"
    GRAPH = "graph"


@attrs.frozen(kw_only=True)
class Stage:
    """One step of a pipeline.

    ``key`` identifies the stage inside its pipeline (``"proposal"``); ``probability``
    (0 to 1) weighs deals in forecasts; ``required_fields`` must be set on a record before
    it enters the stage; ``next`` lists allowed target keys under the ``graph`` policy.
    """

    key: str = f.ref(required=True)
    name: str = f.text(required=True, max_length=200)
    kind: StageKind = f.choice(StageKind, default=StageKind.OPEN)
    probability: Decimal | None = f.decimal(minimum=Decimal(0), maximum=Decimal(1))
    required_fields: tuple[str, ...] = f.text_list()
    next: tuple[str, ...] = f.ref_list()


@attrs.frozen(kw_only=True)
class Pipeline(Entity):
    """An ordered list of stages that deals (or tickets) move through."""

    collection: ClassVar[str] = "pipelines"

    name: str = f.text(required=True, max_length=200)
    kind: PipelineKind = f.choice(PipelineKind, default=PipelineKind.DEALS)
    stages: tuple[Stage, ...] = f.value_list(Stage)
    policy: TransitionPolicy = f.choice(TransitionPolicy, default=TransitionPolicy.ANY)
    lost_reasons: tuple[str, ...] = f.text_list()

    def __attrs_post_init__(self) -> None:
        if not self.stages:
            raise ValidationError("pipeline.stages", self.stages, "needs at least one stage")
        keys = [s.key for s in self.stages]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise ValidationError(f"pipeline.stages[{i}].key", key, "is used twice")
        for i, stage in enumerate(self.stages):
            for target in stage.next:
                if target not in keys:
                    raise ValidationError(
                        f"pipeline.stages[{i}].next", target, "is not a stage of this pipeline"
                    )

    def stage(self, key: str) -> Stage:
        """Return the stage with ``key``; raises :class:`crmkit.ValidationError` if absent."""
        for stage in self.stages:
            if stage.key == key:
                return stage
        raise ValidationError("stage", key, f"is not a stage of pipeline {self.name!r}")
