"""One sync round: remote tree (feed or listing) + local scan → plan → actions → state.

The rules that keep bytes safe live here, where the plan meets the disk and the server:
- a download goes to `.docstore-sync/tmp/` and is renamed over the real name only if the
  local file is still what the scan saw (a local edit is never overwritten);
- an upload names the version it started from (`base_version_id`) with `on_conflict=copy`:
  when the server has moved on, it keeps both and the local file takes the copy's name;
- nothing is deleted: server deletes go to its trash, local ones to `.docstore-sync/trash/`;
- one path that fails (unreadable, refused name, a race) is reported and skipped; the
  feed cursor only moves on after a round without failures, so the next round retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import posixpath
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docstore
from docstore.client.client import DocstoreClient, split_path
from docstore.client.errors import (
    CursorExpired,
    DocstoreError,
    NameConflict,
    NotFound,
    error_from_problem,
)
from docstore.client.models import BatchFile, ChangesPage, Document, Version
from docstore.client.sync.clashes import split_clashes
from docstore.client.sync.feed import Known
from docstore.client.sync.folders import sync_folders
from docstore.client.sync.ignore import Ignore
from docstore.client.sync.plan import (
    Action,
    RemoteFile,
    RemoteTree,
    conflict_name,
    kind_clashes,
    plan,
)
from docstore.client.sync.report import Event, Report, Skip, SyncError
from docstore.client.sync.scan import LocalFile, scan
from docstore.client.sync.state import Entry, State
from docstore.client.transfer import fetch_verified

USER_AGENT = f"docstore-sync/{docstore.__version__}"
TRASH_DAYS = 30
FEED_PAGES = 10_000  # bound on feed pages read in one round
# New files under this size are uploaded many to a request (POST /files/batch), this many
# files at most per request.
BATCH_THRESHOLD = 1024 * 1024
BATCH_FILES = 500


def _rel_parent(rel: str) -> str:
    return posixpath.dirname(rel)


CRASH_ENV = "DOCSTORE_SYNC_CRASH_AT"


def _crash_spec() -> tuple[str, int] | None:
    """`DOCSTORE_SYNC_CRASH_AT=<point>:<n>` (tests only): see `Syncer._crash_point`."""
    raw = os.environ.get(CRASH_ENV)
    if not raw:
        return None
    point, _, n = raw.partition(":")
    return point, int(n or "1")


class Syncer:
    """Keeps `local_dir` and the remote folder `remote_path` the same, both ways."""

    def __init__(
        self,
        client: DocstoreClient,
        local_dir: Path,
        remote_path: str,
        *,
        dry_run: bool = False,
        on_event: Callable[[Event], None] | None = None,
        parallel: int = 8,
        batch_threshold: int = BATCH_THRESHOLD,
    ) -> None:
        self.client = client
        self.batch_threshold = batch_threshold
        client.http.headers["User-Agent"] = USER_AGENT
        self.root = local_dir.resolve()
        if not self.root.is_dir():
            raise SyncError(f"{local_dir} is not a folder")
        self.remote_path = "/" + "/".join(split_path(remote_path))
        self.dry_run = dry_run
        self.on_event = on_event
        self.parallel = max(1, parallel)
        self.state = State(self.root)
        self._lockfile = (self.state.dir / "lock").open("a")
        try:  # one sync process per folder
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            self.state.close()
            raise SyncError(f"another docstore sync is running on {self.root}") from None
        self.tmp_dir = self.state.dir / "tmp"
        self.trash_dir = self.state.dir / "trash"
        self.label = f"conflict copy {socket.gethostname() or 'sync'}"
        self._lock = threading.RLock()
        self._crash_at = _crash_spec()
        self._server_label: str | None = None
        self._bind()

    def close(self) -> None:
        self.state.close()
        self._lockfile.close()  # releases the lock

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _crash_point(self, point: str) -> None:
        """Test hook for the kill -9 tests: with `DOCSTORE_SYNC_CRASH_AT=<point>:<n>` set,
        the process kills itself (SIGKILL: no cleanup, like a power cut) the n-th time it
        passes `point`, so a test places the kill at one exact step. Unset: nothing."""
        if self._crash_at is None or self._crash_at[0] != point:
            return
        with self._lock:
            left = self._crash_at[1] - 1
            self._crash_at = (point, left)
        if left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)

    # -- binding ----------------------------------------------------------------------------

    def _bind(self) -> None:
        bound = self.state.get("remote_path")
        if bound is not None and bound != self.remote_path:
            raise SyncError(f"{self.root} is synced with {bound}, not {self.remote_path}")
        server = self.state.get("server")
        if server is not None and server != self.client.base_url:
            raise SyncError(f"{self.root} is synced with {server}, not {self.client.base_url}")
        root_id = self.state.get("root_id")
        if root_id is None:
            if self.dry_run:
                try:
                    node = self.client.resolve(self.remote_path)
                except NotFound:  # would be created: an empty remote tree
                    self.root_id = ""
                    return
            else:
                node = self.client.makedirs(self.remote_path)
            if node.kind != "folder":
                raise SyncError(f"{self.remote_path} is a document, not a folder")
            root_id = str(node.id)
            if not self.dry_run:
                self.state.set("remote_path", self.remote_path)
                self.state.set("server", self.client.base_url)
                self.state.set("root_id", root_id)
        self.root_id = root_id

    # -- events -----------------------------------------------------------------------------

    def _emit(self, report: Report, kind: str, path: str, **extra: Any) -> None:
        event: Event = {"action": kind, "path": path, **{k: v for k, v in extra.items() if v}}
        with self._lock:
            report.actions.append(event)
        if self.on_event:
            self.on_event(event)

    def _fail(self, report: Report, path: str, reason: str) -> None:
        with self._lock:
            report.errors[path] = reason
        if self.on_event:
            self.on_event({"action": "error", "path": path, "error": reason})

    # -- the round --------------------------------------------------------------------------

    def run_once(self) -> Report:
        """One full round; safe to interrupt anywhere (the next round picks up)."""
        report = Report()
        if not self.dry_run:
            self._recover()
        self._purge_trash()
        base = self.state.files()
        base_folders = self.state.folders()
        ignore = Ignore.for_dir(self.root)
        remote, cursor = self._remote(report, base, base_folders, ignore)
        local = scan(self.root, base, ignore)
        clashes = kind_clashes(base, base_folders, local, remote)
        if clashes and split_clashes(self, report, clashes, remote):
            local = scan(self.root, base, ignore)  # rare: look again after the renames
            remote = self._list(ignore)
        for path, reason in local.errors.items():
            self._fail(report, path, reason)
        actions = plan(base, local, remote, label=self.label)
        if self.dry_run:
            for a in actions:
                self._emit(report, a.kind, a.path, dest=a.dest)
            return report
        self.rfolders = dict(remote.folders)
        self._execute(report, actions)
        sync_folders(self, report, base_folders, ignore)
        # After a failure the cursor stays where it was: what failed is seen again next round.
        if cursor is not None and report.ok:
            self.state.set("cursor", cursor)
        self.state.set("last_sync", datetime.now(UTC).isoformat(timespec="seconds"))
        self.state.set("last_result", "ok" if report.ok else f"{len(report.errors)} failed")
        return report

    # -- the remote side --------------------------------------------------------------------

    def _remote(
        self,
        report: Report,
        base: dict[str, Entry],
        base_folders: dict[str, str],
        ignore: Ignore,
    ) -> tuple[RemoteTree, str | None]:
        """The remote tree, and the feed cursor to keep if the round succeeds."""
        if not self.root_id:
            return RemoteTree(), None
        cursor = self.state.get("cursor")
        if cursor is not None:
            try:
                explained, cursor_now = self._feed(report, cursor, base, base_folders)
            except CursorExpired:
                explained, cursor_now = False, None
            except DocstoreError:
                explained, cursor_now = False, None  # no feed on this server: list
            if explained:
                files = {p: RemoteFile(p, e.doc_id, e.version_id, e.size) for p, e in base.items()}
                return RemoteTree(files, dict(base_folders)), cursor_now
        new_cursor: str | None = None
        with contextlib.suppress(DocstoreError):
            new_cursor = self.client.changes_cursor(self.root_id)  # before listing: no gap
        report.listed = True
        return self._list(ignore), new_cursor

    def _feed(
        self, report: Report, cursor: str, base: dict[str, Entry], base_folders: dict[str, str]
    ) -> tuple[bool, str]:
        """Read the feed from `cursor`: (every change is one the state holds, the end)."""
        known = Known(base, base_folders, self.remote_path)
        explained = True
        for _ in range(FEED_PAGES):
            page = ChangesPage.model_validate(self.client.changes(cursor, limit=1000))
            report.feed_calls += 1
            cursor = page.cursor
            explained = explained and all(known.explains(c) for c in page.changes)
            if not page.has_more:
                break
        return explained, cursor

    def _list(self, ignore: Ignore) -> RemoteTree:
        tree = RemoteTree()
        stack: list[tuple[str, str]] = [("", self.root_id)]
        while stack:
            rel_dir, folder_id = stack.pop()
            for child in self.client.iter_children(folder_id):
                rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
                if child.kind == "folder":
                    if not ignore.dir(rel):
                        tree.folders[rel] = str(child.id)
                        stack.append((rel, str(child.id)))
                elif not ignore.file(rel) and child.current_version_id is not None:
                    tree.files[rel] = RemoteFile(
                        rel, str(child.id), str(child.current_version_id), child.size_bytes or 0
                    )
        return tree

    def _remote_folder(self, rel_dir: str) -> str:
        """The id of the remote folder at `rel_dir`, created (with its parents) if missing."""
        if not rel_dir:
            return self.root_id
        with self._lock:
            known = self.rfolders.get(rel_dir)
        if known is not None:
            return known
        parent = self._remote_folder(_rel_parent(rel_dir))
        folder = self.client.ensure_folder(posixpath.basename(rel_dir), parent)
        with self._lock:
            self.rfolders[rel_dir] = str(folder.id)
        return str(folder.id)

    # -- the local side ---------------------------------------------------------------------

    def _abs(self, rel: str) -> Path:
        return self.root.joinpath(*rel.split("/"))

    def _entry(self, rel: str, doc_id: object, version: Version) -> Entry:
        st = self._abs(rel).stat()
        return Entry(
            rel,
            str(doc_id),
            str(version.id),
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            version.checksum_sha256.lower(),
        )

    def _still(self, rel: str, local: LocalFile | None) -> None:
        """Raise Skip unless the local file is as the scan saw it (or still absent)."""
        path = self._abs(rel)
        try:
            st = path.stat()
        except FileNotFoundError:
            if local is None:
                return
            raise Skip("disappeared during the sync") from None
        if local is None:
            raise Skip("a local file appeared here during the sync")
        if (st.st_size, st.st_mtime_ns) != (local.size, local.mtime_ns):
            raise Skip("changed locally during the sync; synced next round")

    def _move_local(self, src: str, dest: str) -> None:
        target = self._abs(dest)
        if target.exists():
            raise Skip(f"cannot move to {dest}: something is already there")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self._abs(src), target)

    def _to_trash(self, rel: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = self.trash_dir / stamp / rel
        if dest.exists():
            dest = dest.with_name(f"{dest.name}.{secrets.token_hex(3)}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self._abs(rel), dest)

    def _purge_trash(self) -> None:
        if self.dry_run or not self.trash_dir.is_dir():
            return
        limit = time.time() - TRASH_DAYS * 86400
        for item in self.trash_dir.iterdir():
            with contextlib.suppress(OSError):
                if item.stat().st_mtime < limit:
                    shutil.rmtree(item)

    def _download(self, rel: str, doc_id: str, local: LocalFile | None) -> tuple[int, Entry]:
        """The document's current bytes at `rel`, via a verified temporary file: (size, the
        state row). Two requests: the download link names the version it serves (id, size,
        SHA-256) to check the bytes against; an older server's link does not, and the
        document is asked for first (three)."""
        link = self.client.download_link(doc_id)
        version = link.version(doc_id)
        if version is None:
            current = self.client.get_document(doc_id).current_version
            if current is None:
                raise Skip("the document has no version")
            version = current
            link = self.client.download_link(doc_id, version.id)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / secrets.token_hex(8)
        try:
            fetch_verified(self.client.http, link.url, tmp, version, None)
            self._still(rel, local)
            dest = self._abs(rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return version.size_bytes, self._entry(rel, doc_id, version)

    # -- executing the plan -----------------------------------------------------------------

    def _put(self, entry: Entry, old: str | None = None) -> None:
        with self._lock:
            if old is None or old == entry.path:
                self.state.put(entry)
                return
            with self.state.batch():  # one transaction: a kill leaves the row here or there
                self.state.put(entry)
                # Only if the old path is still this document's: in a swap (a→b, b→a) the
                # other move may have written its row there already.
                self.state.forget(old, doc_id=entry.doc_id)

    def _forget(self, path: str) -> None:
        with self._lock:
            self.state.forget(path)

    def _execute(self, report: Report, actions: list[Action]) -> None:
        """Make room first (renames, moves, deletes), then move bytes; new files in parallel."""

        def of(*kinds: str) -> list[Action]:
            return [a for a in actions if a.kind in kinds]

        for a in of("local_rename", "remote_rename"):
            self._run(report, a)
        self._local_moves(report, of("local_move"))
        self._remote_moves(report, of("remote_move"))
        for a in of("remote_delete", "local_trash", "forget"):
            self._run(report, a)
        for a in of("both_changed", "create_create", "upload"):
            if a.kind != "upload" or a.doc_id is not None:
                self._run(report, a)
        rest = [
            a for a in of("upload", "download", "record") if a.kind != "upload" or a.doc_id is None
        ]
        # New small files go many to a request (POST /files/batch), beside the rest.
        small = [a for a in rest if self._batchable(a)]
        tasks: list[Callable[[], None]] = [
            functools.partial(self._upload_batch, report, small[i : i + BATCH_FILES])
            for i in range(0, len(small), BATCH_FILES)
        ]
        batched = {id(a) for a in small}
        tasks += [functools.partial(self._run, report, a) for a in rest if id(a) not in batched]
        if len(tasks) > 1 and self.parallel > 1:
            with ThreadPoolExecutor(self.parallel) as pool:
                list(pool.map(lambda task: task(), tasks))
        else:
            for task in tasks:
                task()

    def _run(self, report: Report, a: Action) -> None:
        try:
            getattr(self, f"_do_{a.kind}")(report, a)
        except Skip as exc:
            self._fail(report, a.path, str(exc))
        except DocstoreError as exc:
            self._fail(report, a.path, f"{exc} ({exc.code})")
        except OSError as exc:
            self._fail(report, a.path, f"{exc.strerror or exc}")

    def _local_moves(self, report: Report, moves: list[Action]) -> None:
        """Every local move through a parking place first, so swaps and cycles work. A
        journal names where each parked file goes: a round killed half-way puts them there
        at the start of the next (`_unpark`), before anything is scanned."""
        if not moves:
            return
        park = self.state.dir / "moving"
        park.mkdir(exist_ok=True)
        names = [(a, secrets.token_hex(8)) for a in moves]
        journal = park / "journal.json"
        journal.write_text(json.dumps([[name, a.path, a.dest] for a, name in names]))
        parked: list[tuple[Action, Path]] = []
        for a, name in names:
            try:
                self._still(a.path, a.local)
                os.rename(self._abs(a.path), park / name)
                parked.append((a, park / name))
            except (Skip, OSError) as exc:
                self._fail(report, a.path, f"not moved: {exc}")
        self._crash_point("local_move")  # parked, not yet in place
        for a, spot in parked:
            assert a.dest is not None and a.base is not None
            dest = self._unpark_one(spot, a.dest)
            self._put(self._moved(a.base, dest), a.base.path)
            self._emit(report, "local_move", a.path, dest=dest)
        journal.unlink()

    def _unpark_one(self, spot: Path, dest: str) -> str:
        target = self._abs(dest)
        if target.exists():
            target = self._abs(conflict_name(dest, self._siblings(dest), self.label))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(spot, target)
        return target.relative_to(self.root).as_posix()

    def _recover(self) -> None:
        """Undo what a killed round left half-done: parked moves, partial downloads, and
        state rows that name a document twice."""
        self.state.drop_stale_rows()
        journal = self.state.dir / "moving" / "journal.json"
        if journal.exists():
            try:
                rows = json.loads(journal.read_text())
            except ValueError:
                rows = []
            for name, _src, dest in rows:
                parked = journal.parent / name
                if parked.exists():
                    self._unpark_one(parked, dest)  # the state still says src: seen as a move
            journal.unlink()
        if self.tmp_dir.is_dir():
            for leftover in self.tmp_dir.iterdir():  # never under a real name: just drop
                leftover.unlink(missing_ok=True)

    def _siblings(self, rel: str) -> list[str]:
        parent = self._abs(_rel_parent(rel))
        base = _rel_parent(rel)
        try:
            return [f"{base}/{n}" if base else n for n in os.listdir(parent)]
        except OSError:
            return []

    @staticmethod
    def _moved(e: Entry, dest: str) -> Entry:
        return Entry(dest, e.doc_id, e.version_id, e.size, e.mtime_ns, e.inode, e.sha256)

    def _remote_moves(self, report: Report, moves: list[Action]) -> None:
        """Server moves; one that finds its place taken waits for the others (swaps)."""
        pending = list(moves)
        for _ in range(len(moves) + 1):
            waiting: list[Action] = []
            for a in pending:
                try:
                    self._remote_move(a)
                    self._emit(report, "remote_move", a.path, dest=a.dest)
                except NameConflict:
                    waiting.append(a)
                except DocstoreError as exc:
                    self._fail(report, a.path, f"not moved on the server: {exc} ({exc.code})")
            if not waiting or len(waiting) == len(pending):
                pending = waiting
                break
            pending = waiting
        for a in pending:  # a cycle: go through a temporary name
            assert a.doc_id is not None
            try:
                temp = f"{posixpath.basename(a.path)}.{secrets.token_hex(4)}.moving"
                self.client.update_document(a.doc_id, name=temp)
                self._remote_move(a)
                self._emit(report, "remote_move", a.path, dest=a.dest)
            except DocstoreError as exc:
                self._fail(report, a.path, f"not moved on the server: {exc} ({exc.code})")

    def _place(self, doc_id: str, dest: str) -> None:
        """Rename and/or move a document to `dest` on the server."""
        folder = self._remote_folder(_rel_parent(dest))
        self.client.update_document(doc_id, name=posixpath.basename(dest), parent_folder_id=folder)

    def _remote_move(self, a: Action) -> None:
        assert a.dest is not None and a.doc_id is not None and a.base is not None
        self._place(a.doc_id, a.dest)
        self._crash_point("remote_move")  # moved on the server, not yet recorded
        self._put(self._moved(a.base, a.dest), a.base.path)

    # one method per action kind (see plan.ActionKind)

    def _do_local_rename(self, report: Report, a: Action) -> None:
        assert a.dest is not None
        self._still(a.path, a.local)
        self._move_local(a.path, a.dest)
        self._emit(report, "local_rename", a.path, dest=a.dest)

    def _do_remote_rename(self, report: Report, a: Action) -> None:
        assert a.dest is not None and a.doc_id is not None
        self._place(a.doc_id, a.dest)
        self._emit(report, "remote_rename", a.path, dest=a.dest)

    def _do_forget(self, report: Report, a: Action) -> None:
        self._forget(a.path)

    def _do_remote_delete(self, report: Report, a: Action) -> None:
        assert a.doc_id is not None and a.base is not None
        with contextlib.suppress(NotFound):
            self.client.delete_document(a.doc_id)
        self._forget(a.base.path)
        self._emit(report, "remote_delete", a.path)

    def _do_local_trash(self, report: Report, a: Action) -> None:
        assert a.base is not None
        self._still(a.path, a.local)
        self._to_trash(a.path)
        self._forget(a.base.path)
        self._emit(report, "local_trash", a.path)

    def _do_record(self, report: Report, a: Action) -> None:
        assert a.base is not None and a.local is not None
        e, lf = a.base, a.local
        # A move both sides already made (e.g. a server move that a kill -9 left unrecorded)
        # is recorded here: the row leaves its old path, or the next round would read that
        # row as "deleted here" and trash the document on the server.
        self._put(
            Entry(a.path, e.doc_id, e.version_id, lf.size, lf.mtime_ns, lf.inode, e.sha256),
            e.path,
        )

    def _do_download(self, report: Report, a: Action) -> None:
        assert a.doc_id is not None
        size, entry = self._download(a.path, a.doc_id, a.local)
        self._put(entry, a.base.path if a.base else None)
        self._emit(report, "download", a.path, bytes=size)

    def _upload(self, rel: str, local: LocalFile, **target: Any) -> Document:
        result = self.client.upload_file(
            self._abs(rel),
            checksum_sha256=local.sha256,
            state_dir=self.state.dir / "uploads",
            **target,
        )
        return result.document

    def _record_upload(self, rel: str, local: LocalFile, doc: Document, old: str | None) -> None:
        version = doc.current_version
        assert version is not None
        entry = Entry(
            rel, str(doc.id), str(version.id), local.size, local.mtime_ns, local.inode, local.sha256
        )
        self._put(entry, old)

    def _do_upload(self, report: Report, a: Action) -> None:
        assert a.local is not None
        if a.doc_id is None:  # a new document
            name = posixpath.basename(a.path)
            folder = self._remote_folder(_rel_parent(a.path))
            doc = self._upload(a.path, a.local, folder_id=folder, name=name)
            rel = a.path
            if doc.name != name:  # the server normalised the name: follow it
                rel = posixpath.join(_rel_parent(a.path), doc.name)
                self._move_local(a.path, rel)
            self._record_upload(rel, a.local, doc, a.base.path if a.base else None)
            self._emit(report, "upload", rel, bytes=a.local.size, new=True)
            return
        self._upload_version(report, a)

    def _batchable(self, a: Action) -> bool:
        return (
            a.kind == "upload"
            and a.doc_id is None
            and a.local is not None
            and a.local.size < self.batch_threshold
        )

    def _upload_batch(self, report: Report, actions: list[Action]) -> None:
        """New small files in one request, each at its path below the synced folder (the
        server creates missing folders); each succeeds or fails alone, as `_do_upload`."""
        files = []
        for a in actions:
            assert a.local is not None
            path, sha256 = self._abs(a.path), a.local.sha256
            files.append(BatchFile(path=a.path, content=path, checksum_sha256=sha256))
        try:
            items = self.client.upload_batch(files, folder_id=self.root_id)
        except DocstoreError as exc:
            for a in actions:
                self._fail(report, a.path, f"{exc} ({exc.code})")
            return
        except OSError as exc:
            for a in actions:
                self._fail(report, a.path, f"{exc.strerror or exc}")
            return
        for a, item in zip(actions, items, strict=True):
            assert a.local is not None
            if item.document is None:
                err = error_from_problem(item.status, item.error or {})
                self._fail(report, a.path, f"{err} ({err.code})")
                continue
            doc, rel = item.document, a.path
            if doc.name != posixpath.basename(a.path):  # the server normalised the name
                rel = posixpath.join(_rel_parent(a.path), doc.name)
                self._move_local(a.path, rel)
            self._record_upload(rel, a.local, doc, a.base.path if a.base else None)
            self._emit(report, "upload", rel, bytes=a.local.size, new=True)

    def _upload_version(self, report: Report, a: Action) -> None:
        """A new version on the base we started from; a stale base keeps both."""
        assert a.local is not None and a.base is not None and a.doc_id is not None
        doc = self._upload(
            a.path,
            a.local,
            document_id=a.doc_id,
            base_version_id=a.base.version_id,
            on_conflict="copy",
        )
        if str(doc.id) == a.doc_id:
            self._record_upload(a.path, a.local, doc, a.base.path)
            self._emit(report, "upload", a.path, bytes=a.local.size)
            return
        # The server kept the remote version under the name and saved ours as a copy with
        # its own name: the local file takes that name, the remote version comes down.
        copy = posixpath.join(_rel_parent(a.path), doc.name)
        self._move_local(a.path, copy)
        self._record_upload(copy, a.local, doc, None)
        self._forget(a.base.path)
        self._emit(report, "conflict", a.path, dest=copy)
        size, entry = self._download(a.path, a.doc_id, None)
        self._put(entry)
        self._emit(report, "download", a.path, bytes=size)

    def _do_both_changed(self, report: Report, a: Action) -> None:
        assert a.local is not None and a.doc_id is not None and a.base is not None
        doc = self.client.get_document(a.doc_id)
        current = doc.current_version
        if current is not None and current.checksum_sha256.lower() == a.local.sha256:
            self._record_upload(a.path, a.local, doc, a.base.path)  # the same edit on both
            return
        self._upload_version(report, a)

    def _do_create_create(self, report: Report, a: Action) -> None:
        assert a.local is not None and a.doc_id is not None
        doc = self.client.get_document(a.doc_id)
        current = doc.current_version
        if current is not None and current.checksum_sha256.lower() == a.local.sha256:
            self._record_upload(a.path, a.local, doc, None)
            return
        # Two different files appeared under one name: ours steps aside (named here, as the
        # server's copy names are only given to versions of an existing document).
        taken = [*self._siblings(a.path), posixpath.join(_rel_parent(a.path), doc.name)]
        copy = conflict_name(a.path, taken, self.label)
        self._still(a.path, a.local)
        self._move_local(a.path, copy)
        self._emit(report, "conflict", a.path, dest=copy)
        folder = self._remote_folder(_rel_parent(copy))
        uploaded = self._upload(copy, a.local, folder_id=folder, name=posixpath.basename(copy))
        self._record_upload(copy, a.local, uploaded, None)
        self._emit(report, "upload", copy, bytes=a.local.size, new=True)
        size, entry = self._download(a.path, a.doc_id, None)
        self._put(entry)
        self._emit(report, "download", a.path, bytes=size)
