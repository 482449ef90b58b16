"""Developer sessions: ``nox -s tests lint typecheck bench docs``."""

from __future__ import annotations

import pathlib

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = pathlib.Path(__file__).parent


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite on every backend (PostgreSQL is started by the tests)."""
    session.install("-e", ".[all,dev]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[all,dev]")
    session.run("mypy", "--strict", "src")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Every benchmark; each prints ratios against a raw baseline measured in the same run."""
    session.install("-e", ".[all,dev]")
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.log(f"--- {script.name}")
        session.run("python", str(script))


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Run every code block of the docs, then build the site in strict mode."""
    session.install("-e", ".[all,dev]", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26")
    session.run("pytest", "tests/test_docs.py")
    session.run("mkdocs", "build", "--strict")
