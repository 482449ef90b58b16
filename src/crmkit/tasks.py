"""Tasks: follow-ups with due times; due, overdue and upcoming queries; completion records.

Completing a task, by :meth:`TaskOperations.complete` or by any update that sets its status
to ``done``, records ``completed_at`` (now) and ``completed_by`` (the acting user) unless
given; moving it back out of ``done`` clears both. The queries run in the database and
consider open tasks only (status ``open`` or ``in_progress``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.entities import Task, TaskStatus
from crmkit.errors import ValidationError
from crmkit.query import Expr, F
from crmkit.repository import Repository, Verbs

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = ["OPEN_STATUSES", "TaskOperations", "TaskRepository", "TaskRules"]

#: Statuses of a task still to do.
OPEN_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)


class TaskRules:
    """The write hook recording who completed a task and when."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm

    def __call__(self, entity: Any, previous: Any | None, /) -> Any:
        """Set or clear ``completed_at``/``completed_by`` when the status enters or leaves
        ``done`` (on update; a new task is stored as given)."""
        if not isinstance(entity, Task) or previous is None:
            return entity
        done, was_done = entity.status is TaskStatus.DONE, previous.status is TaskStatus.DONE
        if done and not was_done:
            return attrs.evolve(
                entity,
                completed_at=entity.completed_at or entity.updated_at or self._crm.now(),
                completed_by=entity.completed_by or self._crm.acting_user,
            )
        if was_done and not done and entity.status is not TaskStatus.CANCELLED:
            return attrs.evolve(entity, completed_at=None, completed_by=None)
        return entity


class TaskOperations(Verbs[Task]):
    """Task verbs shared by the CRM's task repository and a user's view of it."""

    def complete(self, task_id: str, *, by: str | None = None) -> Task:
        """Mark a task done, recording now and ``by`` (a view defaults it to its user).

        Raises ``NotFound``, ``ConflictError``; completing a done task changes nothing.
        """
        crm = self._operations_crm()
        task = self.get(task_id)
        if task.status is TaskStatus.DONE:
            return task
        with crm.acting(by or self._default_actor()):
            return self.update(attrs.evolve(task, status=TaskStatus.DONE))

    def _open(self, cond: Expr, assignee_id: str | None, where: Expr | None) -> list[Task]:
        cond = cond & F.status.in_([s.value for s in OPEN_STATUSES])
        if assignee_id is not None:
            cond = cond & (F.assignee_id == assignee_id)
        if where is not None:
            cond = cond & where
        return self.find(cond, order_by=["due_at", "id"])

    def due(
        self,
        until: dt.datetime | None = None,
        *,
        assignee_id: str | None = None,
        where: Expr | None = None,
    ) -> list[Task]:
        """Open tasks due at or before ``until`` (default now), overdue ones included."""
        until = until or self._operations_crm().now()
        return self._open(F.due_at <= until, assignee_id, where)

    def overdue(
        self,
        at: dt.datetime | None = None,
        *,
        assignee_id: str | None = None,
        where: Expr | None = None,
    ) -> list[Task]:
        """Open tasks whose due time is before ``at`` (default now), oldest first."""
        at = at or self._operations_crm().now()
        return self._open(F.due_at < at, assignee_id, where)

    def upcoming(
        self,
        within: dt.timedelta = dt.timedelta(days=7),
        *,
        at: dt.datetime | None = None,
        assignee_id: str | None = None,
        where: Expr | None = None,
    ) -> list[Task]:
        """Open tasks due from ``at`` (default now) up to, not including, ``at + within``."""
        if not isinstance(within, dt.timedelta) or within < dt.timedelta(0):
            raise ValidationError("within", within, "must be a non-negative timedelta")
        start = at or self._operations_crm().now()
        return self._open((F.due_at >= start) & (F.due_at < start + within), assignee_id, where)


class TaskRepository(Repository[Task], TaskOperations):
    """The tasks repository: :class:`Repository` plus :class:`TaskOperations`."""
