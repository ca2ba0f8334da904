"""Link shares: find a link by its token, check expiry and password, limit password guesses.

Failed passwords are counted per link and per client address in the shared cache (Redis
when configured, so every process sees the same counts); after MAX_FAILURES within the
window every try is refused with 429, even with the right password, until the window ends.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from docstore.cache import CacheError
from docstore.context import Actor
from docstore.db import utcnow
from docstore.documents.models import Document
from docstore.errors import (
    LinkExpired,
    LinkPasswordInvalid,
    LinkPasswordRequired,
    NotFound,
    RateLimited,
)
from docstore.folders.models import Folder
from docstore.security import token_digest, verify_password
from docstore.sharing.models import Share
from docstore.sharing.runtime import SharingRuntime, for_session

log = logging.getLogger(__name__)

MAX_FAILURES = 10
WINDOW_SECONDS = 30 * 60
MAX_TOKEN_LENGTH = 256


def find(db: Session, token: str) -> Share:
    """The link with this token: 404 if unknown, 410 link_expired if revoked or expired."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise NotFound()
    share = db.scalar(
        select(Share).where(Share.token_hash == token_digest(token), Share.kind == "link")
    )
    if share is None:
        raise NotFound()
    if not share.is_active or (share.expires_at is not None and share.expires_at <= utcnow()):
        raise LinkExpired()
    return share


def owner_of(db: Session, share: Share) -> int | None:
    """The owner of the item a share is on (for audit entries)."""
    if share.document_id is not None:
        return db.scalar(select(Document.owner_id).where(Document.id == share.document_id))
    return db.scalar(select(Folder.owner_id).where(Folder.id == share.folder_id))


def _counter_keys(share: Share, ip: str | None) -> list[str]:
    keys = [f"linkpw:share:{share.id}"]
    if ip:
        keys.append(f"linkpw:ip:{ip}")
    return keys


def _failures(runtime: SharingRuntime, keys: list[str]) -> int:
    try:
        shared = runtime.cache.get_many(keys)
    except CacheError as exc:
        log.warning("rate-limit counters unavailable, using this process's: %s", exc)
        shared = [None] * len(keys)
    local = runtime.fallback.get_many(keys)
    return max(int(v or 0) for v in [*shared, *local])


def _count_failure(runtime: SharingRuntime, keys: list[str]) -> None:
    for key in keys:
        try:
            runtime.cache.incr(key, WINDOW_SECONDS)
        except CacheError:
            runtime.fallback.incr(key, WINDOW_SECONDS)


def check_password(db: Session, share: Share, password: str | None, ip: str | None) -> bool:
    """Pass, or raise: 429 when rate-limited, 403 when the password is missing.

    Returns False for a wrong password (counted as a failure); the caller records it and
    raises `LinkPasswordInvalid`, so the audit entry can be written in its own transaction.
    """
    if share.password_hash is None:
        return True
    runtime = for_session(db)
    keys = _counter_keys(share, ip)
    if _failures(runtime, keys) >= MAX_FAILURES:
        raise RateLimited("Too many wrong passwords for this link; try again later.")
    if not password:
        raise LinkPasswordRequired("Send the link's password in the X-Link-Password header.")
    if verify_password(share.password_hash, password[:1024]):
        return True
    _count_failure(runtime, keys)
    return False


def wrong_password() -> LinkPasswordInvalid:
    """The error for a wrong link password."""
    return LinkPasswordInvalid("The link password is wrong.")


def link_actor(share: Share, ip: str | None, user_agent: str | None) -> Actor:
    """An anonymous actor whose only access is this link's."""
    return Actor(user=None, ip=ip, user_agent=user_agent, link=share)
