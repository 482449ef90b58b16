"""Permissions: roles, record scopes, teams, shares and field-level security.

A user's view of the CRM (``crm.as_user(user_id)``) has the same API as the CRM itself,
but every repository in it is a :class:`ScopedRepository`:

- reads add the user's scope to the filter, so the database does the filtering (counts,
  paging and streaming included) — nothing is filtered after loading;
- fields hidden from the user come back empty (``None``, ``()``, or the key left out of
  ``custom``) and may not be used to filter or sort (``PermissionDenied``);
- ``get`` of a record outside the scope raises ``NotFound``: the view does not reveal that
  the record exists;
- writes are checked against the scope before and after the change: a user cannot create,
  change or delete outside their scope, move a record into or out of someone else's
  scope, or set a hidden or read-only field (``PermissionDenied``, nothing written);
- every write through a view appends an :class:`~crmkit.entities.access.AuditEntry` with
  the acting user, in the same transaction.

The model, deny-by-default:

- a :class:`~crmkit.User` has roles (``role_ids``) and teams (``team_ids``); ``admin``
  grants everything; an inactive user is granted nothing;
- a :class:`~crmkit.Role` maps ``collection -> action -> scope`` with actions ``create``,
  ``read``, ``update``, ``delete`` and scopes ``none``, ``own`` (the record's ``owner_id``
  is the user), ``team`` (the record's ``team_id`` is one of the user's teams, or its owner
  is a member of one of them) and ``all``; it can hide fields and make fields read-only per
  collection (``hidden_fields={"contacts": ["phones", "custom.salary"]}``);
- several roles combine as the union of their grants: the widest scope wins, and a field
  stays hidden (or read-only) only if every role that lets the user read the collection
  hides it;
- a :class:`~crmkit.entities.access.Share` grants one record to a user or team (``read``,
  or ``write`` which also allows updating it).

Records of collections without an ``owner_id`` (pipelines, users, teams, roles) are only
visible with the ``all`` scope or a share.

Services (pipelines, dedupe, segments, reports, timeline, privacy ...) take their
repositories from the object they are given, so a service reached through a view works
within that view's permissions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import attrs

from crmkit.aggregation import Group, Metric
from crmkit.dedupe.snapshot import from_document, mask_snapshot, snapshot_ids
from crmkit.entities import (
    Account,
    AccountContact,
    CampaignMember,
    Contact,
    Deal,
    Entity,
    FrozenDict,
    Interaction,
    MergeRecord,
    Pipeline,
    Role,
    Task,
    Team,
    Ticket,
    User,
)
from crmkit.entities._base import _slot_names
from crmkit.entities._fields import EMPTY
from crmkit.entities.access import Access, Share
from crmkit.entities.history import StageChange
from crmkit.errors import NotFound, PermissionDenied, ValidationError
from crmkit.leads import LeadConverter
from crmkit.pipelines import DealOperations
from crmkit.query import (
    RELATIONS,
    And,
    Cond,
    Expr,
    F,
    Not,
    Or,
    Order,
    OrderSpec,
    Page,
    Related,
    map_related,
    related_nodes,
    relation,
    reusable,
)
from crmkit.reports import DealReports
from crmkit.repository import BulkResult, Rejected, Repository
from crmkit.tasks import TaskOperations
from crmkit.tickets import TicketOperations
from crmkit.timeline import Timeline

if TYPE_CHECKING:
    from crmkit.campaigns import ScopedCampaignRepository
    from crmkit.commerce import ScopedOrderRepository
    from crmkit.crm import CRM
    from crmkit.knowledge import ScopedArticleRepository
    from crmkit.segments import ScopedSegmentRepository

__all__ = [
    "Action",
    "Grants",
    "Scope",
    "ScopedDealRepository",
    "ScopedRepository",
    "ScopedTaskRepository",
    "ScopedTicketRepository",
]

E = TypeVar("E", bound=Entity)


class Scope(enum.IntEnum):
    """How many records a grant covers, narrowest first (so ``max`` is the union)."""

    NONE = 0
    OWN = 1
    TEAM = 2
    ALL = 3


class Action(enum.StrEnum):
    """What a user does to a record."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"


_SCOPE_NAMES = {s.name.lower(): s for s in Scope}
#: Matches no record at all (every record has an id).
NOTHING: Expr = ~F.id.exists()


def _scope(value: Any, where: str) -> Scope:
    if isinstance(value, str) and value.lower() in _SCOPE_NAMES:
        return _SCOPE_NAMES[value.lower()]
    raise ValidationError(where, value, "is not a scope (none, own, team, all)")


@attrs.frozen
class Grants:
    """What one user may do, combined from their roles (computed when a view is made)."""

    user: User
    scopes: Mapping[tuple[str, Action], Scope]
    hidden: Mapping[str, frozenset[str]]
    readonly: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, user: User, roles: Iterable[Role]) -> Grants:
        """Combine ``roles`` for ``user`` (union of grants; see the module docs)."""
        scopes: dict[tuple[str, Action], Scope] = {}
        hidden: dict[str, frozenset[str]] = {}
        readonly: dict[str, frozenset[str]] = {}
        for role in roles:
            for collection, actions in role.permissions.items():
                if not isinstance(actions, Mapping):
                    raise ValidationError(
                        f"role.permissions.{collection}", actions, "must map actions to scopes"
                    )
                for action_name, scope_name in actions.items():
                    try:
                        action = Action(action_name)
                    except ValueError:
                        raise ValidationError(
                            f"role.permissions.{collection}", action_name, "is not an action"
                        ) from None
                    scope = _scope(scope_name, f"role.permissions.{collection}.{action_name}")
                    key = (collection, action)
                    scopes[key] = max(scopes.get(key, Scope.NONE), scope)
        readers = list(roles)
        for collection in {c for c, _ in scopes}:
            granting = [
                r
                for r in readers
                if _scope(
                    r.permissions.get(collection, {}).get("read", "none"),
                    f"role.permissions.{collection}.read",
                )
                > Scope.NONE
            ] or readers
            hidden[collection] = _common(r.hidden_fields.get(collection, ()) for r in granting)
            readonly[collection] = _common(r.readonly_fields.get(collection, ()) for r in granting)
        if not user.active:
            # granted nothing, but its roles' hidden fields stay hidden: filtering on one
            # is refused the same way whether or not the account is active
            scopes = {}
        return cls(user, scopes, hidden, readonly)

    def scope(self, collection: str, action: Action) -> Scope:
        """The widest scope the user has for ``action`` on ``collection``."""
        if self.user.admin and self.user.active:
            return Scope.ALL
        return self.scopes.get((collection, action), Scope.NONE)

    def may_read(self, collection: str) -> bool:
        """Whether the user may read any record of ``collection``."""
        return self.scope(collection, Action.READ) > Scope.NONE

    def hidden_fields(self, collection: str) -> frozenset[str]:
        """Field paths the user may not see in ``collection``."""
        if self.user.admin:
            return frozenset()
        return self.hidden.get(collection, frozenset())

    def readonly_fields(self, collection: str) -> frozenset[str]:
        """Field paths the user may see but not change in ``collection``."""
        if self.user.admin:
            return frozenset()
        return self.readonly.get(collection, frozenset())


def _common(groups: Iterable[Iterable[str]]) -> frozenset[str]:
    sets = [frozenset(g) for g in groups]
    if not sets:
        return frozenset()
    out = sets[0]
    for s in sets[1:]:
        out &= s
    return out


def _covers(paths: frozenset[str], path: str) -> bool:
    """True if ``path`` is one of ``paths`` or lies inside / contains one of them."""
    return any(path == p or path.startswith(p + ".") or p.startswith(path + ".") for p in paths)


def _fields_of(expr: Expr | None) -> Iterator[str]:
    if expr is None:
        return
    if isinstance(expr, Cond):
        yield expr.field
    elif isinstance(expr, And | Or):
        for item in expr.items:
            yield from _fields_of(item)
    elif isinstance(expr, Not):
        yield from _fields_of(expr.item)


def _order_fields(order_by: OrderSpec) -> list[str]:
    if order_by is None:
        return []
    items = [order_by] if isinstance(order_by, str | Order) else list(order_by)
    return [(i.field if isinstance(i, Order) else str(i).lstrip("-+")) for i in items]


class ScopedRepository(Generic[E]):
    """A repository as seen by one user: same API as :class:`~crmkit.repository.Repository`.

    Raises ``PermissionDenied`` for a forbidden write or a filter/sort on a hidden field,
    and ``NotFound`` for records outside the user's read scope.
    """

    def __init__(self, view: UserView, base: Repository[E]) -> None:
        self._view = view
        self._base = base
        self.entity: type[E] = base.entity
        self._collection = base.entity.collection
        names = set(_slot_names(self.entity))
        self._has_owner = "owner_id" in names
        self._has_team = "team_id" in names
        # scope filters by action: fixed for the view's life (its user, roles and teams
        # are read once; shares are a subquery), so that every query reuses one expression
        self._scopes: dict[Action, Expr | None] = {}
        # the same, bound and passed through the query hooks (see _bound_scope)
        self._bound: dict[Action, Expr | None] = {}

    # --- the host of verb mixins (deals.move, tickets.breaching, ...) ------------------------

    def _operations_crm(self) -> CRM:
        return self._view.crm

    def _default_actor(self) -> str | None:
        return self._view.user.id

    def _source(self) -> Any:
        return self._view

    def __repr__(self) -> str:
        return f"<ScopedRepository {self._collection} as {self._view.user.id}>"

    # --- scope ---------------------------------------------------------------------------

    def _scope_filter(self, action: Action) -> Expr | None:
        """The filter selecting the records ``action`` may touch (None = all of them)."""
        if action in self._scopes:
            return self._scopes[action]
        scope = self._build_scope(action)
        if action is Action.CREATE or action is Action.DELETE or self._shares_in_query:
            self._scopes[action] = scope  # else it holds the ids shared right now
        return scope

    @property
    def _shares_in_query(self) -> bool:
        return "shares" in RELATIONS.get(self._collection, {})

    def _build_scope(self, action: Action) -> Expr | None:
        grants = self._view.grants
        if not self._view.user.active:
            return NOTHING
        scope = grants.scope(self._collection, action)
        if scope is Scope.ALL:
            return None
        parts: list[Expr] = []
        user_id = self._view.user.id or ""
        if scope is Scope.OWN and self._has_owner:  # the team's members include the user
            parts.append(F.owner_id == user_id)
        if scope >= Scope.TEAM and (self._has_owner or self._has_team):
            teams = list(self._view.user.team_ids)
            if teams and self._has_team:
                parts.append(F.team_id.in_(teams))
            members = self._view.team_members()
            if members and self._has_owner:
                parts.append(F.owner_id.in_(sorted(members)))
        if action in (Action.READ, Action.UPDATE):
            write = action is Action.UPDATE
            if self._shares_in_query:
                # the grants are a subquery of the same statement (one round trip)
                parts.append(Related("shares", self._view.shares_filter(self._collection, write)))
            else:
                shared = self._view.shared_ids(self._collection, write=write)
                if shared:
                    parts.append(F.id.in_(sorted(shared)))
        if not parts:
            return NOTHING
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def _allows(self, entity: E, action: Action) -> bool:
        """The same rule as :meth:`_scope_filter`, for one record in hand."""
        grants = self._view.grants
        if not self._view.user.active:
            return False
        scope = grants.scope(self._collection, action)
        if scope is Scope.ALL:
            return True
        user_id = self._view.user.id
        owner = getattr(entity, "owner_id", None) if self._has_owner else None
        team = getattr(entity, "team_id", None) if self._has_team else None
        if scope >= Scope.OWN and owner is not None and owner == user_id:
            return True
        if scope >= Scope.TEAM and (
            (team is not None and team in self._view.user.team_ids)
            or (owner is not None and owner in self._view.team_members())
        ):
            return True
        if action in (Action.READ, Action.UPDATE) and entity.id is not None:
            return entity.id in self._view.shared_ids(
                self._collection, write=action is Action.UPDATE
            )
        return False

    def _restrict(self, where: Expr | None, action: Action = Action.READ) -> Expr | None:
        where = self._checked(where)
        scope = self._scope_filter(action)
        if scope is None:
            return where
        return scope if where is None else where & scope

    def _checked(self, where: Expr | None) -> Expr | None:
        """``where`` without the scope: hidden fields refused, related filters scoped."""
        hidden = self._view.grants.hidden_fields(self._collection)
        for path in _fields_of(where) if hidden else ():
            if _covers(hidden, path):
                raise PermissionDenied(f"{self._collection}.{path} is hidden from this user")
        return self._restrict_related(where, hidden)

    def _bound_scope(self, action: Action) -> Expr | None:
        """The scope filter of ``action`` as the base repository binds it (checked, values
        converted, query hooks applied), kept while the scope itself is kept: a lookup then
        binds only the caller's filter, and the compiler finds the scope's SQL, memoized,
        by identity (binding and rewriting it on every call cost more than the SQL)."""
        if action in self._bound:
            return self._bound[action]
        scope = self._scope_filter(action)
        bound = None if scope is None else self._base._where(scope)
        if action in self._scopes and (bound is None or reusable(bound)):
            self._bound[action] = bound
        return bound

    def _find(
        self, where: Expr | None, order_by: OrderSpec, limit: int | None, offset: int
    ) -> list[E]:
        """The readable records matching ``where``: the base repository's query with the
        scope bound once per view (see :meth:`_bound_scope`)."""
        base = self._base
        scope = self._bound_scope(Action.READ)
        return base._store.find(
            base._query(self._checked(where), order_by, limit, offset, scope=scope)
        )

    def _restrict_related(self, where: Expr | None, hidden: frozenset[str]) -> Expr | None:
        """``F.related`` nodes look only at related records this user may read, and their
        filters (and links) may not use fields hidden from the user."""
        if next(related_nodes(where), None) is None:
            return where

        def restrict(node: Related) -> Expr:
            rel = relation(self._collection, node.relation)
            other: ScopedRepository[Any] = self._view.repository(rel.target)
            link_hidden = hidden if rel.belongs else other._view.grants.hidden_fields(rel.target)
            if _covers(link_hidden, rel.field):
                owner = self._collection if rel.belongs else rel.target
                raise PermissionDenied(f"{owner}.{rel.field} is hidden from this user")
            measured = None if node.aggregate is None else node.aggregate.path
            if measured is not None and _covers(
                other._view.grants.hidden_fields(rel.target), measured
            ):
                raise PermissionDenied(f"{rel.target}.{measured} is hidden from this user")
            # an aggregate counts or sums only the related records the user may read
            return Related(node.relation, other._restrict(node.where), node.aggregate)

        return map_related(where, restrict)

    def _check_order(self, order_by: OrderSpec) -> None:
        hidden = self._view.grants.hidden_fields(self._collection)
        for path in _order_fields(order_by) if hidden else ():
            if _covers(hidden, path):
                raise PermissionDenied(f"{self._collection}.{path} is hidden from this user")

    # --- masking -------------------------------------------------------------------------

    def _mask(self, entity: E) -> E:
        hidden = self._view.grants.hidden_fields(self._collection)
        masked = mask(entity, hidden) if hidden else entity
        if isinstance(masked, MergeRecord):  # its snapshots hold the merged records
            snapshot = self._view.mask_snapshot(masked.snapshot, masked.record_collection)
            if snapshot is not masked.snapshot:
                masked = attrs.evolve(masked, snapshot=snapshot)
        return masked

    # --- reads ---------------------------------------------------------------------------

    def get(self, id: str) -> E:
        """The record, if the user may read it; otherwise ``NotFound``."""
        found = self._find(F.id == id, None, 1, 0)
        if not found:
            raise NotFound(self._collection, id)
        return self._mask(found[0])

    def get_many(self, ids: Iterable[str]) -> list[E]:
        """The readable records among ``ids``, in the order given."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        found = {e.id: e for e in self._find(F.id.in_(wanted), None, None, 0)}
        return [self._mask(found[i]) for i in wanted if i in found]

    def find(
        self,
        where: Expr | None = None,
        *,
        order_by: OrderSpec = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[E]:
        """Readable records matching ``where`` (see :meth:`Repository.find`)."""
        self._check_order(order_by)
        rows = self._find(where, order_by, limit, offset)
        if self.entity is MergeRecord:  # and their snapshots (see _mask)
            return [self._mask(e) for e in rows]
        hidden = self._view.grants.hidden_fields(self._collection)
        return [mask(e, hidden) for e in rows] if hidden else rows

    def first(self, where: Expr | None = None, *, order_by: OrderSpec = None) -> E | None:
        """The first readable record matching ``where``, or ``None``."""
        found = self.find(where, order_by=order_by, limit=1)
        return found[0] if found else None

    def page(
        self,
        where: Expr | None = None,
        *,
        order_by: OrderSpec = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page:
        """One page of readable records (see :meth:`Repository.page`)."""
        self._check_order(order_by)
        scope = self._bound_scope(Action.READ)
        page = self._base._page(self._checked(where), order_by, limit, after, scope=scope)
        return Page(tuple(self._mask(e) for e in page.items), page.next_cursor)

    def iterate(
        self, where: Expr | None = None, *, order_by: OrderSpec = None, batch_size: int = 1000
    ) -> Iterator[E]:
        """Stream readable records in bounded memory."""
        self._check_order(order_by)
        scope = self._bound_scope(Action.READ)
        rows = self._base._iterate(self._checked(where), order_by, batch_size, scope=scope)
        return (self._mask(e) for e in rows)

    def count(self, where: Expr | None = None) -> int:
        """How many readable records match ``where``."""
        base = self._base
        scope = self._bound_scope(Action.READ)
        return base._store.count(base._where(self._checked(where), scope=scope))

    def exists(self, where: Expr | None = None) -> bool:
        """True when a readable record matches ``where``."""
        return bool(self.find(where, limit=1))

    def aggregate(
        self,
        where: Expr | None = None,
        *,
        group_by: Sequence[Group | str] = (),
        metrics: Sequence[Metric] = (Metric.count(),),
    ) -> list[dict[str, Any]]:
        """Groups and metrics of the readable records (see :meth:`Repository.aggregate`);
        grouping by or measuring a hidden field raises ``PermissionDenied``."""
        hidden = self._view.grants.hidden_fields(self._collection)
        paths = [g if isinstance(g, str) else g.path for g in group_by]
        paths += [m.path for m in metrics if isinstance(m, Metric) and m.path is not None]
        for path in paths:
            if _covers(hidden, path):
                raise PermissionDenied(f"{self._collection}.{path} is hidden from this user")
        scope = self._bound_scope(Action.READ)
        return self._base._aggregate(self._checked(where), group_by, metrics, scope=scope)

    # --- writes --------------------------------------------------------------------------

    def _deny(self, message: str) -> PermissionDenied:
        return PermissionDenied(f"{self._view.user.name} ({self._view.user.id}): {message}")

    def _check_new(self, entity: E) -> E:
        blocked = self._view.grants.hidden_fields(
            self._collection
        ) | self._view.grants.readonly_fields(self._collection)
        if blocked:  # what the caller set; the owner filled in below is the view's own
            default = _defaults(self.entity)
            for path in blocked:
                if _path_value(entity, path) != _path_value(default, path):
                    raise self._deny(f"may not set {self._collection}.{path}")
        if self._has_owner and getattr(entity, "owner_id", None) is None:
            entity = _replace(entity, {"owner_id": self._view.user.id})
        if not self._allows(entity, Action.CREATE):
            raise self._deny(f"may not create this record in {self._collection}")
        return entity

    def add(self, entity: E | Mapping[str, Any], *, keep_id: bool = False) -> E:
        """Create a record in the user's scope (owner defaults to the user); ``keep_id`` as
        in :meth:`Repository.add`."""
        checked = self._check_new(self._base._build(entity))
        with self._view.transaction():
            stored = self._base.add(checked, keep_id=keep_id)  # audited, as this user
        return self._mask(stored)

    def add_many(
        self,
        entities: Iterable[E | Mapping[str, Any]],
        *,
        batch_size: int = 1000,
        on_error: Literal["raise", "collect"] = "raise",
        keep_ids: bool = False,
    ) -> BulkResult[E]:
        """Create many records, all or nothing with respect to permissions (``keep_ids`` as
        in :meth:`Repository.add_many`).

        A row the user may not create raises ``PermissionDenied`` and nothing is written,
        whatever ``on_error`` says; invalid rows follow ``on_error`` as in
        :meth:`Repository.add_many`.
        """
        ready: list[E] = []
        items: list[tuple[int, Any]] = []  # the index and item each of ``ready`` came from
        rejected: list[Rejected] = []
        for index, item in enumerate(entities):
            try:
                ready.append(self._check_new(self._base._build(item)))
            except ValidationError as exc:
                if on_error == "raise":
                    raise
                rejected.append(Rejected(index, item, tuple(exc.errors)))
            else:
                items.append((index, item))
        with self._view.transaction():
            result = self._base.add_many(
                ready, batch_size=batch_size, on_error=on_error, keep_ids=keep_ids
            )
        # the base call's rejections name positions in ``ready``: turned back into the caller's
        for r in result.rejected:
            index, item = items[r.index]
            rejected.append(Rejected(index, item, r.errors))
        rejected.sort(key=lambda r: r.index)
        return BulkResult([self._mask(e) for e in result.added], rejected)

    def update(self, entity: E) -> E:
        """Change a record the user may update, keeping it in their scope.

        Hidden fields keep their stored values (the user's copy has them masked); changing a
        hidden or read-only field, or moving the record out of the user's update scope,
        raises ``PermissionDenied``.
        """
        if entity.id is None:
            raise ValidationError(f"{self.entity.__name__.lower()}.id", None, "is required")
        with self._view.transaction():
            stored = self._base.get(entity.id)  # unscoped: decide NotFound vs denied here
            if not self._allows(stored, Action.READ):
                raise NotFound(self._collection, entity.id)
            if not self._allows(stored, Action.UPDATE):
                raise self._deny(f"may not change {self._collection} {entity.id}")
            grants = self._view.grants
            hidden = grants.hidden_fields(self._collection)
            restored: dict[str, Any] = {}
            masked = mask(stored, hidden) if hidden else stored
            for path in hidden:
                if _path_value(entity, path) != _path_value(masked, path):
                    raise self._deny(f"may not set {self._collection}.{path}")
            for path in grants.readonly_fields(self._collection):
                if _path_value(entity, path) != _path_value(stored, path) and not _covers(
                    hidden, path
                ):
                    raise self._deny(f"may not change {self._collection}.{path}")
            if hidden:
                restored = {
                    name: getattr(stored, name) for name in {p.split(".", 1)[0] for p in hidden}
                }
                entity = _unmask(entity, stored, hidden, restored)
            if not self._allows(entity, Action.UPDATE):
                raise self._deny(f"may not move {self._collection} {entity.id} out of their scope")
            updated = self._base.update(entity)
        return self._mask(updated)

    def delete(self, id: str, *, version: int | None = None) -> None:
        """Delete a record the user may delete (``NotFound`` if they cannot even read it)."""
        with self._view.transaction():
            stored = self._base._stored(id)
            if not self._allows(stored, Action.READ):
                raise NotFound(self._collection, id)
            if not self._allows(stored, Action.DELETE):
                raise self._deny(f"may not delete {self._collection} {id}")
            self._base.delete(id, version=version)


# --- field helpers ------------------------------------------------------------------------


def _defaults(entity: type[Any]) -> Any:
    """An instance with every field at its default, without running validation."""
    blank = object.__new__(entity)
    for a in attrs.fields(entity):
        if a.default is attrs.NOTHING:
            value = None
        elif isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
            value = a.default.factory()
        else:
            value = a.default
        object.__setattr__(blank, a.name, value)
    return blank


_STORAGE_FIELDS = frozenset({"id", "version", "created_at", "updated_at"})


def _set_fields(entity: Any) -> tuple[str, ...]:
    """Names of the fields a new record sets (differs from the defaults)."""
    default = _defaults(type(entity))
    return tuple(
        n
        for n in _slot_names(type(entity))
        if n not in _STORAGE_FIELDS and getattr(entity, n) != getattr(default, n)
    )


def _path_value(entity: Any, path: str) -> Any:
    value = entity
    for part in path.split("."):
        if value is None:
            return None
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    if value == () or (isinstance(value, Mapping) and not value):
        return None
    return value


def _replace(entity: E, changes: Mapping[str, Any]) -> E:
    """Copy ``entity`` with some top-level fields replaced, without re-validating it."""
    clone = object.__new__(type(entity))
    for name in _slot_names(type(entity)):
        object.__setattr__(clone, name, changes.get(name, getattr(entity, name)))
    return clone


def mask(entity: E, hidden: frozenset[str]) -> E:
    """Copy of ``entity`` with the ``hidden`` field paths emptied (values not revealed)."""
    changes: dict[str, Any] = {}
    for path in hidden:
        column, _, key = path.partition(".")
        current = changes.get(column, getattr(entity, column, None))
        if not key:
            changes[column] = _empty(current)
        elif isinstance(current, Mapping):
            changes[column] = FrozenDict({k: v for k, v in current.items() if k != key})
        elif current is not None and attrs.has(type(current)):
            changes[column] = _replace(current, {key: None})
    return _replace(entity, changes)


def _empty(value: Any) -> Any:
    if isinstance(value, tuple):
        return ()
    if isinstance(value, Mapping):
        return EMPTY
    if isinstance(value, bool):
        return False
    return None


def _unmask(entity: E, stored: E, hidden: frozenset[str], columns: Mapping[str, Any]) -> E:
    """Put the stored values of hidden paths back into the user's (masked) copy."""
    changes: dict[str, Any] = {}
    for path in hidden:
        column, _, key = path.partition(".")
        if not key:
            changes[column] = columns[column]
            continue
        mine = changes.get(column, getattr(entity, column, None))
        theirs = getattr(stored, column, None)
        if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
            merged = dict(mine)
            if key in theirs:
                merged[key] = theirs[key]
            changes[column] = FrozenDict(merged)
        elif mine is not None and theirs is not None and attrs.has(type(mine)):
            changes[column] = _replace(mine, {key: getattr(theirs, key)})
        else:
            changes[column] = theirs
    return _replace(entity, changes)


class ScopedDealRepository(ScopedRepository[Deal], DealOperations):
    """Deals as one user sees them, with ``move``/``history`` checked and audited."""


class ScopedTicketRepository(ScopedRepository[Ticket], TicketOperations):
    """Tickets as one user sees them, with the ticket verbs checked and audited."""


class ScopedTaskRepository(ScopedRepository[Task], TaskOperations):
    """Tasks as one user sees them, with ``complete`` and the due queries scoped."""


class ScopedLinkRepository(ScopedRepository[AccountContact]):
    """Contact-account links as one user sees them: a link is in the user's scope for an
    action only when its contact and its account are both readable by the user too, so
    that a link never reveals (nor changes) what the user may not see."""

    def _build_scope(self, action: Action) -> Expr | None:
        scope = super()._build_scope(action)
        if scope is NOTHING:
            return scope
        parts = [] if scope is None else [scope]
        for name, ends in (("contact", self._view.contacts), ("account", self._view.accounts)):
            readable = ends._scope_filter(Action.READ)
            if readable is NOTHING:
                return NOTHING
            if readable is not None:  # else the user may read all of them
                parts.append(Related(name, readable))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _allows(self, entity: AccountContact, action: Action) -> bool:
        view = self._view
        return (
            super()._allows(entity, action)
            and view.contacts.exists(F.id == entity.contact_id)
            and view.accounts.exists(F.id == entity.account_id)
        )


_SCOPED_TYPES: dict[str, type[ScopedRepository[Any]]] = {
    "deals": ScopedDealRepository,
    "tickets": ScopedTicketRepository,
    "tasks": ScopedTaskRepository,
    "account_contacts": ScopedLinkRepository,
}


class UserView:
    """The CRM as one user sees it (``crm.as_user(user_id)``): the same repositories,
    filtered by the user's permissions. Build it with :meth:`crmkit.CRM.as_user`."""

    accounts: ScopedRepository[Account]
    contacts: ScopedRepository[Contact]
    interactions: ScopedRepository[Interaction]
    tasks: ScopedTaskRepository
    pipelines: ScopedRepository[Pipeline]
    deals: ScopedDealRepository
    tickets: ScopedTicketRepository
    segments: ScopedSegmentRepository
    campaigns: ScopedCampaignRepository
    campaign_members: ScopedRepository[CampaignMember]
    account_contacts: ScopedLinkRepository
    articles: ScopedArticleRepository
    orders: ScopedOrderRepository
    users: ScopedRepository[User]
    teams: ScopedRepository[Team]
    roles: ScopedRepository[Role]
    shares: ScopedRepository[Share]
    stage_changes: ScopedRepository[StageChange]

    def __init__(self, crm: CRM, user: User) -> None:
        self.crm = crm
        self.user = user
        roles = crm.roles.get_many(user.role_ids)
        self.grants = Grants.of(user, roles)
        self.events = crm.events
        self._members: frozenset[str] | None = None
        #: Lead conversion within this user's permissions.
        self.leads = LeadConverter(self)
        #: Deal reports over the deals this user may read.
        self.reports = DealReports(self)
        from crmkit.audit import ScopedAuditTrail

        #: The audit history of the records this user may read (:mod:`crmkit.audit`).
        self.audit = ScopedAuditTrail(self)
        #: The timeline of what this user may read.
        self.timeline = Timeline(self)
        from crmkit.relationships import Relationships

        #: Contact-account links whose contact and account this user may both read.
        self.relationships = Relationships(self)
        from crmkit.analytics import Analytics
        from crmkit.scoring import Scoring

        #: Analytics over what this user may read.
        self.analytics = Analytics(self)
        #: Lead scores and predictions of the records this user may read (the CRM's rules).
        self.scoring = Scoring(self, crm, rules=None)
        self._repositories: dict[str, ScopedRepository[Any]] = {}
        from crmkit.campaigns import ScopedCampaignRepository
        from crmkit.commerce import ScopedOrderRepository
        from crmkit.knowledge import ScopedArticleRepository
        from crmkit.segments import ScopedSegmentRepository

        types = {
            **_SCOPED_TYPES,
            "segments": ScopedSegmentRepository,
            "campaigns": ScopedCampaignRepository,
            "articles": ScopedArticleRepository,
            "orders": ScopedOrderRepository,
        }
        for name, repo in crm.repositories.items():
            if name == "audit_log":
                continue
            scoped: ScopedRepository[Any] = types.get(name, ScopedRepository)(self, repo)
            self._repositories[name] = scoped
            setattr(self, name, scoped)
        from crmkit.dedupe.service import DedupeService

        #: Duplicate finding and merging over the records this user may read and update.
        self.dedupe = DedupeService(self)
        from crmkit.satisfaction import Satisfaction

        #: CSAT and NPS reports over the survey responses this user may read.
        self.satisfaction = Satisfaction(self)
        from crmkit.exports import Exporter

        #: CSV and JSON Lines exports of what this user may read, hidden fields left out.
        self.exports = Exporter(self)
        from crmkit.imports import Importer

        #: CSV and JSON Lines imports that create and change only what this user may.
        self.imports = Importer(self)
        from crmkit.email import EmailCapture

        #: Email capture within this user's permissions (the CRM's routing settings).
        self.email = EmailCapture(self)

    def __repr__(self) -> str:
        return f"<UserView of {self.crm!r} as {self.user.name!r}>"

    def repository(self, entity: type[E] | str) -> ScopedRepository[E]:
        """The scoped repository of an entity type or collection name."""
        name = entity if isinstance(entity, str) else entity.collection
        try:
            return self._repositories[name]
        except KeyError:
            raise ValidationError("collection", entity, "is not visible in a user view") from None

    def mask_snapshot(self, snapshot: Any, collection: str) -> Any:
        """A merge snapshot (of records of ``collection``) as this user may see it: hidden
        fields left out, and of each record the user may not read (a merged one, a related
        one the merge re-pointed or removed) only its id."""
        if self.user.admin and self.user.active:
            return snapshot
        stored = self._stored_readable(snapshot_ids(snapshot, collection))

        def readable(of: str, document: Mapping[str, Any]) -> bool:
            if of not in stored:  # a collection the user may read all (or none) of
                return self.grants.may_read(of) and of in self._repositories
            id = document.get("id")
            if id in stored[of]:
                return stored[of][id]
            # deleted by the merge (a duplicate, a removed membership): judged from the
            # document, by the rules of its repository
            repo = self._repositories[of]
            try:
                record = from_document(repo.entity, document)
            except ValidationError:
                return False
            return repo._allows(record, Action.READ)

        return mask_snapshot(snapshot, collection, self.grants.hidden_fields, readable)

    def _stored_readable(self, ids: Mapping[str, set[str]]) -> dict[str, dict[str, bool]]:
        """Of the records named, by collection, those still stored, each with whether this
        user may read it: two queries per collection the user may read only part of."""
        out: dict[str, dict[str, bool]] = {}
        for collection, wanted in ids.items():
            repo = self._repositories.get(collection)
            if repo is None or not self.grants.may_read(collection):
                continue
            if repo._scope_filter(Action.READ) is None:
                continue
            listed = sorted(wanted)
            every: Repository[Any] = self.crm.repository(collection)
            stored = sorted(r.id or "" for r in every.find(F.id.in_(listed)))
            seen = {r.id for r in repo.find(F.id.in_(stored))} if stored else set()
            out[collection] = {i: i in seen for i in stored}
        return out

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The CRM's transaction (see :meth:`crmkit.CRM.transaction`); writes inside it are
        attributed to this user unless a caller named someone else."""
        crm = self.crm
        with (
            crm.transaction(),
            crm.acting(crm.acting_user or self.user.id, reason=crm.acting_reason),
        ):
            yield

    def now(self) -> Any:
        """The CRM's clock."""
        return self.crm.now()

    def team_members(self) -> frozenset[str]:
        """Ids of the users who share a team with this user (including the user)."""
        if self._members is None:
            teams = list(self.user.team_ids)
            members = {self.user.id or ""}
            if teams:
                members |= {u.id or "" for u in self.crm.users.find(F.team_ids.in_(teams))}
            self._members = frozenset(members)
        return self._members

    def shares_filter(self, collection: str, write: bool) -> Expr:
        """The shares of ``collection`` records granted to this user or their teams
        (``write``: those granting write access)."""
        who: Expr = F.user_id == (self.user.id or "")
        if self.user.team_ids:
            who = who | F.team_id.in_(list(self.user.team_ids))
        where = (F.record_collection == collection) & who
        if write:
            where = where & (F.access == Access.WRITE)
        return where

    def shared_ids(self, collection: str, *, write: bool) -> set[str]:
        """Ids of ``collection`` records shared with this user or their teams."""
        where = self.shares_filter(collection, write)
        return {s.record_id for s in self.crm.repository(Share).find(where)}
