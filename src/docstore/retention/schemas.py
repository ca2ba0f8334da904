"""Maintenance bodies."""

from __future__ import annotations

from pydantic import BaseModel


class RetentionOut(BaseModel):
    """What a retention run removed or, dry, would remove.

    `bytes_released` is the quota given back (the removed versions' sizes); `blobs_deleted`
    counts the stored objects left unreferenced, which the blob GC deletes after its grace
    period, and `storage_bytes_freed` their size.
    """

    versions_deleted: int
    blobs_deleted: int
    bytes_released: int
    storage_bytes_freed: int
    documents: int
    dry_run: bool
