"""Entities: valid on construction, converted at the boundary, errors that name the field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import (
    Account,
    Address,
    Article,
    Campaign,
    CampaignMember,
    Contact,
    Deal,
    Interaction,
    Money,
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
from crmkit.entities import ENTITY_TYPES, FrozenDict, InteractionKind, LifecycleStage
from crmkit.testing import strategies as cs

NAIVE = dt.datetime(2024, 1, 1, 12, 0)
AWARE = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("build", "field", "reason"),
    [
        (lambda: Contact(), "contact", "needs at least"),
        (lambda: Contact(first_name=5), "contact.first_name", "must be text"),
        (lambda: Contact(first_name="x" * 201), "contact.first_name", "longer than 200"),
        (lambda: Contact(first_name="a\x00b"), "contact.first_name", "NUL"),
        (lambda: Contact(first_name="a\ud800"), "contact.first_name", "lone surrogate"),
        (
            lambda: Contact(first_name="A", custom={"note": "\udfff"}),
            "contact.custom.note",
            "lone surrogate",
        ),
        (lambda: Contact(emails="ada@example.com"), "contact.emails", "list of text"),
        (lambda: Contact(emails=["a@b.c", 5]), "contact.emails[1]", "must be text"),
        (lambda: Contact(emails=["a@b.c", " "]), "contact.emails[1]", "required"),
        (
            lambda: Contact(first_name="A", lifecycle_stage="boss"),
            "contact.lifecycle_stage",
            "one of",
        ),
        (lambda: Contact(first_name="A", do_not_contact="yes"), "contact.do_not_contact", "true"),
        (lambda: Contact(first_name="A", account_id=" a1"), "contact.account_id", "whitespace"),
        (lambda: Contact(first_name="A", address="Paris"), "contact.address", "must be a Address"),
        (
            lambda: Contact(first_name="A", address={"city": "Paris", "planet": "Earth"}),
            "contact.address",
            "unknown or missing",
        ),
        (
            lambda: Contact(first_name="A", address={"latitude": 91, "longitude": 0}),
            "contact.address.latitude",
            "at most 90",
        ),
        (
            lambda: Contact(first_name="A", address={"latitude": 1}),
            "contact.address.latitude",
            "together",
        ),
        (lambda: Contact(first_name="A", custom={"bad key": 1}), "contact.custom key", "valid key"),
        (lambda: Contact(first_name="A", custom={"k": {"a": 1}}), "contact.custom.k", "text, a"),
        (lambda: Contact(first_name="A", custom={"k": float("inf")}), "contact.custom.k", "finite"),
        (lambda: Contact(first_name="A", custom={"k": 2**63}), "contact.custom.k", "64-bit"),
        (lambda: Contact(first_name="A", custom={"k": [None]}), "contact.custom.k", "lists may"),
        (lambda: Contact(first_name="A", custom={"k": [[1]]}), "contact.custom.k", "lists may"),
        (lambda: Contact(first_name="A", custom=[1]), "contact.custom", "mapping"),
        (
            lambda: Contact(first_name="A", external_ids={"erp": 5}),
            "contact.external_ids.erp",
            "text",
        ),
        (lambda: Contact(first_name="A", version=-1), "contact.version", "at least 0"),
        (lambda: Contact(first_name="A", created_at=NAIVE), "contact.created_at", "timezone-aware"),
        (lambda: Account(name=None), "account.name", "required"),
        (lambda: Account(name="   "), "account.name", "blank"),
        (lambda: Account(name="A", phones=[1]), "account.phones[0]", "must be text"),
        (
            lambda: Interaction(kind="fax", occurred_at=AWARE),
            "interaction.kind",
            "is not one of",
        ),
        (lambda: Interaction(kind="call", occurred_at=NAIVE), "interaction.occurred_at", "aware"),
        (lambda: Interaction(kind="call", occurred_at="soon"), "interaction.occurred_at", "ISO"),
        (lambda: Interaction(kind="call", occurred_at=None), "interaction.occurred_at", "required"),
        (
            lambda: Interaction(kind="call", occurred_at=AWARE, duration=-5),
            "interaction.duration",
            "negative",
        ),
        (
            lambda: Interaction(kind="call", occurred_at=AWARE, duration=dt.timedelta(seconds=-1)),
            "interaction.duration",
            "negative",
        ),
        (
            lambda: Interaction(kind="call", occurred_at=AWARE, duration="5m"),
            "interaction.duration",
            "duration",
        ),
        (
            lambda: Deal(name="D", amount={"amount": 1, "currency": "EURO"}),
            "deal.amount.currency",
            "ISO 4217",
        ),
        (
            lambda: Deal(name="D", amount={"amount": "x", "currency": "EUR"}),
            "deal.amount.amount",
            "decimal",
        ),
        (lambda: Deal(name="D", amount=5), "deal.amount", "must be a Money"),
        (lambda: Deal(name="D", probability=Decimal("1.5")), "deal.probability", "at most 1"),
        (lambda: Deal(name="D", probability=True), "deal.probability", "decimal"),
        (lambda: Deal(name="D", close_date=AWARE), "deal.close_date", "must be a date"),
        (lambda: Deal(name="D", close_date="31/12/2024"), "deal.close_date", "ISO 8601"),
        (lambda: Money(amount=1, currency="ZZZ"), "money.currency", "ISO 4217"),
        (lambda: Money(amount=Decimal("NaN"), currency="EUR"), "money.amount", "finite"),
        (lambda: Ticket(subject="S", priority="asap"), "ticket.priority", "one of"),
        (lambda: Ticket(subject="S", resolved_at=NAIVE), "ticket.resolved_at", "aware"),
        (lambda: Task(title="T", status="finished"), "task.status", "one of"),
        (lambda: Task(title="T", due_at=NAIVE), "task.due_at", "aware"),
        (lambda: Pipeline(name="P"), "pipeline.stages", "at least one stage"),
        (
            lambda: Pipeline(
                name="P", stages=[{"key": "a", "name": "A"}, {"key": "a", "name": "B"}]
            ),
            "pipeline.stages[1].key",
            "used twice",
        ),
        (
            lambda: Pipeline(name="P", stages=[{"key": "a", "name": "A", "next": ["z"]}]),
            "pipeline.stages[0].next",
            "not a stage",
        ),
        (
            lambda: Pipeline(name="P", stages=[{"key": "a", "name": "A", "kind": "maybe"}]),
            "pipeline.stages[0].kind",
            "one of",
        ),
        (
            lambda: Pipeline(name="P", stages=[{"key": "a", "name": "A", "probability": 2}]),
            "pipeline.stages[0].probability",
            "at most 1",
        ),
        (lambda: Pipeline(name="P", stages=["a"]), "pipeline.stages[0]", "must be a Stage"),
        (lambda: Segment(name="S", rule={"field": {1, 2}}), "segment.rule.field", "unsupported"),
        (lambda: Segment(name="S", kind="sometimes"), "segment.kind", "one of"),
        (
            lambda: Campaign(name="C", budget={"amount": 1, "currency": "xx"}),
            "campaign.budget.currency",
            "ISO",
        ),
        (
            lambda: CampaignMember(campaign_id="c", contact_id=None),
            "campaignmember.contact_id",
            "required",
        ),
        (lambda: Article(title="A", status="secret"), "article.status", "one of"),
        (lambda: User(name="U", admin="no"), "user.admin", "true or false"),
        (lambda: Team(name=None), "team.name", "required"),
        (
            lambda: Role(name="R", hidden_fields={"contacts": {"x": 1}}),
            "role.hidden_fields.contacts",
            "text",
        ),
    ],
)
def test_invalid_values_raise_validation_error_naming_the_field(
    build: Any, field: str, reason: str
) -> None:
    """Every entity rejects bad values at construction, with the field path and a reason."""
    with pytest.raises(ValidationError) as caught:
        build()
    error = caught.value
    assert error.field == field
    assert reason in error.reason
    assert str(error).startswith(f"{field}: ")


def test_error_message_reads_like_a_sentence() -> None:
    """field: repr(value) reason."""
    with pytest.raises(ValidationError) as caught:
        Contact(emails=["ada@example.com", 7])
    assert str(caught.value) == "contact.emails[1]: 7 must be text"
    assert caught.value.value == 7
    assert caught.value.errors == [caught.value]
    assert caught.value.prefixed("import[3]").field == "import[3].contact.emails[1]"


def test_converters_store_canonical_forms() -> None:
    """Lists become de-duplicated tuples, blank text None, enums members, datetimes UTC ms."""
    plus2 = dt.timezone(dt.timedelta(hours=2))
    c = Contact(
        first_name=" ",
        last_name="Lovelace",
        emails=["a@x.io", "b@x.io", "a@x.io"],
        tags=("t",),
        lifecycle_stage="lead",
        created_at=dt.datetime(2024, 1, 1, 14, 0, 0, 123999, tzinfo=plus2),
        custom={"labels": ["a", 1], "n": 2},
    )
    assert c.first_name is None
    assert c.emails == ("a@x.io", "b@x.io")
    assert c.tags == ("t",)
    assert c.lifecycle_stage is LifecycleStage.LEAD
    assert c.created_at == dt.datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
    assert c.created_at is not None
    assert c.created_at.tzinfo is dt.UTC
    assert isinstance(c.custom, FrozenDict)
    assert c.custom["labels"] == ("a", 1)
    assert c.name == "Lovelace"
    assert c.email == "a@x.io"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (90, dt.timedelta(seconds=90)),
        (1.0004, dt.timedelta(seconds=1)),
        (1.0006, dt.timedelta(seconds=1, milliseconds=1)),
        (dt.timedelta(microseconds=1500), dt.timedelta(milliseconds=2)),
        (None, None),
    ],
)
def test_durations_are_whole_milliseconds(given: Any, stored: Any) -> None:
    """Numbers are seconds; durations are rounded to milliseconds like datetimes."""
    i = Interaction(kind=InteractionKind.CALL, occurred_at=AWARE, duration=given)
    assert i.duration == stored


@pytest.mark.parametrize(
    ("amount", "stored"),
    [(1, Decimal(1)), ("12.50", Decimal("12.50")), (0.1, Decimal("0.1")), (" 3 ", Decimal(3))],
)
def test_money_accepts_numbers_and_normalizes_the_currency(amount: Any, stored: Decimal) -> None:
    """Money takes int, float (by repr), numeric text and Decimal; currency is upper-cased."""
    m = Money(amount=amount, currency=" eur ")
    assert m.amount == stored
    assert m.currency == "EUR"
    assert str(m) == f"{stored} EUR"


def test_value_objects_from_mappings() -> None:
    """Mappings build Address, Money and Stage values."""
    deal = Deal(name="D", amount={"amount": "5", "currency": "USD"})
    assert deal.amount == Money(amount=Decimal(5), currency="USD")
    contact = Contact(first_name="A", address={"city": "Paris", "country": "FR"})
    assert contact.address == Address(city="Paris", country="FR")
    pipeline = Pipeline(name="P", stages=[{"key": "a", "name": "A"}])
    assert pipeline.stages == (Stage(key="a", name="A"),)
    assert pipeline.stage("a").name == "A"
    with pytest.raises(ValidationError):
        pipeline.stage("zz")


def test_role_permissions_are_nested_documents() -> None:
    """Role.permissions maps collection -> action -> scope (nested), as documented."""
    role = Role(name="Agent", permissions={"contacts": {"read": "team", "update": "own"}})
    assert role.permissions["contacts"]["read"] == "team"
    assert hash(role) == hash(Role(name="Agent", permissions=role.permissions.to_dict()))


def test_frozen_dict_is_immutable_hashable_and_thaws() -> None:
    """FrozenDict compares with dicts, hashes, refuses writes and thaws recursively."""
    fd = FrozenDict({"a": 1, "b": (1, 2)})
    assert fd == {"a": 1, "b": (1, 2)}
    assert hash(fd) == hash(FrozenDict({"b": (1, 2), "a": 1}))
    with pytest.raises(TypeError):
        fd["a"] = 2  # type: ignore[index]
    assert fd.to_dict() == {"a": 1, "b": [1, 2]}


def test_entities_are_immutable() -> None:
    """Changing an entity means attrs.evolve, which validates again."""
    c = Contact(first_name="Ada")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        c.first_name = "Grace"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        attrs.evolve(c, emails=[5])
    assert attrs.evolve(c, title="CEO").title == "CEO"


@pytest.mark.parametrize("entity", list(ENTITY_TYPES.values()), ids=list(ENTITY_TYPES))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_strategies_build_valid_entities_that_survive_evolve(
    entity: type[Any], data: st.DataObject
) -> None:
    """The shipped strategies produce valid instances; re-validating changes nothing."""
    value = data.draw(cs.entities(entity, wide_custom=True))
    assert type(value) is entity
    assert attrs.evolve(value) == value
    assert hash(attrs.evolve(value)) == hash(value)
