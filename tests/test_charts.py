"""Charts: each report renders to a real PNG and SVG file (crmkit.charts)."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import crmkit
from crmkit import Deal, Money, Order, OrderLine, Pipeline, Stage, Ticket
from crmkit.charts import CHARTS, render_chart
from crmkit.entities import Priority, SurveyResponse
from crmkit.errors import ValidationError

pytest.importorskip("matplotlib")

UTC = dt.UTC
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (the first chunk after the signature)."""
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = _png_size(data)
    assert width >= 300
    assert height >= 300
    assert len(data) > 5_000  # drawn, not an empty canvas
    assert data.rstrip().endswith(b"IEND\xaeB`\x82")


def _check_svg(path: Path, *texts: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml")
    assert "<svg" in text
    assert text.rstrip().endswith("</svg>")
    assert len(text) > 5_000
    assert text.count("<path") + text.count("<use") > 5
    for t in texts:
        assert t in text


@pytest.fixture
def shop() -> tuple[Any, str]:
    """A CRM with deals in a pipeline, tickets, orders and survey responses."""
    crm = crmkit.connect("memory://")
    now = crm.now()
    pipeline = crm.pipelines.add(
        Pipeline(
            name="Sales",
            stages=[
                Stage(key="lead", name="Lead", probability=Decimal("0.1")),
                Stage(key="proposal", name="Proposal", probability=Decimal("0.5")),
                Stage(key="won", name="Won", probability=Decimal(1), kind="won"),
                Stage(key="lost", name="Lost", probability=Decimal(0), kind="lost"),
            ],
        )
    )
    for i in range(6):
        deal = crm.deals.add(
            Deal(
                name=f"Deal {i}",
                pipeline_id=pipeline.id,
                stage="lead",
                amount=Money(amount=1000 * (i + 1), currency="EUR"),
                close_date=(now + dt.timedelta(days=30 * i)).date(),
            )
        )
        if i % 2:
            crm.deals.move(deal.id or "", "proposal")
    for i, priority in enumerate([Priority.LOW, Priority.HIGH, Priority.URGENT, Priority.NORMAL]):
        ticket = crm.tickets.add(Ticket(subject=f"T{i}", priority=priority))
        crm.survey_responses.add(
            SurveyResponse(kind="csat", score=2 + i, ticket_id=ticket.id, responded_at=now)
        )
    for i in range(12):
        contact = crm.contacts.add(crmkit.Contact(first_name=f"C{i}"))
        for k in range(i % 4 + 1):
            crm.orders.upsert(
                Order(
                    external_id=f"o{i}-{k}",
                    contact_id=contact.id,
                    placed_at=now - dt.timedelta(days=7 * i + 30 * k),
                    lines=[
                        OrderLine(
                            sku="SKU1", quantity=1 + k, unit_price=Money(amount=10, currency="EUR")
                        )
                    ],
                )
            )
        crm.survey_responses.add(
            SurveyResponse(
                kind="nps", score=i % 11, responded_at=now - dt.timedelta(days=20 * (i % 4))
            )
        )
    return crm, pipeline.id or ""


@pytest.mark.parametrize("name", sorted(CHARTS))
@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_each_chart_renders_an_image_file(
    shop: tuple[Any, str], tmp_path: Path, name: str, suffix: str
) -> None:
    crm, pipeline_id = shop
    options: dict[str, Any] = {"pipeline_id": pipeline_id} if name == "funnel" else {}
    out = render_chart(name, crm, tmp_path / "charts" / f"{name}.{suffix}", **options)
    assert out == tmp_path / "charts" / f"{name}.{suffix}"
    if suffix == "png":
        _check_png(out)
    else:
        _check_svg(out)


def test_svg_holds_the_report_text(shop: tuple[Any, str], tmp_path: Path) -> None:
    crm, pipeline_id = shop
    out = render_chart("funnel", crm, tmp_path / "f.svg", pipeline_id=pipeline_id, title="Q3")
    _check_svg(out)
    text = out.read_text(encoding="utf-8")
    # matplotlib draws text as glyph paths, and names the text in comments
    assert "Q3" in text or "<!-- Q3 -->" in text


def test_charts_of_empty_reports_still_render(tmp_path: Path) -> None:
    crm = crmkit.connect("memory://")
    for name in ("forecast", "sla", "rfm", "nps", "csat"):
        _check_png(render_chart(name, crm, tmp_path / f"{name}.png"))


def test_format_option_and_bad_input(shop: tuple[Any, str], tmp_path: Path) -> None:
    crm, _ = shop
    out = render_chart("rfm", crm, tmp_path / "grid.out", format="png")
    _check_png(out)
    with pytest.raises(ValidationError):
        render_chart("pie", crm, tmp_path / "x.png")
    with pytest.raises(ValidationError):
        render_chart("rfm", crm, tmp_path / "x.gif")
    with pytest.raises(ValidationError):
        render_chart("funnel", crm, tmp_path / "x.png")  # no pipeline_id
    with pytest.raises(ValidationError):
        render_chart("nps", crm, tmp_path / "x.png", colour="red")
