"""Conformance tests of permission views (``crm.as_user``), part of the shipped suite.

Every backend must enforce scopes in its queries, so these run on every backend through
:class:`crmkit.testing.conformance.ConformanceSuite`. The property test compares a view's
answers with a brute-force reference written from the rules in :mod:`crmkit.permissions`'
documentation, sharing no code with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crmkit
from crmkit import CRM, Contact, Role, Team, User
from crmkit.entities import Access, Share
from crmkit.query import And, Cond, Expr, F, Not, Or
from crmkit.testing import reference, strategies
from crmkit.testing._settings import SUITE_HEALTH_CHECKS

__all__ = ["PermissionsConformance"]

SCOPES = ("none", "own", "team", "all")
HIDEABLE = ("phones", "title", "custom.tier")


def _clear(crm: CRM) -> None:
    for name in ("shares", "contacts", "roles", "users", "teams", "audit_log"):
        repo: crmkit.repository.Repository[Any] = crm.repository(name)
        for record in repo.find():
            repo.delete(record.id or "")


def _fields(expr: Expr) -> Iterable[str]:
    if isinstance(expr, Cond):
        yield expr.field
    elif isinstance(expr, And | Or):
        for item in expr.items:
            yield from _fields(item)
    elif isinstance(expr, Not):
        yield from _fields(expr.item)


# --- the reference: the documented rules, written out plainly ---------------------------

_RANK = {name: rank for rank, name in enumerate(SCOPES)}


def reference_scope(user: User, roles: Sequence[Role], action: str) -> str:
    """The widest scope ``roles`` give ``user`` for ``action`` on contacts."""
    if not user.active:
        return "none"
    if user.admin:
        return "all"
    best = "none"
    for role in roles:
        scope = role.permissions.get("contacts", {}).get(action, "none")
        if _RANK[scope] > _RANK[best]:
            best = scope
    return best


def reference_hidden(user: User, roles: Sequence[Role]) -> set[str]:
    """Hidden contact fields: hidden by every role that lets the user read contacts."""
    if user.admin:
        return set()
    readers = [
        r for r in roles if r.permissions.get("contacts", {}).get("read", "none") != "none"
    ] or list(roles)
    if not readers:
        return set()
    hidden = set(readers[0].hidden_fields.get("contacts", ()))
    for role in readers[1:]:
        hidden &= set(role.hidden_fields.get("contacts", ()))
    return hidden


def reference_readable(
    user: User,
    roles: Sequence[Role],
    users: dict[str, User],
    shares: Sequence[Share],
    contact: Contact,
) -> bool:
    """May ``user`` read ``contact``?"""
    if not user.active:
        return False
    scope = reference_scope(user, roles, "read")
    if scope == "all":
        return True
    if scope in ("own", "team") and contact.owner_id == user.id:
        return True
    if scope == "team":
        if contact.team_id is not None and contact.team_id in user.team_ids:
            return True
        owner = users.get(contact.owner_id or "")
        if owner is not None and set(owner.team_ids) & set(user.team_ids):
            return True
    return any(
        s.record_id == contact.id
        and (s.user_id == user.id or (s.team_id is not None and s.team_id in user.team_ids))
        for s in shares
    )


@st.composite
def _world(draw: st.DrawFn) -> dict[str, Any]:
    team_names = ["t0", "t1", "t2"]
    roles = [
        {
            "name": f"role{i}",
            "read": draw(st.sampled_from(SCOPES)),
            "hidden": draw(st.lists(st.sampled_from(HIDEABLE), unique=True, max_size=2)),
        }
        for i in range(3)
    ]
    users = [
        {
            "name": f"user{i}",
            "teams": draw(st.lists(st.sampled_from(team_names), unique=True, max_size=2)),
            "roles": draw(st.lists(st.integers(0, 2), unique=True, max_size=2)),
            "admin": draw(st.booleans().filter(lambda b: True)) and draw(st.integers(0, 9)) == 0,
            "active": draw(st.integers(0, 9)) > 0,
        }
        for i in range(4)
    ]
    contacts = draw(
        st.lists(
            st.tuples(
                strategies.contacts(),
                st.none() | st.integers(0, 3),
                st.none() | st.sampled_from(team_names),
            ),
            max_size=14,
        )
    )
    shares = draw(
        st.lists(
            st.tuples(
                st.integers(0, 13),
                st.one_of(
                    st.tuples(st.just("user"), st.integers(0, 3)),
                    st.tuples(st.just("team"), st.sampled_from(team_names)),
                ),
                st.sampled_from(["read", "write"]),
            ),
            max_size=4,
        )
    )
    return {"roles": roles, "users": users, "contacts": contacts, "shares": shares}


class PermissionsConformance:
    """Permission views filter in the query, mask hidden fields and refuse bypasses."""

    # -- fixtures built from the backend's ``crm`` fixture ---------------------------------

    @pytest.fixture
    def org(self, crm: CRM) -> dict[str, Any]:
        """Two teams, a sales role (team read, own write, phones hidden, lead_source
        read-only), and four users."""
        emea = crm.teams.add(Team(name="EMEA"))
        apac = crm.teams.add(Team(name="APAC"))
        sales = crm.roles.add(
            Role(
                name="sales",
                permissions={
                    "contacts": {"read": "team", "create": "own", "update": "own", "delete": "own"}
                },
                hidden_fields={"contacts": ["phones", "custom.salary"]},
                readonly_fields={"contacts": ["lead_source"]},
            )
        )
        alice = crm.users.add(
            User(name="Alice", team_ids=(emea.id or "",), role_ids=(sales.id or "",))
        )
        bob = crm.users.add(User(name="Bob", team_ids=(emea.id or "",), role_ids=(sales.id or "",)))
        carol = crm.users.add(
            User(name="Carol", team_ids=(apac.id or "",), role_ids=(sales.id or "",))
        )
        root = crm.users.add(User(name="Root", admin=True))
        contacts = {
            name: crm.contacts.add(
                Contact(
                    first_name=name,
                    owner_id=owner.id,
                    phones=("+14155550123",),
                    custom={"salary": 100, "tier": "gold"},
                    lead_source="web",
                )
            )
            for name, owner in (("ann", alice), ("ben", bob), ("cat", carol))
        }
        return {"alice": alice, "bob": bob, "carol": carol, "root": root, **contacts}

    def test_view_reads_are_scoped_in_the_query(self, crm: CRM, org: dict[str, Any]) -> None:
        alice = crm.as_user(org["alice"].id)
        names = [c.first_name for c in alice.contacts.find(order_by="first_name")]
        assert names == ["ann", "ben"]  # ben's owner shares a team with alice
        assert alice.contacts.count() == 2
        assert alice.contacts.count(F.first_name == "cat") == 0
        page = alice.contacts.page(order_by="first_name", limit=1)
        assert [c.first_name for c in page] == ["ann"]
        assert page.next_cursor is not None
        rest = alice.contacts.page(order_by="first_name", limit=5, after=page.next_cursor)
        assert [c.first_name for c in rest] == ["ben"]
        assert [c.first_name for c in alice.contacts.iterate(order_by="first_name")] == [
            "ann",
            "ben",
        ]
        carol = crm.as_user(org["carol"].id)
        assert [c.first_name for c in carol.contacts.find()] == ["cat"]

    def test_inactive_user_sees_nothing_and_hidden_fields_stay_hidden(
        self, crm: CRM, org: dict[str, Any]
    ) -> None:
        gone = crm.users.update(attrs.evolve(org["alice"], active=False))
        view = crm.as_user(gone.id or "")
        assert view.contacts.find() == []
        assert view.contacts.count() == 0
        with pytest.raises(crmkit.NotFound):
            view.contacts.get(org["ann"].id)
        with pytest.raises(crmkit.PermissionDenied):
            view.contacts.find(F.phones.exists())
        with pytest.raises(crmkit.PermissionDenied):
            view.contacts.add(Contact(first_name="x", owner_id=gone.id))
        assert crm.contacts.count() == 3

    def test_get_outside_scope_is_not_found(self, crm: CRM, org: dict[str, Any]) -> None:
        alice = crm.as_user(org["alice"].id)
        with pytest.raises(crmkit.NotFound):
            alice.contacts.get(org["cat"].id)
        assert alice.contacts.get_many([org["cat"].id, org["ann"].id])[0].first_name == "ann"
        for missing in (["a", "list"], 5, "no-such-id"):
            with pytest.raises(crmkit.NotFound):
                alice.contacts.delete(missing)  # type: ignore[arg-type]

    def test_hidden_fields_are_masked_and_unusable(self, crm: CRM, org: dict[str, Any]) -> None:
        alice = crm.as_user(org["alice"].id)
        ann = alice.contacts.get(org["ann"].id)
        assert ann.phones == ()
        assert "salary" not in ann.custom
        assert ann.custom["tier"] == "gold"
        for where in (
            F.phones.contains("+14155550123"),
            F.phones.exists(),
            ~F.custom.salary.exists(),
            (F.first_name == "ann") | (F.custom.salary > 5),
        ):
            with pytest.raises(crmkit.PermissionDenied):
                alice.contacts.find(where)
            with pytest.raises(crmkit.PermissionDenied):
                alice.contacts.count(where)
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.find(order_by="-phones")

    def test_update_keeps_hidden_values(self, crm: CRM, org: dict[str, Any]) -> None:
        alice = crm.as_user(org["alice"].id)
        ann = alice.contacts.get(org["ann"].id)
        changed = alice.contacts.update(attrs.evolve(ann, title="CTO"))
        assert changed.phones == ()
        stored = crm.contacts.get(org["ann"].id)
        assert stored.title == "CTO"
        assert stored.phones == ("+14155550123",)
        assert stored.custom["salary"] == 100

    @pytest.mark.parametrize(
        "change",
        [
            {"owner_id": "someone-else"},
            {"phones": ("+14155550199",)},
            {"lead_source": "fair"},
            {"custom": {"tier": "gold", "salary": 1}},
        ],
        ids=["owner", "hidden", "readonly", "hidden-custom"],
    )
    def test_forbidden_updates_change_nothing(
        self, crm: CRM, org: dict[str, Any], change: dict[str, Any]
    ) -> None:
        alice = crm.as_user(org["alice"].id)
        ann = alice.contacts.get(org["ann"].id)
        before = crm.contacts.get(org["ann"].id)
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.update(attrs.evolve(ann, **change))
        assert crm.contacts.get(org["ann"].id) == before

    def test_a_read_only_owner_is_still_filled_in(self, crm: CRM, org: dict[str, Any]) -> None:
        """With ``owner_id`` read-only, a new record is the user's own; only setting
        another owner is refused."""
        role = crm.roles.add(
            Role(
                name="intern",
                permissions={"contacts": {"read": "own", "create": "own"}},
                readonly_fields={"contacts": ["owner_id"]},
            )
        )
        intern = crm.users.add(User(name="Ivy", role_ids=(role.id or "",)))
        view = crm.as_user(intern.id or "")
        assert view.contacts.add(Contact(first_name="Ida")).owner_id == intern.id
        with pytest.raises(crmkit.PermissionDenied):
            view.contacts.add(Contact(first_name="Ody", owner_id=org["bob"].id))
        assert crm.contacts.count(F.first_name == "Ody") == 0

    def test_writes_outside_scope_are_refused(self, crm: CRM, org: dict[str, Any]) -> None:
        alice = crm.as_user(org["alice"].id)
        ben = alice.contacts.get(org["ben"].id)  # readable (team), not alice's to change
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.update(attrs.evolve(ben, title="x"))
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.delete(org["ben"].id)
        with pytest.raises(crmkit.NotFound):
            alice.contacts.delete(org["cat"].id)
        with pytest.raises(crmkit.NotFound):
            alice.contacts.update(attrs.evolve(org["cat"], title="x"))
        assert crm.contacts.count() == 3
        assert crm.contacts.get(org["ben"].id).title is None

    def test_bulk_writes_are_all_or_nothing(self, crm: CRM, org: dict[str, Any]) -> None:
        alice = crm.as_user(org["alice"].id)
        rows = [Contact(first_name="mine"), Contact(first_name="theirs", owner_id=org["bob"].id)]
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.add_many(rows)
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.add_many(rows, on_error="collect")
        assert crm.contacts.count() == 3
        created = alice.contacts.add_many([Contact(first_name="one"), Contact(first_name="two")])
        assert {c.owner_id for c in created} == {org["alice"].id}

    def test_creating_with_hidden_values_is_refused(self, crm: CRM, org: dict[str, Any]) -> None:
        alice = crm.as_user(org["alice"].id)
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.add(Contact(first_name="x", phones=("+14155550100",)))
        assert crm.contacts.count() == 3

    def test_writes_are_audited_with_the_actor(self, crm: CRM, org: dict[str, Any]) -> None:
        alice = crm.as_user(org["alice"].id)
        ann = alice.contacts.get(org["ann"].id)
        alice.contacts.update(attrs.evolve(ann, title="CTO"))
        new = alice.contacts.add(Contact(first_name="new"))
        alice.contacts.delete(new.id or "")
        entries = crm.audit_log.find(F.actor_id == org["alice"].id, order_by="id")
        assert [(e.action, e.record_id) for e in entries] == [
            ("update", org["ann"].id),
            ("create", new.id),
            ("delete", new.id),
        ]
        assert entries[0].changed == ("title",)
        assert entries[0].record_collection == "contacts"

    def test_shares_grant_single_records(self, crm: CRM, org: dict[str, Any]) -> None:
        crm.shares.add(
            Share(record_collection="contacts", record_id=org["cat"].id, user_id=org["alice"].id)
        )
        alice = crm.as_user(org["alice"].id)
        cat = alice.contacts.get(org["cat"].id)
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.update(attrs.evolve(cat, title="x"))
        crm.shares.add(
            Share(
                record_collection="contacts",
                record_id=org["cat"].id,
                team_id=org["alice"].team_ids[0],
                access=Access.WRITE,
            )
        )
        alice = crm.as_user(org["alice"].id)
        assert alice.contacts.update(attrs.evolve(cat, title="x")).title == "x"
        with pytest.raises(crmkit.PermissionDenied):
            alice.contacts.delete(org["cat"].id)

    def test_admin_and_inactive_users(self, crm: CRM, org: dict[str, Any]) -> None:
        root = crm.as_user(org["root"].id)
        assert root.contacts.count() == 3
        assert root.contacts.get(org["ann"].id).phones == ("+14155550123",)
        gone = crm.users.update(attrs.evolve(org["alice"], active=False))
        assert crm.as_user(gone.id or "").contacts.count() == 0
        nobody = crm.users.add(User(name="Nobody"))
        assert crm.as_user(nobody.id or "").contacts.find() == []
        with pytest.raises(crmkit.PermissionDenied):
            crm.as_user(nobody.id or "").contacts.add(Contact(first_name="x"))

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=SUITE_HEALTH_CHECKS,
    )
    @given(world=_world(), data=st.data())
    def test_views_match_the_reference(self, crm: CRM, world: dict[str, Any], data: Any) -> None:
        _clear(crm)
        team_ids = {name: crm.teams.add(Team(name=name)).id or "" for name in ("t0", "t1", "t2")}
        roles = [
            crm.roles.add(
                Role(
                    name=r["name"],
                    permissions={"contacts": {"read": r["read"]}},
                    hidden_fields={"contacts": r["hidden"]},
                )
            )
            for r in world["roles"]
        ]
        users = [
            crm.users.add(
                User(
                    name=u["name"],
                    team_ids=tuple(team_ids[t] for t in u["teams"]),
                    role_ids=tuple(roles[i].id or "" for i in u["roles"]),
                    admin=u["admin"],
                    active=u["active"],
                )
            )
            for u in world["users"]
        ]
        contacts = crm.contacts.add_many(
            attrs.evolve(
                c,
                owner_id=None if owner is None else users[owner].id,
                team_id=None if team is None else team_ids[team],
            )
            for c, owner, team in world["contacts"]
        ).added
        shares = [
            crm.shares.add(
                Share(
                    record_collection="contacts",
                    record_id=contacts[index].id or "",
                    user_id=users[who].id if kind == "user" else None,
                    team_id=team_ids[who] if kind == "team" else None,
                    access=access,
                )
            )
            for index, (kind, who), access in world["shares"]
            if index < len(contacts)
        ]
        by_id = {u.id or "": u for u in users}
        where = data.draw(
            strategies.contact_filters(strategies.samples_from(contacts, ["first_name", "title"]))
        )
        for user in users:
            user_roles = [roles[i] for i in world["users"][users.index(user)]["roles"]]
            hidden = reference_hidden(user, user_roles)
            view = crm.as_user(user.id or "")
            if any(p == h or p.startswith(h + ".") for p in _fields(where) for h in hidden):
                with pytest.raises(crmkit.PermissionDenied):
                    view.contacts.find(where)
                continue
            expected = sorted(
                c.id or ""
                for c in contacts
                if reference_readable(user, user_roles, by_id, shares, c)
                and reference.matches(where, c)
            )
            got = view.contacts.find(where, order_by="id")
            assert [c.id for c in got] == expected
            assert view.contacts.count(where) == len(expected)
            for record in got:
                for path in hidden:
                    column, _, key = path.partition(".")
                    value = getattr(record, column)
                    assert (key not in value) if key else value in (None, ())
