"""The change feed as a webhook reads it: the feed's own per-user visibility read
(docstore.changes), never a second permission path. Placeholder until the outbox lands."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from docstore.users.models import User

SCAN = 200  # outbox rows one read looks at


def head(db: Session) -> int:
    """The outbox's current position (a new webhook starts here)."""
    return 0


def visible_after(
    db: Session, owner: User, after: int, folder_id: int | None, limit: int = SCAN
) -> tuple[list[dict[str, Any]], int]:
    """The changes after `after` that `owner` sees now (in `folder_id`'s subtree when
    given), as the feed shows them, and the position up to which the outbox was read."""
    return [], after


def change_at(db: Session, owner: User, seq: int, folder_id: int | None) -> dict[str, Any] | None:
    """Change `seq` as the feed shows it to `owner` now, or None when not visible."""
    return None
