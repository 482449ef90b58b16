"""The ``crmkit`` command, run as a user runs it: the installed executable, in a subprocess."""

from __future__ import annotations

import csv
import email.message
import mailbox
import os
import pathlib
import subprocess
import sys

import pytest

import crmkit
from crmkit import Contact

CRMKIT = pathlib.Path(sys.executable).parent / "crmkit"


def run(*args: str, cwd: pathlib.Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [str(CRMKIT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def assert_refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("crmkit")  # "crmkit: error: ..." or "crmkit dedupe: error: ..."
    assert "error: " in lines[0]
    assert message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A folder where ``crmkit demo`` has run (its database is ``crmkit-demo.db``)."""
    folder = tmp_path_factory.mktemp("demo")
    (folder / "crmkit-demo.db").write_text("an old demo database, replaced on every run")
    result = run("demo", cwd=folder)
    folder.joinpath("demo.out").write_text(result.stdout)
    return folder


DEMO_URL = "sqlite:///crmkit-demo.db"


def test_executable_is_installed() -> None:
    assert CRMKIT.exists(), "pip install -e '.[cli]' installs the crmkit command"


def test_demo_shows_every_capability(demo_dir: pathlib.Path) -> None:
    out = (demo_dir / "demo.out").read_text()
    assert "crmkit demo on sqlite:///crmkit-demo.db" in out
    assert "+442079460958" in out  # typed '+44 (0)20 7946 0958', stored clean
    assert "Duplicate contacts: 1 group(s)" in out
    assert "matched on email, phone" in out
    assert "merged 2 records into Ada Lovelace: ada@acme.com, ada@home.org.uk" in out
    assert "Segment Leads and opportunities: 2 contact(s)" in out
    assert "24,000.00 EUR" in out  # 48000 x 0.5 in the proposal stage
    assert "SLA report: 3 open ticket(s), 1 breaching" in out
    assert "response BREACHED" in out
    assert "Spring webinar" in out


def test_demo_refuses_a_crm_with_records(tmp_path: pathlib.Path) -> None:
    with crmkit.connect("sqlite:///mine.db".replace("mine.db", str(tmp_path / "mine.db"))) as crm:
        crm.contacts.add(Contact(first_name="Ada"))
    result = run("demo", "--url", f"sqlite:///{tmp_path / 'mine.db'}", cwd=tmp_path, ok=False)
    assert_refused(result, "already holds records")


def test_reports(demo_dir: pathlib.Path) -> None:
    out = run("report", "pipeline", "--url", DEMO_URL, cwd=demo_dir).stdout
    assert "Pipeline Sales" in out
    assert "48,000.00 EUR" in out
    assert "win rate 100%" in out
    out = run("report", "tickets", "--url", DEMO_URL, cwd=demo_dir).stdout
    assert "Export to CSV fails" in out
    assert "resolution BREACHED" in out
    assert "response due in" in out
    out = run("report", "campaign", "Spring webinar", "--url", DEMO_URL, cwd=demo_dir).stdout
    assert "Spring webinar" in out
    assert "50%" in out  # one response out of two sent
    assert "900.00 EUR" in out  # cost per response
    result = run("report", "campaign", "Nope", "--url", DEMO_URL, cwd=demo_dir, ok=False)
    assert_refused(result, "no campaign is named or has the id 'Nope'")


@pytest.mark.parametrize("report", ["pipeline", "tickets", "rfm", "nps"])
def test_reports_draw_charts(report: str, demo_dir: pathlib.Path) -> None:
    chart = demo_dir / f"{report}.png"
    out = run("report", report, "--chart", chart.name, "--url", DEMO_URL, cwd=demo_dir).stdout
    assert f"chart written to {chart.name}" in out
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_nps_report(demo_dir: pathlib.Path) -> None:
    out = run("report", "nps", "--url", DEMO_URL, cwd=demo_dir).stdout
    assert "│ all    │         6 │         4 │        1 │          1 │  50 │" in out
    by_month = run("report", "nps", "--period", "month", "--url", DEMO_URL, cwd=demo_dir)
    assert by_month.stdout.count("-01 │") >= 1


def test_rfm_report(demo_dir: pathlib.Path) -> None:
    out = run("report", "rfm", "--url", DEMO_URL, cwd=demo_dir).stdout
    assert "RFM: 3 contact(s)" in out
    assert "Ada Lovelace" in out


def test_email_ingest_reports_rejected_messages(tmp_path: pathlib.Path) -> None:
    message = email.message.EmailMessage()
    message["From"] = "Ada Lovelace <ada@acme.com>"
    message["To"] = "support@example.com"
    message["Subject"] = "Export fails"
    message["Message-ID"] = "<1@acme.com>"
    message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    message.set_content("The CSV export stops at 10,000 rows.")
    box = mailbox.mbox(tmp_path / "in.mbox")
    box.add(message)
    box.add(b"no headers at all")
    box.flush()
    box.close()
    out = run("email", "ingest", "in.mbox", cwd=tmp_path).stdout
    assert "2 message(s): 1 stored" in out
    assert "1 rejected" in out
    assert "in.mbox:1" in out
    assert "already stored" in out
    again = run("email", "ingest", "in.mbox", cwd=tmp_path).stdout
    assert "1 already stored" in again
    with crmkit.connect(f"sqlite:///{tmp_path / 'crmkit.db'}") as crm:
        assert crm.interactions.count() == 1
    result = run("email", "ingest", "missing.mbox", cwd=tmp_path, ok=False)
    assert_refused(result, "missing.mbox: no such file or folder")


def test_segment_count_and_export(demo_dir: pathlib.Path) -> None:
    name = "Leads and opportunities"
    assert run("segment", "count", name, "--url", DEMO_URL, cwd=demo_dir).stdout.strip() == "2"
    target = demo_dir / "members.csv"
    out = run(
        "segment",
        "export",
        name,
        str(target),
        "--fields",
        "first_name,last_name,emails",
        "--url",
        DEMO_URL,
        cwd=demo_dir,
    ).stdout
    assert "2 contacts written" in out
    with target.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert {r["last_name"] for r in rows} == {"Hopper", "Zola"}
    result = run("segment", "count", "Nobody", "--url", DEMO_URL, cwd=demo_dir, ok=False)
    assert_refused(result, "no segment is named or has the id 'Nobody'")


def test_import_reports_rejected_rows_then_dedupe_and_merge(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text(
        "First,Last,E-mail,Phone\n"
        "Ada,Lovelace,ada@acme.com,+44 20 7946 0958\n"
        "Bad,Row,not-an-email@,\n"
        "ADA,Lovelace, ADA@ACME.COM ,+44 (0)20 7946 0958\n"
        "Lin,Chu,lin@chu.org,\n",
        encoding="utf-8",
    )
    url = "sqlite:///crm.db"
    mapping = ["--mapping", "First=first_name", "--mapping", "Last=last_name"]
    mapping += ["--mapping", "E-mail=emails", "--mapping", "Phone=phones"]
    out = run("import", "people.csv", "--entity", "contacts", "--url", url, *mapping, cwd=tmp_path)
    assert "4 row(s): 3 created, 0 updated, 0 unchanged, 1 rejected" in out.stdout
    assert "not-an-email@" in out.stdout
    assert "is not a valid email address" in out.stdout
    with (tmp_path / "people.rejected.csv").open(newline="", encoding="utf-8") as file:
        assert [r["line"] for r in csv.DictReader(file)] == ["3"]

    review = run("dedupe", "--url", url, cwd=tmp_path).stdout
    assert "Duplicate contacts: 1 group(s)" in review
    assert "a ~ b: p=" in review
    assert "matched on email, phone" in review
    assert "Run again with --merge" in review

    result = run("dedupe", "--merge", "--url", url, cwd=tmp_path, ok=False)
    assert_refused(result, "--merge needs --yes")
    with crmkit.connect(f"sqlite:///{tmp_path / 'crm.db'}") as crm:
        assert crm.contacts.count() == 3  # nothing merged without --yes

    merged = run("dedupe", "--merge", "--yes", "--url", url, cwd=tmp_path).stdout
    assert "merged 1 record(s) into Ada Lovelace" in merged
    with crmkit.connect(f"sqlite:///{tmp_path / 'crm.db'}") as crm:
        assert crm.contacts.count() == 2
    assert "No duplicate contacts found." in run("dedupe", "--url", url, cwd=tmp_path).stdout


def test_import_mapping_from_a_json_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "people.csv").write_text("Name,Mail\nAda,ada@acme.com\n", encoding="utf-8")
    (tmp_path / "map.json").write_text('{"Name": "first_name", "Mail": "emails"}')
    out = run("import", "people.csv", "--mapping", "map.json", cwd=tmp_path).stdout
    assert "1 row(s): 1 created" in out
    assert not (tmp_path / "people.rejected.csv").exists()  # nothing rejected, no report
    with crmkit.connect(f"sqlite:///{tmp_path / 'crmkit.db'}") as crm:  # the default --url
        assert crm.contacts.first().emails == ("ada@acme.com",)  # type: ignore[union-attr]


def test_schema_create_and_upgrade(tmp_path: pathlib.Path) -> None:
    assert "schema ready" in run("schema", "create", "--url", "sqlite:///s.db", cwd=tmp_path).stdout
    out = run("schema", "upgrade", "--url", "sqlite:///s.db", cwd=tmp_path).stdout
    assert "schema upgraded" in out
    with crmkit.connect(f"sqlite:///{tmp_path / 's.db'}", create_schema=False) as crm:
        assert crm.contacts.count() == 0
    assert "schema ready" in run("schema", "create", "--url", "memory://", cwd=tmp_path).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "missing.csv"], "missing.csv: no such file"),
        (["import", "people.csv", "--entity", "widgets"], "'widgets' is not a crmkit collection"),
        (["import", "people.csv", "--mapping", "Nope=first_name"], "names columns the file"),
        (["import", "people.csv", "--mapping", "first_name"], "must be COLUMN=FIELD"),
        (["report", "pipeline", "--url", "nope://x"], "has no known backend scheme"),
        (["dedupe", "--threshold", "2"], "--threshold 2.0 must be between 0 and 1"),
        (["dedupe", "--entity", "deals"], "invalid choice: 'deals'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["report"], "required"),
        (["report", "pipeline", "--chart", "out.gif"], "must end in .png or .svg"),
        (["report", "nps", "--period", "day"], "invalid choice: 'day'"),
    ],
)
def test_bad_input_is_one_line_and_a_failure(
    args: list[str], message: str, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "people.csv").write_text("first_name\nAda\n", encoding="utf-8")
    assert_refused(run(*args, cwd=tmp_path, ok=False), message)
