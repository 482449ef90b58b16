"""The ``crmkit`` command line (``pip install 'crmkit[cli]'``).

``crmkit demo``, ``crmkit import``, ``crmkit dedupe``, ``crmkit segment``, ``crmkit report``,
``crmkit email`` and ``crmkit schema`` work on the CRM at ``--url`` (default:
``sqlite:///crmkit.db``, a SQLite file in the current directory). Output is drawn with `rich
<https://rich.readthedocs.io>`_ (tables, a progress bar); the arguments are parsed by the
standard library's :mod:`argparse`, which already provides sub-commands, help and usage
errors, so the only dependency of the command line is rich itself.

Every command exits with status 0 on success, 1 when crmkit refuses the input (a
``crmkit.CRMError``, an unreadable file) and 2 on a usage error; the reason is one line on
standard error, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from crmkit.errors import CRMError

__all__ = ["DEFAULT_URL", "CommandError", "build_parser", "main"]

#: The CRM every command uses unless ``--url`` names another one.
DEFAULT_URL = "sqlite:///crmkit.db"


class CommandError(Exception):
    """A reason to stop a command, shown as one line on standard error (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors reported on one line (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        """Print ``crmkit: error: <message>`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _url(parser: argparse.ArgumentParser, default: str = DEFAULT_URL) -> None:
    parser.add_argument(
        "--url",
        default=default,
        help=f"the CRM to use: a crmkit storage URL (default: {default})",
    )


def _chart_path(value: str) -> str:
    if not value.lower().endswith((".png", ".svg")):
        raise argparse.ArgumentTypeError(f"{value!r}: the file name must end in .png or .svg")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``crmkit`` command and its sub-commands."""
    from crmkit.cli import commands

    parser = _Parser(prog="crmkit", description="A CRM on the command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
        return p

    demo = command("demo", "build a sample CRM and show what crmkit does with it")
    _url(demo, commands.DEMO_URL)
    demo.set_defaults(run=commands.demo)

    imp = command("import", "import a CSV or JSON Lines file into a collection")
    imp.add_argument("file", help="the file to read (.csv, or .jsonl for JSON Lines)")
    imp.add_argument("--entity", default="contacts", help="the collection (default: contacts)")
    imp.add_argument(
        "--mapping",
        action="append",
        default=[],
        metavar="COLUMN=FIELD",
        help="map a column to a field path (repeatable), or a JSON file of such a mapping",
    )
    imp.add_argument("--key", help="the external-id source that identifies records")
    imp.add_argument(
        "--rejected",
        metavar="FILE",
        help="where to write the rejected rows (default: FILE.rejected.csv)",
    )
    imp.add_argument(
        "--check-duplicates",
        action="store_true",
        help="reject new rows that look like a stored record",
    )
    _url(imp)
    imp.set_defaults(run=commands.import_file)

    dedupe = command("dedupe", "review duplicate contacts or accounts, and merge them")
    dedupe.add_argument("--entity", default="contacts", choices=["contacts", "accounts"])
    dedupe.add_argument("--threshold", type=float, help="match probability threshold (0-1)")
    dedupe.add_argument("--merge", action="store_true", help="merge every group found")
    dedupe.add_argument("--yes", action="store_true", help="merge without asking")
    _url(dedupe)
    dedupe.set_defaults(run=commands.dedupe)

    segment = command("segment", "count or export the members of a segment")
    seg = segment.add_subparsers(dest="action", required=True, metavar="ACTION")
    count = seg.add_parser("count", help="how many members a segment has")
    count.add_argument("segment", help="the segment's name or id")
    _url(count)
    count.set_defaults(run=commands.segment_count)
    export = seg.add_parser("export", help="write a segment's members to a CSV file")
    export.add_argument("segment", help="the segment's name or id")
    export.add_argument("file", help="the CSV file to write")
    export.add_argument("--fields", help="comma-separated field paths (default: every field)")
    _url(export)
    export.set_defaults(run=commands.segment_export)

    report = command("report", "show a report")
    rep = report.add_subparsers(dest="report", required=True, metavar="REPORT")
    for name, help, run in commands.REPORTS:
        p = rep.add_parser(name, help=help, description=help)
        if name == "campaign":
            p.add_argument("campaign", nargs="?", help="a campaign's name or id (default: all)")
        if name == "nps":
            p.add_argument("--period", choices=["week", "month", "year"], help="one row per period")
        if name in commands.CHARTS:
            p.add_argument(
                "--chart",
                type=_chart_path,
                metavar="FILE.png",
                help="also draw the report (PNG or SVG; needs crmkit[charts])",
            )
        _url(p)
        p.set_defaults(run=run)

    email = command("email", "capture email into the CRM")
    mail = email.add_subparsers(dest="action", required=True, metavar="ACTION")
    ingest = mail.add_parser("ingest", help="store the messages of an mbox file or a Maildir")
    ingest.add_argument("mailbox", help="an mbox file or a Maildir folder")
    _url(ingest)
    ingest.set_defaults(run=commands.email_ingest)

    schema = command("schema", "create or upgrade the database schema")
    sch = schema.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sch.add_parser("create", help="create crmkit's tables and indexes if missing")
    _url(create)
    create.set_defaults(run=commands.schema_create)
    upgrade = sch.add_parser("upgrade", help="apply the migrations of this crmkit version")
    _url(upgrade)
    upgrade.set_defaults(run=commands.schema_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crmkit`` with ``argv`` (default: the process arguments); returns the exit code."""
    try:
        import rich  # noqa: F401
    except ImportError:
        print(
            "crmkit: error: the command line needs rich: pip install 'crmkit[cli]'", file=sys.stderr
        )
        return 1
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        code: int = args.run(args)
    except (CRMError, CommandError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"crmkit: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("crmkit: interrupted", file=sys.stderr)
        return 130
    return code
