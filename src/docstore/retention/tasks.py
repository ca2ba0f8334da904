"""The retention domain's background jobs, registered with docstore.jobs on import."""

from __future__ import annotations

from typing import Any

from docstore.jobs import Job, register
from docstore.retention import gc
from docstore.retention import service as retention
from docstore.services import Services
from docstore.trash import service as trash

DAY = 24 * 3600.0


def run_retention(svc: Services) -> dict[str, Any]:
    """Version retention per plan (daily)."""
    return retention.run(svc.database).as_dict()


def purge_trash(svc: Services) -> dict[str, Any]:
    """Purge trash entries older than the trash retention."""
    return trash.purge_expired(svc.database, svc.settings.trash_retention_days)


def collect_blobs(svc: Services) -> dict[str, Any]:
    """Delete unreferenced blobs past their grace period, stale pending blobs, failed deletes."""
    return gc.collect(svc.database, svc.store, svc.settings).as_dict()


def sweep_storage(svc: Services) -> dict[str, Any]:
    """Delete stored objects that no blob row knows of (daily: it lists the whole store)."""
    return gc.sweep(svc.database, svc.store, svc.settings)


RETENTION = register(Job("retention.versions", DAY, run_retention))
TRASH_PURGE = register(Job("trash.purge", 3600.0, purge_trash))
BLOB_GC = register(Job("blobs.gc", 600.0, collect_blobs))
STORAGE_SWEEP = register(Job("blobs.sweep", DAY, sweep_storage))
