"""The retention domain's background jobs, registered with docstore.jobs on import."""

from __future__ import annotations

from typing import Any

from docstore.jobs import Job, register
from docstore.retention import gc
from docstore.retention import service as retention
from docstore.services import Services

DAY = 24 * 3600.0


def run_retention(svc: Services) -> dict[str, Any]:
    """Version retention per plan (daily)."""
    return retention.run(svc.database).as_dict()


def collect_blobs(svc: Services) -> dict[str, Any]:
    """Delete unreferenced blobs past their grace period, stale pending blobs, failed deletes."""
    return gc.collect(svc.database, svc.store, svc.settings).as_dict()


def sweep_storage(svc: Services) -> dict[str, Any]:
    """Delete stored objects that no blob row knows of (daily: it lists the whole store)."""
    return gc.sweep(svc.database, svc.store, svc.settings)


RETENTION = register(Job("retention.versions", DAY, run_retention))
BLOB_GC = register(Job("blobs.gc", 600.0, collect_blobs))
STORAGE_SWEEP = register(Job("blobs.sweep", DAY, sweep_storage))
