"""crm.imports and crm.exports on the memory backend: mapping, splitting, rejected rows,
progress, summary counts. Upsert and round trips on every backend are in
:mod:`crmkit.testing.conformance_imports`."""

from __future__ import annotations

import csv
import gc
import io
import json
import pathlib

import pytest

import crmkit
from crmkit import Contact, Segment, ValidationError
from crmkit.entities import SegmentKind
from crmkit.imports import ImportSummary
from crmkit.query import F

MAPPING = {
    "Shop id": "external_ids.shop",
    "First": "first_name",
    "Last": "last_name",
    "E-mail": "emails",
    "City": "address.city",
    "Tier": "custom.tier",
    "DNC": "do_not_contact",
}
HEADER = "Shop id,First,Last,E-mail,City,Tier,DNC\n"


@pytest.fixture
def crm() -> crmkit.CRM:
    return crmkit.connect("memory://")


def _csv(*lines: str) -> io.StringIO:
    return io.StringIO(HEADER + "".join(line + "\n" for line in lines))


def test_mapping_dotted_paths_and_splitting(crm: crmkit.CRM) -> None:
    summary = crm.imports.csv(
        _csv("C-1,Ada,Lovelace,ADA@Example.com; ada@work.com ;,London,gold,yes"), mapping=MAPPING
    )
    assert summary == ImportSummary(rows=1, created=1)
    (ada,) = crm.contacts.find()
    assert ada.emails == ("ada@example.com", "ada@work.com")
    assert ada.address is not None
    assert ada.address.city == "London"
    assert ada.custom == {"tier": "gold"}
    assert ada.external_ids == {"shop": "C-1"}
    assert ada.do_not_contact is True


def test_empty_cells_set_nothing_and_unmapped_columns_are_ignored(crm: crmkit.CRM) -> None:
    crm.imports.csv(
        _csv("C-1,Ada,,,,,"), mapping={"Shop id": "external_ids.shop", "First": "first_name"}
    )
    (ada,) = crm.contacts.find()
    assert ada.last_name is None
    assert ada.address is None
    assert ada.custom == {}


def test_rejected_rows_file_has_line_reason_and_cells(
    crm: crmkit.CRM, tmp_path: pathlib.Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        HEADER
        + "C-1,Ada,Lovelace,ada@example.com,,,\n"
        + 'C-2,Grace,"Hop\nper",bad@,,,\n'  # a quoted line break: the row starts on line 3
        + "C-3,,,,,,\n"
        + "C-4,Alan,Turing,,,,maybe\n"
        + "C-5,too,few\n",
        encoding="utf-8",
    )
    rejected = tmp_path / "rejected.csv"
    summary = crm.imports.csv(source, mapping=MAPPING, rejected_path=rejected)
    assert (summary.rows, summary.created, summary.rejected) == (5, 1, 4)
    assert summary.rejected_path == str(rejected)
    with open(rejected, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["line", "reason", *HEADER.strip().split(",")]
    lines = [r[0] for r in rows[1:]]
    assert lines == ["3", "5", "6", "7"]
    reasons = {r[0]: r[1] for r in rows[1:]}
    assert "bad@" in reasons["3"]
    assert "emails" in reasons["3"]
    assert "needs at least" in reasons["5"]
    assert "do_not_contact" in reasons["6"]
    assert "maybe" in reasons["6"]
    assert "3 cells" in reasons["7"]
    assert rows[1][2:] == ["C-2", "Grace", "Hop\nper", "bad@", "", "", ""]


def test_progress_is_reported_per_batch(crm: crmkit.CRM) -> None:
    seen: list[ImportSummary] = []
    lines = [f"C-{i},P{i},Q,,,," for i in range(7)]
    summary = crm.imports.csv(_csv(*lines), mapping=MAPPING, on_progress=seen.append, batch_size=3)
    assert [s.rows for s in seen] == [3, 6, 7]
    assert seen[-1] == summary == ImportSummary(rows=7, created=7)


def test_objects_older_than_an_import_are_frozen_while_it_runs(crm: crmkit.CRM) -> None:
    # full garbage collections during an import walk its own objects only; the freeze is
    # undone afterwards, also when the import fails
    assert gc.get_freeze_count() == 0
    during: list[int] = []
    crm.imports.csv(
        _csv("C-1,Ada,A,,,,"),
        mapping=MAPPING,
        on_progress=lambda _: during.append(gc.get_freeze_count()),
    )
    assert during[0] > 0
    assert gc.get_freeze_count() == 0

    def fail(_: ImportSummary) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        crm.imports.csv(_csv("C-2,Ada,A,,,,"), mapping=MAPPING, on_progress=fail)
    assert gc.get_freeze_count() == 0


def test_an_import_leaves_a_freeze_made_by_its_host_alone(crm: crmkit.CRM) -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        crm.imports.csv(_csv("C-1,Ada,A,,,,"), mapping=MAPPING)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_summary_counts_every_outcome(crm: crmkit.CRM) -> None:
    crm.imports.csv(_csv("C-1,Ada,A,,,,", "C-2,Grace,B,,,,"), mapping=MAPPING)
    summary = crm.imports.csv(
        _csv("C-1,Ada,A,,,,", "C-2,Grace,Hopper,,,,", "C-3,Alan,C,,,,", "C-4,,,,,,"),
        mapping=MAPPING,
    )
    assert summary == ImportSummary(rows=4, created=1, updated=1, unchanged=1, rejected=1)
    assert crm.contacts.count() == 3
    assert crm.contacts.first(F.external_ids.shop == "C-2").last_name == "Hopper"  # type: ignore[union-attr]


def test_a_repeated_external_id_in_one_file_updates_the_first_row(crm: crmkit.CRM) -> None:
    summary = crm.imports.csv(_csv("C-1,Ada,A,,,,", "C-1,Ada,B,,,,"), mapping=MAPPING)
    assert (summary.created, summary.updated) == (1, 1)
    (ada,) = crm.contacts.find()
    assert ada.last_name == "B"


def test_update_merges_mappings_and_address_parts(crm: crmkit.CRM) -> None:
    crm.contacts.add(
        Contact(
            first_name="Ada",
            external_ids={"shop": "C-1", "erp": "E-9"},
            custom={"tier": "gold", "score": 3},
            address={"city": "London", "country": "GB"},
        )
    )
    summary = crm.imports.csv(_csv("C-1,,,,Paris,silver,"), mapping=MAPPING)
    assert summary.updated == 1
    (ada,) = crm.contacts.find()
    assert ada.external_ids == {"shop": "C-1", "erp": "E-9"}
    assert ada.custom == {"tier": "silver", "score": 3}
    assert ada.address is not None
    assert (ada.address.city, ada.address.country) == ("Paris", "GB")


def test_a_value_that_normalizes_to_the_stored_one_is_unchanged(crm: crmkit.CRM) -> None:
    crm.imports.csv(_csv("C-1,Ada,A,ada@example.com,,,"), mapping=MAPPING)
    summary = crm.imports.csv(_csv("C-1,Ada,A, ADA@Example.COM ,,,"), mapping=MAPPING)
    assert summary.unchanged == 1
    assert crm.contacts.find()[0].version == 1


def test_an_external_id_matching_two_records_is_rejected(
    crm: crmkit.CRM, tmp_path: pathlib.Path
) -> None:
    crm.contacts.add_many([Contact(first_name=n, external_ids={"shop": "C-1"}) for n in "AB"])
    summary = crm.imports.csv(
        _csv("C-1,Ada,,,,,"), mapping=MAPPING, rejected_path=tmp_path / "r.csv"
    )
    assert summary.rejected == 1
    assert "matches records" in (tmp_path / "r.csv").read_text(encoding="utf-8")


def test_duplicate_check_rejects_lookalikes(crm: crmkit.CRM, tmp_path: pathlib.Path) -> None:
    crm.contacts.add(Contact(first_name="Ada", last_name="Lovelace", emails=["ada@example.com"]))
    summary = crm.imports.csv(
        _csv("C-1,Ada,Lovelace,ada@example.com,,,", "C-2,Grace,Hopper,grace@navy.mil,,,"),
        mapping=MAPPING,
        check_duplicates=True,
        rejected_path=tmp_path / "r.csv",
    )
    assert (summary.created, summary.rejected) == (1, 1)
    assert "duplicate of" in (tmp_path / "r.csv").read_text(encoding="utf-8")


def test_bad_mappings_raise_before_anything_is_written(crm: crmkit.CRM) -> None:
    with pytest.raises(ValidationError, match="nickname"):
        crm.imports.csv(_csv("C-1,Ada,,,,,"), mapping={"First": "nickname"})
    with pytest.raises(ValidationError, match="lacks"):
        crm.imports.csv(_csv("C-1,Ada,,,,,"), mapping={"Phone": "phones"})
    with pytest.raises(ValidationError, match="storage field"):
        crm.imports.csv(_csv("C-1,Ada,,,,,"), mapping={"First": "id"})
    with pytest.raises(ValidationError, match="batch_size"):
        crm.imports.csv(_csv(), mapping=MAPPING, batch_size=0)
    with pytest.raises(ValidationError, match="field paths"):
        crm.imports.csv(_csv("C-1,Ada,,,,,"), mapping={"First": 5})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="another column"):  # one would overwrite the other
        crm.imports.csv(_csv("C-1,Ada,,,,,"), mapping={"Tier": "custom.tier", "City": "custom"})
    with pytest.raises(ValidationError, match="delimiter"):
        crm.imports.csv(_csv(), mapping=MAPPING, delimiter=";;")
    with pytest.raises(ValidationError, match="fields"):
        crm.exports.csv(io.StringIO(), "contacts", fields=[5])  # type: ignore[list-item]
    assert crm.contacts.count() == 0


def test_files_that_are_not_utf8_or_start_with_a_bom(crm: crmkit.CRM) -> None:
    with pytest.raises(ValidationError, match="not UTF-8"):
        crm.imports.csv(io.TextIOWrapper(io.BytesIO(b"first_name\nJos\xe9\n"), encoding="utf-8"))
    for load in (crm.imports.csv, crm.imports.jsonl):
        with pytest.raises(ValidationError, match="text file"):
            load(io.BytesIO(b"first_name\nAda\n"))  # type: ignore[arg-type]
    assert crm.contacts.count() == 0
    # an open file read without utf-8-sig keeps the byte order mark: it is not a column name
    assert crm.imports.csv(io.StringIO("\ufefffirst_name\nAda\n")).created == 1
    assert crm.imports.csv(io.StringIO('\ufeff"first_name"\nCy\n')).created == 1
    assert crm.imports.jsonl(io.StringIO('\ufeff{"first_name": "Bea"}\n')).created == 1


def test_an_export_id_names_the_record_a_row_updates(crm: crmkit.CRM) -> None:
    ada = crm.contacts.add(Contact(first_name="Ada", external_ids={"shop": "A1"}))
    crm.contacts.add(Contact(first_name="Bob", external_ids={"shop": "B1"}))
    jsonl = json.dumps({"id": f" {ada.id} ", "first_name": "Ada L"}) + "\n"
    assert crm.imports.jsonl(io.StringIO(jsonl)).updated == 1  # the id is stripped, like a cell
    # an id and an external id naming two different records: rejected, not merged into one
    text = f"id,first_name,external_ids.shop\n{ada.id},Ada,B1\n"
    assert crm.imports.csv(io.StringIO(text)).rejected == 1
    assert crm.contacts.count(F.external_ids.shop == "B1") == 1
    assert crm.contacts.get(ada.id or "").external_ids == {"shop": "A1"}


def test_jsonl_rows_nested_values_and_bad_lines(crm: crmkit.CRM, tmp_path: pathlib.Path) -> None:
    lines = [
        json.dumps(
            {"first_name": "Ada", "emails": ["ada@example.com"], "external_ids": {"shop": "C-1"}}
        ),
        "",
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"first_name": "Grace", "address": {"city": "NYC"}, "tags": "a; b"}),
        json.dumps({"nickname": "x"}),
    ]
    rejected = tmp_path / "r.csv"
    summary = crm.imports.jsonl(io.StringIO("\n".join(lines)), rejected_path=rejected)
    assert summary == ImportSummary(rows=5, created=2, rejected=3, rejected_path=str(rejected))
    with open(rejected, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["line", "reason", "row"]
    assert [r[0] for r in rows[1:]] == ["3", "4", "6"]
    grace = crm.contacts.first(F.first_name == "Grace")
    assert grace is not None
    assert grace.tags == ("a", "b")
    again = crm.imports.jsonl(io.StringIO(lines[0]))
    assert again.unchanged == 1


def test_export_csv_columns_filter_and_fields(crm: crmkit.CRM) -> None:
    crm.imports.csv(
        _csv("C-1,Ada,Lovelace,ada@example.com;ada@work.com,London,gold,", "C-2,Grace,Hopper,,,,"),
        mapping=MAPPING,
    )
    out = io.StringIO()
    assert crm.exports.csv(out, "contacts", where=F.first_name == "Ada") == 1
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["emails"] == "ada@example.com;ada@work.com"
    assert row["address.city"] == "London"
    assert json.loads(row["custom"]) == {"tier": "gold"}
    assert row["do_not_contact"] == "false"
    out = io.StringIO()
    crm.exports.csv(out, "contacts", fields=["last_name", "custom.tier", "external_ids.shop"])
    assert out.getvalue().splitlines() == [
        "last_name,custom.tier,external_ids.shop",
        "Lovelace,gold,C-1",
        "Hopper,,C-2",
    ]
    with pytest.raises(ValidationError):
        crm.exports.csv(io.StringIO(), "contacts", fields=["nickname"])


def test_export_a_segment(crm: crmkit.CRM) -> None:
    crm.contacts.add_many([Contact(first_name=n) for n in ("Ada", "Grace", "Alan")])
    rule = (F.first_name.startswith("A")).to_dict()
    dynamic = crm.segments.add(Segment(name="A", rule=rule))
    out = io.StringIO()
    assert crm.exports.jsonl(out, "contacts", where=dynamic.id, fields=["first_name"]) == 2
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"first_name": "Ada"},
        {"first_name": "Alan"},
    ]
    grace = crm.contacts.first(F.first_name == "Grace")
    assert grace is not None
    assert grace.id is not None
    static = crm.segments.add(Segment(name="G", kind=SegmentKind.STATIC, member_ids=[grace.id]))
    assert crm.exports.csv(io.StringIO(), "contacts", where=static.id) == 1
    with pytest.raises(ValidationError, match="segment of contacts"):
        crm.exports.csv(io.StringIO(), "accounts", where=static.id)


def test_export_to_a_path_then_import_elsewhere(crm: crmkit.CRM, tmp_path: pathlib.Path) -> None:
    crm.imports.csv(_csv("C-1,Ada,Lovelace,ada@example.com,London,gold,yes"), mapping=MAPPING)
    crm.exports.csv(tmp_path / "out.csv", "contacts")
    crm.exports.jsonl(tmp_path / "out.jsonl", "contacts")
    for name in ("out.csv", "out.jsonl"):
        other = crmkit.connect("memory://")
        load = other.imports.csv if name.endswith(".csv") else other.imports.jsonl
        assert load(tmp_path / name).created == 1
        (a,), (b,) = crm.contacts.find(), other.contacts.find()
        assert (a.emails, a.address, a.custom, a.external_ids, a.do_not_contact) == (
            b.emails,
            b.address,
            b.custom,
            b.external_ids,
            b.do_not_contact,
        )


def test_malformed_csv_rows_are_rejected_and_never_swallow_others(
    crm: crmkit.CRM, tmp_path: pathlib.Path
) -> None:
    """A stray quote rejects its row and the next rows are read; a quoted cell never closed
    is rejected naming the lines it took (to the end of the file): nothing is dropped
    silently, and the counts add up to what was read."""
    mapping = {"ext": "external_ids.shop", "fn": "first_name", "note": "custom.note"}
    text = 'ext,fn,note\nC-1,Ada,ok\nC-2,Fay,"x"y\nC-3,Cy,ok\nC-4,Bob,"open\nC-5,Dee,ok\n'
    rejected = tmp_path / "rejected.csv"
    summary = crm.imports.csv(io.StringIO(text), mapping=mapping, rejected_path=rejected)
    assert (summary.rows, summary.created, summary.rejected) == (4, 2, 2)
    assert sorted(c.first_name or "" for c in crm.contacts.find()) == ["Ada", "Cy"]
    with rejected.open(encoding="utf-8", newline="") as file:
        reasons = {row["line"]: row["reason"] for row in csv.DictReader(file)}
    assert "not valid CSV" in reasons["3"]
    assert "never closed" in reasons["5"]
    assert "lines 5-6" in reasons["5"]
    with pytest.raises(ValidationError, match="header"):
        crm.imports.csv(io.StringIO('fn,"note\nAda,x\n'))


def test_a_cell_beyond_the_limit_is_a_rejected_row(crm: crmkit.CRM) -> None:
    huge = "x" * 20_000_001
    text = f"first_name,title\nAda,ok\nBob,{huge}\nCy,ok\n"
    summary = crm.imports.csv(io.StringIO(text), batch_size=1)
    assert (summary.rows, summary.created, summary.rejected) == (3, 2, 1)


def test_header_key_and_path_arguments_are_checked_before_anything_is_written(
    crm: crmkit.CRM, tmp_path: pathlib.Path
) -> None:
    """A column named twice, a key no column sets, a rejected file that is the source or
    cannot be written, a source or export target that cannot be opened: ValidationError,
    nothing written, the source intact."""
    with pytest.raises(ValidationError, match="more than once"):
        crm.imports.csv(io.StringIO("Name,Email,Email\nAda,a@example.com,\n"))
    mapping = {"Name": "first_name", "Email": "emails"}
    with pytest.raises(ValidationError, match="more than once"):
        crm.imports.csv(io.StringIO("Name,Email,Email\nAda,a@example.com,\n"), mapping=mapping)
    # a repeated column the mapping does not use is harmless
    mapping = {"Name": "first_name"}
    assert crm.imports.csv(io.StringIO("Name,X,X\nAda,1,2\n"), mapping=mapping).created == 1
    for key in ("erp", 5):
        with pytest.raises(ValidationError, match="key"):
            crm.imports.csv(_csv("C-1,Ada,,,,,"), mapping=MAPPING, key=key)  # type: ignore[arg-type]
    source = tmp_path / "same.csv"
    source.write_text("first_name\nBea\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="is the file read"):
        crm.imports.csv(source, rejected_path=tmp_path / "." / "same.csv")
    assert source.read_text(encoding="utf-8") == "first_name\nBea\n"
    missing = tmp_path / "no-such-dir" / "out.csv"
    with pytest.raises(ValidationError, match="rejected_path"):
        crm.imports.csv(source, rejected_path=missing)
    with pytest.raises(ValidationError, match="source"):
        crm.imports.jsonl(tmp_path / "no-such-file.jsonl")
    with pytest.raises(ValidationError, match="target"):
        crm.exports.csv(missing, "contacts")
    with pytest.raises(ValidationError, match="target"):
        crm.exports.jsonl(missing, "contacts")
    for bad in ("with\x00nul.csv", 5):
        with pytest.raises(ValidationError, match="rejected_path"):
            crm.imports.csv(source, rejected_path=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="target"):
        crm.exports.csv("with\x00nul.csv", "contacts")
    for unreadable in ("with\x00nul.csv", 5):
        with pytest.raises(ValidationError, match="source"):
            crm.imports.csv(unreadable)  # type: ignore[arg-type]
    assert [c.first_name for c in crm.contacts.find()] == ["Ada"]


def test_a_rejected_row_with_unencodable_text_is_written_escaped(
    crm: crmkit.CRM, tmp_path: pathlib.Path
) -> None:
    rejected = tmp_path / "rejected.csv"
    source = io.StringIO("first_name\nok\n\ud800\n")
    summary = crm.imports.csv(source, rejected_path=rejected)
    assert (summary.created, summary.rejected) == (1, 1)
    assert "\\ud800" in rejected.read_text(encoding="utf-8")


def test_json_lines_end_at_newlines_only(crm: crmkit.CRM, tmp_path: pathlib.Path) -> None:
    """A carriage return inside a line is JSON white space, also in a file opened by path."""
    path = tmp_path / "cr.jsonl"
    path.write_bytes(b'{"first_name": "A",\r"last_name": "B"}\r\n{"first_name": "C"}\n')
    summary = crm.imports.jsonl(path)
    assert (summary.rows, summary.created, summary.rejected) == (2, 2, 0)
    assert sorted(c.name for c in crm.contacts.find()) == ["A B", "C"]


def test_csv_export_keeps_list_items_with_blanks_at_their_ends(crm: crmkit.CRM) -> None:
    crm.contacts.add(Contact(first_name="A", tags=[" padded ", "x"]))
    out = io.StringIO()
    crm.exports.csv(out, "contacts")
    assert crm.imports.csv(io.StringIO(out.getvalue()), "contacts").unchanged == 1
    assert crm.contacts.find()[0].tags == (" padded ", "x")


def test_export_fields_may_be_any_iterable(crm: crmkit.CRM) -> None:
    crm.contacts.add(Contact(first_name="Ada", last_name="L"))
    out = io.StringIO()
    assert crm.exports.csv(out, "contacts", fields=(f for f in ["first_name", "last_name"])) == 1
    assert out.getvalue().splitlines() == ["first_name,last_name", "Ada,L"]
    out = io.StringIO()
    crm.exports.jsonl(out, "contacts", fields=iter(["first_name"]))
    assert json.loads(out.getvalue()) == {"first_name": "Ada"}


def test_an_audit_log_export_imports_back(crm: crmkit.CRM) -> None:
    """Fields kept with their record only (an audit entry's ``changed``) are read from a
    file like any other: the audit log's export imports back unchanged, and elsewhere."""
    crm.contacts.add(Contact(first_name="Ada", last_name="L"))
    out = io.StringIO()
    assert crm.exports.csv(out, "audit_log") == 1
    assert crm.imports.csv(io.StringIO(out.getvalue()), "audit_log").unchanged == 1
    other = crmkit.connect("memory://")
    assert other.imports.csv(io.StringIO(out.getvalue()), "audit_log").created == 1
    assert other.audit_log.find()[0].changed == ("first_name", "last_name")


def test_a_file_that_stops_being_utf8_stops_the_import_after_whole_batches(
    crm: crmkit.CRM,
) -> None:
    body = "".join(f"P{i}\n" for i in range(2500)).encode() + b"Ren\xe9\nZoe\n"
    source = io.TextIOWrapper(io.BytesIO(b"first_name\n" + body), encoding="utf-8")
    with pytest.raises(ValidationError, match=r"not UTF-8 text \(reading stopped after line"):
        crm.imports.csv(source, batch_size=1000)
    written = crm.contacts.count()  # the batches before it, whole (text is decoded ahead)
    assert written % 1000 == 0
    assert 0 < written < 2500
