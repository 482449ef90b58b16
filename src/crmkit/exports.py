"""Export a collection (or the part a filter selects) to CSV or JSON Lines, streaming.

``crm.exports.csv("contacts.csv", "contacts", where=F.lifecycle_stage == "customer")``
reads the records with :meth:`crmkit.repository.Repository.iterate` (bounded memory) and
writes one row per record. The CSV columns are field paths (``address.city``; list fields
joined with ``;``; ``custom`` and ``external_ids`` as JSON objects), so the file imports back
with ``crm.imports.csv(path, entity)`` unchanged. JSON Lines holds one JSON object per
record, every field included.

Through a user view (``crm.as_user(user).exports``) only the records the user may read are
written, the fields hidden from them are left out of the default columns and documents, and
naming a hidden field raises ``PermissionDenied``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

import attrs

from crmkit.dedupe.snapshot import plain, to_document
from crmkit.entities import Entity, SegmentKind
from crmkit.entities.schema import field_info
from crmkit.errors import PermissionDenied, ValidationError
from crmkit.query import Expr, F

if TYPE_CHECKING:
    from crmkit.crm import CRM
    from crmkit.permissions import ScopedRepository, UserView
    from crmkit.repository import Repository

__all__ = ["Exporter", "Target"]

#: Where to write: a path, or an open text file (``newline=""`` for CSV).
Target = str | os.PathLike[str] | IO[str]

_WHOLE = ("mapping", "text_mapping", "objects", "json")


def default_columns(entity: type[Entity]) -> list[str]:
    """The CSV columns of ``entity``: every field, embedded objects flattened by path."""
    columns: list[str] = []
    for a in attrs.fields(entity):
        if a.metadata.get("kind") == "object":
            columns.extend(f"{a.name}.{sub.name}" for sub in attrs.fields(a.metadata["type"]))
        else:
            columns.append(a.name)
    return columns


def _cell(value: Any) -> str:
    if value is None:
        return ""
    value = plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if not value:
            return ""
        joined = ";".join(value) if all(isinstance(v, str) for v in value) else None
        # values holding ";", blank at an end (the importer strips split values) or text
        # read as JSON are written as a JSON list instead, which is read back as it is
        if (
            joined is None
            or len(joined.split(";")) != len(value)
            or joined.startswith("[")
            or any(v != v.strip() or not v for v in value)
        ):
            return json.dumps(value, ensure_ascii=False)
        return joined
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _checked_fields(fields: Iterable[str] | None) -> list[str] | None:
    """``fields`` as a list (an iterator is read once); ``ValidationError`` unless text."""
    if fields is None:
        return None
    if isinstance(fields, str) or not isinstance(fields, Iterable):
        raise ValidationError("fields", fields, "must be a list of field paths (text)")
    listed = list(fields)
    if not all(isinstance(f, str) for f in listed):
        raise ValidationError("fields", listed, "must be a list of field paths (text)")
    return listed


def _value(record: Entity, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if value is None:
            return None
        if isinstance(value, dict) or hasattr(value, "keys"):
            value = value.get(part)
        else:
            value = getattr(value, part)
    return value


class Exporter:
    """``crm.exports`` (or a user view's): write a collection to CSV or JSON Lines (see the
    module)."""

    def __init__(self, crm: CRM | UserView) -> None:
        self._crm = crm

    def _hidden(self, entity: str) -> frozenset[str]:
        """The field paths hidden from the user of a view (none for the CRM itself)."""
        grants = getattr(self._crm, "grants", None)
        return grants.hidden_fields(entity) if grants is not None else frozenset()

    def _visible(self, entity: str, columns: list[str], named: bool) -> list[str]:
        """``columns`` without the hidden ones; a hidden column the caller ``named`` is
        refused (``PermissionDenied``)."""
        hidden = self._hidden(entity)
        if not hidden:
            return columns
        out = []
        for path in columns:
            top = path.split(".")[0]
            if path in hidden or top in hidden:
                if named:
                    raise PermissionDenied(f"{entity}.{path} is hidden from this user")
                continue
            out.append(path)
        return out

    def __repr__(self) -> str:
        return f"<Exporter of {self._crm!r}>"

    def _where(self, entity: str, where: Expr | str | None) -> Expr | None:
        """A filter, or a segment id: a dynamic segment's rule, a static one's snapshot
        (the same selection as ``crm.segments.members``)."""
        if not isinstance(where, str):
            return where
        from crmkit.segments import segment_rule

        segment = self._crm.segments.get(where)
        if segment.entity != entity:
            raise ValidationError("where", where, f"is a segment of {segment.entity}")
        _, rule = segment_rule(segment)
        if segment.kind is SegmentKind.STATIC:
            return F.id.in_(segment.member_ids) if segment.member_ids else ~F.id.exists()
        return rule

    def _records(
        self, entity: str, where: Expr | str | None, order_by: Any, batch_size: int
    ) -> Iterator[Entity]:
        repo: Repository[Entity] | ScopedRepository[Entity] = self._crm.repository(entity)
        return repo.iterate(
            self._where(entity, where), order_by=order_by or "id", batch_size=batch_size
        )

    def csv(
        self,
        target: Target,
        entity: str = "contacts",
        *,
        where: Expr | str | None = None,
        fields: Iterable[str] | None = None,
        order_by: Any = None,
        batch_size: int = 1000,
    ) -> int:
        """Write the records of ``entity`` matching ``where`` to a CSV file; returns the count.

        ``where`` is a filter (``F.…``) or the id of a stored segment. ``fields`` picks and
        orders the columns (field paths such as ``"address.city"`` or ``"custom.tier"``;
        default: every field). Records come in id order unless ``order_by`` says otherwise.
        Raises ``ValidationError`` for an unknown field, ``NotFound`` for an unknown segment.
        """
        repo_entity: type[Entity] = self._crm.repository(entity).entity
        fields = _checked_fields(fields)
        columns = list(fields) if fields is not None else default_columns(repo_entity)
        names = {a.name: a for a in attrs.fields(repo_entity)}
        for path in columns:
            if path not in names or names[path].metadata.get("kind") == "object":
                field_info(repo_entity, path)
        columns = self._visible(entity, columns, named=fields is not None)
        count = 0
        records = self._records(entity, where, order_by, batch_size)
        with _opened(target) as file:
            writer = csv.writer(file)
            writer.writerow(columns)
            for record in records:
                writer.writerow([_cell(_value(record, c)) for c in columns])
                count += 1
        return count

    def jsonl(
        self,
        target: Target,
        entity: str = "contacts",
        *,
        where: Expr | str | None = None,
        fields: Iterable[str] | None = None,
        order_by: Any = None,
        batch_size: int = 1000,
    ) -> int:
        """Write the records of ``entity`` matching ``where`` as JSON Lines; returns the count.

        Each line is a JSON object of the record's fields (all of them, or the top-level
        ``fields`` given), values as plain JSON (dates ISO text, decimals exact text).
        """
        repo_entity: type[Entity] = self._crm.repository(entity).entity
        fields = _checked_fields(fields)
        names = [a.name for a in attrs.fields(repo_entity)]
        if fields is not None:
            unknown = [f for f in fields if f not in names]
            if unknown:
                raise ValidationError("fields", unknown, f"are not fields of {entity}")
        wanted = list(fields) if fields is not None else names
        kept = self._visible(entity, wanted, named=fields is not None)
        keys = None if kept == names else kept
        count = 0
        records = self._records(entity, where, order_by, batch_size)
        with _opened(target) as file:
            for record in records:
                document = to_document(record)
                if keys is not None:
                    document = {f: document[f] for f in keys}
                file.write(json.dumps(document, ensure_ascii=False))
                file.write("\n")
                count += 1
        return count


@contextlib.contextmanager
def _opened(target: Target) -> Iterator[IO[str]]:
    if not isinstance(target, str | os.PathLike):
        yield target
        return
    with writable(target, "target") as file:
        yield file


def writable(path: str | os.PathLike[str], argument: str) -> IO[str]:
    """``path`` opened for writing UTF-8 text (an export, an import's rejected rows).

    Raises ``ValidationError`` naming ``argument`` when it cannot be (a missing directory,
    no permission). Text no encoding can hold (a lone surrogate read from a text source)
    is written as a backslash escape rather than failing half-way through the file.
    """
    if not isinstance(path, str | os.PathLike):
        raise ValidationError(argument, path, "must be a file path")
    try:
        return open(path, "w", newline="", encoding="utf-8", errors="backslashreplace")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValidationError(argument, os.fspath(path), f"cannot be written ({reason})") from None
