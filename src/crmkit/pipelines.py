"""Pipelines: the rules of moving deals (and tickets) from stage to stage, and their history.

The rules are a write hook of the CRM (see :class:`PipelineRules`), so they hold on every
write path: ``crm.deals.move(...)``, a plain ``crm.deals.update(...)``, ``add_many``, a
user's view. A deal whose ``pipeline_id`` names a stored pipeline is *governed*:

- its ``stage`` must be a stage of that pipeline (a new deal without one starts in the
  first stage);
- a stage change must be allowed by the pipeline's :class:`~crmkit.TransitionPolicy`:
  ``any`` stage, ``forward_only`` (to a later stage in the pipeline's order), or ``graph``
  (only to the stage keys listed in the current stage's ``next``). Moving a deal to
  another pipeline enters the new pipeline's stage without a policy check;
- the target stage's ``required_fields`` must be set (``amount``, ``close_date`` ...);
- entering a stage of kind ``lost`` needs a ``lost_reason``, one of the pipeline's
  ``lost_reasons`` when that list is not empty; leaving it clears the reason;
- on entry crmkit sets ``stage_entered_at``, ``probability`` (from the stage, when the
  stage has one), ``closed_at`` and ``cycle_time`` (won/lost stages; cleared on reopening),
  keeps ``expected_revenue = amount x probability`` up to date, records a
  :class:`~crmkit.entities.StageChange` and publishes
  :class:`~crmkit.events.DealStageChanged` after commit.

A broken rule raises :class:`~crmkit.TransitionError` naming what is missing or
forbidden, and nothing is written. A deal whose ``pipeline_id`` is empty or names no stored
pipeline (an import that arrives before its pipeline) is stored as given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.entities import (
    Deal,
    Money,
    Pipeline,
    PipelineKind,
    Stage,
    StageChange,
    StageKind,
    TransitionPolicy,
)
from crmkit.errors import NotFound, TransitionError
from crmkit.events import DealStageChanged
from crmkit.query import Expr, F
from crmkit.repository import Repository, Verbs

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = [
    "DealOperations",
    "DealRepository",
    "PipelineRules",
    "check_transition",
    "default_ticket_pipeline",
    "missing_fields",
]


def default_ticket_pipeline() -> Pipeline:
    """The status pipeline of tickets without a ``pipeline_id``: ``new``, ``open``,
    ``pending``, ``on_hold``, ``solved`` and ``closed`` (the last two end the ticket), any
    transition allowed."""
    return Pipeline(
        name="Support",
        kind=PipelineKind.TICKETS,
        stages=(
            Stage(key="new", name="New"),
            Stage(key="open", name="Open"),
            Stage(key="pending", name="Pending"),
            Stage(key="on_hold", name="On hold"),
            Stage(key="solved", name="Solved", kind=StageKind.WON),
            Stage(key="closed", name="Closed", kind=StageKind.WON),
        ),
    )


def _is_set(value: Any) -> bool:
    return value is not None and value != () and not (isinstance(value, Mapping) and not value)


def missing_fields(record: Any, stage: Stage) -> list[str]:
    """The ``required_fields`` of ``stage`` that ``record`` leaves empty (dotted paths such
    as ``custom.budget`` are looked up inside mappings and value objects)."""
    missing = []
    for path in stage.required_fields:
        value: Any = record
        for part in path.split("."):
            if value is None:
                break
            value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
        if not _is_set(value):
            missing.append(path)
    return missing


def check_transition(
    pipeline: Pipeline, source: str | None, target: str, record: Any, *, what: str = "deal"
) -> Stage:
    """Check that ``record`` may move from stage ``source`` (``None``: it is new or comes
    from another pipeline) to ``target`` of ``pipeline``; return the target stage.

    Raises :class:`~crmkit.TransitionError` for an unknown stage, a move the pipeline's
    policy forbids, required fields left empty, or a missing or unlisted lost reason.
    """
    label = f"{what} {getattr(record, 'name', None) or getattr(record, 'subject', None)!r}"
    keys = [s.key for s in pipeline.stages]
    if target not in keys:
        raise TransitionError(
            f"{label}: {target!r} is not a stage of pipeline {pipeline.name!r} "
            f"(stages: {', '.join(keys)})"
        )
    stage = pipeline.stage(target)
    if source is not None and source != target and source in keys:
        current = pipeline.stage(source)
        if pipeline.policy is TransitionPolicy.FORWARD_ONLY and keys.index(target) < keys.index(
            source
        ):
            raise TransitionError(
                f"{label}: moving from {source!r} back to {target!r} is forbidden "
                f"(pipeline {pipeline.name!r} only moves forward)"
            )
        if pipeline.policy is TransitionPolicy.GRAPH and target not in current.next:
            allowed = ", ".join(current.next) or "none"
            raise TransitionError(
                f"{label}: moving from {source!r} to {target!r} is forbidden in pipeline "
                f"{pipeline.name!r} (allowed from {source!r}: {allowed})"
            )
    missing = missing_fields(record, stage)
    if missing:
        raise TransitionError(
            f"{label} cannot enter stage {target!r}: missing {', '.join(missing)}"
        )
    if stage.kind is StageKind.LOST:
        reason = getattr(record, "lost_reason", None)
        if reason is None:
            listed = (
                f" (one of: {', '.join(pipeline.lost_reasons)})" if pipeline.lost_reasons else ""
            )
            raise TransitionError(
                f"{label} cannot enter lost stage {target!r}: a lost reason is required{listed}"
            )
        if pipeline.lost_reasons and reason not in pipeline.lost_reasons:
            raise TransitionError(
                f"{label}: lost reason {reason!r} is not one of: {', '.join(pipeline.lost_reasons)}"
            )
    return stage


class PipelineRules:
    """The deal rules of one CRM, as a write hook and an after-write hook.

    Registered by :class:`crmkit.CRM` for the ``deals`` collection; see the module
    documentation for what they enforce.
    """

    def __init__(self, crm: CRM) -> None:
        self._crm = crm

    def pipeline(self, pipeline_id: str | None, kind: PipelineKind) -> Pipeline | None:
        """The stored pipeline governing a record, or ``None``."""
        if pipeline_id is None:
            return None
        try:
            pipeline = self._crm.pipelines.get(pipeline_id)
        except NotFound:
            return None
        return pipeline if pipeline.kind is kind else None

    def __call__(self, entity: Any, previous: Any | None, /) -> Any:
        """The write hook: check and complete a deal's stage fields."""
        if not isinstance(entity, Deal):
            return entity
        pipeline = self.pipeline(entity.pipeline_id, PipelineKind.DEALS)
        if pipeline is None:
            return entity
        changes: dict[str, Any] = {}
        if entity.stage is None:
            changes["stage"] = pipeline.stages[0].key
            entity = attrs.evolve(entity, stage=pipeline.stages[0].key)
        assert entity.stage is not None
        source = _source(entity, previous)
        moved = previous is None or source != entity.stage
        if moved:
            stage = check_transition(pipeline, source, entity.stage, entity)
            now = entity.updated_at or self._crm.now()  # the write's time
            changes["stage_entered_at"] = now
            if stage.probability is not None:
                changes["probability"] = stage.probability
            if stage.kind is StageKind.OPEN:
                changes["closed_at"] = None
                changes["cycle_time"] = None
            else:
                changes["closed_at"] = now
                changes["cycle_time"] = now - (entity.created_at or now)
            if stage.kind is not StageKind.LOST:
                changes["lost_reason"] = None
        probability = changes.get("probability", entity.probability)
        amount = entity.amount
        expected = None
        if amount is not None and probability is not None:
            expected = Money(amount=amount.amount * probability, currency=amount.currency)
        changes["expected_revenue"] = expected
        if all(getattr(entity, k) == v for k, v in changes.items()):
            return entity
        return attrs.evolve(entity, **changes)

    def moved(self, stored: Any, previous: Any | None, /) -> bool:
        """Whether a stored deal may have changed stage (so history may need a record)."""
        if not isinstance(stored, Deal) or stored.stage is None or stored.pipeline_id is None:
            return False
        return previous is None or _source(stored, previous) != stored.stage

    def after_write(self, stored: Any, previous: Any | None, /) -> None:
        """The after-write hook: record the stage change and queue its event."""
        if not self.moved(stored, previous):
            return
        source = _source(stored, previous)
        if self.pipeline(stored.pipeline_id, PipelineKind.DEALS) is None:
            return
        record_change(self._crm, "deals", stored, previous, source, stored.stage)


def _source(entity: Any, previous: Any | None) -> str | None:
    """The stage a record moves from (``None`` when new or from another pipeline)."""
    if previous is None or previous.pipeline_id != entity.pipeline_id:
        return None
    stage: str | None = previous.stage if isinstance(previous, Deal) else previous.status
    return stage


def record_change(
    crm: CRM, collection: str, stored: Any, previous: Any | None, source: str | None, target: str
) -> StageChange:
    """Store the :class:`StageChange` of a deal or ticket and queue its event."""
    from crmkit.events import TicketStatusChanged

    at = stored.updated_at or crm.now()  # the time of the write that moved it
    entered = None if previous is None else getattr(previous, "stage_entered_at", None)
    if entered is None and previous is not None and source is not None:
        last = crm.stage_changes.first(
            (F.record_collection == collection) & (F.record_id == (stored.id or "")),
            order_by="-at",
        )
        entered = last.at if last is not None else previous.created_at
    change = crm.stage_changes.add(
        StageChange(
            record_collection=collection,
            record_id=stored.id,
            pipeline_id=stored.pipeline_id,
            from_stage=source,
            to_stage=target,
            at=at,
            by=crm.acting_user,
            reason=crm.acting_reason,
            time_in_previous=None
            if entered is None or source is None
            else max(at - entered, dt.timedelta(0)),
            owner_id=getattr(stored, "owner_id", None),
            team_id=getattr(stored, "team_id", None),
        )
    )
    if crm.listening:
        event_type = DealStageChanged if collection == "deals" else TicketStatusChanged
        crm.emit(
            event_type(
                collection=collection,
                entity_id=stored.id,
                at=at,
                actor=crm.acting_user,
                pipeline_id=stored.pipeline_id,
                from_stage=source,
                to_stage=target,
                record=stored,
                reason=crm.acting_reason,
            )
        )
    return change


# --- the deal verbs -----------------------------------------------------------------------


class DealOperations(Verbs[Deal]):
    """``move``, ``history`` and ``time_in_stages``: shared by the CRM's deal repository and
    a user's view of it (which checks permissions and audits through its own get/update)."""

    def move(
        self, deal_id: str, stage: str, *, by: str | None = None, reason: str | None = None
    ) -> Deal:
        """Move a deal to ``stage`` of its pipeline and return the stored deal.

        ``by`` is the acting user's id (a view defaults it to its user); ``reason`` is
        recorded in the history, and is the lost reason when ``stage`` is a lost stage.
        Raises :class:`~crmkit.TransitionError` (nothing changed) when the pipeline's rules
        forbid the move or the deal has no stored pipeline, ``NotFound``, ``ConflictError``.
        """
        crm = self._operations_crm()
        deal = self.get(deal_id)
        pipeline = crm.pipeline_rules.pipeline(deal.pipeline_id, PipelineKind.DEALS)
        if pipeline is None:
            raise TransitionError(
                f"deal {deal.name!r} is in no stored pipeline ({deal.pipeline_id!r}): "
                "set pipeline_id first"
            )
        keys = [s.key for s in pipeline.stages]
        if stage not in keys:
            raise TransitionError(
                f"deal {deal.name!r}: {stage!r} is not a stage of pipeline {pipeline.name!r} "
                f"(stages: {', '.join(keys)})"
            )
        changes: dict[str, Any] = {"stage": stage}
        if pipeline.stage(stage).kind is StageKind.LOST and reason is not None:
            changes["lost_reason"] = reason
        with crm.acting(by or self._default_actor(), reason=reason):
            return self.update(attrs.evolve(deal, **changes))

    def history(self, deal_id: str) -> list[StageChange]:
        """The deal's stage changes, oldest first (``NotFound`` if the deal is not readable)."""
        deal = self.get(deal_id)
        return self._operations_crm().stage_changes.find(
            (F.record_collection == "deals") & (F.record_id == (deal.id or "")),
            order_by=["at", "id"],
        )

    def time_in_stages(
        self, deal_id: str, *, at: dt.datetime | None = None
    ) -> dict[str, dt.timedelta]:
        """Total time the deal spent in each stage it entered, up to ``at`` (default now)."""
        changes = self.history(deal_id)
        end = at or self._operations_crm().now()
        out: dict[str, dt.timedelta] = {}
        for change, following in zip(changes, [*changes[1:], None], strict=True):
            until = end if following is None else min(following.at, end)
            spent = max(until - change.at, dt.timedelta(0))
            out[change.to_stage] = out.get(change.to_stage, dt.timedelta(0)) + spent
        return out

    def in_stage(self, pipeline_id: str, stage: str) -> Expr:
        """The filter selecting deals of ``pipeline_id`` in ``stage`` (for find/count)."""
        return (F.pipeline_id == pipeline_id) & (F.stage == stage)


class DealRepository(Repository[Deal], DealOperations):
    """The deals repository: :class:`Repository` plus :class:`DealOperations`."""
