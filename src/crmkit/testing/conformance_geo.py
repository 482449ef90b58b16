"""Conformance tests of the location operator ``F.address.within_km(lat, lon, km)``.

Mixed into :class:`crmkit.testing.conformance.ConformanceSuite`, so every backend runs them
through its ``crm`` fixture: known distances, the antimeridian, a pole, records without
coordinates, a stored segment rule, ``F.related`` and a differential property test against
:mod:`crmkit.testing.reference` (which uses the same formula, :mod:`crmkit.geo`).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit import CRM, Account, Contact, Segment
from crmkit.entities import Address
from crmkit.errors import ValidationError
from crmkit.query import Expr, F, from_dict
from crmkit.testing import reference
from crmkit.testing import strategies as cs
from crmkit.testing._settings import SUITE_HEALTH_CHECKS

__all__ = ["GeoConformance"]

_GEO_DIFFERENTIAL = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[*SUITE_HEALTH_CHECKS, HealthCheck.data_too_large],
)

LONDON = (51.5074, -0.1278)
PARIS = (48.8566, 2.3522)  # 343.56 km from LONDON


def _at(name: str, lat: float | None, lon: float | None, city: str = "X") -> Contact:
    if lat is None or lon is None:
        return Contact(first_name=name, address=Address(city=city))
    return Contact(
        first_name=name,
        address=Address(city=city, latitude=Decimal(str(lat)), longitude=Decimal(str(lon))),
    )


def _names(crm: CRM, where: Expr) -> list[str | None]:
    return [c.first_name for c in crm.contacts.find(where, order_by="first_name")]


class GeoConformance:
    """``within_km`` gives the same answer on every backend."""

    def test_geo_known_distance_london_paris(self, crm: CRM) -> None:
        """Paris is 343.56 km from London: inside a 344 km circle, outside a 343 km one."""
        crm.contacts.add_many([_at("London", *LONDON), _at("Paris", *PARIS)])
        assert _names(crm, F.address.within_km(*LONDON, 344)) == ["London", "Paris"]
        assert _names(crm, F.address.within_km(*LONDON, 343)) == ["London"]
        assert _names(crm, F.address.within_km(*PARIS, 0.001)) == ["Paris"]
        assert crm.contacts.count(F.address.within_km(*LONDON, 344)) == 2

    def test_geo_across_the_antimeridian(self, crm: CRM) -> None:
        """A circle around Fiji covers longitudes on both sides of +-180."""
        crm.contacts.add_many(
            [
                _at("East", -17.0, -179.5),  # 92.8 km away, across the antimeridian
                _at("West", -17.5, 178.0),  # 190.9 km away
                _at("Far", -17.0, 170.0),  # 1042 km away
            ]
        )
        assert _names(crm, F.address.within_km(-17.5, 179.8, 100)) == ["East"]
        assert _names(crm, F.address.within_km(-17.5, 179.8, 200)) == ["East", "West"]
        assert _names(crm, F.address.within_km(-17.5, -180, 250)) == ["East", "West"]
        assert _names(crm, ~F.address.within_km(-17.5, 179.8, 100)) == ["Far", "West"]

    def test_geo_near_a_pole(self, crm: CRM) -> None:
        """Near the North Pole every longitude may be close: the box drops its longitudes."""
        crm.contacts.add_many(
            [
                _at("Across", 89.9, 179.0),  # 66.7 km away, on the other side of the pole
                _at("Side", 88.5, 90.0),  # 175.8 km away
                _at("South", 87.0, 0.0),  # 278.0 km away
                _at("Pole", 90.0, 0.0),
            ]
        )
        assert _names(crm, F.address.within_km(89.5, 0, 100)) == ["Across", "Pole"]
        assert _names(crm, F.address.within_km(89.5, 0, 200)) == ["Across", "Pole", "Side"]
        assert _names(crm, F.address.within_km(90, 0, 400)) == [
            "Across",
            "Pole",
            "Side",
            "South",
        ]
        assert _names(crm, F.address.within_km(-90, 0, 1000)) == []

    def test_geo_missing_coordinates_never_match(self, crm: CRM) -> None:
        """No address or no coordinates: never within; ``~`` matches exactly those."""
        crm.contacts.add_many(
            [
                _at("Here", *LONDON),
                _at("NoCoords", None, None),
                Contact(first_name="NoAddress"),
            ]
        )
        near = F.address.within_km(*LONDON, 20000)
        assert _names(crm, near) == ["Here"]
        assert _names(crm, ~near) == ["NoAddress", "NoCoords"]
        assert _names(crm, near | ~near) == ["Here", "NoAddress", "NoCoords"]

    def test_geo_refused_on_fields_without_coordinates(self, crm: CRM) -> None:
        """Only value objects with latitude/longitude take ``within_km``."""
        for where in (
            F.emails.within_km(0, 0, 1),
            F.address.city.within_km(0, 0, 1),
            F.first_name.within_km(0, 0, 1),
        ):
            with pytest.raises(ValidationError):
                crm.contacts.find(where)

    def test_geo_segment_rule_stored_and_evaluated(self, crm: CRM) -> None:
        """ "Contacts within 25 km of a store" as a stored segment rule."""
        crm.contacts.add_many(
            [
                _at("Camden", 51.539, -0.1426),  # 3.6 km from the store
                _at("Reading", 51.4543, -0.9781),  # 58 km
                _at("Paris", *PARIS),
            ]
        )
        rule = F.address.within_km(*LONDON, 25).to_dict()
        segment = crm.segments.add(Segment(name="near the store", rule=rule))
        stored = crm.segments.get(segment.id or "")
        assert from_dict(stored.rule) == F.address.within_km(*LONDON, 25)
        assert crm.segments.count(stored.id or "") == 1
        assert [c.first_name for c in crm.segments.members(stored.id or "")] == ["Camden"]

    def test_geo_inside_related(self, crm: CRM) -> None:
        """Contacts whose account is within 50 km of London, and those whose is not."""
        near, far = crm.accounts.add_many(
            [
                Account(
                    name="Near",
                    address=Address(
                        city="London", latitude=Decimal("51.50"), longitude=Decimal("-0.10")
                    ),
                ),
                Account(
                    name="Far",
                    address=Address(
                        city="Paris", latitude=Decimal("48.85"), longitude=Decimal("2.35")
                    ),
                ),
            ]
        )
        crm.contacts.add_many(
            [
                Contact(first_name="A", account_id=near.id),
                Contact(first_name="B", account_id=far.id),
                Contact(first_name="C"),
            ]
        )
        inside = F.related("account", F.address.within_km(*LONDON, 50))
        assert _names(crm, inside) == ["A"]
        assert _names(crm, ~inside) == ["B", "C"]
        by_account = F.related("contacts", F.first_name == "A")
        found = crm.accounts.find(by_account & F.address.within_km(*LONDON, 50))
        assert [a.name for a in found] == ["Near"]
        assert crm.accounts.count(F.address.within_km(*PARIS, 1)) == 1

    @_GEO_DIFFERENTIAL
    @given(
        records=st.lists(cs.contacts(), max_size=25),
        data=st.data(),
    )
    def test_differential_geo_matches_reference(
        self, crm: CRM, records: list[Contact], data: st.DataObject
    ) -> None:
        """Random contacts and random circles (alone, negated, combined): find() and
        count() equal the reference."""
        for old in crm.contacts.find():
            crm.contacts.delete(old.id or "")
        stored = list(crm.contacts.add_many(records))
        samples = cs.samples_from(stored, ["address"])
        for _ in range(4):
            lat, lon, km = data.draw(cs.circles(samples), label="circle")
            near: Expr = F.address.within_km(lat, lon, km)
            other = data.draw(cs.contact_filters(samples), label="other")
            for where in (near, ~near, near & other, near | ~other):
                got = [c.id for c in crm.contacts.find(where, order_by="id")]
                want = [c.id for c in reference.find(stored, where, order_by="id")]
                assert got == want, f"{where!r}: backend {got} != reference {want}"
                assert crm.contacts.count(where) == len(want)
