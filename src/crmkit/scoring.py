"""Lead scoring: rule-based scores and a naive-Bayes win probability, each explained.

``crm.scoring`` (or ``crm.as_user(u).scoring``, which scores only records the user may
read):

- :meth:`Scoring.score` - a contact's rule-based score: :class:`FieldRule` points when the
  contact matches an ``F`` expression (evaluated by the database), plus
  :class:`ActivityRule` points per interaction, halved every ``half_life`` of its age;
- :meth:`Scoring.train` / :meth:`Scoring.predict` - the probability that a deal (or a
  contact's next deal) is won, from a naive-Bayes model over configurable fields of the
  deal, its contact and its account, learned from won and lost deals.

The model
---------

Each :class:`Feature` names a field of the deal (``"deal.source"``), of the deal's first
contact (``"contact.lead_source"``) or of its account (``"account.industry"``; the deal's
account, else its contact's). Text, choice and flag fields are categories; numbers need
``buckets`` (ascending edges: ``(1000, 5000)`` makes ``<1000``, ``1000-5000``,
``>=5000``). A missing value is no evidence: the feature is left out.

With ``W`` won and ``L`` lost deals, ``n(v, c)`` deals of outcome ``c`` with value ``v``
of a feature, ``n(c)`` deals of outcome ``c`` with any value of it and ``K`` the number of
distinct values of the feature (counting ``v``), Laplace smoothing gives
``P(won) = (W + 1) / (W + L + 2)`` and ``P(v | c) = (n(v, c) + 1) / (n(c) + K)``. The
score is ``log_odds = ln(P(won) / P(lost)) + sum of ln(P(v | won) / P(v | lost))`` and
the probability ``1 / (1 + exp(-log_odds))``; each term is a factor of the explanation.

The counts are a :class:`crmkit.entities.ScoringModel` record (``crm.scoring_models``): a
stored record survives a reconnect, works on every backend and is updated inside the
transaction of the write that closes a deal - an after-write hook on deals adds the deal's
values to its outcome (and takes them back when a deal is reopened or changes outcome), so
the model never disagrees with the deals that were committed. Changes to a contact or an
account after its deal closed, and deleted deals, are taken into account by
:meth:`Scoring.train`, which rebuilds the counts from the closed deals.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from crmkit.entities import (
    Account,
    Contact,
    Deal,
    Direction,
    InteractionKind,
    PipelineKind,
    ScoringModel,
    StageKind,
)
from crmkit.entities.schema import field_info
from crmkit.errors import NotFound, PermissionDenied, ValidationError
from crmkit.query import Expr, F, Or

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = [
    "ActivityRule",
    "Factor",
    "Feature",
    "FieldRule",
    "Prediction",
    "Score",
    "Scoring",
    "ScoringHook",
    "naive_bayes",
]

_SOURCES: dict[str, type[Any]] = {"deal": Deal, "contact": Contact, "account": Account}
_CATEGORICAL = frozenset({"text", "bool"})
_NUMERIC = frozenset({"int", "decimal"})


class _Source(Protocol):
    """A CRM or a user's view of one."""

    @property
    def contacts(self) -> Any: ...

    @property
    def accounts(self) -> Any: ...

    @property
    def interactions(self) -> Any: ...

    @property
    def deals(self) -> Any: ...

    def now(self) -> dt.datetime: ...


def _points(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValidationError("points", value, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError("points", value, "must be finite")
    return number


def _expr(value: Any) -> Expr:
    if not isinstance(value, Expr):
        raise ValidationError("when", value, "must be an F expression")
    return value


def _half_life(value: Any) -> dt.timedelta:
    if not isinstance(value, dt.timedelta) or value <= dt.timedelta(0):
        raise ValidationError("half_life", value, "must be a positive timedelta")
    return value


def _optional_enum(enum_type: type[enum.StrEnum], value: Any) -> Any:
    if value is None:
        return None
    try:
        return enum_type(value)
    except ValueError:
        raise ValidationError(enum_type.__name__.lower(), value, "is not known") from None


def _kind(value: Any) -> InteractionKind | None:
    converted: InteractionKind | None = _optional_enum(InteractionKind, value)
    return converted


def _direction(value: Any) -> Direction | None:
    converted: Direction | None = _optional_enum(Direction, value)
    return converted


@attrs.frozen
class FieldRule:
    """``points`` when the contact matches ``when`` (an ``F`` expression on contacts,
    evaluated by the database); ``label`` names the factor (default: the expression).

    >>> FieldRule.equals("lifecycle_stage", "lead", 10).label
    'lifecycle_stage = lead'
    """

    when: Expr = attrs.field(converter=_expr)
    points: float = attrs.field(converter=_points)
    label: str = attrs.field()

    @label.default
    def _label(self) -> str:
        return repr(self.when.to_dict())

    @classmethod
    def equals(cls, path: str, value: Any, points: float, *, label: str | None = None) -> FieldRule:
        """Points when the contact's ``path`` equals ``value``. Raises ``ValidationError``
        for a path contacts do not have."""
        field_info(Contact, path)
        shown = value.value if isinstance(value, enum.Enum) else value
        text = label if label is not None else f"{path} = {shown}"
        return cls(F(path) == value, points, text)


@attrs.frozen
class ActivityRule:
    """``points`` per interaction of the contact (optionally only of one ``kind`` and
    ``direction``), decaying exponentially: an interaction ``age`` old is worth
    ``points * 0.5 ** (age / half_life)``; interactions after the scoring time are ignored.
    """

    points: float = attrs.field(converter=_points)
    half_life: dt.timedelta = attrs.field(converter=_half_life)
    kind: InteractionKind | None = attrs.field(default=None, converter=_kind)
    direction: Direction | None = attrs.field(default=None, converter=_direction)
    label: str = attrs.field()

    @label.default
    def _label(self) -> str:
        parts = [p.value for p in (self.direction, self.kind) if p is not None]
        return " ".join([*parts, "interactions"])

    def weight(self, age: dt.timedelta) -> float:
        """The points one interaction ``age`` old is worth.

        >>> ActivityRule(8, dt.timedelta(days=10)).weight(dt.timedelta(days=20))
        2.0
        """
        factor: float = 0.5 ** (max(age, dt.timedelta(0)) / self.half_life)
        return self.points * factor


Rule = FieldRule | ActivityRule


@attrs.frozen
class Factor:
    """One reason behind a score: ``label`` and its ``contribution`` (points of a rule
    score, or the log-odds term of a prediction); ``detail`` says more (how many
    interactions, which counts)."""

    label: str
    contribution: float
    detail: str = ""


@attrs.frozen
class Score:
    """A rule-based score: ``total`` is the sum of the factors' contributions."""

    contact_id: str
    total: float
    factors: tuple[Factor, ...]


@attrs.frozen
class Prediction:
    """A win probability with its explanation: ``log_odds`` is the sum of the factors'
    contributions (the first factor is the base rate)."""

    probability: float
    log_odds: float
    factors: tuple[Factor, ...]


def _edge(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError("buckets", value, "must be numbers") from None
    if not number.is_finite() or isinstance(value, bool):
        raise ValidationError("buckets", value, "must be finite numbers")
    return number


def _edges(values: Iterable[Any]) -> tuple[Decimal, ...]:
    edges = tuple(_edge(v) for v in values)
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValidationError("buckets", edges, "must be strictly ascending")
    return edges


@attrs.frozen
class Feature:
    """A field the model learns from: ``"deal.<path>"``, ``"contact.<path>"`` or
    ``"account.<path>"``; numeric fields need ascending ``buckets`` edges. A custom field
    (``"contact.custom.tier"``) is a category, or a number when given buckets (values that
    are not numbers then count as missing).

    Raises ``ValidationError`` for an unknown source or path, a field that is neither a
    category nor a number, a number without buckets, or buckets on a category.
    """

    path: str
    buckets: tuple[Decimal, ...] = attrs.field(default=(), converter=_edges)

    def __attrs_post_init__(self) -> None:
        source, _, rest = self.path.partition(".")
        if source not in _SOURCES or not rest:
            raise ValidationError(
                "feature", self.path, "must start with deal., contact. or account."
            )
        kind = field_info(_SOURCES[source], rest).kind
        if kind in _NUMERIC and not self.buckets:
            raise ValidationError("feature", self.path, "is a number: give buckets")
        if kind in _CATEGORICAL and self.buckets:
            raise ValidationError("feature", self.path, "is not a number: no buckets")
        if kind not in _NUMERIC | _CATEGORICAL | {"any"}:
            raise ValidationError("feature", self.path, f"cannot be a feature ({kind} field)")

    @property
    def source(self) -> str:
        """``"deal"``, ``"contact"`` or ``"account"``."""
        return self.path.partition(".")[0]

    def value(self, record: Any) -> str | None:
        """The category of ``record`` (of this feature's source type): the text of the
        value, or of its bucket; ``None`` when not set.

        >>> Feature("contact.lead_source").value(Contact(first_name="A", lead_source="web"))
        'web'
        """
        if record is None:
            return None
        info = field_info(_SOURCES[self.source], self.path.partition(".")[2])
        raw: Any = getattr(record, info.column)
        if info.key is not None and raw is not None:
            raw = raw.get(info.key) if isinstance(raw, Mapping) else getattr(raw, info.key)
        if raw is None:
            return None
        if self.buckets:
            if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal | str):
                return None
            try:
                return self.bucket(raw)
            except InvalidOperation:  # a custom value that is not a number
                return None
        if isinstance(raw, enum.Enum):
            return str(raw.value)
        if isinstance(raw, bool):
            return "true" if raw else "false"
        return str(raw)

    def bucket(self, number: Any) -> str:
        """The bucket label of a number: ``<a``, ``a-b`` (``a <= x < b``) or ``>=z``."""
        value = Decimal(str(number))
        edges = self.buckets
        if value < edges[0]:
            return f"<{edges[0]}"
        for low, high in itertools.pairwise(edges):
            if value < high:
                return f"{low}-{high}"
        return f">={edges[-1]}"

    def to_dict(self) -> dict[str, Any]:
        """The feature as plain JSON."""
        return {"path": self.path, "buckets": [str(b) for b in self.buckets]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        """The inverse of :meth:`to_dict`."""
        return cls(str(data["path"]), tuple(data.get("buckets") or ()))


def naive_bayes(
    counts: Mapping[str, Any], values: Mapping[str, str | None]
) -> tuple[float, tuple[Factor, ...]]:
    """The log-odds of winning and its factors, from ``counts`` (``{"won": W, "lost": L,
    "values": {feature: {value: [won, lost]}}}``) and a record's feature ``values``
    (see the module documentation for the formula).

    >>> log_odds, factors = naive_bayes({"won": 1, "lost": 1, "values": {}}, {})
    >>> log_odds, factors[0].label
    (0.0, 'base rate')
    """
    won, lost = int(counts.get("won", 0)), int(counts.get("lost", 0))
    prior = math.log((won + 1) / (lost + 1))
    factors = [Factor("base rate", prior, f"{won} won, {lost} lost")]
    table: Mapping[str, Any] = counts.get("values", {})
    for name, value in values.items():
        if value is None:
            continue
        seen: Mapping[str, Sequence[int]] = table.get(name, {})
        k = len(set(seen) | {value})
        n_won = sum(int(c[0]) for c in seen.values())
        n_lost = sum(int(c[1]) for c in seen.values())
        v_won, v_lost = (int(x) for x in seen.get(value, (0, 0)))
        p_won = (v_won + 1) / (n_won + k)
        p_lost = (v_lost + 1) / (n_lost + k)
        factors.append(
            Factor(
                f"{name} = {value}",
                math.log(p_won / p_lost),
                f"{v_won} of {n_won} won, {v_lost} of {n_lost} lost",
            )
        )
    return sum(f.contribution for f in factors), tuple(factors)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def _first(repo: Any, record_id: str | None) -> Any:
    if not record_id:
        return None
    found = repo.find(F.id == record_id, limit=1)
    return found[0] if found else None


def _feature_values(
    source: _Source, features: Sequence[Feature], deal: Deal | None, contact: Contact | None
) -> dict[str, str | None]:
    """Each feature's category for a deal (its first contact, its account) or a contact."""
    if deal is not None and contact is None and deal.contact_ids:
        contact = _first(source.contacts, deal.contact_ids[0])
    account_id = deal.account_id if deal is not None and deal.account_id else None
    if account_id is None and contact is not None:
        account_id = contact.account_id
    needs_account = any(f.source == "account" for f in features)
    account = _first(source.accounts, account_id) if needs_account else None
    records = {"deal": deal, "contact": contact, "account": account}
    return {f.path: f.value(records[f.source]) for f in features}


def _outcome(crm: CRM, deal: Deal | None) -> str | None:
    if deal is None or deal.pipeline_id is None or deal.stage is None:
        return None
    pipeline = crm.pipeline_rules.pipeline(deal.pipeline_id, PipelineKind.DEALS)
    if pipeline is None:
        return None
    for stage in pipeline.stages:
        if stage.key == deal.stage:
            if stage.kind is StageKind.WON:
                return "won"
            if stage.kind is StageKind.LOST:
                return "lost"
    return None


def _plain_counts(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Counts as :func:`naive_bayes` reads them, from their stored form: rows
    ``[feature, value, won, lost]`` (feature paths and values are never document keys,
    since MongoDB gives dots and dollars in keys a meaning)."""
    values: dict[str, dict[str, list[int]]] = {}
    for name, value, won, lost in stored.get("rows", ()):
        values.setdefault(str(name), {})[str(value)] = [int(won), int(lost)]
    return {"won": int(stored.get("won", 0)), "lost": int(stored.get("lost", 0)), "values": values}


def _stored_counts(counts: Mapping[str, Any]) -> dict[str, Any]:
    rows = [
        [name, value, pair[0], pair[1]]
        for name, seen in sorted(counts["values"].items())
        for value, pair in sorted(seen.items())
    ]
    return {"won": counts["won"], "lost": counts["lost"], "rows": rows}


def _add(counts: dict[str, Any], outcome: str, values: Mapping[str, str | None], sign: int) -> None:
    counts[outcome] = counts.get(outcome, 0) + sign
    column = 0 if outcome == "won" else 1
    for name, value in values.items():
        if value is None:
            continue
        seen = counts["values"].setdefault(name, {})
        pair = seen.setdefault(value, [0, 0])
        pair[column] += sign
        if pair == [0, 0]:
            del seen[value]


class ScoringHook:
    """The after-write hook of deals that keeps every stored model's counts in step with
    the deals that close (inside the write's transaction)."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm

    def applies(self, stored: Any, previous: Any | None, /) -> bool:
        """Whether the write may have closed, reopened or re-decided a deal (cheap)."""
        if not isinstance(stored, Deal):
            return False
        if previous is None:
            return stored.closed_at is not None
        if stored.closed_at is None and previous.closed_at is None:
            return False
        return bool(stored.stage != previous.stage or stored.pipeline_id != previous.pipeline_id)

    def after_write(self, stored: Any, previous: Any | None, /) -> None:
        """Move the deal's values from its old outcome's counts to its new one's."""
        crm = self._crm
        before, after = _outcome(crm, previous), _outcome(crm, stored)
        if before == after:
            return
        repo = crm.repository(ScoringModel)
        for model in repo.find():
            features = [Feature.from_dict(d) for d in model.features.get("features", ())]
            counts = _plain_counts(model.counts)
            if before is not None:
                _add(counts, before, _feature_values(crm, features, previous, None), -1)
            if after is not None:
                _add(counts, after, _feature_values(crm, features, stored, None), 1)
            repo.update(attrs.evolve(model, counts=_stored_counts(counts)))


class Scoring:
    """Rule scores and win predictions over a CRM or a user's view.

    ``rules=None`` (a view's scoring) uses the CRM's rules, whatever they are when scoring.
    """

    def __init__(self, source: _Source, crm: CRM, *, rules: Sequence[Rule] | None = ()) -> None:
        self._source = source
        self._crm = crm
        self._rules: tuple[Rule, ...] | None = None
        if rules is not None:
            self.rules = tuple(rules)

    # --- rules --------------------------------------------------------------------------

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules :meth:`score` applies (set a sequence of :class:`FieldRule` and
        :class:`ActivityRule`; anything else raises ``ValidationError``)."""
        if self._rules is None:
            return self._crm.scoring.rules
        return self._rules

    @rules.setter
    def rules(self, rules: Sequence[Rule]) -> None:
        checked = tuple(rules)
        for rule in checked:
            if not isinstance(rule, FieldRule | ActivityRule):
                raise ValidationError("rules", rule, "must be a FieldRule or an ActivityRule")
        self._rules = checked

    def score(
        self,
        contact_id: str,
        *,
        rules: Sequence[Rule] | None = None,
        at: dt.datetime | None = None,
    ) -> Score:
        """The rule score of a contact at ``at`` (default: now), with one factor per rule
        that contributed.

        Field rules are evaluated by the database (one count per rule); activity rules
        read the contact's interactions up to ``at``. Raises ``NotFound`` for a contact
        that does not exist (or that a view may not read), ``ValidationError`` for a bad
        rule or a naive ``at``.
        """
        if rules is not None:
            probe = Scoring(self._source, self._crm, rules=rules)
            return probe.score(contact_id, at=at)
        if at is not None and at.tzinfo is None:
            raise ValidationError("at", at, "must be timezone-aware")
        moment = at or self._source.now()
        contacts = self._source.contacts
        if not contacts.find(F.id == contact_id, limit=1):
            raise NotFound("contacts", contact_id)
        factors: list[Factor] = []
        activity = [r for r in self.rules if isinstance(r, ActivityRule)]
        interactions: list[Any] = []
        if activity:
            interactions = list(
                self._source.interactions.iterate(
                    F.contact_ids.contains(contact_id) & (F.occurred_at <= moment)
                )
            )
        for rule in self.rules:
            if isinstance(rule, FieldRule):
                if contacts.count((F.id == contact_id) & rule.when):
                    factors.append(Factor(rule.label, rule.points))
                continue
            matching = [
                i
                for i in interactions
                if (rule.kind is None or i.kind is rule.kind)
                and (rule.direction is None or i.direction is rule.direction)
            ]
            if matching:
                points = sum(rule.weight(moment - i.occurred_at) for i in matching)
                factors.append(
                    Factor(rule.label, points, f"{len(matching)} x {rule.points:g} decayed")
                )
        return Score(contact_id, sum(f.contribution for f in factors), tuple(factors))

    # --- the predictive model ----------------------------------------------------------

    def _model(self, name: str) -> ScoringModel | None:
        found = self._crm.repository(ScoringModel).find(F.name == name, limit=1)
        return found[0] if found else None

    def features(self, name: str = "default") -> tuple[Feature, ...]:
        """The features of the stored model ``name``. Raises ``NotFound`` when not trained."""
        model = self._model(name)
        if model is None:
            raise NotFound("scoring_models", name)
        return tuple(Feature.from_dict(d) for d in model.features.get("features", ()))

    def train(self, features: Sequence[Feature | str], *, name: str = "default") -> ScoringModel:
        """(Re)build model ``name`` over ``features`` from every won and lost deal and
        store it (replacing a model of that name). From then on each deal that closes
        updates it. The model learns from all deals, so only the CRM itself trains (a
        user's view raises ``PermissionDenied``; views predict with the stored model).

        Raises ``ValidationError`` for a bad feature or none.
        """
        if self._source is not self._crm:
            raise PermissionDenied("a model is trained on all deals: train it on the CRM")
        specs = tuple(Feature(f) if isinstance(f, str) else f for f in features)
        if not specs or not all(isinstance(f, Feature) for f in specs):
            raise ValidationError("features", features, "must be one or more Feature")
        with self._crm.transaction():  # the counts match the deals committed with them
            return self._train(specs, name)

    def _train(self, specs: Sequence[Feature], name: str) -> ScoringModel:
        crm = self._crm
        counts: dict[str, Any] = {"won": 0, "lost": 0, "values": {}}
        closed: list[Expr] = []
        for p in crm.pipelines.find(F.kind == PipelineKind.DEALS.value):
            keys = [s.key for s in p.stages if s.kind in (StageKind.WON, StageKind.LOST)]
            if keys:
                closed.append((F.pipeline_id == (p.id or "")) & F.stage.in_(keys))
        if closed:
            where = closed[0] if len(closed) == 1 else Or(tuple(closed))
            for deal in crm.deals.iterate(where):
                outcome = _outcome(crm, deal)
                if outcome is not None:
                    _add(counts, outcome, _feature_values(crm, specs, deal, None), 1)
        document = {"features": [f.to_dict() for f in specs]}
        stored = _stored_counts(counts)
        repo = crm.repository(ScoringModel)
        model = self._model(name)
        if model is None:
            return repo.add(
                ScoringModel(name=name, features=document, counts=stored, trained_at=crm.now())
            )
        return repo.update(
            attrs.evolve(model, features=document, counts=stored, trained_at=crm.now())
        )

    def predict(self, record: Deal | Contact | str, *, name: str = "default") -> Prediction:
        """The probability that a deal is won - or, for a contact, that a deal with it is
        won (only contact and account features apply) - with its factors.

        ``record`` is a deal or contact (a stored one is read again, so a view must be
        allowed to read it) or the id of one. Raises ``NotFound`` for an unknown id or a
        model never trained.
        """
        model = self._model(name)
        if model is None:
            raise NotFound("scoring_models", name)
        deal: Deal | None = None
        contact: Contact | None = None
        if isinstance(record, str):
            deal = _first(self._source.deals, record)
            if deal is None:
                contact = _first(self._source.contacts, record)
                if contact is None:
                    raise NotFound("deals", record)
        elif isinstance(record, Deal):
            deal = record if record.id is None else self._source.deals.get(record.id)
        elif isinstance(record, Contact):
            contact = record if record.id is None else self._source.contacts.get(record.id)
        else:
            raise ValidationError("record", record, "must be a Deal, a Contact or an id")
        features = [Feature.from_dict(d) for d in model.features.get("features", ())]
        if deal is None:
            features = [f for f in features if f.source != "deal"]
        values = _feature_values(self._source, features, deal, contact)
        log_odds, factors = naive_bayes(_plain_counts(model.counts), values)
        return Prediction(_sigmoid(log_odds), log_odds, factors)
