"""The spherical cap of :func:`crmkit.geo.cap_radians` never loses a point the exact test
keeps (MongoDB pre-filters ``within_km`` with it, then applies the exact test)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import geo

latitudes = st.floats(-90, 90)
longitudes = st.floats(-180, 180)
radii = st.one_of(
    st.floats(1e-6, 1.0), st.floats(1.0, 20_100.0), st.sampled_from([1e-3, 0.5, 344.0, 10_007.5])
)


def _destination(lat: float, lon: float, bearing: float, angle: float) -> tuple[float, float]:
    """The point ``angle`` radians from (lat, lon) along ``bearing`` (spherical formula)."""
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(
        max(
            -1.0,
            min(
                1.0,
                math.sin(p1) * math.cos(angle) + math.cos(p1) * math.sin(angle) * math.cos(bearing),
            ),
        )
    )
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(angle) * math.cos(p1),
        math.cos(angle) - math.sin(p1) * math.sin(p2),
    )
    lon2 = (math.degrees(l2) + 540.0) % 360.0 - 180.0
    return math.degrees(p2), max(-180.0, min(180.0, lon2))


def _angle(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """The angle between two unit vectors, by atan2 (well conditioned everywhere)."""
    cross = (
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    )
    dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    return math.atan2(math.hypot(*cross), dot)


@settings(max_examples=500, deadline=None)
@given(
    lat=latitudes,
    lon=longitudes,
    km=radii,
    bearing=st.floats(0, 2 * math.pi),
    nudge=st.floats(-1e-6, 1e-6),
)
def test_the_cap_contains_every_point_the_exact_test_keeps(
    lat: float, lon: float, km: float, bearing: float, nudge: float
) -> None:
    # a point on (or within a hair of) the circle: the hardest case for the pre-filter
    angle = min(km / geo.EARTH_RADIUS_KM, math.pi) * (1 + nudge)
    plat, plon = _destination(lat, lon, bearing, angle)
    centre = geo.unit_vector(lat, lon)
    radians = geo.cap_radians(km)
    if radians is None:
        assert km / geo.EARTH_RADIUS_KM > math.pi - 2e-3
        return
    assert radians > km / geo.EARTH_RADIUS_KM
    if not geo.within(plat, plon, centre, geo.chord_limit(km)):
        return
    point = geo.unit_vector(plat, plon)
    # the server's containment test: squared chord against the cap's (2 sin(r/2))^2 ...
    assert geo.squared_chord(point, centre) <= (2 * math.sin(radians / 2)) ** 2
    # ... with room to spare for its own rounding, measured by an independent formula
    assert _angle(point, centre) <= radians - 1e-6


def test_cap_radians_is_the_angle_plus_a_small_margin() -> None:
    assert geo.cap_radians(6.3710088) == 1e-3 + 1e-5
    assert geo.cap_radians(1e-9) == 1e-9 / geo.EARTH_RADIUS_KM + 1e-5
    assert geo.cap_radians(20_000.0) is not None
    assert geo.cap_radians(math.pi * geo.EARTH_RADIUS_KM) is None
    assert geo.cap_radians(1e9) is None
