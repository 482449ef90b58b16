"""Survivorship: which value each field of a merged record keeps.

:func:`survive` folds duplicates into a survivor field by field, following a rule per
field (plain names, so a rule set is readable and storable as JSON):

- ``"non_empty"`` (the default): the survivor's value, or else the first non-empty value
  among the duplicates, in the order given;
- ``"most_recent"``: the non-empty value of the most recently updated record;
- ``"most_complete"``: the value of the record with the most non-empty fields;
- ``"survivor"``: the survivor's value, even when empty;
- ``"union"``: every value of every record, survivor's first, without repeats (lists such
  as ``emails``, ``phones``, ``tags``; for mappings such as ``custom`` the keys of all
  records, the survivor's value winning on a shared key);
- :class:`Override` ``(value)``: exactly this value.

Storage fields (``id``, ``version``, ``created_at``, ``updated_at``) always stay the
survivor's. The result is validated like any other entity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs

from crmkit.entities import Account, Contact, Entity, FrozenDict
from crmkit.errors import ValidationError

__all__ = [
    "DEFAULT_SURVIVORSHIP",
    "STRATEGIES",
    "Override",
    "SurvivorshipRules",
    "default_survivorship",
    "survive",
]

E = TypeVar("E", bound=Entity)

#: The strategy names a survivorship rule may use.
STRATEGIES: Final = ("non_empty", "most_recent", "most_complete", "survivor", "union")
_STORAGE: Final = frozenset({"id", "version", "created_at", "updated_at"})


@attrs.frozen
class Override:
    """A survivorship rule that sets a field to exactly ``value``.

    >>> Override("CTO").value
    'CTO'
    """

    value: Any


#: Per field, a strategy name or an :class:`Override`.
SurvivorshipRules = Mapping[str, "str | Override"]

#: Fields merged as ``"union"`` unless the caller says otherwise; every other field is
#: ``"non_empty"``.
DEFAULT_SURVIVORSHIP: Final[Mapping[str, str]] = {
    "emails": "union",
    "phones": "union",
    "tags": "union",
    "custom": "union",
    "external_ids": "union",
}


def default_survivorship(entity: type[Entity]) -> dict[str, str | Override]:
    """The complete default rule set for ``entity`` (every field named)."""
    return {
        a.name: DEFAULT_SURVIVORSHIP.get(a.name, "non_empty")
        for a in attrs.fields(entity)
        if a.name not in _STORAGE
    }


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, tuple | Mapping) and not value)


def _filled(record: Entity) -> int:
    return sum(
        not _empty(getattr(record, a.name))
        for a in attrs.fields(type(record))
        if a.name not in _STORAGE
    )


def _union(values: Sequence[Any]) -> Any:
    present = [v for v in values if not _empty(v)]
    if not present:
        return values[0]
    if all(isinstance(v, Mapping) for v in present):
        merged: dict[str, Any] = {}
        for mapping in reversed(present):  # the survivor (first) is applied last and wins
            merged.update(mapping)
        return FrozenDict(merged)
    if all(isinstance(v, tuple) for v in present):
        return tuple(dict.fromkeys(item for v in present for item in v))
    return present[0]


def check_rules(entity: type[Entity], rules: SurvivorshipRules | None) -> dict[str, str | Override]:
    """Complete ``rules`` with the defaults; raises ``ValidationError`` for an unknown field
    or strategy, or a storage field."""
    complete = default_survivorship(entity)
    for field, rule in (rules or {}).items():
        if field not in complete:
            raise ValidationError(
                f"rules.{field}", rule, f"is not a field a merged {entity.__name__} can set"
            )
        if not isinstance(rule, Override) and rule not in STRATEGIES:
            raise ValidationError(
                f"rules.{field}",
                rule,
                f"is not a survivorship rule (one of {STRATEGIES} or Override)",
            )
        if rule == "union" and not isinstance(
            getattr(_defaults(entity), field, None), tuple | Mapping
        ):
            raise ValidationError(f"rules.{field}", rule, "applies to list and mapping fields only")
        complete[field] = rule
    return complete


def _defaults(entity: type[Entity]) -> Any:
    blank = object.__new__(entity)
    for a in attrs.fields(entity):
        value = a.default.factory() if isinstance(a.default, attrs.Factory) else a.default  # type: ignore[arg-type]
        object.__setattr__(blank, a.name, None if value is attrs.NOTHING else value)
    return blank


def survive(survivor: E, duplicates: Sequence[E], rules: SurvivorshipRules | None = None) -> E:
    """The survivor with each field chosen by ``rules`` among it and ``duplicates``.

    ``rules`` maps field names to a strategy (see the module docs) or an
    :class:`Override`; fields it does not name follow :data:`DEFAULT_SURVIVORSHIP`.
    Raises ``ValidationError`` for an unknown field or strategy and when the merged values
    do not make a valid record.

    >>> from crmkit import Contact
    >>> a = Contact(first_name="Ada", emails=["ada@example.com"])
    >>> b = Contact(first_name="Ada", last_name="Lovelace", emails=["ada@work.example"])
    >>> merged = survive(a, [b])
    >>> merged.last_name, merged.emails
    ('Lovelace', ('ada@example.com', 'ada@work.example'))
    """
    entity = type(survivor)
    complete = check_rules(entity, rules)
    records: list[E] = [survivor, *duplicates]
    by_recency = sorted(
        records,
        key=lambda r: r.updated_at.timestamp() if r.updated_at is not None else float("-inf"),
        reverse=True,
    )
    most_complete = max(records, key=_filled)  # max keeps the first (survivor) on ties
    changes: dict[str, Any] = {}
    for field, rule in complete.items():
        values = [getattr(r, field) for r in records]
        if isinstance(rule, Override):
            value = rule.value
        elif rule == "survivor":
            value = values[0]
        elif rule == "union":
            value = _union(values)
        elif rule == "most_complete":
            value = getattr(most_complete, field)
        else:
            order = by_recency if rule == "most_recent" else records
            value = next(
                (getattr(r, field) for r in order if not _empty(getattr(r, field))), values[0]
            )
        if value != values[0]:
            changes[field] = value
    if not changes:
        return survivor
    return attrs.evolve(survivor, **changes)


def rules_document(rules: Mapping[str, str | Override]) -> dict[str, Any]:
    """Survivorship rules as JSON-ready data (an override becomes ``{"value": ...}``)."""
    from crmkit.dedupe.snapshot import plain

    return {
        field: {"value": plain(rule.value)} if isinstance(rule, Override) else rule
        for field, rule in rules.items()
    }


#: The entity types a merge applies to.
MERGEABLE: Final[Mapping[str, type[Entity]]] = {"contacts": Contact, "accounts": Account}
