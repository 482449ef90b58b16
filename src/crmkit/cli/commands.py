"""The ``crmkit`` sub-commands: one function per command, taking the parsed arguments and
returning the exit status. Each opens the CRM at ``args.url`` and closes it when done."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import pathlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, cast

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.prompt import Confirm
from rich.table import Table

import crmkit
from crmkit.aggregation import Metric
from crmkit.cli import CommandError
from crmkit.entities import Campaign, Segment, Ticket
from crmkit.query import F

__all__ = [
    "CHARTS",
    "DEMO_URL",
    "REPORTS",
    "dedupe",
    "demo",
    "email_ingest",
    "import_file",
    "report_campaign",
    "report_nps",
    "report_pipeline",
    "report_rfm",
    "report_tickets",
    "schema_create",
    "schema_upgrade",
    "segment_count",
    "segment_export",
]

#: The demo's CRM: a SQLite file in the current directory, recreated on every run.
DEMO_URL = "sqlite:///crmkit-demo.db"

_SQL_SCHEMES = ("sqlite", "postgresql")


def _console() -> Console:
    return Console(highlight=False)


@contextmanager
def _open(url: str, **options: Any) -> Iterator[crmkit.CRM]:
    crm = crmkit.connect(url, **options)
    try:
        yield crm
    finally:
        crm.close()


def _money(amount: Decimal | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    return f"{amount:,.2f} {currency or ''}".rstrip()


def _rate(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.0%}"


# --- demo ---------------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    """``crmkit demo``: build the sample CRM at ``--url`` and show what crmkit makes of it."""
    from crmkit.cli.sample import SampleClock, build_sample

    url: str = args.url
    if url == DEMO_URL and os.path.exists("crmkit-demo.db"):
        os.remove("crmkit-demo.db")
    out = _console()
    out.print(f"[bold]crmkit demo[/bold] on {url}\n")
    clock = SampleClock()
    with _open(url, clock=clock) as crm:
        if crm.contacts.count() or crm.accounts.count():
            raise CommandError(f"{url} already holds records; the demo needs an empty CRM")
        sample = build_sample(crm, clock)

        table = Table(
            title="Contacts, normalized on the way in",
            caption="Ada was typed as ' ADA@Acme.COM. ', '+44 (0)20 7946 0958' and again "
            "as 'ADA', '020 7946 0958'",
        )
        for column in ("name", "emails", "phones", "lifecycle"):
            table.add_column(column)
        for contact in crm.contacts.find(order_by=["last_name", "id"]):
            table.add_row(
                contact.name,
                ", ".join(contact.emails),
                ", ".join(contact.phones),
                contact.lifecycle_stage.value if contact.lifecycle_stage else "-",
            )
        out.print(table)

        groups = crm.dedupe.find("contacts")
        out.print(_duplicates_table(crm, "contacts", groups))
        for group in groups:
            ids = [str(i) for i in group.ids]
            record = crm.dedupe.merge(ids[0], ids[1:])
            survivor = crm.contacts.get(record.survivor_id)
            emails = ", ".join(survivor.emails)
            out.print(f"merged {len(ids)} records into {survivor.name}: {emails}")

        segment = crm.segments.get(sample.segment_id)
        members = list(crm.segments.iterate_members(sample.segment_id))
        table = Table(title=f"Segment {segment.name}: {len(members)} contact(s)", min_width=60)
        table.add_column("member")
        table.add_column("lifecycle")
        for member in members:
            stage = member.lifecycle_stage
            table.add_row(member.name, stage.value if stage else "-")
        out.print(table)
        out.print(_forecast_table(crm))
        out.print(_tickets_table(crm))
        out.print(_campaign_table(crm, [crm.campaigns.get(sample.campaign_id)]))
    out.print(f"\nExplore it: crmkit report pipeline --url {url}")
    return 0


# --- import -------------------------------------------------------------------------------


def _mapping(values: Sequence[str]) -> dict[str, str] | None:
    if not values:
        return None
    mapping: dict[str, str] = {}
    for value in values:
        if "=" not in value and value.endswith(".json"):
            loaded = json.loads(pathlib.Path(value).read_text(encoding="utf-8"))
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
            ):
                raise CommandError(f"{value} must hold a JSON object of column -> field path")
            mapping.update(loaded)
            continue
        column, sep, field = value.partition("=")
        if not sep or not column or not field:
            raise CommandError(f"--mapping {value!r} must be COLUMN=FIELD or a .json file")
        mapping[column] = field
    return mapping


def _data_rows(path: pathlib.Path, jsonl: bool) -> int:
    """How many records the file holds (for the progress bar's total)."""
    with path.open(encoding="utf-8", newline="") as file:
        if jsonl:
            return sum(1 for line in file if line.strip())
        return max(sum(1 for _ in csv.reader(file)) - 1, 0)


def import_file(args: argparse.Namespace) -> int:
    """``crmkit import FILE``: import with a progress bar, then report the rejected rows."""
    path = pathlib.Path(args.file)
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    mapping = _mapping(args.mapping)
    rejected = pathlib.Path(args.rejected or f"{path.stem}.rejected.csv")
    total = _data_rows(path, jsonl)
    out = _console()
    with _open(args.url) as crm:
        crm.repository(args.entity)  # an unknown collection stops here, before any progress
        progress = Progress(
            TextColumn(f"importing {path.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=out,
            transient=True,
        )
        with progress:
            task = progress.add_task("import", total=total)
            options: dict[str, Any] = {
                "mapping": mapping,
                "key": args.key,
                "rejected_path": rejected,
                "on_progress": lambda summary: progress.update(task, completed=summary.rows),
            }
            if jsonl:
                summary = crm.imports.jsonl(path, args.entity, **options)
            else:
                options["check_duplicates"] = args.check_duplicates
                summary = crm.imports.csv(path, args.entity, **options)
    out.print(
        f"{summary.rows} row(s): {summary.created} created, {summary.updated} updated, "
        f"{summary.unchanged} unchanged, {summary.rejected} rejected"
    )
    if summary.rejected:
        table = Table(title=f"Rejected rows (all of them are in {rejected})")
        table.add_column("line", justify="right")
        table.add_column("reason")
        with rejected.open(encoding="utf-8", newline="") as file:
            for number, row in enumerate(csv.DictReader(file)):
                if number == 20:
                    table.add_row("...", f"{summary.rejected - 20} more")
                    break
                table.add_row(row.get("line", ""), row.get("reason", ""))
        out.print(table)
    elif rejected.exists() and args.rejected is None:
        rejected.unlink()  # nothing rejected: leave no empty report behind
    return 0


# --- dedupe -------------------------------------------------------------------------------


def _label(crm: crmkit.CRM, collection: str, id: str) -> str:
    record: Any = crm.repository(collection).get(id)
    if collection == "contacts":
        detail = ", ".join([*record.emails, *record.phones])
        return f"{record.name} <{detail}>" if detail else record.name
    return f"{record.name} ({record.domain or 'no domain'})"


def _duplicates_table(crm: crmkit.CRM, collection: str, groups: Sequence[Any]) -> Table:
    table = Table(title=f"Duplicate {collection}: {len(groups)} group(s)")
    table.add_column("#", justify="right")
    table.add_column("records")
    table.add_column("p", justify="right")
    table.add_column("why")
    for number, group in enumerate(groups, start=1):
        letters = {i: chr(ord("a") + n) if n < 26 else str(n) for n, i in enumerate(group.ids)}
        labels = "\n".join(f"{letters[i]}. {_label(crm, collection, str(i))}" for i in group.ids)
        why = "\n".join(
            f"{letters[m.a]} ~ {letters[m.b]}: p={m.probability:.3f}, matched on "
            f"{', '.join(m.matched) or 'nothing'}"
            for m in group.matches
        )
        table.add_row(str(number), labels, f"{group.probability:.3f}", why)
    return table


def dedupe(args: argparse.Namespace) -> int:
    """``crmkit dedupe``: a review table of duplicate groups; ``--merge`` merges them."""
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise CommandError(f"--threshold {args.threshold} must be between 0 and 1")
    out = _console()
    with _open(args.url) as crm:
        groups = crm.dedupe.find(args.entity, args.threshold)
        if not groups:
            out.print(f"No duplicate {args.entity} found.")
            return 0
        out.print(_duplicates_table(crm, args.entity, groups))
        if not args.merge:
            out.print("Run again with --merge to merge each group into its oldest record.")
            return 0
        if not args.yes:
            if not os.isatty(0):
                raise CommandError("--merge needs --yes when not run from a terminal")
            if not Confirm.ask(f"Merge {len(groups)} group(s)?", console=out):
                out.print("Nothing merged.")
                return 0
        with crm.transaction():
            merged = [
                crm.dedupe.merge(str(g.ids[0]), [str(i) for i in g.ids[1:]], collection=args.entity)
                for g in groups
            ]
        for record in merged:
            out.print(
                f"merged {len(record.merged_ids)} record(s) into "
                f"{_label(crm, args.entity, record.survivor_id)}"
            )
    return 0


# --- segments -----------------------------------------------------------------------------


def _segment(crm: crmkit.CRM, name_or_id: str) -> Segment:
    found = crm.segments.find(F.name == name_or_id, limit=2) or crm.segments.find(
        F.id == name_or_id
    )
    if not found:
        raise CommandError(f"no segment is named or has the id {name_or_id!r}")
    if len(found) > 1:
        raise CommandError(f"several segments are named {name_or_id!r}; use the id")
    return found[0]


def segment_count(args: argparse.Namespace) -> int:
    """``crmkit segment count SEGMENT``: print the number of members."""
    with _open(args.url) as crm:
        segment = _segment(crm, args.segment)
        _console().print(f"{crm.segments.count(segment.id or '')}")
    return 0


def segment_export(args: argparse.Namespace) -> int:
    """``crmkit segment export SEGMENT FILE``: write the members to a CSV file."""
    fields = [f.strip() for f in args.fields.split(",")] if args.fields else None
    with _open(args.url) as crm:
        segment = _segment(crm, args.segment)
        count = crm.exports.csv(args.file, segment.entity, where=segment.id, fields=fields)
    _console().print(f"{count} {segment.entity} written to {args.file}")
    return 0


# --- reports ------------------------------------------------------------------------------


def _forecast_table(crm: crmkit.CRM) -> Table:
    table = Table(title="Weighted forecast of open deals")
    for column in ("close month", "deals", "amount", "weighted"):
        table.add_column(column, justify="left" if column == "close month" else "right")
    for row in crm.reports.forecast(by="month"):
        table.add_row(
            f"{row.month:%Y-%m}" if row.month else "no date",
            str(row.deals),
            _money(row.amount, row.currency),
            _money(row.weighted, row.currency),
        )
    return table


def report_pipeline(args: argparse.Namespace) -> int:
    """``crmkit report pipeline``: deals per stage, the forecast and the win rate."""
    out = _console()
    with _open(args.url) as crm:
        pipelines = crm.pipelines.find(order_by="name")
        if not pipelines:
            out.print("No pipeline yet.")
            return 0
        for pipeline in pipelines:
            rows = crm.deals.aggregate(
                F.pipeline_id == pipeline.id,
                group_by=["stage", "amount.currency"],
                metrics=[Metric.count(name="deals"), Metric.sum("amount.amount", name="amount")],
            )
            table = Table(title=f"Pipeline {pipeline.name}")
            table.add_column("stage")
            table.add_column("probability", justify="right")
            table.add_column("deals", justify="right")
            table.add_column("amount", justify="right")
            for stage in pipeline.stages:
                mine = [r for r in rows if r["stage"] == stage.key]
                amounts = ", ".join(
                    _money(r["amount"], r["amount.currency"]) for r in mine if r["amount"]
                )
                table.add_row(
                    stage.name,
                    _rate(stage.probability),
                    str(sum(int(r["deals"]) for r in mine)),
                    amounts or "-",
                )
            out.print(table)
        out.print(_forecast_table(crm))
        rate = crm.reports.win_rate()
        out.print(f"Won {rate.won}, lost {rate.lost}: win rate {_rate(rate.rate)}")
        _chart(args, lambda path: _render("forecast", crm, path))
    return 0


def _render(name: str, crm: crmkit.CRM, path: str) -> None:
    from crmkit.charts import render_chart

    render_chart(name, crm, path)


def _chart(args: argparse.Namespace, draw: Callable[[str], None]) -> None:
    """Draw the report's chart when ``--chart FILE`` was given."""
    path: str | None = getattr(args, "chart", None)
    if path is None:
        return
    draw(path)
    _console().print(f"chart written to {path}")


def _ticket_state(ticket: Ticket, now: dt.datetime) -> str:
    states = []
    for target, due, done in (
        ("response", ticket.first_response_due_at, ticket.first_response_at),
        ("resolution", ticket.resolution_due_at, ticket.resolved_at),
    ):
        if due is None:
            continue
        if done is not None:
            states.append(f"{target} {'late' if done > due else 'met'}")
        elif due < now:
            states.append(f"{target} BREACHED")
        else:
            hours = (due - now).total_seconds() / 3600
            states.append(f"{target} due in {hours:.1f}h")
    return "; ".join(states) or "no SLA"


def _tickets_table(crm: crmkit.CRM) -> Table:
    now = crm.now()
    open_tickets = crm.tickets.find(~F.closed_at.exists(), order_by=["resolution_due_at", "id"])
    breaching = crm.tickets.count(crm.tickets.breaching_filter(now) & ~F.closed_at.exists())
    table = Table(title=f"SLA report: {len(open_tickets)} open ticket(s), {breaching} breaching")
    for column in ("subject", "priority", "status", "response due", "resolution due", "SLA"):
        table.add_column(column)
    for ticket in open_tickets:
        table.add_row(
            ticket.subject,
            ticket.priority.value,
            ticket.status,
            f"{ticket.first_response_due_at:%Y-%m-%d %H:%M}"
            if ticket.first_response_due_at
            else "-",
            f"{ticket.resolution_due_at:%Y-%m-%d %H:%M}" if ticket.resolution_due_at else "-",
            _ticket_state(ticket, now),
        )
    return table


def report_tickets(args: argparse.Namespace) -> int:
    """``crmkit report tickets``: open tickets and where they stand against their SLA."""
    with _open(args.url) as crm:
        _console().print(_tickets_table(crm))
        _chart(args, lambda path: _render("sla", crm, path))
    return 0


def _campaign_table(crm: crmkit.CRM, campaigns: Sequence[Campaign]) -> Table:
    table = Table(title="Campaigns")
    for column in ("campaign", "members", "sent", "responses", "response rate", "conversions"):
        table.add_column(column, justify="left" if column == "campaign" else "right")
    table.add_column("cost/response", justify="right")
    table.add_column("won revenue", justify="right")
    for campaign in campaigns:
        report = crm.campaigns.report(campaign.id or "")
        cost = report.cost_per_response
        table.add_row(
            campaign.name,
            str(report.members),
            str(report.sent),
            str(report.responses),
            _rate(report.response_rate),
            str(report.conversions),
            "-" if cost is None else _money(cost.amount, cost.currency),
            ", ".join(_money(m.amount, m.currency) for m in report.won_revenue) or "-",
        )
    return table


def report_campaign(args: argparse.Namespace) -> int:
    """``crmkit report campaign [CAMPAIGN]``: members, responses, cost and revenue."""
    with _open(args.url) as crm:
        if args.campaign:
            campaigns = crm.campaigns.find(F.name == args.campaign) or crm.campaigns.find(
                F.id == args.campaign
            )
            if not campaigns:
                raise CommandError(f"no campaign is named or has the id {args.campaign!r}")
        else:
            campaigns = crm.campaigns.find(order_by="name")
        _console().print(_campaign_table(crm, campaigns))
    return 0


def report_rfm(args: argparse.Namespace) -> int:
    """``crmkit report rfm``: recency, frequency and monetary scores of the contacts."""
    with _open(args.url) as crm:
        rows = crm.analytics.rfm()
        table = Table(title=f"RFM: {len(rows)} contact(s), best first")
        table.add_column("contact")
        for column in ("last activity", "days", "frequency", "monetary", "RFM"):
            table.add_column(column, justify="right")
        names = {c.id: c.name for c in crm.contacts.get_many([r.contact_id for r in rows])}
        for row in rows:
            table.add_row(
                names.get(row.contact_id, row.contact_id),
                f"{row.last_activity:%Y-%m-%d}",
                str(row.recency_days),
                str(row.frequency),
                f"{row.monetary:,.2f}",
                row.score,
            )
        _console().print(table)

        def draw(path: str) -> None:
            from crmkit.charts import rfm_chart

            rfm_chart(cast(Any, rows), path, title="RFM grid of contacts")

        _chart(args, draw)
    return 0


def report_nps(args: argparse.Namespace) -> int:
    """``crmkit report nps``: promoters, passives, detractors and the Net Promoter Score."""
    with _open(args.url) as crm:
        rows = crm.satisfaction.nps(period=args.period)
        table = Table(title="Net Promoter Score" + (f" by {args.period}" if args.period else ""))
        table.add_column("period")
        for column in ("responses", "promoters", "passives", "detractors", "NPS"):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(
                f"{row.period:%Y-%m-%d}" if row.period else "all",
                str(row.responses),
                str(row.promoters),
                str(row.passives),
                str(row.detractors),
                "-" if row.nps is None else f"{row.nps:.0f}",
            )
        _console().print(table)
        _chart(args, lambda path: _render_nps(crm, path, args.period))
    return 0


def _render_nps(crm: crmkit.CRM, path: str, period: str | None) -> None:
    from crmkit.charts import render_chart

    render_chart("nps", crm, path, period=period or "month")


#: ``crmkit report NAME``: (name, help, command).
REPORTS: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
    ("pipeline", "deals per stage, the weighted forecast and the win rate", report_pipeline),
    ("tickets", "open tickets against their SLA due times", report_tickets),
    ("campaign", "campaign members, responses, cost per response, revenue", report_campaign),
    ("rfm", "recency, frequency and monetary scores of the contacts", report_rfm),
    ("nps", "Net Promoter Score of the survey responses", report_nps),
]

#: The reports that can also be drawn with ``--chart FILE.png`` (``crmkit[charts]``).
CHARTS = frozenset({"pipeline", "tickets", "rfm", "nps"})


# --- email --------------------------------------------------------------------------------


def email_ingest(args: argparse.Namespace) -> int:
    """``crmkit email ingest MAILBOX``: store the messages of an mbox file or a Maildir."""
    path = pathlib.Path(args.mailbox)
    if not path.exists():
        raise CommandError(f"{path}: no such file or folder")
    out = _console()
    with _open(args.url) as crm:
        report = crm.email.ingest_mailbox(path)
    out.print(
        f"{report.total} message(s): {report.created} stored ({report.automatic} automatic, "
        f"{report.tickets_opened} ticket(s) opened), {report.duplicates} already stored, "
        f"{len(report.rejected)} rejected"
    )
    if report.rejected:
        table = Table(title="Rejected messages")
        table.add_column("message")
        table.add_column("reason")
        for rejected in report.rejected:
            table.add_row(rejected.source, rejected.reason)
        out.print(table)
    return 0


# --- schema -------------------------------------------------------------------------------


def _scheme(url: str) -> str:
    return url.partition("://")[0].partition("+")[0].lower()


def schema_create(args: argparse.Namespace) -> int:
    """``crmkit schema create``: create the tables and indexes that are missing."""
    options = {"create_schema": False} if _scheme(args.url) in _SQL_SCHEMES else {}
    with _open(args.url, **options) as crm:
        crm.create_schema()
    _console().print(f"schema ready on {args.url}")
    return 0


def schema_upgrade(args: argparse.Namespace) -> int:
    """``crmkit schema upgrade``: bring an existing database up to this crmkit version."""
    options = {"create_schema": False} if _scheme(args.url) in _SQL_SCHEMES else {}
    with _open(args.url, **options) as crm:
        crm.upgrade_schema()
    _console().print(f"schema upgraded on {args.url}")
    return 0
