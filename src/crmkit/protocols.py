"""The contract between crmkit and a storage backend.

A backend stores entities and translates queries; it holds no business rule. crmkit's
:class:`crmkit.repository.Repository` does everything else (ids, versions, timestamps,
normalization, validation, permissions, events) and calls a :class:`Store` per entity type.

To write a backend, implement :class:`Backend` and :class:`Store`, register a factory
under the ``crmkit.backends`` entry-point group, and run the shipped conformance suite
(:mod:`crmkit.testing.conformance`) against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from crmkit.entities import Entity
from crmkit.query import Expr, Query

if TYPE_CHECKING:
    from crmkit.aggregation import Group, Metric

__all__ = ["Backend", "BackendFactory", "Store"]

E = TypeVar("E", bound=Entity)


@runtime_checkable
class Store(Protocol[E]):
    """Storage of one entity type. Every method raises only crmkit errors.

    Entities passed in are complete and valid: ids, versions and timestamps are already set.
    Filters arrive bound (:func:`crmkit.query.bind`): only the operators ``eq ne lt le gt ge
    in contains icontains startswith exists``, values already of the field's stored type.
    """

    entity: type[E]

    def insert(self, entities: Sequence[E]) -> None:
        """Store new entities, all or none; an existing id raises ``ConflictError``."""
        ...

    def get(self, id: str) -> E:
        """Return the stored entity; raises ``NotFound``."""
        ...

    def get_many(self, ids: Sequence[str]) -> list[E]:
        """Return the stored entities among ``ids`` (missing ids are left out), in any order."""
        ...

    def replace(self, entity: E, expected_version: int) -> None:
        """Overwrite the record with ``entity.id`` if its stored version is ``expected_version``.

        Raises ``NotFound`` when absent and ``ConflictError`` when the version differs; the
        check and the write are one atomic step (no lost update between concurrent writers).
        """
        ...

    def delete(self, id: str, expected_version: int | None = None) -> None:
        """Remove a record (only at ``expected_version`` when given).

        Raises ``NotFound`` when absent and ``ConflictError`` when the version differs.
        """
        ...

    def find(self, query: Query) -> list[E]:
        """Records matching ``query.where`` in ``query.order``, windowed by limit/offset."""
        ...

    def iterate(self, query: Query, batch_size: int = 1000) -> Iterator[E]:
        """Like :meth:`find` but streams in batches, in bounded memory."""
        ...

    def count(self, where: Expr | None) -> int:
        """How many records match ``where``."""
        ...

    def aggregate(
        self, where: Expr | None, group_by: Sequence[Group], metrics: Sequence[Metric]
    ) -> list[dict[str, Any]]:
        """One row per group of the records matching ``where``, computed by the database.

        Each row maps every group's ``name`` to its value (``None`` for records without
        one; truncated dates and datetimes as the :class:`datetime.date` starting the UTC
        period) and every metric's ``name`` to its value: ``count`` (records, or records
        whose path is set), ``sum`` (exact: ``Decimal``, ``int`` or ``timedelta``; ``None`` or
        zero when nothing is set), ``min`` and ``max`` (typed like the field; ``None`` when
        nothing is set). Metrics arrive checked (:func:`crmkit.aggregation.check_spec`);
        ``avg`` never reaches a backend. Rows may come in any order.
        """
        ...

    def search(self, terms: Sequence[str], where: Expr | None, limit: int) -> list[tuple[E, float]]:
        """Ranked text search of a collection in :data:`crmkit.textsearch.TEXT_FIELDS`.

        ``terms`` are lower-case words (:func:`crmkit.textsearch.query_terms`), to be used as
        literals; a record matches when a text field contains any of them (stemmed, English)
        and ``where`` holds. Returns at most ``limit`` (>= 1) ``(record, score)`` pairs, best
        first (ties in an order of the backend's choosing); a higher score is a better match
        and a title match outranks a body match. Scores compare only within one result.
        Other collections raise ``ValidationError``.
        """
        ...


@runtime_checkable
class Backend(Protocol):
    """A storage engine holding one :class:`Store` per entity type."""

    #: Short name, such as ``"memory"``, ``"sql"`` or ``"mongo"``.
    name: str

    def store(self, entity: type[E]) -> Store[E]:
        """The store of ``entity``'s records."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing scope: commit on normal exit, roll back on exception.

        Nested use is a savepoint: an exception leaving the inner block undoes only its
        writes. Backends that cannot roll back across records document what is atomic.
        """
        ...

    def create_schema(self) -> None:
        """Create tables/collections/indexes if missing (idempotent)."""
        ...

    def close(self) -> None:
        """Release connections and files. Idempotent."""
        ...


class BackendFactory(Protocol):
    """What a ``crmkit.backends`` entry point loads: ``factory(url, **options) -> Backend``."""

    def __call__(self, url: str, /, **options: Any) -> Backend: ...


T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split ``items`` into lists of at most ``size``."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
