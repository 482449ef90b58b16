"""Satisfaction: CSAT and NPS reports over survey responses, computed by the database.

Responses are :class:`~crmkit.entities.SurveyResponse` records in
``crm.survey_responses``: CSAT (1-5, "how satisfied were you?") or NPS (0-10, "how likely
are you to recommend us?"), linked to a ticket, a campaign and/or a contact and account.

``crm.satisfaction`` (or ``crm.as_user(u).satisfaction``, which counts only the responses
the user may read):

- :meth:`Satisfaction.csat` - responses, average score and CSAT (the share of 4s and 5s),
  overall or by the linked ticket's ``priority``, ``assignee_id`` or ``channel``, or by
  ``campaign_id``;
- :meth:`Satisfaction.nps` - promoters (9-10), passives (7-8), detractors (0-6) and the
  Net Promoter Score ``100 x (promoters - detractors) / responses``, overall or per week,
  month or year (the trend).

Counts and sums come from ``Repository.aggregate`` (grouped by ticket, or by period and
score); grouping tickets by priority, assignee or channel reads those tickets' fields.
Ranges are half-open (``since <= responded_at < until``), periods are UTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

import attrs

from crmkit.aggregation import Group, Metric
from crmkit.entities import SurveyKind
from crmkit.errors import ValidationError
from crmkit.query import And, Expr, F

__all__ = ["CsatRow", "NpsRow", "Satisfaction", "nps_score"]

CsatBy = Literal["priority", "assignee", "channel", "campaign"]
_TICKET_FIELDS = {"priority": "priority", "assignee": "assignee_id", "channel": "channel"}
_CHUNK = 500


def _all(*parts: Expr | None) -> Expr | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else And(tuple(present))


def _range(since: dt.datetime | None, until: dt.datetime | None) -> Expr | None:
    return _all(
        None if since is None else F.responded_at >= since,
        None if until is None else F.responded_at < until,
    )


def nps_score(promoters: int, detractors: int, responses: int) -> Decimal | None:
    """``100 x (promoters - detractors) / responses`` (``None`` without responses).

    >>> nps_score(5, 2, 10)
    Decimal('30')
    """
    if responses == 0:
        return None
    return Decimal(100 * (promoters - detractors)) / Decimal(responses)


@attrs.frozen
class CsatRow:
    """CSAT of one group: ``key`` is the group value (a priority, an assignee id, a
    channel, a campaign id; ``None``: not set, or overall), ``responses`` how many,
    ``average`` the mean score and ``satisfied`` how many scored 4 or 5."""

    key: str | None
    responses: int
    total: int
    satisfied: int

    @property
    def average(self) -> Decimal | None:
        """The mean score (1-5)."""
        return None if not self.responses else Decimal(self.total) / Decimal(self.responses)

    @property
    def csat(self) -> Decimal | None:
        """The share of satisfied responses (scores 4 and 5), 0-1."""
        return None if not self.responses else Decimal(self.satisfied) / Decimal(self.responses)


@attrs.frozen
class NpsRow:
    """NPS responses of one period (``period``: its first day; ``None`` overall)."""

    period: dt.date | None
    promoters: int
    passives: int
    detractors: int

    @property
    def responses(self) -> int:
        """All responses of the period."""
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> Decimal | None:
        """The Net Promoter Score, -100 to 100 (``None`` without responses)."""
        return nps_score(self.promoters, self.detractors, self.responses)


class Satisfaction:
    """CSAT and NPS reports over a CRM or a user's view (``crm.satisfaction``)."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def csat(
        self,
        *,
        by: CsatBy | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        where: Expr | None = None,
    ) -> list[CsatRow]:
        """CSAT of responses given in ``[since, until)``: one row overall (``by=None``) or
        one per group, sorted by key (``None`` last).

        ``by="priority"`` / ``"assignee"`` / ``"channel"`` group by the linked ticket's
        field (only responses linked to a ticket count; a ticket the view may not read
        counts under ``None``); ``by="campaign"`` by ``campaign_id``. ``where`` narrows the
        responses. Raises ``ValidationError`` for an unknown ``by``.
        """
        if by is not None and by not in (*_TICKET_FIELDS, "campaign"):
            raise ValidationError("by", by, "is not priority, assignee, channel or campaign")
        base = _all(F.kind == SurveyKind.CSAT.value, _range(since, until), where)
        repo = self._source.survey_responses
        if by is None or by == "campaign":
            groups = [] if by is None else ["campaign_id"]
            return self._rows(repo, base, groups, lambda r: r.get("campaign_id"))
        base = _all(base, F.ticket_id.exists())
        per_ticket = self._rows(repo, base, ["ticket_id"], lambda r: r["ticket_id"])
        ids = [r.key for r in per_ticket if r.key is not None]
        field = _TICKET_FIELDS[by]
        value: dict[str, str | None] = {}
        for i in range(0, len(ids), _CHUNK):
            for t in self._source.tickets.find(F.id.in_(ids[i : i + _CHUNK])):
                v = getattr(t, field)
                value[t.id or ""] = None if v is None else str(getattr(v, "value", v))
        merged: dict[str | None, list[int]] = {}
        for r in per_ticket:
            acc = merged.setdefault(value.get(r.key or ""), [0, 0, 0])
            acc[0] += r.responses
            acc[1] += r.total
            acc[2] += r.satisfied
        rows = [CsatRow(k, n, total, sat) for k, (n, total, sat) in merged.items()]
        rows.sort(key=lambda r: (r.key is None, r.key or ""))
        return rows

    @staticmethod
    def _rows(repo: Any, base: Expr | None, groups: list[str], key: Any) -> list[CsatRow]:
        metrics = [Metric.count(name="n"), Metric.sum("score", name="total")]
        rows = repo.aggregate(base, group_by=groups, metrics=metrics)
        happy = {
            key(r): int(r["n"])
            for r in repo.aggregate(
                _all(base, F.score >= 4), group_by=groups, metrics=[Metric.count(name="n")]
            )
        }
        return [CsatRow(key(r), int(r["n"]), int(r["total"]), happy.get(key(r), 0)) for r in rows]

    def nps(
        self,
        *,
        period: Literal["week", "month", "year"] | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        where: Expr | None = None,
    ) -> list[NpsRow]:
        """NPS of responses given in ``[since, until)``: one row overall (``period=None``,
        ``period`` of the row ``None``) or one per week, month or year with responses, in
        time order. One database aggregate grouped by period and score.
        Raises ``ValidationError`` for an unknown period.
        """
        if period is not None and period not in ("week", "month", "year"):
            raise ValidationError("period", period, "is not week, month or year")
        groups: list[Group | str] = ["score"]
        if period is not None:
            groups.insert(0, Group("responded_at", period, "period"))
        rows = self._source.survey_responses.aggregate(
            _all(F.kind == SurveyKind.NPS.value, _range(since, until), where),
            group_by=groups,
            metrics=[Metric.count(name="n")],
        )
        counts: dict[dt.date | None, list[int]] = {}
        for r in rows:
            if r["score"] is None:
                continue
            acc = counts.setdefault(r.get("period"), [0, 0, 0])
            score, n = int(r["score"]), int(r["n"])
            acc[0 if score >= 9 else 1 if score >= 7 else 2] += n
        if period is None and not counts:
            counts[None] = [0, 0, 0]
        return [
            NpsRow(p, *c) for p, c in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0]))
        ]
