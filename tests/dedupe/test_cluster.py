"""Clustering plain records: groups, anti-chaining, explanations, estimation."""

from __future__ import annotations

import csv
import io
import itertools

import pytest

import crmkit
from crmkit.dedupe import Rules, candidates, cluster, estimate_weights, score_pair
from crmkit.dedupe.synthetic import generate, true_pairs


def test_cluster_works_on_plain_dicts_and_csv_rows() -> None:
    rows = io.StringIO(
        "name,email,phone,company,city\n"
        "Ada Lovelace,ada@example.com,+44 20 7946 0958,Analytical Ltd,London\n"
        "Charles Babbage,cb@example.com,,Analytical Ltd,London\n"
        "ada lovelace,ADA@EXAMPLE.COM,020 7946 0958,,\n"
        "Grace Hopper,grace@navy.mil,,,\n"
    )
    groups = cluster(csv.DictReader(rows), default_region="GB")
    assert [g.ids for g in groups] == [(0, 2)]  # no id column: positions
    assert groups[0].rows == (0, 2)
    assert "email" in groups[0].explain()


def test_cluster_uses_record_ids_and_accepts_entities() -> None:
    ada = crmkit.Contact(id="c1", first_name="Ada", last_name="Lovelace", emails=["ada@x.org"])
    dup = {"id": "c2", "first_name": "ADA", "last_name": "Lovelace", "emails": ["Ada@x.org"]}
    other = crmkit.Contact(id="c3", first_name="Ada", last_name="Byron", emails=["ab@y.org"])
    (group,) = cluster([ada, dup, other])
    assert group.ids == ("c1", "c2")
    assert group.probability > 0.99
    assert len(group) == 2


def test_cluster_of_accounts() -> None:
    accounts = [
        crmkit.Account(id="a1", name="Acme Corp", domain="acme.com"),
        crmkit.Account(id="a2", name="ACME Corporation", domain="acme.com"),
        crmkit.Account(id="a3", name="Acme Robotics", domain="acme-robotics.com"),
    ]
    assert [g.ids for g in cluster(accounts)] == [("a1", "a2")]


def test_no_chaining_a_b_and_b_c_do_not_glue_a_and_c() -> None:
    ada = {
        "id": "A",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "emails": ["ada@x.org"],
        "city": "London",
    }
    both = {
        "id": "B",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "emails": ["ada@x.org"],
        "phones": ["+442079460958"],
    }
    adam = {
        "id": "C",
        "first_name": "Adam",
        "last_name": "Lovelace",
        "phones": ["+442079460958"],
        "city": "Leeds",
    }
    rules = Rules.contacts()
    assert score_pair(ada, both).probability >= rules.threshold
    assert score_pair(both, adam).probability >= rules.threshold
    assert score_pair(ada, adam).probability < rules.link_threshold
    groups = cluster([ada, both, adam])
    assert all(not {"A", "C"} <= set(g.ids) for g in groups)
    assert [g.ids for g in groups] == [("A", "B")]  # the strongest pair wins


def test_groups_never_exceed_the_maximum_size() -> None:
    same = [
        {"id": i, "first_name": "Ada", "last_name": "Lovelace", "emails": ["ada@x.org"]}
        for i in range(7)
    ]
    groups = cluster(same, Rules.contacts().evolve(max_group_size=3))
    assert max(len(g) for g in groups) == 3
    assert sum(len(g) for g in groups) <= 7


def test_threshold_is_validated() -> None:
    with pytest.raises(crmkit.ValidationError):
        cluster([], threshold=1.2)
    assert cluster([]) == []


def test_candidates_score_one_record_against_others() -> None:
    found = candidates(
        {"first_name": "Ada", "last_name": "Lovelace", "emails": ["ada@x.org"]},
        [
            {"id": "1", "first_name": "A.", "last_name": "Lovelace", "emails": ["ADA@x.org"]},
            {"id": "2", "first_name": "Charles", "last_name": "Babbage"},
        ],
    )
    assert [m.b for m in found] == ["1"]
    assert {f.field: f.level for f in found[0].fields}["first_name"] == "initial"


def test_synthetic_data_is_found_accurately() -> None:
    records = list(generate(3000, seed=3))
    labels = [r["entity_id"] for r in records]
    groups = cluster(records)
    predicted = correct = 0
    for group in groups:
        for a, b in itertools.combinations(group.rows, 2):
            predicted += 1
            correct += labels[a] == labels[b]
    assert correct / predicted > 0.95
    assert correct / true_pairs(labels) > 0.9


def test_synthetic_generator_is_seeded_and_has_about_ten_percent_duplicates() -> None:
    first = list(generate(2000, seed=11))
    assert first == list(generate(2000, seed=11))
    assert first != list(generate(2000, seed=12))
    people = len({r["entity_id"] for r in first})
    assert 0.07 < 1 - people / len(first) < 0.13
    countries = {r["country"] for r in first}
    assert {"DE", "FR", "GB", "US"} <= countries


def test_estimate_weights_fits_m_u_and_prior_from_the_data() -> None:
    rules = estimate_weights(generate(3000, seed=5))
    assert isinstance(rules, Rules)
    assert 0 < rules.prior < 0.5
    email = rules.rule("email")
    assert email.weights[0] > 5  # agreeing emails are strong evidence
    assert email.weights[-1] < 0
    assert Rules.from_dict(rules.to_dict()) == rules
    with pytest.raises(crmkit.ValidationError):
        estimate_weights([{"first_name": "Ada"}])
