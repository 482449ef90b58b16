"""Accounts: the companies and organizations contacts belong to."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Address, Entity

__all__ = ["Account"]


@attrs.frozen(kw_only=True)
class Account(Entity):
    """A company or organization.

    ``domain`` is the registrable domain (``acme.com``) used to match work emails to the
    account; ``parent_id`` builds account hierarchies; ``external_ids`` maps a source
    system to its id for this account (``{"erp": "C-1042"}``).
    """

    collection: ClassVar[str] = "accounts"
    lookups: ClassVar[tuple[str, ...]] = ("domain", "phones", "name")

    name: str = f.text(required=True, max_length=500)
    domain: str | None = f.text(max_length=255)
    website: str | None = f.text(max_length=2000)
    industry: str | None = f.text(max_length=200)
    parent_id: str | None = f.ref()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    phones: tuple[str, ...] = f.text_list()
    address: Address | None = f.value_object(Address)
    tags: tuple[str, ...] = f.text_list()
    custom: Any = f.mapping()
    external_ids: Any = f.text_mapping()
