"""Signed download URLs bound to the access they were handed out under.

A signed URL is a bearer credential for its lifetime (DOCSTORE_SIGNED_URL_TTL_SECONDS). When
it came through a share or a link, the URL carries a signed *grant* naming that access:
`u<user id>.d<document id>` or `l<link share id>.d<document id>`. The local store serves its
URLs itself and checks the grant again on every request (`still_granted`), so a URL fetched
before `DELETE /shares/{id}` (or before the document went to the trash, or the account was
disabled) answers 404 afterwards. The owner's own URLs carry no grant: nothing to revoke.
S3 serves presigned URLs without asking docstore; there the URL lives out its TTL.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.db import Database
from docstore.errors import DocstoreError
from docstore.sharing.models import Share
from docstore.sharing.permissions import Level, get_document_for
from docstore.users.models import User

_GRANT = re.compile(r"([ul])([1-9][0-9]{0,18})\.d([1-9][0-9]{0,18})")


def grant_for(actor: Actor, document_id: int, owner_id: int) -> str | None:
    """The grant a download URL for `actor` carries; None for the owner's own URLs."""
    if actor.link is not None and actor.user is None:
        return f"l{actor.link.id}.d{document_id}"
    if actor.user_id is None or actor.user_id == owner_id:
        return None
    return f"u{actor.user_id}.d{document_id}"


def still_granted(db: Session, grant: str) -> bool:
    """Whether the access a URL was handed out under still lets its holder read the document."""
    match = _GRANT.fullmatch(grant)
    if match is None:
        return False
    kind, holder, document_id = match[1], int(match[2]), int(match[3])
    if kind == "l":
        link = db.get(Share, holder)
        if link is None or link.kind != "link":
            return False
        actor = Actor(user=None, link=link)  # permissions check its expiry and revocation
    else:
        user = db.get(User, holder)
        if user is None or not user.is_active:
            return False
        actor = Actor(user=user)
    try:
        get_document_for(db, actor, document_id, Level.VIEW)
    except DocstoreError:  # 404 (revoked, trashed, gone), 403, 410
        return False
    return True


def checker(database: Database) -> Callable[[str], bool]:
    """`still_granted` in a read transaction of its own (for the storage endpoint)."""

    def check(grant: str) -> bool:
        with database.read_transaction() as db:
            return still_granted(db, grant)

    return check
