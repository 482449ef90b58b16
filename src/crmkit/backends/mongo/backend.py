"""The MongoDB backend: one collection per entity type, on pymongo (or mongomock in tests).

Layout: each entity type has a collection named after ``Entity.collection`` (optionally with a
prefix); the document's ``_id`` is the entity id; :class:`~.convert.DocumentConverter` defines
the stored forms. :meth:`MongoBackend.create_schema` creates the lookup indexes (references,
emails, phones, domain ... from :func:`crmkit.entities.schema.indexed_fields`; arrays make
them multikey; a ``2dsphere`` index on each address's ``_geo`` point for ``within_km``) and
is idempotent. :meth:`MongoBackend.upgrade_schema` also brings documents written by an older
crmkit up to date (their ``_geo`` shadow).

What is atomic
--------------

- Every single-document write is atomic on every server: an update is
  ``replace({"_id": id, "version": expected}, document)``, so the version check and the
  write are one step and concurrent writers never lose an update (the loser gets
  ``ConflictError``).
- On a replica set or a sharded cluster (``mongos``), :meth:`MongoBackend.transaction` is a
  real multi-document transaction on a client session: all or nothing, isolated, durable.
  Nested transactions are savepoints, emulated inside the real transaction with the undo log
  below (MongoDB has no savepoints). A server-side error inside a transaction (a write
  conflict with a concurrent transaction) aborts the whole transaction, outer levels
  included: the rest of it raises ``BackendError`` and nothing is committed.
- On a standalone server (and mongomock) MongoDB has no multi-document transactions.
  ``transaction()`` then *emulates* all-or-nothing with a per-thread compensation log:
  each write records how to undo it, and an exception leaving the block undoes the block's
  writes in reverse order (delete what was inserted, restore what was replaced or deleted).
  Nested blocks are savepoints (positions in the log). This rollback is **not isolated**
  (other clients see the writes before the rollback removes them) and **not crash-safe**
  (if the process dies mid-transaction the writes made so far stay). An undo step never
  overwrites a record someone else changed since (it is conditional on the version this
  transaction wrote); a step that cannot be applied, or a lost connection during the
  rollback, raises :class:`RollbackError`, which lists exactly which writes are still in
  the database. ``add_many`` runs inside such a transaction, so a failed bulk insert either
  leaves nothing behind or names every record it left.

Errors: pymongo exceptions never escape. Duplicate keys and write conflicts become
``ConflictError``, documents MongoDB cannot store (too large, integers beyond 64 bits,
decimals beyond Decimal128) ``ValidationError``, everything else ``BackendError`` with the
driver exception chained as ``__cause__``.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any, Generic, NoReturn, TypeVar

import attrs
from bson.errors import BSONError
from pymongo import ASCENDING, GEOSPHERE, MongoClient, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)
from pymongo.errors import InvalidURI as InvalidURIError

from crmkit.entities import ENTITY_TYPES, Entity
from crmkit.entities.schema import indexed_fields
from crmkit.errors import BackendError, ConflictError, CRMError, NotFound, ValidationError
from crmkit.query import Expr, Query, Related, Relation, related_entity

from . import search
from .compile import FilterCompiler, FindPlan, compile_find, projection
from .convert import (
    GEO,
    DocumentConverter,
    geo_fields,
    geo_shadow_of_document,
    stale_geo_filter,
)
from .related_aggregate import aggregate_filter

__all__ = ["MongoBackend", "MongoStore", "RollbackError", "UndoneWrite", "open_backend"]

E = TypeVar("E", bound=Entity)
Document = dict[str, Any]

_DUPLICATE_KEY = 11000
_WRITE_CONFLICT = 112
_ID_CHUNK = 10_000  # ids per $in (a filter document must stay far below 16 MB)
_PREFIX = re.compile(r"[A-Za-z0-9_.-]*\Z")

# mongomock is not thread-safe: it runs "find the document, then modify it" as two steps
# without a lock (two threads could both pass a version check), and a reader can see a
# document half-way through its replacement. A real server does both atomically.
# Serializing every mongomock operation restores the guarantees the backend relies on.
_MOCK_LOCK = threading.RLock()


# --- errors -------------------------------------------------------------------------------


@attrs.frozen
class UndoneWrite:
    """A write of a failed transaction that is still in the database.

    ``action`` is what the transaction did: ``"inserted"``, ``"replaced"`` or ``"deleted"``;
    ``reason`` says why undoing it failed.
    """

    collection: str
    id: str
    action: str
    reason: str

    def __str__(self) -> str:
        return f"{self.collection} {self.id!r} ({self.action}; {self.reason})"


class RollbackError(BackendError):
    """A transaction failed and rolling it back failed too (emulated transactions only).

    ``not_undone`` lists every write of the transaction that is still in the database; the
    error that made the transaction fail is chained as ``__cause__``.
    """

    def __init__(self, not_undone: Sequence[UndoneWrite], cause: BaseException) -> None:
        self.not_undone = tuple(not_undone)
        listed = "; ".join(str(w) for w in self.not_undone[:20])
        more = len(self.not_undone) - 20
        if more > 0:
            listed += f"; and {more} more"
        super().__init__(
            f"the transaction failed ({cause!r}) and {len(self.not_undone)} of its writes "
            f"could not be undone: {listed}"
        )


def _translate(exc: BaseException, entity: type[Entity]) -> CRMError:
    """The crmkit error for a driver exception."""
    name = entity.__name__
    if isinstance(exc, DuplicateKeyError) or (
        isinstance(exc, BulkWriteError)
        and any(e.get("code") == _DUPLICATE_KEY for e in exc.details.get("writeErrors", ()))
    ):
        return ConflictError(f"{name}: a record with that id already exists ({exc})")
    if isinstance(exc, BSONError | OverflowError):
        # DocumentTooLarge is an InvalidDocument, a BSONError
        return ValidationError(entity.collection, name, f"cannot be stored in MongoDB ({exc})")
    if isinstance(exc, OperationFailure) and (
        exc.code == _WRITE_CONFLICT or exc.has_error_label("TransientTransactionError")
    ):
        return ConflictError(f"{name}: the write conflicted with a concurrent transaction ({exc})")
    return BackendError(f"MongoDB failed on {entity.collection}: {exc}")


_DRIVER_ERRORS = (PyMongoError, BSONError, OverflowError)


# --- transactions -------------------------------------------------------------------------


@attrs.frozen
class _Inserted:
    store: MongoStore[Any]
    ids: tuple[tuple[str, int], ...]  # (id, version written)


@attrs.frozen
class _Replaced:
    store: MongoStore[Any]
    id: str
    previous: Document
    written: int


@attrs.frozen
class _Deleted:
    store: MongoStore[Any]
    id: str
    previous: Document


_Undo = _Inserted | _Replaced | _Deleted


@attrs.define
class _Transaction:
    """The current thread's transaction: its session (real transactions) and undo log."""

    session: ClientSession | None
    log: list[_Undo] = attrs.field(factory=list)
    aborted: bool = False


class MongoBackend:
    """crmkit storage in one MongoDB database.

    ``database`` is a ``pymongo.database.Database`` (or a mongomock one). ``prefix`` is put
    before every collection name; ``transactions`` forces real multi-document transactions
    on (``True``) or off (``False``); by default they are used when the server supports them
    (replica set or ``mongos``). ``owns_client`` makes :meth:`close` close the client.
    ``create_schema`` (default) creates the indexes now.

    Raises ``ValidationError`` for a bad prefix and ``BackendError`` when the server cannot
    be reached while creating indexes.
    """

    name = "mongo"

    def __init__(
        self,
        database: Any,
        *,
        prefix: str = "",
        create_schema: bool = True,
        transactions: bool | None = None,
        owns_client: bool = False,
    ) -> None:
        if not isinstance(prefix, str) or not _PREFIX.match(prefix) or prefix.startswith("system"):
            raise ValidationError(
                "prefix", prefix, "must be letters, digits, '_', '-' or '.' (not 'system...')"
            )
        if transactions is not None and not isinstance(transactions, bool):
            raise ValidationError("transactions", transactions, "must be True, False or None")
        self.database = database
        self.prefix = prefix
        self.converter = DocumentConverter()
        self.is_mock = type(database).__module__.startswith("mongomock")
        self._transactions = False if self.is_mock else transactions
        self._owns_client = owns_client
        self._stores: dict[type[Entity], MongoStore[Any]] = {}
        self._local = threading.local()
        self._closed = False
        if create_schema:
            self.create_schema()

    def __repr__(self) -> str:
        return f"<MongoBackend {self.database.name!r} prefix={self.prefix!r}>"

    def store(self, entity: type[E]) -> MongoStore[E]:
        """The store of ``entity``'s records (its collection)."""
        store = self._stores.get(entity)
        if store is None:
            store = self._stores[entity] = MongoStore(self, entity)
        return store

    # --- schema ---------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create every collection's lookup indexes if missing (idempotent).

        Raises ``BackendError`` when the server refuses (for example an index of the same
        name with other options exists already).
        """
        for entity in dict.fromkeys([*ENTITY_TYPES.values(), *self._stores]):
            self.store(entity)._create_indexes()

    def upgrade_schema(self, batch_size: int = 1000) -> None:
        """Bring a database written by an older crmkit up to this version (idempotent).

        Creates the missing indexes (:meth:`create_schema`), drops the latitude index older
        versions used for ``within_km`` on real servers (the ``2dsphere`` index replaces
        it), and adds the current ``_geo`` shadow to every stored document that has
        coordinates but no shadow or an older one, ``batch_size`` documents per read and
        per bulk write. Documents are updated only at the version read, so a record
        rewritten meanwhile (which gets its shadow from the writer) is left alone. Safe to
        run again, and while others read and write. Raises ``BackendError``.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be a whole number >= 1")
        self.create_schema()
        for entity in dict.fromkeys([*ENTITY_TYPES.values(), *self._stores]):
            store = self.store(entity)
            store._drop_legacy_indexes()
            store._backfill_geo(batch_size)

    # --- transactions ---------------------------------------------------------------------

    def _current(self) -> _Transaction | None:
        tx: _Transaction | None = getattr(self._local, "tx", None)
        return tx

    def supports_transactions(self) -> bool:
        """True when this backend uses real multi-document transactions (checked once).

        Raises ``BackendError`` when the server cannot be asked.
        """
        if self._transactions is None:
            admin = self.database.client.admin
            try:
                try:
                    hello = admin.command("hello")
                except OperationFailure:  # servers before 4.4.2 only know the old name
                    hello = admin.command("isMaster")
            except _DRIVER_ERRORS as exc:
                raise BackendError(f"cannot reach MongoDB: {exc}") from exc
            self._transactions = bool(
                hello.get("logicalSessionTimeoutMinutes") is not None
                and (hello.get("setName") or hello.get("msg") == "isdbgrid")
            )
        return self._transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested blocks are savepoints (see the module docstring for what
        is atomic on which server).

        Raises ``RollbackError`` when an emulated rollback cannot undo every write, and
        ``BackendError``/``ConflictError`` when a real transaction cannot commit.
        """
        tx = self._current()
        if tx is not None:
            mark = len(tx.log)
            try:
                yield
            except BaseException as exc:
                self._undo(tx, mark, exc)
                raise
            return
        session = self._start_session()
        tx = self._local.tx = _Transaction(session)
        try:
            try:
                yield
            except BaseException as exc:
                self._local.tx = None
                if session is None:
                    self._undo(tx, 0, exc)
                else:
                    self._abort(session)
                raise
            self._local.tx = None
            if session is not None:
                self._commit(tx, session)
        finally:
            self._local.tx = None
            if session is not None:
                session.end_session()

    def _start_session(self) -> ClientSession | None:
        if not self.supports_transactions():
            return None
        try:
            session: ClientSession = self.database.client.start_session()
            session.start_transaction()
        except _DRIVER_ERRORS as exc:
            raise BackendError(f"cannot start a MongoDB transaction: {exc}") from exc
        return session

    @staticmethod
    def _abort(session: ClientSession) -> None:
        # the server aborts an unfinished transaction on its own (timeout) if this fails
        with suppress(*_DRIVER_ERRORS):
            session.abort_transaction()

    def _commit(self, tx: _Transaction, session: ClientSession) -> None:
        if tx.aborted:
            self._abort(session)
            raise BackendError(
                "the MongoDB transaction was aborted by the server after an earlier error; "
                "nothing in it was committed"
            )
        for attempt in range(3):
            try:
                session.commit_transaction()
                return
            except _DRIVER_ERRORS as exc:
                if (
                    isinstance(exc, PyMongoError)
                    and exc.has_error_label("UnknownTransactionCommitResult")
                    and attempt < 2
                ):
                    continue  # commitTransaction is idempotent: retrying is safe
                if isinstance(exc, PyMongoError) and exc.has_error_label(
                    "TransientTransactionError"
                ):
                    raise ConflictError(
                        f"the transaction conflicted with another one and was not committed ({exc})"
                    ) from exc
                raise BackendError(f"the MongoDB transaction could not commit: {exc}") from exc

    def _session(self) -> dict[str, Any]:
        """Keyword arguments that put an operation in the current real transaction."""
        tx = self._current()
        if tx is None or tx.session is None:
            return {}
        if tx.aborted:
            raise BackendError(
                "the MongoDB transaction was aborted by the server after an earlier error; "
                "nothing in it will be committed"
            )
        return {"session": tx.session}

    def _failed(self, exc: BaseException, entity: type[Entity]) -> NoReturn:
        """Translate a driver error; inside a real transaction the server aborted it."""
        tx = self._current()
        if tx is not None and tx.session is not None:
            tx.aborted = True
        raise _translate(exc, entity) from exc

    def _serialized(self) -> AbstractContextManager[Any]:
        """Held around each driver call on mongomock (see ``_MOCK_LOCK``); a no-op else."""
        return _MOCK_LOCK if self.is_mock else nullcontext()

    def _undo(self, tx: _Transaction, mark: int, cause: BaseException) -> None:
        """Undo the log after ``mark`` in reverse; raise ``RollbackError`` for what is left."""
        if tx.session is not None and tx.aborted:
            del tx.log[mark:]
            return  # the server discards the whole transaction anyway
        left: list[UndoneWrite] = []
        while len(tx.log) > mark:
            step = tx.log.pop()
            left.extend(step.store._undo(step, tx.session))
        if left:
            raise RollbackError(left, cause) from cause

    def _log(self, step: _Undo) -> None:
        tx = self._current()
        if tx is not None:
            tx.log.append(step)

    def close(self) -> None:
        """Close the client if this backend opened it (a URL); idempotent."""
        if self._owns_client and not self._closed:
            self._closed = True
            try:
                self.database.client.close()
            except _DRIVER_ERRORS as exc:
                raise BackendError(f"closing the MongoDB client failed: {exc}") from exc


class MongoStore(Generic[E]):
    """The records of one entity type, in one collection."""

    def __init__(self, backend: MongoBackend, entity: type[E]) -> None:
        self._backend = backend
        self.entity = entity
        self.collection: Collection[Document] = backend.database.get_collection(
            backend.prefix + entity.collection
        )
        self._conv = backend.converter
        # within_km uses the 2dsphere index ($geoWithin) on real servers only: mongomock
        # accepts the index but does not implement $geoWithin (see compile.op_within_km)
        self._geo_index = not backend.is_mock
        self._compiler = FilterCompiler(
            entity,
            self._related_keys,
            geo_index=self._geo_index,
            aggregates=self._related_aggregate,
        )

    def __repr__(self) -> str:
        return f"<MongoStore {self.collection.name}>"

    def _create_indexes(self) -> None:
        try:
            for name in indexed_fields(self.entity):
                self.collection.create_index([(name, ASCENDING)])
            for a in attrs.fields(self.entity):  # external_ids.<source> lookups (imports)
                if a.metadata.get("kind") == "text_mapping":
                    self.collection.create_index([(f"{a.name}.$**", ASCENDING)])
            for name in geo_fields(self.entity):  # within_km's pre-filter
                self.collection.create_index([(f"{GEO}.{name}.point", GEOSPHERE)])
                if not self._geo_index:  # the bounding box used instead on mongomock
                    self.collection.create_index([(f"{GEO}.{name}.lat", ASCENDING)])
            search.create_text_index(self.collection, self.entity.collection)
        except _DRIVER_ERRORS as exc:
            raise BackendError(
                f"cannot create the indexes of {self.collection.name}: {exc}"
            ) from exc

    def _drop_legacy_indexes(self) -> None:
        """Drop the ``_geo`` latitude index of older versions where it is no longer used."""
        if not self._geo_index:
            return
        try:
            with self._backend._serialized():
                existing = self.collection.index_information()
                for name in geo_fields(self.entity):
                    legacy = f"{GEO}.{name}.lat_1"
                    if legacy in existing:
                        self.collection.drop_index(legacy)
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, self.entity)

    def _backfill_geo(self, batch_size: int) -> int:
        """Add the current ``_geo`` shadow to documents lacking it; the number updated.

        Walks the stale documents in ``_id`` order (so invalid coordinates, which get no
        shadow and stay stale, are passed over rather than read again)."""
        stale = stale_geo_filter(self.entity)
        if stale is None:
            return 0
        fields = dict.fromkeys([*geo_fields(self.entity), "version"], 1)
        updated = 0
        after: Any = None
        while True:
            where = stale if after is None else {"$and": [stale, {"_id": {"$gt": after}}]}
            try:
                with self._backend._serialized():
                    docs = list(
                        self.collection.find(
                            where, fields, sort=[("_id", ASCENDING)], limit=batch_size
                        )
                    )
                    changes = []
                    for doc in docs:
                        shadow = geo_shadow_of_document(self.entity, doc)
                        if shadow:
                            at = {"_id": doc["_id"], "version": doc.get("version")}
                            new = {f"{GEO}.{name}": value for name, value in shadow.items()}
                            changes.append((at, {"$set": new}))
                    if changes and self._backend.is_mock:
                        # mongomock's bulk_write does not accept current pymongo operations
                        for at, change in changes:
                            updated += self.collection.update_one(at, change).modified_count
                    elif changes:
                        ops = [UpdateOne(at, change) for at, change in changes]
                        updated += self.collection.bulk_write(ops, ordered=False).modified_count
            except _DRIVER_ERRORS as exc:
                self._backend._failed(exc, self.entity)
            if len(docs) < batch_size:
                return updated
            after = docs[-1]["_id"]

    # --- writes ---------------------------------------------------------------------------

    def insert(self, entities: Sequence[E]) -> None:
        """Store new records, all or none; an existing id raises ``ConflictError``."""
        if not entities:
            return
        docs = [self._conv.to_document(e) for e in entities]  # ValidationError: nothing written
        if len(docs) > 1 and self._backend._current() is None:
            with self._backend.transaction():
                self._insert(docs)
        else:
            self._insert(docs)

    def _insert(self, docs: list[Document]) -> None:
        backend = self._backend
        kw = backend._session()
        if kw:
            # a server error aborts a real transaction (savepoints included): find
            # duplicates with a read instead of letting the insert fail
            self._refuse_existing([d["_id"] for d in docs], kw)
        try:
            with backend._serialized():
                if len(docs) == 1:
                    self.collection.insert_one(docs[0], **kw)
                else:
                    self.collection.insert_many(docs, ordered=True, **kw)
        except DuplicateKeyError as exc:
            backend._failed(exc, self.entity)  # a single insert that wrote nothing
        except BulkWriteError as exc:
            # ordered: exactly the documents before the first error were written
            written = exc.details.get("nInserted", 0)
            self._log_inserted(docs[:written])
            backend._failed(exc, self.entity)
        except _DRIVER_ERRORS as exc:
            # outcome unknown (connection lost...): log all, the undo deletes those present
            self._log_inserted(docs)
            backend._failed(exc, self.entity)
        self._log_inserted(docs)

    def _log_inserted(self, docs: Sequence[Document]) -> None:
        if docs:
            self._backend._log(_Inserted(self, tuple((d["_id"], d["version"]) for d in docs)))

    def _refuse_existing(self, ids: list[str], kw: dict[str, Any]) -> None:
        found: list[str] = []
        try:
            for chunk in _chunks(ids, _ID_CHUNK):
                found += [
                    d["_id"]
                    for d in self.collection.find({"_id": {"$in": chunk}}, {"_id": 1}, **kw)
                ]
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, self.entity)
        if found or len(set(ids)) != len(ids):
            raise ConflictError(
                f"{self.entity.__name__}: a record with that id already exists "
                f"({(found or ids)[0]!r})"
            )

    def replace(self, entity: E, expected_version: int) -> None:
        """Overwrite the record if it is still at ``expected_version`` (one atomic step).

        Raises ``NotFound`` when absent and ``ConflictError`` when the version differs.
        """
        assert entity.id is not None
        doc = self._conv.to_document(entity)
        where = _key(entity.id, expected_version)
        backend = self._backend
        kw = backend._session()
        logging = backend._current() is not None
        try:
            with backend._serialized():
                if logging:
                    before = self.collection.find_one_and_replace(where, doc, **kw)
                    matched = before is not None
                else:
                    matched = self.collection.replace_one(where, doc, **kw).matched_count > 0
        except _DRIVER_ERRORS as exc:
            backend._failed(exc, self.entity)
        if not matched:
            self._missing_or_stale(entity.id, expected_version)
        if logging:
            assert before is not None
            backend._log(_Replaced(self, entity.id, before, entity.version))

    def delete(self, id: str, expected_version: int | None = None) -> None:
        """Remove a record (only at ``expected_version`` when given).

        Raises ``NotFound`` when absent and ``ConflictError`` when the version differs.
        """
        if not isinstance(id, str):
            raise NotFound(self.entity.collection, id)
        where = _key(id, expected_version)
        backend = self._backend
        kw = backend._session()
        logging = backend._current() is not None
        try:
            with backend._serialized():
                if logging:
                    before = self.collection.find_one_and_delete(where, **kw)
                    matched = before is not None
                else:
                    matched = self.collection.delete_one(where, **kw).deleted_count > 0
        except _DRIVER_ERRORS as exc:
            backend._failed(exc, self.entity)
        if not matched:
            self._missing_or_stale(id, expected_version)
        if logging:
            assert before is not None
            backend._log(_Deleted(self, id, before))

    def _missing_or_stale(self, id: str, expected_version: int | None) -> NoReturn:
        try:
            current = self.collection.find_one(_key(id), {"version": 1}, **self._backend._session())
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, self.entity)
        if current is None:
            raise NotFound(self.entity.collection, id)
        raise ConflictError(
            f"{self.entity.__name__} {id!r} is at version {current.get('version')}, "
            f"not {expected_version}"
        )

    # --- rollback -------------------------------------------------------------------------

    def _undo(self, step: _Undo, session: ClientSession | None) -> list[UndoneWrite]:
        """Apply one undo step; return the writes it could not undo."""
        kw: dict[str, Any] = {"session": session} if session is not None else {}
        name = self.collection.name
        try:
            with self._backend._serialized():
                if isinstance(step, _Inserted):
                    return self._undo_inserted(step, kw)
                if isinstance(step, _Replaced):
                    where = _key(step.id, step.written)
                    if self.collection.replace_one(where, step.previous, **kw).matched_count:
                        return []
                    return [UndoneWrite(name, step.id, "replaced", "changed or deleted since")]
                try:
                    self.collection.insert_one(step.previous, **kw)
                except DuplicateKeyError:
                    return [UndoneWrite(name, step.id, "deleted", "an id reused since")]
                return []
        except _DRIVER_ERRORS as exc:
            reason = f"undo failed: {exc}"
            if isinstance(step, _Inserted):
                return [UndoneWrite(name, i, "inserted", reason) for i, _ in step.ids]
            action = "replaced" if isinstance(step, _Replaced) else "deleted"
            return [UndoneWrite(name, step.id, action, reason)]

    def _undo_inserted(self, step: _Inserted, kw: dict[str, Any]) -> list[UndoneWrite]:
        by_version: dict[int, list[str]] = {}
        for id, version in step.ids:
            by_version.setdefault(version, []).append(id)
        left: list[UndoneWrite] = []
        for version, ids in by_version.items():
            for chunk in _chunks(ids, _ID_CHUNK):
                where = {"_id": {"$in": chunk}, "version": {"$eq": version}}
                deleted = self.collection.delete_many(where, **kw).deleted_count
                if deleted < len(chunk):
                    # absent ones never got written (or were deleted since): undone either way
                    changed = self.collection.find({"_id": {"$in": chunk}}, {"_id": 1}, **kw)
                    left += [
                        UndoneWrite(self.collection.name, d["_id"], "inserted", "changed since")
                        for d in changed
                    ]
        return left

    # --- reads ----------------------------------------------------------------------------

    def get(self, id: str) -> E:
        """The record with ``id``; raises ``NotFound``."""
        if not isinstance(id, str):
            raise NotFound(self.entity.collection, id)
        try:
            with self._backend._serialized():
                doc = self.collection.find_one(_key(id), projection(), **self._backend._session())
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, self.entity)
        if doc is None:
            raise NotFound(self.entity.collection, id)
        return self._conv.from_document(self.entity, doc)

    def get_many(self, ids: Sequence[str]) -> list[E]:
        """The records among ``ids`` that exist (any order)."""
        wanted = [i for i in dict.fromkeys(ids) if isinstance(i, str)]
        out: list[E] = []
        kw = self._backend._session()
        for chunk in _chunks(wanted, _ID_CHUNK):
            try:
                with self._backend._serialized():
                    docs = list(self.collection.find({"_id": {"$in": chunk}}, projection(), **kw))
            except _DRIVER_ERRORS as exc:
                self._backend._failed(exc, self.entity)
            out += self._conv.from_documents(self.entity, docs)
        return out

    def _cursor(self, plan: FindPlan, batch_size: int | None = None) -> Any:
        kw = self._backend._session()
        if plan.needs_pipeline:
            if batch_size:
                kw["batchSize"] = batch_size
            if not kw.get("session"):
                kw["allowDiskUse"] = True  # a large sort may spill (not inside transactions)
            return self.collection.aggregate(plan.pipeline(), **kw)
        if batch_size:
            kw["batch_size"] = batch_size
        return self.collection.find(
            plan.filter,
            projection(),
            sort=plan.sort,
            skip=plan.skip,
            limit=plan.limit or 0,
            **kw,
        )

    def plan(self, query: Query) -> FindPlan:
        """How :meth:`find` runs ``query`` (for inspection and tests)."""
        return compile_find(
            self.entity,
            query,
            self._related_keys,
            geo_index=self._geo_index,
            aggregates=self._related_aggregate,
        )

    def _related_keys(self, rel: Relation, where: dict[str, Any]) -> list[Any]:
        """``F.related`` support: the link values (ids for "belongs to", else the values of
        ``rel.field``, list elements included) of the related documents matching ``where``."""
        store = self._backend.store(related_entity(rel))
        field = "_id" if rel.belongs else rel.field
        keys: set[Any] = set()
        try:
            with self._backend._serialized():
                found = store.collection.find(where, {field: 1}, **self._backend._session())
                for doc in found:
                    value = doc.get(field)
                    if isinstance(value, list):
                        keys.update(value)
                    elif value is not None:
                        keys.add(value)
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, store.entity)
        return sorted(keys)

    def _related_aggregate(self, rel: Relation, node: Related) -> dict[str, Any]:
        """``F.related(...).count() > 2`` support: the query document of the records whose
        related documents pass (see :mod:`.related_aggregate`)."""
        return aggregate_filter(self._backend.store(related_entity(rel)), rel, node)

    def find(self, query: Query) -> list[E]:
        """Records matching ``query.where``, sorted and windowed by the server."""
        if query.limit == 0:
            return []
        plan = self.plan(query)
        try:
            with self._backend._serialized():
                docs = list(self._cursor(plan))
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, self.entity)
        return self._conv.from_documents(self.entity, docs)

    def iterate(self, query: Query, batch_size: int = 1000) -> Iterator[E]:
        """Like :meth:`find`, streamed from a server cursor ``batch_size`` documents at a time."""
        if query.limit == 0:
            return
        plan = self.plan(query)
        try:
            with self._backend._serialized():
                cursor = self._cursor(plan, batch_size)
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, self.entity)
        try:
            while True:
                try:
                    with self._backend._serialized():
                        doc = next(cursor, None)
                except _DRIVER_ERRORS as exc:
                    self._backend._failed(exc, self.entity)
                if doc is None:
                    return
                yield self._conv.from_document(self.entity, doc)
        finally:
            with suppress(*_DRIVER_ERRORS):  # the server reaps abandoned cursors anyway
                cursor.close()

    def count(self, where: Expr | None) -> int:
        """How many records match ``where`` (counted by the server)."""
        query = self._compiler.compile(where)
        try:
            with self._backend._serialized():
                n: int = self.collection.count_documents(query, **self._backend._session())
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, self.entity)
        return n

    def search(self, terms: Sequence[str], where: Expr | None, limit: int) -> list[tuple[E, float]]:
        """Ranked text search by the server's text index (see :mod:`.search`)."""
        return search.search(self, terms, where, limit)

    def aggregate(self, where: Expr | None, group_by: Any, metrics: Any) -> list[dict[str, Any]]:
        """Groups and metrics computed by the server (see :mod:`.aggregate`)."""
        from crmkit.backends.mongo import aggregate

        pipeline = aggregate.run(self, where, group_by, metrics)
        try:
            with self._backend._serialized():
                docs = list(self.collection.aggregate(pipeline, **self._backend._session()))
        except _DRIVER_ERRORS as exc:
            self._backend._failed(exc, self.entity)
        return aggregate.read_rows(self.entity, docs, group_by, metrics)


def _key(id: str, version: int | None = None) -> Document:
    """The filter selecting one record (at one version).

    Plain equality is safe here: both values are checked to be a ``str`` and an ``int``,
    never a mapping, so neither can be read as an operator. (An ``$eq`` spec would not do:
    mongomock copies it into the ``_id`` of a replacement document.)
    """
    if not isinstance(id, str):
        raise ValidationError("id", id, "must be text")
    where: Document = {"_id": id}
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValidationError("version", version, "must be a whole number")
        where["version"] = version
    return where


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# --- opening ------------------------------------------------------------------------------


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


class _Opener:
    """The ``mongodb`` / ``mongomock`` entry point (see :func:`open_backend`)."""

    def __call__(
        self,
        target: Any,
        /,
        *,
        database: str | None = None,
        prefix: str = "",
        create_schema: bool = True,
        transactions: bool | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> MongoBackend:
        """Open a backend on a URL or an existing ``Database``.

        - ``mongodb://host:port/dbname`` (or ``mongodb+srv://``): a new ``MongoClient``
          (``client_options`` are passed to it), closed by ``crm.close()``;
        - ``mongomock://`` or ``mongomock:///dbname``: a new, empty in-memory mongomock
          server (needs the ``mongomock`` package), for tests;
        - a ``pymongo.database.Database`` or mongomock ``Database``: used as it is; its
          client is the caller's and stays open.

        ``database`` names the database when the URL does not; ``prefix``,
        ``create_schema`` and ``transactions`` are :class:`MongoBackend` options.
        Raises ``ValidationError`` for a bad URL or option, ``BackendError`` when the server
        cannot be reached or mongomock is not installed.
        """

        def backend(db: Any, owns_client: bool) -> MongoBackend:
            return MongoBackend(
                db,
                prefix=prefix,
                create_schema=create_schema,
                transactions=transactions,
                owns_client=owns_client,
            )

        if not isinstance(target, str):
            if not self.accepts(target):
                raise ValidationError("target", target, "is not a pymongo (or mongomock) Database")
            if client_options:
                raise ValidationError(
                    "client_options", client_options, "only apply when crmkit opens the client"
                )
            if database is not None:
                target = target.client.get_database(database)
            return backend(target, False)
        scheme = target.partition("://")[0].lower()
        if scheme == "mongomock":
            return backend(_open_mock(target, database), True)
        if scheme not in ("mongodb", "mongodb+srv"):
            raise ValidationError("url", target, "is not a mongodb:// or mongomock:// URL")
        try:
            client: MongoClient[Document] = MongoClient(
                target, tz_aware=True, **dict(client_options or {})
            )
        except (ConfigurationError, InvalidURIError, TypeError, ValueError) as exc:
            raise ValidationError(
                "url", _redact(target), f"is not a usable MongoDB URL ({exc})"
            ) from None
        try:
            db = client.get_default_database(default=database)
        except ConfigurationError:
            client.close()
            raise ValidationError(
                "url",
                _redact(target),
                "names no database: use mongodb://host/dbname or database='...'",
            ) from None
        try:
            return backend(db, True)
        except BaseException:
            client.close()
            raise

    @staticmethod
    def accepts(target: Any) -> bool:
        """True for a ``pymongo.database.Database`` or a mongomock ``Database``."""
        if isinstance(target, Database):
            return True
        cls = type(target)
        return cls.__module__.startswith("mongomock") and cls.__name__ == "Database"


def _open_mock(url: str, database: str | None) -> Any:
    try:
        import mongomock
    except ImportError as exc:
        raise BackendError(
            "mongomock:// needs the mongomock package (pip install mongomock)"
        ) from exc
    parts = urllib.parse.urlsplit(url)
    name = database or parts.path.lstrip("/") or "crmkit"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,63}", name):
        raise ValidationError("database", name, "is not a valid database name")
    return mongomock.MongoClient().get_database(name)


#: The ``crmkit.backends`` entry point for ``mongodb://``, ``mongodb+srv://`` and
#: ``mongomock://``; ``open_backend.accepts(obj)`` tells :func:`crmkit.connect` whether it can
#: use an existing connection object (a pymongo ``Database``).
open_backend = _Opener()
