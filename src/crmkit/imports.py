"""Import records from CSV and JSON Lines files: stream, map, validate, upsert, report.

``crm.imports.csv(path, entity="contacts", mapping={...})`` reads a file in batches (memory
stays bounded however long the file is), turns each row into the fields of an entity
(dotted paths such as ``address.city``, ``custom.tier`` or ``external_ids.shop``; list
fields such as ``emails`` split on ``;`` or hold a JSON list), and writes it through the
collection's repository, so every row is normalized and validated exactly like
``crm.contacts.add``.

A row whose external id (``external_ids.<source>``) matches a stored record updates that
record, and so does a row of a file without a mapping whose ``id`` column (an export's)
names a stored record; a row that would change nothing leaves it alone, so importing the
same file twice is a no-op. Records are looked up once per batch with one ``in_`` query.
Every row ends up in exactly one count of the returned :class:`ImportSummary`; a rejected
row is written, with its line number and the reason, to the ``rejected_path`` CSV file.

Through a user view (``crm.as_user(user).imports``) the writes are the user's: a row the
user may not create or change is rejected with the reason (the rest of the file is
imported), a row whose external id belongs to a record the user cannot read is rejected
rather than duplicated, and a mapping onto a hidden or read-only field raises
``PermissionDenied`` before anything is read (a file's own read-only columns are read, and
a row changing one is rejected).
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

import attrs

from crmkit.entities import Entity
from crmkit.entities._fields import check_key, same, same_record
from crmkit.entities.schema import FieldInfo, field_info
from crmkit.errors import (
    BackendError,
    ConflictError,
    CRMError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from crmkit.exports import writable
from crmkit.permissions import ScopedRepository, UserView
from crmkit.query import F

if TYPE_CHECKING:
    from crmkit.crm import CRM
    from crmkit.repository import Repository

__all__ = ["ImportSummary", "Importer", "Source"]

#: A file to read: a path, or an open text file (``newline=""`` for CSV).
Source = str | os.PathLike[str] | IO[str]

#: Separator of the values of a multi-valued cell (``emails``, ``phones``, ``tags``).
LIST_SEPARATOR = ";"

_STORAGE = frozenset({"id", "version", "created_at", "updated_at"})
_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})


@attrs.frozen
class ImportSummary:
    """What an import did: every row read is counted in exactly one of the four outcomes.

    ``rows`` = ``created + updated + unchanged + rejected``. ``rejected_path`` is the file
    the rejected rows were written to, if one was asked for.
    """

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejected_path: str | None = None


class _Row:
    """One row of the file: its line, its raw cells (for the rejected file), its fields,
    the record id it names (an export's ``id``), and (once batched) the value of its
    external-id key."""

    __slots__ = ("error", "fields", "id", "key", "line", "raw")

    def __init__(
        self,
        line: int,
        raw: Sequence[str],
        fields: dict[str, Any] | None,
        error: str = "",
        id: str | None = None,
    ) -> None:
        self.line, self.raw, self.fields, self.error, self.id = line, raw, fields, error, id
        #: The external id matching this row to a stored record: ``(source, value)``.
        self.key: tuple[str, str] | None = None


class _Counts:
    def __init__(self, rejected_path: str | None) -> None:
        self.rows = self.created = self.updated = self.unchanged = self.rejected = 0
        self.rejected_path = rejected_path

    def summary(self) -> ImportSummary:
        return ImportSummary(
            rows=self.rows,
            created=self.created,
            updated=self.updated,
            unchanged=self.unchanged,
            rejected=self.rejected,
            rejected_path=self.rejected_path,
        )


class _Mapper:
    """Turns a row (column -> cell) into entity fields, following a column -> path mapping."""

    def __init__(
        self,
        entity: type[Entity],
        mapping: Mapping[str, str] | None,
        columns: Iterable[str],
        lists: frozenset[str] = frozenset(),
    ) -> None:
        self.entity = entity
        if mapping is None:  # the columns are the paths; storage columns (an export's) skipped
            mapping = {c: c for c in columns if c not in _STORAGE}
        elif not isinstance(mapping, Mapping):
            raise ValidationError("mapping", mapping, "must map column names to field paths")
        self.targets: list[tuple[str, str, FieldInfo | None]] = []
        for column, path in mapping.items():
            if not isinstance(column, str) or not isinstance(path, str):
                raise ValidationError("mapping", {column: path}, "maps column names to field paths")
            others = [p for _, p, _ in self.targets]
            clash = next((p for p in others if _overlap(p, path)), None)
            if clash is not None:  # one would silently overwrite the other
                raise ValidationError("mapping", path, f"sets what another column sets ({clash})")
            info = self._resolve(path)
            if info is not None and info.column == "custom" and info.key in lists:
                info = attrs.evolve(info, kind="text_list")  # a multi-enum: values split on ;
            self.targets.append((column, path, info))

    def _resolve(self, path: str) -> FieldInfo | None:
        """The field a path names; ``None`` for a whole mapping/object column (JSON text)."""
        names = {a.name: a for a in attrs.fields(self.entity)}
        top = names.get(path)
        if top is not None and top.metadata.get("kind") in (
            "mapping",
            "text_mapping",
            "object",
            "objects",
            "json",
        ):
            return None
        if path in _STORAGE:
            raise ValidationError("mapping", path, "is a storage field the repository sets")
        if top is not None and top.metadata.get("filterable", True) is False:
            # kept with its record only (an audit entry's ``changed``): set, never queried
            return FieldInfo(path, top.metadata["kind"], path)
        return field_info(self.entity, path)

    def fields(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The entity fields of one row; raises ``ValidationError`` for a bad cell."""
        return self._fields((row.get(column), path, info) for column, path, info in self.targets)

    def positions(self, header: Sequence[str]) -> list[tuple[int, str, FieldInfo | None]]:
        """Each target with the index of its column in ``header`` (CSV rows are lists)."""
        index = {c: i for i, c in enumerate(header)}
        return [(index[c], path, info) for c, path, info in self.targets]

    def cells(
        self, cells: Sequence[str], positions: Sequence[tuple[int, str, FieldInfo | None]]
    ) -> dict[str, Any]:
        """The entity fields of one CSV row (see :meth:`positions`)."""
        return self._fields((cells[i], path, info) for i, path, info in positions)

    @staticmethod
    def _fields(values: Iterable[tuple[Any, str, FieldInfo | None]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for value, path, info in values:
            if value is None or value == "" or (isinstance(value, str) and value.isspace()):
                continue  # an empty or blank cell sets nothing
            if info is None:
                out[path] = _json_cell(path, value)
                continue
            value = _cell(info, value)
            if info.key is None:
                out[path] = value
            else:
                parent = out.setdefault(info.column, {})
                if not isinstance(parent, dict):
                    raise ValidationError(path, value, f"conflicts with a whole {info.column}")
                parent[info.key] = value
        return out


def _overlap(a: str, b: str) -> bool:
    """Whether two field paths set the same value (equal, or one holds the other)."""
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def _json_cell(path: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ValidationError(path, value, "must be a JSON value") from None


def _cell(info: FieldInfo, value: Any) -> Any:
    """A cell's text converted to what the field accepts (JSON values pass through)."""
    if not isinstance(value, str):
        return value
    kind = info.kind
    if info.column == "external_ids":
        return value.strip()  # ids never carry surrounding blanks (a padded cell does)
    if kind == "text_list":  # a tuple: once checked, the garbage collector stops tracking it
        if value.startswith("["):  # a JSON list: how an export writes values holding ";"
            try:
                items = json.loads(value)
            except ValueError:
                items = None
            if isinstance(items, list) and all(isinstance(i, str) for i in items):
                return tuple(items)
        return tuple([v for v in map(str.strip, value.split(LIST_SEPARATOR)) if v])
    if kind == "bool":
        folded = value.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
        raise ValidationError(info.path, value, "must be true or false (yes/no, 1/0)")
    if kind == "int":
        try:
            return int(value.strip())
        except ValueError:
            raise ValidationError(info.path, value, "must be a whole number") from None
    if kind == "duration":
        try:
            return float(value.strip())
        except ValueError:
            raise ValidationError(info.path, value, "must be a number of seconds") from None
    return value


def _documents(entity: type[Entity]) -> frozenset[str]:
    """The fields of ``entity`` holding a whole JSON document (a segment's rule, a role's
    permissions): a row replaces such a value, it does not merge into it."""
    return frozenset(a.name for a in attrs.fields(entity) if a.metadata.get("kind") == "json")


def _same(stored: Entity, fields: Mapping[str, Any]) -> bool:
    """True when every value of the row already equals the stored one.

    Stored values are normalized and normalization is idempotent, so such a row cannot
    change the record: the (much dearer) build-normalize-compare is skipped. Values that
    are stored in another form (decimals, dates given as text) simply compare unequal and
    take the full path.
    """
    documents = _documents(type(stored))
    for name, value in fields.items():
        current = getattr(stored, name)
        if name in documents:
            if not same(current, value):
                return False
        elif isinstance(value, dict):
            if current is None:
                return False
            if isinstance(current, Mapping):
                if not all(same(current.get(k, _MISSING), v) for k, v in value.items()):
                    return False
            elif not all(same(getattr(current, k, _MISSING), v) for k, v in value.items()):
                return False
        elif isinstance(value, list):
            if not isinstance(current, tuple) or not same(current, tuple(value)):
                return False
        elif not same(current, value):
            return False
    return True


_MISSING = object()


def _merged(stored: Entity, fields: Mapping[str, Any]) -> Entity:
    """``stored`` with the row's fields: mappings (``custom``, ``external_ids``) and objects
    (``address``) merge key by key; JSON documents and everything else are replaced."""
    changes: dict[str, Any] = {}
    documents = _documents(type(stored))
    for name, value in fields.items():
        current = getattr(stored, name)
        if name in documents:
            changes[name] = value
        elif isinstance(value, dict) and isinstance(current, Mapping):
            changes[name] = {**current, **value}
        elif isinstance(value, dict) and attrs.has(type(current)):
            try:
                changes[name] = attrs.evolve(current, **value)
            except TypeError:
                known = ", ".join(a.name for a in attrs.fields(type(current)))
                raise ValidationError(name, value, f"has unknown parts (it has {known})") from None
        else:
            changes[name] = value
    return attrs.evolve(stored, **changes)


class Importer:
    """``crm.imports`` (or a user view's): bring CSV and JSON Lines files into a collection
    (see the module)."""

    def __init__(self, crm: CRM | UserView) -> None:
        self._crm = crm

    def _checked_mapping(self, entity: str, mapper: _Mapper | None, *, explicit: bool) -> None:
        """Through a user view, a mapping may not target a field hidden from the user, nor
        (an ``explicit`` one) a read-only field. A file whose own columns include a
        read-only field (the user's export) is read: a row changing it is rejected."""
        grants = getattr(self._crm, "grants", None)
        if grants is None or mapper is None:
            return
        refused = grants.hidden_fields(entity)
        if explicit:
            refused |= grants.readonly_fields(entity)
        for _, path, _ in mapper.targets:
            top = path.split(".")[0]
            if path in refused or top in refused:
                raise PermissionDenied(f"{entity}.{path} cannot be set by this user")

    def __repr__(self) -> str:
        return f"<Importer of {self._crm!r}>"

    def _multi_valued(self, entity: str) -> frozenset[str]:
        """The custom fields of ``entity`` defined to hold several values (multi-enums)."""
        crm: CRM = self._crm.crm if isinstance(self._crm, UserView) else self._crm
        types = crm.repository(entity)._custom_types()
        return frozenset(name for name, kind in types.items() if kind == "multi_enum")

    def csv(
        self,
        source: Source,
        entity: str = "contacts",
        *,
        mapping: Mapping[str, str] | None = None,
        key: str | None = None,
        on_progress: Callable[[ImportSummary], None] | None = None,
        rejected_path: str | os.PathLike[str] | None = None,
        check_duplicates: bool = False,
        batch_size: int = 1000,
        delimiter: str = ",",
    ) -> ImportSummary:
        """Import a CSV file with a header row into the ``entity`` collection.

        ``mapping`` maps column names to field paths (``{"E-mail": "emails", "City":
        "address.city", "Shop id": "external_ids.shop"}``); columns not in it are ignored.
        Without it, the column names are the paths. Empty cells set nothing; a list field's
        cell holds its values separated by ``;``; a whole ``custom``/``external_ids``/
        ``address`` column holds JSON.

        ``key`` is the external-id source that identifies a record (default: the first
        ``external_ids.<source>`` path of the mapping; a column must set it). Without either,
        a whole ``external_ids`` column matches each row by the source it names first in
        alphabetical order (so rows naming the same ids always agree). A
        row the ``csv`` module cannot read (a stray quote, a quoted cell never closed) is
        rejected with the reason. A row whose key matches a stored
        record updates it (or leaves it unchanged); others are created. With
        ``check_duplicates``, a row that would be created but looks like a stored record
        (:meth:`crmkit.dedupe.DedupeService.candidates`) is rejected, naming that record.

        ``on_progress`` is called after every batch with the counts so far. Rejected rows
        go to ``rejected_path`` (CSV: ``line``, ``reason``, then the row's cells). Returns
        the :class:`ImportSummary`. Raises ``ValidationError`` for a bad mapping or
        argument, a header naming a used column twice, or a ``rejected_path`` that is the
        source or cannot be written (before anything is written); bad rows never raise. A
        file that is not UTF-8 text part-way raises ``ValidationError`` there. Each batch is one
        transaction: a storage failure (``BackendError``) stops the import, and the batches
        before it stay written.
        """
        _check_batch(batch_size)
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
            raise ValidationError("delimiter", delimiter, "must be one character (not a quote)")
        _allow_long_cells()
        with _opened(source, rejected_path) as file:
            with _decoding():
                # strict: a stray quote is an error, not text, and a quoted cell never
                # closed ends in an error instead of swallowing the rest of the file
                reader = csv.reader(_without_bom(file), delimiter=delimiter, strict=True)
                try:
                    header = next(reader, [])
                except csv.Error as exc:
                    raise ValidationError(
                        "header", reader.line_num, f"is not CSV ({exc})"
                    ) from None
            repeated = sorted({c for c in header if header.count(c) > 1})
            used = [c for c in repeated if mapping is None or c in mapping]
            if used:
                raise ValidationError("header", used, "names a column more than once")
            lists = self._multi_valued(entity)
            mapper = _Mapper(self._crm.repository(entity).entity, mapping, header, lists)
            self._checked_mapping(entity, mapper, explicit=mapping is not None)
            if mapping is not None:
                missing = [c for c in mapping if c not in header]
                if missing:
                    raise ValidationError("mapping", missing, "names columns the file lacks")
            positions = mapper.positions(header)
            width = len(header)
            # an export's id column: a row naming a stored record updates it
            id_at = header.index("id") if mapping is None and "id" in header else None

            def rows() -> Iterator[_Row]:
                with _decoding(lambda: reader.line_num):
                    yield from read()

            def read() -> Iterator[_Row]:
                line = reader.line_num
                while True:
                    try:
                        cells = next(reader)
                    except StopIteration:
                        return
                    except csv.Error as exc:  # the reader goes on at the next line
                        start, line = line + 1, reader.line_num
                        yield _Row(start, (), None, _malformed(exc, start, line))
                        continue
                    start, line = line + 1, reader.line_num
                    if not cells:
                        continue
                    if len(cells) != width:
                        yield _Row(start, cells, None, f"has {len(cells)} cells, not {width}")
                        continue
                    # kept as a tuple (for the rejected file): the garbage collector stops
                    # tracking a tuple of text, and a batch holds a thousand of them
                    raw = tuple(cells)
                    id = raw[id_at].strip() or None if id_at is not None else None
                    try:
                        yield _Row(start, raw, mapper.cells(raw, positions), id=id)
                    except ValidationError as exc:
                        yield _Row(start, raw, None, str(exc))

            return self._run(
                entity,
                rows(),
                mapper,
                header,
                key=key,
                on_progress=on_progress,
                rejected_path=rejected_path,
                check_duplicates=check_duplicates,
                batch_size=batch_size,
            )

    def jsonl(
        self,
        source: Source,
        entity: str = "contacts",
        *,
        mapping: Mapping[str, str] | None = None,
        key: str | None = None,
        on_progress: Callable[[ImportSummary], None] | None = None,
        rejected_path: str | os.PathLike[str] | None = None,
        check_duplicates: bool = False,
        batch_size: int = 1000,
    ) -> ImportSummary:
        """Import a JSON Lines file (one JSON object per line) into ``entity``.

        Like :meth:`csv`: ``mapping`` maps keys of the objects to field paths (without it
        the keys are the paths; nested objects such as ``"address": {...}`` and lists are
        taken as they are, text in a list field is split on ``;``). Blank lines are skipped;
        a line that is not a JSON object is rejected. The rejected file has the columns
        ``line``, ``reason`` and ``row`` (the line's text). Without ``mapping`` and ``key``,
        each row is matched by the external-id source it names first in alphabetical order.
        Lines end at ``\n`` only (a ``\r`` inside a line is JSON white space).
        """
        _check_batch(batch_size)
        repo_entity: type[Entity] = self._crm.repository(entity).entity
        lists = self._multi_valued(entity)
        fixed = _Mapper(repo_entity, mapping, (), lists) if mapping is not None else None
        self._checked_mapping(entity, fixed, explicit=True)
        mappers: dict[tuple[str, ...], _Mapper] = {}
        with _opened(source, rejected_path, newline="\n") as file:
            last = [0]  # the number of the line read last

            def rows() -> Iterator[_Row]:
                with _decoding(lambda: last[0]):
                    yield from read()

            def read() -> Iterator[_Row]:
                for number, text in enumerate(_without_bom(file), start=1):
                    last[0] = number
                    if not text.strip():
                        continue
                    raw = (text.rstrip("\r\n"),)
                    try:
                        data = json.loads(text)
                    except ValueError as exc:
                        yield _Row(number, raw, None, f"is not valid JSON ({exc})")
                        continue
                    if not isinstance(data, dict):
                        yield _Row(number, raw, None, "is not a JSON object")
                        continue
                    try:
                        mapper = fixed or mappers.get(tuple(data))
                        if mapper is None:  # rows of a file mostly share their keys
                            if len(mappers) >= 256:
                                mappers.clear()  # bounded, whatever the file holds
                            mapper = mappers[tuple(data)] = _Mapper(repo_entity, None, data, lists)
                        id = data.get("id") if fixed is None else None
                        id = id.strip() or None if isinstance(id, str) else None
                        yield _Row(number, raw, mapper.fields(data), id=id)
                    except ValidationError as exc:
                        yield _Row(number, raw, None, str(exc))

            return self._run(
                entity,
                rows(),
                fixed,
                ("row",),
                key=key,
                on_progress=on_progress,
                rejected_path=rejected_path,
                check_duplicates=check_duplicates,
                batch_size=batch_size,
            )

    # --- the shared pipeline --------------------------------------------------------------

    def _run(
        self,
        entity: str,
        rows: Iterator[_Row],
        mapper: _Mapper | None,
        header: Sequence[str],
        *,
        key: str | None,
        on_progress: Callable[[ImportSummary], None] | None,
        rejected_path: str | os.PathLike[str] | None,
        check_duplicates: bool,
        batch_size: int,
    ) -> ImportSummary:
        repo: Repository[Any] | ScopedRepository[Any] = self._crm.repository(entity)
        has_external = any(a.name == "external_ids" for a in attrs.fields(repo.entity))
        if key is None and mapper is not None:
            key = next(
                (i.key for _, _, i in mapper.targets if i and i.column == "external_ids"), None
            )
        if key is not None:
            if not isinstance(key, str) or not key:
                raise ValidationError("key", key, "must be an external-id source (text)")
            if not has_external:
                raise ValidationError("key", key, f"{entity} have no external_ids")
            field_info(repo.entity, f"external_ids.{key}")
            if mapper is not None and not any(
                path in ("external_ids", f"external_ids.{key}") for _, path, _ in mapper.targets
            ):  # no row could ever match: each import would create every record again
                raise ValidationError(
                    "key", key, f"is set by no column (map one to external_ids.{key})"
                )
        counts = _Counts(os.fspath(rejected_path) if rejected_path is not None else None)
        with contextlib.ExitStack() as stack:
            stack.enter_context(_heap_frozen())
            writer = None
            if rejected_path is not None:
                out = stack.enter_context(writable(rejected_path, "rejected_path"))
                writer = csv.writer(out)
                writer.writerow(["line", "reason", *header])
            run = _Batch(self._crm, repo, has_external, check_duplicates, counts, writer)
            for batch in _batches(rows, batch_size, key, has_external):
                run.process(batch)
                if on_progress is not None:
                    on_progress(counts.summary())
        return counts.summary()


def _batches(
    rows: Iterator[_Row], size: int, key: str | None, has_external: bool
) -> Iterator[list[_Row]]:
    """Batches of rows in which no external id nor record id repeats (so that a later row
    sees what the earlier one wrote)."""
    batch: list[_Row] = []
    keys: set[tuple[str, str]] = set()
    ids: set[str] = set()
    for row in rows:
        value = row.key = _key_of(row, key, has_external)
        id = row.id
        if (value is not None and value in keys) or (id is not None and id in ids):
            yield batch
            batch, keys, ids = [], set(), set()
        batch.append(row)
        if value is not None:
            keys.add(value)
        if id is not None:
            ids.add(id)
        if len(batch) >= size:
            yield batch
            batch, keys, ids = [], set(), set()
    if batch:
        yield batch


def _named_key(key: tuple[str, str] | None) -> str:
    """A row's external id in a reason (``external_ids.shop='C-1'``)."""
    assert key is not None  # only rows with a key match stored records
    return f"external_ids.{key[0]}={key[1]!r}"


def _key_of(row: _Row, key: str | None, has_external: bool) -> tuple[str, str] | None:
    """The row's ``(source, value)`` external id: under ``key`` when there is one, else
    (a whole ``external_ids`` column or JSON object, no ``key`` given) the first in
    alphabetical order of the sources the row itself names."""
    if not has_external or row.fields is None:
        return None
    external = row.fields.get("external_ids")
    if not isinstance(external, Mapping) or not external:
        return None
    source = key if key is not None else min(external)
    value = external.get(source)
    if not isinstance(value, str) or not value:
        return None
    try:
        if key is None:
            check_key(source, "external_ids")  # ``key`` was checked before the first row
        if not value.isascii():
            value.encode("utf-8")
    except (ValidationError, UnicodeEncodeError):  # a bad source, a lone surrogate: the
        return None  # row is not looked up, and writing it rejects it with the reason
    return source, value


class _Batch:
    """Writes batches of rows: one lookup query, one bulk insert, updates where changed."""

    def __init__(
        self,
        source: CRM | UserView,
        repo: Repository[Any] | ScopedRepository[Any],
        has_external: bool,
        check_duplicates: bool,
        counts: _Counts,
        writer: Any,
    ) -> None:
        self.source, self.repo = source, repo
        # the CRM itself (a view's), and its repository: external ids are looked up in all
        # records, so that a row never duplicates a record its user cannot see
        self.crm: CRM = source.crm if isinstance(source, UserView) else source
        self.every: Repository[Any] = self.crm.repository(repo.entity.collection)
        self.has_external = has_external
        self.check_duplicates = check_duplicates
        self.counts = counts
        self.writer = writer
        self.rejected: list[tuple[int, str, Sequence[str]]] = []

    def reject(self, row: _Row, reason: str) -> None:
        self.counts.rejected += 1
        if self.writer is not None:
            self.rejected.append((row.line, reason, row.raw))

    def process(self, batch: list[_Row]) -> None:
        counts = self.counts
        counts.rows += len(batch)
        good: list[_Row] = []
        for row in batch:
            if row.fields is None:
                self.reject(row, row.error or "is invalid")
            else:
                good.append(row)
        named = self._named(good)
        stored = self._lookup(good)
        new: list[_Row] = []
        crm = self.crm
        with self.source.transaction(), crm.acting(None, reason=crm.acting_reason or "import"):
            for row in good:
                if row.id in named:  # the row names a stored record by its id
                    record = named[row.id]
                    held = stored.get(row.key, []) if row.key is not None else []
                    if record is None:
                        self.reject(row, f"id {row.id!r} is a record this user may not change")
                    elif any(m is None or m.id != record.id for m in held):
                        self.reject(
                            row,
                            f"{_named_key(row.key)} belongs to another record than id {row.id!r}",
                        )
                    else:
                        self._upsert(row, record)
                    continue
                value = row.key
                matches = stored.get(value, []) if value is not None else []
                if matches and matches[0] is None:
                    self.reject(
                        row, f"{_named_key(value)} belongs to a record this user may not change"
                    )
                elif len(matches) > 1:
                    ids = ", ".join(str(m.id) for m in matches if m is not None)
                    hidden = " and records this user may not read" if None in matches else ""
                    self.reject(row, f"{_named_key(value)} matches records {ids}{hidden}")
                elif matches and matches[0] is not None:
                    self._upsert(row, matches[0])
                else:
                    new.append(row)
            self._create(new)
        if self.rejected:  # in line order, whichever step rejected them
            self.rejected.sort(key=lambda r: r[0])
            self.writer.writerows([line, reason, *raw] for line, reason, raw in self.rejected)
            self.rejected.clear()

    def _named(self, rows: list[_Row]) -> dict[str | None, Entity | None]:
        """The stored records the rows name by id (an export's ``id`` column); ``None`` for
        an id held only by a record a user's view cannot read. Other ids are not there:
        their rows are new records (an export of another CRM), created with the file's id,
        so that importing the file again finds them and other records' references hold."""
        ids = sorted({r.id for r in rows if r.id is not None})
        if not ids:
            return {}
        found: dict[str | None, Entity | None] = {e.id: e for e in self.repo.get_many(ids)}
        if self.every is not self.repo:
            for record in self.every.get_many([i for i in ids if i not in found]):
                found[record.id] = None
        return found

    def _lookup(self, rows: list[_Row]) -> dict[tuple[str, str], list[Entity | None]]:
        """The stored records of the batch's keys (one query per source); ``[None]`` for a
        key held only by records a user's view cannot read."""
        sources: dict[str, set[str]] = {}
        for row in rows:
            if row.key is not None:
                sources.setdefault(row.key[0], set()).add(row.key[1])
        found: dict[tuple[str, str], list[Entity | None]] = {}
        for source, values in sources.items():
            where = F(f"external_ids.{source}").in_(sorted(values))
            for record in self.repo.find(where):
                found.setdefault((source, record.external_ids[source]), []).append(record)
            if self.every is not self.repo:  # a user's view: keys of records it cannot read
                held: dict[tuple[str, str], int] = {}
                for record in self.every.find(where):
                    key = (source, record.external_ids[source])
                    held[key] = held.get(key, 0) + 1
                for key, count in held.items():
                    if key not in found:
                        found[key] = [None]
                    elif count > len(found[key]):  # ambiguous, as for the CRM: never guessed
                        found[key] = [*found[key], None]
        return found

    def _upsert(self, row: _Row, stored: Entity) -> None:
        assert row.fields is not None
        if _same(stored, row.fields):
            self.counts.unchanged += 1
            return
        try:
            candidate = _merged(stored, row.fields)
            normalized = candidate
            for hook in self.crm.write_hooks:
                normalized = hook(normalized, stored)
            if same_record(normalized, stored):
                self.counts.unchanged += 1
                return
            self.repo.update(candidate)
        except (ConflictError, NotFound) as exc:
            self.reject(row, f"record {stored.id} changed during the import ({exc})")
        except BackendError:
            raise
        except CRMError as exc:  # invalid values, a rule refusing the change
            self.reject(row, str(exc))
        else:
            self.counts.updated += 1

    def _create(self, rows: list[_Row]) -> None:
        if self.check_duplicates:
            # one by one, each row added before the next is checked: two lookalike rows of
            # one batch are caught like a row and a stored record
            for row in rows:
                if not self._duplicate(row):
                    self._add(row)
            return
        if not rows:
            return
        try:
            items = [_with_id(r) for r in rows]
            result = self.repo.add_many(items, on_error="collect", keep_ids=True)
        except BackendError:
            raise
        except CRMError:
            # nothing of the call was written: a user's view refuses the whole call for one
            # refused row, and a rule refusing a row (a deal's stage) is not collected. The
            # rows are added one by one instead, so that only the refused ones are rejected
            for row in rows:
                self._add(row)
            return
        self.counts.created += len(result.added)
        for rejected in result.rejected:
            self.reject(rows[rejected.index], "; ".join(rejected.reasons))

    def _add(self, row: _Row) -> None:
        """Create one row's record (in a savepoint), or reject the row with the reason."""
        try:
            with self.source.transaction():
                self.repo.add(_with_id(row), keep_id=True)
        except BackendError:
            raise
        except CRMError as exc:
            self.reject(row, str(exc))
        else:
            self.counts.created += 1

    def _duplicate(self, row: _Row) -> bool:
        assert row.fields is not None
        collection = self.repo.entity.collection
        if collection not in ("contacts", "accounts"):
            return False
        try:
            record = self.repo.entity(**row.fields)
            matches = self.source.dedupe.candidates(record, limit=5)
        except (ValidationError, TypeError):
            return False  # add_many rejects it with the precise reason
        if not matches:
            return False
        best = matches[0]
        self.reject(row, f"looks like a duplicate of {best.b} (probability {best.probability:.2f})")
        return True


def _with_id(row: _Row) -> dict[str, Any]:
    """The fields of a row to create, with the id the file gives it (an export's)."""
    fields = row.fields or {}
    return {**fields, "id": row.id} if row.id is not None else fields


#: The longest cell a CSV file may hold: the longest text an entity field accepts
#: (an interaction's body) with room for its quoting.
_MAX_CELL = 2 * 10_000_000


def _malformed(error: csv.Error, start: int, end: int) -> str:
    """The reason a row the ``csv`` module could not read is rejected."""
    text = str(error)
    if text == "unexpected end of data":
        return (
            f"has a quoted cell that is never closed: the file ends inside it (lines "
            f"{start}-{end} were read as this row)"
        )
    if text.startswith("field larger than field limit"):
        return f"has a cell longer than {_MAX_CELL:,} characters"
    return f"is not valid CSV ({text})"


def _allow_long_cells() -> None:
    """Raise the ``csv`` module's cell limit (131,072 characters by default) so that any
    record crmkit exports can be read back. The limit is the module's, for the whole
    process: it is only ever raised, never lowered."""
    if csv.field_size_limit() < _MAX_CELL:
        csv.field_size_limit(_MAX_CELL)


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """Leave the objects that exist before an import out of Python's full garbage
    collections while it runs (``gc.freeze``; ``gc.unfreeze`` after).

    An import's rows live for a batch, long enough to reach the oldest generation, so a
    full collection comes every few thousand rows, and each one walks every object of the
    process: the host application's and SQLAlchemy's, not only the import's. Measured on
    a bare process (~135,000 objects) this was 7-8 µs of every imported row; frozen, it
    is ~0.3 µs, and it no longer grows with the host's heap. Garbage among the frozen
    objects is collected after the import. When something else froze objects already
    (``gc.get_freeze_count()``, e.g. a pre-forking server), or collection is disabled,
    nothing is changed: unfreezing would undo the other freeze.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _check_batch(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("batch_size", batch_size, "must be a whole number >= 1")


_BOM = "\ufeff"


def _without_bom(file: IO[str]) -> Iterator[str]:
    """The lines of ``file``, without the byte order mark an open file not read as
    ``utf-8-sig`` keeps at its start (a file opened by path drops it already)."""
    first = file.readline()
    if not isinstance(first, str):
        raise ValidationError("source", type(first).__name__, "must be a text file, not bytes")
    yield first.removeprefix(_BOM)
    yield from file


@contextlib.contextmanager
def _decoding(lines_read: Callable[[], int] = lambda: 0) -> Iterator[None]:
    """Turn a file that is not UTF-8 text into a ``ValidationError`` (the import stops;
    the batches before it stay written). ``lines_read`` tells how far reading got (text
    is decoded a block ahead of the lines handed out, so the bad byte may be further)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        read = lines_read()
        where = f" (reading stopped after line {read}; earlier batches stay written)"
        raise ValidationError(
            "file",
            exc.object[max(0, exc.start - 20) : exc.end + 20],
            f"is not UTF-8 text{where if read else ''}",
        ) from None


def _same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except ValueError:  # a NUL in a path: opening it fails with the reason
        return False


@contextlib.contextmanager
def _opened(
    source: Source, rejected_path: str | os.PathLike[str] | None, *, newline: str = ""
) -> Iterator[IO[str]]:
    """``source`` open for reading (a path is opened as UTF-8, with or without a BOM).

    ``newline`` is where lines end: any of ``\\n``, ``\\r\\n`` and ``\\r`` for CSV (the
    ``csv`` module's own handling), ``\\n`` alone for JSON Lines, where a ``\\r`` inside a
    line is JSON white space. Raises ``ValidationError`` when ``rejected_path`` is the file
    itself (it would be emptied while read) or the file cannot be read.
    """
    if rejected_path is not None and not isinstance(rejected_path, str | os.PathLike):
        raise ValidationError("rejected_path", rejected_path, "must be a file path")
    name = getattr(source, "name", None) if hasattr(source, "read") else source
    if (
        rejected_path is not None
        and isinstance(name, str | os.PathLike)
        and _same_path(name, rejected_path)
    ):
        raise ValidationError("rejected_path", os.fspath(rejected_path), "is the file read")
    if isinstance(source, io.IOBase) or hasattr(source, "read"):
        yield source  # type: ignore[misc]
        return
    if not isinstance(source, str | os.PathLike):
        raise ValidationError("source", source, "must be a file path or an open text file")
    try:
        # opened apart from the ``with`` below so that only opening errors are mapped
        file = open(source, newline=newline, encoding="utf-8-sig")  # noqa: SIM115
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValidationError("source", os.fspath(source), f"cannot be read ({reason})") from None
    with file:
        yield file
