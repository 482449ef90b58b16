"""Knowledge-base articles."""

from __future__ import annotations

import enum
from typing import ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity

__all__ = ["Article", "ArticleStatus"]


class ArticleStatus(enum.StrEnum):
    """Whether an article is visible to customers."""

    DRAFT = "draft"
    PUBLISHED = "published"


@attrs.frozen(kw_only=True)
class Article(Entity):
    """A knowledge-base article, optionally linked to the tickets it answers."""

    collection: ClassVar[str] = "articles"

    title: str = f.text(required=True, max_length=500)
    body: str | None = f.text(max_length=1_000_000)
    tags: tuple[str, ...] = f.text_list()
    status: ArticleStatus = f.choice(ArticleStatus, default=ArticleStatus.DRAFT)
    ticket_ids: tuple[str, ...] = f.ref_list()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
