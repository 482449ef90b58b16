"""Record shares and the audit log: who may see a record beyond its scope, and who changed it."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity
from crmkit.errors import ValidationError

__all__ = ["Access", "AuditAction", "AuditEntry", "Share"]


class Access(enum.StrEnum):
    """What a share allows: reading, or reading and updating."""

    READ = "read"
    WRITE = "write"


@attrs.frozen(kw_only=True)
class Share(Entity):
    """An explicit grant of one record to a user or a team, beyond their role's scope.

    Exactly one of ``user_id`` and ``team_id`` is set. ``access="write"`` also allows
    updating the record (never deleting it).
    """

    collection: ClassVar[str] = "shares"

    record_collection: str = f.ref(required=True)
    record_id: str = f.ref(required=True)
    user_id: str | None = f.ref()
    team_id: str | None = f.ref()
    access: Access = f.choice(Access, default=Access.READ)

    def __attrs_post_init__(self) -> None:
        if (self.user_id is None) == (self.team_id is None):
            raise ValidationError("share", None, "needs exactly one of user_id and team_id")


class AuditAction(enum.StrEnum):
    """The kind of write an audit entry records."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@attrs.frozen(kw_only=True)
class AuditEntry(Entity):
    """One write: which record, what happened, which fields changed, who did it and when."""

    collection: ClassVar[str] = "audit_log"

    record_collection: str = f.ref(required=True)
    record_id: str = f.ref(required=True)
    action: AuditAction = f.choice(AuditAction, required=True)
    changed: tuple[str, ...] = f.text_list(filterable=False)
    actor_id: str | None = f.ref()
    at: dt.datetime = f.timestamp(required=True)
    reason: str | None = f.text(max_length=2000)
    changes: Any = f.json_document()
