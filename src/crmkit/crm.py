"""The CRM facade and :func:`connect`."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, TypeVar, cast

from crmkit.campaigns import CampaignRepository, CampaignRules
from crmkit.commerce import OrderRepository
from crmkit.entities import (
    ENTITY_TYPES,
    Account,
    AccountContact,
    AuditEntry,
    CampaignMember,
    Contact,
    Entity,
    Interaction,
    Pipeline,
    Role,
    Share,
    StageChange,
    Suppression,
    SurveyResponse,
    Team,
    User,
)
from crmkit.errors import BackendError, CRMError, ValidationError
from crmkit.events import Event, EventBus
from crmkit.knowledge import ArticleRepository
from crmkit.leads import LeadConverter
from crmkit.pipelines import DealRepository, PipelineRules
from crmkit.protocols import Backend
from crmkit.reports import DealReports
from crmkit.repository import AfterWriteHook, QueryHook, Repository, WriteHook
from crmkit.segments import SegmentRepository
from crmkit.tasks import TaskRepository, TaskRules
from crmkit.tickets import SlaRegistry, TicketRepository, TicketRules
from crmkit.timeline import Timeline

if TYPE_CHECKING:
    from crmkit.permissions import UserView

__all__ = ["CRM", "available_backends", "connect"]

E = TypeVar("E", bound=Entity)

ENTRY_POINT_GROUP = "crmkit.backends"

#: Repository classes of the collections with verbs of their own (``crm.deals.move``).
REPOSITORY_TYPES: dict[str, type[Repository[Any]]] = {
    "deals": DealRepository,
    "tickets": TicketRepository,
    "tasks": TaskRepository,
    "segments": SegmentRepository,
    "campaigns": CampaignRepository,
    "articles": ArticleRepository,
    "orders": OrderRepository,
}


def _utc_now() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class CRM:
    """One CRM: a backend plus the services that work on it.

    Each collection is a :class:`crmkit.repository.Repository` attribute: ``crm.contacts``,
    ``crm.accounts``, ``crm.interactions``, ``crm.deals``... Use :func:`connect` to make one.
    A CRM is safe to share between threads.
    """

    accounts: Repository[Account]
    contacts: Repository[Contact]
    interactions: Repository[Interaction]
    tasks: TaskRepository
    pipelines: Repository[Pipeline]
    deals: DealRepository
    tickets: TicketRepository
    segments: SegmentRepository
    campaigns: CampaignRepository
    campaign_members: Repository[CampaignMember]
    articles: ArticleRepository
    users: Repository[User]
    teams: Repository[Team]
    roles: Repository[Role]
    shares: Repository[Share]
    audit_log: Repository[AuditEntry]
    stage_changes: Repository[StageChange]
    account_contacts: Repository[AccountContact]
    suppressions: Repository[Suppression]
    orders: OrderRepository
    survey_responses: Repository[SurveyResponse]

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        default_region: str = "US",
        privacy_key: bytes | str | None = None,
    ) -> None:
        from crmkit.normalize import EntityNormalizer, Normalizer

        self.backend = backend
        self.events = EventBus()
        self._clock = clock or _utc_now
        self._local = threading.local()
        #: Normalization rules (``default_region`` reads national phone numbers).
        self.normalizer = Normalizer(default_region)
        entities = EntityNormalizer(self.normalizer)
        #: SLA policies of tickets, by name (see :mod:`crmkit.tickets`).
        self.sla = SlaRegistry()
        #: The deal rules (see :mod:`crmkit.pipelines`).
        self.pipeline_rules = PipelineRules(self)
        #: The ticket status and SLA rules (see :mod:`crmkit.tickets`).
        self.ticket_rules = TicketRules(self)
        members = CampaignRules(self)
        self._write_hooks: list[WriteHook] = [
            entities,
            self.pipeline_rules,
            self.ticket_rules,
            TaskRules(self),
            members,
        ]
        rules, tickets = self.pipeline_rules, self.ticket_rules
        self._after_write_hooks: dict[str, list[AfterWriteHook]] = {
            "deals": [AfterWriteHook(rules.moved, rules.after_write)],
            "tickets": [AfterWriteHook(tickets.applies, tickets.after_write)],
            "interactions": [AfterWriteHook(tickets.is_response, tickets.interaction_written)],
            "campaign_members": [AfterWriteHook(members.changed, members.after_write)],
        }
        self._query_hooks: list[QueryHook] = [entities.query]
        from crmkit.privacy import Privacy
        from crmkit.relationships import Relationships

        #: Export, erasure and suppression of personal data (see :mod:`crmkit.privacy`).
        self.privacy = Privacy(self, key=privacy_key)
        self._write_hooks.append(self.privacy)
        #: Contacts in several accounts (see :mod:`crmkit.relationships`).
        self.relationships = Relationships(self)
        links = self.relationships
        self._write_hooks.append(links)
        self._after_write_hooks.setdefault("contacts", []).append(
            AfterWriteHook(Relationships.account_changed, links.after_contact_write)
        )
        self._after_delete_hooks: dict[str, list[Callable[[Any], None]]] = {
            "contacts": [links.after_delete],
            "accounts": [links.after_delete],
        }
        #: Lead conversion (see :mod:`crmkit.leads`).
        self.leads = LeadConverter(self)
        #: Deal reports computed by the database (see :mod:`crmkit.reports`).
        self.reports = DealReports(self)
        #: What happened with a contact or account, newest first (:mod:`crmkit.timeline`).
        self.timeline = Timeline(self)
        from crmkit.analytics import Analytics, LifecycleHistory
        from crmkit.scoring import Scoring, ScoringHook

        #: Interaction, lifecycle, RFM and ticket analytics (see :mod:`crmkit.analytics`).
        self.analytics = Analytics(self)
        #: Rule-based lead scores and win predictions (see :mod:`crmkit.scoring`).
        self.scoring = Scoring(self, self)
        lifecycle, scored = LifecycleHistory(self), ScoringHook(self)
        self._after_write_hooks.setdefault("contacts", []).append(
            AfterWriteHook(lifecycle.changed, lifecycle.after_write, lifecycle.after_write_many)
        )
        self._after_write_hooks.setdefault("deals", []).append(
            AfterWriteHook(scored.applies, scored.after_write)
        )
        from crmkit.audit import AuditTrail
        from crmkit.customfields import CustomFields

        #: The audit trail of every write (:mod:`crmkit.audit`); set before the repositories.
        self.audit = AuditTrail(self)
        #: Custom field definitions, validated on every write (:mod:`crmkit.customfields`).
        self.schema = CustomFields(self)
        self._write_hooks.append(self.schema.validate)
        self._query_hooks.append(self.schema.query)
        #: What a rolled-back transaction makes stale: the cached definitions, which a
        #: read inside it may have taken from its uncommitted writes.
        self._rollback_hooks: list[Callable[[], None]] = [self.schema.refresh]
        self._after_write_hooks.setdefault("field_definitions", []).append(
            AfterWriteHook(self.schema.changed, self.schema.definitions_written)
        )
        self._after_delete_hooks["field_definitions"] = [self.schema.definitions_deleted]
        self._repositories: dict[str, Repository[Any]] = {}
        for name, entity in ENTITY_TYPES.items():
            repo_type = REPOSITORY_TYPES.get(name, Repository)
            repo: Repository[Any] = repo_type(self, backend.store(entity))
            self._repositories[name] = repo
            setattr(self, name, repo)
        from crmkit.dedupe.service import DedupeService

        #: Duplicates: find, explain, merge, unmerge, the rule on add (:mod:`crmkit.dedupe`).
        self.dedupe = DedupeService(self, write_hooks=self._write_hooks)
        from crmkit.exports import Exporter
        from crmkit.imports import Importer

        #: CSV and JSON Lines imports with upsert by external id (:mod:`crmkit.imports`).
        self.imports = Importer(self)
        #: CSV and JSON Lines exports of any collection (:mod:`crmkit.exports`).
        self.exports = Exporter(self)
        from crmkit.satisfaction import Satisfaction

        #: CSAT and NPS reports over survey responses (see :mod:`crmkit.satisfaction`).
        self.satisfaction = Satisfaction(self)
        from crmkit.email import EmailCapture

        #: Email capture: messages, mailboxes and IMAP folders (:mod:`crmkit.email`).
        self.email = EmailCapture(self)

    def __repr__(self) -> str:
        return f"<CRM on {self.backend.name}>"

    # --- the repository context -----------------------------------------------------------

    def now(self) -> dt.datetime:
        """The current time (UTC, millisecond precision) from the CRM's clock."""
        value = self._clock()
        if value.tzinfo is None:
            raise ValidationError("clock", value, "must return timezone-aware datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    @property
    def write_hooks(self) -> Sequence[WriteHook]:
        """Functions every entity passes through before it is stored."""
        return self._write_hooks

    @property
    def query_hooks(self) -> Sequence[QueryHook]:
        """Functions every bound filter passes through before it reaches the backend."""
        return self._query_hooks

    @property
    def after_write_hooks(self) -> Mapping[str, Sequence[AfterWriteHook]]:
        """Functions run inside a write's transaction once a record is stored, by
        collection (stage history, a ticket's first response ...)."""
        return self._after_write_hooks

    @property
    def after_delete_hooks(self) -> Mapping[str, Sequence[Callable[[Any], None]]]:
        """Functions run inside a delete's transaction once a record is deleted, with the
        deleted record, by collection (a contact's account links go with it)."""
        return self._after_delete_hooks

    @contextmanager
    def acting(self, by: str | None, *, reason: str | None = None) -> Iterator[None]:
        """Attribute the writes inside the block to user ``by`` with ``reason``: they are
        recorded in stage history, task completions and event ``actor`` fields.

        Nested blocks override the outer one until they end.
        """
        local = self._local
        saved = getattr(local, "acting", (None, None))
        local.acting = (by or saved[0], reason)
        try:
            yield
        finally:
            local.acting = saved

    @property
    def acting_user(self) -> str | None:
        """The user id writes are attributed to (see :meth:`acting`), if any."""
        acting: tuple[str | None, str | None] = getattr(self._local, "acting", (None, None))
        return acting[0]

    @property
    def acting_reason(self) -> str | None:
        """The reason given for the current writes (see :meth:`acting`), if any."""
        acting: tuple[str | None, str | None] = getattr(self._local, "acting", (None, None))
        return acting[1]

    @property
    def listening(self) -> bool:
        """True when an event subscriber exists."""
        return self.events.active

    def emit(self, event: Event) -> None:
        """Queue ``event`` for publication when the current transaction commits."""
        pending: list[Event] | None = getattr(self._local, "pending", None)
        if pending is None:
            self.events.publish([event])
        else:
            pending.append(event)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current :meth:`transaction` commits (at once outside
        one); never when it, or the savepoint ``callback`` was queued in, rolls back.

        For work on committed data only, such as making storage overwrite what was
        erased. Callbacks run in the order queued, after the transaction's events are
        published, each of them even when a subscriber or an earlier callback raised; the
        first such exception then propagates (the transaction stays committed).
        """
        queued: list[Callable[[], None]] | None = getattr(self._local, "after", None)
        if queued is None:
            callback()
        else:
            queued.append(callback)

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside :meth:`transaction`."""
        return getattr(self._local, "pending", None) is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: commit on normal exit, roll back everything on an exception.

        Nested transactions are savepoints: an exception that leaves an inner block undoes
        only that block's writes (if the outer block catches it). Events are published after
        the outermost transaction commits, never for rolled-back changes.
        """
        local = self._local
        outer = getattr(local, "pending", None) is None
        if outer:
            local.pending, local.after = [], []
        mark, after_mark = len(local.pending), len(local.after)
        try:
            with self.backend.transaction():
                yield
        except BaseException:
            del local.pending[mark:]
            del local.after[after_mark:]
            if outer:
                local.pending = local.after = None
            for hook in self._rollback_hooks:
                hook()
            raise
        if outer:
            pending, local.pending = local.pending, None
            after, local.after = local.after, None
            # committed: every callback runs even if a subscriber or another callback
            # raises; the first error is raised once all have run
            errors: list[Exception] = []
            for run in ([lambda: self.events.publish(pending)] if pending else []) + after:
                try:
                    run()
                except Exception as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]

    # --- views ----------------------------------------------------------------------------

    def as_user(self, user: User | str) -> UserView:
        """This CRM as ``user`` (a :class:`User` or its id) sees it: same API, every read
        filtered in the database by the user's permissions, every write checked and audited.

        Raises ``NotFound`` for an unknown user id. See :mod:`crmkit.permissions`.
        """
        from crmkit.permissions import UserView

        if isinstance(user, str):
            user = self.users.get(user)
        elif user.id is None:
            raise ValidationError("user", user, "must be a stored user (it has no id)")
        else:
            user = self.users.get(user.id)  # the stored roles and teams, not a caller's copy
        return UserView(self, user)

    # --- misc -----------------------------------------------------------------------------

    def repository(self, entity: type[E] | str) -> Repository[E]:
        """The repository of an entity type or collection name (``"contacts"``)."""
        name = entity if isinstance(entity, str) else entity.collection
        try:
            return cast(Repository[E], self._repositories[name])
        except KeyError:
            raise ValidationError("collection", entity, "is not a crmkit collection") from None

    @property
    def repositories(self) -> dict[str, Repository[Any]]:
        """Every repository by collection name."""
        return dict(self._repositories)

    def create_schema(self) -> None:
        """Create the backend's tables/collections and indexes if missing (idempotent)."""
        self.backend.create_schema()

    def upgrade_schema(self) -> None:
        """Bring an existing database's schema up to this crmkit version.

        Backends with migrations (SQL: Alembic) apply them; others create what is missing.
        """
        upgrade = getattr(self.backend, "upgrade_schema", None)
        if upgrade is None:
            self.backend.create_schema()
        else:
            upgrade()

    def close(self) -> None:
        """Release the backend's connections and files."""
        self.backend.close()

    def __enter__(self) -> CRM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def available_backends() -> dict[str, EntryPoint]:
    """Backend factories by URL scheme, from the ``crmkit.backends`` entry-point group."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load(ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except ImportError as exc:
        raise BackendError(
            f"backend {ep.name!r} needs an optional dependency that is not installed "
            f"({exc.name}); install crmkit with the matching extra, e.g. 'crmkit[sql]'"
        ) from exc


def connect(target: Any, /, **options: Any) -> CRM:
    """Open a CRM on a storage URL or an existing connection object.

    ``target`` is a URL whose scheme picks the backend (``memory://``, ``sqlite:///crm.db``,
    ``postgresql+psycopg://...``, ``mongodb://host/db``, ``mongomock://``), or an object a
    backend accepts (a SQLAlchemy ``Engine``/``Connection``/``Session``, a pymongo
    ``Database``). Backends come from the ``crmkit.backends`` entry-point group, so third
    parties add schemes the same way crmkit's own backends do.

    CRM options: ``default_region`` (ISO country code whose conventions read national
    phone numbers, default ``"US"``), ``clock`` (a function returning the current aware
    datetime) and ``privacy_key`` (the secret of the suppression hashes, see
    :mod:`crmkit.privacy`). Other options go to the backend.

    Raises ``ValidationError`` for an unknown scheme or object, ``BackendError`` when the
    backend cannot open.

    >>> crm = connect("memory://")
    """
    clock = options.pop("clock", None)
    crm_options = {k: options.pop(k) for k in ("default_region", "privacy_key") if k in options}
    backends = available_backends()
    if isinstance(target, str):
        scheme = target.partition("://")[0].partition("+")[0].lower()
        if "://" not in target or scheme not in backends:
            known = ", ".join(sorted(backends)) or "none installed"
            raise ValidationError("url", target, f"has no known backend scheme (known: {known})")
        factory = _load(backends[scheme])
    else:
        factory = None
        for ep in backends.values():
            try:
                candidate = ep.load()
            except ImportError:
                continue
            accepts = getattr(candidate, "accepts", None)
            if accepts is not None and accepts(target):
                factory = candidate
                break
        if factory is None:
            raise ValidationError(
                "target", target, "is neither a URL nor a connection object a backend accepts"
            )
    try:
        backend = factory(target, **options)
    except CRMError:
        raise
    except TypeError as exc:
        raise ValidationError(
            "options", options, f"are not accepted by the backend ({exc})"
        ) from exc
    try:
        return CRM(backend, clock=clock, **crm_options)
    except BaseException:
        backend.close()
        raise
