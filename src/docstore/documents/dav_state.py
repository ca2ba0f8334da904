"""WebDAV state kept beside documents and folders: write locks and dead properties.

Locks live in the database so every server process honours them, and so the HTTP API can
refuse a write to a locked document (423 `locked`, `check_unlocked`). A lock names the
WebDAV namespace it was taken in (`root_folder_id`: the folder its URL space starts at) and
the path under it; `document_id` / `folder_id` name the item when the path resolved to one.
Dead properties (PROPPATCH) belong to the item, so a rename or move carries them along.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    any_,
    bindparam,
    cast,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from docstore.db import Base, IdType, UTCDateTime, utcnow
from docstore.errors import Locked
from docstore.users.models import User


class DavLock(Base):
    """A WebDAV write lock (RFC 4918 section 6), exclusive or shared."""

    __tablename__ = "dav_locks"

    token: Mapped[str] = mapped_column(String(80), primary_key=True)
    root_folder_id: Mapped[int] = mapped_column(BigInteger)
    # The locked resource's path under the namespace root: "" for the root, "a/b.txt".
    path: Mapped[str] = mapped_column(String(4096))
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=True
    )
    folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), nullable=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    exclusive: Mapped[bool] = mapped_column(Boolean)
    depth_infinity: Mapped[bool] = mapped_column(Boolean)
    owner_xml: Mapped[str | None] = mapped_column(Text, nullable=True)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_dav_locks_root_folder_id_path", "root_folder_id", "path"),
        Index("ix_dav_locks_document_id", "document_id"),
        Index("ix_dav_locks_folder_id", "folder_id"),
        Index("ix_dav_locks_user_id", "user_id"),
    )


class DavProperty(Base):
    """A dead property of a document or a folder: its qualified name and its XML value."""

    __tablename__ = "dav_properties"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=True
    )
    folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), nullable=True
    )
    namespace: Mapped[str] = mapped_column(String(1024))
    name: Mapped[str] = mapped_column(String(255))
    # The whole property element, serialised (namespace declarations included).
    value_xml: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_dav_properties_document_id", "document_id"),
        Index("ix_dav_properties_folder_id", "folder_id"),
    )


_HOLDS_DOCUMENT = (
    or_(
        DavLock.document_id == bindparam("document_id"),
        DavLock.depth_infinity.is_(True)
        & DavLock.folder_id.in_(bindparam("ancestors", expanding=True)),
    ),
    DavLock.expires_at > bindparam("now"),
)
_DOCUMENT_LOCKS = select(DavLock.token).where(*_HOLDS_DOCUMENT)
# The holder's name and the end of the lock that lasts longest, for the web UI and the API.
_LONGEST_LOCK = (
    select(User.name, DavLock.expires_at)
    .join(User, User.id == DavLock.user_id)
    .where(*_HOLDS_DOCUMENT)
    .order_by(DavLock.expires_at.desc())
    .limit(1)
)


def lock_lateral(document: Any, folder: Any, outer: tuple[Any, ...]) -> Any:
    """`live_lock` for the document of each row of a larger PostgreSQL statement: a
    LATERAL subquery of at most one row (`lock_owner`, `lock_expires_at`), to outer-join
    ON true; `document` and `folder` are tables of the enclosing statement, `outer` every
    table it correlates. Same condition as `_HOLDS_DOCUMENT`, the ancestors from the path."""
    ids = cast(func.string_to_array(func.btrim(folder.path, "/"), "/"), ARRAY(BigInteger))
    holder = aliased(User)  # never the enclosing statement's users table
    return (
        select(holder.name.label("lock_owner"), DavLock.expires_at.label("lock_expires_at"))
        .join(holder, holder.id == DavLock.user_id)
        .where(
            or_(
                DavLock.document_id == document.id,
                DavLock.depth_infinity.is_(True) & (DavLock.folder_id == any_(ids)),
            ),
            DavLock.expires_at > bindparam("now", type_=UTCDateTime),
        )
        .order_by(DavLock.expires_at.desc())
        .limit(1)
        .correlate(*outer)
        .lateral("dav_lock")
    )


@dataclass(frozen=True)
class LockHolder:
    """Who holds a WebDAV lock on a document (their display name) and until when."""

    owner: str
    expires_at: datetime


def _lock_params(document_id: int, folder_path: str) -> dict[str, object]:
    ancestors = [int(p) for p in folder_path.strip("/").split("/") if p] or [-1]
    return {"document_id": document_id, "ancestors": ancestors, "now": utcnow()}


def live_lock(db: Session, document_id: int, folder_path: str = "/") -> LockHolder | None:
    """The live WebDAV lock holding the document (as `check_unlocked` finds it), or None."""
    row = db.execute(_LONGEST_LOCK, _lock_params(document_id, folder_path)).first()
    return LockHolder(row.name, row.expires_at) if row else None


def check_unlocked(
    db: Session, document_id: int, presented: Collection[str] = (), folder_path: str = "/"
) -> None:
    """423 `locked` when a live WebDAV lock holds the document (on it, or a depth-infinity
    lock on a folder of `folder_path`, its folder's path) and none of its tokens was
    presented (the HTTP API presents none: a locked document refuses its writes)."""
    tokens = set(db.scalars(_DOCUMENT_LOCKS, _lock_params(document_id, folder_path)))
    if tokens and not tokens & set(presented):
        raise Locked("The document is locked by a WebDAV client.")
