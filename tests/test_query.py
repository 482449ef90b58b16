"""The query language: the F builder, bind(), ordering, cursors, to_dict/from_dict."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings

from crmkit import Contact, Deal, ValidationError
from crmkit.entities import LifecycleStage
from crmkit.query import (
    And,
    Cond,
    Cursor,
    Expr,
    F,
    Not,
    Op,
    Or,
    Order,
    bind,
    check_window,
    from_dict,
    parse_order,
)
from crmkit.testing import strategies as cs

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
A = Cond("a", Op.EQ, 1)
B = Cond("b", Op.EQ, 2)
C = Cond("c", Op.EQ, 3)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (F.last_name == "Lovelace", Cond("last_name", Op.EQ, "Lovelace")),
        (F.last_name != "x", Cond("last_name", Op.NE, "x")),
        (F.version < 2, Cond("version", Op.LT, 2)),
        (F.version <= 2, Cond("version", Op.LE, 2)),
        (F.version > 2, Cond("version", Op.GT, 2)),
        (F.version >= 2, Cond("version", Op.GE, 2)),
        (F.tags.in_(["a", "b"]), Cond("tags", Op.IN, ("a", "b"))),
        (F.tags.in_(x for x in "ab"), Cond("tags", Op.IN, ("a", "b"))),
        (F.tags.contains("a"), Cond("tags", Op.CONTAINS, "a")),
        (F.title.icontains("é"), Cond("title", Op.ICONTAINS, "é")),
        (F.title.startswith("C"), Cond("title", Op.STARTSWITH, "C")),
        (F.title.exists(), Cond("title", Op.EXISTS, None)),
        (F.version.between(1, 3), Cond("version", Op.BETWEEN, (1, 3))),
        (
            F.created_at.within_last(dt.timedelta(days=1)),
            Cond("created_at", Op.WITHIN_LAST, dt.timedelta(days=1)),
        ),
        (F.address.city == "Paris", Cond("address.city", Op.EQ, "Paris")),
        (F("address.city") == "Paris", Cond("address.city", Op.EQ, "Paris")),
        (F.custom.tier == "gold", Cond("custom.tier", Op.EQ, "gold")),
        (F.lifecycle_stage == LifecycleStage.LEAD, Cond("lifecycle_stage", Op.EQ, "lead")),
        (A & B, And((A, B))),
        ((A & B) & C, And((A, B, C))),
        (A & (B & C), And((A, B, C))),
        (A | B | C, Or((A, B, C))),
        ((A | B) & C, And((Or((A, B)), C))),
        (~A, Not(A)),
        (~~A, A),
    ],
)
def test_builder_makes_the_expected_expression(expr: Expr, expected: Expr) -> None:
    """Each operator of F builds one condition; & and | flatten; ~~ cancels."""
    assert expr == expected


def test_field_path_and_orders() -> None:
    """F paths are dotted; asc()/desc() make orders."""
    assert F.address.city.path == "address.city"
    assert repr(F.address.city) == "F.address.city"
    assert F.last_name.desc() == Order("last_name", True)
    assert F.last_name.asc() == Order("last_name", False)
    assert Order("x", True).to_str() == "-x"


def test_expressions_have_no_truth_value() -> None:
    """`a and b` on filters is a mistake: it raises TypeError instead of dropping a filter."""
    with pytest.raises(TypeError):
        bool(F.a == 1)
    with pytest.raises(TypeError):
        _ = (F.a == 1) and (F.b == 2)


@pytest.mark.parametrize(
    "build",
    [
        lambda: F.a == None,  # noqa: E711
        lambda: F.a != None,  # noqa: E711
        lambda: F.a == F.b,
        lambda: F.a < None,
        lambda: F.a.in_("abc"),
        lambda: F.a.in_({"k": 1}),
        lambda: F.a.in_([1, None]),
        lambda: F.a.icontains(5),
        lambda: F.a.startswith(None),
        lambda: F.a.between(None, 1),
        lambda: F.a.within_last(-dt.timedelta(days=1)),
        lambda: F.a.within_last(5),
        lambda: F.a == dt.datetime(2024, 1, 1),
        lambda: F.a == float("nan"),
        lambda: F.a == object(),
        lambda: F.a == {"$ne": None},
        lambda: F.a == [{"$gt": 1}],
    ],
)
def test_builder_rejects_bad_values(build: Any) -> None:
    """None, other fields, NaN, naive datetimes and structures are not query values."""
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == "a"


# --- bind -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "entity", "field", "reason"),
    [
        (F.nope == 1, Contact, "field", "not a queryable field"),
        (F.address.nope == 1, Contact, "field", "not a queryable field"),
        (F("custom.a.b") == 1, Contact, "field", "not a queryable"),
        (F("custom.bad key") == 1, Contact, "contacts.custom key", "not a valid key"),
        (F.first_name == 1, Contact, "first_name", "text field"),
        (F.emails == "a@b.c", Contact, "emails", "is a list"),
        (F.tags < "a", Contact, "tags", "is a list"),
        (F.do_not_contact > False, Contact, "do_not_contact", "range-compared"),
        (F.do_not_contact == "yes", Contact, "do_not_contact", "true or false"),
        (F.custom.flag > True, Contact, "custom.flag", "range-compared"),
        (F.custom.flag.between(False, True), Contact, "custom.flag", "range-compared"),
        (F.version == 1.5, Contact, "version", "whole number"),
        (F.version.icontains("1"), Contact, "version", "needs a text field"),
        (F.address == "x", Contact, "address", "only supports exists"),
        (F.lifecycle_stage == "boss", Contact, "lifecycle_stage", "is not one of"),
        (F.created_at > dt.date(2024, 1, 1), Contact, "created_at", "compare it with a datetime"),
        (F.created_at > "yesterday", Contact, "created_at", "ISO 8601"),
        (F.first_name.within_last(dt.timedelta(1)), Contact, "first_name", "datetime field"),
        (F.first_name == ("a", "b"), Contact, "first_name", "single value"),
        (F.close_date == "31/12/2024", Deal, "close_date", "ISO 8601"),
        (F.amount.amount == "lots", Deal, "amount.amount", "decimal number"),
        (F.amount.amount.startswith("1"), Deal, "amount.amount", "needs a text field"),
    ],
)
def test_bind_rejects_what_does_not_apply(
    expr: Expr, entity: type[Any], field: str, reason: str
) -> None:
    """bind() names the field and says why, for every misuse."""
    with pytest.raises(ValidationError) as caught:
        bind(expr, entity, now=NOW)
    assert caught.value.field == field
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("expr", "entity", "expected"),
    [
        (F.probability == 0.5, Deal, Cond("probability", Op.EQ, Decimal("0.5"))),
        (F.probability < 1, Deal, Cond("probability", Op.LT, Decimal(1))),
        (F.amount.amount >= "10.5", Deal, Cond("amount.amount", Op.GE, Decimal("10.5"))),
        (F.close_date == "2024-12-31", Deal, Cond("close_date", Op.EQ, dt.date(2024, 12, 31))),
        (
            F.created_at > "2024-01-01T00:00:00+02:00",
            Contact,
            Cond("created_at", Op.GT, dt.datetime(2023, 12, 31, 22, tzinfo=dt.UTC)),
        ),
        (
            F.created_at == dt.datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC),
            Contact,
            Cond("created_at", Op.EQ, dt.datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=dt.UTC)),
        ),
        (F.lifecycle_stage == "lead", Contact, Cond("lifecycle_stage", Op.EQ, "lead")),
        (
            F.lifecycle_stage.in_(["lead", LifecycleStage.CUSTOMER]),
            Contact,
            Cond("lifecycle_stage", Op.IN, ("lead", "customer")),
        ),
        (
            F.version.between(1, 3),
            Contact,
            And((Cond("version", Op.GE, 1), Cond("version", Op.LE, 3))),
        ),
        (
            F.created_at.within_last(dt.timedelta(days=1)),
            Contact,
            Cond("created_at", Op.GE, NOW - dt.timedelta(days=1)),
        ),
        (F.custom.n == 1.5, Contact, Cond("custom.n", Op.EQ, 1.5)),
        (F.custom.v == True, Contact, Cond("custom.v", Op.EQ, True)),  # noqa: E712
        (F.external_ids.erp == "C-1", Contact, Cond("external_ids.erp", Op.EQ, "C-1")),
        (~F.title.exists(), Contact, Not(Cond("title", Op.EXISTS, None))),
    ],
)
def test_bind_converts_values_to_the_stored_type(
    expr: Expr, entity: type[Any], expected: Expr
) -> None:
    """bind() coerces values, splits between and anchors within_last at `now`."""
    assert bind(expr, entity, now=NOW) == expected


def test_bind_of_none_is_none() -> None:
    """No filter stays no filter."""
    assert bind(None, Contact) is None


# --- to_dict / from_dict ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "data"),
    [
        (F.a == 1, {"field": "a", "op": "eq", "value": 1}),
        (F.a.exists(), {"field": "a", "op": "exists"}),
        (F.a.in_(["x", "y"]), {"field": "a", "op": "in", "value": ["x", "y"]}),
        (F.a == Decimal("1.50"), {"field": "a", "op": "eq", "value": {"decimal": "1.50"}}),
        (F.a == dt.date(2024, 1, 2), {"field": "a", "op": "eq", "value": {"date": "2024-01-02"}}),
        (
            F.a == dt.datetime(2024, 1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            {"field": "a", "op": "eq", "value": {"datetime": "2024-01-02T01:00:00+00:00"}},
        ),
        (
            F.a.within_last(dt.timedelta(hours=1)),
            {"field": "a", "op": "within_last", "value": {"seconds": 3600.0}},
        ),
        (F.a.between(1, 2), {"field": "a", "op": "between", "value": [1, 2]}),
        (
            (F.a == 1) & ~(F.b == 2),
            {
                "and": [
                    {"field": "a", "op": "eq", "value": 1},
                    {"not": {"field": "b", "op": "eq", "value": 2}},
                ]
            },
        ),
        ((F.a == 1) | (F.b == 2), {"or": [{"field": "a", "op": "eq", "value": 1}, B.to_dict()]}),
    ],
)
def test_to_dict_is_plain_json_and_from_dict_inverts_it(expr: Expr, data: dict[str, Any]) -> None:
    """Expressions serialize to tagged JSON data and back to an equal expression."""
    assert expr.to_dict() == data
    assert json.loads(json.dumps(data)) == data
    assert from_dict(data) == expr


@settings(max_examples=200, deadline=None)
@given(expr=cs.contact_filters() | cs.deal_filters() | cs.account_filters())
def test_dict_round_trip_of_random_expressions(expr: Expr) -> None:
    """from_dict(json(to_dict(e))) == e for any generated filter."""
    again = from_dict(json.loads(json.dumps(expr.to_dict())))
    assert again == expr
    assert again.to_dict() == expr.to_dict()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("eq", "query"),
        ({"field": "a", "op": "regex", "value": "x"}, "query.op"),
        ({"field": "a", "op": "$ne", "value": None}, "query.op"),
        ({"and": []}, "query.and"),
        ({"or": "x"}, "query.or"),
        ({"field": "a", "op": "eq", "value": 1, "extra": 2}, "query"),
        ({"and": [{"field": "a", "op": "eq", "value": 1}], "or": []}, "query"),
        ({"field": "a", "op": "eq"}, "query.a"),
        ({"field": "", "op": "eq", "value": 1}, "query.field"),
        ({"field": 3, "op": "eq", "value": 1}, "query.field"),
        ({"field": "a", "op": "eq", "value": {"$ne": None}}, "query.a"),
        ({"field": "a", "op": "eq", "value": {"date": "yesterday"}}, "query.a"),
        ({"field": "a", "op": "eq", "value": {"a": 1, "b": 2}}, "query.a"),
        ({"field": "a", "op": "between", "value": [1]}, "query.a"),
        ({"field": "a", "op": "eq", "value": None}, "a"),
        ({"field": "a", "op": "in", "value": "abc"}, "a"),
    ],
)
def test_from_dict_rejects_malformed_data(data: Any, field: str) -> None:
    """Unknown operators, malformed nodes and untagged structures are ValidationErrors."""
    with pytest.raises(ValidationError) as caught:
        from_dict(data)
    assert caught.value.field == field


# --- ordering, windows, cursors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, (Order("id"),)),
        ("last_name", (Order("last_name"), Order("id"))),
        ("-last_name", (Order("last_name", True), Order("id"))),
        ("+last_name", (Order("last_name"), Order("id"))),
        (F.created_at.desc(), (Order("created_at", True), Order("id"))),
        (["-title", "address.city"], (Order("title", True), Order("address.city"), Order("id"))),
        (["-id", "title"], (Order("id", True), Order("title"))),
    ],
)
def test_parse_order_appends_the_id(spec: Any, expected: tuple[Order, ...]) -> None:
    """Every order is total: the id is the last key unless given."""
    assert parse_order(spec, Contact) == expected


@pytest.mark.parametrize(
    "spec", ["nope", "tags", "custom.tier", "address", ["title", "-title"], [3], "emails"]
)
def test_parse_order_rejects_unsortable_fields(spec: Any) -> None:
    """Lists, custom fields, value objects, duplicates and non-fields cannot be sorted on."""
    with pytest.raises(ValidationError):
        parse_order(spec, Contact)


@pytest.mark.parametrize(
    ("limit", "offset"), [(-1, 0), (1.5, 0), (True, 0), (None, -1), (None, True), (2**40, 0)]
)
def test_check_window_rejects_bad_limits(limit: Any, offset: Any) -> None:
    """limit/offset are whole numbers >= 0."""
    with pytest.raises(ValidationError):
        check_window(limit, offset)


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("value", [False, True])
def test_cursor_after_a_boolean_key_binds(desc: bool, value: bool) -> None:
    """Paging by a boolean field works although booleans cannot be range-compared."""
    order = (Order("do_not_contact", desc), Order("id"))
    cursor = Cursor.encode(order, [value, "0" * 30])
    assert bind(Cursor.after(cursor, order), Contact) is not None


def test_cursor_round_trips_typed_values_and_checks_its_order() -> None:
    """A cursor carries datetimes and decimals, and only fits the ordering it came from."""
    order = (Order("stage_entered_at"), Order("probability", True), Order("id"))
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cursor = Cursor.encode(order, [when, Decimal("0.5"), "abc"])
    after = Cursor.after(cursor, order)
    assert bind(after, Deal) is not None
    assert Cond("stage_entered_at", Op.GT, when) in _conditions(after)
    assert Cond("probability", Op.LT, Decimal("0.5")) in _conditions(after)
    with pytest.raises(ValidationError):
        Cursor.after(cursor, (Order("name"), Order("id")))
    with pytest.raises(ValidationError):
        Cursor.after("!!not base64!!", order)


def _conditions(expr: Expr) -> list[Cond]:
    if isinstance(expr, Cond):
        return [expr]
    if isinstance(expr, Not):
        return _conditions(expr.item)
    assert isinstance(expr, And | Or)
    return [c for item in expr.items for c in _conditions(item)]


# --- related-record predicates ------------------------------------------------------------


def test_related_to_dict_round_trip_and_negation() -> None:
    """``F.related`` serializes as a plain node; ``~`` wraps it in ``not``."""
    inner = (F.kind == "email") & F.occurred_at.within_last(dt.timedelta(days=30))
    expr = ~F.related("interactions", inner)
    data = expr.to_dict()
    assert data == {"not": {"related": "interactions", "where": inner.to_dict()}}
    assert from_dict(json.loads(json.dumps(data))) == expr
    assert F.related("tickets").to_dict() == {"related": "tickets"}
    assert from_dict({"related": "tickets"}) == F.related("tickets")


@settings(max_examples=50, deadline=None)
@given(expr=cs.related_filters("contacts") | cs.related_filters("accounts"))
def test_dict_round_trip_of_random_related_expressions(expr: Expr) -> None:
    """Every generated expression with related predicates survives JSON."""
    assert from_dict(json.loads(json.dumps(expr.to_dict()))) == expr


def test_bind_checks_related_against_the_related_entity() -> None:
    """The relation must exist; the inner filter is bound to the related entity type."""
    bound = bind(F.related("deals", F.amount.amount > 10), Contact, now=NOW)
    assert bound == F.related("deals", Cond("amount.amount", Op.GT, Decimal(10)))
    window = bind(
        F.related("interactions", F.occurred_at.within_last(dt.timedelta(days=1))), Contact, now=NOW
    )
    assert window == F.related(
        "interactions", Cond("occurred_at", Op.GE, NOW - dt.timedelta(days=1))
    )
    with pytest.raises(ValidationError, match="not a relation of contacts"):
        bind(F.related("friends"), Contact)
    with pytest.raises(ValidationError) as info:
        bind(F.related("account", F.last_name == "x"), Contact)  # a contact field, not an account's
    assert info.value.field.startswith("related.account")
    with pytest.raises(ValidationError):
        bind(F.related("contacts"), Contact)  # contacts have no "contacts" relation


@pytest.mark.parametrize(
    "data",
    [
        {"related": "", "where": {"field": "a", "op": "exists"}},
        {"related": 3},
        {"related": "deals", "where": {"field": "a"}},
        {"related": "deals", "where": {"field": "a", "op": "exists"}, "extra": 1},
    ],
)
def test_from_dict_rejects_malformed_related_nodes(data: Any) -> None:
    with pytest.raises(ValidationError):
        from_dict(data)


def test_related_builder_rejects_bad_arguments() -> None:
    with pytest.raises(ValidationError):
        F.related("", F.a == 1)
    with pytest.raises(ValidationError):
        F.related("deals", "stage == won")  # type: ignore[arg-type]


# --- within_km --------------------------------------------------------------------------------


def test_within_km_builds_a_float_condition_and_round_trips() -> None:
    """within_km() stores (lat, lon, km) as floats; to_dict/from_dict invert each other."""
    near = F.address.within_km(Decimal("51.5074"), -0.1278, 25)
    assert near == Cond("address", Op.WITHIN_KM, (51.5074, -0.1278, 25.0))
    data = near.to_dict()
    assert data == {"field": "address", "op": "within_km", "value": [51.5074, -0.1278, 25.0]}
    assert from_dict(json.loads(json.dumps(data))) == near
    assert from_dict((~near).to_dict()) == ~near
    assert bind(near, Contact, now=NOW) == near


@pytest.mark.parametrize(
    "build",
    [
        lambda: F.a.within_km(91, 0, 1),
        lambda: F.a.within_km(-90.5, 0, 1),
        lambda: F.a.within_km(0, 180.01, 1),
        lambda: F.a.within_km(0, -181, 1),
        lambda: F.a.within_km(0, 0, 0),
        lambda: F.a.within_km(0, 0, -5),
        lambda: F.a.within_km(0, 0, float("inf")),
        lambda: F.a.within_km(0, 0, float("nan")),
        lambda: F.a.within_km(float("nan"), 0, 1),
        lambda: F.a.within_km("51.5", 0, 1),
        lambda: F.a.within_km(True, 0, 1),
        lambda: F.a.within_km(0, None, 1),
        lambda: F.a.within_km(Decimal("Infinity"), 0, 1),
    ],
)
def test_within_km_rejects_bad_arguments(build: Any) -> None:
    """Latitude in [-90, 90], longitude in [-180, 180], a finite radius > 0, numbers only."""
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == "a"


@pytest.mark.parametrize(
    ("expr", "entity", "field"),
    [
        (F.emails.within_km(0, 0, 1), Contact, "emails"),
        (F.address.city.within_km(0, 0, 1), Contact, "address.city"),
        (F.address.latitude.within_km(0, 0, 1), Contact, "address.latitude"),
        (F.amount.within_km(0, 0, 1), Deal, "amount"),
    ],
)
def test_within_km_needs_a_place_with_coordinates(
    expr: Expr, entity: type[Any], field: str
) -> None:
    """Only value objects with latitude/longitude (addresses) take within_km()."""
    with pytest.raises(ValidationError) as caught:
        bind(expr, entity, now=NOW)
    assert caught.value.field == field
    assert "latitude/longitude" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [
        {"field": "address", "op": "within_km", "value": [1, 2]},
        {"field": "address", "op": "within_km", "value": 5},
        {"field": "address", "op": "within_km", "value": [100, 0, 1]},
        {"field": "address", "op": "within_km"},
    ],
)
def test_from_dict_rejects_malformed_within_km(data: Any) -> None:
    """A stored within_km node is checked like a built one."""
    with pytest.raises(ValidationError):
        from_dict(data)


def test_geo_distance_matches_the_known_london_paris_distance() -> None:
    """The shared formula: London-Paris is 343.56 km on the 6371.0088 km sphere."""
    from crmkit import geo

    assert geo.distance_km(51.5074, -0.1278, 48.8566, 2.3522) == pytest.approx(343.5565, abs=1e-3)
    assert geo.distance_km(0, 0, 0, 180) == pytest.approx(math.pi * geo.EARTH_RADIUS_KM)
    box = geo.bounding_box(-17.5, 179.8, 100)
    assert len(box.lon_ranges) == 2
    assert geo.bounding_box(89.5, 0, 100).lon_ranges == ()


def test_bound_subtrees_are_reused_unless_they_depend_on_the_time() -> None:
    """Binding the same ``Or`` twice gives the same result; an ``Or`` holding a relative
    date is bound again against each ``now``."""
    t1 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    t2 = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    scope = (F.owner_id == "u1") | F.team_id.in_(["t1"])
    assert bind(scope, Contact, now=t1) == bind(scope, Contact, now=t2)
    assert bind(scope, Contact, now=t1) == Or(
        (Cond("owner_id", Op.EQ, "u1"), Cond("team_id", Op.IN, ("t1",)))
    )
    recent = (F.owner_id == "u1") | F.created_at.within_last(dt.timedelta(days=1))
    early, late = bind(recent, Contact, now=t1), bind(recent, Contact, now=t2)
    assert early != late
    assert early == Or(
        (Cond("owner_id", Op.EQ, "u1"), Cond("created_at", Op.GE, t1 - dt.timedelta(days=1)))
    )
    with pytest.raises(ValidationError):
        bind((F.owner_id == "u1") | (F.no_such_field == 1), Contact)


def test_equal_expressions_with_numbers_and_booleans_are_bound_apart() -> None:
    """``1 == True`` in Python, but a custom flag compared with ``True`` and with ``1`` are
    different filters: neither reuses the other's bound form."""
    flag = (F.custom.flag == True) | (F.owner_id == "u1")  # noqa: E712
    one = (F.custom.flag == 1) | (F.owner_id == "u1")
    assert flag == one  # Python's equality, which a cache keyed on it would trust
    assert repr(bind(flag, Contact).to_dict()) != repr(bind(one, Contact).to_dict())
    assert bind(one, Contact).to_dict()["or"][0]["value"] is not True


@pytest.mark.parametrize(
    "build",
    [
        lambda: bind(F.version < 2**63, Contact),
        lambda: F.related("deals").count() < 2**63,
        lambda: bind(F.related("deals").sum("version") > 2**64, Contact),
        lambda: Contact(first_name="Ada", version=2**63),
        lambda: Contact(first_name="Ada", custom={"n": -(2**63) - 1}),
    ],
    ids=["field", "count", "sum", "entity", "custom-value"],
)
def test_whole_numbers_beyond_64_bits_are_refused(build: Any) -> None:
    """BSON and SQL integers are 64-bit: a larger whole-number field value, or a value
    compared with one, is refused before any backend sees it."""
    with pytest.raises(ValidationError, match="64-bit"):
        build()
    assert bind(F.version < 2**63 - 1, Contact) is not None


def test_big_whole_numbers_compare_with_decimals_and_custom_values() -> None:
    """Against a decimal field (a sum of amounts) or a custom value, a number beyond 64
    bits is compared as the decimal it is."""
    bound = bind(F.custom.n < 2**64, Contact)
    assert isinstance(bound, Cond)
    assert bound.value == Decimal(2**64)
    assert bind(F.related("deals").sum("amount.amount") > 10**20, Contact) is not None
