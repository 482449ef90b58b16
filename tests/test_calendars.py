"""Business-time arithmetic: hand-checked tables, then algebraic properties.

Expected instants were worked out by hand (reasoning in the comment of each row) and are
written in UTC. Offsets used, 2024: London GMT +0 until 31 Mar 01:00 UTC, BST +1 until
27 Oct 01:00 UTC; New York EST -5 until 10 Mar, EDT -4 until 3 Nov; Sydney AEDT +11 until
7 Apr, AEST +10 until 6 Oct, then AEDT +11; Kolkata IST +05:30 all year.
2024-01-01 and 2024-03-04 are Mondays; 2024-12-25 is a Wednesday.
"""

from __future__ import annotations

import datetime as dt
import doctest
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crmkit.calendars
from crmkit import ValidationError
from crmkit.calendars import BusinessCalendar

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def utc(text: str) -> dt.datetime:
    """``"2024-03-04 09:00"`` as a UTC instant."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def local(zone: str, text: str) -> dt.datetime:
    """A wall-clock time in ``zone`` (fold=0)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(zone))


LON = BusinessCalendar.standard(
    "Europe/London", holidays=["2024-12-25", "2024-12-26", "2025-01-01"]
)
LON_PLAIN = BusinessCalendar.standard("Europe/London")  # no holidays
LUNCH = BusinessCalendar.standard("Europe/London", hours="09:00-12:30, 13:30-17:30")
NY = BusinessCalendar.standard("America/New_York", holidays=[dt.date(2024, 7, 4)])
KOL = BusinessCalendar.standard("Asia/Kolkata", hours="10:00-18:00")
SYD = BusinessCalendar.standard("Australia/Sydney")
# Night shifts on Sundays, to land on DST change days (all DST changes here are Sundays).
LON_NIGHT = BusinessCalendar(timezone="Europe/London", working_hours={"sun": "00:00-04:00"})
LON_GAP = BusinessCalendar(timezone="Europe/London", working_hours={"sun": "01:00-03:00"})
NY_NIGHT = BusinessCalendar(timezone="America/New_York", working_hours={"sun": "01:00-04:00"})
SYD_NIGHT = BusinessCalendar(timezone="Australia/Sydney", working_hours={"sun": "01:00-04:00"})
ALWAYS = BusinessCalendar.always("Europe/London")

ADD_CASES = [
    # --- London 09:00-17:00, winter (local = UTC) ---
    # Mon 10:00 + 2h, same day
    (LON, utc("2024-03-04 10:00"), 2 * H, utc("2024-03-04 12:00")),
    # Mon 10:00 + 7h runs out exactly at close: the close, not Tue 09:00
    (LON, utc("2024-03-04 10:00"), 7 * H, utc("2024-03-04 17:00")),
    # Mon 10:00 + 8h: 7h Mon, 1h Tue from 09:00
    (LON, utc("2024-03-04 10:00"), 8 * H, utc("2024-03-05 10:00")),
    # before opening: counts from 09:00
    (LON, utc("2024-03-04 08:00"), 1 * H, utc("2024-03-04 10:00")),
    # after closing: counts from Tue 09:00
    (LON, utc("2024-03-04 18:00"), 1 * H, utc("2024-03-05 10:00")),
    # Fri 16:00 + 2h: 1h Fri, weekend skipped, 1h Mon
    (LON, utc("2024-03-08 16:00"), 2 * H, utc("2024-03-11 10:00")),
    # Sat noon + 30m: from Mon 09:00
    (LON, utc("2024-03-09 12:00"), 30 * M, utc("2024-03-11 09:30")),
    # zero from an open moment: start itself
    (LON, utc("2024-03-04 10:00"), dt.timedelta(0), utc("2024-03-04 10:00")),
    # zero from a closed moment: still start itself (nothing has to elapse)
    (LON, utc("2024-03-09 12:00"), dt.timedelta(0), utc("2024-03-09 12:00")),
    # 09:00 sharp + 8h: the whole day
    (LON, utc("2024-03-04 09:00"), 8 * H, utc("2024-03-04 17:00")),
    # 17:00 sharp is closed (intervals are half-open): + 1h -> Tue 10:00
    (LON, utc("2024-03-04 17:00"), 1 * H, utc("2024-03-05 10:00")),
    # Tue 24 Dec 16:00 + 2h: 1h Tue, Wed 25 + Thu 26 holidays, 1h Fri 27
    (LON, utc("2024-12-24 16:00"), 2 * H, utc("2024-12-27 10:00")),
    # year boundary: Tue 31 Dec 16:00 + 2h: 1h Tue, Wed 1 Jan holiday, 1h Thu 2 Jan
    (LON, utc("2024-12-31 16:00"), 2 * H, utc("2025-01-02 10:00")),
    # a working week: Mon 09:00 + 40h = Fri 17:00
    (LON, utc("2024-03-04 09:00"), 40 * H, utc("2024-03-08 17:00")),
    # 400h = 50 days = 10 weeks from Mon 8 Jan: Fri of the 10th week (15 Mar) 17:00 GMT
    (LON, utc("2024-01-08 09:00"), 400 * H, utc("2024-03-15 17:00")),
    # over the spring change: Fri 29 Mar 16:00 GMT + 2h: 1h Fri, Mon 1 Apr 10:00 BST = 09:00Z
    (LON, utc("2024-03-29 16:00"), 2 * H, utc("2024-04-01 09:00")),
    # summer: Mon 1 Jul 09:00 BST = 08:00Z, + 1h
    (LON, local("Europe/London", "2024-07-01 09:00"), 1 * H, utc("2024-07-01 09:00")),
    # the zone of the input does not matter: 05:00-05:00 = 10:00Z
    (LON, local("America/Bogota", "2024-03-04 05:00"), 1 * H, utc("2024-03-04 11:00")),
    # 10,000h = 1250 days = 250 weeks from Mon 8 Jan 2024 (no holidays): Mon 16 Oct 2028
    # is 249 weeks on; Fri 20 Oct 2028 17:00 BST (DST ends 29 Oct 2028) = 16:00Z
    (LON_PLAIN, utc("2024-01-08 09:00"), 10_000 * H, utc("2028-10-20 16:00")),
    # --- lunch break: 09:00-12:30 + 13:30-17:30 = 7.5h a day ---
    # Mon 12:00 + 1h: 30m to 12:30, 30m from 13:30
    (LUNCH, utc("2024-03-04 12:00"), 1 * H, utc("2024-03-04 14:00")),
    # during lunch: counts from 13:30
    (LUNCH, utc("2024-03-04 12:45"), 1 * H, utc("2024-03-04 14:30")),
    # runs out exactly at the start of lunch
    (LUNCH, utc("2024-03-04 12:00"), 30 * M, utc("2024-03-04 12:30")),
    # Mon 17:00 + 1h: 30m to 17:30, 30m Tue from 09:00
    (LUNCH, utc("2024-03-04 17:00"), 1 * H, utc("2024-03-05 09:30")),
    # Mon 09:00 + 8h: 7.5h Mon, 30m Tue
    (LUNCH, utc("2024-03-04 09:00"), 8 * H, utc("2024-03-05 09:30")),
    # --- New York 09:00-17:00 ---
    # Fri 8 Mar 16:00 EST (21:00Z) + 2h: 1h Fri, Mon 11 Mar 10:00 EDT = 14:00Z
    (NY, utc("2024-03-08 21:00"), 2 * H, utc("2024-03-11 14:00")),
    # Wed 3 Jul 16:30 EDT + 1h: 30m Wed, Thu 4 Jul holiday, Fri 09:30 EDT = 13:30Z
    (NY, local("America/New_York", "2024-07-03 16:30"), 1 * H, utc("2024-07-05 13:30")),
    # 13:00Z = 08:00 EST, before opening: 09:00 + 1h = 10:00 EST = 15:00Z
    (NY, utc("2024-03-04 13:00"), 1 * H, utc("2024-03-04 15:00")),
    # over the fall change: Fri 1 Nov 16:00 EDT + 2h: Mon 4 Nov 10:00 EST = 15:00Z
    (NY, local("America/New_York", "2024-11-01 16:00"), 2 * H, utc("2024-11-04 15:00")),
    # --- Kolkata 10:00-18:00, +05:30 ---
    # Mon 17:00 IST (11:30Z) + 2h: 1h Mon, Tue 11:00 IST = 05:30Z
    (KOL, utc("2024-03-04 11:30"), 2 * H, utc("2024-03-05 05:30")),
    # 04:00Z = 09:30 IST, before opening: 10:30 IST = 05:00Z
    (KOL, utc("2024-03-04 04:00"), 30 * M, utc("2024-03-04 05:00")),
    # Sat + 8h: all of Mon 10:00-18:00 IST; 18:00 IST = 12:30Z
    (KOL, utc("2024-03-09 00:00"), 8 * H, utc("2024-03-11 12:30")),
    # --- Sydney 09:00-17:00 ---
    # Fri 5 Apr 16:00 AEDT (05:00Z) + 2h: 1h Fri; DST ends Sun 7 Apr; Mon 10:00 AEST = 00:00Z
    (SYD, utc("2024-04-05 05:00"), 2 * H, utc("2024-04-08 00:00")),
    # Fri 4 Oct 16:00 AEST (06:00Z) + 2h: DST starts Sun 6 Oct; Mon 7 Oct 10:00 AEDT = 23:00Z Sun
    (SYD, utc("2024-10-04 06:00"), 2 * H, utc("2024-10-06 23:00")),
    # 22:00Z Sun 3 Mar = Mon 09:00 AEDT: + 1h = 10:00 AEDT = 23:00Z
    (SYD, utc("2024-03-03 22:00"), 1 * H, utc("2024-03-03 23:00")),
    # --- DST change days ---
    # London spring, Sun 00:00-04:00: opens 00:00 GMT (00:00Z), closes 04:00 BST (03:00Z): 3h
    (LON_NIGHT, utc("2024-03-31 00:00"), 3 * H, utc("2024-03-31 03:00")),
    # + 4h: the 3h shift, then next Sun 00:00 BST (Sat 23:00Z) + 1h
    (LON_NIGHT, utc("2024-03-31 00:00"), 4 * H, utc("2024-04-07 00:00")),
    # London fall, Sun 00:00-04:00: opens 00:00 BST (Sat 23:00Z), closes 04:00 GMT: 5h
    (LON_NIGHT, utc("2024-10-26 23:00"), 5 * H, utc("2024-10-27 04:00")),
    # + 4h of that 5h shift
    (LON_NIGHT, utc("2024-10-26 23:00"), 4 * H, utc("2024-10-27 03:00")),
    # spring, Sun 01:00-03:00: 01:00-02:00 is skipped, opens at the jump (01:00Z), closes
    # 03:00 BST (02:00Z): 1h
    (LON_GAP, utc("2024-03-31 00:00"), 1 * H, utc("2024-03-31 02:00")),
    # + 90m: 1h that Sunday, then Sun 7 Apr 01:00 BST (00:00Z) + 30m
    (LON_GAP, utc("2024-03-31 00:00"), 90 * M, utc("2024-04-07 00:30")),
    # fall, Sun 01:00-03:00: opens at the first 01:00 (BST, 00:00Z), closes 03:00 GMT: 3h
    (LON_GAP, utc("2024-10-27 00:00"), 3 * H, utc("2024-10-27 03:00")),
    # NY spring, Sun 01:00-04:00: 01:00 EST (06:00Z) to 04:00 EDT (08:00Z): 2h
    (NY_NIGHT, utc("2024-03-10 06:00"), 2 * H, utc("2024-03-10 08:00")),
    # + 2h30: 2h, then Sun 17 Mar 01:00 EDT (05:00Z) + 30m
    (NY_NIGHT, utc("2024-03-10 06:00"), 150 * M, utc("2024-03-17 05:30")),
    # NY fall, Sun 3 Nov 01:00-04:00: first 01:00 (EDT, 05:00Z) to 04:00 EST (09:00Z): 4h
    (NY_NIGHT, utc("2024-11-03 05:00"), 4 * H, utc("2024-11-03 09:00")),
    # Sydney fall-back Sun 7 Apr (03:00 AEDT -> 02:00 AEST), 01:00-04:00: 01:00 AEDT
    # (Sat 14:00Z) to 04:00 AEST (Sat 18:00Z): 4h
    (SYD_NIGHT, utc("2024-04-06 14:00"), 4 * H, utc("2024-04-06 18:00")),
    # Sydney spring Sun 6 Oct (02:00 AEST -> 03:00 AEDT), 01:00-04:00: 01:00 AEST
    # (Sat 15:00Z) to 04:00 AEDT (Sat 17:00Z): 2h
    (SYD_NIGHT, utc("2024-10-05 15:00"), 2 * H, utc("2024-10-05 17:00")),
    # --- 24x7 ---
    # real time, across the London spring night
    (ALWAYS, utc("2024-03-30 22:00"), 10 * H, utc("2024-03-31 08:00")),
    # 10,000h = 416 days 16h; 2024 has 366 days -> 1 Jan 2025 + 50 days 16h = 20 Feb 16:00
    (ALWAYS, utc("2024-01-01 00:00"), 10_000 * H, utc("2025-02-20 16:00")),
]


@pytest.mark.parametrize(("calendar", "start", "duration", "expected"), ADD_CASES)
def test_add(
    calendar: BusinessCalendar, start: dt.datetime, duration: dt.timedelta, expected: dt.datetime
) -> None:
    result = calendar.add(start, duration)
    assert result == expected
    assert result.tzinfo is dt.UTC
    assert calendar.between(start, result) == duration


BETWEEN_CASES = [
    # same day
    (LON, utc("2024-03-04 10:00"), utc("2024-03-04 12:00"), 2 * H),
    # Mon 10:00 -> Tue 10:00: 7h + 1h
    (LON, utc("2024-03-04 10:00"), utc("2024-03-05 10:00"), 8 * H),
    # Fri 16:00 -> Mon 10:00: 1h + 1h
    (LON, utc("2024-03-08 16:00"), utc("2024-03-11 10:00"), 2 * H),
    # Sat -> Sun: closed all along
    (LON, utc("2024-03-09 00:00"), utc("2024-03-10 23:59"), dt.timedelta(0)),
    # empty range
    (LON, utc("2024-03-04 10:00"), utc("2024-03-04 10:00"), dt.timedelta(0)),
    # reversed: negative
    (LON, utc("2024-03-05 10:00"), utc("2024-03-04 10:00"), -8 * H),
    # Tue 24 Dec -> Fri 27 Dec 00:00: only Tue (25, 26 holidays)
    (LON, utc("2024-12-24 00:00"), utc("2024-12-27 00:00"), 8 * H),
    # Tue 31 Dec 12:00 -> Thu 2 Jan 12:00: 5h + holiday + 3h
    (LON, utc("2024-12-31 12:00"), utc("2025-01-02 12:00"), 8 * H),
    # the year 2024: 262 weekdays (52 weeks + Mon 30, Tue 31 Dec) - 2 holidays = 260 x 8h
    (LON, utc("2024-01-01 00:00"), utc("2025-01-01 00:00"), 2080 * H),
    # lunch excluded: 12:00-12:30 + 13:30-14:00
    (LUNCH, utc("2024-03-04 12:00"), utc("2024-03-04 14:00"), 1 * H),
    # a whole lunch-break day: 3.5h + 4h
    (LUNCH, utc("2024-03-04 00:00"), utc("2024-03-05 00:00"), 7.5 * H),
    # NY: Sun 19:00 EST -> Fri 19:00 EST: five full days
    (NY, utc("2024-03-04 00:00"), utc("2024-03-09 00:00"), 40 * H),
    # NY: two weeks across the spring change (Sun 10 Mar): still 10 days x 8h
    (NY, utc("2024-03-04 00:00"), utc("2024-03-18 00:00"), 80 * H),
    # NY: week of 4 Jul: Mon-Fri minus the Thursday holiday
    (NY, utc("2024-07-01 00:00"), utc("2024-07-06 00:00"), 32 * H),
    # Kolkata: 05:30 IST -> 17:30 IST: 10:00-17:30
    (KOL, utc("2024-03-04 00:00"), utc("2024-03-04 12:00"), 7.5 * H),
    # Sydney: Thu 4 Apr 11:00 AEDT -> Tue 9 Apr 10:00 AEST: 6 + 8 + 8 + 1
    (SYD, utc("2024-04-04 00:00"), utc("2024-04-09 00:00"), 23 * H),
    # London night shift on the spring day: 3h real; on the fall day: 5h real
    (LON_NIGHT, utc("2024-03-30 00:00"), utc("2024-04-01 00:00"), 3 * H),
    (LON_NIGHT, utc("2024-10-26 00:00"), utc("2024-10-28 00:00"), 5 * H),
    # 01:00-03:00: 1h on the spring day, 3h on the fall day
    (LON_GAP, utc("2024-03-30 00:00"), utc("2024-04-01 00:00"), 1 * H),
    (LON_GAP, utc("2024-10-26 00:00"), utc("2024-10-28 00:00"), 3 * H),
    # the repeated hour 01:00-02:00 GMT (01:00Z-02:00Z) is inside the fall shift
    (LON_GAP, utc("2024-10-27 01:00"), utc("2024-10-27 02:00"), 1 * H),
    # 24x7 is real time, DST night included
    (ALWAYS, utc("2024-03-30 22:00"), utc("2024-03-31 08:00"), 10 * H),
]


@pytest.mark.parametrize(("calendar", "a", "b", "expected"), BETWEEN_CASES)
def test_between(
    calendar: BusinessCalendar, a: dt.datetime, b: dt.datetime, expected: dt.timedelta
) -> None:
    assert calendar.between(a, b) == expected
    assert calendar.between(b, a) == -expected


@pytest.mark.parametrize(
    ("calendar", "at", "is_open", "next_open"),
    [
        (LON, utc("2024-03-04 09:00"), True, utc("2024-03-04 09:00")),  # opening is open
        (LON, utc("2024-03-04 16:59"), True, utc("2024-03-04 16:59")),
        (LON, utc("2024-03-04 17:00"), False, utc("2024-03-05 09:00")),  # closing is closed
        (LON, utc("2024-03-09 12:00"), False, utc("2024-03-11 09:00")),  # Saturday
        (LON, utc("2024-12-24 18:00"), False, utc("2024-12-27 09:00")),  # Christmas
        (LUNCH, utc("2024-03-04 13:00"), False, utc("2024-03-04 13:30")),  # lunch
        # 08:30 BST on 1 Jul = 07:30Z
        (LON, utc("2024-07-01 07:30"), False, utc("2024-07-01 08:00")),
        (KOL, utc("2024-03-04 04:30"), True, utc("2024-03-04 04:30")),  # 10:00 IST
        (LON_GAP, utc("2024-03-31 00:30"), False, utc("2024-03-31 01:00")),  # at the jump
        (ALWAYS, utc("2024-03-31 01:00"), True, utc("2024-03-31 01:00")),
    ],
)
def test_is_open_and_next_open(
    calendar: BusinessCalendar, at: dt.datetime, is_open: bool, next_open: dt.datetime
) -> None:
    assert calendar.is_open(at) is is_open
    assert calendar.next_open(at) == next_open


# --- construction and validation -----------------------------------------------------------


def test_working_hours_forms_are_equivalent() -> None:
    nine, five = dt.time(9), dt.time(17)
    by_name = BusinessCalendar(timezone="UTC", working_hours={"mon-fri": "09:00-17:00"})
    by_number = BusinessCalendar(
        timezone="UTC", working_hours={d: [(nine, five)] for d in range(5)}
    )
    by_list = BusinessCalendar(timezone="UTC", working_hours=[(nine, five)] * 5 + [None, ""])
    assert by_name == by_number == by_list == BusinessCalendar.standard("UTC")
    assert by_name.working_hours[0] == ((nine, five),)
    assert by_name.working_hours[6] == ()


def test_day_specs_and_merging() -> None:
    cal = BusinessCalendar(
        timezone="Asia/Kolkata",
        working_hours={"fri-sun": "13:00-17:00, 09:00-13:00", "Monday": ["22:00-24:00"]},
        holidays=["2024-08-15", dt.date(2024, 8, 15), "2024-01-26"],
    )
    assert cal.working_hours[4] == ((dt.time(9), dt.time(17)),)  # sorted, touching joined
    assert cal.working_hours[5] == cal.working_hours[6] == cal.working_hours[4]
    assert cal.working_hours[0] == ((dt.time(22), dt.time.max),)
    assert cal.holidays == (dt.date(2024, 1, 26), dt.date(2024, 8, 15))


def test_overnight_hours_split_over_two_days_are_continuous() -> None:
    night = BusinessCalendar(
        timezone="UTC", working_hours={"mon": "22:00-24:00", "tue": "00:00-06:00"}
    )
    assert night.add(utc("2024-03-04 23:00"), 2 * H) == utc("2024-03-05 01:00")
    assert night.between(utc("2024-03-04 00:00"), utc("2024-03-06 00:00")) == 8 * H


def test_always_is_24x7() -> None:
    assert ALWAYS.working_hours == ((((dt.time(0), dt.time.max)),),) * 7
    assert ALWAYS.is_open(utc("2024-03-31 01:30"))


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"timezone": "Mars/Olympus"}, "businesscalendar.timezone", "not a known IANA"),
        ({"timezone": "../etc/passwd"}, "businesscalendar.timezone", "not a known IANA"),
        ({"timezone": ""}, "businesscalendar.timezone", "IANA"),
        ({"working_hours": {"mon": "17:00-09:00"}}, "[mon][0]", "start before it ends"),
        ({"working_hours": {"mon": "09:00-09:00"}}, "[mon][0]", "start before it ends"),
        ({"working_hours": {"mon": "09:00-13:00,12:00-17:00"}}, "[mon]", "overlapping"),
        ({"working_hours": {"mon": "9am-5pm"}}, "[mon][0]", "time of day"),
        ({"working_hours": {"mon": "09:00-25:00"}}, "[mon][0]", "time of day"),
        ({"working_hours": {"mon": "24:00-24:00"}}, "[mon][0]", "time of day"),
        ({"working_hours": {"mon": "0900"}}, "[mon][0]", "interval"),
        ({"working_hours": {"funday": "09:00-17:00"}}, "working_hours key", "not a weekday"),
        ({"working_hours": {7: "09:00-17:00"}}, "working_hours key", "not a weekday"),
        ({"working_hours": {"mon-fri": "09:00-17:00", "fri": "10:00-12:00"}}, "[fri]", "once"),
        ({"working_hours": {"sat": None, "sun": ""}}, "working_hours", "no working hours"),
        ({"working_hours": ["09:00-17:00"] * 6}, "working_hours", "7 days"),
        (
            {"working_hours": {"mon": [(dt.time(9, tzinfo=dt.UTC), dt.time(17))]}},
            "[mon][0]",
            "no tzinfo",
        ),
        ({"holidays": ["2024-13-01"]}, "businesscalendar.holidays[0]", "ISO 8601 date"),
        ({"holidays": "2024-12-25"}, "businesscalendar.holidays", "list of dates"),
    ],
)
def test_invalid_calendars(kwargs: dict[str, object], field: str, reason: str) -> None:
    args: dict[str, object] = {"timezone": "UTC", "working_hours": {"mon": "09:00-17:00"}}
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        BusinessCalendar(**args)
    assert field in info.value.field
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: LON.add(dt.datetime(2024, 3, 4, 9), H), "start"),  # naive
        (lambda: LON.add(utc("2024-03-04 09:00"), -H), "duration"),
        (lambda: LON.add(utc("2024-03-04 09:00"), 3600), "duration"),
        (lambda: LON.between(utc("2024-03-04 09:00"), dt.datetime(2024, 3, 5)), "b"),
        (lambda: LON.is_open(dt.date(2024, 3, 4)), "at"),
        (lambda: LON.next_open(dt.datetime(2024, 3, 4)), "at"),
        (lambda: LON.add(utc("9999-12-20 09:00"), 1000 * H), "duration"),
        (lambda: ALWAYS.add(utc("9999-12-31 09:00"), 1000 * H), "duration"),
    ],
)
def test_invalid_arguments(call: object, field: str) -> None:
    assert callable(call)
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.field == field


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(crmkit.calendars)
    assert tried > 0
    assert failures == 0


# --- properties ----------------------------------------------------------------------------

CALENDARS = [LON, LUNCH, NY, KOL, SYD, LON_NIGHT, LON_GAP, NY_NIGHT, SYD_NIGHT, ALWAYS]

calendars = st.sampled_from(CALENDARS)
# any instant of 2023-2026 (DST days included), to the microsecond
instants = st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2026, 12, 31)).map(
    lambda d: d.replace(tzinfo=dt.UTC)
)
durations = st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(hours=600))


@settings(max_examples=300)
@given(calendars, instants, durations)
def test_between_inverts_add(cal: BusinessCalendar, start: dt.datetime, d: dt.timedelta) -> None:
    # holds for closed starts too: add() counts from the next opening
    assert cal.between(start, cal.add(start, d)) == d


@settings(max_examples=300)
@given(calendars, instants, durations, durations)
def test_add_is_monotonic(
    cal: BusinessCalendar, start: dt.datetime, d1: dt.timedelta, d2: dt.timedelta
) -> None:
    low, high = sorted((d1, d2))
    assert start <= cal.add(start, low) <= cal.add(start, high)


@settings(max_examples=300)
@given(calendars, instants, durations, durations)
def test_add_composes(
    cal: BusinessCalendar, start: dt.datetime, a: dt.timedelta, b: dt.timedelta
) -> None:
    assert cal.add(cal.add(start, a), b) == cal.add(start, a + b)


@settings(max_examples=300)
@given(calendars, instants, instants, instants)
def test_between_is_additive(
    cal: BusinessCalendar, a: dt.datetime, b: dt.datetime, c: dt.datetime
) -> None:
    assert cal.between(a, b) + cal.between(b, c) == cal.between(a, c)
    assert cal.between(a, b) == -cal.between(b, a)


@settings(max_examples=300)
@given(calendars, instants)
def test_next_open_is_open_and_nothing_is_skipped(cal: BusinessCalendar, at: dt.datetime) -> None:
    nxt = cal.next_open(at)
    assert cal.is_open(nxt)
    assert cal.between(at, nxt) == dt.timedelta(0)
    assert (nxt == at) is cal.is_open(at)


def _reference_minutes(cal: BusinessCalendar, a: dt.datetime, b: dt.datetime) -> int:
    """Count minutes whose local wall-clock time is in working hours: no shared code.

    Agrees with the calendar wherever no DST change happens (the only place the "first
    time the clock reads" rule matters).
    """
    zone = zoneinfo.ZoneInfo(cal.timezone)
    count = 0
    t = a
    while t < b:
        wall = t.astimezone(zone)
        if wall.date() not in cal.holidays:
            clock = wall.time().replace(tzinfo=None)
            count += any(s <= clock < e for s, e in cal.working_hours[wall.weekday()])
        t += M
    return count


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([LON, LUNCH, KOL, NY]),
    st.integers(min_value=0, max_value=60 * 24 * 60),
    st.integers(min_value=0, max_value=60 * 24 * 4),
)
def test_between_matches_minute_by_minute_reference(
    cal: BusinessCalendar, offset: int, length: int
) -> None:
    # 2024-01-01 .. 2024-03-05 + 4 days: no DST change in any of these zones (NY: 10 Mar)
    a = utc("2024-01-01 00:00") + offset * M
    b = a + length * M
    assert cal.between(a, b) == _reference_minutes(cal, a, b) * M
