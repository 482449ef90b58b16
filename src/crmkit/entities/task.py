"""Tasks: follow-ups with a due time and an assignee."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity, Priority

__all__ = ["Task", "TaskStatus"]


class TaskStatus(enum.StrEnum):
    """Progress of a task."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


@attrs.frozen(kw_only=True)
class Task(Entity):
    """A follow-up to do, optionally linked to a contact, account, deal or ticket."""

    collection: ClassVar[str] = "tasks"

    title: str = f.text(required=True, max_length=500)
    description: str | None = f.text(sensitivity="personal")
    due_at: dt.datetime | None = f.timestamp()
    status: TaskStatus = f.choice(TaskStatus, default=TaskStatus.OPEN)
    priority: Priority = f.choice(Priority, default=Priority.NORMAL)
    assignee_id: str | None = f.ref()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    contact_id: str | None = f.ref()
    account_id: str | None = f.ref()
    deal_id: str | None = f.ref()
    ticket_id: str | None = f.ref()
    completed_at: dt.datetime | None = f.timestamp()
    completed_by: str | None = f.ref()
    custom: Any = f.mapping()
