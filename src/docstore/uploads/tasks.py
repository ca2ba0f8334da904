"""The uploads domain's background job: expire sessions, abort what they left in storage.

Registered with docstore.jobs on import (the worker imports every domain's `tasks`).
Stale `pending` blob rows in general, and objects with no row, are blob GC's
(retention/gc.py); this job handles what only upload sessions know about.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from docstore.db import utcnow
from docstore.jobs import Job, register
from docstore.services import Services
from docstore.storage.base import StorageError
from docstore.uploads import repository, service, verification

log = logging.getLogger(__name__)

BATCH = 500
KEY_PREFIX = "blobs/"
# Finished sessions are kept this long past their expiry: a repeated complete still finds
# its result, and support can still see what happened.
KEEP_FINISHED = timedelta(days=7)


def expire_sessions(svc: Services, *, now: datetime | None = None) -> dict[str, Any]:
    """One pass: expire live sessions past `expires_at`, sweep their storage leftovers.

    `now` is the clock; tests pass a later time instead of waiting a day.
    """
    now = now or utcnow()
    with svc.database.transaction() as db:
        ids = repository.expired_ids(db, now, BATCH)
    expired = failed = 0
    for upload_id in ids:
        try:
            with svc.database.transaction() as db:
                session = repository.lock(db, upload_id)
                if session is None or session.state not in repository.LIVE:
                    continue
                if session.expires_at >= now:
                    continue
                service.release(db, svc, session, "expired")
            expired += 1
        except StorageError:
            log.warning("upload %s: storage refused the abort; retried next run", upload_id)
            failed += 1
    aborted = _sweep_storage_uploads(svc)
    with svc.database.transaction() as db:
        purged = repository.purge_finished(db, now - KEEP_FINISHED, BATCH)
    # Nothing legitimately stays in a store's temp area longer than an upload session lives.
    tmp_removed = svc.store.housekeeping(svc.settings.upload_session_ttl_seconds)
    return {
        "expired": expired,
        "failed": failed,
        "orphan_uploads_aborted": aborted,
        "sessions_purged": purged,
        "tmp_removed": tmp_removed,
    }


def _sweep_storage_uploads(svc: Services) -> int:
    """Abort storage multipart uploads whose session has ended (a crash between steps).

    Only keys a session row names are touched: the session is committed before its storage
    upload starts, so an upload whose key no session knows is not ours (e.g. the server's
    own put_stream in flight) and is left alone.
    """
    uploads = svc.store.list_multipart_uploads(KEY_PREFIX)
    aborted = 0
    for start in range(0, len(uploads), BATCH):
        batch = uploads[start : start + BATCH]
        with svc.database.transaction() as db:
            states = repository.states_by_key(db, [u.key for u in batch])
        for upload in batch:
            if states.get(upload.key) in repository.TERMINAL:
                try:
                    svc.store.abort_multipart(upload.key, upload.upload_id)
                except StorageError:
                    log.warning("an ended upload's storage upload could not be aborted")
                    continue
                aborted += 1
    return aborted


def verify_blobs(svc: Services) -> dict[str, Any]:
    """Hash objects the server has not hashed itself (S3 uploads), rate-limited."""
    return verification.verify_blobs(svc).as_dict()


EXPIRE_SESSIONS = register(Job("uploads.expire", 600.0, expire_sessions))
VERIFY_BLOBS = register(Job("blobs.verify", 60.0, verify_blobs))
