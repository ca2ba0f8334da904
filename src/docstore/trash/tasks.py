"""The trash domain's background job, registered with docstore.jobs on import."""

from __future__ import annotations

from typing import Any

from docstore.jobs import Job, register
from docstore.services import Services
from docstore.trash import service as trash


def purge_trash(svc: Services) -> dict[str, Any]:
    """Purge trash entries older than the trash retention."""
    return trash.purge_expired(svc.database, svc.settings.trash_retention_days)


TRASH_PURGE = register(Job("trash.purge", 3600.0, purge_trash))
