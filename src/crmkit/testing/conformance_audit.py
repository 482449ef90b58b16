"""Conformance tests of the audit trail and custom fields (part of the suite every backend
runs): an entry per write with old and new values, actor and reason, in the write's
transaction; custom field definitions validated on every write path, usable in filters and
ordering, surviving a new CRM on the same storage."""

from __future__ import annotations

import datetime as dt
import io
import time
from decimal import Decimal
from typing import Any

import attrs
import pytest

import crmkit
from crmkit import CRM, Contact, Interaction, Role, Task, User
from crmkit.aggregation import Metric
from crmkit.entities import FieldDefinition, FieldType, InteractionKind, LifecycleStage
from crmkit.events import Updated
from crmkit.query import F

__all__ = ["AuditConformance"]


class _Boom(Exception):
    """Raised to abort a transaction."""


def _changes(entry: Any) -> dict[str, Any]:
    from crmkit.entities._fields import thaw

    out: dict[str, Any] = thaw(entry.changes)
    return out


class AuditConformance:
    """Audit trail and custom fields, on any backend (mixed into ``ConformanceSuite``)."""

    # --- audit ----------------------------------------------------------------------------

    def test_audit_records_add_update_delete(self, crm: CRM) -> None:
        ada = crm.contacts.add(Contact(first_name="Ada", emails=("ada@example.com",)))
        assert ada.id is not None
        changed = crm.contacts.update(attrs.evolve(ada, title="CTO", first_name="Ada B"))
        crm.contacts.delete(ada.id)
        history = crm.audit.history(ada.id)
        assert [e.action for e in history] == ["delete", "update", "create"]
        delete, update, create = history
        assert set(create.changed) == {"first_name", "emails"}
        assert _changes(create)["emails"] == {"old": None, "new": ["ada@example.com"]}
        assert set(update.changed) == {"title", "first_name"}
        assert _changes(update) == {
            "title": {"old": None, "new": "CTO"},
            "first_name": {"old": "Ada", "new": "Ada B"},
        }
        assert _changes(delete)["title"] == {"old": "CTO", "new": None}
        assert all(e.record_collection == "contacts" and e.record_id == ada.id for e in history)
        assert update.at == changed.updated_at
        assert crm.audit.history(ada.id, limit=1) == [delete]
        assert crm.audit.history(ada.id, collection="accounts") == []

    def test_audit_create_values_are_filled_in_from_the_next_change(self, crm: CRM) -> None:
        """A create stores field names only; reads fill in the values of version 1."""
        ada = crm.contacts.add(
            Contact(first_name="Ada", title="CTO", emails=("ada@example.com",), tags=("vip",))
        )
        key = ada.id or ""
        stored = crm.audit_log.find(F.record_id == key)
        assert [(e.action, dict(e.changes)) for e in stored] == [("create", {})]
        time.sleep(0.003)  # the updates below are strictly later than the create
        ada = crm.contacts.update(attrs.evolve(ada, title="CEO"))
        ada = crm.contacts.update(attrs.evolve(ada, title="Chair", first_name="Ada B"))
        first = {
            "first_name": {"old": None, "new": "Ada"},
            "title": {"old": None, "new": "CTO"},
            "emails": {"old": None, "new": ["ada@example.com"]},
            "tags": {"old": None, "new": ["vip"]},
        }
        create = crm.audit.history(key)[-1]
        assert _changes(create) == first
        # a page that starts before the later entries is filled in the same way
        second = crm.audit.history(key)[1]
        assert _changes(crm.audit.history(key, before=second.at)[0]) == first
        assert [(c.old, c.new) for c in crm.audit.field_history(key, "title")] == [
            ("CEO", "Chair"),
            ("CTO", "CEO"),
            (None, "CTO"),
        ]
        crm.contacts.delete(key)
        assert _changes(crm.audit.history(key)[-1]) == first
        assert _changes(crm.audit.filled(stored)[0]) == first

    def test_audit_a_number_becoming_a_boolean_is_a_change(self, crm: CRM) -> None:
        """``1`` and ``True`` are one value to Python, two to storage and to queries: the
        change is audited, and an import carrying it is written."""
        ada = crm.contacts.add(
            Contact(first_name="Ada", custom={"vip": 1}, external_ids={"shop": "S-1"})
        )
        ada = crm.contacts.update(attrs.evolve(ada, custom={"vip": True}))
        assert [(c.old, c.new) for c in crm.audit.field_history(ada.id or "", "custom")] == [
            ({"vip": 1}, {"vip": True}),
            (None, {"vip": 1}),
        ]
        line = '{"external_ids": {"shop": "S-1"}, "custom": {"vip": 1}}\n'
        assert crm.imports.jsonl(io.StringIO(line)).updated == 1
        assert crm.contacts.count(F.custom.vip == 1) == 1
        assert crm.imports.jsonl(io.StringIO(line)).unchanged == 1

    def test_audit_history_pages_through_entries_of_one_millisecond(self, crm: CRM) -> None:
        """Paging by the last entry reaches every entry, however many share a time."""
        at = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
        frozen = CRM(crm.backend, clock=lambda: at)
        ada = frozen.contacts.add(Contact(first_name="A"))
        for name in "BCDE":
            ada = frozen.contacts.update(attrs.evolve(ada, first_name=name))
        everything = crm.audit.history(ada.id or "")
        assert len(everything) == 5
        pages, page = [], crm.audit.history(ada.id or "", limit=2)
        while page:
            pages.append(page)
            page = crm.audit.history(ada.id or "", limit=2, before=page[-1])
        assert [len(p) for p in pages] == [2, 2, 1]
        assert [e for p in pages for e in p] == everything
        assert crm.audit.history(ada.id or "", before=at) == []  # strictly older

    def test_audit_history_stays_in_order_with_a_clock_behind(self, crm: CRM) -> None:
        """Writes from a clock behind the record's last write (another server's) are
        stamped no earlier than it, so history and filled-in values stay right."""
        behind = CRM(crm.backend, clock=lambda: crm.now() - dt.timedelta(minutes=5))
        ada = crm.contacts.add(Contact(first_name="A"))
        changed = behind.contacts.update(attrs.evolve(ada, first_name="B"))
        assert ada.updated_at is not None
        assert changed.updated_at == ada.updated_at + dt.timedelta(milliseconds=1)
        behind.contacts.delete(ada.id or "")
        history = crm.audit.history(ada.id or "")
        assert [e.action for e in history] == ["delete", "update", "create"]
        assert history[0].at == changed.updated_at
        assert [(c.old, c.new) for c in crm.audit.field_history(ada.id or "", "first_name")] == [
            ("B", None),
            ("A", "B"),
            (None, "A"),
        ]

    def test_audit_values_are_json_safe(self, crm: CRM) -> None:
        from crmkit import Deal, Pipeline
        from crmkit.entities import Money, Stage

        pipeline = crm.pipelines.add(Pipeline(name="Sales", stages=(Stage(key="new", name="New"),)))
        deal = crm.deals.add(
            Deal(
                name="Big",
                pipeline_id=pipeline.id or "",
                stage="new",
                amount=Money(amount=Decimal("10.50"), currency="USD"),
                close_date=dt.date(2030, 1, 2),
            )
        )
        entry = crm.audit.history(deal.id or "", limit=1)[0]
        new = {k: v["new"] for k, v in _changes(entry).items()}
        assert new["amount"] == {"amount": "10.50", "currency": "USD"}
        assert new["close_date"] == "2030-01-02"

    def test_audit_add_many_writes_one_entry_per_record(self, crm: CRM) -> None:
        people = crm.contacts.add_many([Contact(first_name=n) for n in ("A", "B", "C")])
        entries = crm.audit_log.find(F.record_collection == "contacts")
        assert sorted(e.record_id for e in entries) == sorted(p.id or "" for p in people)
        assert all(e.action == "create" and e.changed == ("first_name",) for e in entries)

    def test_audit_actor_and_reason_come_from_acting(self, crm: CRM) -> None:
        with crm.acting("u-1", reason="customer asked"):
            ada = crm.contacts.add(Contact(first_name="Ada"))
        entry = crm.audit.history(ada.id or "")[0]
        assert (entry.actor_id, entry.reason) == ("u-1", "customer asked")

    def test_audit_reasons_of_merge_unmerge_conversion_and_import(self, crm: CRM) -> None:
        """Services record why they wrote; an explicit reason given by the caller wins."""
        a = crm.contacts.add(Contact(first_name="Ada", emails=("ada@example.com",)))
        b = crm.contacts.add(Contact(first_name="Ada", emails=("ada@example.org",)))
        with crm.acting("u-1"):
            merge = crm.dedupe.merge(a.id or "", [b.id or ""])
        survivor = crm.audit.history(a.id or "")[0]
        gone = crm.audit.history(b.id or "")[0]
        assert (survivor.action, survivor.reason, survivor.actor_id) == ("update", "merge", "u-1")
        assert (gone.action, gone.reason) == ("delete", "merge")
        crm.dedupe.unmerge(merge.id or "")
        restored = crm.audit.history(b.id or "")[0]
        assert (restored.action, restored.reason) == ("create", "unmerge")

        lead = crm.contacts.add(Contact(first_name="Lin", lifecycle_stage=LifecycleStage.LEAD))
        crm.leads.convert(lead.id or "", account={"name": "Lin Ltd"})
        assert crm.audit.history(lead.id or "")[0].reason == "lead conversion"
        with crm.acting(None, reason="spring clean-up"):
            crm.leads.convert(
                crm.contacts.add(Contact(first_name="Max", lifecycle_stage=LifecycleStage.LEAD)).id
                or ""
            )
        assert crm.audit.history(crm.contacts.first(F.first_name == "Max").id or "")[0].reason == (  # type: ignore[union-attr]
            "spring clean-up"
        )

        crm.imports.csv(io.StringIO("first\nGrace\n"), mapping={"first": "first_name"})
        grace = crm.contacts.first(F.first_name == "Grace")
        assert grace is not None
        assert crm.audit.history(grace.id or "")[0].reason == "import"

    def test_audit_entries_roll_back_with_the_write(self, crm: CRM) -> None:
        def write() -> None:
            with crm.transaction():
                crm.contacts.add(Contact(first_name="Ada"))
                crm.contacts.add_many([Contact(first_name="B"), Contact(first_name="C")])
                raise _Boom

        with pytest.raises(_Boom):
            write()
        assert crm.audit_log.count() == 0
        assert crm.contacts.count() == 0

    def test_audit_field_history(self, crm: CRM) -> None:
        ada = crm.contacts.add(Contact(first_name="Ada", custom={"tier": "gold"}))
        with crm.acting("u-1", reason="promotion"):
            ada = crm.contacts.update(attrs.evolve(ada, title="CTO"))
        with crm.acting("u-2"):
            ada = crm.contacts.update(attrs.evolve(ada, title="CEO", custom={"tier": "platinum"}))
        history = crm.audit.field_history(ada.id or "", "title")
        assert [(c.actor_id, c.old, c.new) for c in history] == [
            ("u-2", "CTO", "CEO"),
            ("u-1", None, "CTO"),
        ]
        assert history[1].reason == "promotion"
        tiers = crm.audit.field_history(ada.id or "", "custom.tier")
        assert [(c.old, c.new) for c in tiers] == [("gold", "platinum"), (None, "gold")]

    def test_audit_log_itself_is_not_audited_and_can_be_switched_off(self, crm: CRM) -> None:
        crm.contacts.add(Contact(first_name="Ada"))
        assert crm.audit_log.count() == 1
        crm.audit.enabled = False
        try:
            crm.contacts.add(Contact(first_name="Bob"))
        finally:
            crm.audit.enabled = True
        assert crm.audit_log.count() == 1

    def test_audit_of_user_view_writes_and_reads(self, crm: CRM) -> None:
        role = crm.roles.add(
            Role(
                name="rep",
                permissions={"contacts": {"read": "own", "create": "own", "update": "own"}},
                hidden_fields={"contacts": ["phones", "custom.salary"]},
            )
        )
        alice = crm.users.add(User(name="Alice", role_ids=(role.id or "",)))
        other = crm.contacts.add(Contact(first_name="Other", owner_id="someone-else"))
        view = crm.as_user(alice.id or "")
        mine = view.contacts.add(Contact(first_name="Mine"))
        view.contacts.update(attrs.evolve(mine, title="CTO"))
        crm.contacts.update(attrs.evolve(crm.contacts.get(mine.id or ""), phones=("+14155550123",)))
        history = view.audit.history(mine.id or "")
        assert [e.action for e in history] == ["update", "update", "create"]
        assert [e.actor_id for e in history] == [None, alice.id, alice.id]
        assert "phones" not in history[0].changed  # hidden from Alice
        assert "phones" in crm.audit.history(mine.id or "")[0].changed
        with pytest.raises(crmkit.NotFound):
            view.audit.history(other.id or "")
        with pytest.raises(crmkit.PermissionDenied):
            view.audit.field_history(mine.id or "", "phones")
        # a field with a hidden part: its values without that part
        for custom in ({"salary": 100, "tier": "gold"}, {"salary": 200, "tier": "gold"}):
            current = crm.contacts.get(mine.id or "")
            crm.contacts.update(attrs.evolve(current, custom=custom))
        assert [(c.old, c.new) for c in view.audit.field_history(mine.id or "", "custom")] == [
            ({}, {"tier": "gold"})
        ]
        with pytest.raises(crmkit.PermissionDenied):
            view.audit.field_history(mine.id or "", "custom.salary")

    # --- custom fields --------------------------------------------------------------------

    def test_custom_field_definitions_are_listed_and_survive_a_new_crm(self, crm: CRM) -> None:
        crm.schema.define_field(
            "contacts", "tier", "enum", choices=["gold", "silver"], sensitivity="personal"
        )
        crm.schema.define_field(Contact, "score", FieldType.INTEGER, required=True, default=0)
        fields = crm.schema.fields("contacts")
        assert [(d.name, d.type, d.sensitivity) for d in fields] == [
            ("score", "integer", None),
            ("tier", "enum", "personal"),
        ]
        assert fields[1].choices == ("gold", "silver")
        again = CRM(crm.backend)
        assert [d.name for d in again.schema.fields("contacts")] == ["score", "tier"]
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.tier"):
            again.contacts.add(Contact(first_name="X", custom={"tier": "bronze"}))

    def test_custom_field_values_are_checked_on_every_write_path(self, crm: CRM) -> None:
        crm.schema.define_field("contacts", "tier", "enum", choices=["gold", "silver"])
        crm.schema.define_field("contacts", "score", "integer")
        bad = Contact(first_name="Bad", custom={"tier": "bronze"})
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.tier"):
            crm.contacts.add(bad)
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.tier"):
            crm.contacts.add_many([Contact(first_name="ok"), bad])
        result = crm.contacts.add_many([Contact(first_name="ok"), bad], on_error="collect")
        assert len(result) == 1
        assert "contact.custom.tier" in result.rejected[0].reasons[0]
        ok = result[0]
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.score"):
            crm.contacts.update(attrs.evolve(ok, custom={"score": "many"}))
        admin = crm.users.add(User(name="Root", admin=True))
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.tier"):
            crm.as_user(admin.id or "").contacts.add(bad)
        summary = crm.imports.csv(
            io.StringIO("first_name,custom.tier,custom.score\nAnn,gold,7\nBen,bronze,1\n")
        )
        assert (summary.created, summary.rejected) == (1, 1)
        ann = crm.contacts.first(F.first_name == "Ann")
        assert ann is not None
        assert dict(ann.custom) == {"tier": "gold", "score": 7}
        assert crm.contacts.count() == 2

    def test_custom_field_types_defaults_and_required(self, crm: CRM) -> None:
        s = crm.schema
        s.define_field("contacts", "since", "date")
        s.define_field("contacts", "seen", "datetime")
        s.define_field("contacts", "ratio", "decimal")
        s.define_field("contacts", "vip", "boolean", default=False)
        s.define_field("contacts", "tags", "multi_enum", choices=["a", "b"])
        s.define_field("contacts", "region", "text", required=True, default="EU")
        seen = dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        ada = crm.contacts.add(
            Contact(
                first_name="Ada",
                custom={"since": "2024-01-02", "seen": seen.isoformat(), "ratio": "0.5"},
            )
        )
        assert dict(ada.custom) == {
            "since": "2024-01-02",
            "seen": "2024-03-05T12:30:00.000+00:00",
            "ratio": 0.5,
            "vip": False,
            "region": "EU",
        }
        assert crm.contacts.count(F.custom.since >= dt.date(2024, 1, 1)) == 1
        assert crm.contacts.count(F.custom.seen < dt.datetime(2024, 3, 5, 13, tzinfo=dt.UTC)) == 1
        assert crm.contacts.count(F.custom.seen > dt.datetime(2024, 3, 5, 13, tzinfo=dt.UTC)) == 0
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.region"):
            crm.contacts.update(attrs.evolve(ada, custom={**ada.custom, "region": None}))
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.tags"):
            crm.contacts.add(Contact(first_name="X", custom={"tags": ["a", "z"]}))
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.since"):
            crm.contacts.add(Contact(first_name="X", custom={"since": "yesterday"}))
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.vip"):
            crm.contacts.add(Contact(first_name="X", custom={"vip": 3}))
        with pytest.raises(crmkit.ValidationError):
            s.define_field("contacts", "bad", "enum")  # no choices
        with pytest.raises(crmkit.ValidationError):
            s.define_field("contacts", "bad", "colour")

    def test_custom_field_filters_and_ordering(self, crm: CRM) -> None:
        crm.schema.define_field("contacts", "score", "integer", indexed=True)
        crm.schema.define_field(
            "contacts", "tier", "enum", choices=["gold", "silver"], indexed=True
        )
        crm.schema.define_field("contacts", "since", "date", indexed=True)
        for name, score, tier, since in (
            ("A", 5, "gold", "2024-01-01"),
            ("B", 20, "silver", "2023-06-01"),
            ("C", 12, "gold", "2025-02-03"),
        ):
            crm.contacts.add(
                Contact(first_name=name, custom={"score": score, "tier": tier, "since": since})
            )
        names = [c.first_name for c in crm.contacts.find(F.custom.score > 6, order_by="first_name")]
        assert names == ["B", "C"]
        assert [
            c.first_name for c in crm.contacts.find(F.custom.tier == "gold", order_by="first_name")
        ] == ["A", "C"]
        assert [
            c.first_name
            for c in crm.contacts.find(F.custom.since < "2024-06-01", order_by="first_name")
        ] == ["A", "B"]
        by_score = crm.contacts.find(order_by="-custom.score")
        assert [c.first_name for c in by_score] == ["B", "C", "A"]
        by_since = crm.contacts.find(F.custom.tier == "gold", order_by="custom.since")
        assert [c.first_name for c in by_since] == ["A", "C"]
        crm.contacts.add(Contact(first_name="D"))  # no values: sorts last both ways
        assert [c.first_name for c in crm.contacts.find(order_by="custom.tier")][-1] == "D"
        first = crm.contacts.page(order_by="custom.score", limit=2)
        rest = crm.contacts.page(order_by="custom.score", limit=2, after=first.next_cursor)
        assert [c.first_name for c in (*first.items, *rest.items)] == ["A", "C", "B", "D"]
        with pytest.raises(crmkit.ValidationError, match="sorted"):
            crm.contacts.find(order_by="custom.undeclared")
        # the text of a number is converted to the field's type
        assert crm.contacts.count(F.custom.score.in_(["5", 20])) == 2
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.tier"):
            crm.contacts.find(F.custom.tier == "bronze")
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.score"):
            crm.contacts.find(F.custom.score == "lots")
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.since"):
            crm.contacts.find(F.custom.since > "soon")

    def test_custom_field_empty_values_are_no_values(self, crm: CRM) -> None:
        crm.schema.define_field("contacts", "score", "integer")
        crm.schema.define_field("contacts", "tier", "enum", choices=["gold"], default="gold")
        blank = crm.contacts.add(Contact(first_name="Blank", custom={"score": "", "tier": ""}))
        assert dict(blank.custom) == {"tier": "gold"}  # dropped; a new record gets the default
        crm.contacts.add(Contact(first_name="Real", custom={"score": 5}))
        assert crm.contacts.count(F.custom.score.exists()) == 1
        assert [c.first_name for c in crm.contacts.find(order_by="custom.score")] == [
            "Real",
            "Blank",
        ]
        assert crm.contacts.aggregate(metrics=[Metric("sum", "custom.score")]) == [
            {"sum_custom.score": 5}
        ]
        cleared = crm.contacts.update(attrs.evolve(blank, custom={"score": None, "tier": "gold"}))
        assert dict(cleared.custom) == {"tier": "gold"}

    def test_custom_field_required_applies_to_new_values_and_spares_erasure(self, crm: CRM) -> None:
        old = crm.contacts.add(Contact(first_name="Old", emails=("old@example.com",)))
        crm.schema.define_field("contacts", "region", "text", required=True, default="EU")
        crm.schema.define_field(
            "contacts", "birthday", "date", required=True, sensitivity="sensitive"
        )
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.birthday"):
            crm.contacts.add(Contact(first_name="New"))
        # a record from before: it can still be changed, and gets the default
        updated = crm.contacts.update(attrs.evolve(old, title="Engineer"))
        assert dict(updated.custom) == {"region": "EU"}
        ada = crm.contacts.add(
            Contact(
                first_name="Ada", emails=("ada@example.com",), custom={"birthday": "1815-12-10"}
            )
        )
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.birthday"):
            crm.contacts.update(attrs.evolve(ada, custom={**ada.custom, "birthday": None}))
        crm.privacy.erase(ada.id or "")
        erased = crm.contacts.get(ada.id or "")
        assert "birthday" not in erased.custom
        assert erased.emails == ()

    def test_custom_field_erasure_clears_required_personal_fields_everywhere(
        self, crm: CRM
    ) -> None:
        crm.schema.define_field(
            "interactions", "caller", "text", required=True, sensitivity="personal"
        )
        ann = crm.contacts.add(Contact(first_name="Ann", emails=("ann@example.com",)))
        call = crm.interactions.add(
            Interaction(
                kind=InteractionKind.CALL,
                occurred_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
                contact_ids=(ann.id or "",),
                custom={"caller": "Ann"},
            )
        )
        # a subscriber's writes when the erasure commits are checked like any other
        crm.schema.define_field("tasks", "queue", "text", required=True)
        refused: list[str] = []

        def follow_up(event: Updated) -> None:
            try:
                crm.tasks.add(Task(title="Confirm the erasure"))
            except crmkit.ValidationError as exc:
                refused.append(exc.field)

        crm.events.subscribe(Updated, follow_up)
        crm.privacy.erase(ann.id or "")
        assert "caller" not in crm.interactions.get(call.id or "").custom
        assert crm.contacts.get(ann.id or "").emails == ()
        assert not crm.privacy.erasing
        assert set(refused) == {"task.custom.queue"}
        assert crm.tasks.count() == 0

    def test_custom_field_cleared_optional_value_stays_cleared(self, crm: CRM) -> None:
        crm.schema.define_field(
            "contacts", "tier", "enum", choices=["gold", "silver"], default="silver"
        )
        ada = crm.contacts.add(Contact(first_name="Ada"))
        assert ada.custom == {"tier": "silver"}
        cleared = crm.contacts.update(attrs.evolve(ada, custom={}))
        assert cleared.custom == {}
        assert crm.contacts.update(attrs.evolve(cleared, title="CTO")).custom == {}

    def test_custom_field_decimals_are_stored_as_numbers(self, crm: CRM) -> None:
        crm.schema.define_field("contacts", "seats", "integer")
        ada = crm.contacts.add(
            Contact(first_name="Ada", custom={"price": Decimal("19.99"), "seats": Decimal("12.0")})
        )
        assert dict(ada.custom) == {"price": 19.99, "seats": 12}
        assert crm.contacts.count(F.custom.price > 10) == 1
        crm.schema.define_field("contacts", "revenue", "decimal")
        for amount in (Decimal("1E+19"), Decimal("9.3E+18")):  # beyond 64-bit whole numbers
            big = crm.contacts.add(Contact(first_name="Big", custom={"revenue": amount}))
            assert big.custom["revenue"] == float(amount)
        with pytest.raises(crmkit.ValidationError, match="finite"):
            Contact(first_name="Huge", custom={"note": Decimal("1E+5000")})

    def test_custom_field_definition_puts_stored_values_in_its_form(self, crm: CRM) -> None:
        # values stored while the key was free-form are rewritten in the defined form, so
        # that filters, sorting and sums treat them like values written afterwards
        old = crm.contacts.add(Contact(first_name="Old", custom={"score": "12", "vip": "no"}))
        crm.contacts.add(Contact(first_name="Blank", custom={"score": ""}))
        crm.schema.define_field("contacts", "score", "integer")
        crm.schema.define_field("contacts", "vip", "boolean")
        new = crm.contacts.add(Contact(first_name="New", custom={"score": 3, "vip": True}))
        assert crm.contacts.get(old.id or "").custom == {"score": 12, "vip": False}
        assert crm.contacts.count(F.custom.score > 5) == 1
        assert [c.first_name for c in crm.contacts.find(order_by="-custom.score")][:2] == [
            "Old",
            "New",
        ]
        assert crm.contacts.aggregate(metrics=[Metric("sum", "custom.score")]) == [
            {"sum_custom.score": 15}
        ]
        assert [c.id for c in crm.contacts.find(F.custom.vip == True)] == [new.id]  # noqa: E712
        rewritten = crm.audit.history(old.id or "", limit=1)[0]
        assert rewritten.reason == "define_field"

    def test_custom_field_definitions_roll_back_with_their_transaction(self, crm: CRM) -> None:
        crm.schema.define_field("contacts", "score", "integer")

        def redefine() -> None:
            with crm.transaction():
                crm.schema.define_field("contacts", "tier", "enum", choices=["gold"])
                crm.schema.remove_field("contacts", "score")
                crm.contacts.add(Contact(first_name="Inside", custom={"tier": "gold"}))
                raise _Boom

        with pytest.raises(_Boom):
            redefine()
        assert [d.name for d in crm.schema.fields("contacts")] == ["score"]
        crm.contacts.add(Contact(first_name="After", custom={"tier": "bronze"}))  # free-form
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.score"):
            crm.contacts.add(Contact(first_name="After", custom={"score": "lots"}))

    def test_custom_field_definition_deleted_through_its_repository_is_forgotten(
        self, crm: CRM
    ) -> None:
        score = crm.schema.define_field("contacts", "score", "integer")
        assert crm.schema.fields("contacts") == [score]  # read, and cached
        crm.repository(FieldDefinition).delete(score.id or "")
        assert crm.schema.fields("contacts") == []
        free = crm.contacts.add(Contact(first_name="Ada", custom={"score": "lots"}))
        assert free.custom == {"score": "lots"}

    def test_custom_field_typed_values_and_list_comparisons(self, crm: CRM) -> None:
        s = crm.schema
        s.define_field("contacts", "since", "date")
        s.define_field("contacts", "seen", "datetime")
        s.define_field("contacts", "spend", "decimal")
        s.define_field("contacts", "topics", "multi_enum", choices=["api", "sso", "billing"])
        seen = dt.datetime(2024, 1, 2, 13, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        ada = crm.contacts.add(
            Contact(
                first_name="Ada",
                custom={
                    "since": dt.date(2024, 1, 2),
                    "seen": seen,
                    "spend": Decimal("1.5"),
                    "topics": ["api", "sso"],
                },
            )
        )
        assert dict(ada.custom) == {
            "since": "2024-01-02",
            "seen": "2024-01-02T12:00:00.000+00:00",
            "spend": 1.5,
            "topics": ("api", "sso"),
        }
        crm.contacts.add(Contact(first_name="Ben", custom={"topics": ["billing"]}))
        assert crm.contacts.count(F.custom.topics.in_(["sso", "billing"])) == 2
        assert crm.contacts.count(F.custom.topics.in_(["api"])) == 1
        for bad in (F.custom.topics == "api", F.custom.topics != "api"):
            with pytest.raises(crmkit.ValidationError, match="is a list"):
                crm.contacts.find(bad)
        # a date field compared with a point in time compares with its day
        assert crm.contacts.count(F.custom.since.within_last(dt.timedelta(days=36500))) == 1
        edge = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
        with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.seen"):
            crm.contacts.add(Contact(first_name="Far", custom={"seen": edge}))
        with pytest.raises(crmkit.ValidationError, match=r"custom\.seen"):
            crm.contacts.find(F.custom.seen > edge)

    def test_custom_field_removal_keeps_data(self, crm: CRM) -> None:
        crm.schema.define_field("contacts", "tier", "enum", choices=["gold", "silver"])
        ada = crm.contacts.add(Contact(first_name="Ada", custom={"tier": "gold"}))
        assert crm.schema.remove_field("contacts", "tier") is True
        assert crm.schema.remove_field("contacts", "tier") is False
        assert crm.schema.fields("contacts") == []
        assert crm.contacts.get(ada.id or "").custom["tier"] == "gold"
        bronze = crm.contacts.add(Contact(first_name="Ben", custom={"tier": "bronze"}))  # free-form
        with pytest.raises(crmkit.ValidationError, match=bronze.id or ""):
            crm.schema.define_field("contacts", "tier", "enum", choices=["gold", "silver"])
        assert crm.schema.fields("contacts") == []
        crm.schema.define_field("contacts", "tier", "enum", choices=["gold", "silver", "bronze"])
        assert [d.choices for d in crm.schema.fields("contacts")] == [("gold", "silver", "bronze")]
