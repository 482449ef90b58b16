"""Hypothesis strategies for crmkit: valid entities, filter expressions and orderings.

Every strategy here produces values every backend must store and query alike, so they stay
inside what crmkit accepts (no NUL, timezone-aware datetimes at millisecond precision,
64-bit integers, ISO currencies) and generate data already in the form crmkit writes it:
emails lower-case, phones in E.164, names with single spaces, countries as ISO codes. The
text alphabet is deliberately awkward: upper/lower-case pairs in ASCII, accented Latin,
Greek and Cyrillic, plus characters that are syntax somewhere (``% _ \\ . $ '``).

>>> from hypothesis import given
>>> from crmkit.testing import strategies as cs
>>> @given(cs.contacts(), cs.contact_filters())
... def test_something(contact, where): ...
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import attrs
from hypothesis import strategies as st

from crmkit import geo
from crmkit.entities import (
    Access,
    Account,
    AccountContact,
    AccountRole,
    Address,
    Article,
    ArticleStatus,
    AuditAction,
    AuditEntry,
    Campaign,
    CampaignChannel,
    CampaignMember,
    CampaignStatus,
    Channel,
    Contact,
    Deal,
    Direction,
    Entity,
    FieldDefinition,
    FieldType,
    Interaction,
    InteractionKind,
    LifecycleStage,
    MemberStatus,
    MergeRecord,
    Money,
    OrderLine,
    OrderStatus,
    Pipeline,
    PipelineKind,
    Priority,
    Role,
    ScoringModel,
    Segment,
    SegmentKind,
    Share,
    Stage,
    StageChange,
    StageKind,
    Suppression,
    SuppressionKind,
    SurveyKind,
    SurveyResponse,
    Task,
    TaskStatus,
    Team,
    Ticket,
    TransitionPolicy,
    User,
)
from crmkit.entities import Order as ShopOrder
from crmkit.query import RELATIONS, Expr, F, Field, Order

__all__ = [
    "ALPHABET",
    "CURRENCIES",
    "CUSTOM_KEYS",
    "EMAILS",
    "PHONES",
    "FieldSpec",
    "account_filters",
    "accounts",
    "contact_filters",
    "contacts",
    "datetimes",
    "deal_filters",
    "deals",
    "entities",
    "filters",
    "interaction_specs",
    "orderings",
    "related_filters",
    "samples_from",
    "text",
    "ticket_specs",
    "words",
]

T = TypeVar("T")

#: Letters in case pairs across scripts, digits, a space and characters that are syntax in
#: SQL ``LIKE``, regular expressions or Mongo operators. Code-point order: ``'0' < 'Z' <
#: 'a' < 'É' < 'é' < 'Ω' < 'ω' < 'Д' < 'д'``.
ALPHABET = "aAbBzZ0" + "éÉüÜñÑ" + "αΑωΩ" + "дДяЯ" + "%_\\.$'"

#: Normalized email addresses (what crmkit stores after lower-casing).
EMAILS = (
    "ada@example.com",
    "user123@example.com",
    "grace@example.org",
    "linus@acme.io",
    "a.b@example.com",
    "x_y@acme.io",
)

#: Phones already in E.164.
PHONES = (
    "+14155550123",
    "+14155550199",
    "+442079460958",
    "+442079460000",
    "+33142685300",
    "+4930901820",
)

#: ISO 4217 codes used for money.
CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF")
#: ISO 3166 alpha-2 codes used for addresses.
COUNTRIES = ("GB", "FR", "DE", "US", "GR", "RU", "SE")
#: Custom-field keys; each may hold any kind of value in generated data.
CUSTOM_KEYS = ("tier", "score", "vip", "labels")
#: Keys of ``external_ids``.
EXTERNAL_SOURCES = ("erp", "shop")
_REFS = ("r1", "r2", "r3", "u-1", "t-9")
_FLOATS = (0.0, 1.0, 2.5, -1.5, 0.125, 1e-3, 12.75)


@functools.cache
def words(max_words: int = 2, max_size: int = 5) -> st.SearchStrategy[str]:
    """Non-blank text from :data:`ALPHABET`: words joined by single spaces (normalized)."""
    word = st.text(ALPHABET.replace(" ", ""), min_size=1, max_size=max_size)
    return st.lists(word, min_size=1, max_size=max_words).map(" ".join)


@functools.cache
def text(max_size: int = 5) -> st.SearchStrategy[str]:
    """Any short text from :data:`ALPHABET` (possibly empty): a query argument."""
    return st.text(ALPHABET + " ", max_size=max_size)


def _optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | strategy


@functools.cache
def datetimes() -> st.SearchStrategy[dt.datetime]:
    """Timezone-aware UTC datetimes at millisecond precision between 1950 and 2100."""
    return st.builds(
        lambda d, ms: d.replace(microsecond=ms * 1000, tzinfo=dt.UTC),
        st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2100, 1, 1)),
        st.integers(0, 999),
    )


def _aware(value: dt.datetime, hours: int) -> dt.datetime:
    return value.astimezone(dt.timezone(dt.timedelta(hours=hours)))


@functools.cache
def _any_offset_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Like :func:`datetimes` but in various offsets (crmkit stores them in UTC)."""
    return st.builds(_aware, datetimes(), st.sampled_from([0, 2, -5, 9]))


@functools.cache
def _decimals(low: str, high: str, places: int = 2) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal(low),
        max_value=Decimal(high),
        places=places,
        allow_nan=False,
        allow_infinity=False,
    )


@functools.cache
def _custom_scalars(*, bools: bool = True) -> st.SearchStrategy[Any]:
    parts: list[st.SearchStrategy[Any]] = [
        words(1, 4),
        st.integers(-50, 50),
        st.sampled_from(_FLOATS),
    ]
    if bools:
        parts.append(st.booleans())
    return st.one_of(parts)


@functools.cache
def _custom_values() -> st.SearchStrategy[Any]:
    return _custom_scalars() | st.lists(_custom_scalars(), max_size=3).map(tuple)


@functools.cache
def _custom() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(CUSTOM_KEYS), _custom_values(), max_size=4)


@functools.cache
def _round_trip_custom() -> st.SearchStrategy[dict[str, Any]]:
    """Wider custom values for storage round trips: any finite float, 64-bit ints."""
    scalar = st.one_of(
        st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=8),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    )
    key = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
    return st.dictionaries(key, scalar | st.lists(scalar, max_size=3), max_size=4)


@functools.cache
def _external_ids() -> st.SearchStrategy[dict[str, str]]:
    ident = st.text(ALPHABET.replace(" ", ""), min_size=1, max_size=6)
    return st.dictionaries(st.sampled_from(EXTERNAL_SOURCES), ident, max_size=2)


@functools.cache
def _refs() -> st.SearchStrategy[str | None]:
    return _optional(st.sampled_from(_REFS))


@functools.cache
def addresses() -> st.SearchStrategy[Address]:
    """Addresses with at least a city or a country (an all-empty address is not generated)."""
    return st.builds(
        Address,
        street=_optional(words(3)),
        city=_optional(words(2)),
        region=_optional(words(1)),
        country=_optional(st.sampled_from(COUNTRIES)),
        latitude=st.none(),
        longitude=st.none(),
    ).filter(lambda a: a.city is not None or a.country is not None) | st.builds(
        Address,
        city=words(2),
        country=st.sampled_from(COUNTRIES),
        latitude=_decimals("-90", "90", 4),
        longitude=_decimals("-180", "180", 4),
    )


@functools.cache
def money() -> st.SearchStrategy[Money]:
    """Money in one of :data:`CURRENCIES`, two decimal places."""
    return st.builds(
        Money, amount=_decimals("-1000000", "1000000"), currency=st.sampled_from(CURRENCIES)
    )


@st.composite
def _contacts(draw: st.DrawFn) -> Contact:
    first = draw(_OPTIONAL_WORDS)
    last = draw(_OPTIONAL_WORDS)
    emails = draw(_EMAIL_LISTS)
    phones = draw(_PHONE_LISTS)
    if not (first or last or emails or phones):
        first = draw(words())
    return Contact(
        first_name=first,
        last_name=last,
        emails=tuple(emails),
        phones=tuple(phones),
        title=draw(_TITLES),
        account_id=draw(_refs()),
        owner_id=draw(_refs()),
        team_id=draw(_refs()),
        lifecycle_stage=draw(_STAGES),
        lead_source=draw(_OPTIONAL_WORD),
        address=draw(_OPTIONAL_ADDRESS),
        do_not_contact=draw(st.booleans()),
        tags=tuple(draw(_TAGS)),
        custom=draw(_custom()),
        external_ids=draw(_external_ids()),
    )


_OPTIONAL_WORDS = _optional(words())
_OPTIONAL_WORD = _optional(words(1))
_EMAIL_LISTS = st.lists(st.sampled_from(EMAILS), max_size=2, unique=True)
_PHONE_LISTS = st.lists(st.sampled_from(PHONES), max_size=2, unique=True)
_TITLES = _optional(st.sampled_from(["CEO", "CTO", "ceo", "Engineer"]) | words())
_STAGES = _optional(st.sampled_from(list(LifecycleStage)))
_OPTIONAL_ADDRESS = _optional(addresses())
_TAGS = st.lists(words(1, 4), max_size=3)
_CONTACTS = _contacts()


def contacts() -> st.SearchStrategy[Contact]:
    """Valid contacts, often sparse (None-heavy), with emails/phones already normalized."""
    return _CONTACTS


@functools.cache
def accounts() -> st.SearchStrategy[Account]:
    """Valid accounts with normalized domains and phones.

    A website comes with its domain: an account stored with a website and no domain gets
    the website's domain (normalization), which is not a no-op.
    """
    domains = st.sampled_from(["acme.com", "globex.io", "initech.co.uk"])
    with_website = st.builds(
        Account, domain=domains, website=st.just("https://acme.com/"), name=words(3)
    )
    without_website = st.builds(Account, domain=_optional(domains), name=words(3))
    sites = st.one_of(without_website, with_website).map(lambda a: (a.domain, a.website))
    return st.builds(
        lambda site, **kw: Account(domain=site[0], website=site[1], **kw),
        sites,
        name=words(3),
        industry=_optional(words(1)),
        parent_id=_refs(),
        owner_id=_refs(),
        team_id=_refs(),
        phones=st.lists(st.sampled_from(PHONES), max_size=2, unique=True),
        address=_optional(addresses()),
        tags=st.lists(words(1, 4), max_size=3),
        custom=_custom(),
        external_ids=_external_ids(),
    )


@functools.cache
def deals() -> st.SearchStrategy[Deal]:
    """Valid deals: Money amounts, probabilities, dates and datetimes."""
    return st.builds(
        Deal,
        name=words(3),
        pipeline_id=_refs(),
        stage=_optional(st.sampled_from(["lead", "proposal", "won"])),
        amount=_optional(money()),
        probability=_optional(_decimals("0", "1")),
        close_date=_optional(st.dates(dt.date(1990, 1, 1), dt.date(2100, 1, 1))),
        account_id=_refs(),
        contact_ids=st.lists(st.sampled_from(_REFS), max_size=3, unique=True),
        contact_roles=st.dictionaries(
            st.sampled_from(["r1", "r2"]), st.sampled_from(["champion", "decision_maker"])
        ),
        owner_id=_refs(),
        team_id=_refs(),
        stage_entered_at=_optional(_any_offset_datetimes()),
        closed_at=_optional(datetimes()),
        lost_reason=_optional(words()),
        tags=st.lists(words(1, 4), max_size=3),
        custom=_custom(),
        external_ids=_external_ids(),
    )


@functools.cache
def interactions() -> st.SearchStrategy[Interaction]:
    """Valid interactions (durations are whole milliseconds once stored)."""
    return st.builds(
        Interaction,
        kind=st.sampled_from(list(InteractionKind)),
        occurred_at=_any_offset_datetimes(),
        direction=_optional(st.sampled_from(list(Direction))),
        subject=_optional(words(3)),
        body=_optional(
            st.text(st.characters(exclude_characters="\x00", codec="utf-8"), min_size=1).filter(
                lambda s: not s.isspace()
            )
        ),
        contact_ids=st.lists(st.sampled_from(_REFS), max_size=3, unique=True),
        account_id=_refs(),
        deal_id=_refs(),
        ticket_id=_refs(),
        owner_id=_refs(),
        duration=_optional(st.timedeltas(dt.timedelta(0), dt.timedelta(days=3))),
        outcome=_optional(words(1)),
        custom=_custom(),
        external_ids=_external_ids(),
    )


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    """Valid pipelines: 1-5 stages with unique keys and ``next`` links among them."""
    keys = draw(
        st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=5, unique=True)
    )
    stages = [
        Stage(
            key=k,
            name=draw(words(2)),
            kind=draw(st.sampled_from(list(StageKind))),
            probability=draw(_optional(_decimals("0", "1"))),
            required_fields=tuple(
                draw(st.lists(st.sampled_from(["amount", "close_date"]), unique=True))
            ),
            next=tuple(draw(st.lists(st.sampled_from(keys), unique=True))),
        )
        for k in keys
    ]
    return Pipeline(
        name=draw(words(2)),
        kind=draw(st.sampled_from(list(PipelineKind))),
        stages=tuple(stages),
        policy=draw(st.sampled_from(list(TransitionPolicy))),
        lost_reasons=tuple(draw(st.lists(words(2), max_size=2))),
    )


@functools.cache
def tickets() -> st.SearchStrategy[Ticket]:
    """Valid tickets with SLA timestamps."""
    return st.builds(
        Ticket,
        subject=words(3),
        description=_optional(words(5)),
        status=st.sampled_from(["new", "open", "pending", "solved"]),
        priority=st.sampled_from(list(Priority)),
        channel=_optional(st.sampled_from(list(Channel))),
        contact_id=_refs(),
        assignee_id=_refs(),
        first_response_due_at=_optional(datetimes()),
        resolution_due_at=_optional(datetimes()),
        resolved_at=_optional(datetimes()),
        tags=st.lists(words(1, 4), max_size=3),
        custom=_custom(),
        external_ids=_external_ids(),
    )


@functools.cache
def tasks() -> st.SearchStrategy[Task]:
    """Valid tasks."""
    return st.builds(
        Task,
        title=words(3),
        description=_optional(words(4)),
        due_at=_optional(_any_offset_datetimes()),
        status=st.sampled_from(list(TaskStatus)),
        priority=st.sampled_from(list(Priority)),
        assignee_id=_refs(),
        contact_id=_refs(),
        deal_id=_refs(),
        completed_at=_optional(datetimes()),
        custom=_custom(),
    )


@functools.cache
def segments() -> st.SearchStrategy[Segment]:
    """Valid segments whose rule is a stored contact filter."""
    return st.builds(
        Segment,
        name=words(2),
        entity=st.just("contacts"),
        rule=contact_filters().map(lambda e: e.to_dict()),
        kind=st.sampled_from(list(SegmentKind)),
        member_ids=st.lists(st.sampled_from(_REFS), max_size=3, unique=True),
        snapshot_at=_optional(datetimes()),
        owner_id=_refs(),
    )


@functools.cache
def campaigns() -> st.SearchStrategy[Campaign]:
    """Valid campaigns with Money budget and cost."""
    return st.builds(
        Campaign,
        name=words(2),
        channel=st.sampled_from(list(CampaignChannel)),
        status=st.sampled_from(list(CampaignStatus)),
        starts_at=_optional(datetimes()),
        ends_at=_optional(datetimes()),
        budget=_optional(money()),
        cost=_optional(money()),
        segment_id=_refs(),
    )


@functools.cache
def campaign_members() -> st.SearchStrategy[CampaignMember]:
    """Valid campaign members."""
    return st.builds(
        CampaignMember,
        campaign_id=st.sampled_from(_REFS),
        contact_id=st.sampled_from(_REFS),
        status=st.sampled_from(list(MemberStatus)),
        status_at=_optional(datetimes()),
    )


@functools.cache
def articles() -> st.SearchStrategy[Article]:
    """Valid knowledge-base articles."""
    return st.builds(
        Article,
        title=words(3),
        body=_optional(words(6)),
        tags=st.lists(words(1, 4), max_size=3),
        status=st.sampled_from(list(ArticleStatus)),
        ticket_ids=st.lists(st.sampled_from(_REFS), max_size=2, unique=True),
    )


@functools.cache
def users() -> st.SearchStrategy[User]:
    """Valid users."""
    return st.builds(
        User,
        name=words(2),
        email=_optional(st.sampled_from(EMAILS)),
        active=st.booleans(),
        admin=st.booleans(),
        team_ids=st.lists(st.sampled_from(_REFS), max_size=2, unique=True),
        role_ids=st.lists(st.sampled_from(_REFS), max_size=2, unique=True),
    )


@functools.cache
def teams() -> st.SearchStrategy[Team]:
    """Valid teams."""
    return st.builds(Team, name=words(2), parent_id=_refs())


@functools.cache
def roles() -> st.SearchStrategy[Role]:
    """Valid roles: nested permissions, hidden and read-only field lists."""
    scope = st.sampled_from(["none", "own", "team", "all"])
    actions = st.dictionaries(st.sampled_from(["read", "create", "update", "delete"]), scope)
    collections = st.sampled_from(["contacts", "accounts", "deals"])
    paths = st.lists(st.sampled_from(["emails", "phones", "custom.tier"]), unique=True)
    return st.builds(
        Role,
        name=words(2),
        permissions=st.dictionaries(collections, actions, max_size=3),
        hidden_fields=st.dictionaries(collections, paths, max_size=2),
        readonly_fields=st.dictionaries(collections, paths, max_size=2),
    )


@functools.cache
def shares() -> st.SearchStrategy[Share]:
    """Valid record shares: to exactly one of a user or a team."""
    return st.builds(
        lambda user, who, **kw: Share(
            user_id=who if user else None, team_id=None if user else who, **kw
        ),
        st.booleans(),
        st.sampled_from(_REFS),
        record_collection=st.sampled_from(["contacts", "deals", "accounts"]),
        record_id=st.sampled_from(_REFS),
        access=st.sampled_from(list(Access)),
    )


@functools.cache
def account_contacts() -> st.SearchStrategy[AccountContact]:
    """Valid contact-account links (dates in order)."""
    days = st.dates(dt.date(1990, 1, 1), dt.date(2100, 1, 1))
    return st.builds(
        lambda started, length, **kw: AccountContact(
            started=started,
            ended=None if started is None or length is None else started + length,
            **kw,
        ),
        _optional(days),
        _optional(st.timedeltas(dt.timedelta(0), dt.timedelta(days=3650))),
        contact_id=st.sampled_from(_REFS),
        account_id=st.sampled_from(_REFS),
        role=st.sampled_from(list(AccountRole)),
        label=_optional(st.sampled_from(["Advisor", "Chair", "EMEA"])),
        is_primary=st.booleans(),
    )


@functools.cache
def suppressions() -> st.SearchStrategy[Suppression]:
    """Valid suppression entries (hex digests)."""
    return st.builds(
        Suppression,
        kind=st.sampled_from([SuppressionKind.EMAIL, SuppressionKind.PHONE]),
        digest=st.text("0123456789abcdef", min_size=64, max_size=64),
        reason=_optional(st.just("erased")),
    )


@functools.cache
def audit_entries() -> st.SearchStrategy[AuditEntry]:
    """Valid audit-log entries with a JSON document of changes."""
    changes = st.dictionaries(
        st.sampled_from(["title", "custom", "emails"]),
        st.fixed_dictionaries({"old": _custom_scalars(), "new": _custom_scalars()}),
        max_size=3,
    )
    return st.builds(
        AuditEntry,
        record_collection=st.sampled_from(["contacts", "deals"]),
        record_id=st.sampled_from(_REFS),
        action=st.sampled_from(list(AuditAction)),
        changed=st.lists(st.sampled_from(["title", "custom", "emails"]), unique=True).map(tuple),
        actor_id=_refs(),
        at=_any_offset_datetimes(),
        reason=_optional(words(3)),
        changes=changes,
    )


@functools.cache
def stage_changes() -> st.SearchStrategy[StageChange]:
    """Valid stage-history records of deals and tickets."""
    return st.builds(
        StageChange,
        record_collection=st.sampled_from(["deals", "tickets"]),
        record_id=st.sampled_from(_REFS),
        pipeline_id=_refs(),
        from_stage=_optional(st.sampled_from(["lead", "proposal", "open"])),
        to_stage=st.sampled_from(["proposal", "won", "pending"]),
        at=_any_offset_datetimes(),
        by=_refs(),
        reason=_optional(words(3)),
        time_in_previous=_optional(st.integers(0, 10**10).map(lambda ms: ms / 1000)),
        owner_id=_refs(),
        team_id=_refs(),
    )


@functools.cache
def merge_records() -> st.SearchStrategy[MergeRecord]:
    """Valid merge records with JSON snapshots (the shape ``crm.dedupe.merge`` stores)."""
    snapshot = st.fixed_dictionaries(
        {
            "survivor": st.fixed_dictionaries({"id": st.sampled_from(_REFS), "title": words(2)}),
            "duplicates": st.lists(
                st.fixed_dictionaries({"id": st.sampled_from(_REFS), "note": _custom_scalars()}),
                max_size=2,
            ),
        }
    )
    return st.builds(
        MergeRecord,
        record_collection=st.sampled_from(["contacts", "accounts"]),
        survivor_id=st.sampled_from(_REFS),
        merged_ids=st.lists(st.sampled_from(_REFS), min_size=1, max_size=3, unique=True).map(tuple),
        snapshot=snapshot,
        rules=st.fixed_dictionaries({"emails": st.just("union")}),
        actor_id=_refs(),
        owner_id=_refs(),
        team_id=_refs(),
        merged_at=_optional(_any_offset_datetimes()),
        unmerged_at=_optional(_any_offset_datetimes()),
    )


@functools.cache
def field_definitions() -> st.SearchStrategy[FieldDefinition]:
    """Valid custom field definitions (choices and a default in ``options``)."""
    return st.builds(
        FieldDefinition,
        record_collection=st.sampled_from(["contacts", "accounts", "deals"]),
        name=st.sampled_from(["tier", "score", "since", "region"]),
        type=st.sampled_from(list(FieldType)),
        required=st.booleans(),
        indexed=st.booleans(),
        label=_optional(st.sampled_from(["Tier", "Score"])),
        sensitivity=st.sampled_from([None, "personal", "sensitive"]),
        options=st.fixed_dictionaries(
            {"choices": st.lists(st.sampled_from(["a", "b", "c"]), unique=True)}
        ),
    )


@functools.cache
def order_lines() -> st.SearchStrategy[OrderLine]:
    """Order lines in EUR (the currency of :func:`orders`)."""
    return st.builds(
        OrderLine,
        sku=st.sampled_from(["CAM", "LENS", "BAG", "STRAP"]),
        name=_optional(words(2)),
        category=_optional(st.sampled_from(["cameras", "lenses", "bags"])),
        quantity=st.integers(1, 20),
        unit_price=st.builds(Money, amount=_decimals("0", "10000"), currency=st.just("EUR")),
    )


@functools.cache
def orders() -> st.SearchStrategy[ShopOrder]:
    """Valid orders in EUR with one to three lines (``total`` given or derived)."""
    return st.builds(
        ShopOrder,
        external_id=words(1, 8),
        placed_at=datetimes(),
        contact_id=_refs(),
        account_id=_refs(),
        status=st.sampled_from(list(OrderStatus)),
        total=_optional(st.builds(Money, amount=_decimals("0", "100000"), currency=st.just("EUR"))),
        lines=st.lists(order_lines(), min_size=1, max_size=3),
        status_reason=_optional(words(3)),
        cancelled_at=_optional(datetimes()),
        refunded_at=_optional(datetimes()),
        customer_name=_optional(words(2)),
        customer_email=_optional(st.sampled_from(EMAILS)),
        shipping_address=_optional(addresses()),
        owner_id=_refs(),
        team_id=_refs(),
        custom=_custom(),
    )


@functools.cache
def survey_responses() -> st.SearchStrategy[SurveyResponse]:
    """CSAT (1-5) and NPS (0-10) responses."""

    def build(kind: SurveyKind, scores: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
        return st.builds(
            SurveyResponse,
            kind=st.just(kind),
            score=scores,
            responded_at=datetimes(),
            survey=_optional(words(2)),
            contact_id=_refs(),
            account_id=_refs(),
            ticket_id=_refs(),
            campaign_id=_refs(),
            comment=_optional(words(4)),
            owner_id=_refs(),
            team_id=_refs(),
            custom=_custom(),
        )

    return build(SurveyKind.CSAT, st.integers(1, 5)) | build(SurveyKind.NPS, st.integers(0, 10))


@functools.cache
def scoring_models() -> st.SearchStrategy[ScoringModel]:
    """Stored naive-Bayes model states: feature definitions and ``[feature, value, won,
    lost]`` count rows, as :mod:`crmkit.scoring` writes them."""
    counts = st.lists(
        st.tuples(
            words(1),
            words(1),
            st.integers(0, 1000),
            st.integers(0, 1000),
        ).map(list),
        max_size=4,
    )
    return st.builds(
        ScoringModel,
        name=words(2),
        features=st.lists(
            st.fixed_dictionaries(
                {"path": st.sampled_from(["deal.source", "contact.title", "account.industry"])}
            ),
            max_size=3,
        ),
        counts=st.fixed_dictionaries(
            {"won": st.integers(0, 1000), "lost": st.integers(0, 1000), "values": counts}
        ),
        trained_at=_optional(_any_offset_datetimes()),
    )


_ENTITY_STRATEGIES: dict[type[Entity], Callable[[], st.SearchStrategy[Any]]] = {
    Account: accounts,
    Contact: contacts,
    Deal: deals,
    Interaction: interactions,
    Pipeline: pipelines,
    Ticket: tickets,
    Task: tasks,
    Segment: segments,
    Campaign: campaigns,
    CampaignMember: campaign_members,
    Article: articles,
    User: users,
    Team: teams,
    Role: roles,
    Share: shares,
    AuditEntry: audit_entries,
    StageChange: stage_changes,
    MergeRecord: merge_records,
    FieldDefinition: field_definitions,
    AccountContact: account_contacts,
    Suppression: suppressions,
    ShopOrder: orders,
    SurveyResponse: survey_responses,
    ScoringModel: scoring_models,
}


def entities(entity: type[Entity], *, wide_custom: bool = False) -> st.SearchStrategy[Any]:
    """Valid instances of ``entity`` (any crmkit entity type).

    With ``wide_custom=True`` the ``custom`` mapping (where the type has one) holds any
    text, any finite float and any 64-bit integer: for storage round trips, not for queries.
    """
    factory = _ENTITY_STRATEGIES.get(entity)
    if factory is None:
        raise KeyError(f"crmkit.testing.strategies has no strategy for {entity.__name__}")
    strategy = factory()
    if wide_custom and "custom" in attrs.fields_dict(entity):
        return st.builds(lambda e, c: attrs.evolve(e, custom=c), strategy, _round_trip_custom())
    return strategy


# --- filters ------------------------------------------------------------------------------

_TEXT_OPS = (
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "contains",
    "icontains",
    "startswith",
    "exists",
    "between",
)
_ORDERED_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "exists", "between")
_LIST_OPS = ("contains", "in", "icontains", "startswith", "exists")
_BOOL_OPS = ("==", "!=", "in", "exists")
_DATETIME_OPS = ("==", "!=", "<", "<=", ">", ">=", "between", "within_last", "exists")
_RANGE_OPS = frozenset({"<", "<=", ">", ">=", "between"})


@attrs.frozen
class FieldSpec:
    """A queryable path, the operators a filter may use on it, and its argument values.

    ``values`` draws one argument; ``range_values`` (default: ``values``) draws the bounds
    of ``< <= > >= between``; ``fragments`` (default: text) draws arguments of
    ``contains/icontains/startswith`` on text. ``exact`` fields (emails, phones) take only
    ``values`` for ``contains``/``in_``: lookups of identifiers are made with whole values.
    """

    path: str
    ops: tuple[str, ...]
    values: st.SearchStrategy[Any]
    range_values: st.SearchStrategy[Any] | None = None
    fragments: st.SearchStrategy[Any] | None = None
    exact: bool = False


def samples_from(records: Sequence[Any], paths: Sequence[str]) -> dict[str, list[Any]]:
    """Values found at ``paths`` in ``records`` (list elements flattened, None left out).

    Pass the result to a filter strategy so that generated filters hit the data.
    """
    out: dict[str, list[Any]] = {}
    for path in paths:
        found: list[Any] = []
        column, _, key = path.partition(".")
        for record in records:
            value = getattr(record, column)
            if key and value is not None:
                value = value.get(key) if isinstance(value, Mapping) else getattr(value, key)
            items = value if isinstance(value, tuple) else (value,)
            found.extend(v for v in items if v is not None and v not in found)
        out[path] = found
    return out


def _with_samples(
    strategy: st.SearchStrategy[Any], samples: Mapping[str, Sequence[Any]] | None, path: str
) -> st.SearchStrategy[Any]:
    seen = list(samples.get(path, ())) if samples else []
    if not seen:
        return strategy
    return st.sampled_from(seen) | strategy


def _fragment_of(samples: Sequence[Any]) -> st.SearchStrategy[str]:
    texts = [s for s in samples if isinstance(s, str)]
    if not texts:
        return text()

    @st.composite
    def cut(draw: st.DrawFn) -> str:
        s = draw(st.sampled_from(texts))
        start = draw(st.integers(0, len(s)))
        end = draw(st.integers(start, len(s)))
        piece = s[start:end]
        return draw(st.sampled_from([piece, piece.upper(), piece.lower(), piece.swapcase()]))

    return cut() | text()


def _text_spec(
    path: str, values: st.SearchStrategy[Any], samples: Mapping[str, Sequence[Any]] | None
) -> FieldSpec:
    vals = _with_samples(values, samples, path)
    return FieldSpec(
        path, _TEXT_OPS, vals, fragments=_fragment_of(samples.get(path, ()) if samples else ())
    )


def _custom_spec(path: str, samples: Mapping[str, Sequence[Any]] | None) -> FieldSpec:
    vals = _with_samples(_custom_scalars(), samples, path)
    ranged = vals.filter(lambda v: not isinstance(v, bool))
    return FieldSpec(
        path,
        _TEXT_OPS,
        vals,
        range_values=ranged,
        fragments=_fragment_of(samples.get(path, ()) if samples else ()),
    )


def _common_specs(samples: Mapping[str, Sequence[Any]] | None) -> list[FieldSpec]:
    ids = _with_samples(st.just("0" * 30), samples, "id")
    return [
        FieldSpec("id", ("==", "!=", "in", "<", ">", "between"), ids),
        FieldSpec("version", _ORDERED_OPS, st.integers(0, 3)),
        FieldSpec(
            "created_at",
            _DATETIME_OPS,
            _with_samples(datetimes(), samples, "created_at"),
            range_values=_with_samples(datetimes(), samples, "created_at"),
        ),
        *(_custom_spec(f"custom.{k}", samples) for k in CUSTOM_KEYS),
        _text_spec("external_ids.erp", words(1), samples),
    ]


def contact_specs(samples: Mapping[str, Sequence[Any]] | None = None) -> list[FieldSpec]:
    """The fields :func:`contact_filters` draws from (``samples`` bias the values)."""
    stages = st.sampled_from([s.value for s in LifecycleStage])
    return [
        *_common_specs(samples),
        _text_spec("first_name", words(), samples),
        _text_spec("last_name", words(), samples),
        _text_spec("title", st.sampled_from(["CEO", "ceo", "CTO"]) | words(), samples),
        _text_spec("lead_source", words(1), samples),
        _text_spec("account_id", st.sampled_from(_REFS), samples),
        _text_spec("owner_id", st.sampled_from(_REFS), samples),
        _text_spec("address.city", words(), samples),
        _text_spec("address.country", st.sampled_from(COUNTRIES), samples),
        FieldSpec("lifecycle_stage", _ORDERED_OPS, stages),
        FieldSpec("do_not_contact", _BOOL_OPS, st.booleans()),
        FieldSpec("address.latitude", _ORDERED_OPS, _decimals("-90", "90", 1)),
        FieldSpec("address", ("within_km",), circles(samples)),
        # exact-match lookups take normalized values (a query hook may normalize them)
        FieldSpec(
            "emails",
            ("contains", "in", "icontains", "exists"),
            st.sampled_from(EMAILS),
            fragments=_fragment_of(EMAILS),
            exact=True,
        ),
        FieldSpec("phones", ("contains", "in", "exists"), st.sampled_from(PHONES), exact=True),
        FieldSpec(
            "tags",
            _LIST_OPS,
            _with_samples(words(1, 4), samples, "tags"),
            fragments=_fragment_of(samples.get("tags", ()) if samples else ()),
        ),
    ]


def account_specs(samples: Mapping[str, Sequence[Any]] | None = None) -> list[FieldSpec]:
    """The fields :func:`account_filters` draws from."""
    return [
        *_common_specs(samples),
        _text_spec("name", words(3), samples),
        _text_spec("domain", st.sampled_from(["acme.com", "globex.io"]), samples),
        _text_spec("industry", words(1), samples),
        _text_spec("parent_id", st.sampled_from(_REFS), samples),
        _text_spec("address.city", words(), samples),
        FieldSpec("address", ("within_km",), circles(samples)),
        FieldSpec("phones", ("contains", "in", "exists"), st.sampled_from(PHONES), exact=True),
        FieldSpec(
            "tags",
            _LIST_OPS,
            _with_samples(words(1, 4), samples, "tags"),
            fragments=_fragment_of(samples.get("tags", ()) if samples else ()),
        ),
    ]


def deal_specs(samples: Mapping[str, Sequence[Any]] | None = None) -> list[FieldSpec]:
    """The fields :func:`deal_filters` draws from: money, decimals, dates, datetimes."""
    amounts = _with_samples(_decimals("-1000000", "1000000"), samples, "amount.amount")
    return [
        *_common_specs(samples),
        _text_spec("name", words(3), samples),
        _text_spec("stage", st.sampled_from(["lead", "proposal", "won"]), samples),
        FieldSpec("amount.amount", _ORDERED_OPS, amounts),
        _text_spec("amount.currency", st.sampled_from(CURRENCIES), samples),
        FieldSpec(
            "probability", _ORDERED_OPS, _with_samples(_decimals("0", "1"), samples, "probability")
        ),
        FieldSpec(
            "close_date",
            _ORDERED_OPS,
            _with_samples(
                st.dates(dt.date(1990, 1, 1), dt.date(2100, 1, 1)), samples, "close_date"
            ),
        ),
        FieldSpec(
            "stage_entered_at",
            _DATETIME_OPS,
            _with_samples(datetimes(), samples, "stage_entered_at"),
        ),
        FieldSpec("closed_at", _DATETIME_OPS, _with_samples(datetimes(), samples, "closed_at")),
        FieldSpec("contact_ids", _LIST_OPS, st.sampled_from(_REFS)),
        _text_spec("contact_roles.r1", st.sampled_from(["champion", "decision_maker"]), samples),
    ]


#: How close (km) to a generated circle's boundary no sampled point may be: the backends
#: compute the same formula, this keeps the last-bit rounding of their math out of the test.
BOUNDARY_MARGIN_KM = 1e-3


def circles(
    samples: Mapping[str, Sequence[Any]] | None = None, path: str = "address"
) -> st.SearchStrategy[tuple[float, float, float]]:
    """``(latitude, longitude, km)`` arguments of ``within_km``: centres at (or near) the
    sampled addresses' coordinates, radii from metres to half the globe, and never within
    :data:`BOUNDARY_MARGIN_KM` of a sampled point's distance from the centre."""
    points = [
        (float(a.latitude), float(a.longitude))
        for a in (samples.get(path, ()) if samples else ())
        if getattr(a, "latitude", None) is not None
    ]
    centres: st.SearchStrategy[tuple[float, float]] = st.tuples(
        st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False)
    )
    if points:
        centres = st.sampled_from(points) | centres

    @st.composite
    def build(draw: st.DrawFn) -> tuple[float, float, float]:
        lat, lon = draw(centres)
        km = draw(
            st.sampled_from([0.001, 1.0, 25.0, 500.0, 5000.0, 20000.0])
            | st.floats(0.001, 21000.0, allow_nan=False)
        )
        distances = [geo.distance_km(lat, lon, p_lat, p_lon) for p_lat, p_lon in points]
        while any(abs(d - km) < BOUNDARY_MARGIN_KM for d in distances):
            km += 2 * BOUNDARY_MARGIN_KM
        return (lat, lon, km)

    return build()


@st.composite
def _condition(draw: st.DrawFn, specs: Sequence[FieldSpec]) -> Expr:
    spec = draw(st.sampled_from(specs))
    op = draw(st.sampled_from(spec.ops))
    field: Field = F(spec.path)
    ranged = spec.range_values if spec.range_values is not None else spec.values
    if op == "exists":
        return field.exists()
    if op == "in":
        return field.in_(draw(st.lists(spec.values, max_size=3)))
    if op == "between":
        return field.between(draw(ranged), draw(ranged))
    if op == "within_km":
        latitude, longitude, km = draw(spec.values)
        return field.within_km(latitude, longitude, km)
    if op == "within_last":
        return field.within_last(
            draw(st.timedeltas(dt.timedelta(hours=1), dt.timedelta(days=365 * 200)))
        )
    if op == "contains":
        options = (
            spec.values if spec.exact or spec.fragments is None else (spec.fragments | spec.values)
        )
        return field.contains(draw(options))
    if op in ("icontains", "startswith"):
        argument = draw(spec.fragments if spec.fragments is not None else text())
        if not isinstance(argument, str):
            argument = draw(text())
        built: Expr = getattr(field, op)(argument)
        return built
    value = draw(ranged if op in _RANGE_OPS else spec.values)
    operators: dict[str, Callable[[Any], Expr]] = {
        "==": field.__eq__,
        "!=": field.__ne__,
        "<": field.__lt__,
        "<=": field.__le__,
        ">": field.__gt__,
        ">=": field.__ge__,
    }
    return operators[op](value)


def filters(specs: Sequence[FieldSpec], *, max_depth: int = 3) -> st.SearchStrategy[Expr]:
    """Random filter expressions over ``specs``: conditions nested in ``& | ~``."""
    return _expression(_condition(specs), max_depth)


@st.composite
def _expression(draw: st.DrawFn, leaf: st.SearchStrategy[Expr], depth: int) -> Expr:
    # hand-rolled rather than st.recursive: building and validating a recursive strategy for
    # every example (the leaves depend on each dataset) dominated the test's run time
    how = draw(st.sampled_from(["leaf", "leaf", "and", "or", "not"])) if depth > 0 else "leaf"
    if how == "leaf":
        return draw(leaf)
    if how == "not":
        return ~draw(_expression(leaf, depth - 1))
    items = [draw(_expression(leaf, depth - 1)) for _ in range(draw(st.integers(2, 3)))]
    return _fold(items, how)


def _fold(items: Sequence[Expr], how: str) -> Expr:
    out = items[0]
    for item in items[1:]:
        out = (out & item) if how == "and" else (out | item)
    return out


def interaction_specs(samples: Mapping[str, Sequence[Any]] | None = None) -> list[FieldSpec]:
    """The fields of :class:`crmkit.Interaction` that related filters draw from."""
    choices = ("==", "!=", "in", "exists")
    return [
        FieldSpec("id", ("==", "!=", "in"), _with_samples(st.just("0" * 30), samples, "id")),
        FieldSpec("kind", choices, st.sampled_from([k.value for k in InteractionKind])),
        FieldSpec("direction", choices, st.sampled_from([d.value for d in Direction])),
        FieldSpec(
            "occurred_at",
            _DATETIME_OPS,
            _with_samples(datetimes(), samples, "occurred_at"),
        ),
        _text_spec("subject", words(3), samples),
        _text_spec("outcome", words(1), samples),
        _custom_spec("custom.tier", samples),
    ]


def ticket_specs(samples: Mapping[str, Sequence[Any]] | None = None) -> list[FieldSpec]:
    """The fields of :class:`crmkit.Ticket` that related filters draw from."""
    choices = ("==", "!=", "in", "exists")
    return [
        FieldSpec("id", ("==", "!=", "in"), _with_samples(st.just("0" * 30), samples, "id")),
        FieldSpec("status", choices, st.sampled_from(["new", "open", "pending", "solved"])),
        FieldSpec("priority", choices, st.sampled_from([p.value for p in Priority])),
        _text_spec("subject", words(3), samples),
        FieldSpec("resolved_at", _DATETIME_OPS, _with_samples(datetimes(), samples, "resolved_at")),
        FieldSpec("tags", _LIST_OPS, _with_samples(words(1, 4), samples, "tags")),
    ]


#: Filter fields per collection, for :func:`related_filters`.
_SPECS_BY_COLLECTION: dict[str, Callable[[Mapping[str, Sequence[Any]] | None], list[FieldSpec]]] = {
    "contacts": lambda s: contact_specs(s),
    "accounts": lambda s: account_specs(s),
    "deals": lambda s: deal_specs(s),
    "interactions": interaction_specs,
    "tickets": ticket_specs,
}


def related_filters(
    collection: str,
    samples: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    *,
    max_depth: int = 2,
    nesting: int = 1,
) -> st.SearchStrategy[Expr]:
    """Random filters over ``collection`` mixing its own conditions with ``F.related(...)``
    nodes (``nesting`` levels deep) over contacts, accounts, deals, interactions and tickets.

    ``samples`` maps a collection name to :func:`samples_from` output for its records.
    """
    return _expression(_related_leaf(collection, samples or {}, nesting), max_depth)


def _related_leaf(
    collection: str, samples: Mapping[str, Mapping[str, Sequence[Any]]], nesting: int
) -> st.SearchStrategy[Expr]:
    own = _condition(_SPECS_BY_COLLECTION[collection](samples.get(collection)))
    if nesting <= 0:
        return own
    names = sorted(
        name
        for name, rel in RELATIONS.get(collection, {}).items()
        if rel.target in _SPECS_BY_COLLECTION
    )
    if not names:
        return own
    return st.one_of(own, _related_node(collection, tuple(names), samples, nesting))


@st.composite
def _related_node(
    draw: st.DrawFn,
    collection: str,
    names: tuple[str, ...],
    samples: Mapping[str, Mapping[str, Sequence[Any]]],
    nesting: int,
) -> Expr:
    name = draw(st.sampled_from(names))
    target = RELATIONS[collection][name].target
    if draw(st.integers(0, 4)) == 0:
        return F.related(name)  # any related record
    inner = draw(_expression(_related_leaf(target, samples, nesting - 1), 1))
    return F.related(name, inner)


def contact_filters(samples: Mapping[str, Sequence[Any]] | None = None) -> st.SearchStrategy[Expr]:
    """Random filters over :class:`crmkit.Contact`: every operator, custom fields, nested paths.

    ``samples`` (from :func:`samples_from`) makes argument values hit the generated data.
    """
    return filters(contact_specs(samples))


def account_filters(samples: Mapping[str, Sequence[Any]] | None = None) -> st.SearchStrategy[Expr]:
    """Random filters over :class:`crmkit.Account`."""
    return filters(account_specs(samples))


def deal_filters(samples: Mapping[str, Sequence[Any]] | None = None) -> st.SearchStrategy[Expr]:
    """Random filters over :class:`crmkit.Deal` (Money parts, decimals, dates, datetimes)."""
    return filters(deal_specs(samples))


#: Sortable paths per entity type used by :func:`orderings`.
SORTABLE: dict[type[Entity], tuple[str, ...]] = {
    Contact: (
        "first_name",
        "last_name",
        "title",
        "lifecycle_stage",
        "address.city",
        "address.country",
        "do_not_contact",
        "account_id",
        "version",
        "created_at",
        "id",
    ),
    Account: ("name", "domain", "industry", "address.city", "created_at", "id"),
    Deal: (
        "name",
        "stage",
        "amount.amount",
        "amount.currency",
        "probability",
        "close_date",
        "stage_entered_at",
        "closed_at",
        "id",
    ),
}


@st.composite
def orderings(draw: st.DrawFn, entity: type[Entity] = Contact) -> list[str | Order]:
    """0-3 distinct sort keys over ``entity``, ascending or descending, as ``"-x"`` or Orders."""
    paths = draw(st.lists(st.sampled_from(SORTABLE[entity]), max_size=3, unique=True))
    out: list[str | Order] = []
    for path in paths:
        desc = draw(st.booleans())
        if draw(st.booleans()):
            out.append(F(path).desc() if desc else F(path).asc())
        else:
            out.append(f"-{path}" if desc else path)
    return out
