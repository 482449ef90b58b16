"""Matching rules: which fields are compared, how, and how much each outcome counts.

A :class:`Rules` object is the whole, readable definition of "what is a duplicate": the
blocking key families that pick candidate pairs, one :class:`FieldRule` per compared
field, the prior and the thresholds. It round-trips through a plain ``dict`` (so a CRM can
store it next to its data and show it to users), and the same object drives
:func:`crmkit.dedupe.score_pair` on save and :func:`crmkit.dedupe.cluster` in batch.

Scoring is Fellegi-Sunter: each field's comparison falls into one *level* (``exact``,
``>= 0.90``, ``initial``, ``different``, or ``blank`` when a side has no value), and each
level carries ``m`` (how often duplicates land there) and ``u`` (how often unrelated
records do). A level adds ``log2(m / u)`` to the pair's match weight; the sum plus the
prior's log-odds is turned into a probability. :func:`crmkit.dedupe.estimate_weights`
re-estimates ``m``, ``u`` and the prior from the data (EM).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from crmkit.entities.account import Account
from crmkit.errors import ValidationError

__all__ = [
    "BLOCKING_FAMILIES",
    "METHODS",
    "MIN_FREQUENCY_RECORDS",
    "FieldRule",
    "Rules",
    "default_rules",
]

#: Comparison methods, each a rapidfuzz similarity in [0, 1] (``exact`` needs no strings):
#: ``jaro_winkler`` for names, ``token_set`` for company names (word order and extra
#: words do not matter), ``levenshtein`` for phones and codes (a one-digit slip), and
#: ``email``: Levenshtein on the address, but 0 when the domains or the numbers in the
#: local part differ (``john.smith1`` and ``john.smith2`` are different mailboxes).
#: Two methods compare derived keys: ``phonetic`` is 1 when the values sound alike
#: (same Metaphone code, from jellyfish; "Stephen"/"Steven") and 0 otherwise;
#: ``phone_sections`` splits E.164 numbers into country code, the middle digits and the
#: last four, and scores the share of sections that agree (a desk number next to the
#: switchboard scores 2/3).
METHODS: Final = (
    "exact",
    "jaro_winkler",
    "token_set",
    "levenshtein",
    "email",
    "phonetic",
    "phone_sections",
)

#: Blocking key families (see :mod:`crmkit.dedupe.blocking`).
BLOCKING_FAMILIES: Final = (
    "email",
    "phone",
    "name",
    "postal_code",
    "domain",
    "company",
)

#: Fields understood by the record preparation; any other field name is compared as
#: plain case-folded text taken from the record under that key.
KNOWN_FIELDS: Final = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "domain",
    "city",
    "postal_code",
    "country",
)

#: Below this many records, value frequencies are too noisy to adjust weights with.
MIN_FREQUENCY_RECORDS: Final = 1000

_BLANK_MODES: Final = ("ignore", "disagree")
_KINDS: Final = ("contact", "account")


def _floats(value: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in value)


@attrs.frozen(kw_only=True)
class FieldRule:
    """How one field of two records is compared and what each outcome is worth.

    - ``field``: a prepared field (``first_name``, ``last_name``, ``email``, ``phone``,
      ``company``, ``domain``, ``city``, ``postal_code``, ``country``) or any other key of
      the records, compared as case-folded text.
    - ``method``: one of :data:`METHODS`; multi-valued fields (emails, phones) take the
      best-matching pair of values.
    - ``levels``: similarity cut-offs, highest first; ``1.0`` is "exact". A comparison
      lands in the first level it reaches, else in ``initial`` (when ``initials`` is set
      and one side is a lone initial with the other's first letter), else ``different``.
    - ``m`` / ``u``: probability of each level (``levels``, then ``initial`` if enabled,
      then ``different``) among duplicates / among unrelated records.
    - ``blank``: ``"ignore"`` (a missing value is no evidence) or ``"disagree"`` (counts
      as ``different``).
    - ``required``: a pair whose values are ``different`` (not blank) is never a duplicate,
      whatever the other fields say.
    - ``frequency``: on a data set of at least :data:`MIN_FREQUENCY_RECORDS` records, an
      exact match counts more for a rare value than for a common one ("Ebenezer" versus
      "James"): the exact weight is shifted by ``log2(average share / this value's
      share)``, between -5 and +2 bits (term-frequency adjustment). Smaller sets (one record
      checked on save) use the plain weight.
    - ``typo``: values one edit apart (an insertion, deletion, substitution or swap of
      neighbours) reach at least the lowest similar level, even when the similarity is
      lower (short names: "Noe" and "Ne").

    Raises ValidationError for an unknown method or blank mode, cut-offs that are not
    decreasing in (0, 1], or ``m`` / ``u`` of the wrong length or outside (0, 1).

    >>> FieldRule(field="city", method="jaro_winkler", levels=(1.0, 0.9),
    ...           m=(0.8, 0.1, 0.1), u=(0.05, 0.02, 0.93)).level_names
    ('exact', '>= 0.90', 'different')
    """

    field: str
    method: str = "jaro_winkler"
    levels: tuple[float, ...] = attrs.field(default=(1.0,), converter=_floats)
    initials: bool = False
    m: tuple[float, ...] = attrs.field(converter=_floats)
    u: tuple[float, ...] = attrs.field(converter=_floats)
    blank: str = "ignore"
    required: bool = False
    frequency: bool = False
    typo: bool = False

    def __attrs_post_init__(self) -> None:
        where = f"rules.fields[{self.field}]"
        if not self.field:
            raise ValidationError("rules.fields", self.field, "is not a field name")
        if self.method not in METHODS:
            raise ValidationError(f"{where}.method", self.method, f"is not one of {METHODS}")
        if self.blank not in _BLANK_MODES:
            raise ValidationError(f"{where}.blank", self.blank, f"is not one of {_BLANK_MODES}")
        if not self.levels:
            raise ValidationError(f"{where}.levels", self.levels, "needs at least one cut-off")
        if any(not 0.0 < t <= 1.0 for t in self.levels) or any(
            a <= b for a, b in zip(self.levels, self.levels[1:], strict=False)
        ):
            raise ValidationError(
                f"{where}.levels", self.levels, "must be decreasing cut-offs in (0, 1]"
            )
        if self.method == "exact" and self.levels != (1.0,):
            raise ValidationError(f"{where}.levels", self.levels, "must be (1.0,) for exact")
        count = len(self.level_names)
        for name, probabilities in (("m", self.m), ("u", self.u)):
            if len(probabilities) != count:
                raise ValidationError(
                    f"{where}.{name}",
                    probabilities,
                    f"needs {count} probabilities, one per level {self.level_names}",
                )
            if any(not 0.0 < p < 1.0 for p in probabilities):
                raise ValidationError(
                    f"{where}.{name}", probabilities, "must hold probabilities in (0, 1)"
                )

    @property
    def level_names(self) -> tuple[str, ...]:
        """The names of the levels, best first (``blank`` is not a level)."""
        names = ["exact" if t >= 1.0 else f">= {t:.2f}" for t in self.levels]
        if self.initials:
            names.append("initial")
        names.append("different")
        return tuple(names)

    @property
    def weights(self) -> tuple[float, ...]:
        """``log2(m / u)`` per level: what each outcome adds to a pair's match weight."""
        return tuple(math.log2(m / u) for m, u in zip(self.m, self.u, strict=True))

    @property
    def blank_weight(self) -> float:
        """What a blank comparison adds: 0, or the ``different`` weight."""
        return self.weights[-1] if self.blank == "disagree" else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as plain data (lists, numbers, strings)."""
        return {
            "field": self.field,
            "method": self.method,
            "levels": list(self.levels),
            "initials": self.initials,
            "m": list(self.m),
            "u": list(self.u),
            "blank": self.blank,
            "required": self.required,
            "frequency": self.frequency,
            "typo": self.typo,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldRule:
        """Build a rule from :meth:`to_dict`'s output; raises ValidationError if invalid."""
        unknown = set(data) - {a.name for a in attrs.fields(cls)}
        if unknown:
            raise ValidationError("rules.fields", sorted(unknown), "are not FieldRule keys")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ValidationError("rules.fields", dict(data), f"is incomplete ({exc})") from None


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _field_rules(value: Any) -> tuple[FieldRule, ...]:
    return tuple(v if isinstance(v, FieldRule) else FieldRule.from_dict(v) for v in value)


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in value)


@attrs.frozen(kw_only=True)
class Rules:
    """The complete definition of a duplicate, for contacts or accounts.

    - ``kind``: ``"contact"`` or ``"account"`` (how a record's ``name`` is read).
    - ``fields``: the :class:`FieldRule` of every compared field.
    - ``blocking``: blocking key families (:data:`BLOCKING_FAMILIES`); two records are
      compared only if they share a key.
    - ``swap``: pairs of fields that people mix up (first and last name): the crossed
      comparison is used when it fits better, and the explanation says so.
    - ``prior``: share of candidate pairs (pairs sharing a blocking key) that are
      duplicates, before looking at them.
    - ``threshold``: match probability from which a pair is proposed as a duplicate.
    - ``link_threshold``: every two records of one group must reach at least this
      probability; this is what stops ``A~B``, ``B~C`` from gluing unrelated ``A`` and
      ``C``.
    - ``max_block_size`` / ``window``: a blocking key shared by more records than
      ``max_block_size`` compares each of them with its ``window`` nearest neighbours by
      name only (sorted neighbourhood), which keeps the work near-linear.
    - ``max_group_size``: groups never grow beyond this.

    Raises ValidationError for an unknown kind or blocking family, duplicate fields,
    ``swap`` naming a field without a rule, or probabilities outside (0, 1).

    >>> rules = Rules.contacts()
    >>> Rules.from_dict(rules.to_dict()) == rules
    True
    """

    kind: str = "contact"
    fields: tuple[FieldRule, ...] = attrs.field(converter=_field_rules)
    blocking: tuple[str, ...] = attrs.field(converter=_texts)
    swap: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    prior: float = 0.02
    threshold: float = 0.9
    link_threshold: float = 0.5
    max_block_size: int = 64
    window: int = 12
    max_group_size: int = 50

    def __attrs_post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValidationError("rules.kind", self.kind, f"is not one of {_KINDS}")
        names = [rule.field for rule in self.fields]
        if not names:
            raise ValidationError("rules.fields", (), "needs at least one field rule")
        if len(set(names)) != len(names):
            raise ValidationError("rules.fields", names, "names a field twice")
        for family in self.blocking:
            if family not in BLOCKING_FAMILIES:
                raise ValidationError(
                    "rules.blocking", family, f"is not one of {BLOCKING_FAMILIES}"
                )
        if not self.blocking:
            raise ValidationError("rules.blocking", (), "needs at least one key family")
        for a, b in self.swap:
            for name in (a, b):
                if name not in names:
                    raise ValidationError("rules.swap", name, "has no field rule")
            if self.rule(a).method != self.rule(b).method:
                raise ValidationError("rules.swap", (a, b), "must use the same method")
        for name in ("prior", "threshold", "link_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValidationError(f"rules.{name}", value, "must be between 0 and 1")
        for name in ("max_block_size", "window", "max_group_size"):
            if getattr(self, name) < 2:
                raise ValidationError(f"rules.{name}", getattr(self, name), "must be >= 2")

    def rule(self, field: str) -> FieldRule:
        """The rule of ``field``; raises ValidationError when there is none."""
        for rule in self.fields:
            if rule.field == field:
                return rule
        raise ValidationError("rules.fields", field, "has no rule")

    @property
    def prior_weight(self) -> float:
        """``log2(prior / (1 - prior))``, the starting point of every pair's weight."""
        return math.log2(self.prior / (1.0 - self.prior))

    def to_dict(self) -> dict[str, Any]:
        """Return the rules as plain data, for storage or display."""
        return {
            "kind": self.kind,
            "fields": [rule.to_dict() for rule in self.fields],
            "blocking": list(self.blocking),
            "swap": [list(pair) for pair in self.swap],
            "prior": self.prior,
            "threshold": self.threshold,
            "link_threshold": self.link_threshold,
            "max_block_size": self.max_block_size,
            "window": self.window,
            "max_group_size": self.max_group_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rules:
        """Build rules from :meth:`to_dict`'s output; raises ValidationError if invalid."""
        unknown = set(data) - {a.name for a in attrs.fields(cls)}
        if unknown:
            raise ValidationError("rules", sorted(unknown), "are not Rules keys")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ValidationError("rules", dict(data), f"is incomplete ({exc})") from None

    @classmethod
    def contacts(cls) -> Rules:
        """The default rules for people.

        Emails (match keys) and phones (E.164) are the strongest evidence, names come
        next, company, city, postcode and country add or remove a little. A clearly
        different first name (not a typo, not an initial, not swapped with the last
        name) rules a pair out: relatives share phones, postcodes and last names.
        """
        return cls(
            kind="contact",
            fields=(
                FieldRule(
                    field="email",
                    method="email",
                    levels=(1.0, 0.9),
                    m=(0.70, 0.12, 0.18),
                    u=(0.0002, 0.001, 0.9988),
                ),
                FieldRule(
                    field="phone",
                    method="levenshtein",
                    levels=(1.0, 0.9),
                    m=(0.75, 0.06, 0.19),
                    u=(0.002, 0.0005, 0.9975),
                ),
                FieldRule(
                    field="first_name",
                    method="jaro_winkler",
                    levels=(1.0, 0.9, 0.8),
                    initials=True,
                    m=(0.80, 0.10, 0.03, 0.06, 0.01),
                    u=(0.05, 0.01, 0.03, 0.006, 0.904),
                    required=True,
                    frequency=True,
                    typo=True,
                ),
                FieldRule(
                    field="last_name",
                    method="jaro_winkler",
                    levels=(1.0, 0.9, 0.8),
                    m=(0.82, 0.13, 0.03, 0.02),
                    u=(0.08, 0.02, 0.05, 0.85),
                    frequency=True,
                    typo=True,
                ),
                FieldRule(
                    field="company",
                    method="token_set",
                    levels=(1.0, 0.85),
                    m=(0.75, 0.15, 0.10),
                    u=(0.01, 0.01, 0.98),
                ),
                FieldRule(
                    field="city",
                    method="jaro_winkler",
                    levels=(1.0, 0.9),
                    m=(0.88, 0.06, 0.06),
                    u=(0.08, 0.005, 0.915),
                ),
                FieldRule(
                    field="postal_code",
                    method="exact",
                    m=(0.90, 0.10),
                    u=(0.02, 0.98),
                ),
                FieldRule(
                    field="country",
                    method="exact",
                    m=(0.98, 0.02),
                    u=(0.60, 0.40),
                ),
            ),
            blocking=("email", "phone", "name", "postal_code"),
            swap=(("first_name", "last_name"),),
            prior=0.01,
        )

    @classmethod
    def accounts(cls) -> Rules:
        """The default rules for companies: domain, phone, name, city, postcode, country."""
        return cls(
            kind="account",
            fields=(
                FieldRule(
                    field="domain",
                    method="exact",
                    m=(0.80, 0.20),
                    u=(0.001, 0.999),
                ),
                FieldRule(
                    field="phone",
                    method="levenshtein",
                    levels=(1.0, 0.9),
                    m=(0.70, 0.08, 0.22),
                    u=(0.0005, 0.002, 0.9975),
                ),
                FieldRule(
                    field="company",
                    method="token_set",
                    levels=(1.0, 0.9, 0.8),
                    m=(0.70, 0.15, 0.08, 0.07),
                    u=(0.01, 0.02, 0.05, 0.92),
                    required=True,
                ),
                FieldRule(
                    field="city",
                    method="jaro_winkler",
                    levels=(1.0, 0.9),
                    m=(0.85, 0.05, 0.10),
                    u=(0.10, 0.02, 0.88),
                ),
                FieldRule(
                    field="postal_code",
                    method="exact",
                    m=(0.80, 0.20),
                    u=(0.02, 0.98),
                ),
                FieldRule(
                    field="country",
                    method="exact",
                    m=(0.97, 0.03),
                    u=(0.40, 0.60),
                ),
            ),
            blocking=("domain", "phone", "company", "postal_code"),
        )

    def evolve(self, **changes: Any) -> Rules:
        """Return a copy with some settings changed (``rules.evolve(threshold=0.95)``)."""
        return attrs.evolve(self, **changes)


def default_rules(record: object) -> Rules:
    """The default rules for a kind of record: accounts for an Account, else contacts."""
    return Rules.accounts() if isinstance(record, Account) else Rules.contacts()
