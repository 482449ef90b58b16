"""Scoring models: the learned state of a predictive lead score."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity

__all__ = ["ScoringModel"]


@attrs.frozen(kw_only=True)
class ScoringModel(Entity):
    """The state of one naive-Bayes win model (``crm.scoring``), stored so that it survives
    a reconnect and is updated in the same transaction as the deal that closes.

    ``name`` identifies the model; ``features`` holds the feature definitions (as plain
    JSON, see :class:`crmkit.scoring.Feature`) and ``counts`` the won/lost counts: the
    deals of each outcome and, per feature, per value and outcome.
    ``trained_at`` is when it was last rebuilt from the closed deals.
    """

    collection: ClassVar[str] = "scoring_models"
    lookups: ClassVar[tuple[str, ...]] = ("name",)

    name: str = f.text(required=True, max_length=200)
    features: Any = f.json_document()
    counts: Any = f.json_document()
    trained_at: dt.datetime | None = f.timestamp()
