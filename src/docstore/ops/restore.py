"""`docstore restore`: put a backup back into an empty data dir / database, then check it.

The configured database must be empty and storage hold no objects, unless `force`. The
database copy is checked against its SHA-256 in the manifest before anything is written;
the keys and the audit anchor go where the settings look for them, the objects into the
configured store (only those it lacks). The restored database is then migrated to this
code's schema and checked by fsck.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docstore.audit.keys import ANCHOR_FILE, KEY_FILE
from docstore.client.transfer import file_sha256
from docstore.config import Settings
from docstore.ops import backup, dbdump, objects

if TYPE_CHECKING:
    from docstore.retention.fsck import FsckReport


@dataclass
class RestoreResult:
    """What was restored and what fsck said about it."""

    snapshot: Path
    manifest: dict[str, Any]
    copy: objects.CopyResult | None
    fsck: FsckReport
    notes: list[str] = field(default_factory=list)


def _live(settings: Settings, store_url: str) -> list[str]:
    """What already lives where the restore would write."""
    found = []
    if not dbdump.is_empty(settings.resolved_database_url):
        found.append("the database is not empty")
    store = objects.open_store(store_url)
    if next(iter(store.iter_objects("")), None) is not None:
        found.append("storage holds objects")
    return found


def _place_key(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(source, tmp)
    tmp.chmod(0o600)
    tmp.replace(target)


def restore(
    settings: Settings,
    src: Path,
    *,
    force: bool = False,
    blobs_from: str | None = None,
    quiet: bool = False,
) -> RestoreResult:
    """Restore the newest complete snapshot in `src` into the configured installation."""
    snap = backup.current(src)
    manifest = json.loads((snap / backup.MANIFEST).read_text())
    if manifest.get("format") != backup.FORMAT:
        raise backup.BackupError(f"unknown backup format {manifest.get('format')!r}", 2)
    db_file = snap / manifest["database"]["file"]
    if file_sha256(db_file) != manifest["database"]["sha256"]:
        raise backup.BackupError(f"{db_file}: SHA-256 differs from the manifest", 7)
    url = settings.resolved_database_url
    if dbdump.backend(url) != manifest["database"]["kind"]:
        raise backup.BackupError(
            f"the backup holds a {manifest['database']['kind']} database, the configured "
            f"one is {dbdump.backend(url)}",
            2,
        )
    store_url = settings.resolved_storage_url
    live = _live(settings, store_url)
    if live and not force:
        raise backup.BackupError(
            "refusing to restore over a live installation: " + "; ".join(live)
            + " (--force overwrites it)",
            4,
        )  # fmt: skip
    notes = []
    dbdump.load(url, db_file, replace=force)
    keys = manifest["keys"]
    data = settings.data_dir
    if keys.get("secret_key"):
        if settings.secret_key:
            notes.append("DOCSTORE_SECRET_KEY is set: the backed-up secret key was not used")
        else:
            _place_key(snap / keys["secret_key"], data / backup.SECRET_KEY_FILE)
    if keys.get("audit_key"):
        if settings.audit_key:
            notes.append("DOCSTORE_AUDIT_KEY is set: the backed-up audit key was not used")
        else:
            _place_key(snap / keys["audit_key"], data / KEY_FILE)
    if keys.get("audit_anchor"):
        _place_key(snap / keys["audit_anchor"], settings.audit_anchor_file or data / ANCHOR_FILE)
    copy = None
    location = blobs_from or manifest["objects"]["location"]
    if location is not None:
        if location == backup.POOL:
            location = backup.pool_url(snap.parent.parent, None)
        refs = backup.read_object_list(snap / backup.OBJECT_LIST)
        with backup.progress(quiet) as bars:
            advance = backup.on_progress(bars, f"objects ({len(refs)})", sum(r.size for r in refs))
            copy = objects.copy_missing(
                objects.open_store(location), objects.open_store(store_url), refs, advance=advance
            )
    else:
        notes.append("the backup holds no objects: they are expected in the configured storage")
    return RestoreResult(snap, manifest, copy, check(settings), notes)


def check(settings: Settings) -> FsckReport:
    """Migrate the restored database to this code's schema, then fsck it (recorded as the
    fsck job's run, as `docstore fsck` is)."""
    from docstore import migrate
    from docstore.retention import fsck
    from docstore.services import Services
    from docstore.storage.inline import write_out
    from docstore.users.service import ensure_default_plan

    svc = Services.from_settings(settings)
    try:
        migrate.upgrade(svc.database.engine)
        with svc.database.transaction() as db:
            ensure_default_plan(db)
        # A local installation's small files, kept in its database, restored onto S3.
        write_out(svc.database, svc.store)
        return fsck.run(svc)
    finally:
        svc.close()
