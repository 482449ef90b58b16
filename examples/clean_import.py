"""Cleaning an imported CSV: import a messy export of another tool (rows that cannot be
stored are set aside with the reason), see the values normalized, find the duplicates it
contains, read why they match, merge them and export the clean list.

Run: python examples/clean_import.py [URL]   (default: an in-memory CRM; files are
written to the current directory)
"""

from __future__ import annotations

import csv
import pathlib
import sys

import crmkit
from crmkit.query import F

EXPORT = """\
Id,First name,Last name,E-mail,Phone,Company,Country
1,Ada,Lovelace,ADA@Acme.COM ,+44 (0)20 7946 0958,Acme,United Kingdom
2, grace ,HOPPER,grace@navy.mil,+1 (202) 555-0147,US Navy,USA
3,Ada,Lovelace,ada@acme.com,020 7946 0958,Acme,GB
4,Alan,Turing,alan@,+44 161 496 0000,Manchester Uni,United Kingdom
5,Grace,Hopper,g.hopper@navy.mil;grace@navy.mil,,US Navy,United States
6,Katherine,Johnson,kj@nasa.gov,+1 757 555 0110,NASA,Atlantis
7,Alan,Turing,alan@bletchley.org,+44 161 496 0000,,United Kingdom
"""

MAPPING = {
    "Id": "external_ids.oldcrm",
    "First name": "first_name",
    "Last name": "last_name",
    "E-mail": "emails",
    "Phone": "phones",
    "Company": "custom.company",
    "Country": "address.country",
}


def main(url: str = "memory://") -> None:
    source = pathlib.Path("oldcrm-export.csv")
    source.write_text(EXPORT, encoding="utf-8")
    # National numbers (020 ...) are read as British ones.
    crm = crmkit.connect(url, default_region="GB")

    summary = crm.imports.csv(source, "contacts", mapping=MAPPING, rejected_path="rejected.csv")
    print(
        f"imported {summary.rows} rows: {summary.created} created, "
        f"{summary.rejected} rejected (see rejected.csv)"
    )
    with open("rejected.csv", newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            print(f"  line {row['line']}: {row['reason']}")

    print("\nStored, normalized:")
    for contact in crm.contacts.find(order_by=["last_name", "first_name", "id"]):
        country = contact.address.country if contact.address else None
        print(f"  {contact.name:<18} {', '.join(contact.emails):<36} {country}")

    print("\nDuplicates, and why:")
    groups = crm.dedupe.find("contacts")
    for group in groups:
        print("  " + group.explain().replace("\n", "\n  "))

    for group in groups:
        survivor, *others = (str(i) for i in group.ids)
        crm.dedupe.merge(survivor, others)
    print(f"\nmerged {len(groups)} group(s); {crm.contacts.count()} contacts left")
    grace = crm.contacts.first(F.emails.contains("grace@navy.mil"))
    assert grace is not None
    print(f"  Grace now has {', '.join(grace.emails)} and ids {dict(grace.external_ids)}")

    written = crm.exports.csv(
        "contacts-clean.csv", "contacts", fields=["first_name", "last_name", "emails", "phones"]
    )
    print(f"\nwrote {written} contacts to contacts-clean.csv")
    crm.close()


if __name__ == "__main__":
    main(*sys.argv[1:2])
