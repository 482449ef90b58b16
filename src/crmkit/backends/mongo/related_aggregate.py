"""Aggregate conditions on related records on MongoDB (``F.related("orders").count() > 2``).

Like a plain related node, the condition is resolved when the filter is compiled: the
related collection's own aggregation (:mod:`crmkit.backends.mongo.aggregate`, so sums of
decimals are exact ``Decimal128`` arithmetic and minimums/maximums use the ordered decimal
key) groups the related documents matching the inner filter by their link value (each
element of a list link) and computes the aggregate per group; the groups are compared in
Python with :meth:`crmkit.query.RelatedAggregate.links`. The result is ``_id $in`` the
records whose group passes, or - when the comparison holds for a record without related
documents (``count() < 1``) - ``_id $nin`` the records whose group fails.
"""

from __future__ import annotations

from typing import Any

from crmkit.aggregation import Group
from crmkit.query import Related, Relation

__all__ = ["aggregate_filter"]


def aggregate_filter(store: Any, rel: Relation, node: Related) -> dict[str, Any]:
    """The query document of ``node`` (an aggregate condition over ``rel``), computed with
    ``store``, the related collection's store."""
    assert node.aggregate is not None
    rows = store.aggregate(node.where, [Group(rel.field)], [node.aggregate.metric()])
    exclude, keys = node.aggregate.links(rows, rel.field)
    return {"_id": {"$nin" if exclude else "$in": sorted(keys)}}
