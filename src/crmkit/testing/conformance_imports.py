"""Conformance tests of imports and exports. Mixed into
:class:`crmkit.testing.conformance.ConformanceSuite`, so every backend runs them through its
``crm`` fixture.

What is checked here depends on the backend: records looked up by an external id (a value
inside a mapping field), updates written only when something changed, and exports streamed
back from storage in a form that imports to the same records.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile

import attrs
import pytest

from crmkit import (
    CRM,
    Account,
    Address,
    Contact,
    Deal,
    PermissionDenied,
    Pipeline,
    Role,
    Segment,
    User,
)
from crmkit.backends.memory import MemoryBackend
from crmkit.entities import Stage, StageKind
from crmkit.imports import ImportSummary
from crmkit.query import F

__all__ = ["ImportExportConformance"]

_MAPPING = {
    "id": "external_ids.shop",
    "first": "first_name",
    "last": "last_name",
    "email": "emails",
    "city": "address.city",
    "tier": "custom.tier",
}
_FILE = (
    "id,first,last,email,city,tier\n"
    "C-1,Ada,Lovelace,ADA@example.com;ada@work.com,London,gold\n"
    "C-2,Grace,Hopper,grace@navy.mil,,\n"
    "C-3,,,not-an-email,,\n"
    "C-4,Alan,Turing,,Wilmslow,silver\n"
)


def _state(crm: CRM) -> list[tuple[object, ...]]:
    return [
        (c.id, c.version, c.name, c.emails, c.address, c.custom, c.external_ids)
        for c in crm.contacts.find(order_by="id")
    ]


class ImportExportConformance:
    """Import and export behaviour every backend must have (see the module docstring)."""

    def test_import_upserts_by_external_id_and_reimport_changes_nothing(self, crm: CRM) -> None:
        """Rows match stored records by external id; the same file again is a no-op."""
        stored = crm.contacts.add(
            Contact(first_name="Grace", last_name="H.", external_ids={"shop": "C-2", "erp": "E"})
        )
        first = crm.imports.csv(io.StringIO(_FILE), mapping=_MAPPING, batch_size=2)
        assert first == ImportSummary(rows=4, created=2, updated=1, rejected=1)
        grace = crm.contacts.get(stored.id or "")
        assert (grace.version, grace.last_name) == (2, "Hopper")
        assert grace.external_ids == {"shop": "C-2", "erp": "E"}
        ada = crm.contacts.first(F.external_ids.shop == "C-1")
        assert ada is not None
        assert ada.emails == ("ada@example.com", "ada@work.com")
        assert ada.custom == {"tier": "gold"}
        before = _state(crm)
        again = crm.imports.csv(io.StringIO(_FILE), mapping=_MAPPING, batch_size=2)
        assert again == ImportSummary(rows=4, unchanged=3, rejected=1)
        assert _state(crm) == before

    def test_import_accounts_from_json_lines(self, crm: CRM) -> None:
        """JSON Lines rows upsert accounts by the first external-id source they name."""
        lines = "\n".join(
            json.dumps(row)
            for row in (
                {"name": "Acme", "domain": "acme.com", "external_ids": {"erp": "A-1"}},
                {"name": "Initech", "external_ids": {"erp": "A-2"}, "tags": ["b2b"]},
            )
        )
        assert crm.imports.jsonl(io.StringIO(lines), "accounts").created == 2
        renamed = lines.replace("Initech", "Initrode")
        summary = crm.imports.jsonl(io.StringIO(renamed), "accounts")
        assert (summary.unchanged, summary.updated) == (1, 1)
        names = [a.name for a in crm.accounts.find(order_by="name")]
        assert names == ["Acme", "Initrode"]
        assert isinstance(crm.accounts.first(F.external_ids.erp == "A-2"), Account)

    def test_export_round_trip(self, crm: CRM) -> None:
        """A CSV or JSON Lines export imports back as 'unchanged' for every record, with or
        without external ids (an export's ``id`` names the record), values holding ``;``
        and multi-valued custom fields included; into another CRM, the same records are
        created."""
        crm.schema.define_field("contacts", "langs", "multi_enum", choices=["en", "fr"])
        crm.imports.csv(io.StringIO(_FILE), mapping=_MAPPING)
        crm.contacts.add(Contact(first_name="Ken", tags=("a", "b"), external_ids={"shop": "C-9"}))
        crm.contacts.add(Contact(first_name="Liv", tags=("R&D;EMEA", "[x]")))  # no external id
        crm.contacts.add(Contact(first_name="Max", custom={"langs": ["en", "fr"]}))
        crm.contacts.add(Contact(first_name="Ned", external_ids={"erp": "E-1"}))  # another source
        before = _state(crm)
        for export, load in (
            (crm.exports.csv, crm.imports.csv),
            (crm.exports.jsonl, crm.imports.jsonl),
        ):
            out = io.StringIO()
            assert export(out, "contacts") == 7
            summary = load(io.StringIO(out.getvalue()), "contacts")
            assert summary == ImportSummary(rows=7, unchanged=7)
            other = CRM(MemoryBackend())
            other.schema.define_field("contacts", "langs", "multi_enum", choices=["en", "fr"])
            copied = other.imports.csv if load == crm.imports.csv else other.imports.jsonl
            assert copied(io.StringIO(out.getvalue()), "contacts").created == 7
            assert sorted((c.name, c.tags, c.custom) for c in other.contacts.find()) == sorted(
                (c.name, c.tags, c.custom) for c in crm.contacts.find()
            )
        assert _state(crm) == before
        text = "first_name,custom.langs\nOla,fr;en\n"  # a multi-valued custom column
        assert crm.imports.csv(io.StringIO(text)).created == 1
        ola = crm.contacts.first(F.first_name == "Ola")
        assert ola is not None
        assert tuple(ola.custom["langs"]) == ("fr", "en")
        out = io.StringIO()
        assert crm.exports.jsonl(out, "contacts", where=F.custom.tier == "gold") == 1
        (document,) = [json.loads(line) for line in out.getvalue().splitlines()]
        assert document["external_ids"] == {"shop": "C-1"}

    def test_an_export_imported_into_another_crm_keeps_its_ids(self, crm: CRM) -> None:
        """Records of another CRM's export are created with the ids the file gives them:
        importing the file again changes nothing (with or without external ids), and
        references between the exported records (a deal's contacts) still hold."""
        source = CRM(MemoryBackend())
        ada = source.contacts.add(Contact(first_name="Ada"))  # no external id
        bob = source.contacts.add(Contact(first_name="Bob", external_ids={"shop": "B-1"}))
        deal = source.deals.add(Deal(name="Big", contact_ids=(ada.id or "", bob.id or "")))
        files = {}
        for name in ("contacts", "deals"):
            files[name] = io.StringIO()
            source.exports.jsonl(files[name], name)
        for _ in range(2):
            created = [crm.imports.jsonl(io.StringIO(files[n].getvalue()), n) for n in files]
        assert [(s.created, s.unchanged) for s in created] == [(0, 2), (0, 1)]
        assert {c.id for c in crm.contacts.find()} == {ada.id, bob.id}
        stored = crm.deals.get(deal.id or "")
        assert [c.first_name for c in crm.contacts.get_many(stored.contact_ids)] == ["Ada", "Bob"]
        text = "id,first_name\n" + "x" * 201 + ",Cy\n"  # an id no record may have
        assert crm.imports.csv(io.StringIO(text)).rejected == 1

    def test_export_through_a_user_view(self, crm: CRM) -> None:
        """A view exports the records its user may read, without the hidden fields."""
        role = crm.roles.add(
            Role(
                name="rep",
                permissions={"contacts": {"read": "own", "update": "own"}},
                hidden_fields={"contacts": ["phones", "address", "custom.salary"]},
                readonly_fields={"contacts": ["lead_source"]},
            )
        )
        user = crm.users.add(User(name="Rep", role_ids=(role.id or "",)))
        crm.contacts.add_many(
            [
                Contact(
                    first_name="Ada",
                    phones=("+14155550100",),
                    address=Address(city="London"),
                    custom={"salary": 90, "tier": "gold"},
                    lead_source="web",
                    owner_id=user.id,
                ),
                Contact(first_name="Grace", phones=("+14155550101",), owner_id="someone-else"),
            ]
        )
        view = crm.as_user(user.id or "")
        out = io.StringIO()
        assert view.exports.csv(out, "contacts") == 1
        header, row = list(csv.reader(io.StringIO(out.getvalue())))
        assert "phones" not in header
        assert "address.city" not in header
        assert dict(zip(header, row, strict=True))["first_name"] == "Ada"
        assert json.loads(dict(zip(header, row, strict=True))["custom"]) == {"tier": "gold"}
        out = io.StringIO()
        assert view.exports.jsonl(out, "contacts") == 1
        (document,) = [json.loads(line) for line in out.getvalue().splitlines()]
        assert "phones" not in document
        assert "address" not in document
        assert document["custom"] == {"tier": "gold"}
        for fields in (["first_name", "phones"], ["custom.salary"]):
            with pytest.raises(PermissionDenied):
                view.exports.csv(io.StringIO(), "contacts", fields=fields)
        with pytest.raises(PermissionDenied):
            view.exports.jsonl(io.StringIO(), "contacts", fields=["phones"])
        # the user's own export imports back unchanged, its read-only column included; a
        # row changing that column is rejected, and a mapping onto it is refused
        out = io.StringIO()
        view.exports.csv(out, "contacts")
        assert view.imports.csv(io.StringIO(out.getvalue())) == ImportSummary(rows=1, unchanged=1)
        changed = out.getvalue().replace(",web,", ",fair,")
        assert changed != out.getvalue()
        assert view.imports.csv(io.StringIO(changed)).rejected == 1
        with pytest.raises(PermissionDenied):
            view.imports.csv(io.StringIO("ls\nfair\n"), mapping={"ls": "lead_source"})

    def test_import_rejects_each_bad_row_and_keeps_the_rest(self, crm: CRM) -> None:
        """A row refused for any reason (a value, a rule, an unknown part) is rejected with
        its line and reason; blank cells set nothing; the other rows are written."""
        crm.contacts.add(
            Contact(first_name="Old", address=Address(city="Paris"), external_ids={"shop": "C-0"})
        )
        long_body = "x" * 200_000  # beyond the csv module's default cell limit
        contacts = (
            "id,first,dnc,address\n"
            'C-0,Old,,"{""town"": ""Paris""}"\n'  # an update with an unknown address part
            "C-1,Ada, ,\n"  # a blank flag cell
            "  ,Bea,,\n"  # a blank key cell
        )
        mapping = {"id": "external_ids.shop", "first": "first_name"}
        mapping |= {"dnc": "do_not_contact", "address": "address"}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "rejected.csv")
            summary = crm.imports.csv(io.StringIO(contacts), mapping=mapping, rejected_path=path)
            with open(path, encoding="utf-8", newline="") as file:
                reasons = {row["line"]: row["reason"] for row in csv.DictReader(file)}
        assert (summary.created, summary.rejected) == (2, 1)
        assert list(reasons) == ["2"]
        assert "unknown parts" in reasons["2"]
        assert {c.first_name for c in crm.contacts.find()} == {"Old", "Ada", "Bea"}
        at = "2024-05-01T09:30:00+00:00"
        calls = (
            f"kind,occurred_at,subject,duration,body\ncall,{at},Long,60,{long_body}\n"
            f"call,{at},Typo,100000000000000,\n"
        )
        summary = crm.imports.csv(io.StringIO(calls), "interactions")
        assert (summary.created, summary.rejected) == (1, 1)
        stored = crm.interactions.first(F.subject == "Long")
        assert stored is not None
        assert stored.body == long_body
        pipeline = crm.pipelines.add(
            Pipeline(
                name="Sales",
                stages=(
                    Stage(key="new", name="New"),
                    Stage(key="lost", name="Lost", kind=StageKind.LOST),
                ),
            )
        )
        crm.deals.add(Deal(name="Kept", pipeline_id=pipeline.id, external_ids={"erp": "D-0"}))
        deals = (
            f"id,name,pipeline,stage\nD-0,Kept renamed,{pipeline.id},new\n"
            f"D-1,Good,{pipeline.id},new\nD-2,Bogus,{pipeline.id},bogus\n"
        )
        mapping = {"id": "external_ids.erp", "name": "name"}
        mapping |= {"pipeline": "pipeline_id", "stage": "stage"}
        summary = crm.imports.csv(io.StringIO(deals), "deals", mapping=mapping)
        assert (summary.created, summary.updated, summary.rejected) == (1, 1, 1)
        assert sorted(d.name for d in crm.deals.find()) == ["Good", "Kept renamed"]

    def test_an_external_id_no_backend_can_store_rejects_its_row(self, crm: CRM) -> None:
        """A key holding a lone surrogate (valid in JSON text) is rejected with the reason
        on every backend, before any lookup sends it to storage; the rest is imported."""
        lines = [
            '{"first_name": "A", "external_ids": {"shop": "S-1"}}',
            '{"first_name": "B", "external_ids": {"shop": "S-2"}}',
            '{"first_name": "C", "external_ids": {"shop": "\\ud800"}}',
            '{"first_name": "D", "external_ids": {"shop": "S-4"}}',
        ]
        source = io.StringIO("\n".join(lines) + "\n")
        summary = crm.imports.jsonl(source, key="shop", batch_size=2)
        assert (summary.rows, summary.created, summary.rejected) == (4, 3, 1)
        assert sorted(c.first_name or "" for c in crm.contacts.find()) == ["A", "B", "D"]

    def test_rows_without_a_key_match_by_the_source_they_name(self, crm: CRM) -> None:
        """Without a mapping or ``key``, each JSON row is matched by the first external-id
        source it names, wherever it is in the file: keyed rows are never created twice."""
        lines = [json.dumps({"first_name": f"N{i}"}) for i in range(3)]
        lines.append(json.dumps({"first_name": "K", "external_ids": {"shop": "K-1"}}))
        lines.append(json.dumps({"first_name": "E", "external_ids": {"erp": "E-1", "x": "1"}}))
        lines.append(json.dumps({"first_name": "B", "external_ids": {"bad key": "B-1"}}))
        # two rows naming the same ids in another order agree on the source
        lines.append(json.dumps({"first_name": "S", "external_ids": {"shop": "S-1", "crm": "X"}}))
        lines.append(json.dumps({"first_name": "S", "external_ids": {"crm": "X", "shop": "S-1"}}))
        text = "\n".join(lines) + "\n"
        first = crm.imports.jsonl(io.StringIO(text), batch_size=2)
        again = crm.imports.jsonl(io.StringIO(text), batch_size=2)
        assert (first.created, first.unchanged, first.rejected) == (6, 1, 1)  # bad source
        assert (again.created, again.unchanged, again.rejected) == (3, 4, 1)
        assert crm.contacts.count(F.external_ids.crm == "X") == 1
        assert crm.contacts.count(F.external_ids.shop == "K-1") == 1
        assert crm.contacts.count(F.external_ids.erp == "E-1") == 1

    def test_a_json_document_is_replaced_by_an_import(self, crm: CRM) -> None:
        """Restoring an export of a segment or role puts its rule or permissions back as
        they were: a whole JSON document is replaced, never merged key by key."""
        segment = crm.segments.add(Segment(name="Adas", rule=(F.first_name == "Ada").to_dict()))
        role = crm.roles.add(Role(name="Rep", permissions={"contacts": {"read": "own"}}))
        exported = {name: io.StringIO() for name in ("segments", "roles")}
        for name, file in exported.items():
            crm.exports.jsonl(file, name)
        both = (F.first_name == "Ada") & (F.last_name == "L")
        crm.segments.update(attrs.evolve(segment, rule=both.to_dict()))
        grants = {"contacts": {"read": "own"}, "deals": {"read": "all", "delete": "all"}}
        crm.roles.update(attrs.evolve(role, permissions=grants))
        for name, file in exported.items():
            assert crm.imports.jsonl(io.StringIO(file.getvalue()), name).updated == 1
            assert crm.imports.jsonl(io.StringIO(file.getvalue()), name).unchanged == 1
        assert crm.segments.get(segment.id or "").rule == (F.first_name == "Ada").to_dict()
        assert crm.roles.get(role.id or "").permissions == {"contacts": {"read": "own"}}

    def test_duplicate_check_compares_rows_of_one_batch(self, crm: CRM) -> None:
        """With ``check_duplicates``, a row like an earlier row of the same file is rejected
        whatever the batch size."""
        text = "first,last,email\nAda,Lovelace,ada@example.com\nAda,Lovelace,ada@example.com\n"
        mapping = {"first": "first_name", "last": "last_name", "email": "emails"}
        summary = crm.imports.csv(io.StringIO(text), mapping=mapping, check_duplicates=True)
        assert (summary.created, summary.rejected) == (1, 1)
        assert crm.contacts.count() == 1

    def test_import_through_a_user_view(self, crm: CRM) -> None:
        """A view's import creates and changes only what its user may; every other row is
        rejected with the reason, and the rest of the file is imported."""
        role = crm.roles.add(
            Role(
                name="rep",
                permissions={"contacts": {"read": "own", "create": "own", "update": "own"}},
                hidden_fields={"contacts": ["phones"]},
            )
        )
        rep = crm.users.add(User(name="Rep", role_ids=(role.id or "",), team_ids=()))
        other = crm.users.add(User(name="Other"))
        mine = crm.contacts.add(
            Contact(first_name="Ada", owner_id=rep.id, external_ids={"shop": "C-1"})
        )
        crm.contacts.add(Contact(first_name="Bea", owner_id=other.id, external_ids={"shop": "C-2"}))
        for owner in (rep, other):  # one key, two records: the user sees only one of them
            crm.contacts.add(
                Contact(first_name="Eve", owner_id=owner.id, external_ids={"shop": "C-5"})
            )
        view = crm.as_user(rep.id or "")
        lines = "\n".join(
            [
                "id,first,owner",
                "C-1,Ada Lovelace,",  # the user's own record: updated
                "C-2,Bea Changed,",  # someone else's record: refused, not duplicated
                f"C-3,Cy,{other.id}",  # a record for someone else: refused
                "C-4,Di,",  # a new record: created, owned by the user
                "C-5,Eve Changed,",  # ambiguous: rejected, never guessed
                f"C-6,{'X' * 300},",  # an invalid value
            ]
        )
        mapping = {"id": "external_ids.shop", "first": "first_name", "owner": "owner_id"}
        with tempfile.TemporaryDirectory() as tmp, crm.acting(None, reason="spring import"):
            path = os.path.join(tmp, "rejected.csv")
            summary = view.imports.csv(io.StringIO(lines), mapping=mapping, rejected_path=path)
            with open(path, encoding="utf-8", newline="") as file:
                reasons = {row["id"]: row["reason"] for row in csv.DictReader(file)}
        assert summary == ImportSummary(
            rows=6, created=1, updated=1, rejected=4, rejected_path=path
        )
        assert "may not change" in reasons["C-2"]
        assert "may not create" in reasons["C-3"]
        assert "records this user may not read" in reasons["C-5"]
        assert "first_name" in reasons["C-6"]
        assert crm.contacts.get(mine.id or "").first_name == "Ada Lovelace"
        di = crm.contacts.first(F.external_ids.shop == "C-4")
        assert di is not None
        assert di.owner_id == rep.id
        assert crm.contacts.count(F.external_ids.shop == "C-2") == 1
        assert crm.contacts.count(F.external_ids.shop == "C-3") == 0
        assert {c.first_name for c in crm.contacts.find(F.external_ids.shop == "C-5")} == {"Eve"}
        entry = crm.audit.history(di.id or "")[0]
        assert (entry.actor_id, entry.reason) == (rep.id, "spring import")
        with pytest.raises(PermissionDenied):  # a hidden field cannot be imported
            view.imports.csv(io.StringIO("phone\n+14155550100\n"), mapping={"phone": "phones"})
        assert crm.contacts.count() == 5
