"""Privacy logic that needs no storage: tags, redaction, keyed digests, entity rules."""

from __future__ import annotations

import datetime as dt

import pytest

import crmkit
from crmkit import Contact
from crmkit.entities import AccountContact, Consent, Task, Ticket
from crmkit.entities import _fields as f
from crmkit.privacy import ERASED, _Redactor, personal_fields


def test_sensitivity_tags_are_checked_and_read() -> None:
    with pytest.raises(ValueError, match="sensitivity"):
        f.text(sensitivity="secret")
    assert personal_fields(Contact)["phones"] == "personal"
    assert personal_fields(Task) == {"description": "personal"}
    assert personal_fields(Ticket) == {"description": "personal"}
    assert "amount" not in personal_fields(crmkit.Deal)


def test_redactor_finds_emails_phones_and_whole_word_names() -> None:
    r = _Redactor(["ada@example.com"], ["+442079460958"], ["Ada", "Ada Lovelace"])
    text = "Ada Lovelace (ADA@example.com, +44 (20) 7946-0958) met Adam and ada"
    assert r.text(text) == f"{ERASED} ({ERASED}, {ERASED}) met Adam and {ERASED}"
    assert r.deep({"a": ["x ada@example.com"], "n": 3}) == {"a": [f"x {ERASED}"], "n": 3}
    assert _Redactor([], [], []).text("unchanged") == "unchanged"


def test_digests_are_keyed_and_normalized() -> None:
    crm = crmkit.connect("memory://", privacy_key="k" * 32)
    other = crmkit.connect("memory://", privacy_key="j" * 32)
    a = crm.privacy.digest("email", " Ada@Example.com", key=b"k" * 32)
    assert a == crm.privacy.digest("email", "ada@example.com", key=b"k" * 32)
    assert a != other.privacy.digest("email", "ada@example.com", key=b"j" * 32)
    assert "ada" not in a
    with pytest.raises(crmkit.ValidationError):
        crmkit.connect("memory://", privacy_key="short")


def test_erased_contact_may_be_empty_and_others_may_not() -> None:
    with pytest.raises(crmkit.ValidationError):
        Contact()
    assert Contact(erased_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)).name == ""


def test_consent_latest_decision_wins() -> None:
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    c = Contact(
        first_name="Ada",
        consents=[
            Consent(purpose="sms", granted=False, at=at + dt.timedelta(days=1)),
            Consent(purpose="sms", granted=True, at=at),
        ],
    )
    assert c.consent("sms") is False
    with pytest.raises(crmkit.ValidationError):
        Contact(first_name="Ada", consents=[{"purpose": "sms", "granted": True}])


def test_link_dates_are_ordered() -> None:
    with pytest.raises(crmkit.ValidationError, match="before started"):
        AccountContact(
            contact_id="c", account_id="a", started=dt.date(2024, 2, 1), ended=dt.date(2024, 1, 1)
        )
    with pytest.raises(crmkit.ValidationError):
        AccountContact(contact_id="c", account_id="a", role="astronaut")


def test_suppressed_is_a_validation_error() -> None:
    crm = crmkit.connect("memory://")
    crm.privacy.suppress(emails=["gone@example.com"], phones=["+1 415 555 0100"])
    assert crm.privacy.suppress(emails=["GONE@example.com"]) == 0
    with pytest.raises(crmkit.ValidationError):
        crm.contacts.add(Contact(emails=["gone@example.com"]))
    result = crm.contacts.add_many(
        [Contact(phones=["+14155550100"]), Contact(first_name="Ok")], on_error="collect"
    )
    assert len(result) == 1
    assert isinstance(result.rejected[0].errors[0], crmkit.Suppressed)
