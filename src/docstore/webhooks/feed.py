"""The change feed as a webhook reads it: the feed's own per-user read
(`changes.feed.page`, run as the webhook's owner at delivery time), never a second
permission path.

The outbox holds a row for each user who could see a change when it was made; the feed
computes each entry at read time, null for an item the reader cannot see *now*. A webhook
carries only what its owner sees at delivery time, so a change whose entry is null is
skipped, except `access_lost` and `purged`, which never have an entry and tell the owner
that an item they saw is gone for them (its id only). Revoking a share therefore stops a
webhook's changes about the item at once: queued ones are skipped, and no new rows are
written for the former sharee.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from docstore.changes import feed as change_feed
from docstore.changes import service as changes
from docstore.context import Actor
from docstore.errors import NotFound
from docstore.users.models import User

SCAN = 100  # outbox rows one read looks at
_NO_ENTRY = {changes.Op.ACCESS_LOST.value, changes.Op.PURGED.value}


def head(db: Session) -> int:
    """The outbox's current position (a new webhook starts here)."""
    return changes.last_seq(db)


def _page(
    db: Session, owner: User, after: int, folder_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], int] | None:
    """The owner's feed after `after` (JSON-ready changes, and the last seq read); None
    while the webhook's folder is not visible to the owner (it waits: a folder in the
    trash may come back)."""
    position = change_feed.Position(after, folder_id, int(time.time()))
    try:
        page = change_feed.page(db, Actor(user=owner), position, limit)
    except NotFound:
        return None
    out = [c.model_dump(mode="json") for c in page.changes]
    return out, (page.changes[-1].seq if page.changes else after)


def deliverable(change: dict[str, Any]) -> bool:
    """Whether the owner may be told about this change now (see the module's doc)."""
    return change["entry"] is not None or change["op"] in _NO_ENTRY


def visible_after(
    db: Session, owner: User, after: int, folder_id: int | None, limit: int = SCAN
) -> tuple[list[dict[str, Any]], int]:
    """The changes after `after` that `owner` may be told about now (in `folder_id`'s
    subtree when given), as the feed shows them, and the seq up to which it read."""
    found = _page(db, owner, after, folder_id, limit)
    if found is None:
        return [], after
    rows, scanned = found
    return [c for c in rows if deliverable(c)], scanned


def change_at(db: Session, owner: User, seq: int, folder_id: int | None) -> dict[str, Any] | None:
    """Change `seq` as the feed shows it to `owner` now, or None when they may not be told
    about it any more (or it is no longer kept)."""
    found = _page(db, owner, seq - 1, folder_id, 1)
    if found is None or not found[0]:
        return None
    change = found[0][0]
    return change if change["seq"] == seq and deliverable(change) else None
