"""The conformance suite on MongoDB, plus what only the Mongo backend has.

``TestMongomock`` runs the whole suite on ``mongomock://`` always. ``TestMongoServer`` runs
it on a real server and exists only when ``CRMKIT_MONGODB_URL`` is set (for example
``mongodb://localhost:27017``): every test gets a fresh database, dropped afterwards. The
remaining tests check Mongo-specific promises: user values never become query syntax, the
work (filter, sort, skip, limit, count) runs in the database, indexes exist, and pymongo
errors come out as crmkit errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
import mongomock
import pymongo
import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DocumentTooLarge,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

import crmkit
from crmkit import (
    Account,
    BackendError,
    ConflictError,
    Contact,
    Deal,
    Money,
    NotFound,
    Segment,
    ValidationError,
    geo,
)
from crmkit.backends.mongo import MongoBackend, MongoStore, RollbackError, open_backend
from crmkit.backends.mongo.compile import VALUE_OPERATORS, FilterCompiler, compile_find
from crmkit.backends.mongo.convert import decimal_key, geo_shadow
from crmkit.entities import Address
from crmkit.entities.schema import indexed_fields
from crmkit.query import Cond, F, Op, Query, bind, parse_order
from crmkit.testing.conformance import HOSTILE_VALUES, ConformanceSuite

MONGODB_URL = os.environ.get("CRMKIT_MONGODB_URL")


class TestMongomock(ConformanceSuite):
    """Every conformance test, on ``mongomock://``."""

    @pytest.fixture
    def crm(self) -> Iterator[crmkit.CRM]:
        """A fresh, empty mongomock CRM per test."""
        crm = crmkit.connect("mongomock://")
        yield crm
        crm.close()


@contextlib.contextmanager
def _fresh_database(client: pymongo.MongoClient[dict[str, Any]]) -> Iterator[crmkit.CRM]:
    """A CRM on a new database of ``client``'s server, dropped when the block ends."""
    name = f"crmkit_test_{uuid.uuid4().hex[:16]}"
    crm = crmkit.connect(client.get_database(name))
    try:
        yield crm
    finally:
        crm.close()
        client.drop_database(name)


if MONGODB_URL:
    # Defined only when a server is given: without one there is nothing to run, and a
    # suite of skipped tests would only hide that.

    class TestMongoServer(ConformanceSuite):
        """Every conformance test on the server at ``CRMKIT_MONGODB_URL``."""

        @pytest.fixture(scope="class")
        def client(self) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
            """One client for the whole class."""
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
                MONGODB_URL, tz_aware=True, serverSelectionTimeoutMS=10_000
            )
            yield client
            client.close()

        @pytest.fixture
        def crm(self, client: pymongo.MongoClient[dict[str, Any]]) -> Iterator[crmkit.CRM]:
            """A CRM on a fresh database, dropped after the test."""
            with _fresh_database(client) as crm:
                yield crm


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def crm() -> Iterator[crmkit.CRM]:
    """A fresh mongomock CRM."""
    crm = crmkit.connect("mongomock://")
    yield crm
    crm.close()


def mongo(crm: crmkit.CRM) -> MongoBackend:
    """The CRM's Mongo backend, typed."""
    assert isinstance(crm.backend, MongoBackend)
    return crm.backend


class Spy:
    """Stands in for a pymongo collection: records calls, optionally replaces methods."""

    def __init__(self, target: Any, **replace: Callable[..., Any]) -> None:
        self._target = target
        self._replace = replace
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fetched = 0

    def __getattr__(self, name: str) -> Any:
        real = self._replace.get(name) or getattr(self._target, name)
        if not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            result = real(*args, **kwargs)
            if name in ("find", "aggregate"):
                return self._counting(result)
            return result

        return call

    def _counting(self, cursor: Any) -> Iterator[Any]:
        spy = self

        class Counting:
            def __iter__(self) -> Iterator[Any]:
                return self

            def __next__(self) -> Any:
                doc = next(cursor)
                spy.fetched += 1
                return doc

            def close(self) -> None:
                cursor.close()

        return Counting()

    def names(self) -> list[str]:
        """The methods called, in order."""
        return [c[0] for c in self.calls]


def spy_on(crm: crmkit.CRM, entity: type[Any], **replace: Callable[..., Any]) -> Spy:
    """Put a :class:`Spy` in front of ``entity``'s collection."""
    store = mongo(crm).store(entity)
    spy = Spy(store.collection, **replace)
    store.collection = spy  # type: ignore[assignment]
    return spy


# --- injection ----------------------------------------------------------------------------

#: Hostile strings beyond the suite's: operator names, field paths, aggregation variables.
HOSTILE = (
    *HOSTILE_VALUES,
    "$ne",
    "$in",
    "$regex",
    "$expr",
    "$$ROOT",
    "$first_name",
    "first_name",
    "_id",
    "a.b",
    "$where: function() { return true }",
    '{"$gt": ""}',
    "É",
)

#: Every operator a compiled filter may use; anything else would be user syntax.
ALLOWED_OPERATORS = (
    VALUE_OPERATORS | {"$and", "$or", "$nor", "$not", "$type", "$exists"} | {"$elemMatch"}
)
_PATH = re.compile(r"(_lc\.|_dec\.)?[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*\Z")


def _conditions(path: str, value: str) -> list[Any]:
    """Every operator applicable to ``path`` with a hostile text ``value``."""
    f = F(path)
    text = [f == value, f != value, f < value, f >= value, f.in_([value, "x"])]
    like = [f.contains(value), f.icontains(value), f.startswith(value), f.exists()]
    if path in ("tags", "emails"):
        return [f.in_([value]), *like]
    return text + like


def _walk(node: Any, parent: str | None, found: list[tuple[str | None, Any]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            assert isinstance(key, str)
            if key.startswith("$"):
                assert key in ALLOWED_OPERATORS, f"unexpected operator {key!r}"
            else:
                assert _PATH.match(key), f"{key!r} is not a schema path"
            _walk(value, key, found)
    elif isinstance(node, list):
        for item in node:
            _walk(item, parent, found)
    else:
        found.append((parent, node))


@pytest.mark.parametrize(
    "path", ["first_name", "title", "address.city", "custom.tier", "external_ids.erp", "tags"]
)
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_only_sit_in_value_positions(path: str, value: str) -> None:
    compiler = FilterCompiler(Contact)
    for cond, neutral in zip(_conditions(path, value), _conditions(path, "plain"), strict=True):
        compiled = compiler.compile(bind(cond, Contact))
        # the value never becomes a key: the filter has the same shape as for plain text
        assert _skeleton(compiled) == _skeleton(compiler.compile(bind(neutral, Contact)))
        leaves: list[tuple[str | None, Any]] = []
        _walk(compiled, None, leaves)
        for parent, leaf in leaves:
            if not isinstance(leaf, str):
                continue
            if parent == "$regex":
                # an escaped pattern: it matches the hostile text literally
                literal = value.lower() if cond.op is Op.ICONTAINS else value
                expected = ("^" if cond.op is Op.STARTSWITH else "") + re.escape(literal)
                assert leaf == expected
            elif parent == "$type":
                assert leaf in ("string", "number", "bool", "array", "date", "object")
            else:
                assert parent in VALUE_OPERATORS, (parent, leaf, compiled)


def _skeleton(node: Any) -> Any:
    """The filter with every leaf value replaced by its type: keys and nesting only."""
    if isinstance(node, dict):
        return {k: _skeleton(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_skeleton(v) for v in node]
    return type(node).__name__


@pytest.mark.parametrize(
    "value", [{"$gt": ""}, {"$ne": None}, ["$gt"], object(), b"$gt", None, Money]
)
def test_the_compiler_refuses_non_scalar_values_itself(value: Any) -> None:
    # bind() refuses these first; the compiler must not depend on it
    compiler = FilterCompiler(Contact)
    for field in ("first_name", "custom.tier", "version", "created_at"):
        for op in (Op.EQ, Op.NE, Op.LT, Op.CONTAINS):
            with pytest.raises(ValidationError):
                compiler.compile(Cond(field, op, value))
    with pytest.raises(ValidationError):
        compiler.compile(Cond("first_name", Op.IN, (value,)))


@pytest.mark.parametrize("path", ["custom.$where", "custom.a.b", "$where", "first_name.$ne"])
def test_operator_shaped_field_paths_are_refused(path: str) -> None:
    with pytest.raises(ValidationError):
        FilterCompiler(Contact).compile(Cond(path, Op.EQ, "x"))


def test_dollar_and_dict_shaped_strings_round_trip_as_data(crm: crmkit.CRM) -> None:
    odd = crm.contacts.add(
        Contact(
            first_name="$gt",
            last_name='{"$ne": null}',
            title="$where",
            tags=["$in", "{'$gt': ''}"],
            custom={"op": "$regex", "doc": '{"$gt": ""}', "list": ["$ne", 1]},
            external_ids={"erp": "$expr"},
        )
    )
    plain = crm.contacts.add(Contact(first_name="gt", last_name="ne", title="where"))
    assert crm.contacts.get(odd.id) == odd
    raw = mongo(crm).database.contacts.find_one({"_id": odd.id})
    assert raw is not None
    assert raw["first_name"] == "$gt"
    assert raw["custom"]["doc"] == '{"$gt": ""}'
    assert [c.id for c in crm.contacts.find(F.first_name == "$gt")] == [odd.id]
    assert [c.id for c in crm.contacts.find(F.last_name == '{"$ne": null}')] == [odd.id]
    assert [c.id for c in crm.contacts.find(F.tags.contains("$in"))] == [odd.id]
    assert [c.id for c in crm.contacts.find(F.custom.op == "$regex")] == [odd.id]
    assert [c.id for c in crm.contacts.find(F.custom.list.contains("$ne"))] == [odd.id]
    assert [c.id for c in crm.contacts.find(F.external_ids.erp.startswith("$ex"))] == [odd.id]
    assert crm.contacts.count(F.title != "$where") == 1
    assert crm.contacts.get(plain.id) == plain


def test_free_form_documents_with_operator_keys_round_trip(crm: crmkit.CRM) -> None:
    rule = {"and": [{"field": "$where", "op": "eq", "value": {"$gt": ""}}], "a.b": {"$ne": 1}}
    segment = crm.segments.add(Segment(name="odd", rule=rule))
    assert crm.segments.get(segment.id) == segment
    assert crm.segments.get(segment.id).rule.to_dict() == rule


# --- conversion ---------------------------------------------------------------------------


def test_decimal_keys_order_like_numbers() -> None:
    values = [
        Decimal(v)
        for v in (
            "-1e30", "-10", "-9.99", "-1", "-0.123", "-0.12", "-1e-30", "0", "-0", "1e-30",
            "0.12", "0.123", "1", "1.0", "1.50", "9.99", "10", "123456789.123456789", "1e30",
        )
    ]  # fmt: skip
    for a in values:
        for b in values:
            assert (a < b) == (decimal_key(a) < decimal_key(b)), (a, b)
            assert (a == b) == (decimal_key(a) == decimal_key(b)), (a, b)


def test_storage_forms(crm: crmkit.CRM) -> None:
    deal = crm.deals.add(
        Deal(
            name="Big",
            amount=Money(amount=Decimal("1200.50"), currency="EUR"),
            close_date=dt.date(2024, 5, 1),
        )
    )
    raw = mongo(crm).database.deals.find_one({"_id": deal.id})
    assert raw is not None
    assert raw["amount"]["amount"].to_decimal() == Decimal("1200.50")  # Decimal128
    assert raw["close_date"] == dt.datetime(2024, 5, 1)  # midnight UTC (mongomock: naive)
    assert raw["_lc"]["name"] == "big"
    assert crm.deals.get(deal.id) == deal


def test_decimal_values_beyond_decimal128_are_refused_and_write_nothing(
    crm: crmkit.CRM,
) -> None:
    with pytest.raises(ValidationError, match="Decimal128"):
        crm.deals.add(Deal(name="x", probability=Decimal("0." + "1" * 40)))
    assert crm.deals.count() == 0


# --- work in the database -----------------------------------------------------------------


def _contacts(crm: crmkit.CRM, n: int) -> list[Contact]:
    return list(
        crm.contacts.add_many(
            Contact(first_name=f"F{i}", last_name=None if i % 4 == 0 else f"L{i % 7}")
            for i in range(n)
        )
    )


def test_sorting_on_a_nullable_field_is_a_pipeline_with_sort_skip_limit(
    crm: crmkit.CRM,
) -> None:
    _contacts(crm, 40)
    spy = spy_on(crm, Contact)
    page = crm.contacts.find(F.first_name.startswith("F"), order_by="-last_name", offset=5, limit=7)
    assert len(page) == 7
    assert spy.names() == ["aggregate"]
    pipeline = spy.calls[0][1][0]
    stages = [next(iter(s)) for s in pipeline]
    assert stages == ["$match", "$addFields", "$sort", "$skip", "$limit", "$project"]
    assert pipeline[3] == {"$skip": 5}
    assert pipeline[4] == {"$limit": 7}
    assert spy.fetched == 7  # nothing fetched that is not returned
    assert [c.last_name is None for c in crm.contacts.find(order_by="-last_name")][-10:] == [
        True
    ] * 10


def test_sorting_on_required_fields_is_a_plain_find_with_sort_skip_limit(
    crm: crmkit.CRM,
) -> None:
    _contacts(crm, 30)
    spy = spy_on(crm, Contact)
    page = crm.contacts.find(order_by=["-created_at", "version"], offset=3, limit=4)
    assert len(page) == 4
    ((name, _, kwargs),) = spy.calls
    assert name == "find"
    assert kwargs["sort"] == [("created_at", -1), ("version", 1), ("_id", 1)]
    assert (kwargs["skip"], kwargs["limit"]) == (3, 4)
    assert spy.fetched == 4


def test_plans_use_the_order_key_for_decimals(crm: crmkit.CRM) -> None:
    store = mongo(crm).store(Deal)
    plan = store.plan(Query(order=parse_order("-amount.amount", Deal), limit=3))
    assert plan.needs_pipeline
    assert [(k.path, k.desc) for k in plan.keys] == [("_dec.amount.amount", True), ("_id", False)]


def test_count_and_limit_zero_fetch_no_documents(crm: crmkit.CRM) -> None:
    _contacts(crm, 12)
    spy = spy_on(crm, Contact)
    assert crm.contacts.count(F.last_name.exists()) == 9
    assert crm.contacts.find(limit=0) == []
    assert spy.names() == ["count_documents"]
    assert spy.fetched == 0


def test_iterate_streams_in_batches(crm: crmkit.CRM) -> None:
    added = _contacts(crm, 25)
    spy = spy_on(crm, Contact)
    seen = list(crm.contacts.iterate(order_by="last_name", batch_size=10))
    assert sorted(c.id for c in seen) == sorted(c.id for c in added)  # type: ignore[type-var]
    assert spy.calls[0][2]["batchSize"] == 10


# --- schema -------------------------------------------------------------------------------


def test_create_schema_makes_lookup_indexes_and_is_idempotent(crm: crmkit.CRM) -> None:
    db = mongo(crm).database
    before = {
        name: sorted(db.get_collection(name).index_information())
        for name in db.list_collection_names()
    }
    for entity in (Contact, Account, Deal):
        indexes = db.get_collection(entity.collection).index_information()
        for field in indexed_fields(entity):
            assert indexes[f"{field}_1"]["key"] == [(field, 1)]
    assert {"emails_1", "phones_1", "account_id_1", "owner_id_1", "team_id_1"} <= set(
        db.contacts.index_information()
    )
    assert "domain_1" in db.accounts.index_information()
    # external ids are looked up by source (an import's upsert): a wildcard index
    assert db.contacts.index_information()["external_ids.$**_1"]["key"] == [("external_ids.$**", 1)]
    crm.create_schema()
    crm.create_schema()
    after = {
        name: sorted(db.get_collection(name).index_information())
        for name in db.list_collection_names()
    }
    assert after == before


def test_create_schema_can_be_left_to_the_caller() -> None:
    crm = crmkit.connect("mongomock://", create_schema=False)
    assert "contacts" not in mongo(crm).database.list_collection_names()
    crm.create_schema()
    assert "emails_1" in mongo(crm).database.contacts.index_information()


# --- connecting ---------------------------------------------------------------------------


def test_connect_to_an_existing_database_with_a_prefix() -> None:
    client: Any = mongomock.MongoClient()
    db = client.get_database("app")
    assert open_backend.accepts(db)
    crm = crmkit.connect(db, prefix="crm_")
    ada = crm.contacts.add(Contact(first_name="Ada"))
    assert db.crm_contacts.find_one({"_id": ada.id})["first_name"] == "Ada"
    crm.close()
    assert db.crm_contacts.count_documents({}) == 1  # the caller's client stays open
    again = crmkit.connect(db, prefix="crm_")
    assert again.contacts.get(ada.id) == ada


def test_accepts_only_databases() -> None:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        "mongodb://127.0.0.1:1", connect=False
    )
    assert open_backend.accepts(client.get_database("x"))
    assert not open_backend.accepts(client)
    assert not open_backend.accepts("mongodb://x/y")
    assert not open_backend.accepts(object())
    client.close()


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("mongodb://127.0.0.1:1", {}),  # no database named
        ("mongodb://127.0.0.1:1/db", {"prefix": "$x"}),
        ("mongodb://127.0.0.1:1/db", {"transactions": "yes"}),
        ("mongodb://127.0.0.1:1/db", {"unknown": 1}),
        ("mongomock:///bad$name", {}),
    ],
)
def test_bad_urls_and_options_raise_validation_error(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        crmkit.connect(url, create_schema=False, **options)


def test_an_unreachable_server_raises_backend_error() -> None:
    crm = crmkit.connect(
        "mongodb://user:secret@127.0.0.1:1/crm",
        create_schema=False,
        client_options={"serverSelectionTimeoutMS": 100},
    )
    with pytest.raises(BackendError) as info:
        crm.contacts.get("x")
    assert isinstance(info.value.__cause__, ServerSelectionTimeoutError)
    for call in (crm.contacts.count, crm.create_schema, lambda: crm.contacts.find(limit=3)):
        with pytest.raises(BackendError):
            call()
    with pytest.raises(BackendError):
        crm.contacts.add(Contact(first_name="Ada"))
    crm.close()
    crm.close()


# --- error mapping ------------------------------------------------------------------------


def test_duplicate_ids_raise_conflict_and_insert_is_all_or_nothing(crm: crmkit.CRM) -> None:
    store = mongo(crm).store(Contact)
    ada = crm.contacts.add(Contact(first_name="Ada"))
    with pytest.raises(ConflictError):
        store.insert([ada])
    bob = attrs.evolve(ada, id="0" * 30, first_name="Bob")
    with pytest.raises(ConflictError):
        store.insert([bob, ada])
    assert crm.contacts.count() == 1
    with pytest.raises(NotFound):
        crm.contacts.get(bob.id or "")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (AutoReconnect("connection reset"), BackendError),
        (OperationFailure("WriteConflict", code=112), ConflictError),
        (OperationFailure("not authorized", code=13), BackendError),
        (DocumentTooLarge("too big"), ValidationError),
        (OverflowError("MongoDB can only handle up to 8-byte ints"), ValidationError),
    ],
)
def test_driver_errors_become_crmkit_errors(
    crm: crmkit.CRM, error: Exception, expected: type[Exception]
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    # a single add outside any transaction: with the audit trail on, the add would run in
    # one, and undoing it would fail too (every call on the collection fails here)
    crm.audit.enabled = False
    spy_on(
        crm,
        Contact,
        insert_one=fail,
        find_one=fail,
        find=fail,
        aggregate=fail,
        count_documents=fail,
        replace_one=fail,
        find_one_and_replace=fail,
    )
    calls: list[Callable[[], Any]] = [
        lambda: crm.contacts.add(Contact(first_name="Ada")),
        lambda: crm.contacts.get("x"),
        lambda: crm.contacts.find(order_by="last_name"),
        lambda: crm.contacts.find(),
        lambda: crm.contacts.count(),
        lambda: crm.contacts.get_many(["x"]),
    ]
    for call in calls:
        with pytest.raises(expected) as info:
            call()
        assert info.value.__cause__ is error
        assert not isinstance(info.value, PyMongoError)


# --- emulated transactions ----------------------------------------------------------------


def test_a_failed_rollback_reports_exactly_the_records_left_behind(crm: crmkit.CRM) -> None:
    collection = mongo(crm).database.contacts
    real_insert_many = collection.insert_many
    batches = 0

    def insert_many(docs: list[dict[str, Any]], **kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        if batches < 3:
            return real_insert_many(docs, **kwargs)
        real_insert_many(docs[:1], **kwargs)  # the third batch fails after one document
        raise BulkWriteError({"nInserted": 1, "writeErrors": [{"index": 1, "code": 2}]})

    def delete_many(*args: Any, **kwargs: Any) -> Any:
        raise AutoReconnect("connection lost during the rollback")

    spy_on(crm, Contact, insert_many=insert_many, delete_many=delete_many)
    with pytest.raises(RollbackError) as info:
        crm.contacts.add_many((Contact(first_name=f"C{i}") for i in range(6)), batch_size=2)
    left = {w.id for w in info.value.not_undone}
    assert left == {d["_id"] for d in collection.find({}, {"_id": 1})}
    assert len(left) == 5
    assert isinstance(info.value, BackendError)
    assert isinstance(info.value.__cause__, BackendError)  # the insert failure


def test_rollback_never_overwrites_a_concurrent_change(crm: crmkit.CRM) -> None:
    ada = crm.contacts.add(Contact(first_name="Ada"))
    collection = mongo(crm).database.contacts

    def work() -> None:
        with crm.transaction():
            crm.contacts.update(attrs.evolve(ada, title="CTO"))
            # another client changes the record before this transaction fails
            collection.update_one({"_id": ada.id}, {"$set": {"title": "CEO", "version": 9}})
            raise RuntimeError("boom")

    with pytest.raises(RollbackError) as info:
        work()
    assert [(w.id, w.action) for w in info.value.not_undone] == [(ada.id, "replaced")]
    assert crm.contacts.get(ada.id).title == "CEO"


def test_nested_rollback_keeps_outer_writes(crm: crmkit.CRM) -> None:

    def inner(outer: Contact) -> None:
        with crm.transaction():
            crm.contacts.add(Contact(first_name="Inner"))
            crm.contacts.update(attrs.evolve(outer, title="changed"))
            crm.contacts.delete(outer.id or "")
            raise RuntimeError

    with crm.transaction():
        outer = crm.contacts.add(Contact(first_name="Outer"))
        with pytest.raises(RuntimeError):
            inner(outer)
    assert [c.first_name for c in crm.contacts.find()] == ["Outer"]
    assert crm.contacts.get(outer.id or "") == outer


def test_mongomock_never_uses_server_transactions(crm: crmkit.CRM) -> None:
    assert not mongo(crm).supports_transactions()
    assert isinstance(mongo(crm).store(Contact), MongoStore)


def test_custom_field_index_on_the_custom_path(crm: crmkit.CRM) -> None:
    crm.schema.define_field("contacts", "score", "integer", indexed=True)
    store: Any = crm.backend.store(crmkit.Contact)
    keys = [info["key"] for info in store.collection.index_information().values()]
    assert [("custom.score", 1)] in keys


# --- within_km: the 2dsphere pre-filter and the shadow upgrade ------------------------------


def _geo_parts(where: Any, entity: type[Any] = Contact, *, geo_index: bool) -> list[Any]:
    compiled = FilterCompiler(entity, geo_index=geo_index).compile(bind(where, entity))
    parts: list[Any] = compiled["$and"]
    return parts


def _exact_test(part: Any, lat: float, lon: float, km: float) -> None:
    """``part`` is the exact chord test of crmkit.geo around (lat, lon) for ``km``."""
    assert set(part) == {"$expr"}
    chord, limit = part["$expr"]["$lte"]
    assert limit == geo.chord_limit(km)
    centre = geo.unit_vector(lat, lon)
    (xy, z) = chord["$add"]
    squares = [*xy["$add"], z]
    for axis, c, square in zip("xyz", centre, squares, strict=True):
        diff = {"$subtract": [f"$_geo.address.{axis}", c]}
        assert square == {"$multiply": [diff, diff]}


def test_within_km_on_a_server_prefilters_with_geo_within_on_the_2dsphere_point() -> None:
    lat, lon, km = 51.5074, -0.1278, 25.0
    cap, exact = _geo_parts(F.address.within_km(lat, lon, km), geo_index=True)
    radians = km / geo.EARTH_RADIUS_KM + 1e-5
    assert cap == {"_geo.address.point": {"$geoWithin": {"$centerSphere": [[lon, lat], radians]}}}
    assert geo.cap_radians(km) == radians
    _exact_test(exact, lat, lon, km)
    # on orders, the field is shipping_address
    from crmkit import Order

    order_cap = _geo_parts(F.shipping_address.within_km(lat, lon, km), Order, geo_index=True)[0]
    assert list(order_cap) == ["_geo.shipping_address.point"]


def test_within_km_on_mongomock_prefilters_with_a_bounding_box() -> None:
    lat, lon, km = -17.5, 179.8, 200.0
    box = geo.bounding_box(lat, lon, km)
    lat_range, lon_ranges, exact = _geo_parts(F.address.within_km(lat, lon, km), geo_index=False)
    assert lat_range == {"_geo.address.lat": {"$gte": box.min_lat, "$lte": box.max_lat}}
    assert lon_ranges == {
        "$or": [{"_geo.address.lon": {"$gte": lo, "$lte": hi}} for lo, hi in box.lon_ranges]
    }
    _exact_test(exact, lat, lon, km)


def test_within_km_reaching_the_antipode_needs_no_cap() -> None:
    # a cap of (nearly) the whole sphere is no pre-filter: the box (latitudes only) is used
    lat_range, exact = _geo_parts(F.address.within_km(10, 20, 20_010), geo_index=True)
    assert lat_range == {"_geo.address.lat": {"$gte": -90.0, "$lte": 90.0}}
    _exact_test(exact, 10, 20, 20_010)


def test_within_km_inside_related_uses_the_same_prefilter() -> None:
    seen: list[Any] = []

    def related(rel: Any, where: Any) -> list[Any]:
        seen.append(where)
        return ["a1"]

    inside = F.related("account", F.address.within_km(51.5, -0.1, 5))
    FilterCompiler(Contact, related, geo_index=True).compile(bind(inside, Contact))
    assert "_geo.address.point" in seen[0]["$and"][0]
    compile_find(Account, Query(where=bind(F.address.within_km(1, 2, 3), Account)), geo_index=True)


def test_the_store_picks_the_prefilter_by_server_kind(crm: crmkit.CRM) -> None:
    where = F.address.within_km(51.5, -0.1, 5)
    plan = mongo(crm).store(Contact).plan(Query(where=bind(where, Contact)))
    assert "_geo.address.lat" in plan.filter["$and"][0]  # mongomock: no $geoWithin


def test_create_schema_makes_a_2dsphere_index_on_each_geo_point(crm: crmkit.CRM) -> None:
    db = mongo(crm).database
    contacts = db.contacts.index_information()
    assert contacts["_geo.address.point_2dsphere"]["key"] == [("_geo.address.point", "2dsphere")]
    orders = db.get_collection(crmkit.Order.collection).index_information()
    assert "_geo.shipping_address.point_2dsphere" in orders


@pytest.fixture(params=["mongomock", *(["server"] if MONGODB_URL else [])])
def any_mongo(request: pytest.FixtureRequest) -> Iterator[crmkit.CRM]:
    """A fresh CRM on mongomock, and on the server at ``CRMKIT_MONGODB_URL`` when set."""
    if request.param == "mongomock":
        crm = crmkit.connect("mongomock://")
        yield crm
        crm.close()
        return
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        MONGODB_URL, tz_aware=True, serverSelectionTimeoutMS=10_000
    )
    try:
        with _fresh_database(client) as crm:
            yield crm
    finally:
        client.close()


def _old_document(crm: crmkit.CRM, contact: Contact, shadow: str) -> dict[str, Any]:
    """``contact`` as an older crmkit stored it: no ``_geo`` shadow, or one without
    ``point``."""
    doc = mongo(crm).converter.to_document(contact)
    if shadow == "none":
        doc.pop("_geo")
    else:
        doc["_geo"]["address"].pop("point")
    return doc


def test_upgrade_schema_adds_the_geo_shadow_to_older_documents(any_mongo: crmkit.CRM) -> None:
    crm = any_mongo
    backend = mongo(crm)
    london = Address(city="London", latitude=Decimal("51.5074"), longitude=Decimal("-0.1278"))
    paris = Address(city="Paris", latitude=Decimal("48.8566"), longitude=Decimal("2.3522"))
    old = [
        Contact(id=f"old{i}", first_name=f"Old{i}", address=london if i % 2 else paris, version=1)
        for i in range(7)
    ]
    docs = [_old_document(crm, c, "none" if i < 4 else "no-point") for i, c in enumerate(old)]
    broken = {"_id": "broken", "first_name": "B", "address": {"latitude": "x"}, "version": 1}
    collection = backend.database.contacts
    collection.insert_many([*docs, broken])
    crm.contacts.add(Contact(first_name="New", address=london))
    crm.contacts.add(Contact(first_name="Nowhere"))
    near = F.address.within_km(51.5074, -0.1278, 1)
    before = {c.first_name for c in crm.contacts.find(near)}
    assert {"Old1", "Old3"}.isdisjoint(before)  # no shadow: not found yet

    backend.upgrade_schema(batch_size=3)

    assert {c.first_name for c in crm.contacts.find(near)} == {"New", "Old1", "Old3", "Old5"}
    assert crm.contacts.count(~near) == 6  # Paris x4, Nowhere and the broken document
    for doc in collection.find({"_id": {"$in": [c.id for c in old]}}):
        contact = backend.converter.from_document(Contact, doc)
        assert contact.address is not None
        lat, lon = contact.address.latitude, contact.address.longitude
        assert lat is not None
        assert lon is not None
        assert doc["_geo"] == {"address": geo_shadow(lat, lon)}
        assert doc["version"] == 1  # derived data: the record itself is unchanged
    assert "_geo" not in collection.find_one({"_id": "broken"})
    # idempotent: nothing left to update
    assert backend.store(Contact)._backfill_geo(2) == 0
    crm.upgrade_schema()
    assert {c.first_name for c in crm.contacts.find(near)} == {"New", "Old1", "Old3", "Old5"}


def test_upgrade_schema_leaves_records_rewritten_meanwhile_alone(crm: crmkit.CRM) -> None:
    backend = mongo(crm)
    place = Address(city="London", latitude=Decimal("51.5"), longitude=Decimal("-0.1"))
    old = Contact(id="old", first_name="Old", address=place, version=1)
    backend.database.contacts.insert_one(_old_document(crm, old, "none"))
    store = backend.store(Contact)
    real = store.collection

    def find_then_rewrite(*args: Any, **kwargs: Any) -> Any:
        docs = list(real.find(*args, **kwargs))
        # another writer replaces the record after the backfill read it
        real.update_one({"_id": "old"}, {"$set": {"version": 2, "title": "new"}})
        return iter(docs)

    store.collection = Spy(real, find=find_then_rewrite)  # type: ignore[assignment]
    try:
        assert store._backfill_geo(10) == 0
    finally:
        store.collection = real
    stored = real.find_one({"_id": "old"})
    assert stored is not None
    assert "_geo" not in stored
    assert stored["title"] == "new"
    assert store._backfill_geo(10) == 1  # the next run picks it up


def test_upgrade_schema_refuses_a_bad_batch_size(crm: crmkit.CRM) -> None:
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValidationError):
            mongo(crm).upgrade_schema(batch_size=bad)  # type: ignore[arg-type]


def test_upgrade_schema_on_a_server_uses_bulk_writes_and_drops_the_latitude_index(
    crm: crmkit.CRM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server branch, run on mongomock by standing in for what it lacks (bulk_write of
    current pymongo operations)."""
    backend = mongo(crm)
    place = Address(city="London", latitude=Decimal("51.5"), longitude=Decimal("-0.1"))
    olds = [Contact(id=f"o{i}", first_name="Old", address=place, version=1) for i in range(5)]
    backend.database.contacts.insert_many([_old_document(crm, c, "none") for c in olds])
    store = backend.store(Contact)
    real = store.collection
    assert "_geo.address.lat_1" in real.index_information()
    batches: list[int] = []

    def bulk_write(ops: list[pymongo.UpdateOne], ordered: bool) -> Any:
        assert not ordered
        batches.append(len(ops))
        modified = sum(real.update_one(op._filter, op._doc).modified_count for op in ops)
        return type("Result", (), {"modified_count": modified})()

    monkeypatch.setattr(backend, "is_mock", False)
    monkeypatch.setattr(store, "_geo_index", True)
    monkeypatch.setattr(store, "collection", Spy(real, bulk_write=bulk_write))
    backend.upgrade_schema(batch_size=2)
    assert batches == [2, 2, 1]
    assert "_geo.address.lat_1" not in real.index_information()
    assert "_geo.address.point_2dsphere" in real.index_information()
    assert all("point" in d["_geo"]["address"] for d in real.find())
    where = bind(F.address.within_km(51.5, -0.1, 1), Contact)
    assert "$geoWithin" in str(store.plan(Query(where=where)).filter)
