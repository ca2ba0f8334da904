"""The change outbox: what the writers call (in their transaction), and the read of it.

Write side. Every write that changes what a user can see calls one of these with its `db`,
inside its unit of work, and never commits:

- `item_changed(db, actor, item, op)`: rows for everyone who can see `item` now (its owner,
  users with a share on it or an ancestor folder, members of a group such a share names).
  `created`, `updated` (new version, rename) and `deleted`/`restored` of a document.
- `documents_created(db, actor, items)`: `created` for many new documents (a batch upload),
  the audience computed once per folder.
- `subtree_changed(db, actor, item, op)`: a folder's `deleted`/`restored`: the folder's
  audience gets one row for the folder (a client drops / relists the subtree), and a user
  who only sees something inside it (a share on a descendant) gets a row for that item.
- `purged(db, actor, item)`: the owner's row (a trashed item is seen by no one else).
- `Visibility`: before/after a move or an access change (share created or revoked, group
  membership, a pending share applied): `before = Visibility.of(db, item)`, the write, then
  `before.diff(db, actor, item_after)`: `moved` (or `op`) for users who see it both times,
  `access_lost` for those who no longer do (and `access_gained` for items inside a lost
  folder they still see through another share), `access_gained` for the new ones.

The rows are kept in `session.info` and INSERTed when the transaction commits, after its
last flush, under a PostgreSQL advisory lock held to the commit: `seq` therefore grows in
commit order and a reader that has passed `seq` never finds a smaller one committed later.
SQLite runs one writer at a time. A rollback drops them. After the commit the users whose
feed grew are told to this process's waiters and, with Redis, every process's
(`changes.notify`).

Read side (the feed, and the webhooks' worker):

- `read(db, user_id, after_seq, scope_path=None, limit=100) -> list[Change]`: the user's rows
  after `after_seq`, oldest first (`scope_path`: only items in, or moved out of, the
  subtree with that folder path). Visibility *now* is the caller's business
  (`changes.feed` shows an entry only for what the caller can see at read time).
- `last_seq(db)`: the current position (0 when empty).
- `prune(db, before)`: drop rows created before `before` (the retention job).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    bindparam,
    delete,
    event,
    false,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.orm import Session, SessionTransaction

from docstore.changes.models import Change
from docstore.changes.notify import notifier_for
from docstore.db import utcnow
from docstore.documents.models import Document
from docstore.folders.models import Folder
from docstore.groups.models import GroupMember
from docstore.services import for_session
from docstore.sharing.models import Share
from docstore.sharing.permissions import active_share, grantee, path_ids

if TYPE_CHECKING:
    from docstore.context import Actor


class Op(StrEnum):
    """What happened to an item (API.md "Changes")."""

    CREATED = "created"
    UPDATED = "updated"
    MOVED = "moved"
    DELETED = "deleted"
    RESTORED = "restored"
    PURGED = "purged"
    ACCESS_GAINED = "access_gained"
    ACCESS_LOST = "access_lost"


@dataclass(frozen=True)
class Item:
    """A document or folder where it is: `path` is a folder's own id chain, a document's
    folder's."""

    kind: str  # document | folder
    id: int
    owner_id: int
    path: str

    @property
    def document_id(self) -> int | None:
        return self.id if self.kind == "document" else None

    @property
    def subtree(self) -> bool:
        return self.kind == "folder"


def folder_item(folder: Folder) -> Item:
    """A folder as an `Item`."""
    return Item("folder", folder.id, folder.owner_id, folder.path)


def document_item(db: Session, doc: Document, folder_path: str | None = None) -> Item:
    """A document as an `Item` (its folder's path read unless given)."""
    if folder_path is None:
        folder_path = db.get_one(Folder, doc.folder_id).path
    return Item("document", doc.id, doc.owner_id, folder_path)


# -- who can see an item ---------------------------------------------------------------


def _grantees(where: Any, now: Any) -> Select[Any]:
    """The users the shares matching `where` and active at `now` name: directly, or as
    group members."""
    live = active_share(now)
    direct = select(Share.shared_with_user_id.label("user_id")).where(
        Share.shared_with_user_id.is_not(None), where, live
    )
    via_group = (
        select(GroupMember.user_id.label("user_id"))
        .join(Share, Share.group_id == GroupMember.group_id)
        .where(where, live)
    )
    return cast(Select[Any], union(direct, via_group))


def _audience_statement(with_document: bool) -> Select[Any]:
    """`audience`'s query with bind parameters (the folder ids of the item's path; the
    document), built once: every write that feeds the change feed runs it, and building
    and compiling it per call cost more than running it (yappi, issue 27: a third of a
    small upload's record step)."""
    on: list[ColumnElement[bool]] = [Share.folder_id.in_(bindparam("folder_ids", expanding=True))]
    if with_document:
        on.append(Share.document_id == bindparam("document_id"))
    return _grantees(or_(*on), bindparam("now", type_=Share.expires_at.type))


_AUDIENCE_OF_FOLDER = _audience_statement(False)
_AUDIENCE_OF_DOCUMENT = _audience_statement(True)


def audience(db: Session, item: Item) -> set[int]:
    """Everyone who can see `item` (live or not): its owner and its sharees."""
    params: dict[str, Any] = {"folder_ids": path_ids(item.path), "now": utcnow()}
    statement = _AUDIENCE_OF_FOLDER
    if item.document_id is not None:
        params["document_id"] = item.document_id
        statement = _AUDIENCE_OF_DOCUMENT
    users = {int(u) for u in db.scalars(statement, params)}
    users.add(item.owner_id)
    return users


def _shared_inside(db: Session, folder: Item, user_id: int | None = None) -> list[tuple[Item, int]]:
    """Live items strictly inside `folder` with an active share, and each user it names
    (only `user_id` when given)."""
    like = folder.path + "%"
    below = select(Folder.id).where(
        Folder.path.like(like), Folder.id != folder.id, Folder.is_deleted == false()
    )
    rows: list[tuple[Item, int]] = []
    live = active_share(utcnow())
    who = grantee(user_id) if user_id is not None else Share.id.is_not(None)
    shares = list(
        db.scalars(
            select(Share).where(
                live,
                who,
                or_(
                    Share.folder_id.in_(below),
                    Share.document_id.in_(
                        select(Document.id).where(
                            Document.folder_id.in_(select(Folder.id).where(Folder.path.like(like))),
                            Document.is_deleted == false(),
                        )
                    ),
                ),
            )
        )
    )
    for share in shares:
        if share.folder_id is not None:
            target = folder_item(db.get_one(Folder, share.folder_id))
        else:
            assert share.document_id is not None
            target = document_item(db, db.get_one(Document, share.document_id))
        if share.group_id is not None:
            members: Iterable[int] = db.scalars(
                select(GroupMember.user_id).where(GroupMember.group_id == share.group_id)
            )
        else:
            members = [share.shared_with_user_id] if share.shared_with_user_id else []
        rows.extend((target, int(m)) for m in members if user_id is None or m == user_id)
    return rows


# -- appending ---------------------------------------------------------------------------

_PENDING = "docstore.changes.pending"
_MARKS = "docstore.changes.savepoint_marks"
_WOKEN = "docstore.changes.woken"
# pg_advisory_xact_lock key that orders appends by commit ("changes" in ASCII).
LOCK_KEY = 0x6368616E676573


def append(
    db: Session,
    actor: Actor | None,
    item: Item,
    op: Op,
    users: Iterable[int],
    *,
    old_path: str | None = None,
) -> None:
    """Queue one row per user for `item` (written when the transaction commits)."""
    pending: list[dict[str, Any]] = db.info.setdefault(_PENDING, [])
    actor_id = actor.user_id if actor is not None else None
    for user_id in sorted(set(users)):
        pending.append(
            {
                "user_id": user_id,
                "kind": item.kind,
                "item_id": item.id,
                "op": op.value,
                "owner_id": item.owner_id,
                "path": item.path,
                "old_path": old_path,
                "actor_id": actor_id,
            }
        )


def item_changed(db: Session, actor: Actor | None, item: Item, op: Op) -> None:
    """`op` on `item`, for everyone who can see it now."""
    append(db, actor, item, op, audience(db, item))


def documents_created(db: Session, actor: Actor | None, items: list[Item]) -> None:
    """`created` rows for new documents (a batch upload), the audience computed once per
    folder rather than once per document: a document created in this transaction has no
    share of its own yet, so who sees it is exactly who sees its folder."""
    seen: dict[str, set[int]] = {}
    for item in items:
        users = seen.get(item.path)
        if users is None:
            users = seen[item.path] = audience(db, Item("folder", 0, item.owner_id, item.path))
        append(db, actor, item, Op.CREATED, users)


def subtree_changed(db: Session, actor: Actor | None, folder: Item, op: Op) -> None:
    """A folder's `deleted` (call before the subtree is marked) or `restored` (after): its
    audience gets the folder's row; a user who sees only items inside it, theirs."""
    seen = audience(db, folder)
    append(db, actor, folder, op, seen)
    for target, user_id in _shared_inside(db, folder):
        if user_id not in seen:
            append(db, actor, target, op, [user_id])


def purged(db: Session, actor: Actor | None, item: Item) -> None:
    """An item purged from the trash: only its owner could still see it."""
    append(db, actor, item, Op.PURGED, [item.owner_id])


@dataclass
class Visibility:
    """Who could see an item before a write that may change it (a move, a share change)."""

    item: Item
    users: set[int]

    @classmethod
    def of(cls, db: Session, item: Item) -> Visibility:
        return cls(item, audience(db, item))

    def diff(self, db: Session, actor: Actor | None, after: Item, op: Op | None = None) -> None:
        """Rows for the write just done: `op` (if any) for users who saw `item` before and
        still do, `access_lost` / `access_gained` for the others (see the module doc)."""
        db.flush()
        now = audience(db, after)
        if op is not None:
            append(db, actor, after, op, self.users & now, old_path=self.item.path)
        lost = self.users - now
        append(db, actor, after, Op.ACCESS_LOST, lost, old_path=self.item.path)
        append(db, actor, after, Op.ACCESS_GAINED, now - self.users, old_path=self.item.path)
        if after.subtree:
            for user_id in sorted(lost):
                for target, _ in _shared_inside(db, after, user_id):
                    append(db, actor, target, Op.ACCESS_GAINED, [user_id])


def _named(db: Session, share: Share) -> set[int]:
    """The users a user or group share names."""
    if share.group_id is not None:
        return {
            int(u)
            for u in db.scalars(
                select(GroupMember.user_id).where(GroupMember.group_id == share.group_id)
            )
        }
    return {share.shared_with_user_id} if share.shared_with_user_id else set()


def share_level_changed(db: Session, actor: Actor | None, item: Item, share: Share) -> None:
    """`updated` for the users a share names who see its item: their entry's permission moved."""
    append(db, actor, item, Op.UPDATED, _named(db, share) & audience(db, item))


def unnoticed_expiries(db: Session, now: datetime, limit: int) -> list[Share]:
    """User and group shares past their `expires_at` whose expiry the feed has not announced
    (oldest first; rows another pass holds are skipped)."""
    return list(
        db.scalars(
            select(Share)
            .where(
                Share.kind.in_(("user", "group")),
                Share.is_active.is_(True),
                Share.expires_at <= now,
                Share.expiry_noticed_at.is_(None),
            )
            .order_by(Share.expires_at, Share.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def share_expired(db: Session, share: Share) -> None:
    """`access_lost` for the users an expired user or group share named who no longer see its
    item, and `access_gained` for what inside it they still see another way.

    An expiry is not a write: permission checks stop honouring the share at `expires_at`, and
    the `changes.share_expiry` job calls this soon after, so a sync client drops the item too.
    """
    if share.document_id is not None:
        doc = db.get_one(Document, share.document_id)
        item = None if doc.is_deleted else document_item(db, doc)
    else:
        folder = db.get_one(Folder, share.folder_id)
        item = None if folder.is_deleted else folder_item(folder)
    if item is None:  # in the trash: only its owner sees it, and nothing changed for them
        return
    named = _named(db, share)
    now = audience(db, item)
    # "Before" is who sees it now plus whom the share named: `diff` then writes exactly the
    # losses (and re-grants inside a folder), as a revoke would.
    Visibility(item, now | named).diff(db, None, item)


def shared_items(db: Session, where: Any) -> list[Item]:
    """The live items that the active shares matching `where` are on."""
    live = active_share(utcnow())
    folders = db.scalars(
        select(Folder)
        .join(Share, Share.folder_id == Folder.id)
        .where(where, live, Folder.is_deleted == false())
    )
    items = [folder_item(f) for f in folders]
    docs = db.execute(
        select(Document, Folder.path)
        .join(Share, Share.document_id == Document.id)
        .join(Folder, Folder.id == Document.folder_id)
        .where(where, live, Document.is_deleted == false())
    ).all()
    items.extend(document_item(db, doc, path) for doc, path in docs)
    return sorted(set(items), key=lambda i: (i.kind, i.id))


def watch(db: Session, items: Iterable[Item]) -> list[Visibility]:
    """Who sees each of `items` now, before a change of shares or memberships."""
    return [Visibility.of(db, item) for item in items]


def settle(db: Session, actor: Actor | None, watched: Iterable[Visibility]) -> None:
    """`access_gained` / `access_lost` rows for what the change made of `watch`'s items."""
    for seen in watched:
        seen.diff(db, actor, seen.item)


_INSERT = cast(Table, Change.__table__).insert()


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    if session.in_nested_transaction():
        # A savepoint's commit (SQLAlchemy sends before_commit for those too): the rows wait
        # for the real commit. Taken here, the append lock would be held while the rest of
        # the transaction locks rows (the write group's next upload locks its folder), and
        # another writer holding such a row while waiting for the lock deadlocks with it.
        return
    rows: list[dict[str, Any]] | None = session.info.pop(_PENDING, None)
    if not rows:
        return
    # Everything else first: no row lock is waited for while the append lock is held.
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
    now = utcnow()
    for row in rows:
        row["created_at"] = now
    session.execute(_INSERT, rows)
    session.info[_WOKEN] = {row["user_id"] for row in rows}


@event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    users: set[int] | None = session.info.pop(_WOKEN, None)
    if not users:
        return
    svc = for_session(session)
    if svc is None:
        return
    notifier_for(svc).publish(users)


@event.listens_for(Session, "after_transaction_create")
def _mark(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint starts: remember how many rows were pending, to drop only its own if it
    rolls back (the rows of savepoints released before it stay for the real commit)."""
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[transaction] = len(session.info.get(_PENDING, ()))


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    marks: dict[SessionTransaction, int] = session.info.get(_MARKS, {})
    savepoint = session.get_nested_transaction()  # the one rolling back, if a savepoint
    if savepoint is not None and savepoint in marks:
        del session.info.get(_PENDING, [])[marks.pop(savepoint) :]
        return
    session.info.pop(_PENDING, None)
    session.info.pop(_WOKEN, None)
    session.info.pop(_MARKS, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_mark(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.get(_MARKS, {}).pop(transaction, None)


# -- reading -----------------------------------------------------------------------------


def last_seq(db: Session) -> int:
    """The newest committed position (0 before the first change)."""
    return int(db.scalar(select(func.max(Change.seq))) or 0)


def in_scope(scope_path: str) -> Any:
    """Rows about an item in the subtree with this folder path, or moved out of it."""
    return or_(Change.path.startswith(scope_path), Change.old_path.startswith(scope_path))


def read(
    db: Session, user_id: int, after_seq: int, scope_path: str | None = None, limit: int = 100
) -> list[Change]:
    """The user's rows after `after_seq`, oldest first, at most `limit`."""
    stmt = select(Change).where(Change.user_id == user_id, Change.seq > after_seq)
    if scope_path is not None:
        stmt = stmt.where(in_scope(scope_path))
    return list(db.scalars(stmt.order_by(Change.seq).limit(limit)))


def any_after(db: Session, user_id: int, after_seq: int, scope_path: str | None = None) -> bool:
    """Whether the user has a row after `after_seq` (the long-poll's check)."""
    stmt = select(Change.seq).where(Change.user_id == user_id, Change.seq > after_seq)
    if scope_path is not None:
        stmt = stmt.where(in_scope(scope_path))
    return db.scalar(stmt.limit(1)) is not None


def oldest_kept(db: Session) -> datetime | None:
    """When the oldest row still kept was written."""
    return db.scalar(select(func.min(Change.created_at)))


def prune(db: Session, before: datetime) -> int:
    """Drop the rows written before `before`; how many."""
    result = db.execute(delete(Change).where(Change.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
