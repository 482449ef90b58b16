"""``crm.dedupe``: find, explain, guard against, merge and unmerge duplicates in a CRM.

The service works on any backend through the repositories only, and on a user's view
(``DedupeService(crm.as_user(user))`` or ``crm.dedupe.as_user(user)``) within that
user's permissions: it only sees, proposes and merges records the user may read, and a
merge needs the right to update the survivor and delete the duplicates.
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Iterator, Mapping, MutableSequence, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from crmkit.dedupe.merge import (
    MERGEABLE,
    SurvivorshipRules,
    check_rules,
    rules_document,
    survive,
)
from crmkit.dedupe.rules import Rules
from crmkit.entities import (
    Account,
    AccountContact,
    AuditAction,
    Contact,
    Entity,
    MergeRecord,
    User,
)
from crmkit.errors import ConflictError, NotFound, ValidationError
from crmkit.events import Created
from crmkit.query import Expr, F

if TYPE_CHECKING:
    from crmkit.crm import CRM
    from crmkit.dedupe.clustering import DuplicateGroup
    from crmkit.dedupe.compare import Match
    from crmkit.permissions import UserView
    from crmkit.repository import Repository, WriteHook

__all__ = ["DedupeService", "DuplicateFound", "DuplicateRule", "Link"]

# How many stored records a single candidates() check reads at most.
_CANDIDATE_LIMIT: Final = 500


class DuplicateFound(ValidationError):
    """A new record looks like a stored one and the duplicate rule says ``"raise"``.

    ``duplicate_id`` is the id of the most likely duplicate and ``match`` explains the
    comparison; both are None when the write is made by a user (a view of
    ``crm.as_user``, or ``crm.acting``) who may not read that record, so that the error
    does not reveal it. Nothing was written. (A ``ValidationError``, so ``add_many(...,
    on_error="collect")`` lists such rows as rejected.)
    """

    def __init__(self, field: str, value: Any, match: Match | None) -> None:
        self.match = match
        self.duplicate_id = None if match is None else str(match.b)
        if match is None:
            reason = "is a likely duplicate of a record you cannot see"
        else:
            fields = ", ".join(match.matched) or "no single field"
            reason = (
                f"is a likely duplicate of {self.duplicate_id!r} "
                f"(p={match.probability:.2f}; matched on {fields})"
            )
        super().__init__(field, value, reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.match))


@attrs.frozen
class Link:
    """A field of a collection that refers to merged records (``many``: a list of ids).

    ``kind_field`` names a field saying which collection the reference is to (a share's
    ``record_collection``): only records whose value there is the merged collection follow.
    ``unique_with`` names the field that, with ``field``, one record at most may hold (a
    campaign membership's ``campaign_id``): a duplicate's record that would join the
    survivor to what one of its own records joins it to already is removed instead (and
    kept in the merge's snapshot, so that undoing the merge restores it).
    """

    collection: str
    field: str
    many: bool = False
    kind_field: str | None = None
    unique_with: str | None = None


#: What refers to a contact or an account, and so follows it into the survivor.
LINKS: Final[Mapping[str, tuple[Link, ...]]] = {
    "contacts": (
        Link("interactions", "contact_ids", many=True),
        Link("deals", "contact_ids", many=True),
        Link("tickets", "contact_id"),
        Link("tasks", "contact_id"),
        Link("campaign_members", "contact_id", unique_with="campaign_id"),
        Link("segments", "member_ids", many=True),
        Link("shares", "record_id", kind_field="record_collection"),
        Link("account_contacts", "contact_id", unique_with="account_id"),
    ),
    "accounts": (
        Link("contacts", "account_id"),
        Link("accounts", "parent_id"),
        Link("deals", "account_id"),
        Link("tickets", "account_id"),
        Link("tasks", "account_id"),
        Link("interactions", "account_id"),
        Link("shares", "record_id", kind_field="record_collection"),
        # after the contacts: whether a moved link is primary follows their account_id
        Link("account_contacts", "account_id", unique_with="contact_id"),
    ),
}


class DuplicateRule:
    """The duplicate check that runs on every ``add`` of one collection (a write hook).

    Built by :meth:`DedupeService.set_duplicate_rule`. With ``on_duplicate="raise"`` a
    record whose likely duplicate is stored raises :class:`DuplicateFound`; with
    ``"allow"`` it is stored, tagged with ``tag`` (when set) so it can be reviewed later.
    Updates are not checked.
    """

    def __init__(
        self,
        service: DedupeService,
        collection: str,
        *,
        on_duplicate: Literal["raise", "allow"],
        threshold: float | None,
        rules: Rules | None,
        tag: str | None,
    ) -> None:
        if on_duplicate not in ("raise", "allow"):
            raise ValidationError("on_duplicate", on_duplicate, "must be 'raise' or 'allow'")
        self.service = service
        self.collection = collection
        self.entity = MERGEABLE[collection]
        self.on_duplicate = on_duplicate
        self.threshold = threshold
        self.rules = rules
        self.tag = tag
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<DuplicateRule {self.collection} on_duplicate={self.on_duplicate!r}>"

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Within the block (in this thread), adds are not checked."""
        before = getattr(self._local, "off", False)
        self._local.off = True
        try:
            yield
        finally:
            self._local.off = before

    def __call__(self, entity: Any, previous: Any | None, /) -> Any:
        """Check a record about to be added (see the class docs)."""
        if previous is not None or not isinstance(entity, Contact | Account):
            return entity
        if type(entity) is not self.entity:
            return entity
        if getattr(self._local, "off", False):
            return entity
        found = self.service.candidates(entity, threshold=self.threshold, rules=self.rules)
        if not found:
            return entity
        if self.on_duplicate == "raise":
            match: Match | None = found[0]
            actor = self.service._crm.acting_user
            if actor is not None and match is not None:
                view = self.service._crm.as_user(actor)
                if not view.repository(self.entity.collection).exists(F.id == str(match.b)):
                    match = None  # the acting user may not learn that this record exists
            raise DuplicateFound(self.entity.__name__.lower(), _label(entity), match)
        if self.tag and self.tag not in entity.tags:
            return attrs.evolve(entity, tags=(*entity.tags, self.tag))
        return entity


def _label(entity: Any) -> str:
    name = getattr(entity, "name", "") or ""
    email = getattr(entity, "email", None)
    return f"{name} <{email}>" if email else name


class DedupeService:
    """Find, explain and merge duplicate contacts and accounts of one CRM (``crm.dedupe``).

    ``source`` is a :class:`~crmkit.CRM` or a user's view of one (``crm.as_user(user)``);
    through a view the service sees and changes only what the user may.
    """

    def __init__(
        self, source: CRM | UserView, *, write_hooks: MutableSequence[WriteHook] | None = None
    ) -> None:
        from crmkit.permissions import UserView

        self._source: Any = source
        self._view: UserView | None = source if isinstance(source, UserView) else None
        self._crm: CRM = source.crm if isinstance(source, UserView) else source
        self._hooks = write_hooks
        self._rules: dict[str, DuplicateRule] = {}

    def __repr__(self) -> str:
        return f"<DedupeService of {self._source!r}>"

    def as_user(self, user: User | str) -> DedupeService:
        """The same service as ``user`` sees the CRM (see :meth:`crmkit.CRM.as_user`)."""
        return DedupeService(self._crm.as_user(user))

    # --- finding --------------------------------------------------------------------------

    @staticmethod
    def _collection(collection: str) -> str:
        if collection not in MERGEABLE:
            raise ValidationError(
                "collection", collection, "must be 'contacts' or 'accounts' for deduplication"
            )
        return collection

    @staticmethod
    def default_rules(collection: str) -> Rules:
        """The default matching rules of ``"contacts"`` or ``"accounts"``."""
        return Rules.accounts() if collection == "accounts" else Rules.contacts()

    def find(
        self,
        collection: str = "contacts",
        threshold: float | None = None,
        *,
        rules: Rules | None = None,
        where: Expr | None = None,
        batch_size: int = 1000,
    ) -> list[DuplicateGroup]:
        """Groups of duplicate records in ``collection`` (``"contacts"`` or ``"accounts"``).

        The records matching ``where`` (all, by default; through a user's view, those the
        user may read) are streamed from the backend ``batch_size`` at a time and only
        their match keys are kept, so memory stays bounded by the keys, not the records.
        ``threshold`` overrides the rules' match probability threshold. Each group's ids
        are record ids, and its ``matches`` explain every pair.

        Raises ``ValidationError`` for another collection or a bad threshold.
        """
        from crmkit.dedupe.clustering import build_table, cluster_table, with_threshold

        collection = self._collection(collection)
        rules = with_threshold(rules or self.default_rules(collection), threshold)
        repo = self._source.repository(collection)
        records = repo.iterate(where, order_by="id", batch_size=batch_size)
        table, index = build_table(records, rules, default_region=self._region)
        return cluster_table(table, index, rules).groups

    @property
    def _region(self) -> str:
        return self._crm.normalizer.default_region

    def _candidate_filter(self, record: Contact | Account, collection: str) -> Expr | None:
        """Records sharing an indexed key with ``record``: an email, a phone, a surname
        (either name, in its usual spellings) or, for accounts, a domain or name. Fields
        hidden from a view's user are not used (filtering on them is not allowed)."""
        parts: list[tuple[str, Expr]] = []
        normalizer = self._crm.normalizer
        for phone in record.phones:
            try:
                parts.append(("phones", F.phones.contains(normalizer.phone(phone))))
            except ValidationError:
                continue
        if isinstance(record, Contact):
            for email in record.emails:
                try:
                    parts.append(("emails", F.emails.contains(normalizer.email(email))))
                except ValidationError:
                    continue
            names = [n for n in (record.last_name, record.first_name) if n]
            field = "last_name"
        else:
            if record.domain:
                parts.append(("domain", F.domain == record.domain))
            names = [record.name]
            field = "name"
        spellings = sorted(
            {v for n in names for v in (n, n.strip(), n.title(), n.upper(), n.lower()) if v}
        )
        if spellings:
            parts.append((field, getattr(F, field).in_(spellings)))
        hidden = (
            self._view.grants.hidden_fields(collection) if self._view is not None else frozenset()
        )
        usable = [expr for name, expr in parts if name not in hidden]
        if not usable:
            return None
        where = functools.reduce(operator.or_, usable)
        if record.id is not None:
            where = where & (F.id != record.id)
        return where

    def candidates(
        self,
        record: Contact | Account | Mapping[str, Any],
        *,
        threshold: float | None = None,
        rules: Rules | None = None,
        limit: int = _CANDIDATE_LIMIT,
    ) -> list[Match]:
        """Stored records that are likely duplicates of ``record``, most likely first.

        ``record`` is a Contact or an Account (saved or not), or a mapping of contact
        fields. The backend is asked (with indexed lookups) for records sharing an email,
        a phone or a surname (for accounts: a domain, phone or name), at most ``limit`` of
        them; each is scored with the same rules as :meth:`find`. Every :class:`Match`
        has ``b`` = the stored record's id and explains the comparison.

        Raises ``ValidationError`` for a mapping that is not a valid contact.
        """
        if isinstance(record, Mapping):
            fields = {k: v for k, v in record.items() if k != "id"}
            try:
                record = Contact(**fields)
            except TypeError as exc:
                raise ValidationError("contact", fields, f"has unknown fields ({exc})") from None
        collection = "accounts" if isinstance(record, Account) else "contacts"
        where = self._candidate_filter(record, collection)
        if where is None:
            return []
        others = self._source.repository(collection).find(where, limit=limit)
        rules = rules or self.default_rules(collection)
        from crmkit.dedupe.clustering import candidates

        return candidates(record, others, rules, threshold, default_region=self._region)

    def explain(self, a: str, b: str, *, collection: str = "contacts") -> Match:
        """Compare two stored records and say which fields matched and how strongly.

        Raises ``NotFound`` when either is missing (or hidden from the view's user).
        """
        repo = self._source.repository(self._collection(collection))
        first, second = repo.get(a), repo.get(b)
        from crmkit.dedupe.clustering import score_pair

        return score_pair(
            first, second, self.default_rules(collection), default_region=self._region
        )

    # --- the duplicate rule on add --------------------------------------------------------

    def set_duplicate_rule(
        self,
        collection: str = "contacts",
        *,
        on_duplicate: Literal["raise", "allow"] = "raise",
        threshold: float | None = None,
        rules: Rules | None = None,
        tag: str | None = "possible-duplicate",
    ) -> DuplicateRule:
        """Check every new record of ``collection`` for a likely stored duplicate.

        Off until called. With ``on_duplicate="raise"`` ``add`` (and ``add_many``) raise
        :class:`DuplicateFound` naming the likely duplicate and write nothing; with
        ``"allow"`` the record is stored with ``tag`` added to its tags. Replaces an
        earlier rule of the same collection. The check runs as one of the CRM's write
        hooks, on every add through the CRM and through user views, and compares with
        all stored records. Raises ``ValidationError`` for a bad collection or mode.
        """
        collection = self._collection(collection)
        if self._hooks is None:
            raise ValidationError(
                "dedupe", self, "has no write hooks: set duplicate rules on crm.dedupe"
            )
        rule = DuplicateRule(
            self,
            collection,
            on_duplicate=on_duplicate,
            threshold=threshold,
            rules=rules,
            tag=tag,
        )
        self.clear_duplicate_rule(collection)
        self._hooks.append(rule)
        self._rules[collection] = rule
        return rule

    def clear_duplicate_rule(self, collection: str = "contacts") -> None:
        """Stop checking new records of ``collection`` (nothing happens if none was set)."""
        rule = self._rules.pop(self._collection(collection), None)
        if rule is not None and self._hooks is not None and rule in self._hooks:
            self._hooks.remove(rule)

    def duplicate_rule(self, collection: str = "contacts") -> DuplicateRule | None:
        """The duplicate rule of ``collection``, if one is set."""
        return self._rules.get(self._collection(collection))

    # --- merging --------------------------------------------------------------------------

    def _locate(self, survivor_id: str, collection: str | None) -> str:
        if collection is not None:
            return self._collection(collection)
        for name in MERGEABLE:
            if self._crm.repository(name).exists(F.id == survivor_id):
                return name
        raise NotFound("contacts", survivor_id)

    def merge(
        self,
        survivor_id: str,
        duplicate_ids: Sequence[str],
        *,
        rules: SurvivorshipRules | None = None,
        collection: str | None = None,
    ) -> MergeRecord:
        """Fold ``duplicate_ids`` into the record ``survivor_id``, in one transaction.

        Each field of the survivor is chosen by the survivorship ``rules`` (see
        :mod:`crmkit.dedupe.merge`: by default lists and mappings are united, other fields
        keep the survivor's value or else the first non-empty one). Every record that
        refers to a duplicate is re-pointed to the survivor (contacts: interactions, deals
        and their contact roles, tickets, tasks, campaign members, static segments;
        accounts: contacts, child accounts, deals, tickets, tasks, interactions); a
        campaign membership the survivor already has is removed instead. The duplicates
        are deleted, and a :class:`~crmkit.entities.MergeRecord` with full snapshots is
        stored and returned (:meth:`unmerge` uses it).

        Through a user's view the user must be able to read every record, update the
        survivor and delete the duplicates; fields hidden from the user keep the
        survivor's values; related records are re-pointed whoever owns them, so none is
        left pointing at a deleted record.

        Raises ``NotFound`` for a missing record, ``ValidationError`` for bad rules or no
        duplicates, ``PermissionDenied`` through a view, ``ConflictError`` when a record
        changes concurrently. On any error nothing is changed.
        """
        from crmkit.dedupe.snapshot import to_document

        duplicates = list(dict.fromkeys(d for d in duplicate_ids if d != survivor_id))
        if not duplicates:
            raise ValidationError("duplicate_ids", list(duplicate_ids), "names no other record")
        collection = self._locate(survivor_id, collection)
        entity = MERGEABLE[collection]
        complete = check_rules(entity, rules)
        base: Repository[Any] = self._crm.repository(collection)
        visible = self._source.repository(collection)
        ids = [survivor_id, *duplicates]
        with (
            self._crm.transaction(),
            self._crm.acting(self._actor(), reason=self._crm.acting_reason or "merge"),
        ):
            seen = visible.get_many(ids)  # masked for a view: hidden fields stay as they are
            if len(seen) != len(ids):
                missing = next(i for i in ids if i not in {r.id for r in seen})
                raise NotFound(collection, missing)
            stored = base.get_many(ids)
            if len(stored) != len(ids):
                missing = next(i for i in ids if i not in {r.id for r in stored})
                raise NotFound(collection, missing)
            merged = survive(seen[0], seen[1:], complete)
            if collection == "accounts" and merged.parent_id in ids:
                merged = attrs.evolve(merged, parent_id=None)
            after = visible.update(merged)
            related, removed = self._repoint(collection, survivor_id, set(duplicates))
            for duplicate in duplicates:
                visible.delete(duplicate)
            user_id = self._actor()
            record = self._crm.repository(MergeRecord).add(
                MergeRecord(
                    record_collection=collection,
                    survivor_id=survivor_id,
                    merged_ids=tuple(duplicates),
                    snapshot={
                        "survivor": to_document(stored[0]),
                        "survivor_version": after.version,
                        "duplicates": [to_document(r) for r in stored[1:]],
                        "related": related,
                        "removed": removed,
                    },
                    rules=rules_document(complete),
                    actor_id=user_id,
                    owner_id=user_id,
                    merged_at=self._crm.now(),
                )
            )
        if self._view is not None:  # as the user may see it, like a read through the view
            record = self._view.repository(MergeRecord)._mask(record)
        return record

    def _actor(self) -> str | None:
        """Whom this service's own writes are attributed to: a view's user (else whoever
        the CRM is acting for)."""
        return self._view.user.id if self._view is not None else None

    def _repoint(
        self, collection: str, survivor: str, duplicates: set[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Re-point every record referring to a duplicate; returns what changed (field
        values before, version after) and what was removed (full snapshots)."""
        from crmkit.dedupe.snapshot import plain, to_document

        related: list[dict[str, Any]] = []
        removed: list[dict[str, Any]] = []
        ordered = sorted(duplicates)
        for link in LINKS[collection]:
            repo: Repository[Any] = self._crm.repository(link.collection)
            condition = functools.reduce(
                operator.or_,
                [getattr(F, link.field).contains(d) for d in ordered]
                if link.many
                else [getattr(F, link.field).in_(ordered)],
            )
            if link.kind_field is not None:
                condition = condition & (getattr(F, link.kind_field) == collection)
            for record in repo.find(condition, order_by="id"):
                if link.collection == collection and (
                    record.id == survivor or record.id in duplicates
                ):
                    # the survivor's own parent was settled by survivorship; duplicates
                    # are deleted (and restored from their snapshots by unmerge)
                    continue
                other = link.unique_with
                if other is not None and repo.exists(
                    (getattr(F, other) == getattr(record, other))
                    & (getattr(F, link.field) == survivor)
                ):
                    removed.append({"collection": link.collection, **to_document(record)})
                    repo.delete(record.id or "")
                    continue
                changes = _repointed(record, link, survivor, duplicates)
                if not changes:
                    continue
                moved = self._fitted(attrs.evolve(record, **changes))
                before = {
                    a.name: plain(getattr(record, a.name))
                    for a in attrs.fields(type(record))
                    if getattr(record, a.name) != getattr(moved, a.name)
                }
                updated = repo.update(moved)
                related.append(
                    {
                        "collection": link.collection,
                        "id": record.id,
                        "before": before,
                        "version": updated.version,
                    }
                )
        return related, removed

    def unmerge(self, merge_id: str) -> Entity:
        """Undo the merge ``merge_id`` and return the survivor as it was before it.

        The survivor gets its previous values back (as a new version), the duplicates are
        restored with their ids, versions and timestamps, and every re-pointed related
        record points at its original record again — all in one transaction.

        Raises ``NotFound`` for an unknown merge (or a survivor hidden from the view's
        user), ``ConflictError`` when the merge was already undone or when the survivor or
        a re-pointed record changed since the merge (nothing is changed then), and
        ``PermissionDenied`` when a view's user may not update the survivor.
        """
        from crmkit.dedupe.snapshot import from_document

        merges = self._crm.repository(MergeRecord)
        record = merges.get(merge_id)
        collection = record.record_collection
        entity = MERGEABLE[collection]
        snapshot = record.snapshot
        base: Repository[Any] = self._crm.repository(collection)
        visible = self._source.repository(collection)
        if self._view is not None:
            visible.get(record.survivor_id)  # NotFound for a user who may not see it
        if record.unmerged_at is not None:
            raise ConflictError(f"merge {merge_id!r} was already undone")
        with (
            self._crm.transaction(),
            self._crm.acting(self._actor(), reason=self._crm.acting_reason or "unmerge"),
        ):
            try:
                current = base.get(record.survivor_id)
            except NotFound:
                raise ConflictError(
                    f"merge {merge_id!r} cannot be undone: {collection} "
                    f"{record.survivor_id!r} was deleted since"
                ) from None
            if current.version != snapshot["survivor_version"]:
                raise ConflictError(
                    f"merge {merge_id!r} cannot be undone: {collection} "
                    f"{record.survivor_id!r} changed since (version {current.version}, "
                    f"the merge left version {snapshot['survivor_version']})"
                )
            changed: list[tuple[Repository[Any], str, dict[str, Any]]] = []
            for item in snapshot["related"]:
                repo = self._crm.repository(item["collection"])
                try:
                    now = repo.get(item["id"])
                except NotFound:
                    raise ConflictError(
                        f"merge {merge_id!r} cannot be undone: {item['collection']} "
                        f"{item['id']!r} was deleted since"
                    ) from None
                if now.version != item["version"]:
                    raise ConflictError(
                        f"merge {merge_id!r} cannot be undone: {item['collection']} "
                        f"{item['id']!r} changed since"
                    )
                changed.append((repo, item["id"], dict(item["before"])))
            before = from_document(entity, snapshot["survivor"])
            restored = _with_storage(before, current)
            if self._view is None:
                base.update(restored)
            else:
                # The view's update keeps hidden fields' stored values: hand it the
                # restored record as the user sees it, hidden fields masked.
                from crmkit.permissions import mask

                hidden = self._view.grants.hidden_fields(collection)
                visible.update(mask(restored, hidden) if hidden else restored)
            # Records come back with their own ids, versions and timestamps, which only the
            # store accepts (a repository add would give new ones); subscribers still hear
            # of them as created again.
            for document in snapshot["duplicates"]:
                self._restore(entity, document)
            for repo, id, fields in changed:
                # read again: restoring the survivor may have moved it since the check above
                # (a contact's account links follow its account_id)
                now = repo.get(id)
                back = attrs.evolve(now, **{k: _thawed(v) for k, v in fields.items()})
                repo.update(self._fitted(back))
            for document in snapshot["removed"]:
                self._restore(self._crm.repository(document["collection"]).entity, document)
            merges.update(attrs.evolve(record, unmerged_at=self._crm.now()))
        survivor: Entity = base.get(record.survivor_id)
        return survivor

    def _restore(self, entity: type[Entity], document: dict[str, Any]) -> None:
        from crmkit.dedupe.snapshot import from_document

        restored = from_document(entity, document)
        try:
            restored = self._fitted(restored)
            # custom fields defined since the merge hold the record back as on any write
            restored = self._crm.schema.validate(restored, restored)
            if isinstance(restored, AccountContact):  # its contact and account still there
                self._crm.relationships(restored, None)
        except (ValidationError, NotFound) as exc:
            raise ConflictError(
                f"the merge cannot be undone: {entity.collection} {restored.id!r} cannot be "
                f"restored as it was ({exc})"
            ) from None
        self._crm.backend.store(entity).insert([restored])
        self._crm.audit.record(
            entity.collection, AuditAction.CREATE, [(restored, None)], at=self._crm.now()
        )
        if self._crm.listening:
            self._crm.emit(
                Created(
                    collection=entity.collection,
                    entity_id=restored.id or "",
                    at=self._crm.now(),
                    actor=self._crm.acting_user,
                    entity=restored,
                )
            )

    def _fitted(self, record: Any) -> Any:
        """A record moved to other records (or back) made to agree with them: a contact's
        account link is primary when its account is the contact's ``account_id``."""
        if isinstance(record, AccountContact):
            return self._crm.relationships.fitted(record)
        return record

    def merges(self, record_id: str | None = None) -> list[MergeRecord]:
        """Merge records, newest first; only those whose survivor is ``record_id`` when given."""
        where = None if record_id is None else F.survivor_id == record_id
        # a view's: the merge records its user may read, their snapshots masked
        records: list[MergeRecord] = self._source.repository(MergeRecord).find(
            where, order_by="-created_at"
        )
        return records


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thawed(v) for v in value]
    return value


def _with_storage(entity: Any, current: Any) -> Any:
    """``entity``'s content with ``current``'s storage fields (so it updates ``current``)."""
    return attrs.evolve(
        entity,
        id=current.id,
        version=current.version,
        created_at=current.created_at,
        updated_at=current.updated_at,
    )


def _repointed(record: Any, link: Link, survivor: str, duplicates: set[str]) -> dict[str, Any]:
    """The field changes that make ``record`` refer to ``survivor`` instead."""
    changes: dict[str, Any] = {}
    value = getattr(record, link.field)
    if link.many:
        ids = tuple(dict.fromkeys(survivor if i in duplicates else i for i in value))
        if ids != value:
            changes[link.field] = ids
    elif value in duplicates:
        changes[link.field] = survivor
    roles = getattr(record, "contact_roles", None) if link.field == "contact_ids" else None
    if roles and any(k in duplicates for k in roles):
        moved: dict[str, Any] = {k: v for k, v in roles.items() if k not in duplicates}
        for key, role in roles.items():
            if key in duplicates:
                moved.setdefault(survivor, role)
        changes["contact_roles"] = moved
    return changes
