"""Segments: stored rules selecting contacts or accounts, evaluated by the database.

A :class:`~crmkit.Segment` holds a rule, the output of ``expr.to_dict()`` for an
:data:`~crmkit.query.F` expression over its ``entity`` (``"contacts"`` or ``"accounts"``):

- a *dynamic* segment is evaluated each time it is read: ``crm.segments.members(id)`` pages
  through the matching records and ``crm.segments.count(id)`` counts them, both compiled to
  one database query like any ``find``; relative dates (``F.created_at.within_last(...)``)
  are relative to the moment of the query;
- a *static* segment keeps a snapshot: ``crm.segments.snapshot(id)`` evaluates the rule
  once and stores the member ids and the time taken (``member_ids``, ``snapshot_at``);
  ``members`` and ``count`` then read the snapshot (members deleted since are left out).

Rules may use related records (``F.related("interactions", F.kind == "email")``, see
:data:`crmkit.query.RELATIONS`): they are stored as ``{"related": ..., "where": ...}`` nodes
and evaluated in the same database query (a semi-join in SQL).

An empty rule selects every record. A rule is checked when it is evaluated (and by
:func:`segment_rule`, to check one before saving it): an unknown field, an operator the
field does not support or a bad value raises ``ValidationError`` whose field starts with
``segment.rule``. Storing a segment does not check its rule, so that rules written by other
versions or tools can always be read back and fixed.

Through a user's view (``crm.as_user(u).segments``) the segment itself must be readable,
members are the records of the segment that the user may read, related predicates see only
related records the user may read, and a rule using a field hidden from the user (in a
related filter too) raises ``PermissionDenied``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.entities import Account, Contact, Entity, Segment, SegmentKind
from crmkit.errors import ValidationError
from crmkit.permissions import ScopedRepository
from crmkit.query import Expr, F, OrderSpec, Page, bind, from_dict
from crmkit.repository import Repository, Verbs

if TYPE_CHECKING:
    pass

__all__ = [
    "SEGMENT_ENTITIES",
    "ScopedSegmentRepository",
    "SegmentOperations",
    "SegmentRepository",
    "segment_rule",
]

#: The collections a segment may select from, and their entity types.
SEGMENT_ENTITIES: dict[str, type[Entity]] = {"contacts": Contact, "accounts": Account}

#: Matches no record (every record has an id).
_NOTHING: Expr = ~F.id.exists()


def segment_rule(segment: Segment) -> tuple[type[Entity], Expr | None]:
    """The entity type a segment selects and its rule as an expression (``None``: all).

    The rule is checked against the entity type (fields, operators, values). Raises
    ``ValidationError`` naming ``segment.entity`` or ``segment.rule...``.

    >>> from crmkit.query import F
    >>> segment_rule(Segment(name="VIP", rule=F.tags.contains("vip").to_dict()))[0].__name__
    'Contact'
    """
    entity = SEGMENT_ENTITIES.get(segment.entity)
    if entity is None:
        raise ValidationError("segment.entity", segment.entity, "must be 'contacts' or 'accounts'")
    if not segment.rule:
        return entity, None
    try:
        expr = from_dict(segment.rule)
        bind(expr, entity)  # check fields, operators and values now, not in the backend
    except ValidationError as exc:
        raise exc.prefixed("segment.rule") from None
    return entity, expr


class SegmentOperations(Verbs[Segment]):
    """Segment verbs shared by the CRM's segment repository and a user's view of it: the
    records are read through the host's own repositories, so a view's are scoped."""

    def _selection(self, segment_id: str) -> tuple[Any, Expr | None]:
        segment = self.get(segment_id)
        entity, rule = segment_rule(segment)
        records = self._source().repository(entity)
        if segment.kind is SegmentKind.STATIC:
            ids = list(segment.member_ids)
            return records, (F.id.in_(ids) if ids else _NOTHING)
        return records, rule

    def members(
        self,
        segment_id: str,
        *,
        order_by: OrderSpec = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page:
        """One page of the segment's members and the cursor of the next page.

        Dynamic segments evaluate their rule in the database now; static ones read their
        snapshot. Paging is by keyset as in :meth:`crmkit.repository.Repository.page`: pass
        ``page.next_cursor`` as ``after``. Raises ``NotFound`` (unknown or unreadable
        segment), ``ValidationError`` (bad rule, order or cursor), ``PermissionDenied`` (a
        view and a rule or order on a hidden field).
        """
        records, where = self._selection(segment_id)
        page: Page = records.page(where, order_by=order_by, limit=limit, after=after)
        return page

    def iterate_members(self, segment_id: str, *, batch_size: int = 1000) -> Iterator[Any]:
        """Stream every member of the segment (ordered by id) in bounded memory, read in
        batches of ``batch_size``. Raises as :meth:`members` does."""
        records, where = self._selection(segment_id)
        members: Iterator[Any] = records.iterate(where, order_by="id", batch_size=batch_size)
        return members

    def member_count(self, segment_id: str) -> int:
        """How many records the segment has now (see :meth:`members`); one count query."""
        records, where = self._selection(segment_id)
        return int(records.count(where))

    def snapshot(self, segment_id: str) -> Segment:
        """Evaluate a static segment's rule and store its member ids and the time taken.

        Returns the updated segment. Raises ``ValidationError`` for a dynamic segment or a
        bad rule, ``NotFound``, ``ConflictError`` when the segment changed meanwhile.
        """
        segment = self.get(segment_id)
        if segment.kind is not SegmentKind.STATIC:
            raise ValidationError(
                "segment.kind",
                segment.kind.value,
                "is dynamic: only static segments keep a snapshot",
            )
        entity, rule = segment_rule(segment)
        crm = self._operations_crm()
        taken = crm.now()
        records = self._source().repository(entity)
        ids = tuple(r.id for r in records.iterate(rule, order_by="id"))
        return self.update(attrs.evolve(segment, member_ids=ids, snapshot_at=taken))


class SegmentRepository(Repository[Segment], SegmentOperations):
    """The segments repository: :class:`~crmkit.repository.Repository` plus
    :class:`SegmentOperations`. ``count(segment_id)`` counts a segment's members;
    ``count(expr)`` counts segments as in any repository."""

    def count(self, where: Expr | str | None = None) -> int:
        """Members of the segment with this id (a ``str``), or segments matching ``where``."""
        if isinstance(where, str):
            return self.member_count(where)
        return super().count(where)


class ScopedSegmentRepository(ScopedRepository[Segment], SegmentOperations):
    """Segments as one user sees them: members are the records the user may read."""

    def count(self, where: Expr | str | None = None) -> int:
        """Readable members of the segment with this id (a ``str``), or readable segments
        matching ``where``."""
        if isinstance(where, str):
            return self.member_count(where)
        return super().count(where)
