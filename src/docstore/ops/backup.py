"""`docstore backup`: a consistent, incremental backup of a running installation.

A destination directory holds:

    current              symlink to the newest complete snapshot (switched atomically)
    snapshots/<stamp>/   the database copy (docstore.db or docstore.dump), the keys and the
                         audit anchor, objects.tsv (key, SHA-256, size of every object the
                         database references) and backup.json (the manifest)
    pool/objects/...     the objects, shared by all snapshots (each key written once)

A run copies the keys and the audit anchor, dumps the database, then copies the objects that
dump references and the pool lacks (objects written after the dump wait for the next run),
writes the snapshot under a temporary name, renames it and only then points `current` at it
(the anchor first: it then names only audit heads the dump holds): killed at any moment, the
destination still has the previous complete backup (or the new one). Older snapshots beyond
`keep`, and pool objects none of the kept snapshots reference, are removed afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from docstore.audit.keys import ANCHOR_FILE, KEY_FILE
from docstore.client.transfer import file_sha256
from docstore.config import Settings
from docstore.ops import dbdump, objects
from docstore.ops.dbdump import ObjectRef

FORMAT = 1
CURRENT = "current"
SNAPSHOTS = "snapshots"
POOL = "pool"
MANIFEST = "backup.json"
OBJECT_LIST = "objects.tsv"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name)
# Testing hook: stop before `current` switches, so a test can kill -9 a backup mid-way.
STALL_ENV = "DOCSTORE_BACKUP_STALL"


class BackupError(Exception):
    """The backup (or its check) could not be made; `exit_code` for the command."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class BackupResult:
    """One run: the snapshot written and what was copied."""

    snapshot: Path
    manifest: dict[str, Any]
    copy: objects.CopyResult | None
    warnings: list[str] = field(default_factory=list)
    pruned_snapshots: int = 0
    pruned_objects: int = 0


def console() -> Console:
    """Progress and messages go to stderr (stdout stays for --json)."""
    return Console(stderr=True)


def progress(quiet: bool) -> Progress:
    """The progress display of the long steps (bytes, rate, time left)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console(),
        disable=quiet,
        transient=True,
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    """One backup (or restore from it) of a destination at a time."""
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / ".lock").open("a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup of {dest} is running", exit_code=4) from None
        yield


def pool_url(dest: Path, blobs_to: str | None) -> str:
    """Where the objects go: `blobs_to`, else the destination's own pool."""
    return blobs_to or f"file://{(dest / POOL).resolve()}"


def _copy_key(source: Path | None, target: Path, note: str, warnings: list[str]) -> str | None:
    if source is None:
        warnings.append(note)
        return None
    if not source.exists():
        return None
    shutil.copyfile(source, target)
    target.chmod(0o600)
    return target.name


def copy_keys(settings: Settings, snap: Path, warnings: list[str]) -> dict[str, str | None]:
    """The secret key, the audit key and the audit anchor, when kept as files."""
    data = settings.data_dir
    secret = None if settings.secret_key else data / SECRET_KEY_FILE
    audit = None if settings.audit_key else data / KEY_FILE
    anchor = settings.audit_anchor_file or data / ANCHOR_FILE
    return {
        "secret_key": _copy_key(
            secret, snap / SECRET_KEY_FILE,
            "the secret key comes from DOCSTORE_SECRET_KEY: keep it with your configuration",
            warnings,
        ),
        "audit_key": _copy_key(
            audit, snap / KEY_FILE,
            "the audit key comes from DOCSTORE_AUDIT_KEY: keep it with your configuration",
            warnings,
        ),
        "audit_anchor": _copy_key(anchor, snap / ANCHOR_FILE, "", warnings),
    }  # fmt: skip


def bucket_protection(store: Any) -> dict[str, Any]:
    """Whether an S3 bucket keeps old object versions and replicates (what protects blobs a
    backup without --include-blobs does not copy)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client, bucket = store.client, store.bucket
    out: dict[str, Any] = {"bucket": bucket}
    try:
        out["versioning"] = client.get_bucket_versioning(Bucket=bucket).get("Status", "Disabled")
    except (ClientError, BotoCoreError) as exc:
        out["versioning"] = f"unknown ({type(exc).__name__})"
    try:
        rules = client.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Rules"]
        out["replication"] = (
            "Enabled" if any(r.get("Status") == "Enabled" for r in rules) else "Disabled"
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        out["replication"] = "Disabled" if "NotFound" in code else f"unknown ({code})"
    except BotoCoreError as exc:
        out["replication"] = f"unknown ({type(exc).__name__})"
    return out


def write_object_list(path: Path, refs: list[ObjectRef]) -> None:
    """objects.tsv: one `key<TAB>sha256<TAB>size` line per referenced object."""
    with path.open("w") as f:
        for ref in refs:
            f.write(f"{ref.key}\t{ref.sha256}\t{ref.size}\n")


def read_object_list(path: Path) -> list[ObjectRef]:
    """The objects a snapshot references."""
    refs = []
    with path.open() as f:
        for line in f:
            key, sha, size = line.rstrip("\n").split("\t")
            refs.append(ObjectRef(key, sha, int(size)))
    return refs


def version() -> str:
    """The installed docstore's version."""
    try:
        return metadata.version("docstore")
    except metadata.PackageNotFoundError:
        return "unknown"


def backup(
    settings: Settings,
    dest: Path,
    *,
    include_blobs: bool = False,
    blobs_to: str | None = None,
    keep: int = 3,
    quiet: bool = False,
) -> BackupResult:
    """Back up the configured installation into `dest` (see the module docstring)."""
    with locked(dest):
        return _backup(settings, dest, include_blobs, blobs_to, max(keep, 1), quiet)


def _backup(
    settings: Settings,
    dest: Path,
    include_blobs: bool,
    blobs_to: str | None,
    keep: int,
    quiet: bool,
) -> BackupResult:
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%S.%fZ")
    snapshots = dest / SNAPSHOTS
    snapshots.mkdir(exist_ok=True)
    tmp = snapshots / f".tmp-{stamp}-{os.getpid()}"
    tmp.mkdir()
    warnings: list[str] = []
    store_url = settings.resolved_storage_url
    source = objects.open_store(store_url)
    # The keys and the audit anchor before the database: the sealing job may anchor a new
    # head at any moment, and an anchor copied after the dump could name a head the dump
    # lacks (the restored chain would not verify). Copied first, it names only heads the
    # dump holds; a head sealed meanwhile is simply not anchored in this backup.
    keys = copy_keys(settings, tmp, warnings)
    with progress(quiet) as bars:
        step = bars.add_task("database snapshot", total=None)
        try:
            snap = dbdump.dump(settings.resolved_database_url, tmp)
        except dbdump.ToolMissing as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BackupError(str(exc), exit_code=3) from None
        bars.update(step, description="database snapshot (hashing)")
        db_sha = file_sha256(snap.path)
        bars.remove_task(step)
        copy_to = blobs_to if source.kind != "local" or blobs_to else None
        storage: dict[str, Any] = {"kind": source.kind}
        if source.kind == "s3":
            storage.update(bucket_protection(source))
            if not (include_blobs or blobs_to):
                warnings.append(
                    "objects stay in the bucket only (versioning: "
                    f"{storage['versioning']}, replication: {storage['replication']}); "
                    "--include-blobs copies them"
                )
        copy = None
        if source.kind == "local" or include_blobs or blobs_to:
            copy_to = pool_url(dest, blobs_to)
            target = objects.open_store(copy_to)
            total = sum(ref.size for ref in snap.objects)
            task = bars.add_task(f"objects ({len(snap.objects)})", total=total)
            copy = objects.copy_missing(
                source, target, snap.objects, advance=lambda n: bars.advance(task, n)
            )
            bars.remove_task(task)
            if copy.missing:
                warnings.append(
                    f"{len(copy.missing)} referenced object(s) are missing from storage "
                    "(run docstore fsck)"
                )
    write_object_list(tmp / OBJECT_LIST, snap.objects)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "docstore_version": version(),
        "schema_revision": snap.revision,
        "database": {
            "kind": snap.kind,
            "file": snap.path.name,
            "bytes": snap.path.stat().st_size,
            "sha256": db_sha,
        },
        "counts": snap.counts,
        "objects": {
            "count": len(snap.objects),
            "bytes": sum(ref.size for ref in snap.objects),
            "list": OBJECT_LIST,
            "list_sha256": file_sha256(tmp / OBJECT_LIST),
            "location": None if copy is None else (POOL if blobs_to is None else copy_to),
            "copied": None if copy is None else copy.copied,
            "hard_linked": None if copy is None else copy.linked,
            "already_present": None if copy is None else copy.present,
            "copied_bytes": None if copy is None else copy.copied_bytes,
            "missing": [] if copy is None else copy.missing,
        },
        "keys": keys,
        "storage": storage,
        "warnings": warnings,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for path in tmp.iterdir():
        _fsync(path)
    _fsync(tmp)
    _stall_for_tests(dest)
    final = snapshots / stamp
    os.replace(tmp, final)
    _fsync(snapshots)
    switch_current(dest, final)
    result = BackupResult(final, manifest, copy, warnings)
    result.pruned_snapshots, result.pruned_objects = prune(dest, keep, blobs_to)
    return result


def _stall_for_tests(dest: Path) -> None:
    if os.environ.get(STALL_ENV) != "before-switch":
        return
    (dest / ".stalled").write_text(str(os.getpid()))
    time.sleep(120)  # bounded: the test kills the process long before


def switch_current(dest: Path, snapshot: Path) -> None:
    """Point `current` at the snapshot in one rename (a symlink replaced atomically)."""
    link = dest / f".{CURRENT}.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(Path(SNAPSHOTS) / snapshot.name)
    os.replace(link, dest / CURRENT)
    _fsync(dest)


def current(dest: Path) -> Path:
    """The newest complete snapshot of a destination (or the snapshot directory given)."""
    if (dest / MANIFEST).exists():
        return dest
    link = dest / CURRENT
    if not link.exists():
        raise BackupError(f"no complete backup in {dest}", exit_code=3)
    return link.resolve()


def prune(dest: Path, keep: int, blobs_to: str | None) -> tuple[int, int]:
    """Remove leftovers of killed runs, snapshots beyond the newest `keep`, and the pool's
    objects no kept snapshot references; returns (snapshots, objects) removed."""
    snapshots = dest / SNAPSHOTS
    live = current(dest)
    for leftover in snapshots.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    done = sorted(p for p in snapshots.iterdir() if not p.name.startswith("."))
    kept = [p for p in done[-keep:]]
    if live not in kept:
        kept.append(live)
    removed = 0
    for old in done:
        if old not in kept:
            shutil.rmtree(old, ignore_errors=True)
            removed += 1
    if blobs_to is not None or not (dest / POOL).exists():
        return removed, 0  # a pool elsewhere (a bucket) is pruned by its own lifecycle rules
    wanted = {ref.key for snap in kept for ref in read_object_list(snap / OBJECT_LIST)}
    pool = objects.open_store(pool_url(dest, None))
    gone = 0
    for key in objects.keys_in(pool) - wanted:
        pool.delete(key)
        gone += 1
    return removed, gone


@dataclass
class VerifyResult:
    """What `backup --verify` found."""

    snapshot: Path
    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems


def verify(
    dest: Path, *, full: bool = False, sample: int = 64, blobs_from: str | None = None,
    quiet: bool = False,
) -> VerifyResult:  # fmt: skip
    """Re-hash the database copy, the object list and a sample (or all) of the objects."""
    snap = current(dest)
    manifest = json.loads((snap / MANIFEST).read_text())
    problems = []
    db_file = snap / manifest["database"]["file"]
    if not db_file.exists() or file_sha256(db_file) != manifest["database"]["sha256"]:
        problems.append(f"database copy {db_file.name}: missing or SHA-256 differs")
    listing = snap / OBJECT_LIST
    if file_sha256(listing) != manifest["objects"]["list_sha256"]:
        problems.append(f"{OBJECT_LIST}: SHA-256 differs")
        return VerifyResult(snap, 0, problems)
    refs = read_object_list(listing)
    location = blobs_from or manifest["objects"]["location"]
    if location is None:
        return VerifyResult(snap, 0, problems)
    if location == POOL:
        location = pool_url(snap.parent.parent, None)
    store = objects.open_store(location)
    chosen = refs if full or len(refs) <= sample else random.sample(refs, sample)
    with progress(quiet) as bars:
        task = bars.add_task(
            f"verifying {len(chosen)} object(s)", total=sum(r.size for r in chosen)
        )
        for ref in chosen:
            wrong = objects.rehash(store, ref)
            if wrong is not None:
                problems.append(f"object {ref.key}: {wrong}")
            bars.advance(task, ref.size)
    return VerifyResult(snap, len(chosen), problems)


def on_progress(bars: Progress, description: str, total: int) -> Callable[[int], None]:
    """A bar and the callback that advances it."""
    task = bars.add_task(description, total=total)
    return lambda n: bars.advance(task, n)
