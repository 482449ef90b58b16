"""A SQL clause reused by many statements, whose SQLAlchemy cache key is worked out once.

SQLAlchemy looks up the compiled SQL of a statement by a cache key it computes by walking
the whole statement on every execution. A user view adds the same permission scope (an
``OR`` of its owners, teams and a subquery of its shares) to every query, and walking it
again each time costs about as much as the rest of a lookup's cache key. The filter
compiler memoizes the clauses of such subtrees (:meth:`FilterCompiler._memoized`); wrapped
in :class:`FrozenClause`, their part of the cache key is computed on first use and then
reused. It is the part SQLAlchemy itself would compute (the wrapped clause never changes:
SQLAlchemy clauses are immutable), and the bound parameters are reported in the same order,
so the compiled statement is cached and its parameters are extracted as usual.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, Grouping
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = ["FrozenClause"]


class FrozenClause(ColumnElement[Any]):
    """``clause`` (in parentheses) with its cache key computed once.

    Raises nothing itself; a clause SQLAlchemy cannot cache stays uncacheable.
    """

    __visit_name__ = "crmkit_frozen_clause"
    inherit_cache = False
    # ``and_``/``or_`` look this up to flatten nested lists; a missing attribute would go
    # through the column comparator and raise (slowly) before defaulting to None
    operator = None
    _traverse_internals = [("clause", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, clause: ColumnElement[Any]) -> None:
        # parenthesized once, so that the clause reads the same anywhere it is placed
        self.clause: ColumnElement[Any] = Grouping(clause)
        self.type = clause.type
        self._key: tuple[Any, list[Any]] | None = None
        self._cacheable = True

    def self_group(self, against: Any = None) -> FrozenClause:
        """Already grouped: this clause goes anywhere as it is."""
        return self

    @property
    def _from_objects(self) -> list[Any]:
        return self.clause._from_objects

    def _copy_internals(self, **kw: Any) -> None:
        # a copy may hold other bound parameters (``params()``, adaptation): key it afresh
        super()._copy_internals(**kw)
        self._key = None
        self._cacheable = True

    def _gen_cache_key(self, anon_map: Any, bindparams: list[Any]) -> Any:
        if self._key is None:
            found = self.clause._generate_cache_key() if self._cacheable else None
            if found is None:  # not cacheable: let SQLAlchemy find that out again
                self._cacheable = False
                return self.clause._gen_cache_key(anon_map, bindparams)
            self._key = (found.key, list(found.bindparams))
        key, params = self._key
        bindparams.extend(params)
        return (FrozenClause, key)


@compiles(FrozenClause)
def _compile_frozen(element: FrozenClause, compiler: Any, **kw: Any) -> str:
    text: str = compiler.process(element.clause, **kw)
    return text
