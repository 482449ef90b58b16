"""SQL statement reuse: frozen cache keys of memoized clauses, short ``IN`` lists, and
scoped lookups that must never see another user's scope or a stale share."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.sql import visitors

import crmkit
from crmkit import Contact, Role, Team, User
from crmkit.backends.sql.frozen import FrozenClause
from crmkit.entities.access import Access, Share
from crmkit.query import F


@pytest.fixture
def table() -> Any:
    metadata = sa.MetaData()
    t = sa.Table(
        "t",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.String),
        sa.Column("b", sa.String),
    )
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i, "a": f"a{i % 3}", "b": f"b{i % 5}"} for i in range(30)])
    yield engine, t
    engine.dispose()


def _ids(conn: Any, t: Any, where: Any) -> list[int]:
    return list(conn.execute(sa.select(t.c.id).where(where).order_by(t.c.id)).scalars())


def test_frozen_clauses_of_one_shape_keep_their_own_values(table: Any) -> None:
    engine, t = table

    def scope(a: str, b: str) -> Any:
        return sa.or_(t.c.a == a, t.c.b.in_([sa.bindparam(None, b, type_=sa.String())]))

    first, second = FrozenClause(scope("a1", "b2")), FrozenClause(scope("a2", "b3"))
    with engine.connect() as conn:
        for frozen, plain in [(first, scope("a1", "b2")), (second, scope("a2", "b3"))] * 2:
            for other in ("b1", "b4"):
                got = _ids(conn, t, sa.and_(t.c.b != other, frozen))
                assert got == _ids(conn, t, sa.and_(t.c.b != other, plain))
        negated = _ids(conn, t, sa.not_(sa.func.coalesce(first, sa.false())))
        assert sorted(negated + _ids(conn, t, first)) == list(range(30))
        copied = visitors.cloned_traverse(sa.select(t.c.id).where(first), {}, {})
        assert list(conn.execute(copied).scalars()) == _ids(conn, t, scope("a1", "b2"))


def _org(crm: crmkit.CRM) -> tuple[list[User], list[Contact]]:
    teams = crm.teams.add_many(Team(name=f"Team {t}") for t in range(3))
    reader = crm.roles.add(Role(name="reader", permissions={"contacts": {"read": "team"}}))
    users = crm.users.add_many(
        User(name=f"User {u}", team_ids=[teams[u % 3].id], role_ids=[reader.id]) for u in range(9)
    )
    contacts = crm.contacts.add_many(
        Contact(first_name="Ada", last_name=f"P{i % 4}", owner_id=users[i % 9].id)
        for i in range(90)
    )
    return list(users), list(contacts)


def test_scoped_lookups_keep_each_users_scope_and_see_new_shares() -> None:
    crm = crmkit.connect("sqlite://")
    users, contacts = _org(crm)
    views = [crm.as_user(u) for u in users[:3]]  # one user of each team
    for _ in range(3):  # repeated: the second round reuses the cached statements
        for view in views:
            mates = view.team_members()
            got = view.contacts.find(F.last_name == "P1", order_by="id", limit=50)
            want = [c for c in contacts if c.last_name == "P1" and c.owner_id in mates]
            assert [c.id for c in got] == sorted(c.id for c in want)
            assert view.contacts.count(F.last_name == "P1") == len(want)
            groups = view.contacts.aggregate(group_by=["last_name"])
            assert {g["last_name"]: g["count"] for g in groups} == {
                name: sum(1 for c in contacts if c.last_name == name and c.owner_id in mates)
                for name in ("P0", "P1", "P2", "P3")
            }
    outsider = next(c for c in contacts if c.owner_id not in views[0].team_members())
    assert views[0].contacts.find(F.id == outsider.id) == []
    assert views[0].contacts.aggregate(F.id == outsider.id) == [{"count": 0}]
    crm.repository(Share).add(
        Share(
            record_collection="contacts",
            record_id=outsider.id or "",
            user_id=users[0].id,
            access=Access.READ,
        )
    )
    assert [c.id for c in views[0].contacts.find(F.id == outsider.id)] == [outsider.id]
    assert views[0].contacts.aggregate(F.id == outsider.id) == [{"count": 1}]
    # the share is not another user's: the others see the record only through their team
    for view in views[1:]:
        expected = [outsider.id] if outsider.owner_id in view.team_members() else []
        assert [c.id for c in view.contacts.find(F.id == outsider.id)] == expected
    crm.close()


@pytest.mark.parametrize("size", [1, 32, 33, 200])
def test_in_lists_of_any_length(size: int) -> None:
    crm = crmkit.connect("sqlite://")
    added = crm.contacts.add_many(Contact(first_name=f"N{i}") for i in range(250))
    names = [f"N{i}" for i in range(size)] + ["nobody"]
    got = crm.contacts.find(F.first_name.in_(names), order_by="id")
    assert {c.first_name for c in got} == {f"N{i}" for i in range(size)}
    ids = [c.id or "" for c in added[:size]]
    assert len(crm.contacts.find(F.id.in_(ids))) == size
    crm.close()
