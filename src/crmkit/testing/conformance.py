"""The conformance suite: the behaviour every crmkit backend must have.

Passing this suite is the definition of a correct backend, for crmkit's own backends and
for third-party ones. Subclass :class:`ConformanceSuite` in a test module (the subclass
name must start with ``Test``) and provide a function-scoped ``crm`` fixture that yields a
fresh, empty :class:`crmkit.CRM` and closes it afterwards::

    import pytest, crmkit
    from crmkit.testing.conformance import ConformanceSuite

    class TestMyBackend(ConformanceSuite):
        @pytest.fixture
        def crm(self):
            crm = crmkit.connect("mybackend://...")
            yield crm
            crm.close()

Every test uses the public API only (repositories, ``crm.transaction()``, ``crm.events``,
:data:`crmkit.query.F`, :func:`crmkit.query.from_dict`, errors) and none is skipped: a backend
without native transactions must still roll back. The differential tests compare the
backend with :mod:`crmkit.testing.reference`, a brute-force evaluator sharing no code with
any backend, on random data and random filters (hypothesis).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit import (
    CRM,
    Account,
    Address,
    Article,
    Campaign,
    CampaignMember,
    ConflictError,
    Contact,
    Deal,
    Entity,
    Interaction,
    Money,
    NotFound,
    Pipeline,
    Role,
    Segment,
    Stage,
    Task,
    Team,
    Ticket,
    User,
    ValidationError,
)
from crmkit.entities import (
    Access,
    AccountContact,
    AccountRole,
    ArticleStatus,
    AuditAction,
    AuditEntry,
    CampaignChannel,
    CampaignStatus,
    Channel,
    Direction,
    InteractionKind,
    LifecycleStage,
    MemberStatus,
    PipelineKind,
    Priority,
    SegmentKind,
    Share,
    StageKind,
    TaskStatus,
    TransitionPolicy,
)
from crmkit.entities.order import Order, OrderLine, OrderStatus
from crmkit.entities.survey import SurveyKind, SurveyResponse
from crmkit.events import Created, Deleted, Event, Updated
from crmkit.query import Expr, F, from_dict
from crmkit.repository import Repository
from crmkit.testing import reference
from crmkit.testing import strategies as cs
from crmkit.testing._settings import SUITE_HEALTH_CHECKS
from crmkit.testing.conformance_analytics import AnalyticsConformance
from crmkit.testing.conformance_audit import AuditConformance
from crmkit.testing.conformance_commerce import CommerceConformance
from crmkit.testing.conformance_custom_reports import CustomReportsConformance
from crmkit.testing.conformance_dedupe import DedupeConformance
from crmkit.testing.conformance_email import EmailConformance
from crmkit.testing.conformance_geo import GeoConformance
from crmkit.testing.conformance_imports import ImportExportConformance
from crmkit.testing.conformance_insights import InsightsConformance
from crmkit.testing.conformance_knowledge import KnowledgeConformance
from crmkit.testing.conformance_operations import OperationsConformance
from crmkit.testing.conformance_permissions import PermissionsConformance
from crmkit.testing.conformance_privacy import PrivacyConformance
from crmkit.testing.conformance_related import RelatedConformance

__all__ = ["HOSTILE_VALUES", "ConformanceSuite", "full_entities"]

UTC = dt.UTC

#: Strings that are syntax somewhere (SQL, LIKE, regular expressions, Mongo operators,
#: JSON paths). To crmkit they are data: each must match exactly the records holding it.
HOSTILE_VALUES = (
    "$gt",
    "$where",
    "{'$ne': None}",
    '{"$ne": null}',
    "'; DROP TABLE contacts; --",
    "a' OR '1'='1",
    '" OR ""="',
    "%",
    "_",
    "a%",
    "%a",
    "a_c",
    ".*",
    "^a",
    "[a-z]",
    "\\",
    "a\\%",
    "$.custom",
    "?",
    "*",
)
#: Plain values stored next to the hostile ones: a wildcard or regex leak would match them.
_DECOYS = ("abc", "a", "plain", "aXc", "A")

_DIFFERENTIAL = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[*SUITE_HEALTH_CHECKS, HealthCheck.data_too_large],
)
_ROUND_TRIP = settings(max_examples=15, deadline=None, suppress_health_check=SUITE_HEALTH_CHECKS)

_CONTACT_PATHS = [s.path for s in cs.contact_specs()]
_ACCOUNT_PATHS = [s.path for s in cs.account_specs()]
_DEAL_PATHS = [s.path for s in cs.deal_specs()]


class _Boom(Exception):
    """Raised by tests to abort a transaction."""


def full_entities() -> dict[str, Entity]:
    """One instance of every entity type with every field set (all field kinds).

    Values are already in the form crmkit stores (normalized emails, E.164 phones, ISO codes),
    so a round trip must give them back unchanged.
    """
    when = dt.datetime(2024, 3, 5, 14, 30, 15, 123000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    later = dt.datetime(2031, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    custom = {
        "text": "Ünïcødé — ΑΩ дя",
        "int": 42,
        "big": 2**62,
        "negative": -7,
        "float": 0.1,
        "tiny": 1e-300,
        "yes": True,
        "no": False,
        "list": ["a", 1, 2.5, False],
        "empty": [],
    }
    external = {"erp": "C-1042", "shop": "S-7"}
    address = Address(
        street="1 Infinite Loop",
        city="Zürich",
        region="ZH",
        postal_code="8001",
        country="CH",
        latitude=Decimal("47.3769"),
        longitude=Decimal("8.5417"),
    )
    rule = (
        (F.emails.contains("ada@example.com") | F.custom.tier.in_(["gold"]))
        & ~(F.title == "CEO")
        & F.created_at.within_last(dt.timedelta(days=30))
    ).to_dict()
    return {
        "contacts": Contact(
            first_name="Ada",
            last_name="Lovelace-Byron",
            emails=("ada@example.com", "ada.l@example.org"),
            phones=("+442079460958", "+14155550123"),
            title="Countess",
            account_id="acc-1",
            owner_id="u-1",
            team_id="t-1",
            lifecycle_stage=LifecycleStage.CUSTOMER,
            lead_source="referral",
            address=address,
            do_not_contact=True,
            tags=("math", "vip", "écrivain"),
            custom=custom,
            external_ids=external,
        ),
        "accounts": Account(
            name="Acme Corp",
            domain="acme.com",
            industry="Manufacturing",
            parent_id="acc-0",
            owner_id="u-1",
            team_id="t-1",
            phones=("+442079460000",),
            address=address,
            tags=("key",),
            custom=custom,
            external_ids=external,
        ),
        "interactions": Interaction(
            kind=InteractionKind.CALL,
            occurred_at=when,
            direction=Direction.OUTBOUND,
            subject="Renewal",
            body="Talked about\nthe renewal.\tTabs, 'quotes' and \"doubles\".",
            contact_ids=("c-1", "c-2"),
            account_id="acc-1",
            deal_id="d-1",
            ticket_id="k-1",
            owner_id="u-1",
            team_id="t-1",
            duration=dt.timedelta(minutes=12, seconds=3, milliseconds=250),
            outcome="connected",
            custom=custom,
            external_ids=external,
        ),
        "deals": Deal(
            name="Big deal",
            pipeline_id="p-1",
            stage="proposal",
            amount=Money(amount=Decimal("1234567.89"), currency="EUR"),
            probability=Decimal("0.35"),
            close_date=dt.date(2024, 12, 31),
            account_id="acc-1",
            contact_ids=("c-1", "c-2"),
            contact_roles={"c-1": "champion", "c-2": "decision_maker"},
            owner_id="u-1",
            team_id="t-1",
            stage_entered_at=when,
            closed_at=later,
            lost_reason="none yet",
            tags=("q4",),
            custom=custom,
            external_ids=external,
        ),
        "tickets": Ticket(
            subject="Printer on fire",
            description="It is really on fire.",
            status="open",
            priority=Priority.URGENT,
            channel=Channel.EMAIL,
            pipeline_id="p-2",
            contact_id="c-1",
            account_id="acc-1",
            assignee_id="u-2",
            owner_id="u-1",
            team_id="t-1",
            sla_policy_id="sla-1",
            first_response_due_at=when,
            resolution_due_at=later,
            first_response_at=when,
            resolved_at=later,
            closed_at=later,
            tags=("fire",),
            custom=custom,
            external_ids=external,
        ),
        "tasks": Task(
            title="Call back",
            description="About the fire",
            due_at=later,
            status=TaskStatus.IN_PROGRESS,
            priority=Priority.HIGH,
            assignee_id="u-2",
            owner_id="u-1",
            team_id="t-1",
            contact_id="c-1",
            account_id="acc-1",
            deal_id="d-1",
            ticket_id="k-1",
            completed_at=later,
            completed_by="u-2",
            custom=custom,
        ),
        "pipelines": Pipeline(
            name="Sales",
            kind=PipelineKind.DEALS,
            stages=(
                Stage(key="lead", name="Lead", probability=Decimal("0.1"), next=("proposal",)),
                Stage(
                    key="proposal",
                    name="Proposal",
                    probability=Decimal("0.5"),
                    required_fields=("amount", "close_date"),
                    next=("won", "lost"),
                ),
                Stage(key="won", name="Won", kind=StageKind.WON, probability=Decimal("1")),
                Stage(key="lost", name="Lost", kind=StageKind.LOST, probability=Decimal("0")),
            ),
            policy=TransitionPolicy.GRAPH,
            lost_reasons=("price", "timing"),
        ),
        "segments": Segment(
            name="Gold prospects",
            entity="contacts",
            rule=rule,
            kind=SegmentKind.STATIC,
            member_ids=("c-1", "c-2"),
            snapshot_at=when,
            owner_id="u-1",
            team_id="t-1",
        ),
        "campaigns": Campaign(
            name="Spring",
            channel=CampaignChannel.EMAIL,
            status=CampaignStatus.ACTIVE,
            starts_at=when,
            ends_at=later,
            budget=Money(amount=Decimal("5000.00"), currency="USD"),
            cost=Money(amount=Decimal("1250.5"), currency="USD"),
            segment_id="s-1",
            owner_id="u-1",
            team_id="t-1",
        ),
        "campaign_members": CampaignMember(
            campaign_id="cp-1", contact_id="c-1", status=MemberStatus.CLICKED, status_at=when
        ),
        "articles": Article(
            title="How to put out a printer fire",
            body="Use the right extinguisher.",
            tags=("fire", "printer"),
            status=ArticleStatus.PUBLISHED,
            ticket_ids=("k-1",),
            owner_id="u-1",
            team_id="t-1",
        ),
        "users": User(
            name="Grace Hopper",
            email="grace@example.org",
            active=False,
            admin=True,
            team_ids=("t-1", "t-2"),
            role_ids=("r-1",),
        ),
        "teams": Team(name="Support", parent_id="t-0"),
        "shares": Share(
            record_collection="deals", record_id="d-1", team_id="t-2", access=Access.WRITE
        ),
        "audit_log": AuditEntry(
            record_collection="contacts",
            record_id="c-1",
            action=AuditAction.UPDATE,
            changed=("title", "custom"),
            actor_id="u-1",
            at=when,
            reason="customer asked",
            changes={"title": {"before": None, "after": "CEO"}, "custom": {"after": [1, "a"]}},
        ),
        "roles": Role(
            name="Agent",
            permissions={"contacts": {"read": "team", "update": "own"}, "deals": {"read": "all"}},
            hidden_fields={"contacts": ["phones", "custom.salary"]},
            readonly_fields={"accounts": ["name"]},
        ),
        "orders": Order(
            external_id="SHOP-1042",
            placed_at=when,
            contact_id="c-1",
            account_id="acc-1",
            status=OrderStatus.REFUNDED,
            total=Money(amount=Decimal("1234.56"), currency="EUR"),
            lines=(
                OrderLine(
                    sku="CAM-1",
                    name="Caméra",
                    category="cameras",
                    quantity=2,
                    unit_price=Money(amount=Decimal("600.005"), currency="EUR"),
                ),
                OrderLine(sku="BAG", unit_price=Money(amount=Decimal("0"), currency="EUR")),
            ),
            status_reason="arrived broken",
            refunded_at=later,
            customer_name="Ada Lovelace",
            customer_email="ada@example.com",
            shipping_address=address,
            owner_id="u-1",
            team_id="t-1",
            custom=custom,
        ),
        "survey_responses": SurveyResponse(
            kind=SurveyKind.NPS,
            score=0,
            responded_at=when,
            survey="Quarterly NPS",
            contact_id="c-1",
            account_id="acc-1",
            ticket_id="k-1",
            campaign_id="cp-1",
            comment="Ünïcødé — ΑΩ",
            owner_id="u-1",
            team_id="t-1",
            custom=custom,
        ),
    }


_STORAGE_FIELDS = ("id", "version", "created_at", "updated_at")


def _content(entity: Entity) -> dict[str, Any]:
    return {
        k: v for k, v in attrs.asdict(entity, recurse=False).items() if k not in _STORAGE_FIELDS
    }


def _ids(entities: Sequence[Entity]) -> list[str | None]:
    return [e.id for e in entities]


def _clear(crm: CRM) -> None:
    """Delete every record through the public API (between hypothesis examples)."""
    for repo in crm.repositories.values():
        for record in repo.find():
            assert record.id is not None
            repo.delete(record.id)


def _assert_find(
    repo: Repository[Any],
    records: Sequence[Entity],
    where: Expr | None,
    order: Any = None,
    limit: int | None = None,
    offset: int = 0,
) -> None:
    got = _ids(repo.find(where, order_by=order, limit=limit, offset=offset))
    want = _ids(reference.find(records, where, order_by=order, limit=limit, offset=offset))
    assert got == want, (
        f"find() disagrees with the reference\n  where={where!r}\n  order_by={order!r} "
        f"limit={limit} offset={offset}\n  backend={got}\n  reference={want}"
    )


def _walk_pages(
    repo: Repository[Any], where: Expr | None, order: Any, size: int, bound: int
) -> list[Any]:
    out: list[Any] = []
    cursor: str | None = None
    for _ in range(bound):
        page = repo.page(where, order_by=order, limit=size, after=cursor)
        out.extend(page)
        cursor = page.next_cursor
        if cursor is None:
            return out
        assert len(page) == size, "a page before the last one must be full"
    raise AssertionError(f"paging did not end after {bound} pages")


def _transaction(crm: CRM, work: Callable[[], object], *, fail: bool = False) -> None:
    """Run ``work`` in a transaction; with ``fail`` abort it afterwards by raising _Boom."""
    with crm.transaction():
        work()
        if fail:
            raise _Boom


def _values(
    repo: Repository[Any], where: Expr | None, attr: str = "first_name", **options: Any
) -> list[Any]:
    """The ``attr`` of each record ``repo.find(where, **options)`` returns, in order."""
    return [getattr(e, attr) for e in repo.find(where, **options)]


def _contact(first: str | None = None, **fields: Any) -> Contact:
    if first is None and not any(k in fields for k in ("last_name", "emails", "phones")):
        fields["last_name"] = "Anon"
    return Contact(first_name=first, **fields)


class ConformanceSuite(
    PermissionsConformance,
    DedupeConformance,
    OperationsConformance,
    AnalyticsConformance,
    ImportExportConformance,
    KnowledgeConformance,
    InsightsConformance,
    PrivacyConformance,
    RelatedConformance,
    AuditConformance,
    EmailConformance,
    CommerceConformance,
    CustomReportsConformance,
    GeoConformance,
):
    """Behaviour tests every backend must pass; subclass it and provide a ``crm`` fixture.

    The fixture must be function-scoped and yield a fresh, empty :class:`crmkit.CRM`.
    """

    @pytest.fixture
    def crm(self) -> CRM:
        """Overridden by each backend's test class: a fresh, empty CRM on that backend."""
        pytest.fail(
            "a ConformanceSuite subclass must define a function-scoped `crm` fixture yielding "
            "a fresh, empty crmkit.CRM"
        )

    # --- add / get / update / delete ------------------------------------------------------

    def test_add_sets_id_version_and_utc_timestamps(self, crm: CRM) -> None:
        """add() returns the record with a string id, version 1 and equal UTC timestamps."""
        before = dt.datetime.now(UTC) - dt.timedelta(seconds=1)
        ada = crm.contacts.add(Contact(first_name="Ada"))
        assert isinstance(ada.id, str)
        assert ada.id
        assert ada.version == 1
        for stamp in (ada.created_at, ada.updated_at):
            assert stamp is not None
            assert stamp.utcoffset() == dt.timedelta(0)
            assert before <= stamp <= dt.datetime.now(UTC) + dt.timedelta(seconds=1)
        assert ada.created_at == ada.updated_at
        assert crm.contacts.get(ada.id) == ada

    def test_add_ignores_storage_fields_given_by_the_caller(self, crm: CRM) -> None:
        """id, version and timestamps passed on add are replaced by the repository's."""
        old = dt.datetime(2001, 1, 1, tzinfo=UTC)
        ada = crm.contacts.add(
            Contact(id="mine", version=7, created_at=old, updated_at=old, first_name="Ada")
        )
        assert ada.id != "mine"
        assert ada.version == 1
        assert ada.created_at != old
        assert ada.updated_at != old
        with pytest.raises(NotFound):
            crm.contacts.get("mine")
        assert crm.contacts.get(ada.id or "") == ada

    def test_ids_are_unique_and_time_ordered(self, crm: CRM) -> None:
        """Ids of successive adds (single and bulk) are distinct and increase."""
        singles = [crm.contacts.add(_contact(f"c{i}")) for i in range(20)]
        bulk = crm.contacts.add_many(_contact(f"b{i}") for i in range(200))
        ids = [e.id or "" for e in [*singles, *bulk]]
        assert len(set(ids)) == len(ids)
        assert ids == sorted(ids)
        stamps = [e.created_at for e in singles]
        assert stamps == sorted(stamps)  # type: ignore[type-var]
        assert _ids(crm.contacts.find()) == ids  # default order is the id

    @pytest.mark.parametrize("collection", sorted(full_entities()))
    def test_round_trip_of_every_field_kind(self, crm: CRM, collection: str) -> None:
        """A record with every field set reads back equal, by get, find and get_many."""
        original = full_entities()[collection]
        repo: Repository[Any] = crm.repository(collection)
        added = repo.add(original)
        assert _content(added) == _content(original)
        assert added.id is not None
        got = repo.get(added.id)
        assert got == added
        assert type(got) is type(original)
        assert repo.find(F.id == added.id) == [added]
        assert repo.get_many([added.id]) == [added]
        updated = repo.update(attrs.evolve(got))
        assert _content(updated) == _content(original)
        assert repo.get(added.id) == updated

    @pytest.mark.parametrize("collection", sorted(full_entities()))
    @_ROUND_TRIP
    @given(data=st.data())
    def test_round_trip_of_generated_entities(
        self, crm: CRM, collection: str, data: st.DataObject
    ) -> None:
        """Random valid entities (wide custom values: any text, float, 64-bit int) read back
        equal."""
        repo: Repository[Any] = crm.repository(collection)
        entity = data.draw(cs.entities(repo.entity, wide_custom=True), label="entity")
        added = repo.add(entity)
        assert _content(added) == _content(entity)
        assert repo.get(added.id or "") == added

    def test_add_keeps_a_given_id_only_when_asked(self, crm: CRM) -> None:
        """``add`` ignores an id on the record unless ``keep_id``; a kept id a record holds
        already is a ConflictError, in one batch of ``add_many`` too, and nothing is written."""
        assert crm.contacts.add(Contact(id="c-1", first_name="New id")).id != "c-1"
        kept = crm.contacts.add({"id": "c-1", "first_name": "Ada"}, keep_id=True)
        assert crm.contacts.get("c-1") == kept
        with pytest.raises(ConflictError):
            crm.contacts.add(Contact(id="c-1", first_name="Bob"), keep_id=True)
        batch = [Contact(id="c-2", first_name="Cy"), Contact(id="c-1", first_name="Dee")]
        with pytest.raises(ConflictError):
            crm.contacts.add_many(batch, keep_ids=True)
        added = crm.contacts.add_many([batch[0], Contact(first_name="Eve")], keep_ids=True)
        assert added[0].id == "c-2"
        assert added[1].id not in (None, "c-1", "c-2")
        assert crm.contacts.count() == 4

    def test_add_many_refuses_items_repeating_unique_values_of_the_call(self, crm: CRM) -> None:
        """Two items of one ``add_many`` with the same ``unique_together`` values (two links
        joining one contact and one account): the later one is rejected with the reason
        under ``on_error="collect"``, in any batch of the call; under ``"raise"`` nothing
        is written."""
        ada = crm.contacts.add(Contact(first_name="Ada"))
        acme, fund = (crm.accounts.add(Account(name=n)) for n in ("Acme", "Fund"))
        links = [
            AccountContact(contact_id=ada.id or "", account_id=acme.id or ""),
            AccountContact(contact_id=ada.id or "", account_id=fund.id or ""),
            AccountContact(
                contact_id=ada.id or "", account_id=acme.id or "", role=AccountRole.CONSULTANT
            ),
        ]
        with pytest.raises(ValidationError, match="repeats the contact_id and account_id"):
            crm.account_contacts.add_many(links)
        assert crm.account_contacts.count() == 0
        result = crm.account_contacts.add_many(links, on_error="collect", batch_size=2)
        assert [(x.account_id, x.role) for x in result] == [
            (acme.id, AccountRole.EMPLOYEE),
            (fund.id, AccountRole.EMPLOYEE),
        ]
        assert [r.index for r in result.rejected] == [2]
        assert crm.account_contacts.count() == 2

    def test_get_update_delete_of_missing_id_raise_not_found(self, crm: CRM) -> None:
        """A missing id gives NotFound on get, update and delete."""
        gone = crm.contacts.add(Contact(first_name="Gone"))
        crm.contacts.delete(gone.id or "")
        ids: list[Any] = [gone.id or "", "no-such-id", 5, None]
        for missing in ids:
            with pytest.raises(NotFound):
                crm.contacts.get(missing)
        for missing in [*ids, ["a", "list"]]:
            with pytest.raises(NotFound):
                crm.contacts.delete(missing)
        assert crm.contacts.get_many([["a", "list"], 5, gone.id or ""]) == []  # type: ignore[list-item]
        with pytest.raises(NotFound):
            crm.contacts.update(attrs.evolve(gone, title="CTO"))
        assert crm.contacts.count() == 0
        with pytest.raises(NotFound):
            crm.accounts.get("no-such-id")

    def test_update_bumps_version_and_keeps_created_at(self, crm: CRM) -> None:
        """update() stores the change as version + 1; created_at never moves."""
        ada = crm.contacts.add(Contact(first_name="Ada", title="CEO"))
        ada2 = crm.contacts.update(attrs.evolve(ada, title="CTO"))
        assert ada2.version == 2
        assert ada2.title == "CTO"
        assert ada2.id == ada.id
        assert ada2.created_at == ada.created_at
        assert ada2.updated_at is not None
        assert ada.updated_at is not None
        assert ada2.updated_at >= ada.updated_at
        ada3 = crm.contacts.update(attrs.evolve(ada2, title=None, tags=("x",)))
        assert ada3.version == 3
        assert crm.contacts.get(ada.id or "") == ada3
        assert crm.contacts.count(F.title.exists()) == 0

    def test_update_ignores_caller_timestamps_and_id_is_required(self, crm: CRM) -> None:
        """created_at cannot be rewritten by update; updating an unsaved entity is invalid."""
        ada = crm.contacts.add(Contact(first_name="Ada"))
        old = dt.datetime(2001, 1, 1, tzinfo=UTC)
        ada2 = crm.contacts.update(attrs.evolve(ada, created_at=old, first_name="Ada B"))
        assert ada2.created_at == ada.created_at
        with pytest.raises(ValidationError):
            crm.contacts.update(Contact(first_name="Never added"))
        assert crm.contacts.find() == [ada2]

    def test_delete_removes_only_that_record(self, crm: CRM) -> None:
        """delete() removes one record; the others are untouched."""
        a, b = crm.contacts.add_many([_contact("A"), _contact("B")])
        crm.contacts.delete(a.id or "")
        assert crm.contacts.find() == [b]
        assert crm.contacts.count() == 1
        assert crm.contacts.get_many([a.id or "", b.id or ""]) == [b]

    def test_get_many_keeps_the_requested_order(self, crm: CRM) -> None:
        """get_many() returns found records in the order asked, missing ids left out."""
        a, b, c = crm.contacts.add_many([_contact("A"), _contact("B"), _contact("C")])
        asked = [c.id or "", "missing", a.id or "", c.id or "", b.id or ""]
        assert crm.contacts.get_many(asked) == [c, a, b]

    def test_wrong_entity_type_is_rejected_without_trace(self, crm: CRM) -> None:
        """Adding an Account to contacts is a ValidationError naming field, value, reason."""
        acme = Account(name="Acme")
        with pytest.raises(ValidationError) as caught:
            crm.contacts.add(acme)  # type: ignore[arg-type]
        error = caught.value
        assert error.field
        assert error.reason
        assert error.value is acme
        assert crm.contacts.count() == 0
        assert crm.accounts.count() == 0

    # --- bulk -----------------------------------------------------------------------------

    def test_add_many_returns_every_record_in_order_across_batches(self, crm: CRM) -> None:
        """add_many() stores every item, in order, whatever the batch size."""
        items = [_contact(f"p{i:04d}", tags=(f"t{i % 7}",)) for i in range(2500)]
        added = crm.contacts.add_many(items, batch_size=1000)
        assert len(added) == 2500
        assert [c.first_name for c in added] == [c.first_name for c in items]
        assert all(c.version == 1 and c.id for c in added)
        assert len({c.id for c in added}) == 2500
        assert crm.contacts.count() == 2500
        assert crm.contacts.count(F.tags.contains("t3")) == len(
            [i for i in range(2500) if i % 7 == 3]
        )
        assert _ids(crm.contacts.find(limit=3, offset=999)) == _ids(added[999:1002])
        small = crm.accounts.add_many((Account(name=f"a{i}") for i in range(7)), batch_size=3)
        assert [a.name for a in small] == [f"a{i}" for i in range(7)]
        assert len(crm.accounts.add_many([])) == 0

    @pytest.mark.parametrize("bad_index", [1, 1500])
    def test_add_many_with_an_invalid_item_writes_nothing(self, crm: CRM, bad_index: int) -> None:
        """An invalid item (first batch or a later one) rolls the whole call back."""
        seen: list[Event] = []
        crm.events.subscribe(Created, seen.append)
        existing = crm.contacts.add(_contact("Existing"))
        seen.clear()

        def items() -> Iterator[Any]:
            for i in range(2000):
                yield Account(name="wrong type") if i == bad_index else _contact(f"n{i}")

        with pytest.raises(ValidationError):
            crm.contacts.add_many(items(), batch_size=1000)
        assert crm.contacts.find() == [existing]
        assert crm.accounts.count() == 0
        assert seen == []

    def test_add_many_when_the_source_fails_later_writes_nothing(self, crm: CRM) -> None:
        """A ValidationError raised while producing item 1500 leaves no trace either."""

        def items() -> Iterator[Contact]:
            for i in range(2000):
                yield Contact(first_name=i if i == 1500 else f"n{i}")  # type: ignore[arg-type]

        with pytest.raises(ValidationError) as caught:
            crm.contacts.add_many(items(), batch_size=1000)
        assert caught.value.field == "contact.first_name"
        assert crm.contacts.count() == 0

    def test_add_many_collect_writes_valid_rows_and_reports_rejected(self, crm: CRM) -> None:
        """on_error="collect" writes the valid rows and lists the others with index and
        reasons."""
        wrong = Account(name="wrong")
        items: list[Any] = [_contact("A"), wrong, _contact("B"), _contact("C"), wrong]
        result = crm.contacts.add_many(items, on_error="collect", batch_size=2)
        assert [c.first_name for c in result] == ["A", "B", "C"]
        assert [r.index for r in result.rejected] == [1, 4]
        assert all(r.item is wrong for r in result.rejected)
        for rejected in result.rejected:
            assert rejected.reasons
            assert all(isinstance(s, str) and s for s in rejected.reasons)
            assert all(isinstance(e, ValidationError) for e in rejected.errors)
        assert sorted(c.first_name or "" for c in crm.contacts.find()) == ["A", "B", "C"]

    # --- filters: operators and None --------------------------------------------------------

    def test_missing_values_never_match_comparisons_and_not_is_two_valued(self, crm: CRM) -> None:
        """None/missing never matches a comparison (!= included); ~ is plain negation."""
        ceo = crm.contacts.add(Contact(first_name="Ceo", title="CEO"))
        cto = crm.contacts.add(Contact(first_name="Cto", title="CTO"))
        none = crm.contacts.add(Contact(first_name="None"))

        def names(where: Expr) -> set[str | None]:
            return {c.first_name for c in crm.contacts.find(where)}

        assert names(F.title == "CEO") == {"Ceo"}
        assert names(F.title != "CEO") == {"Cto"}
        assert names(~(F.title == "CEO")) == {"Cto", "None"}
        assert names(~(F.title != "CEO")) == {"Ceo", "None"}
        assert names(F.title < "CTO") == {"Ceo"}
        assert names(~(F.title < "CTO")) == {"Cto", "None"}
        assert names(F.title.in_(["CEO", "CTO"])) == {"Ceo", "Cto"}
        assert names(~F.title.in_(["CEO"])) == {"Cto", "None"}
        assert names(F.title.exists()) == {"Ceo", "Cto"}
        assert names(~F.title.exists()) == {"None"}
        assert names(F.title.contains("")) == {"Ceo", "Cto"}
        assert names(~F.title.contains("C")) == {"None"}
        assert names(~~(F.title == "CEO")) == {"Ceo"}
        assert names(F.custom.tier != "gold") == set()
        assert names(~(F.custom.tier == "gold")) == {"Ceo", "Cto", "None"}
        assert names(F.address.city != "Paris") == set()
        assert crm.contacts.count(~(F.title == "CEO")) == 2
        assert {ceo.id, cto.id, none.id} == {c.id for c in crm.contacts.find()}

    def test_comparison_operators_on_numbers_dates_and_datetimes(self, crm: CRM) -> None:
        """== != < <= > >= and between on Decimal, date and datetime fields."""
        base = dt.datetime(2024, 1, 1, tzinfo=UTC)
        deals = crm.deals.add_many(
            Deal(
                name=f"d{i}",
                probability=Decimal(i) / 4,
                close_date=dt.date(2024, 1, 1) + dt.timedelta(days=i),
                stage_entered_at=base + dt.timedelta(hours=i),
            )
            for i in range(5)
        )

        def names(where: Expr) -> list[Any]:
            return _values(crm.deals, where, "name")

        assert names(F.probability == Decimal("0.5")) == ["d2"]
        assert names(F.probability == 0.5) == ["d2"]
        assert names(F.probability != Decimal("0.5")) == ["d0", "d1", "d3", "d4"]
        assert names(F.probability < Decimal("0.5")) == ["d0", "d1"]
        assert names(F.probability <= Decimal("0.5")) == ["d0", "d1", "d2"]
        assert names(F.probability > Decimal("0.5")) == ["d3", "d4"]
        assert names(F.probability >= 1) == ["d4"]
        assert names(F.close_date.between(dt.date(2024, 1, 2), dt.date(2024, 1, 4))) == [
            "d1",
            "d2",
            "d3",
        ]
        assert names(F.close_date > dt.date(2024, 1, 4)) == ["d4"]
        later = base + dt.timedelta(hours=2)
        assert names(F.stage_entered_at == later) == ["d2"]
        west = later.astimezone(dt.timezone(-dt.timedelta(hours=5)))
        assert names(F.stage_entered_at >= west) == ["d2", "d3", "d4"]
        assert names(F.stage_entered_at > later) == ["d3", "d4"]
        assert names(F.stage_entered_at.between(base, later)) == ["d0", "d1", "d2"]
        assert names(F.version == 1) == [d.name for d in deals]
        assert names(F.version > 1) == []

    def test_in_operator_on_scalars_lists_enums_and_empty(self, crm: CRM) -> None:
        """in_ matches a scalar in the values, a list with any element in them; [] matches
        nothing."""
        crm.contacts.add_many(
            [
                _contact("A", tags=("x", "y"), lifecycle_stage="lead"),
                _contact("B", tags=("z",), lifecycle_stage="customer"),
                _contact("C"),
            ]
        )

        def names(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        assert names(F.first_name.in_(["A", "C", "Q"])) == ["A", "C"]
        assert names(F.tags.in_(["y", "q"])) == ["A"]
        assert names(F.tags.in_(["z", "x"])) == ["A", "B"]
        assert names(F.lifecycle_stage.in_(["customer", "evangelist"])) == ["B"]
        assert names(F.first_name.in_([])) == []
        assert names(~F.first_name.in_([])) == ["A", "B", "C"]
        assert names(~F.tags.in_(["x"])) == ["B", "C"]

    def test_contains_is_element_on_lists_and_substring_on_text(self, crm: CRM) -> None:
        """contains(x) on a list means "has element x", never a substring of an element."""
        crm.contacts.add_many(
            [
                _contact("Alpha", tags=("alpha", "beta"), emails=("ada@example.com",)),
                _contact("Gamma", tags=("gamma",), phones=("+14155550123",)),
            ]
        )

        def names(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        assert names(F.tags.contains("alpha")) == ["Alpha"]
        assert names(F.tags.contains("alp")) == []
        assert names(F.tags.contains("Alpha")) == []
        assert names(F.emails.contains("ada@example.com")) == ["Alpha"]
        assert names(F.emails.contains("ada")) == []
        assert names(F.phones.contains("+14155550123")) == ["Gamma"]
        assert names(F.first_name.contains("lph")) == ["Alpha"]
        assert names(F.first_name.contains("LPH")) == []
        assert names(F.first_name.contains("mm")) == ["Gamma"]
        assert names(~F.tags.contains("gamma")) == ["Alpha"]
        assert names(F.tags.icontains("ETA")) == ["Alpha"]
        assert names(F.tags.startswith("gam")) == ["Gamma"]
        assert names(F.tags.startswith("amm")) == []

    def test_text_operators_are_case_sensitive_unless_i(self, crm: CRM) -> None:
        """==, contains, startswith and in_ respect case; icontains does not."""
        crm.contacts.add_many([_contact("Ada"), _contact("ada"), _contact("ADA")])

        def names(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        assert names(F.first_name == "ada") == ["ada"]
        assert names(F.first_name.in_(["Ada"])) == ["Ada"]
        assert names(F.first_name.contains("DA")) == ["ADA"]
        assert names(F.first_name.startswith("a")) == ["ada"]
        assert names(F.first_name.startswith("Ad")) == ["Ada"]
        assert names(F.first_name.icontains("dA")) == ["Ada", "ada", "ADA"]
        assert names(F.first_name != "ADA") == ["Ada", "ada"]

    @pytest.mark.parametrize(
        ("stored", "needle", "other"),
        [
            ("Élodie", "élo", "Elodie"),
            ("élodie", "ÉLO", "Elodie"),
            ("ÅSA ÖBERG", "åsa ö", "Asa Oberg"),
            ("Ωμέγα", "ΩΜΈΓ", "Omega"),
            ("αθηνά", "ΑΘΗΝ", "Athina"),
            ("Дмитрий", "дМИТ", "Dmitri"),
            ("ЖАННА", "жанна", "Zhanna"),
        ],
    )
    def test_icontains_folds_case_beyond_ascii(
        self, crm: CRM, stored: str, needle: str, other: str
    ) -> None:
        """icontains folds case for all of Unicode; == and contains stay case-sensitive."""
        crm.contacts.add_many([_contact(stored, tags=(stored,)), _contact(other, tags=(other,))])

        def names(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        assert names(F.first_name.icontains(needle)) == [stored]
        assert names(F.tags.icontains(needle)) == [stored]
        assert names(F.first_name.contains(needle)) == []
        assert names(F.first_name == stored.swapcase()) == []
        assert names(F.first_name.startswith(stored[:2].swapcase())) == []

    def test_startswith_and_exists(self, crm: CRM) -> None:
        """startswith is a case-sensitive prefix test; exists means set / non-empty."""
        crm.contacts.add_many(
            [
                _contact("Ann", tags=("t",), address=Address(city="Paris")),
                _contact("Annabel", address=Address(country="FR")),
                _contact("Bob", custom={"tier": "gold", "labels": []}),
                _contact(None, last_name="Nobody", custom={"labels": ["x"], "zero": 0, "f": False}),
            ]
        )

        def names(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        assert names(F.first_name.startswith("Ann")) == ["Ann", "Annabel"]
        assert names(F.first_name.startswith("nn")) == []
        assert names(F.first_name.startswith("")) == ["Ann", "Annabel", "Bob"]
        assert names(F.first_name.exists()) == ["Ann", "Annabel", "Bob"]
        assert names(F.tags.exists()) == ["Ann"]
        assert names(~F.tags.exists()) == ["Annabel", "Bob", None]
        assert names(F.address.exists()) == ["Ann", "Annabel"]
        assert names(F.address.city.exists()) == ["Ann"]
        assert names(~F.address.city.exists()) == ["Annabel", "Bob", None]
        assert names(F.custom.tier.exists()) == ["Bob"]
        assert names(F.custom.labels.exists()) == [None]  # an empty list does not exist
        assert names(F.custom.zero.exists()) == [None]  # 0 and False are values
        assert names(F.custom.f.exists()) == [None]
        assert names(F.do_not_contact.exists()) == ["Ann", "Annabel", "Bob", None]

    def test_between_and_within_last(self, crm: CRM) -> None:
        """between is inclusive on both ends; within_last counts back from now."""
        now = dt.datetime.now(UTC)
        crm.interactions.add_many(
            Interaction(kind=InteractionKind.NOTE, subject=name, occurred_at=now - age)
            for name, age in [
                ("hour", dt.timedelta(hours=1)),
                ("3 days", dt.timedelta(days=3)),
                ("month", dt.timedelta(days=30)),
                ("future", -dt.timedelta(days=1)),
            ]
        )

        def subjects(where: Expr) -> set[Any]:
            return set(_values(crm.interactions, where, "subject"))

        assert subjects(F.occurred_at.within_last(dt.timedelta(days=2))) == {"hour", "future"}
        assert subjects(F.occurred_at.within_last(dt.timedelta(days=10))) == {
            "hour",
            "3 days",
            "future",
        }
        assert subjects(~F.occurred_at.within_last(dt.timedelta(days=2))) == {"3 days", "month"}
        assert subjects(F.created_at.within_last(dt.timedelta(minutes=10))) == {
            "hour",
            "3 days",
            "month",
            "future",
        }
        low, high = now - dt.timedelta(days=3), now - dt.timedelta(hours=1)
        assert subjects(F.occurred_at.between(low, high)) == {"hour", "3 days"}
        assert subjects(F.subject.between("3", "hour")) == {"3 days", "future", "hour"}
        assert subjects(F.subject.between("hour", "3")) == set()

    def test_and_or_not_combine(self, crm: CRM) -> None:
        """&, | and ~ nest to any depth with boolean meaning."""
        crm.contacts.add_many(
            [
                _contact("A", title="CEO", tags=("vip",)),
                _contact("B", title="CTO"),
                _contact("C", tags=("vip",)),
                _contact("D"),
            ]
        )

        def names(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        vip, ceo = F.tags.contains("vip"), F.title == "CEO"
        assert names(vip & ceo) == ["A"]
        assert names(vip | ceo) == ["A", "C"]
        assert names(~(vip | ceo)) == ["B", "D"]
        assert names(~vip & ~ceo) == ["B", "D"]
        assert names(~(vip & ceo)) == ["B", "C", "D"]
        assert names((vip & ~ceo) | (F.title == "CTO")) == ["B", "C"]
        assert names(~(~vip | (F.first_name == "A")) | ~F.title.exists() & ~vip) == ["C", "D"]

    # --- ordering, windows, paging, counts ----------------------------------------------

    def test_text_sorts_by_code_point_and_none_sorts_last(self, crm: CRM) -> None:
        """'Z' < 'a' < 'b' < 'É' < 'é'; None is last ascending and descending."""
        crm.contacts.add_many(
            _contact(n, last_name="x") for n in ["b", None, "é", "Z", "a", "É", "Ω", "д"]
        )

        def order(by: Any) -> list[Any]:
            return _values(crm.contacts, None, order_by=by)

        asc = ["Z", "a", "b", "É", "é", "Ω", "д", None]
        assert order("first_name") == asc
        assert order(F.first_name.asc()) == asc
        assert order("-first_name") == [*reversed(asc[:-1]), None]
        assert order(F.first_name.desc()) == [*reversed(asc[:-1]), None]
        names = [c.first_name for c in crm.contacts.find(F.first_name < "a")]
        assert names == ["Z"]
        assert sorted(c.first_name or "" for c in crm.contacts.find(F.first_name > "b")) == [
            "É",
            "é",
            "Ω",
            "д",
        ]

    def test_multi_key_ordering_limit_and_offset(self, crm: CRM) -> None:
        """Several sort keys apply in turn, then the id; limit/offset window the result."""
        rows = [("b", "CTO", 2), ("a", "CEO", 1), ("c", None, 3), ("d", "CEO", 4), ("e", None, 5)]
        added = crm.contacts.add_many(
            _contact(n, title=t, address=Address(city=f"City{k}")) for n, t, k in rows
        )

        def first(by: Any, **options: Any) -> list[Any]:
            return _values(crm.contacts, None, order_by=by, **options)

        assert first(["title", "-first_name"]) == ["d", "a", "b", "e", "c"]
        assert first(["-title", "first_name"]) == ["b", "a", "d", "c", "e"]
        assert first(["title", F.first_name.desc()], limit=2) == ["d", "a"]
        assert first(["title", "-first_name"], limit=2, offset=2) == ["b", "e"]
        assert first("-address.city", offset=3) == ["b", "a"]
        assert first("first_name", limit=0) == []
        assert first("first_name", offset=10) == []
        assert first(["title"]) == ["a", "d", "b", "c", "e"]  # ties broken by id (insertion)
        assert first(None) == [c.first_name for c in added]
        assert first(["-id"]) == [c.first_name for c in reversed(added)]

    def test_keyset_paging_walks_everything_once(self, crm: CRM) -> None:
        """Walking pages gives the full sorted result; the last page has no cursor."""
        added = crm.contacts.add_many(
            _contact(None if i % 4 == 0 else f"n{i % 5}", last_name=f"l{i:02d}") for i in range(23)
        )
        for order in (None, "first_name", "-first_name", ["-first_name", "-last_name"]):
            walked = _walk_pages(crm.contacts, None, order, 5, 10)
            assert _ids(walked) == _ids(crm.contacts.find(order_by=order))
            assert _ids(walked) == _ids(reference.find(added, order_by=order))
        where = F.first_name.in_(["n1", "n2"])
        assert _ids(_walk_pages(crm.contacts, where, "first_name", 2, 10)) == _ids(
            crm.contacts.find(where, order_by="first_name")
        )
        empty = crm.contacts.page(F.first_name == "nobody")
        assert list(empty) == []
        assert empty.next_cursor is None
        exact = crm.contacts.page(limit=23)
        assert len(exact) == 23
        assert exact.next_cursor is None

    def test_keyset_paging_neither_skips_nor_repeats_when_records_are_added(self, crm: CRM) -> None:
        """Records added before the cursor position do not shift the following pages."""
        originals = crm.contacts.add_many(_contact(f"m{i:02d}") for i in range(10))
        page = crm.contacts.page(order_by="first_name", limit=4)
        crm.contacts.add_many([_contact("a-early"), _contact("m00a")])
        cursor = page.next_cursor
        seen = list(page)
        while cursor is not None:
            nxt = crm.contacts.page(order_by="first_name", limit=4, after=cursor)
            seen.extend(nxt)
            cursor = nxt.next_cursor
        names = [c.first_name for c in seen]
        assert names == [f"m{i:02d}" for i in range(10)]
        assert {c.id for c in seen} == {c.id for c in originals}
        with pytest.raises(ValidationError):
            crm.contacts.page(order_by="last_name", after=page.next_cursor)
        with pytest.raises(ValidationError):
            crm.contacts.page(order_by="first_name", after="not a cursor")

    def test_count(self, crm: CRM) -> None:
        """count() counts all records or the matching ones."""
        assert crm.contacts.count() == 0
        crm.contacts.add_many(
            _contact(f"n{i}", tags=("even",) if i % 2 == 0 else []) for i in range(9)
        )
        assert crm.contacts.count() == 9
        assert crm.contacts.count(F.tags.contains("even")) == 5
        assert crm.contacts.count(~F.tags.contains("even")) == 4
        assert crm.contacts.count(F.first_name == "none") == 0
        assert crm.accounts.count() == 0

    # --- nested paths, custom fields, external ids ------------------------------------------

    def test_nested_paths_on_addresses_and_money(self, crm: CRM) -> None:
        """address.city and amount.amount / amount.currency filter and sort."""
        crm.contacts.add_many(
            [
                _contact("L", address=Address(city="London", country="GB")),
                _contact("P", address=Address(city="Paris", country="FR")),
                _contact("N"),
            ]
        )

        def cities(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        assert cities(F.address.city == "London") == ["L"]
        assert cities(F.address.country.in_(["FR", "DE"])) == ["P"]
        assert cities(~(F.address.city == "London")) == ["P", "N"]
        assert cities(F("address.city").startswith("Par")) == ["P"]
        crm.deals.add_many(
            [
                Deal(name="eur", amount=Money(amount=Decimal("100.50"), currency="EUR")),
                Deal(name="usd", amount=Money(amount=Decimal("2000"), currency="USD")),
                Deal(name="big", amount=Money(amount=Decimal("99999.99"), currency="EUR")),
                Deal(name="none"),
            ]
        )

        def deals(where: Expr | None, **options: Any) -> list[Any]:
            return _values(crm.deals, where, "name", **options)

        assert deals(F.amount.currency == "EUR") == ["eur", "big"]
        assert deals(F.amount.amount > 1000) == ["usd", "big"]
        assert deals(F.amount.amount == Decimal("100.5")) == ["eur"]
        assert deals(F.amount.amount.between(100, 2000)) == ["eur", "usd"]
        assert deals((F.amount.currency == "EUR") & (F.amount.amount < 1000)) == ["eur"]
        assert deals(~F.amount.exists()) == ["none"]
        assert deals(None, order_by="-amount.amount") == ["big", "usd", "eur", "none"]

    def test_custom_fields_compare_within_one_kind(self, crm: CRM) -> None:
        """A number never equals text; booleans are not numbers; 1 == 1.0."""
        crm.contacts.add_many(
            [
                _contact("int", custom={"v": 1}),
                _contact("float", custom={"v": 1.0}),
                _contact("text", custom={"v": "1"}),
                _contact("true", custom={"v": True}),
                _contact("big", custom={"v": 10}),
                _contact("list", custom={"v": [1, "1", True, "gold"]}),
                _contact("none", custom={}),
            ]
        )

        def names(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        assert names(F.custom.v == 1) == ["int", "float"]
        assert names(F.custom.v == 1.0) == ["int", "float"]
        assert names(F.custom.v == "1") == ["text"]
        assert names(F.custom.v == True) == ["true"]  # noqa: E712
        assert names(F.custom.v != 1) == ["big"]
        assert names(F.custom.v != "1") == []
        assert names(F.custom.v > 0) == ["int", "float", "big"]
        assert names(F.custom.v > "0") == ["text"]
        assert names(F.custom.v.between(0, 5)) == ["int", "float"]
        assert names(F.custom.v.in_([1, "x"])) == ["int", "float"]
        assert names(F.custom.v.in_([True])) == ["true"]
        assert names(F.custom.v.in_(["1"])) == ["text"]
        assert names(F.custom.v.contains(1)) == ["list"]
        assert names(F.custom.v.contains(True)) == ["list"]
        assert names(F.custom.v.contains("gold")) == ["list"]
        assert names(F.custom.v.contains("1")) == ["text", "list"]
        assert names(F.custom.v.icontains("GOL")) == ["list"]
        assert names(F.custom.v.startswith("go")) == ["list"]
        assert names(F.custom.v.exists()) == ["int", "float", "text", "true", "big", "list"]
        assert names(~F.custom.v.exists()) == ["none"]
        assert names(~(F.custom.v == 1)) == ["text", "true", "big", "list", "none"]
        with pytest.raises(ValidationError):
            crm.contacts.find(F.custom.v < True)

    def test_external_ids_filter(self, crm: CRM) -> None:
        """external_ids.<source> is a text field."""
        crm.contacts.add_many(
            [
                _contact("A", external_ids={"erp": "C-1", "shop": "S-1"}),
                _contact("B", external_ids={"erp": "C-2"}),
                _contact("C"),
            ]
        )

        def names(where: Expr) -> list[Any]:
            return _values(crm.contacts, where)

        assert names(F.external_ids.erp == "C-1") == ["A"]
        assert names(F.external_ids.erp.startswith("C-")) == ["A", "B"]
        assert names(F.external_ids.shop.exists()) == ["A"]
        assert names(~F.external_ids.erp.exists()) == ["C"]
        assert names(F.external_ids.erp.in_(["C-2", "C-3"])) == ["B"]

    # --- hostile values -------------------------------------------------------------------

    def test_hostile_values_are_data_never_syntax(self, crm: CRM) -> None:
        """Strings that are SQL, LIKE, regex or Mongo syntax match only the records holding
        them, with ==, contains, icontains, startswith and in_, on text, lists and custom
        fields."""
        values = [*HOSTILE_VALUES, *_DECOYS]
        stored = crm.contacts.add_many(
            _contact(
                f"n{i}",
                title=v,
                tags=(v,),
                custom={"note": v},
                external_ids={"erp": v},
            )
            for i, v in enumerate(values)
        )
        paths = ("title", "tags", "custom.note", "external_ids.erp")
        for value in values:
            holder = next(c for c in stored if c.title == value)
            for path in paths:
                field = F(path)
                exact = [field == value] if path != "tags" else []
                for where in [
                    *exact,
                    field.contains(value),
                    field.icontains(value),
                    field.startswith(value),
                    field.in_([value]),
                    field.in_([value, "no such value"]),
                ]:
                    got = _ids(crm.contacts.find(where))
                    want = _ids(reference.find(stored, where))
                    assert got == want, f"{where!r}: got {got}, expected {want}"
                    assert holder.id in got, f"{where!r} must match the record holding {value!r}"
                    assert crm.contacts.count(where) == len(want)
            for where in (F.title == value, F.tags.contains(value), F.custom.note == value):
                assert _ids(crm.contacts.find(where)) == [holder.id]
        assert crm.contacts.count() == len(values)
        assert crm.contacts.find() == list(stored)

    def test_operator_like_mappings_are_rejected_not_executed(self, crm: CRM) -> None:
        """A dict or other structure as a filter value is a ValidationError."""
        crm.contacts.add(_contact("A", title="x"))
        with pytest.raises(ValidationError):
            crm.contacts.find(F.title == {"$ne": None})
        with pytest.raises(ValidationError):
            crm.contacts.find(F.title.in_([{"$gt": ""}]))
        with pytest.raises(ValidationError):
            crm.contacts.find(from_dict({"field": "title", "op": "eq", "value": {"$ne": None}}))
        with pytest.raises(ValidationError):
            crm.contacts.find(from_dict({"field": "title", "op": "$where", "value": "1"}))
        with pytest.raises(ValidationError):
            crm.contacts.find(F("title; DROP TABLE contacts") == "x")
        with pytest.raises(ValidationError):
            crm.contacts.find(F("custom.a'b") == "x")
        assert crm.contacts.count() == 1

    # --- validation -----------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("build", "field"),
        [
            (lambda: F.no_such_field == 1, "field"),
            (lambda: F.address.nowhere == "x", "field"),
            (lambda: F.first_name == 5, "first_name"),
            (lambda: F.emails == "ada@example.com", "emails"),
            (lambda: F.do_not_contact < True, "do_not_contact"),
            (lambda: F.version == "one", "version"),
            (lambda: F.created_at > dt.date(2024, 1, 1), "created_at"),
            (lambda: F.lifecycle_stage == "no-such-stage", "lifecycle_stage"),
            (lambda: F.version.icontains("1"), "version"),
            (lambda: F.address == "x", "address"),
            (lambda: F.first_name.within_last(dt.timedelta(days=1)), "first_name"),
        ],
    )
    def test_invalid_filters_raise_validation_error(
        self, crm: CRM, build: Callable[[], Expr], field: str
    ) -> None:
        """Unknown fields, wrong value types and operators that do not apply are rejected."""
        crm.contacts.add(_contact("A"))
        with pytest.raises(ValidationError) as caught:
            crm.contacts.find(build())
        assert caught.value.field == field
        assert caught.value.reason
        with pytest.raises(ValidationError):
            crm.contacts.count(build())

    def test_invalid_orders_windows_and_operators_raise_validation_error(self, crm: CRM) -> None:
        """Bad order_by, limit, offset or operator names are ValidationErrors."""
        for order in ("no_such_field", "tags", "custom.tier", "address", ["first_name"] * 2):
            with pytest.raises(ValidationError):
                crm.contacts.find(order_by=order)
        with pytest.raises(ValidationError) as caught:
            crm.contacts.find(limit=-1)
        assert (caught.value.field, caught.value.value) == ("limit", -1)
        with pytest.raises(ValidationError):
            crm.contacts.find(offset=-1)
        with pytest.raises(ValidationError):
            crm.contacts.page(limit=0)
        with pytest.raises(ValidationError) as caught:
            from_dict({"field": "first_name", "op": "regex", "value": ".*"})
        assert caught.value.value == "regex"

    # --- query round trip through plain data -----------------------------------------------

    def test_expression_dict_round_trip_gives_the_same_results(self, crm: CRM) -> None:
        """from_dict(json(to_dict(expr))) selects exactly what expr selects; so does a stored
        segment rule."""
        now = dt.datetime.now(UTC)
        stored = crm.contacts.add_many(
            [
                _contact("A", title="CEO", tags=("vip",), custom={"tier": "gold", "n": 3}),
                _contact("B", emails=("ada@example.com",), address=Address(city="Zürich")),
                _contact("C", custom={"tier": "silver", "n": 2.5}, lifecycle_stage="lead"),
                _contact("D", address=Address(latitude=Decimal("1.5"), longitude=Decimal("2"))),
            ]
        )
        expressions: list[Expr] = [
            F.title == "CEO",
            ~(F.title == "CEO"),
            F.tags.contains("vip") | F.emails.contains("ada@example.com"),
            F.custom.tier.in_(["gold", "silver"]) & (F.custom.n > 2),
            F.custom.n.between(2, 2.75),
            F.address.city.icontains("ZÜR"),
            F.address.latitude >= Decimal("1.25"),
            F.created_at.within_last(dt.timedelta(hours=1)),
            F.created_at.between(now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)),
            F.lifecycle_stage == "lead",
            F.first_name.startswith("A") | ~F.custom.tier.exists(),
        ]
        for expr in expressions:
            data = json.loads(json.dumps(expr.to_dict()))
            again = from_dict(data)
            assert again == expr
            assert _ids(crm.contacts.find(again)) == _ids(crm.contacts.find(expr))
            assert _ids(crm.contacts.find(expr)) == _ids(reference.find(stored, expr))
            segment = crm.segments.add(Segment(name="s", rule=expr.to_dict()))
            rule = crm.segments.get(segment.id or "").rule
            assert _ids(crm.contacts.find(from_dict(rule))) == _ids(crm.contacts.find(expr))

    # --- optimistic locking ---------------------------------------------------------------

    def test_stale_update_raises_conflict_and_writes_nothing(self, crm: CRM) -> None:
        """An update based on an old version is a ConflictError; the stored record is kept."""
        ada = crm.contacts.add(_contact("Ada", title="CEO"))
        ada2 = crm.contacts.update(attrs.evolve(ada, title="CTO"))
        with pytest.raises(ConflictError):
            crm.contacts.update(attrs.evolve(ada, title="Stale"))
        with pytest.raises(ConflictError):
            crm.contacts.update(attrs.evolve(ada2, version=5, title="Future"))
        assert crm.contacts.get(ada.id or "") == ada2
        with pytest.raises(ConflictError):
            crm.contacts.delete(ada.id or "", version=1)
        assert crm.contacts.get(ada.id or "") == ada2
        crm.contacts.delete(ada.id or "", version=2)
        assert crm.contacts.count() == 0

    def test_concurrent_read_modify_write_loses_no_update(self, crm: CRM) -> None:
        """Four threads incrementing one counter with retry-on-conflict lose nothing."""
        counter = crm.contacts.add(_contact("Counter", custom={"n": 0}))
        assert counter.id is not None
        errors: list[BaseException] = []
        rounds = 25

        def worker() -> None:
            try:
                for _ in range(rounds):
                    while True:
                        current = crm.contacts.get(counter.id or "")
                        bumped = {**current.custom, "n": current.custom["n"] + 1}
                        try:
                            crm.contacts.update(attrs.evolve(current, custom=bumped))
                            break
                        except ConflictError:
                            continue
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a writer hung"
        assert errors == []
        final = crm.contacts.get(counter.id)
        assert final.custom["n"] == 4 * rounds
        assert final.version == 4 * rounds + 1

    # --- transactions and events ----------------------------------------------------------

    def test_transaction_commits_on_normal_exit(self, crm: CRM) -> None:
        """Writes made in a transaction are all there after it ends."""
        with crm.transaction():
            acme = crm.accounts.add(Account(name="Acme"))
            ada = crm.contacts.add(_contact("Ada", account_id=acme.id))
            ada = crm.contacts.update(attrs.evolve(ada, title="CEO"))
            assert crm.contacts.get(ada.id or "") == ada
        assert crm.contacts.find() == [ada]
        assert crm.accounts.find() == [acme]
        assert crm.contacts.count(F.account_id == acme.id) == 1

    def test_transaction_rolls_back_every_collection_on_error(self, crm: CRM) -> None:
        """An exception undoes adds, updates, deletes and bulk adds in every collection."""
        acme = crm.accounts.add(Account(name="Acme"))
        deal = crm.deals.add(Deal(name="Deal", amount=Money(amount=Decimal(1), currency="EUR")))
        task = crm.tasks.add(Task(title="Task"))

        def work() -> None:
            crm.contacts.add(_contact("Gone"))
            crm.accounts.add(Account(name="Gone"))
            crm.accounts.update(attrs.evolve(acme, name="Changed"))
            crm.deals.update(attrs.evolve(deal, name="Changed"))
            crm.tasks.delete(task.id or "")
            crm.interactions.add_many(
                Interaction(kind=InteractionKind.NOTE, occurred_at=dt.datetime.now(UTC))
                for _ in range(5)
            )

        with pytest.raises(_Boom):
            _transaction(crm, work, fail=True)
        assert crm.contacts.count() == 0
        assert crm.interactions.count() == 0
        assert crm.accounts.find() == [acme]
        assert crm.deals.get(deal.id or "") == deal
        assert crm.tasks.get(task.id or "") == task
        # the rolled-back update did not consume the version either
        assert crm.deals.update(attrs.evolve(deal, name="Now")).version == 2

    def test_failed_write_inside_a_transaction_rolls_back_the_whole_transaction(
        self, crm: CRM
    ) -> None:
        """A ConflictError escaping a transaction undoes the writes made before it."""
        ada = crm.contacts.add(_contact("Ada"))
        crm.contacts.update(attrs.evolve(ada, title="v2"))

        def work() -> None:
            crm.accounts.add(Account(name="Gone"))
            crm.contacts.update(attrs.evolve(ada, title="stale"))

        with pytest.raises(ConflictError):
            _transaction(crm, work)
        assert crm.accounts.count() == 0
        assert crm.contacts.get(ada.id or "").title == "v2"

    def test_nested_transaction_is_a_savepoint(self, crm: CRM) -> None:
        """An inner failure caught by the outer block undoes only the inner writes."""

        def inner() -> None:
            crm.contacts.add(_contact("Inner"))
            crm.accounts.add(Account(name="Inner"))
            crm.contacts.update(attrs.evolve(outer, title="inner"))

        with crm.transaction():
            outer = crm.contacts.add(_contact("Outer"))
            with pytest.raises(_Boom):
                _transaction(crm, inner, fail=True)
            assert crm.contacts.get(outer.id or "") == outer
            with crm.transaction():
                kept = crm.contacts.add(_contact("Kept"))
            after = crm.contacts.add(_contact("After"))
        assert crm.contacts.find() == [outer, kept, after]
        assert crm.accounts.count() == 0

        def committed_inner() -> None:
            _transaction(crm, lambda: crm.contacts.add(_contact("Inner committed")))

        with pytest.raises(_Boom):
            _transaction(crm, committed_inner, fail=True)
        assert crm.contacts.find() == [outer, kept, after]

    def test_events_are_published_after_commit_and_never_for_rollbacks(self, crm: CRM) -> None:
        """Created/Updated/Deleted reach subscribers after commit, never when rolled back."""
        seen: list[Event] = []
        crm.events.subscribe(Event, seen.append)
        with crm.transaction():
            ada = crm.contacts.add(_contact("Ada"))
            ada = crm.contacts.update(attrs.evolve(ada, title="CEO"))
            assert seen == []
        assert [type(e) for e in seen] == [Created, Updated]
        assert all(e.entity_id == ada.id and e.collection == "contacts" for e in seen)
        assert isinstance(seen[1], Updated)
        assert seen[1].after == ada
        seen.clear()

        def doomed() -> None:
            crm.contacts.add(_contact("Gone"))
            crm.contacts.delete(ada.id or "")

        with pytest.raises(_Boom):
            _transaction(crm, doomed, fail=True)
        assert seen == []
        with crm.transaction():
            with pytest.raises(_Boom):
                _transaction(crm, lambda: crm.contacts.add(_contact("Inner")), fail=True)
            grace = crm.contacts.add(_contact("Grace"))
        assert [(type(e), e.entity_id) for e in seen] == [(Created, grace.id)]
        seen.clear()
        crm.contacts.delete(grace.id or "")
        assert [(type(e), e.entity_id) for e in seen] == [(Deleted, grace.id)]
        seen.clear()
        crm.contacts.add_many([_contact("X"), _contact("Y")])
        assert [type(e) for e in seen] == [Created, Created]

    def test_after_commit_callbacks_run_once_committed_and_never_for_rollbacks(
        self, crm: CRM
    ) -> None:
        """``after_commit`` runs a callback at once outside a transaction, at the outermost
        commit inside one (seeing the committed data), and never for a rolled-back
        transaction or savepoint."""
        ran: list[str] = []
        crm.after_commit(lambda: ran.append("now"))
        assert ran == ["now"]
        with crm.transaction():
            ada = crm.contacts.add(_contact("Ada"))
            crm.after_commit(lambda: ran.append(crm.contacts.get(ada.id or "").first_name or ""))
            with crm.transaction():
                crm.after_commit(lambda: ran.append("inner"))
            with pytest.raises(_Boom):
                _transaction(crm, lambda: crm.after_commit(lambda: ran.append("gone")), fail=True)
            assert ran == ["now"]
        assert ran == ["now", "Ada", "inner"]
        with pytest.raises(_Boom):
            _transaction(crm, lambda: crm.after_commit(lambda: ran.append("gone")), fail=True)
        assert ran == ["now", "Ada", "inner"]

        def fail() -> None:
            raise _Boom

        # committed: a failing subscriber or callback does not stop the others
        crm.events.subscribe(Created, lambda event: fail())

        def work() -> None:
            crm.contacts.add(_contact("Bob"))
            crm.after_commit(fail)
            crm.after_commit(lambda: ran.append("still"))

        with pytest.raises(_Boom):
            _transaction(crm, work)
        assert ran[-1] == "still"
        assert crm.contacts.count(F.first_name == "Bob") == 1

    # --- differential property tests --------------------------------------------------------

    @_DIFFERENTIAL
    @given(
        records=st.lists(cs.contacts(), max_size=25),
        data=st.data(),
    )
    def test_differential_find_matches_reference(
        self, crm: CRM, records: list[Contact], data: st.DataObject
    ) -> None:
        """Random contacts and random filters/orders/windows: find() equals the reference."""
        _clear(crm)
        stored = list(crm.contacts.add_many(records))
        samples = cs.samples_from(stored, _CONTACT_PATHS)
        for _ in range(3):
            where = data.draw(cs.contact_filters(samples), label="where")
            order = data.draw(cs.orderings(Contact), label="order_by")
            limit = data.draw(st.none() | st.integers(0, 30), label="limit")
            offset = data.draw(st.integers(0, 30) if limit is not None else st.just(0))
            _assert_find(crm.contacts, stored, where, order, limit, offset)
            negated = ~where
            _assert_find(crm.contacts, stored, negated, order)

    @_DIFFERENTIAL
    @given(
        records=st.lists(cs.contacts(), max_size=25),
        data=st.data(),
    )
    def test_differential_count_matches_reference(
        self, crm: CRM, records: list[Contact], data: st.DataObject
    ) -> None:
        """count(where) equals the reference's count, and count(where) + count(~where) = all."""
        _clear(crm)
        stored = list(crm.contacts.add_many(records))
        samples = cs.samples_from(stored, _CONTACT_PATHS)
        for _ in range(3):
            where = data.draw(cs.contact_filters(samples), label="where")
            got = crm.contacts.count(where)
            assert got == reference.count(stored, where), repr(where)
            assert got + crm.contacts.count(~where) == len(stored), repr(where)

    @_DIFFERENTIAL
    @given(
        records=st.lists(cs.contacts(), max_size=25),
        data=st.data(),
    )
    def test_differential_page_walk_matches_reference(
        self, crm: CRM, records: list[Contact], data: st.DataObject
    ) -> None:
        """Walking every keyset page gives exactly the reference's full sorted result."""
        _clear(crm)
        stored = list(crm.contacts.add_many(records))
        samples = cs.samples_from(stored, _CONTACT_PATHS)
        where = data.draw(st.none() | cs.contact_filters(samples), label="where")
        order = data.draw(cs.orderings(Contact), label="order_by")
        size = data.draw(st.integers(1, 7), label="page size")
        walked = _walk_pages(crm.contacts, where, order, size, len(stored) + 2)
        want = _ids(reference.find(stored, where, order_by=order))
        assert _ids(walked) == want, f"where={where!r} order_by={order!r} size={size}"

    @_DIFFERENTIAL
    @given(
        records=st.lists(cs.accounts(), max_size=20),
        data=st.data(),
    )
    def test_differential_accounts_match_reference(
        self, crm: CRM, records: list[Account], data: st.DataObject
    ) -> None:
        """Random accounts and filters: find() and count() equal the reference."""
        _clear(crm)
        stored = list(crm.accounts.add_many(records))
        samples = cs.samples_from(stored, _ACCOUNT_PATHS)
        for _ in range(2):
            where = data.draw(cs.account_filters(samples), label="where")
            order = data.draw(cs.orderings(Account), label="order_by")
            _assert_find(crm.accounts, stored, where, order)
            assert crm.accounts.count(where) == reference.count(stored, where)

    @_DIFFERENTIAL
    @given(
        records=st.lists(cs.deals(), max_size=20),
        data=st.data(),
    )
    def test_differential_deals_match_reference(
        self, crm: CRM, records: list[Deal], data: st.DataObject
    ) -> None:
        """Random deals (Money, decimals, dates, datetimes) and filters equal the reference."""
        _clear(crm)
        stored = list(crm.deals.add_many(records))
        samples = cs.samples_from(stored, _DEAL_PATHS)
        for _ in range(2):
            where = data.draw(cs.deal_filters(samples), label="where")
            order = data.draw(cs.orderings(Deal), label="order_by")
            limit = data.draw(st.none() | st.integers(0, 10), label="limit")
            _assert_find(crm.deals, stored, where, order, limit)
            assert crm.deals.count(where) == reference.count(stored, where)
