"""MongoDB backend (``mongodb://host/db``, ``mongomock://``, or an existing ``Database``).

One collection per entity type, ``_id`` = entity id, lookup indexes from the entity schema,
filters compiled to MongoDB queries (:mod:`.compile`), documents converted by one cattrs
converter (:mod:`.convert`). Single-document writes are always atomic; multi-document
transactions are real on replica sets and ``mongos`` and emulated (not isolated, not
crash-safe) on standalone servers and mongomock: :mod:`.backend` says exactly what holds.

>>> import crmkit
>>> crm = crmkit.connect("mongomock://")
>>> crm.contacts.add(crmkit.Contact(first_name="Ada")).version
1
"""

from __future__ import annotations

from crmkit.backends.mongo.backend import (
    MongoBackend,
    MongoStore,
    RollbackError,
    UndoneWrite,
    open_backend,
)

__all__ = ["MongoBackend", "MongoStore", "RollbackError", "UndoneWrite", "open_backend"]
