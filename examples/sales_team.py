"""A sales team: one pipeline, reps who see and move only their own deals, a manager who
sees the team's, and a weighted forecast computed in the database for each of them.

Run: python examples/sales_team.py [URL]   (default: an in-memory CRM)
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Any

import crmkit
from crmkit import Account, Deal, Money, Pipeline, Role, Stage, Team, User
from crmkit.entities import StageKind
from crmkit.query import F


def setup(crm: crmkit.CRM) -> dict[str, User]:
    """The pipeline, the roles and the people of the team."""
    crm.pipelines.add(
        Pipeline(
            name="New business",
            stages=(
                Stage(key="qualify", name="Qualify", probability=Decimal("0.1")),
                Stage(key="demo", name="Demo", probability=Decimal("0.3")),
                Stage(
                    key="proposal",
                    name="Proposal",
                    probability=Decimal("0.6"),
                    required_fields=("amount", "close_date"),
                ),
                Stage(key="won", name="Won", kind=StageKind.WON, probability=Decimal(1)),
                Stage(key="lost", name="Lost", kind=StageKind.LOST, probability=Decimal(0)),
            ),
        )
    )
    rep = crm.roles.add(
        Role(
            name="sales rep",
            permissions={
                "deals": {"create": "own", "read": "own", "update": "own"},
                "accounts": {"read": "all"},
                "pipelines": {"read": "all"},
                "stage_changes": {"read": "own"},
            },
        )
    )
    manager = crm.roles.add(
        Role(
            name="sales manager",
            permissions={
                "deals": {"create": "team", "read": "team", "update": "team", "delete": "team"},
                "accounts": {"read": "all"},
                "pipelines": {"read": "all"},
                "stage_changes": {"read": "all"},
            },
        )
    )
    emea = crm.teams.add(Team(name="EMEA sales"))
    people = {
        "maria": User(name="Maria (manager)", team_ids=[emea.id], role_ids=[manager.id]),
        "ravi": User(name="Ravi", team_ids=[emea.id], role_ids=[rep.id]),
        "sofia": User(name="Sofia", team_ids=[emea.id], role_ids=[rep.id]),
        "tom": User(name="Tom (another team)", role_ids=[rep.id]),
    }
    return {key: crm.users.add(user) for key, user in people.items()}


def main(url: str = "memory://") -> None:
    crm = crmkit.connect(url)
    people = setup(crm)
    sales = crm.pipelines.first(F.name == "New business")
    assert sales is not None
    today = crm.now().date()
    accounts = crm.accounts.add_many(
        Account(name=name, domain=domain)
        for name, domain in [("Acme", "acme.com"), ("Globex", "globex.com"), ("Umbrella", "umb.co")]
    )

    # Each rep works through their own view of the CRM: same API, their permissions.
    for who, account, amount, days in [
        ("ravi", accounts[0], "40000", 20),
        ("ravi", accounts[1], "15000", 50),
        ("sofia", accounts[2], "22000", 35),
        ("tom", accounts[1], "9000", 10),
    ]:
        view = crm.as_user(people[who])
        deal = view.deals.add(
            Deal(
                name=f"{account.name} - {who}",
                pipeline_id=sales.id,
                account_id=account.id,
                owner_id=people[who].id,
                team_id=people[who].team_ids[0] if people[who].team_ids else None,
                amount=Money(amount=Decimal(amount), currency="EUR"),
                close_date=today + dt.timedelta(days=days),
            )
        )
        view.deals.move(deal.id or "", "demo")
    ravi = crm.as_user(people["ravi"])
    first = ravi.deals.first(order_by="name")
    assert first is not None
    ravi.deals.move(first.id or "", "proposal")

    for who in ("ravi", "sofia", "maria"):
        view = crm.as_user(people[who])
        names = [d.name for d in view.deals.find(order_by="name")]
        print(f"{people[who].name} sees {len(names)} deal(s): {', '.join(names)}")

    # A rep cannot touch a colleague's deal; for them it does not even exist.
    sofias = crm.deals.first(F.owner_id == people["sofia"].id)
    assert sofias is not None
    try:
        ravi.deals.move(sofias.id or "", "proposal")
    except crmkit.NotFound:
        print("Ravi cannot move Sofia's deal: not found in his view")

    # Pipeline rules hold for everyone: proposal needs an amount and a close date.
    maria = crm.as_user(people["maria"])
    maria.deals.move(sofias.id or "", "proposal")
    maria.deals.move(sofias.id or "", "won")
    print("Maria moved Sofia's deal to won")

    print("\nWeighted forecast by owner (open deals, computed in the database):")
    owners = {u.id: u.name for u in people.values()}
    sources: list[tuple[str, Any]] = [("team (Maria)", maria), ("Ravi", ravi), ("whole CRM", crm)]
    for label, source in sources:
        rows = source.reports.forecast(by="owner")
        total = sum((r.weighted for r in rows), Decimal(0))
        print(f"  {label}: {total:,.2f} EUR weighted")
        for row in rows:
            owner = owners.get(row.owner_id, "-")
            print(f"    {owner:<20} {row.deals} deal(s) {row.weighted:>10,.2f}")
    rate = maria.reports.win_rate()
    print(f"\nTeam win rate: {rate.won} won, {rate.lost} lost")
    crm.close()


if __name__ == "__main__":
    main(*sys.argv[1:2])
