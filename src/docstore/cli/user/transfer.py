"""The transfer engine behind `docstore upload` and `download`: plan the jobs for a tree,
run them in parallel with resumable multipart uploads, report each file's outcome."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docstore.cli import exit_codes
from docstore.cli.exit_codes import CliError
from docstore.cli.user.common import _nfc

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from docstore.client import Child, DocstoreClient, Version
    from docstore.client.models import Id


# -- upload -----------------------------------------------------------------------------------


@dataclass
class _Job:
    """One local file to send, and what happened to it."""

    local: Path
    remote: str
    folder_id: Id
    size: int
    existing: Child | None
    # Its path below the upload's top folder (`batch_root`): how a batch names it.
    rel: str = ""
    batch_root: Id = 0
    sha256: str = ""
    action: str = "pending"
    document_id: Id | None = None
    version_number: int | None = None
    bytes_sent: int = 0
    parts_sent: list[int] = field(default_factory=list)
    parts_resumed: int = 0
    error: str | None = None
    exit_code: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "local": str(self.local),
            "remote": self.remote,
            "action": self.action,
            "size_bytes": self.size,
            "sha256": self.sha256,
            "document_id": self.document_id,
            "version_number": self.version_number,
            "bytes_sent": self.bytes_sent,
            "parts_sent": self.parts_sent,
            "parts_resumed": self.parts_resumed,
            "error": self.error,
        }


class _RemoteTree:
    """Remote folders by id with their children listed once, for a whole upload."""

    def __init__(self, ds: DocstoreClient) -> None:
        self.ds = ds
        self.listed: dict[str, dict[str, Child]] = {}

    def children(self, folder_id: Id) -> dict[str, Child]:
        key = str(folder_id)
        if key not in self.listed:
            self.listed[key] = {c.name: c for c in self.ds.iter_children(folder_id)}
        return self.listed[key]

    def folder(self, parent_id: Id, name: str, remote: str) -> Id:
        from docstore.client import Child

        name = _nfc(name)
        child = self.children(parent_id).get(name)
        if child is None:
            created = self.ds.ensure_folder(name, parent_id)
            child = Child(kind="folder", id=created.id, name=created.name)
            self.children(parent_id)[name] = child
        elif child.kind != "folder":
            raise CliError(f"{remote} exists and is a document, not a folder", exit_codes.CONFLICT)
        return child.id


def _plan_upload(ds: DocstoreClient, src: Path, dest: str) -> list[_Job]:
    """Create the remote folders and list what each local file should become."""
    base = ds.makedirs(dest)
    tree = _RemoteTree(ds)
    prefix = base.path.rstrip("/")

    def job(local: Path, folder_id: Id, remote_dir: str) -> _Job:
        name = _nfc(local.name)
        existing = tree.children(folder_id).get(name)
        remote = f"{remote_dir}/{name}"
        if existing is not None and existing.kind == "folder":
            raise CliError(f"{remote} exists and is a folder", exit_codes.CONFLICT)
        rel = remote[len(top_remote) + 1 :]
        return _Job(local, remote, folder_id, local.stat().st_size, existing, rel, top_id)

    if src.is_file():
        top_remote, top_id = prefix, base.id
        return [job(src, base.id, prefix)]
    jobs: list[_Job] = []
    top_remote = f"{prefix}/{_nfc(src.resolve().name)}"
    top_id = tree.folder(base.id, src.resolve().name, top_remote)
    folder_ids: dict[Path, Id] = {src: top_id}
    remote_dirs: dict[Path, str] = {src: top_remote}
    for dirpath_str, dirnames, filenames in os.walk(src):
        dirpath = Path(dirpath_str)
        dirnames.sort()
        folder_id, remote_dir = folder_ids[dirpath], remote_dirs[dirpath]
        for d in dirnames:
            sub = dirpath / d
            remote_dirs[sub] = f"{remote_dir}/{_nfc(d)}"
            folder_ids[sub] = tree.folder(folder_id, d, remote_dirs[sub])
        for f in sorted(filenames):
            local = dirpath / f
            if local.is_file():  # regular files and links to them; not sockets or fifos
                jobs.append(job(local, folder_id, remote_dir))
    return jobs


def _run_upload_job(
    ds: DocstoreClient,
    job: _Job,
    *,
    parallel: int,
    threshold: int,
    progress: Progress,
    overall: TaskID,
    on_part: Callable[[int, int], None] | None,
) -> None:
    """Send one file unless the same bytes are already its current version."""
    from docstore.client import DocstoreError

    existing = job.existing
    try:
        if existing is not None and existing.size_bytes == job.size:
            current = ds.get_document(existing.id).current_version
            if current is not None and current.checksum_sha256 == job.sha256:
                job.action = "unchanged"
                job.document_id = existing.id
                job.version_number = current.version_number
                progress.advance(overall, job.size)
                return
        task = None
        if job.size >= threshold:
            task = progress.add_task(job.local.name, total=job.size)

        def advance(n: int) -> None:
            progress.advance(overall, n)
            if task is not None:
                progress.advance(task, n)

        result = ds.upload_file(
            job.local,
            folder_id=job.folder_id,
            document_id=existing.id if existing else None,
            base_version_id=existing.current_version_id if existing else None,
            checksum_sha256=job.sha256,
            multipart_threshold=threshold,
            parallel=parallel,
            progress=advance,
            on_part=on_part,
        )
        if task is not None:
            progress.remove_task(task)
        doc = result.document
        job.document_id = doc.id
        job.version_number = doc.current_version.version_number if doc.current_version else None
        job.bytes_sent = result.bytes_sent
        job.parts_sent = result.parts_sent
        job.parts_resumed = result.parts_resumed
        if result.method == "skipped":
            job.action = "deduplicated"
        else:
            job.action = "new version" if existing else "uploaded"
    except DocstoreError as exc:
        job.action, job.error, job.exit_code = (
            "failed",
            str(exc),
            exit_codes.for_code(exc.code, exc.status),
        )
    except OSError as exc:
        job.action, job.error, job.exit_code = "failed", str(exc), exit_codes.ERROR


def batch_groups(
    jobs: list[_Job], threshold: int, max_files: int, max_bytes: int
) -> list[list[_Job]]:
    """New files under `threshold` bytes, in groups for POST /files/batch (one request each,
    by top folder); the rest (large files, new versions) go one by one."""
    groups: list[list[_Job]] = []
    by_root: dict[str, list[_Job]] = {}
    size: dict[str, int] = {}
    for j in jobs:
        if j.existing is not None or j.size >= threshold:
            continue
        key = str(j.batch_root)
        group = by_root.get(key)
        if group is None or len(group) >= max_files or size[key] + j.size > max_bytes:
            group = by_root[key] = []
            size[key] = 0
            groups.append(group)
        group.append(j)
        size[key] += j.size
    return groups


def _run_batch(ds: DocstoreClient, group: list[_Job], progress: Progress, overall: TaskID) -> None:
    """Send a group of new small files in one request; each file succeeds or fails alone."""
    from docstore.client import BatchFile, DocstoreError
    from docstore.client.errors import error_from_problem

    files = [BatchFile(path=j.rel, content=j.local, checksum_sha256=j.sha256) for j in group]
    try:
        items = ds.upload_batch(files, folder_id=group[0].batch_root, max_files=len(group))
    except DocstoreError as exc:
        code = exit_codes.for_code(exc.code, exc.status)
        for j in group:
            j.action, j.error, j.exit_code = "failed", str(exc), code
        return
    except OSError as exc:
        for j in group:
            j.action, j.error, j.exit_code = "failed", str(exc), exit_codes.ERROR
        return
    for j, item in zip(group, items, strict=True):
        progress.advance(overall, j.size)
        if item.document is not None:
            doc = item.document
            j.action, j.document_id, j.bytes_sent = "uploaded", doc.id, j.size
            j.version_number = doc.current_version.version_number if doc.current_version else None
            continue
        err = error_from_problem(item.status, item.error or {})
        j.action, j.error = "failed", str(err)
        j.exit_code = exit_codes.for_code(err.code, err.status)


def _kill_after(parts: int) -> Callable[[int, int], None]:
    """Fault injection for the resume test: SIGKILL this process once `parts` parts are saved."""

    def on_part(_: int, done: int) -> None:
        if done >= parts:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    return on_part


_ACTIONS = ("uploaded", "new version", "unchanged", "deduplicated", "failed")


# -- download ---------------------------------------------------------------------------------


def _remote_files(
    ds: DocstoreClient, folder_id: Id, local: Path, remote: str
) -> Iterator[tuple[Child, Path, str]]:
    """Every document below a folder: (child, local path, remote path); folders created."""
    local.mkdir(parents=True, exist_ok=True)
    for child in ds.iter_children(folder_id):
        if "/" in child.name or child.name in (".", ".."):
            continue  # never write outside the target directory
        path = f"{remote.rstrip('/')}/{child.name}"
        if child.kind == "folder":
            yield from _remote_files(ds, child.id, local / child.name, path)
        else:
            yield child, local / child.name, path


def _download_row(remote: str, local: Path, version: Version) -> dict[str, Any]:
    return {
        "remote": remote,
        "local": str(local),
        "version_number": version.version_number,
        "size_bytes": version.size_bytes,
        "sha256": version.checksum_sha256,
    }
