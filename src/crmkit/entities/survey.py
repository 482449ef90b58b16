"""Survey responses: customer satisfaction (CSAT) and Net Promoter Score (NPS)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity
from crmkit.errors import ValidationError

__all__ = ["SurveyKind", "SurveyResponse"]


class SurveyKind(enum.StrEnum):
    """The kind of survey: CSAT scores 1-5, NPS scores 0-10."""

    CSAT = "csat"
    NPS = "nps"


_RANGES = {SurveyKind.CSAT: (1, 5), SurveyKind.NPS: (0, 10)}


@attrs.frozen(kw_only=True)
class SurveyResponse(Entity):
    """One answer to a satisfaction survey.

    ``score`` is 1-5 for ``kind="csat"`` and 0-10 for ``kind="nps"``. A response is linked
    to a ticket (``ticket_id``: "how did we do?"), a campaign (``campaign_id``) and/or a
    contact and account. ``comment`` is the respondent's free text (personal data).
    """

    collection: ClassVar[str] = "survey_responses"
    lookups: ClassVar[tuple[str, ...]] = ("responded_at",)

    kind: SurveyKind = f.choice(SurveyKind, required=True)
    score: int | None = f.integer(minimum=0)
    responded_at: dt.datetime = f.timestamp(required=True)
    survey: str | None = f.text(max_length=200)
    contact_id: str | None = f.ref()
    account_id: str | None = f.ref()
    ticket_id: str | None = f.ref()
    campaign_id: str | None = f.ref()
    comment: str | None = f.text(max_length=20_000, sensitivity="personal")
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    custom: Any = f.mapping()

    def __attrs_post_init__(self) -> None:
        low, high = _RANGES[self.kind]
        if self.score is None:
            raise ValidationError("surveyresponse.score", None, "is required")
        if not low <= self.score <= high:
            raise ValidationError(
                "surveyresponse.score", self.score, f"must be {low}-{high} for {self.kind.value}"
            )
