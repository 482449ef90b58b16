"""SLA due times, pauses and breaches: hand-checked tables, then properties.

Calendar: London, Mon-Fri 09:00-17:00, holidays 25-26 Dec 2024 (winter: local = UTC).
2024-03-04 is a Monday, 2024-03-08 a Friday.
"""

from __future__ import annotations

import datetime as dt
import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crmkit.sla
from crmkit import ValidationError
from crmkit.calendars import BusinessCalendar
from crmkit.entities._base import Priority
from crmkit.sla import (
    DEFAULT_PAUSING_STATUSES,
    DueTimes,
    SlaPolicy,
    SlaTarget,
    breached,
    business_time_elapsed,
    due_times,
)

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


LON = BusinessCalendar.standard("Europe/London", holidays=["2024-12-25", "2024-12-26"])
POLICY = SlaPolicy(
    low=SlaTarget(resolution=40 * H),  # no first-response target
    normal=SlaTarget(first_response=4 * H, resolution=16 * H),
    high={"first_response": 1 * H, "resolution": 8 * H},
    urgent={"first_response": 15 * M, "resolution": 4 * H},
)
SOLVED_PAUSES = SlaPolicy(
    normal=SlaTarget(resolution=16 * H),
    pausing_statuses={"pending", "on_hold", "solved"},
)


@pytest.mark.parametrize(
    ("priority", "opened_at", "expected"),
    [
        # normal, Mon 10:00: +4h = 14:00; +16h = 7h Mon + 8h Tue + 1h Wed = Wed 10:00
        (
            "normal",
            utc("2024-03-04 10:00"),
            DueTimes(utc("2024-03-04 14:00"), utc("2024-03-06 10:00")),
        ),
        # high, Fri 16:30: +1h = 30m Fri + 30m Mon; +8h = 30m Fri + 7.5h Mon = Mon 16:30
        (
            Priority.HIGH,
            utc("2024-03-08 16:30"),
            DueTimes(utc("2024-03-11 09:30"), utc("2024-03-11 16:30")),
        ),
        # urgent opened Saturday: both from Mon 09:00
        (
            "urgent",
            utc("2024-03-09 11:00"),
            DueTimes(utc("2024-03-11 09:15"), utc("2024-03-11 13:00")),
        ),
        # low has no first-response target; 40h = a whole week
        ("low", utc("2024-03-04 09:00"), DueTimes(None, utc("2024-03-08 17:00"))),
        # normal on Christmas Eve 15:00: +4h = 2h Tue, (25, 26 off), 2h Fri 27 -> 11:00;
        # +16h = 2h Tue + 8h Fri + 6h Mon 30 Dec -> 15:00
        (
            "normal",
            utc("2024-12-24 15:00"),
            DueTimes(utc("2024-12-27 11:00"), utc("2024-12-30 15:00")),
        ),
    ],
)
def test_due_times(priority: str, opened_at: dt.datetime, expected: DueTimes) -> None:
    assert due_times(POLICY, LON, priority, opened_at) == expected


def test_policy_without_targets_has_no_due_times() -> None:
    assert due_times(SlaPolicy(), LON, "urgent", utc("2024-03-04 10:00")) == (None, None)


MON_9 = utc("2024-03-04 09:00")
FRI_10 = utc("2024-03-08 10:00")

PAUSE_CASES = [
    # (policy, priority, opened_at, history, expected resolution due)
    # no history: normal 16h from Mon 09:00 = Mon + Tue -> Tue 17:00
    (POLICY, "normal", MON_9, [], utc("2024-03-05 17:00")),
    # pending over a weekend: Fri 10-12 runs (2h); paused Fri 12:00 -> Mon 12:00 (5h Fri +
    # 3h Mon of business time); 14h left from Mon 12:00: 5h Mon, 8h Tue, 1h Wed -> Wed 10:00
    (
        POLICY,
        "normal",
        FRI_10,
        [(utc("2024-03-08 12:00"), "pending"), (utc("2024-03-11 12:00"), "open")],
        utc("2024-03-13 10:00"),
    ),
    # pending only during the weekend: no business time paused; Fri 10:00 + 16h:
    # 7h Fri, 8h Mon, 1h Tue -> Tue 10:00 (same as without the pause)
    (
        POLICY,
        "normal",
        FRI_10,
        [(utc("2024-03-09 12:00"), "pending"), (utc("2024-03-10 12:00"), "open")],
        utc("2024-03-12 10:00"),
    ),
    # several pauses, 2h in all: high 8h from Mon 09:00 would be Mon 17:00 -> Tue 11:00
    (
        POLICY,
        "high",
        MON_9,
        [
            (utc("2024-03-04 10:00"), "pending"),
            (utc("2024-03-04 11:00"), "open"),
            (utc("2024-03-04 13:00"), "on_hold"),
            (utc("2024-03-04 14:00"), "open"),
        ],
        utc("2024-03-05 11:00"),
    ),
    # paused now, target not reached (1h ran of 8h): no due time while paused
    (POLICY, "high", MON_9, [(utc("2024-03-04 10:00"), "pending")], None),
    # paused only after the due time (Mon 17:00): the breach stands
    (POLICY, "high", MON_9, [(utc("2024-03-05 10:00"), "pending")], utc("2024-03-04 17:00")),
    # pending 1h then solved: "solved" is not a pausing status by default -> Tue 10:00
    (
        POLICY,
        "high",
        MON_9,
        [
            (utc("2024-03-04 10:00"), "pending"),
            (utc("2024-03-04 11:00"), "open"),
            (utc("2024-03-04 15:00"), "solved"),
        ],
        utc("2024-03-05 10:00"),
    ),
    # a policy pausing in "solved": solved Mon 12:00 (3h of 16h ran) -> no due time
    (SOLVED_PAUSES, "normal", MON_9, [(utc("2024-03-04 12:00"), "solved")], None),
    # ... reopened Wed 09:00: Mon 9-12 ran (3h), 13h left from Wed 09:00: 8h Wed, 5h Thu
    (
        SOLVED_PAUSES,
        "normal",
        MON_9,
        [(utc("2024-03-04 12:00"), "solved"), (utc("2024-03-06 09:00"), "open")],
        utc("2024-03-07 14:00"),
    ),
    # a change before opening sets the opening status: opened paused, running from 11:00;
    # 8h from Mon 11:00 -> Tue 11:00
    (
        POLICY,
        "high",
        MON_9,
        [(utc("2024-03-03 12:00"), "pending"), (utc("2024-03-04 11:00"), "open")],
        utc("2024-03-05 11:00"),
    ),
    # unsorted history means the same as sorted (the several-pauses row, shuffled)
    (
        POLICY,
        "high",
        MON_9,
        [
            (utc("2024-03-04 14:00"), "open"),
            (utc("2024-03-04 10:00"), "pending"),
            (utc("2024-03-04 13:00"), "on_hold"),
            (utc("2024-03-04 11:00"), "open"),
        ],
        utc("2024-03-05 11:00"),
    ),
    # pending -> on_hold -> open is one pause, 10:00 to 12:00: Mon 17:00 + 2h -> Tue 11:00
    (
        POLICY,
        "high",
        MON_9,
        [
            (utc("2024-03-04 10:00"), "pending"),
            (utc("2024-03-04 11:00"), "on_hold"),
            (utc("2024-03-04 12:00"), "open"),
        ],
        utc("2024-03-05 11:00"),
    ),
    # paused at the very moment of opening for 1h: 8h from 10:00 -> Tue 10:00
    (
        POLICY,
        "high",
        MON_9,
        [(MON_9, "pending"), (utc("2024-03-04 10:00"), "open")],
        utc("2024-03-05 10:00"),
    ),
    # pause spanning Christmas: opened Tue 24 Dec 09:00 (high, 8h); pending 10:00 Tue ->
    # Fri 27 10:00 (7h Tue + 1h Fri of business time); 7h left from Fri 10:00 -> Fri 17:00
    (
        POLICY,
        "high",
        utc("2024-12-24 09:00"),
        [(utc("2024-12-24 10:00"), "pending"), (utc("2024-12-27 10:00"), "open")],
        utc("2024-12-27 17:00"),
    ),
    # the target is used up exactly when the pause starts (Mon 17:00): due then
    (POLICY, "high", MON_9, [(utc("2024-03-04 17:00"), "pending")], utc("2024-03-04 17:00")),
    # urgent 4h, resumed after a pause that started at 10:00 and ended at 10:00 next day
    # (7h + 1h paused): 1h ran, 3h left from Tue 10:00 -> Tue 13:00
    (
        POLICY,
        "urgent",
        MON_9,
        [(utc("2024-03-04 10:00"), "on_hold"), (utc("2024-03-05 10:00"), "open")],
        utc("2024-03-05 13:00"),
    ),
]


@pytest.mark.parametrize(("policy", "priority", "opened_at", "history", "expected"), PAUSE_CASES)
def test_resolution_due_with_pauses(
    policy: SlaPolicy,
    priority: str,
    opened_at: dt.datetime,
    history: list[tuple[dt.datetime, str]],
    expected: dt.datetime | None,
) -> None:
    assert due_times(policy, LON, priority, opened_at, history).resolution == expected


def test_first_response_never_pauses() -> None:
    history = [(utc("2024-03-04 09:05"), "pending")]
    due = due_times(POLICY, LON, "normal", MON_9, history)
    assert due.first_response == utc("2024-03-04 13:00")
    assert due.resolution is None


def test_zero_target_is_due_at_opening_even_when_paused() -> None:
    policy = SlaPolicy(normal={"first_response": 0, "resolution": 0})
    saturday = utc("2024-03-09 10:00")
    assert due_times(policy, LON, "normal", saturday, [(saturday, "pending")]) == (
        saturday,
        saturday,
    )


@pytest.mark.parametrize(
    ("history", "until", "expected"),
    [
        # nothing yet: Mon 09:00 -> 13:00
        ([], utc("2024-03-04 13:00"), 4 * H),
        # paused 10-12: 1h + 1h
        (
            [(utc("2024-03-04 10:00"), "pending"), (utc("2024-03-04 12:00"), "open")],
            utc("2024-03-04 13:00"),
            2 * H,
        ),
        # still paused: only 09-10 ran
        ([(utc("2024-03-04 10:00"), "pending")], utc("2024-03-06 13:00"), 1 * H),
        # until before opening: zero
        ([], utc("2024-03-01 13:00"), dt.timedelta(0)),
        # Mon 09:00 -> Fri 12:00: Mon..Thu 4 x 8h, Fri 09-12 3h
        ([], utc("2024-03-08 12:00"), 35 * H),
    ],
)
def test_business_time_elapsed(
    history: list[tuple[dt.datetime, str]], until: dt.datetime, expected: dt.timedelta
) -> None:
    assert business_time_elapsed(POLICY, LON, MON_9, history, until) == expected


@pytest.mark.parametrize(
    ("due", "done_at", "now", "expected"),
    [
        (utc("2024-03-04 17:00"), utc("2024-03-04 16:59"), utc("2024-03-05 09:00"), False),
        (utc("2024-03-04 17:00"), utc("2024-03-04 17:00"), utc("2024-03-05 09:00"), False),
        (utc("2024-03-04 17:00"), utc("2024-03-04 17:01"), utc("2024-03-04 17:02"), True),
        # done after due counts even if "now" is earlier (replaying history)
        (utc("2024-03-04 17:00"), utc("2024-03-05 09:00"), utc("2024-03-04 12:00"), True),
        (utc("2024-03-04 17:00"), None, utc("2024-03-04 17:00"), False),
        (utc("2024-03-04 17:00"), None, utc("2024-03-04 17:00:01"), True),
        # a response on Saturday after a Friday 17:00 due is late, business time or not
        (utc("2024-03-08 17:00"), utc("2024-03-09 10:00"), utc("2024-03-09 10:00"), True),
        (None, None, utc("2030-01-01 00:00"), False),  # no target / paused
    ],
)
def test_breached(
    due: dt.datetime | None, done_at: dt.datetime | None, now: dt.datetime, expected: bool
) -> None:
    assert breached(due, done_at, now) is expected


# --- validation ----------------------------------------------------------------------------


def test_policy_accepts_plain_values_and_rejects_bad_ones() -> None:
    policy = SlaPolicy(high={"first_response": 3600}, pausing_statuses=["waiting"])
    assert policy.high == SlaTarget(first_response=H)
    assert policy.target(Priority.HIGH) is policy.high
    assert policy.pausing_statuses == frozenset({"waiting"})
    assert SlaPolicy().pausing_statuses == DEFAULT_PAUSING_STATUSES == {"pending", "on_hold"}


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: SlaTarget(resolution=-H), "slatarget.resolution"),
        (lambda: SlaTarget(first_response="1h"), "slatarget.first_response"),
        (lambda: SlaPolicy(high={"resolution": -1}), "slapolicy.high.resolution"),
        (lambda: SlaPolicy(high={"reslution": 1}), "slapolicy.high"),
        (lambda: SlaPolicy(low=8), "slapolicy.low"),
        (lambda: SlaPolicy(pausing_statuses="pending"), "slapolicy.pausing_statuses"),
        (lambda: SlaPolicy(pausing_statuses=["pending", ""]), "slapolicy.pausing_statuses[1]"),
        (lambda: POLICY.target("critical"), "priority"),
        (lambda: due_times(POLICY, LON, "normal", dt.datetime(2024, 3, 4)), "opened_at"),
        (lambda: due_times(POLICY, LON, "normal", MON_9, [(MON_9,)]), "history[0]"),
        (
            lambda: due_times(POLICY, LON, "normal", MON_9, [(dt.datetime(2024, 3, 4), "x")]),
            "history[0].at",
        ),
        (lambda: due_times(POLICY, LON, "normal", MON_9, [(MON_9, None)]), "history[0].status"),
        (lambda: due_times(POLICY, LON, "normal", MON_9, "pending"), "history"),
        (lambda: breached(MON_9, None, dt.datetime(2024, 3, 4)), "now"),
        (lambda: breached(MON_9, dt.datetime(2024, 3, 4), MON_9), "done_at"),
        (lambda: business_time_elapsed(POLICY, LON, MON_9, [], dt.datetime(2024, 3, 4)), "until"),
    ],
)
def test_invalid_input(make: object, field: str) -> None:
    assert callable(make)
    with pytest.raises(ValidationError) as info:
        make()
    assert info.value.field == field


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(crmkit.sla)
    assert tried > 0
    assert failures == 0


# --- properties ----------------------------------------------------------------------------

instants = st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2025, 12, 31)).map(
    lambda d: d.replace(tzinfo=dt.UTC)
)
statuses = st.sampled_from(["new", "open", "pending", "on_hold", "solved"])
histories = st.lists(st.tuples(instants, statuses), max_size=8)
targets = st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(hours=200)).map(
    lambda d: dt.timedelta(milliseconds=d // dt.timedelta(milliseconds=1))
)


@settings(max_examples=200)
@given(instants, histories, targets)
def test_elapsed_at_the_due_time_is_the_target(
    opened_at: dt.datetime, history: list[tuple[dt.datetime, str]], target: dt.timedelta
) -> None:
    policy = SlaPolicy(normal={"resolution": target})
    due = due_times(policy, LON, "normal", opened_at, history).resolution
    if due is None:  # paused for good before the target was reached
        far = utc("2100-01-01 00:00")
        assert business_time_elapsed(policy, LON, opened_at, history, far) < target
    else:
        assert business_time_elapsed(policy, LON, opened_at, history, due) == target
        # and not earlier: the due time is the first such instant
        if due > opened_at:
            before = due - dt.timedelta(microseconds=1)
            assert business_time_elapsed(policy, LON, opened_at, history, before) < target


@settings(max_examples=200)
@given(instants, histories, targets)
def test_pauses_never_make_a_ticket_due_earlier(
    opened_at: dt.datetime, history: list[tuple[dt.datetime, str]], target: dt.timedelta
) -> None:
    policy = SlaPolicy(normal={"resolution": target})
    unpaused = due_times(policy, LON, "normal", opened_at).resolution
    paused = due_times(policy, LON, "normal", opened_at, history).resolution
    assert unpaused is not None
    assert paused is None or paused >= unpaused
