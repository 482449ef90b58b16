"""Users, teams and roles: who works in the CRM and what they may do."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity

__all__ = ["Role", "Team", "User"]


@attrs.frozen(kw_only=True)
class User(Entity):
    """Someone who works in the CRM. ``admin`` grants everything."""

    collection: ClassVar[str] = "users"
    lookups: ClassVar[tuple[str, ...]] = ("email",)

    name: str = f.text(required=True, max_length=200)
    email: str | None = f.text(max_length=320)
    active: bool = f.flag(default=True)
    admin: bool = f.flag()
    team_ids: tuple[str, ...] = f.ref_list()
    role_ids: tuple[str, ...] = f.ref_list()


@attrs.frozen(kw_only=True)
class Team(Entity):
    """A group of users; records can belong to a team."""

    collection: ClassVar[str] = "teams"

    name: str = f.text(required=True, max_length=200)
    parent_id: str | None = f.ref()


@attrs.frozen(kw_only=True)
class Role(Entity):
    """A named set of grants.

    ``permissions`` maps a collection to an action to a scope:
    ``{"contacts": {"read": "team", "update": "own"}}`` (scopes: none, own, team, all).
    ``hidden_fields`` / ``readonly_fields`` map a collection to field paths.
    """

    collection: ClassVar[str] = "roles"

    name: str = f.text(required=True, max_length=200)
    # nested (collection -> action -> scope), so a JSON document, not a flat mapping
    permissions: Any = f.json_document()
    hidden_fields: Any = f.mapping()
    readonly_fields: Any = f.mapping()
