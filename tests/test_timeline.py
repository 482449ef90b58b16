"""Timeline cursors and merge order (no backend)."""

from __future__ import annotations

import datetime as dt
import heapq

import pytest

from crmkit import Task
from crmkit.errors import ValidationError
from crmkit.query import F
from crmkit.timeline import TimelineItem, TimelineKind, _Position

UTC = dt.UTC
T = dt.datetime(2024, 5, 1, 12, tzinfo=UTC)


def _item(kind: TimelineKind, at: dt.datetime, id: str) -> TimelineItem:
    return TimelineItem(kind, at, Task(id=id, title=id))


def test_cursor_round_trips() -> None:
    position = _Position(T, 2, "abc")
    assert _Position.decode(position.encode()) == position


@pytest.mark.parametrize("cursor", ["", "not a cursor", "W10", "WyJ4IiwgMSwgImEiXQ"])
def test_bad_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(ValidationError) as info:
        _Position.decode(cursor)
    assert info.value.field == "before"


def test_keyset_filter_per_source_rank() -> None:
    position = _Position(T, 2, "m")
    assert position.before("at", 1) == (F.at < T)
    assert position.before("at", 3) == (F.at <= T)
    assert position.before("at", 2) == (F.at < T) | ((F.at == T) & (F.id < "m"))


def test_merge_order_newest_first_then_kind_then_id() -> None:
    later = T + dt.timedelta(seconds=1)
    streams = [
        [_item(TimelineKind.INTERACTION, later, "b"), _item(TimelineKind.INTERACTION, T, "a")],
        [_item(TimelineKind.TASK, T, "z"), _item(TimelineKind.TASK, T, "y")],
        [_item(TimelineKind.DEAL_STAGE, T, "c")],
    ]
    merged = list(heapq.merge(*streams, key=TimelineItem._key, reverse=True))
    assert [i.record.id for i in merged] == ["b", "a", "c", "z", "y"]
