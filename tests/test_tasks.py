"""Tasks: due, overdue and upcoming queries; completion records when and by whom."""

from __future__ import annotations

import datetime as dt

import attrs

import crmkit
from crmkit import Role, Task, User
from crmkit.entities import TaskStatus

NOW = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def test_queries_select_open_tasks_by_due_time() -> None:
    crm = crmkit.connect("memory://", clock=lambda: NOW)
    crm.tasks.add_many(
        [
            Task(title="yesterday", due_at=NOW - 24 * H),
            Task(title="an hour ago", due_at=NOW - H, status=TaskStatus.IN_PROGRESS),
            Task(title="exactly now", due_at=NOW),
            Task(title="tonight", due_at=NOW + 8 * H, assignee_id="u1"),
            Task(title="next week", due_at=NOW + 7 * 24 * H),
            Task(title="done", due_at=NOW - H, status=TaskStatus.DONE),
            Task(title="cancelled", due_at=NOW - H, status=TaskStatus.CANCELLED),
            Task(title="no due time"),
        ]
    )

    def titles(tasks: list[Task]) -> list[str]:
        return [t.title for t in tasks]

    assert titles(crm.tasks.overdue()) == ["yesterday", "an hour ago"]
    assert titles(crm.tasks.due()) == ["yesterday", "an hour ago", "exactly now"]
    assert titles(crm.tasks.due(NOW + 12 * H)) == [
        "yesterday",
        "an hour ago",
        "exactly now",
        "tonight",
    ]
    assert titles(crm.tasks.upcoming(dt.timedelta(days=1))) == ["exactly now", "tonight"]
    assert titles(crm.tasks.upcoming()) == ["exactly now", "tonight"]  # 7 days, end excluded
    assert titles(crm.tasks.upcoming(dt.timedelta(days=8))) == [
        "exactly now",
        "tonight",
        "next week",
    ]
    assert titles(crm.tasks.upcoming(assignee_id="u1")) == ["tonight"]


def test_completion_records_when_and_by_whom_on_every_path() -> None:
    crm = crmkit.connect("memory://", clock=lambda: NOW)
    a, b = crm.tasks.add_many([Task(title="a"), Task(title="b")])
    done = crm.tasks.complete(a.id or "", by="u-7")
    assert (done.status, done.completed_at, done.completed_by) == (TaskStatus.DONE, NOW, "u-7")
    assert crm.tasks.complete(a.id or "") == done  # already done: unchanged
    plain = crm.tasks.update(attrs.evolve(b, status=TaskStatus.DONE))  # no actor known
    assert (plain.completed_at, plain.completed_by) == (NOW, None)
    reopened = crm.tasks.update(attrs.evolve(plain, status=TaskStatus.OPEN))
    assert (reopened.completed_at, reopened.completed_by) == (None, None)


def test_a_view_completes_as_its_user_within_its_scope() -> None:
    crm = crmkit.connect("memory://", clock=lambda: NOW)
    role = crm.roles.add(
        Role(name="rep", permissions={"tasks": {"read": "own", "update": "own", "create": "own"}})
    )
    rep = crm.users.add(User(name="Rep", email="rep@example.com", role_ids=[role.id or ""]))
    view = crm.as_user(rep)
    mine = view.tasks.add(Task(title="mine", due_at=NOW - H))
    crm.tasks.add(Task(title="theirs", due_at=NOW - H, owner_id="other"))
    assert [t.title for t in view.tasks.overdue()] == ["mine"]
    done = view.tasks.complete(mine.id or "")
    assert done.completed_by == rep.id
