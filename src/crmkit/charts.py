"""Charts of reports, rendered to PNG or SVG files with matplotlib (``crmkit[charts]``).

``render_chart(name, crm, path, **options)`` runs a report on ``crm`` (a CRM or a user's
view) and draws it into ``path``; the file's suffix picks the format (``.png`` or
``.svg``, or pass ``format=``). The charts:

- ``"funnel"`` - entries into each stage of a pipeline and the conversion to the next
  (:meth:`crmkit.reports.DealReports.funnel`; options ``pipeline_id`` (required),
  ``since``, ``until``);
- ``"forecast"`` - the weighted and unweighted open pipeline by close month
  (:meth:`crmkit.reports.DealReports.forecast`; options ``pipeline_id``, ``currency``);
- ``"sla"`` - first-response and resolution SLA compliance by ticket priority
  (:meth:`crmkit.analytics.Analytics.tickets_by_priority`; options ``since``, ``until``);
- ``"rfm"`` - the RFM grid: customers by recency and frequency score, shaded by count
  (:meth:`crmkit.commerce.OrderOperations.rfm`; options ``per``, ``as_of``, ``since``,
  ``currency``);
- ``"nps"`` - the NPS trend with promoters, passives and detractors per period
  (:meth:`crmkit.satisfaction.Satisfaction.nps`; options ``period`` (default ``"month"``),
  ``since``, ``until``);
- ``"csat"`` - CSAT (share of 4s and 5s) by ticket priority, assignee or channel
  (:meth:`crmkit.satisfaction.Satisfaction.csat`; options ``by`` (default
  ``"priority"``), ``since``, ``until``).

Every chart also takes ``title``. The ``*_chart`` functions draw rows a caller already
has. Drawing uses matplotlib's object API with the Agg renderer (no ``pyplot``, no
global state, no display needed), so it is safe in servers and threads. matplotlib is
imported only when a chart is drawn; without it a :class:`crmkit.CRMError` names the
extra to install.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmkit.errors import CRMError, ValidationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from crmkit.analytics import PriorityRow
    from crmkit.commerce import OrderRfm
    from crmkit.reports import ForecastRow, FunnelStep
    from crmkit.satisfaction import CsatRow, NpsRow

__all__ = [
    "CHARTS",
    "csat_chart",
    "forecast_chart",
    "funnel_chart",
    "nps_chart",
    "render_chart",
    "rfm_chart",
    "sla_chart",
]

_FORMATS = ("png", "svg")
_BLUE, _GREEN, _GREY, _RED = "#4C72B0", "#55A868", "#8C8C8C", "#C44E52"


def _titled(title: str) -> tuple[Figure, Axes]:
    """A figure with one set of axes under ``title``."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CRMError(
            "charts need matplotlib: install crmkit with the charts extra, "
            "e.g. pip install 'crmkit[charts]'"
        ) from None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str], fmt: str | None) -> Path:
    out = Path(path)
    fmt = (fmt or out.suffix.lstrip(".") or "png").lower()
    if fmt not in _FORMATS:
        raise ValidationError("format", fmt, "is not png or svg")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=fmt)
    return out


def _empty(ax: Any, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=_GREY)
    ax.set_xticks([])
    ax.set_yticks([])


def funnel_chart(
    steps: Sequence[FunnelStep],
    path: str | os.PathLike[str],
    *,
    title: str = "Pipeline funnel",
    format: str | None = None,
) -> Path:
    """Draw funnel steps as horizontal bars (first stage on top), each labelled with its
    entries and the conversion to the next stage; returns the file's path."""
    fig, ax = _titled(title)
    if not steps:
        _empty(ax)
    else:
        names = [s.stage for s in steps][::-1]
        counts = [s.entered for s in steps][::-1]
        bars = ax.barh(names, counts, color=_BLUE)
        labels = [
            f"{s.entered}" + ("" if s.conversion is None else f"  ({float(s.conversion):.0%})")
            for s in steps
        ][::-1]
        ax.bar_label(bars, labels=labels, padding=3)
        ax.set_xlabel("deals entering the stage")
        ax.margins(x=0.2)
    return _save(fig, path, format)


def forecast_chart(
    rows: Sequence[ForecastRow],
    path: str | os.PathLike[str],
    *,
    currency: str | None = None,
    title: str = "Forecast by close month",
    format: str | None = None,
) -> Path:
    """Draw the open pipeline by close month: unweighted amount and weighted forecast side
    by side, in ``currency`` (default: the first currency of the rows)."""
    fig = _figure()
    ax = fig.add_subplot()
    currency = currency or next((r.currency for r in rows if r.currency), None)
    months: dict[str, list[float]] = {}
    for r in rows:
        if r.currency != currency:
            continue
        key = "no date" if r.month is None else r.month.strftime("%Y-%m")
        acc = months.setdefault(key, [0.0, 0.0])
        acc[0] += float(r.amount)
        acc[1] += float(r.weighted)
    ax.set_title(title if currency is None else f"{title} ({currency})")
    if not months:
        _empty(ax)
    else:
        keys = sorted(months, key=lambda k: (k == "no date", k))
        xs = range(len(keys))
        ax.bar([x - 0.2 for x in xs], [months[k][0] for k in keys], 0.4, label="amount")
        ax.bar([x + 0.2 for x in xs], [months[k][1] for k in keys], 0.4, label="weighted")
        ax.set_xticks(list(xs), keys, rotation=45, ha="right")
        ax.legend()
    return _save(fig, path, format)


def sla_chart(
    rows: Sequence[PriorityRow],
    path: str | os.PathLike[str],
    *,
    title: str = "SLA compliance by priority",
    format: str | None = None,
) -> Path:
    """Draw first-response and resolution compliance (%) per ticket priority."""
    fig, ax = _titled(title)
    if not rows:
        _empty(ax)
    else:
        xs = range(len(rows))

        def pct(value: Any) -> float:
            return 0.0 if value is None else float(value) * 100

        first = [pct(r.first_response_compliance) for r in rows]
        resolved = [pct(r.resolution_compliance) for r in rows]
        ax.bar([x - 0.2 for x in xs], first, 0.4, label="first response", color=_BLUE)
        ax.bar([x + 0.2 for x in xs], resolved, 0.4, label="resolution", color=_GREEN)
        ax.set_xticks(list(xs), [r.priority for r in rows])
        ax.set_ylim(0, 105)
        ax.set_ylabel("% within target")
        ax.legend()
    return _save(fig, path, format)


def rfm_chart(
    rows: Sequence[OrderRfm],
    path: str | os.PathLike[str],
    *,
    title: str = "RFM grid",
    format: str | None = None,
) -> Path:
    """Draw the RFM grid: recency score (x) by frequency score (y), each cell shaded and
    labelled by the number of customers in it."""
    fig = _figure(6.0, 5.5)
    ax = fig.add_subplot()
    ax.set_title(title)
    grid = [[0] * 5 for _ in range(5)]
    for row in rows:
        grid[row.f - 1][row.r - 1] += 1
    image = ax.imshow(grid, origin="lower", cmap="Blues", extent=(0.5, 5.5, 0.5, 5.5))
    top = max(max(line) for line in grid) or 1
    for f in range(5):
        for r in range(5):
            shade = "white" if grid[f][r] > top / 2 else "black"  # readable on dark cells
            ax.text(r + 1, f + 1, str(grid[f][r]), ha="center", va="center", color=shade)
    ax.set_xticks(range(1, 6))
    ax.set_yticks(range(1, 6))
    ax.set_xlabel("recency score (5 = most recent)")
    ax.set_ylabel("frequency score (5 = most frequent)")
    fig.colorbar(image, ax=ax, label="customers")
    return _save(fig, path, format)


def nps_chart(
    rows: Sequence[NpsRow],
    path: str | os.PathLike[str],
    *,
    title: str = "NPS trend",
    format: str | None = None,
) -> Path:
    """Draw the NPS per period as a line over stacked bars of promoters, passives and
    detractors."""
    fig, ax = _titled(title)
    rows = [r for r in rows if r.responses]
    if not rows:
        _empty(ax)
        return _save(fig, path, format)
    labels = ["all" if r.period is None else r.period.isoformat() for r in rows]
    xs = list(range(len(rows)))
    promoters = [r.promoters for r in rows]
    passives = [r.passives for r in rows]
    detractors = [r.detractors for r in rows]
    ax.bar(xs, detractors, color=_RED, label="detractors")
    ax.bar(xs, passives, bottom=detractors, color=_GREY, label="passives")
    ax.bar(
        xs,
        promoters,
        bottom=[a + b for a, b in zip(detractors, passives, strict=True)],
        color=_GREEN,
        label="promoters",
    )
    ax.set_ylabel("responses")
    ax.set_xticks(xs, labels, rotation=45, ha="right")
    trend = ax.twinx()
    trend.plot(xs, [float(r.nps or 0) for r in rows], color="black", marker="o", label="NPS")
    trend.set_ylim(-100, 100)
    trend.set_ylabel("NPS")
    ax.legend(loc="upper left")
    return _save(fig, path, format)


def csat_chart(
    rows: Sequence[CsatRow],
    path: str | os.PathLike[str],
    *,
    title: str = "CSAT",
    format: str | None = None,
) -> Path:
    """Draw CSAT (share of satisfied responses, %) per group, labelled with the number of
    responses."""
    fig, ax = _titled(title)
    rows = [r for r in rows if r.responses]
    if not rows:
        _empty(ax)
    else:
        names = ["all" if r.key is None else r.key for r in rows]
        bars = ax.bar(names, [float(r.csat or 0) * 100 for r in rows], color=_BLUE)
        ax.bar_label(bars, labels=[f"n={r.responses}" for r in rows], padding=3)
        ax.set_ylim(0, 110)
        ax.set_ylabel("% satisfied (4-5)")
    return _save(fig, path, format)


# --- reports by name ----------------------------------------------------------------------


def _pick(options: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: options.pop(n) for n in names if n in options}


def _funnel(source: Any, path: Any, options: dict[str, Any]) -> Path:
    if "pipeline_id" not in options:
        raise ValidationError("pipeline_id", None, "is required for the funnel chart")
    pipeline_id = options.pop("pipeline_id")
    steps = source.reports.funnel(pipeline_id, **_pick(options, "since", "until"))
    return funnel_chart(steps, path, **options)


def _forecast(source: Any, path: Any, options: dict[str, Any]) -> Path:
    rows = source.reports.forecast(by="month", **_pick(options, "pipeline_id", "where"))
    return forecast_chart(rows, path, **options)


def _sla(source: Any, path: Any, options: dict[str, Any]) -> Path:
    rows = source.analytics.tickets_by_priority(**_pick(options, "since", "until", "where"))
    return sla_chart(rows, path, **options)


def _rfm(source: Any, path: Any, options: dict[str, Any]) -> Path:
    rows = source.orders.rfm(**_pick(options, "per", "as_of", "since", "currency", "where"))
    return rfm_chart(rows, path, **options)


def _nps(source: Any, path: Any, options: dict[str, Any]) -> Path:
    picked = _pick(options, "period", "since", "until", "where")
    picked.setdefault("period", "month")
    return nps_chart(source.satisfaction.nps(**picked), path, **options)


def _csat(source: Any, path: Any, options: dict[str, Any]) -> Path:
    picked = _pick(options, "by", "since", "until", "where")
    picked.setdefault("by", "priority")
    return csat_chart(source.satisfaction.csat(**picked), path, **options)


#: The charts :func:`render_chart` knows, by name.
CHARTS: dict[str, Callable[[Any, Any, dict[str, Any]], Path]] = {
    "funnel": _funnel,
    "forecast": _forecast,
    "sla": _sla,
    "rfm": _rfm,
    "nps": _nps,
    "csat": _csat,
}


def render_chart(report_name: str, crm: Any, path: str | os.PathLike[str], **options: Any) -> Path:
    """Run report ``report_name`` (a key of :data:`CHARTS`) on ``crm`` (a CRM or a user's
    view) and draw it into ``path`` (PNG or SVG by suffix, or ``format=``); returns the
    path. ``options`` go to the report (``pipeline_id``, ``since``, ``period``...) and the
    chart (``title``, ``format``).

    Raises ``ValidationError`` for an unknown chart, format or option, ``CRMError`` when
    matplotlib is not installed.
    """
    draw = CHARTS.get(report_name)
    if draw is None:
        raise ValidationError(
            "chart", report_name, f"is not a chart (known: {', '.join(sorted(CHARTS))})"
        )
    try:
        return draw(crm, path, dict(options))
    except TypeError as exc:
        raise ValidationError("options", options, f"are not accepted ({exc})") from None
