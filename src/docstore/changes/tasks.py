"""The change feed's background job, registered with docstore.jobs on import."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from docstore.changes import service
from docstore.db import utcnow
from docstore.jobs import Job, register
from docstore.services import Services

# Rows are kept a day past the retention, so a cursor still inside it never misses one.
MARGIN = timedelta(days=1)


def prune_changes(svc: Services) -> dict[str, Any]:
    """Drop the feed's rows older than `change_retention_days` (plus a day)."""
    before = utcnow() - timedelta(days=svc.settings.change_retention_days) - MARGIN
    with svc.database.transaction() as db:
        return {"pruned": service.prune(db, before)}


PRUNE_CHANGES = register(Job("changes.prune", 3600.0, prune_changes))


# Shares announced per transaction: a burst of expiries is written in bounded steps.
EXPIRY_BATCH = 200


def notice_share_expiry(svc: Services) -> dict[str, Any]:
    """Write the feed rows for user and group shares that expired since the last pass."""
    noticed = 0
    while True:
        with svc.database.transaction() as db:
            now = utcnow()
            shares = service.unnoticed_expiries(db, now, EXPIRY_BATCH)
            for share in shares:
                service.share_expired(db, share)
                share.expiry_noticed_at = now
        noticed += len(shares)
        if len(shares) < EXPIRY_BATCH:
            return {"noticed": noticed}


SHARE_EXPIRY = register(Job("changes.share_expiry", 30.0, notice_share_expiry))
