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
