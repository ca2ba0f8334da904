"""Link shares: find a link by its token, check expiry and password, limit password guesses.

Wrong passwords are counted in the shared cache (`docstore.throttle`; Redis when configured,
so every process sees the same counts), and limited so that guessing is slow while a person
who knows the password is never locked out by somebody else's guesses:
- per (link, client address) and per address across links: a hard limit within a window;
  past it that address gets 429 (with Retry-After), the right password included;
- per link, from any address: once the link has had `link_password_backoff_after` failures,
  each try waits a delay that doubles with every further failure, up to a cap, before its
  password is checked. Nobody is refused; guessing from many addresses just gets slow.
Tries are counted before the password is checked and given back when it was right, so a
burst of parallel guesses meets the limit too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from docstore import throttle as counters
from docstore.config import Settings
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
from docstore.throttle import backoff

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 256


@dataclass(frozen=True)
class LinkLimits:
    """The link-password limits from the settings."""

    per_link_and_address: int
    per_address: int
    window: int
    backoff_after: int
    backoff: float
    backoff_max: float

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkLimits:
        """The limits configured by the DOCSTORE_LINK_PASSWORD_* settings."""
        return cls(
            per_link_and_address=settings.link_password_max_failures,
            per_address=settings.link_password_max_failures_per_address,
            window=settings.link_password_window_seconds,
            backoff_after=settings.link_password_backoff_after,
            backoff=settings.link_password_backoff_seconds,
            backoff_max=settings.link_password_backoff_max_seconds,
        )

    def delay(self, link_failures: int) -> float:
        """The wait before checking a password on a link with this many recent failures."""
        return backoff(link_failures + 1, self.backoff_after, self.backoff, self.backoff_max)


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


def _link_key(token: str) -> str:
    # By token digest, so the delay is known before the database is asked anything.
    return f"linkpw:link:{token_digest(token)[:32]}"


def slow_down(db: Session, token: str, limits: LinkLimits) -> float:
    """Wait before a password try on a link that has seen many wrong ones; the wait.

    Call before the request touches the database: a sleeping request must hold no lock.
    """
    throttle = counters.for_session(db)
    (failures,) = throttle.counts([_link_key(token)])
    wait = limits.delay(failures)
    if wait > 0:
        time.sleep(wait)
    return wait


def check_password(
    db: Session,
    share: Share,
    token: str,
    password: str | None,
    ip: str | None,
    limits: LinkLimits,
) -> bool:
    """Pass, or raise: 429 when this address is rate-limited, 403 when the password is
    missing.

    Returns False for a wrong password (counted as a failure); the caller records it and
    raises `LinkPasswordInvalid`, so the audit entry can be written in its own transaction.
    """
    if share.password_hash is None:
        return True
    throttle = counters.for_session(db)
    counted = [(f"linkpw:share:{share.id}:ip:{ip}", limits.per_link_and_address)] if ip else []
    if ip:
        counted.append((f"linkpw:ip:{ip}", limits.per_address))
    keys = [key for key, _ in counted]
    if any(n >= limit for n, (_, limit) in zip(throttle.counts(keys), counted, strict=True)):
        raise _limited(limits)
    if not password:
        raise LinkPasswordRequired("Send the link's password in the X-Link-Password header.")
    over = [throttle.count(key, limits.window) > limit for key, limit in counted]
    if any(over):
        for key in keys:
            throttle.count(key, limits.window, -1)
        raise _limited(limits)
    if verify_password(share.password_hash, password[:1024]):
        for key in keys:  # a right password does not count against the address
            throttle.count(key, limits.window, -1)
        return True
    throttle.count(_link_key(token), limits.window)
    return False


def _limited(limits: LinkLimits) -> RateLimited:
    return RateLimited(
        "Too many wrong passwords from this address; try again later.",
        retry_after=limits.window,
    )


def wrong_password() -> LinkPasswordInvalid:
    """The error for a wrong link password."""
    return LinkPasswordInvalid("The link password is wrong.")


def link_actor(share: Share, ip: str | None, user_agent: str | None) -> Actor:
    """An anonymous actor whose only access is this link's."""
    return Actor(user=None, ip=ip, user_agent=user_agent, link=share)
