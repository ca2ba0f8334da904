"""WebDAV locks in the database (`documents.dav_state.DavLock`): which locks cover a
resource, whether a request presented their tokens, conflicts, and the lockdiscovery XML."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, exists, select
from sqlalchemy.orm import Session

from docstore.dav.xmlio import text
from docstore.db import UTCDateTime, on_rollback, utcnow
from docstore.documents.dav_state import DavLock
from docstore.errors import Locked

MAX_TIMEOUT = 7 * 24 * 3600
DEFAULT_TIMEOUT = 3600


def parse_timeout(value: str | None) -> int:
    """Seconds from a `Timeout: Second-N, Infinite` header (the first usable, capped)."""
    if not value:
        return DEFAULT_TIMEOUT
    for part in value.split(","):
        part = part.strip()
        if part.lower() == "infinite":
            return MAX_TIMEOUT
        if part.lower().startswith("second-") and part[7:].isdigit():
            return max(1, min(int(part[7:]), MAX_TIMEOUT))
    return DEFAULT_TIMEOUT


# session.info key: the namespaces a statement of this transaction found without live locks
# (`note_lock_free`). Nearly every WebDAV request checks the locks of the path it resolved;
# the resolving statement says whether there are any (`any_live`), so without locks that
# check costs no statement of its own (rclone: three lock queries per file otherwise).
_LOCK_FREE = "docstore.dav.lock_free"


def any_live(ns_root: Any) -> ColumnElement[bool]:
    """Whether the namespace `ns_root` (an SQL expression) has a live lock, for a larger
    statement (parameter :now, the current time) to tell `note_lock_free` what it found."""
    return exists(
        select(DavLock.token).where(
            DavLock.root_folder_id == ns_root,
            DavLock.expires_at > bindparam("now", type_=UTCDateTime),
        )
    )


def note_lock_free(db: Session, ns_root: int) -> None:
    """A statement of this transaction found no live lock in `ns_root` (`any_live`):
    `live_locks` answers for it without a query until `create` adds one."""
    notes: set[int] = db.info.setdefault(_LOCK_FREE, set())
    if ns_root in notes:
        return
    notes.add(ns_root)
    if db.in_nested_transaction():
        # The savepoint may have deleted a lock that its rollback brings back.
        on_rollback(db, lambda: notes.discard(ns_root))


def live_locks(db: Session, ns_root: int | None) -> list[DavLock]:
    """The unexpired locks of a namespace."""
    if ns_root is None or ns_root in db.info.get(_LOCK_FREE, ()):
        return []
    return list(
        db.scalars(
            select(DavLock).where(DavLock.root_folder_id == ns_root, DavLock.expires_at > utcnow())
        )
    )


def by_token(db: Session, token: str) -> DavLock | None:
    """An unexpired lock by its token."""
    lock = db.get(DavLock, token)
    if lock is None or lock.expires_at <= utcnow():
        return None
    return lock


def covers(lock: DavLock, rel: str) -> bool:
    """Whether `lock` applies to the resource at `rel`."""
    if lock.path == rel:
        return True
    if not lock.depth_infinity:
        return False
    return lock.path == "" or rel.startswith(lock.path + "/")


def parent_of(rel: str) -> str:
    """The path of the collection holding `rel`."""
    return rel.rpartition("/")[0]


def protecting(
    locks: list[DavLock], rel: str, *, membership: bool = False, subtree: bool = False
) -> list[DavLock]:
    """The locks a write to `rel` must present a token of: those covering it; with
    `membership` (create, delete, move) also those on its parent collection; with `subtree`
    (delete or move of a collection) also the locks below it."""
    out = [lock for lock in locks if covers(lock, rel)]
    if membership and rel:
        parent = parent_of(rel)
        out += [lock for lock in locks if lock.path == parent and lock not in out]
    if subtree:
        out += [lock for lock in locks if lock.path.startswith(rel + "/") and lock not in out]
    return out


def require_tokens(held: list[DavLock], submitted: frozenset[str], user_id: int | None) -> None:
    """423 unless the request presented a token of every lock (its own tokens only)."""
    mine = {lock.token for lock in held if lock.user_id == user_id} & submitted
    for lock in held:
        if lock.token in mine:
            continue
        if not lock.exclusive and any(
            other.token in mine and not other.exclusive and other.path == lock.path
            for other in held
        ):
            continue
        raise Locked("The resource is locked; the request did not present its lock token.")


def conflicts(locks: list[DavLock], rel: str, exclusive: bool, depth_infinity: bool) -> bool:
    """Whether a new lock on `rel` conflicts with an existing one."""
    for lock in locks:
        related = covers(lock, rel) or (
            depth_infinity and (rel == "" or lock.path.startswith(rel + "/"))
        )
        if related and (exclusive or lock.exclusive):
            return True
    return False


def create(
    db: Session,
    *,
    ns_root: int,
    rel: str,
    user_id: int,
    exclusive: bool,
    depth_infinity: bool,
    owner_xml: str | None,
    timeout: int,
    document_id: int | None,
    folder_id: int | None,
) -> DavLock:
    """A new lock row."""
    db.info.get(_LOCK_FREE, set()).discard(ns_root)
    now = utcnow()
    db.execute(delete(DavLock).where(DavLock.expires_at <= now))
    lock = DavLock(
        token=f"opaquelocktoken:{uuid.uuid4()}",
        root_folder_id=ns_root,
        path=rel,
        document_id=document_id,
        folder_id=folder_id,
        user_id=user_id,
        exclusive=exclusive,
        depth_infinity=depth_infinity,
        owner_xml=owner_xml,
        timeout_seconds=timeout,
        expires_at=now + timedelta(seconds=timeout),
        created_at=now,
    )
    db.add(lock)
    db.flush()
    return lock


def refresh(db: Session, lock: DavLock, timeout: int) -> None:
    """Give a lock a new timeout from now."""
    lock.timeout_seconds = timeout
    lock.expires_at = utcnow() + timedelta(seconds=timeout)
    db.flush()


def drop_below(db: Session, ns_root: int | None, rel: str) -> None:
    """Remove the locks of a resource that is gone (deleted, moved away) and below it."""
    if ns_root is None:
        return
    for lock in live_locks(db, ns_root):
        if lock.path == rel or rel == "" or lock.path.startswith(rel + "/"):
            db.delete(lock)
    db.flush()


def activelock(lock: DavLock, root_href: str) -> str:
    """One DAV:activelock element."""
    scope = "exclusive" if lock.exclusive else "shared"
    depth = "infinity" if lock.depth_infinity else "0"
    remaining = max(0, int((lock.expires_at - utcnow()).total_seconds()))
    return (
        f"<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:{scope}/></D:lockscope>"
        f"<D:depth>{depth}</D:depth>{lock.owner_xml or ''}<D:timeout>Second-{remaining}</D:timeout>"
        f"<D:locktoken><D:href>{text(lock.token)}</D:href></D:locktoken>"
        f"<D:lockroot><D:href>{text(root_href)}</D:href></D:lockroot></D:activelock>"
    )
