"""The repository and CRM facade: what does not depend on a backend.

These tests use the ``crm`` fixture of crmkit's own pytest plugin (``memory://``), which
they exercise at the same time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest

import crmkit
from crmkit import CRM, Account, Contact, ValidationError
from crmkit.crm import available_backends
from crmkit.events import Created, Event, EventBus
from crmkit.query import F
from crmkit.repository import BulkResult, Rejected


def test_plugin_fixture_gives_a_fresh_memory_crm(crm: CRM) -> None:
    """The plugin's ``crm`` fixture is an empty CRM on the memory backend."""
    assert isinstance(crm, CRM)
    assert crm.backend.name == "memory"
    assert all(repo.count() == 0 for repo in crm.repositories.values())
    crm.contacts.add(Contact(first_name="Ada"))


def test_plugin_fixture_is_function_scoped(crm: CRM) -> None:
    """The record added by the previous test is not visible here."""
    assert crm.contacts.count() == 0


def test_clock_sets_timestamps_at_millisecond_precision() -> None:
    """connect(clock=...) drives created_at/updated_at, converted to UTC milliseconds."""
    plus2 = dt.timezone(dt.timedelta(hours=2))
    ticks = iter(
        [
            dt.datetime(2024, 1, 1, 12, 0, 0, 123999, tzinfo=plus2),
            dt.datetime(2024, 1, 2, 12, 0, 0, tzinfo=plus2),
        ]
    )
    with crmkit.connect("memory://", clock=lambda: next(ticks)) as crm:
        ada = crm.contacts.add(Contact(first_name="Ada"))
        assert ada.created_at == dt.datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=dt.UTC)
        ada2 = crm.contacts.update(attrs.evolve(ada, title="CEO"))
        assert ada2.created_at == ada.created_at
        assert ada2.updated_at == dt.datetime(2024, 1, 2, 10, 0, tzinfo=dt.UTC)


def test_a_naive_clock_is_rejected() -> None:
    """A clock returning naive datetimes is a ValidationError, and nothing is written."""
    with crmkit.connect("memory://", clock=lambda: dt.datetime(2024, 1, 1)) as crm:
        with pytest.raises(ValidationError) as caught:
            crm.contacts.add(Contact(first_name="Ada"))
        assert caught.value.field == "clock"
        # every repository call asks the clock, so look at the store itself
        assert crm.backend.store(Contact).count(None) == 0


def test_an_update_never_goes_back_before_creation() -> None:
    """A clock that moves backwards cannot make updated_at earlier than the last write:
    the update is stamped one millisecond after it."""
    ticks = iter([dt.datetime(2024, 1, 2, tzinfo=dt.UTC), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)])
    with crmkit.connect("memory://", clock=lambda: next(ticks)) as crm:
        ada = crm.contacts.add(Contact(first_name="Ada"))
        ada2 = crm.contacts.update(attrs.evolve(ada, title="x"))
        assert ada.created_at is not None
        assert ada2.updated_at == ada.created_at + dt.timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"on_error": "skip"}, "on_error"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
    ],
)
def test_add_many_checks_its_options(crm: CRM, kwargs: dict[str, Any], field: str) -> None:
    """Bad add_many options are ValidationErrors raised before anything is written."""
    with pytest.raises(ValidationError) as caught:
        crm.contacts.add_many([Contact(first_name="A")], **kwargs)
    assert caught.value.field == field
    assert crm.contacts.count() == 0


def test_bulk_result_is_a_sequence_with_rejections(crm: CRM) -> None:
    """BulkResult indexes like the list of added records; Rejected explains each miss."""
    wrong = Account(name="wrong")
    result = crm.contacts.add_many(
        [Contact(first_name="A"), wrong, Contact(first_name="B")],  # type: ignore[list-item]
        on_error="collect",
    )
    assert isinstance(result, BulkResult)
    assert len(result) == 2
    assert result[0].first_name == "A"
    assert [c.first_name for c in result[0:2]] == ["A", "B"]
    assert repr(result) == "BulkResult(added=2, rejected=1)"
    (rejected,) = result.rejected
    assert isinstance(rejected, Rejected)
    assert rejected.index == 1
    assert rejected.item is wrong
    assert "must be a Contact, not Account" in rejected.reasons[0]


def test_first_exists_iterate_and_page_checks(crm: CRM) -> None:
    """first/exists/iterate read through find; page and iterate validate their sizes."""
    assert crm.contacts.first() is None
    assert not crm.contacts.exists()
    added = crm.contacts.add_many(Contact(first_name=n) for n in "cab")
    assert crm.contacts.first(order_by="first_name") == added[1]
    assert crm.contacts.first(F.first_name == "b") == added[2]
    assert crm.contacts.exists(F.first_name == "a")
    assert not crm.contacts.exists(F.first_name == "z")
    assert [c.first_name for c in crm.contacts.iterate(order_by="-first_name")] == [
        "c",
        "b",
        "a",
    ]
    assert list(crm.contacts.iterate(F.first_name == "a", batch_size=1)) == [added[1]]
    for bad in (0, -1, True):
        with pytest.raises(ValidationError):
            crm.contacts.iterate(batch_size=bad)
        with pytest.raises(ValidationError):
            crm.contacts.page(limit=bad)


def test_repository_lookup_by_name_and_type(crm: CRM) -> None:
    """crm.repository() finds a repository by collection name or entity type."""
    assert crm.repository("contacts") is crm.contacts
    assert crm.repository(Account) is crm.accounts
    assert set(crm.repositories) >= {"contacts", "accounts", "deals", "tickets", "users"}
    with pytest.raises(ValidationError):
        crm.repository("widgets")
    assert repr(crm.contacts) == "<Repository contacts>"


def test_connect_rejects_unknown_targets_and_options() -> None:
    """Unknown URL schemes, non-URLs and options a backend does not take are ValidationErrors."""
    assert "memory" in available_backends()
    with pytest.raises(ValidationError) as caught:
        crmkit.connect("nosuchdb://x")
    assert "memory" in caught.value.reason
    with pytest.raises(ValidationError):
        crmkit.connect("memory")
    with pytest.raises(ValidationError):
        crmkit.connect(object())
    with pytest.raises(ValidationError):
        crmkit.connect("memory://", pool_size=3)


def test_event_bus_unsubscribe_and_failing_handlers() -> None:
    """A failing handler does not stop the others; its error is re-raised afterwards."""
    bus = EventBus()
    calls: list[str] = []

    def broken(event: Event) -> None:
        calls.append("broken")
        raise RuntimeError("handler bug")

    def good(event: Event) -> None:
        calls.append("good")

    bus.subscribe(Event, broken)
    bus.subscribe(Created, good)
    event = Created(collection="contacts", entity_id="x", at=dt.datetime.now(dt.UTC), entity=None)
    with pytest.raises(RuntimeError, match="handler bug"):
        bus.publish([event])
    assert calls == ["broken", "good"]
    bus.unsubscribe(Event, broken)
    bus.unsubscribe(Event, broken)  # absent: no error
    calls.clear()
    bus.publish([event])
    assert calls == ["good"]
    assert bus.active
    bus.unsubscribe(Created, good)
    assert not bus.active


def test_events_are_not_built_without_subscribers(crm: CRM) -> None:
    """With no subscriber the CRM is not listening; subscribing turns it on."""
    assert not crm.listening
    seen: list[Event] = []
    crm.events.subscribe(Created, seen.append)
    assert crm.listening
    ada = crm.contacts.add(Contact(first_name="Ada"))
    assert [e.entity_id for e in seen] == [ada.id]
    assert isinstance(seen[0], Created)
    assert seen[0].entity == ada
