"""The crmkit error hierarchy.

Every public call raises one of these (or a plain ``TypeError`` for a programming
mistake such as a wrong argument count); no database driver exception escapes raw.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendError",
    "CRMError",
    "ConflictError",
    "NotFound",
    "PermissionDenied",
    "Suppressed",
    "TransitionError",
    "ValidationError",
]


class CRMError(Exception):
    """Base class of every error crmkit raises."""


class ValidationError(CRMError, ValueError):
    """A value is not acceptable; nothing was written.

    ``field`` names the offending field with a path (``contact.emails[1]``), ``value`` is
    the rejected value and ``reason`` says why in words a user can act on::

        contact.emails[1]: 'ada@' is not a valid email address (no domain after @)

    ``errors`` holds every problem when several were found at once (each a
    ``ValidationError``); a single error lists itself.
    """

    field: str
    value: Any
    reason: str

    def __init__(
        self,
        field: str,
        value: Any,
        reason: str,
        *,
        errors: list[ValidationError] | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        self.errors = errors if errors else [self]
        super().__init__(f"{field}: {value!r} {reason}" if field else f"{value!r} {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.reason))

    def prefixed(self, prefix: str) -> ValidationError:
        """Return a copy whose field path starts with ``prefix``.

        ``"contact"`` + ``"emails[1]"`` gives ``"contact.emails[1]"``.
        """
        field = f"{prefix}.{self.field}" if self.field else prefix
        return ValidationError(field, self.value, self.reason)


class Suppressed(ValidationError):
    """The email address or phone number belongs to an erased person and is suppressed:
    it may not be added to the CRM again (see :mod:`crmkit.privacy`)."""


class NotFound(CRMError, LookupError):
    """No record with that id exists (or the acting user may not know that it does)."""

    def __init__(self, entity: str, id: str) -> None:
        self.entity = entity
        self.id = id
        super().__init__(f"{entity} {id!r} not found")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.entity, self.id))


class ConflictError(CRMError):
    """A write was based on a stale version, or would break a uniqueness rule.

    Nothing was written.
    """


class PermissionDenied(CRMError):
    """The acting user may not do this; nothing was written."""


class TransitionError(CRMError):
    """A pipeline or status transition is not allowed, or its target's requirements are unmet."""


class BackendError(CRMError):
    """The storage backend failed (lost connection, locked database, driver error).

    The original driver exception is chained as ``__cause__``.
    """
