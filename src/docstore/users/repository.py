"""Queries on accounts: the atomic quota charge, tokens, plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Row, bindparam, or_, select, update
from sqlalchemy.orm import Session

from docstore.db import UTCDateTime
from docstore.db.fastpath import detached, first_row
from docstore.errors import QuotaExceeded
from docstore.users.models import ApiToken, Plan, User

# Built once (every upload and save runs it; see _TOKEN_AND_USER). Bytes reserved by open
# uploads count as taken: a write never eats into what an upload in flight was promised.
_CHARGE = (
    update(User)
    .where(
        User.id == bindparam("owner_id"),
        User.used_bytes + User.reserved_bytes + bindparam("size", type_=BigInteger)
        <= User.quota_bytes,
    )
    .values(used_bytes=User.used_bytes + bindparam("size", type_=BigInteger))
    .execution_options(synchronize_session=False)
)
_RESERVE = (
    update(User)
    .where(
        User.id == bindparam("owner_id"),
        User.used_bytes + User.reserved_bytes + bindparam("size", type_=BigInteger)
        <= User.quota_bytes,
    )
    .values(reserved_bytes=User.reserved_bytes + bindparam("size", type_=BigInteger))
    .execution_options(synchronize_session=False)
)
_FITS = select(User.used_bytes, User.reserved_bytes, User.quota_bytes).where(
    User.id == bindparam("owner_id")
)
_FITS_LOCKED = _FITS.with_for_update(key_share=True)


def charge(db: Session, owner_id: int, size: int) -> None:
    """Add `size` to the owner's used bytes in one conditional UPDATE, or raise 507.

    The check and the increment are one statement, so concurrent writers can never
    overshoot the quota together (the seed's FAQ answer).
    """
    if size == 0:
        return
    # Core, not Session.execute: nothing of the ORM is involved (2 of a 4 KiB upload's ~20
    # statements; bench/PROFILE.md, session 5).
    result = db.connection().execute(_CHARGE, {"owner_id": owner_id, "size": size})
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise QuotaExceeded(OVER_QUOTA)


OVER_QUOTA = "This would take the owner's storage past their quota."


def room_for_update(db: Session, owner_id: int) -> int:
    """The bytes the owner may still add, their row locked to the end of the transaction
    (FOR NO KEY UPDATE, as `charge`'s UPDATE takes it): a caller choosing among many files
    (a batch upload) decides here and then charges the sum once with `charge`."""
    row = db.execute(_FITS_LOCKED, {"owner_id": owner_id}).one()
    return int(row.quota_bytes - row.used_bytes - row.reserved_bytes)


def release(db: Session, owner_id: int, size: int) -> None:
    """Give back `size` bytes of the owner's quota."""
    if size == 0:
        return
    db.execute(
        update(User)
        .where(User.id == owner_id)
        .values(used_bytes=User.used_bytes - size)
        .execution_options(synchronize_session=False)
    )


def reserve(db: Session, owner_id: int, size: int) -> None:
    """Hold `size` bytes of the owner's quota for an open upload (conditional UPDATE), or 507.

    Like `charge`, the check and the increment are one statement: concurrent initiations
    can never reserve more than the quota together.
    """
    if size == 0:
        return
    result = db.connection().execute(_RESERVE, {"owner_id": owner_id, "size": size})
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise QuotaExceeded("This file does not fit in the owner's quota.")


def unreserve(db: Session, owner_id: int, size: int) -> None:
    """Give back a reservation (the upload ended, or its bytes are being charged)."""
    if size == 0:
        return
    db.execute(
        update(User)
        .where(User.id == owner_id)
        .values(reserved_bytes=User.reserved_bytes - size)
        .execution_options(synchronize_session=False)
    )


def lock_users(db: Session, user_ids: set[int]) -> None:
    """Row-lock these accounts in id order (one statement; no deadlock between two callers).
    FOR NO KEY UPDATE on PostgreSQL: it serialises callers (and the quota UPDATEs) without
    blocking the foreign-key checks of rows that reference the account."""
    db.execute(
        select(User.id)
        .where(User.id.in_(sorted(user_ids)))
        .order_by(User.id)
        .with_for_update(key_share=True)
    )


def fits(db: Session, owner_id: int, size: int) -> bool:
    """Early check (no lock): could `size` more bytes fit in the owner's quota now?"""
    row = db.execute(_FITS, {"owner_id": owner_id}).one()
    return bool(row.used_bytes + row.reserved_bytes + size <= row.quota_bytes)


def by_email(db: Session, email: str) -> User | None:
    """The user with this (normalised) email."""
    return db.scalar(select(User).where(User.email == email))


# What authentication reads of a token and its user, as plain columns: loading the two rows
# as ORM entities cost more CPU than the query (bench/PROFILE.md, session 5). Every label is
# prefixed, so a statement may add other tables' columns under their own names
# (documents.service reads a document in the same round trip).
_USER_PREFIX = "u_"
TOKEN_COLUMNS: tuple[ColumnElement[Any], ...] = (
    ApiToken.id.label("token_id"),
    ApiToken.expires_at.label("token_expires_at"),
    ApiToken.revoked_at.label("token_revoked_at"),
    ApiToken.last_used_at.label("token_last_used_at"),
    *(c.label(_USER_PREFIX + c.key) for c in User.__table__.c),
)
# Built once: every authenticated request runs it, and building the statement cost a third
# of the lookup (SQLAlchemy caches the compiled SQL, not the Python objects).
_TOKEN_AND_USER = (
    select(*TOKEN_COLUMNS)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("digest"))
)


@dataclass(frozen=True)
class TokenState:
    """What authentication needs of a token row."""

    id: int
    expires_at: datetime | None  # None: an app password, valid until revoked
    revoked_at: datetime | None
    last_used_at: datetime | None


def token_from_row(row: Row[Any]) -> tuple[TokenState, User]:
    """The token and its user from a row holding `TOKEN_COLUMNS`. The user is a detached
    instance, as if loaded by an earlier session: reading its attributes needs no session,
    and `db.get(User, id)` loads the row afresh."""
    user = detached(User, row._mapping, _USER_PREFIX)
    state = TokenState(
        row.token_id, row.token_expires_at, row.token_revoked_at, row.token_last_used_at
    )
    return state, user


def token_and_user(db: Session, digest: str) -> Row[Any] | None:
    """The row of `TOKEN_COLUMNS` for a presented token's digest, in one round trip."""
    return first_row(db, _TOKEN_AND_USER, {"digest": digest})  # type: ignore[no-any-return]


# Built once. Marks a token used: one conditional UPDATE, a no-op when another request did
# it since `cutoff`. On PostgreSQL a row another transaction is touching is skipped rather
# than waited for (SKIP LOCKED; SQLite ignores the clause and has no row locks).
_TOUCH = (
    update(ApiToken)
    .where(
        ApiToken.id.in_(
            select(ApiToken.id)
            .where(
                ApiToken.id.in_(bindparam("token_ids", expanding=True)),
                or_(
                    ApiToken.last_used_at.is_(None),
                    ApiToken.last_used_at < bindparam("cutoff", type_=UTCDateTime),
                ),
            )
            .with_for_update(skip_locked=True)
        )
    )
    .values(last_used_at=bindparam("now", type_=UTCDateTime))
    .execution_options(synchronize_session=False)
)


def touch_tokens(db: Session, token_ids: list[int], now: datetime, cutoff: datetime) -> None:
    """Set `last_used_at = now` on those of the tokens last used before `cutoff`."""
    if token_ids:
        db.connection().execute(_TOUCH, {"token_ids": token_ids, "now": now, "cutoff": cutoff})


def plan(db: Session, name: str) -> Plan | None:
    """A plan by name."""
    return db.get(Plan, name)
