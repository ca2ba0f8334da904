"""The convergence property of `docstore sync`, as a hypothesis state machine.

Two sync clients (two laptops of one account, folders A and B) and a third party writing
through the API make random creates, edits, renames, moves and deletes (files and folders),
interleaved with sync rounds, some of them interrupted part-way (an exception out of the
event hook: the round stops between two actions, as after a kill). After every quiescent
round (A, B, A … until a pass changes nothing, bounded):
- A, B and the server hold the same tree (names and bytes);
- every content any party ever wrote is still somewhere: the current trees, a version on
  the server (trashed documents included), a conflict copy, or a local trash;
- no document has two consecutive versions with the same bytes (no version for unchanged
  content).
Every write is unique content, so "still somewhere" is exact. Names come from two disjoint
pools (files vs folders, with a case-folding pair), so a file and a folder never claim one
name here; that clash (the newer one takes a conflict name) has its own tests in
test_sync_scenarios.py and test_plan.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import create_engine, text

from docstore.client import DocstoreClient, DocstoreError
from docstore.client.sync import Syncer
from docstore.client.sync.state import STATE_DIR
from tests.fixtures.server import DATABASE_URLS, ServerProcess
from tests.sync.helpers import local_tree, new_client, remote_files, remote_tree, same_user

FILES = ["a.txt", "b.md", "D.txt", "d.txt"]
DIRS = ["x", "y"]
PATHS = [*FILES, *(f"{d}/{f}" for d in DIRS for f in FILES[:2])]
PARTIES = ["A", "B", "api"]
REMOTE = "/Sync"
_counter = itertools.count()


class _Stop(Exception):
    """Thrown out of a sync round to interrupt it between two actions."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SyncMachine(RuleBasedStateMachine):
    server: ServerProcess  # set by the test

    @initialize()
    def start(self) -> None:
        self.api = new_client(self.server, "third")
        self.clients = {"A": same_user(self.api), "B": same_user(self.api)}
        self.tmp = Path(tempfile.mkdtemp(prefix="sync-prop-"))
        self.dirs = {p: self.tmp / p for p in ("A", "B")}
        for d in self.dirs.values():
            d.mkdir()
        self.root_id = self.api.makedirs(REMOTE).id
        self.written: set[str] = set()  # SHA-256 of every content any party wrote
        # Local writes no sync has seen yet: if their author deletes or overwrites them
        # first, no client could have kept them, so they leave `written`.
        self.unsynced: dict[str, dict[str, str]] = {"A": {}, "B": {}}

    def teardown(self) -> None:
        if hasattr(self, "tmp"):
            try:
                self.settle()
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)
                for c in [self.api, *self.clients.values()]:
                    c.close()

    # -- helpers ----------------------------------------------------------------------------

    def _content(self, party: str) -> bytes:
        data = f"{party} wrote #{next(_counter)}\n".encode()
        self.written.add(_sha(data))
        return data

    def _lose_unsynced(self, party: str, path: str) -> None:
        """`path` (a file or a folder) of a local party is deleted or overwritten."""
        pending = self.unsynced[party]
        for p in [p for p in pending if p == path or p.startswith(path + "/")]:
            self.written.discard(pending.pop(p))

    def _files(self, party: str) -> list[str]:
        if party == "api":
            return sorted(remote_files(self.api, self.root_id))
        return sorted(local_tree(self.dirs[party]))

    def _sync(self, party: str, stop_after: int | None = None) -> None:
        seen = itertools.count()

        def hook(event: dict[str, object]) -> None:
            if stop_after is not None and next(seen) >= stop_after:
                raise _Stop

        with Syncer(self.clients[party], self.dirs[party], REMOTE, on_event=hook) as s:
            try:
                if s.run_once().ok:
                    self.unsynced[party].clear()
            except _Stop:
                pass

    # -- what people do ---------------------------------------------------------------------

    @rule(party=st.sampled_from(PARTIES), path=st.sampled_from(PATHS))
    def create(self, party: str, path: str) -> None:
        data = self._content(party)
        if party == "api":
            folder = self.api.makedirs(f"{REMOTE}/{posixpath.dirname(path)}").id
            try:
                self.api.upload_bytes(posixpath.basename(path), data, folder_id=folder)
            except DocstoreError:
                self.written.discard(_sha(data))  # the name was taken: nothing written
            return
        target = self.dirs[party] / path
        if target.exists():
            self.written.discard(_sha(data))
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.unsynced[party][path] = _sha(data)

    @rule(party=st.sampled_from(PARTIES), pick=st.integers(0, 50))
    def edit(self, party: str, pick: int) -> None:
        files = self._files(party)
        if not files:
            return
        path = files[pick % len(files)]
        data = self._content(party)
        if party == "api":
            doc = self.api.resolve(f"{REMOTE}/{path}")
            self.api.save_version(doc.id, data)
            return
        target = self.dirs[party] / path
        self._lose_unsynced(party, path)
        target.write_bytes(data)
        self.unsynced[party][path] = _sha(data)
        # A second write within the same mtime tick is what size+mtime cannot see; a real
        # editor's save takes longer than that. Move mtime on so the scan does see it.
        st_ = target.stat()
        os.utime(target, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000))

    @rule(party=st.sampled_from(PARTIES), pick=st.integers(0, 50), dest=st.sampled_from(PATHS))
    def move(self, party: str, pick: int, dest: str) -> None:
        files = self._files(party)
        if not files:
            return
        path = files[pick % len(files)]
        if party == "api":
            doc = self.api.resolve(f"{REMOTE}/{path}")
            folder = self.api.makedirs(f"{REMOTE}/{posixpath.dirname(dest)}").id
            with contextlib.suppress(DocstoreError):  # the place is taken
                self.api.update_document(
                    doc.id, name=posixpath.basename(dest), parent_folder_id=folder
                )
            return
        src, target = self.dirs[party] / path, self.dirs[party] / dest
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, target)
        if path in self.unsynced[party]:
            self.unsynced[party][dest] = self.unsynced[party].pop(path)

    @rule(party=st.sampled_from(PARTIES), pick=st.integers(0, 50))
    def delete(self, party: str, pick: int) -> None:
        files = self._files(party)
        if not files:
            return
        path = files[pick % len(files)]
        if party == "api":
            self.api.delete_document(self.api.resolve(f"{REMOTE}/{path}").id)
        else:
            self._lose_unsynced(party, path)
            (self.dirs[party] / path).unlink()

    @rule(party=st.sampled_from(PARTIES), folder=st.sampled_from(DIRS))
    def delete_folder(self, party: str, folder: str) -> None:
        if party == "api":
            with contextlib.suppress(DocstoreError):  # no such folder
                self.api.delete_folder(self.api.resolve(f"{REMOTE}/{folder}").id)
        else:
            self._lose_unsynced(party, folder)
            shutil.rmtree(self.dirs[party] / folder, ignore_errors=True)

    @rule(party=st.sampled_from(["A", "B"]))
    def sync(self, party: str) -> None:
        self._sync(party)

    @rule(party=st.sampled_from(["A", "B"]), after=st.integers(0, 3))
    def interrupted_sync(self, party: str, after: int) -> None:
        self._sync(party, stop_after=after)

    @precondition(lambda self: hasattr(self, "tmp"))
    @rule()
    def settle(self) -> None:
        """A quiescent round, then the invariants."""
        for _ in range(6):
            changed = False
            for party in ("A", "B"):
                with Syncer(self.clients[party], self.dirs[party], REMOTE) as s:
                    report = s.run_once()
                if report.ok:
                    self.unsynced[party].clear()
                changed = changed or report.changed or not report.ok
            if not changed:
                break
        else:
            raise AssertionError("no quiescence after 6 passes")
        a, b = local_tree(self.dirs["A"]), local_tree(self.dirs["B"])
        server = remote_tree(self.api, REMOTE)
        assert a == b == server
        kept = {_sha(v) for v in a.values()}
        for d in self.dirs.values():
            trash = d / STATE_DIR / "trash"
            kept |= {_sha(p.read_bytes()) for p in trash.rglob("*") if p.is_file()}
        versions = server_versions(self.server, self.api)
        kept |= {sha for _, _, sha in versions}
        assert self.written <= kept, "a write was lost"
        by_doc: dict[int, list[tuple[int, str]]] = {}
        for doc, number, sha in versions:
            by_doc.setdefault(doc, []).append((number, sha))
        for rows in by_doc.values():
            shas = [sha for _, sha in sorted(rows)]
            assert all(x != y for x, y in itertools.pairwise(shas)), "a version of unchanged bytes"


def server_versions(server: ServerProcess, client: DocstoreClient) -> list[tuple[int, int, str]]:
    """(document, number, SHA-256) of every version the user owns, trashed documents too."""
    engine = create_engine(DATABASE_URLS[server.url])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT v.document_id, v.version_number, v.checksum_sha256 "
                    "FROM document_versions v JOIN documents d ON d.id = v.document_id "
                    "WHERE d.owner_id = :owner"
                ),
                {"owner": client.me().id},
            )
            return [(int(r[0]), int(r[1]), str(r[2]).lower()) for r in rows]
    finally:
        engine.dispose()


def test_two_clients_and_the_api_converge_without_losing_a_byte(
    sync_server: ServerProcess,
) -> None:
    SyncMachine.server = sync_server
    run_state_machine_as_test(
        SyncMachine,
        settings=settings(
            max_examples=int(os.environ.get("SYNC_PROPERTY_EXAMPLES", "10")),
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            # No shrinking: a failure prints its steps, and shrinking a sync run would take
            # minutes of real server calls.
            phases=[Phase.explicit, Phase.generate],
        ),
    )


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
