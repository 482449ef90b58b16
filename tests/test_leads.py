"""Lead conversion: account matching by work-email domain, lifecycle, deal, rollback."""

from __future__ import annotations

import pytest

import crmkit
from crmkit import Account, Contact, Deal, Pipeline, Stage, TransitionError, ValidationError
from crmkit.entities import LifecycleStage


@pytest.fixture
def crm() -> crmkit.CRM:
    crm = crmkit.connect("memory://")
    crm.pipelines.add(
        Pipeline(
            name="Sales",
            stages=[
                Stage(key="new", name="New"),
                Stage(key="quote", name="Quote", required_fields=["amount"]),
            ],
        )
    )
    return crm


def _pipeline(crm: crmkit.CRM) -> str:
    return crm.pipelines.find()[0].id or ""


def test_attaches_the_account_of_the_work_domain(crm: crmkit.CRM) -> None:
    acme = crm.accounts.add(Account(name="Acme", domain="acme.co.uk"))
    lead = crm.contacts.add(
        Contact(first_name="Ada", emails=["ada@hotmail.com", "ada@sales.acme.co.uk"], owner_id="u1")
    )
    result = crm.leads.convert(lead.id or "", deal=Deal(name="Pilot", pipeline_id=_pipeline(crm)))
    assert result.account == acme
    assert not result.account_created
    assert result.contact.account_id == acme.id
    assert result.contact.lifecycle_stage is LifecycleStage.OPPORTUNITY
    assert result.deal is not None
    assert (result.deal.account_id, result.deal.contact_ids, result.deal.owner_id) == (
        acme.id,
        (lead.id,),
        "u1",
    )
    assert result.deal.stage == "new"


def test_creates_an_account_or_none_for_free_mail(crm: crmkit.CRM) -> None:
    lead = crm.contacts.add(Contact(first_name="Bo", emails=["bo@initech-labs.com"]))
    result = crm.leads.convert(lead.id or "")
    assert result.account_created
    assert result.account is not None
    assert (result.account.name, result.account.domain) == ("Initech Labs", "initech-labs.com")
    assert result.contact.lifecycle_stage is LifecycleStage.CUSTOMER
    free = crm.contacts.add(Contact(first_name="Cy", emails=["cy@gmail.com"]))
    assert crm.leads.convert(free.id or "").account is None
    given = crm.contacts.add(Contact(first_name="Di", emails=["di@gmail.com"]))
    named = crm.leads.convert(given.id or "", account=Account(name="Di's shop"))
    assert named.account_created
    assert named.contact.account_id == named.account.id  # type: ignore[union-attr]


def test_failure_leaves_nothing_half_done(crm: crmkit.CRM) -> None:
    lead = crm.contacts.add(Contact(first_name="Ed", emails=["ed@newco.io"]))
    before = {name: repo.count() for name, repo in crm.repositories.items()}
    with pytest.raises(TransitionError, match="missing amount"):
        crm.leads.convert(
            lead.id or "", deal=Deal(name="Too early", pipeline_id=_pipeline(crm), stage="quote")
        )
    assert {name: repo.count() for name, repo in crm.repositories.items()} == before
    assert crm.accounts.count() == 0  # the account created on the way was rolled back
    assert crm.contacts.get(lead.id or "") == lead
    with pytest.raises(ValidationError):
        crm.leads.convert(lead.id or "", deal={"name": "x", "nonsense": 1})
    assert crm.contacts.get(lead.id or "") == lead
    crm.leads.convert(lead.id or "")
    with pytest.raises(ValidationError, match="already converted"):
        crm.leads.convert(lead.id or "")
