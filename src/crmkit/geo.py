"""Great-circle distance on a spherical Earth, shared by every backend.

``F.address.within_km(lat, lon, km)`` must give identical results on every backend, so all
of them evaluate one formula in the same operation order:

- a point (latitude ``φ``, longitude ``λ``, in degrees) becomes the unit vector
  ``(cos φ·cos λ, cos φ·sin λ, sin φ)``, with degrees turned into radians by multiplying by
  :data:`RADIANS_PER_DEGREE`;
- the squared chord between two points is ``(dx·dx + dy·dy) + dz·dz``;
- a point is within ``km`` of the centre when that squared chord is ``<=``
  :func:`chord_limit` ``(km)`` = ``(2·sin(θ/2))²`` with ``θ = km / R``.

The squared chord divided by four is exactly the haversine of the central angle, so this is
the haversine great-circle test; it is written with the chord because it needs only
``sin``/``cos`` of each point (MongoDB stores the unit vector beside the address and compares
with plain arithmetic) and no ``asin``/``atan2`` at query time. The Earth is a sphere of
radius :data:`EARTH_RADIUS_KM` (the IUGG mean radius, 6371.0088 km).

Backends may narrow the search first with :func:`bounding_box` (a latitude/longitude range)
or :func:`cap_radians` (a spherical cap for a geospatial index, MongoDB's ``$centerSphere``),
both supersets of the exact test, so the result is decided by the exact test alone. No
library is used: the test has to be spelled out identically in SQL and MongoDB expressions
anyway, and a geodesy library's ellipsoidal distances would differ from what the databases
can compute.
"""

from __future__ import annotations

import math
from decimal import Decimal

import attrs

__all__ = [
    "EARTH_RADIUS_KM",
    "RADIANS_PER_DEGREE",
    "BoundingBox",
    "bounding_box",
    "cap_radians",
    "chord_limit",
    "distance_km",
    "squared_chord",
    "unit_vector",
    "within",
]

#: Mean Earth radius (IUGG), in kilometres.
EARTH_RADIUS_KM = 6371.0088
#: Degrees to radians, as one multiplication every backend performs.
RADIANS_PER_DEGREE = math.pi / 180.0
# widening of the bounding box, in degrees (about 10 m): it only has to cover rounding
_MARGIN = 1e-4
# widening of a spherical cap, in radians (about 64 m), and the largest cap radius used
# (caps reaching nearly the antipode select everything anyway); see cap_radians
_CAP_MARGIN = 1e-5
_CAP_MAX = math.pi - 1e-3


def unit_vector(
    latitude: float | Decimal, longitude: float | Decimal
) -> tuple[float, float, float]:
    """The point as a unit vector ``(x, y, z)`` (see the module docstring for the order)."""
    lat = float(latitude) * RADIANS_PER_DEGREE
    lon = float(longitude) * RADIANS_PER_DEGREE
    c = math.cos(lat)
    return (c * math.cos(lon), c * math.sin(lon), math.sin(lat))


def squared_chord(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """``(dx·dx + dy·dy) + dz·dz`` between two unit vectors."""
    dx = a[0] - b[0]
    dy = a[1] - b[1]
    dz = a[2] - b[2]
    return (dx * dx + dy * dy) + dz * dz


def chord_limit(km: float) -> float:
    """The largest squared chord of a point within ``km`` of the centre."""
    theta = min(km / EARTH_RADIUS_KM, math.pi)
    s = 2.0 * math.sin(theta / 2.0)
    return s * s


def within(
    latitude: float | Decimal | None,
    longitude: float | Decimal | None,
    centre: tuple[float, float, float],
    limit: float,
) -> bool:
    """The point is within the radius whose :func:`chord_limit` is ``limit`` of ``centre``
    (a :func:`unit_vector`); a point without coordinates never is."""
    if latitude is None or longitude is None:
        return False
    return squared_chord(unit_vector(latitude, longitude), centre) <= limit


def distance_km(
    lat1: float | Decimal, lon1: float | Decimal, lat2: float | Decimal, lon2: float | Decimal
) -> float:
    """The great-circle distance between two points, in kilometres."""
    chord = math.sqrt(squared_chord(unit_vector(lat1, lon1), unit_vector(lat2, lon2)))
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, chord / 2.0))


def cap_radians(km: float) -> float | None:
    """The angular radius (radians) of a spherical cap around the centre that contains
    every point :func:`within` ``km`` of it, or None when that cap would be (nearly) the
    whole sphere and is no use as a pre-filter.

    The cap is a pre-filter for a geospatial index (MongoDB's ``$centerSphere``, which
    takes radians: the angle is ``km`` over crmkit's :data:`EARTH_RADIUS_KM`, so the
    server's own Earth radius never enters). It is the exact angle widened by
    ``1e-5`` rad (about 64 m). Why that is enough: the server tests a point against a cap
    the same way (squared chord of unit vectors against ``(2·sin(r/2))²``) and both sides
    compute unit vectors and squared chords in doubles with an absolute error below about
    ``2e-14``; widening the angle by ``m`` raises the squared-chord limit by
    ``4·sin(θ + m/2)·sin(m/2)``, at least ``m² = 1e-10`` for any ``θ`` up to
    ``π - 1e-3`` (where the sine factor stops shrinking towards 0), thousands of times the
    rounding of both tests together.
    """
    radians = min(km / EARTH_RADIUS_KM, math.pi) + _CAP_MARGIN
    return radians if radians <= _CAP_MAX else None


@attrs.frozen
class BoundingBox:
    """Latitude range and longitude ranges (none: any longitude) covering a circle."""

    min_lat: float
    max_lat: float
    lon_ranges: tuple[tuple[float, float], ...]


def bounding_box(latitude: float, longitude: float, km: float) -> BoundingBox:
    """A box (slightly widened) containing every point within ``km`` of the centre.

    Near a pole (the circle reaches it) any longitude may match; a box crossing the
    antimeridian becomes two longitude ranges.
    """
    angle = km / EARTH_RADIUS_KM
    dlat = math.degrees(angle) + _MARGIN
    min_lat, max_lat = latitude - dlat, latitude + dlat
    if min_lat <= -90.0 or max_lat >= 90.0 or angle >= math.pi / 2:
        return BoundingBox(max(min_lat, -90.0), min(max_lat, 90.0), ())
    ratio = math.sin(angle) / math.cos(math.radians(latitude))
    if ratio >= 1.0:
        return BoundingBox(min_lat, max_lat, ())
    dlon = math.degrees(math.asin(ratio)) + _MARGIN
    low, high = longitude - dlon, longitude + dlon
    if high - low >= 360.0:
        return BoundingBox(min_lat, max_lat, ())
    if low < -180.0:
        return BoundingBox(min_lat, max_lat, ((low + 360.0, 180.0), (-180.0, high)))
    if high > 180.0:
        return BoundingBox(min_lat, max_lat, ((low, 180.0), (-180.0, high - 360.0)))
    return BoundingBox(min_lat, max_lat, ((low, high),))
