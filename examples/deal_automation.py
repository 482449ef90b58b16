"""An automation on domain events: when a deal enters "proposal", create a follow-up task
for its owner, due two days later. Handlers run after the change commits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import crmkit
from crmkit import Deal, Money, Pipeline, Stage, Task, User
from crmkit.entities import StageKind
from crmkit.events import DealStageChanged


def follow_up_on_proposals(crm: crmkit.CRM) -> None:
    """Subscribe the automation to ``crm``'s events."""

    def on_stage_changed(event: DealStageChanged) -> None:
        if event.to_stage != "proposal":
            return
        deal = event.record
        crm.tasks.add(
            Task(
                title=f"Follow up on the proposal for {deal.name}",
                deal_id=deal.id,
                account_id=deal.account_id,
                assignee_id=deal.owner_id,
                owner_id=deal.owner_id,
                due_at=event.at + dt.timedelta(days=2),
            )
        )

    crm.events.subscribe(DealStageChanged, on_stage_changed)


def main() -> None:
    crm = crmkit.connect("memory://")
    follow_up_on_proposals(crm)
    grace = crm.users.add(User(name="Grace", email="grace@example.com"))
    sales = crm.pipelines.add(
        Pipeline(
            name="Sales",
            stages=[
                Stage(key="qualify", name="Qualify", probability=Decimal("0.2")),
                Stage(
                    key="proposal",
                    name="Proposal",
                    probability=Decimal("0.6"),
                    required_fields=["amount", "close_date"],
                ),
                Stage(key="won", name="Won", kind=StageKind.WON, probability=Decimal(1)),
            ],
        )
    )
    deal = crm.deals.add(
        Deal(
            name="Acme renewal",
            pipeline_id=sales.id,
            owner_id=grace.id,
            amount=Money(amount=Decimal("48000"), currency="EUR"),
            close_date=dt.date.today() + dt.timedelta(days=30),
        )
    )
    print(f"{deal.name}: {deal.stage} ({deal.probability:.0%}), tasks: {crm.tasks.count()}")
    deal = crm.deals.move(deal.id or "", "proposal", by=grace.id)
    for task in crm.tasks.find():
        print(f"{deal.name}: {deal.stage} -> task {task.title!r} for {grace.name}, "
              f"due {task.due_at:%Y-%m-%d}")  # fmt: skip
    assert crm.tasks.count() == 1


if __name__ == "__main__":
    main()
