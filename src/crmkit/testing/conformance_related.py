"""Conformance tests of related-record predicates (``F.related``) in filters and segments.

Mixed into :class:`crmkit.testing.conformance.ConformanceSuite`, so every backend runs them
through its ``crm`` fixture: the four kinds of rule segments are built from ("has an
inbound email in the last 30 days", "has an open deal in stage X", "has a high-priority
ticket that is not closed", "belongs to an account whose industry is Y"), negation ("has
none"), nesting, segments' ``members``/``count``, a user's view, and a differential
property test against :mod:`crmkit.testing.reference` with random related predicates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit import CRM, Account, Contact, Deal, Interaction, Role, Segment, Ticket, User
from crmkit.entities import Direction, InteractionKind, Priority
from crmkit.errors import PermissionDenied, ValidationError
from crmkit.query import Expr, F, from_dict
from crmkit.testing import reference
from crmkit.testing import strategies as cs
from crmkit.testing._settings import SUITE_HEALTH_CHECKS

__all__ = ["RelatedConformance"]

UTC = dt.UTC

_RELATED_DIFFERENTIAL = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[*SUITE_HEALTH_CHECKS, HealthCheck.data_too_large],
)

#: The spec's four example rules over contacts.
RECENT_INBOUND_EMAIL = F.related(
    "interactions",
    (F.kind == "email")
    & (F.direction == "inbound")
    & F.occurred_at.within_last(dt.timedelta(days=30)),
)
OPEN_PROPOSAL = F.related("deals", (F.stage == "proposal") & ~F.closed_at.exists())
HIGH_OPEN_TICKET = F.related("tickets", (F.priority == "high") & ~F.status.in_(["solved"]))
SOFTWARE_ACCOUNT = F.related("account", F.industry == "software")


def _names(records: Sequence[Any]) -> list[str | None]:
    return [r.first_name for r in records]


def _world(crm: CRM) -> dict[str, Any]:
    """Three accounts, five contacts and their interactions, deals and tickets."""
    now = crm.now()
    acme, globex, initech = crm.accounts.add_many(
        [
            Account(name="Acme", industry="software"),
            Account(name="Globex", industry="retail"),
            Account(name="Initech"),
        ]
    )
    ada, bea, cy, di, ed = crm.contacts.add_many(
        [
            Contact(first_name="Ada", account_id=acme.id, owner_id="u1"),
            Contact(first_name="Bea", account_id=globex.id, owner_id="u1"),
            Contact(first_name="Cy", account_id=acme.id, owner_id="u2"),
            Contact(first_name="Di", owner_id="u2"),
            Contact(first_name="Ed", account_id=initech.id, owner_id="u1"),
        ]
    )
    email, call = InteractionKind.EMAIL, InteractionKind.CALL
    inbound, outbound = Direction.INBOUND, Direction.OUTBOUND

    def met(kind: InteractionKind, way: Direction, days: int, *who: Contact) -> Interaction:
        return Interaction(
            kind=kind,
            direction=way,
            occurred_at=now - dt.timedelta(days=days),
            contact_ids=tuple(c.id or "" for c in who),
            owner_id="u2" if days == 10 else "u1",
        )

    crm.interactions.add_many(
        [
            met(email, inbound, 5, ada),
            met(email, outbound, 2, bea),
            met(email, inbound, 60, cy),
            met(call, inbound, 1, di),
            met(email, inbound, 10, bea, ed),  # owned by u2
        ]
    )
    crm.deals.add_many(
        [
            Deal(name="D1", stage="proposal", contact_ids=(ada.id or "", cy.id or "")),
            Deal(name="D2", stage="proposal", closed_at=now, contact_ids=(bea.id or "",)),
            Deal(name="D3", stage="lead", contact_ids=(di.id or "",), account_id=globex.id),
        ]
    )
    crm.tickets.add_many(
        [
            Ticket(subject="T1", priority=Priority.HIGH, status="open", contact_id=bea.id),
            Ticket(subject="T2", priority=Priority.HIGH, status="solved", contact_id=cy.id),
            Ticket(subject="T3", priority=Priority.LOW, status="open", contact_id=ed.id),
        ]
    )
    return {"acme": acme, "globex": globex, "initech": initech}


def _everything(crm: CRM) -> dict[str, list[Any]]:
    """Every stored record of the related collections, as the reference evaluator takes them."""
    names = ("contacts", "accounts", "interactions", "deals", "tickets")
    return {n: list(crm.repositories[n].find()) for n in names}


class RelatedConformance:
    """``F.related`` predicates: the same members on every backend."""

    # --- the four spec examples ------------------------------------------------------------

    def test_related_interaction_kind_direction_recent(self, crm: CRM) -> None:
        """Has an inbound email in the last 30 days (list link); negation = has none."""
        _world(crm)
        hits = crm.contacts.find(RECENT_INBOUND_EMAIL, order_by="first_name")
        assert _names(hits) == ["Ada", "Bea", "Ed"]
        assert crm.contacts.count(RECENT_INBOUND_EMAIL) == 3
        assert _names(crm.contacts.find(~RECENT_INBOUND_EMAIL, order_by="first_name")) == [
            "Cy",
            "Di",
        ]

    def test_related_open_deal_in_stage(self, crm: CRM) -> None:
        """Has an open deal in stage X, combined with the record's own fields."""
        _world(crm)
        assert _names(crm.contacts.find(OPEN_PROPOSAL, order_by="first_name")) == ["Ada", "Cy"]
        mine = OPEN_PROPOSAL & (F.owner_id == "u1")
        assert _names(crm.contacts.find(mine)) == ["Ada"]
        assert crm.contacts.count(~OPEN_PROPOSAL | (F.first_name == "Ada")) == 4

    def test_related_ticket_high_not_closed(self, crm: CRM) -> None:
        """Has a high-priority ticket that is not closed (scalar link)."""
        _world(crm)
        assert _names(crm.contacts.find(HIGH_OPEN_TICKET)) == ["Bea"]
        assert crm.contacts.count(~F.related("tickets")) == 2  # Ada and Di have none

    def test_related_account_industry(self, crm: CRM) -> None:
        """Belongs to an account whose industry is Y ("belongs to": the contact's link)."""
        _world(crm)
        assert _names(crm.contacts.find(SOFTWARE_ACCOUNT, order_by="first_name")) == [
            "Ada",
            "Cy",
        ]
        # no account, or an account of another (or no) industry
        assert crm.contacts.count(~SOFTWARE_ACCOUNT) == 3
        assert crm.contacts.count(F.related("account")) == 4

    # --- segments --------------------------------------------------------------------------

    def test_related_segment_members_and_count(self, crm: CRM) -> None:
        """A stored rule with related predicates: count, ordered/limited pages, round trip."""
        _world(crm)
        rule = (RECENT_INBOUND_EMAIL | OPEN_PROPOSAL) & ~HIGH_OPEN_TICKET
        stored = rule.to_dict()
        assert from_dict(stored) == rule
        segment = crm.segments.add(Segment(name="engaged", rule=stored))
        sid = segment.id or ""
        assert crm.segments.count(sid) == 3  # Ada, Cy, Ed (Bea has a high open ticket)
        page = crm.segments.members(sid, order_by="-first_name", limit=2)
        assert _names(page) == ["Ed", "Cy"]
        rest = crm.segments.members(sid, order_by="-first_name", limit=2, after=page.next_cursor)
        assert _names(rest) == ["Ada"]
        assert rest.next_cursor is None
        # evaluated each time: a new related record changes the members
        crm.tickets.add(
            Ticket(
                subject="T4",
                priority=Priority.HIGH,
                contact_id=crm.contacts.first(F.first_name == "Ada").id,  # type: ignore[union-attr]
            )
        )
        assert crm.segments.count(sid) == 2
        accounts = crm.segments.add(
            Segment(
                name="with proposals",
                entity="accounts",
                rule=F.related("contacts", OPEN_PROPOSAL).to_dict(),
            )
        )
        assert [a.name for a in crm.segments.members(accounts.id or "", order_by="name")] == [
            "Acme"
        ]

    def test_related_nested_and_self_relations(self, crm: CRM) -> None:
        """Related inside related, and accounts related to accounts (parent/children)."""
        world = _world(crm)
        acme = world["acme"]
        crm.accounts.add(Account(name="Acme Labs", parent_id=acme.id, industry="research"))
        children = F.related("children", F.industry == "research")
        assert [a.name for a in crm.accounts.find(children)] == ["Acme"]
        assert [a.name for a in crm.accounts.find(F.related("parent", F.name == "Acme"))] == [
            "Acme Labs"
        ]
        assert crm.accounts.count(~F.related("parent")) == 3
        nested = F.related("account", F.related("deals", F.stage == "lead"))
        assert _names(crm.contacts.find(nested)) == ["Bea"]
        deep = F.related("account", F.related("children"))
        assert _names(crm.contacts.find(deep, order_by="first_name")) == ["Ada", "Cy"]

    def test_related_validation(self, crm: CRM) -> None:
        """Unknown relations and inner fields of the wrong entity raise ValidationError."""
        _world(crm)
        with pytest.raises(ValidationError):
            crm.contacts.find(F.related("friends"))
        with pytest.raises(ValidationError):
            crm.contacts.count(F.related("tickets", F.industry == "software"))
        with pytest.raises(ValidationError):
            from_dict({"related": "tickets", "where": {"field": "x", "op": "nope"}})
        bad = crm.segments.add(Segment(name="bad", rule={"related": "account", "where": {}}))
        with pytest.raises(ValidationError):
            crm.segments.count(bad.id or "")

    def test_related_through_user_view(self, crm: CRM) -> None:
        """In a user's view the related records are scoped too, and hidden fields refused."""
        _world(crm)
        role = crm.roles.add(
            Role(
                name="own",
                permissions={
                    "contacts": {"read": "all"},
                    "interactions": {"read": "own"},
                    "accounts": {"read": "all"},
                },
                hidden_fields={"interactions": ["outcome"], "accounts": ["industry"]},
            )
        )
        user = crm.users.add(User(name="U1", role_ids=(role.id or "",)))
        theirs = crm.interactions.first(F.owner_id == "u2")
        assert theirs is not None
        crm.interactions.update(attrs.evolve(theirs, owner_id=user.id))
        view = crm.as_user(user)
        # the view sees only its own interaction (the inbound email to Bea and Ed)
        assert _names(view.contacts.find(RECENT_INBOUND_EMAIL, order_by="first_name")) == [
            "Bea",
            "Ed",
        ]
        assert _names(crm.contacts.find(RECENT_INBOUND_EMAIL, order_by="first_name")) == [
            "Ada",
            "Bea",
            "Ed",
        ]
        # tickets are not granted at all: no related ticket is visible
        assert view.contacts.count(F.related("tickets")) == 0
        with pytest.raises(PermissionDenied):
            view.contacts.find(F.related("interactions", F.outcome == "won"))
        with pytest.raises(PermissionDenied):
            view.contacts.count(SOFTWARE_ACCOUNT)
        segment = crm.segments.add(Segment(name="inbound", rule=RECENT_INBOUND_EMAIL.to_dict()))
        assert crm.segments.count(segment.id or "") == 3

    # --- differential ----------------------------------------------------------------------

    @_RELATED_DIFFERENTIAL
    @given(
        accounts=st.lists(cs.accounts(), max_size=5),
        contacts=st.lists(cs.contacts(), max_size=10),
        interactions=st.lists(cs.interactions(), max_size=10),
        deals=st.lists(cs.deals(), max_size=6),
        tickets=st.lists(cs.tickets(), max_size=6),
        data=st.data(),
    )
    def test_differential_related_matches_reference(
        self,
        crm: CRM,
        accounts: list[Account],
        contacts: list[Contact],
        interactions: list[Interaction],
        deals: list[Deal],
        tickets: list[Ticket],
        data: st.DataObject,
    ) -> None:
        """Random linked records and random filters with related predicates (negated too):
        find() and count() on contacts and accounts equal the reference evaluator."""
        for repo in crm.repositories.values():
            for record in repo.find():
                repo.delete(record.id or "")
        added = crm.accounts.add_many([attrs.evolve(a, parent_id=None) for a in accounts])
        account_ids = [a.id for a in added]
        refs = st.sampled_from([None, *account_ids])
        for account in added:
            parent = data.draw(refs, label="parent_id")
            if parent is not None:
                crm.accounts.update(attrs.evolve(account, parent_id=parent))
        people = crm.contacts.add_many(
            [attrs.evolve(c, account_id=data.draw(refs, label="account_id")) for c in contacts]
        )
        contact_ids = [c.id or "" for c in people]
        some = st.lists(st.sampled_from(contact_ids), max_size=3, unique=True) if people else None
        one = st.sampled_from([None, *contact_ids])

        def linked(record: Any, many: str | None, single: str | None) -> Any:
            changes: dict[str, Any] = {"account_id": data.draw(refs, label="account_id")}
            if many is not None:
                changes[many] = tuple(data.draw(some)) if some is not None else ()
            if single is not None:
                changes[single] = data.draw(one, label=single)
            return attrs.evolve(record, **changes)

        crm.interactions.add_many(
            [
                linked(attrs.evolve(i, deal_id=None, ticket_id=None), "contact_ids", None)
                for i in interactions
            ]
        )
        crm.deals.add_many(
            [linked(attrs.evolve(d, pipeline_id=None), "contact_ids", None) for d in deals]
        )
        crm.tickets.add_many([linked(t, None, "contact_id") for t in tickets])
        world = _everything(crm)
        samples = {
            "contacts": cs.samples_from(world["contacts"], [s.path for s in cs.contact_specs()]),
            "accounts": cs.samples_from(world["accounts"], [s.path for s in cs.account_specs()]),
            "deals": cs.samples_from(world["deals"], [s.path for s in cs.deal_specs()]),
            "interactions": cs.samples_from(
                world["interactions"], [s.path for s in cs.interaction_specs()]
            ),
            "tickets": cs.samples_from(world["tickets"], [s.path for s in cs.ticket_specs()]),
        }
        for collection in ("contacts", "accounts"):
            repo = crm.repositories[collection]
            stored = world[collection]
            where: Expr = data.draw(
                cs.related_filters(collection, samples, nesting=2), label="where"
            )
            for expr in (where, ~where):
                want = reference.find(stored, expr, related=world)
                got = repo.find(expr)
                assert [r.id for r in got] == [r.id for r in want], repr(expr)
                assert repo.count(expr) == len(want), repr(expr)
