"""`kill -9` of the real server in the middle of work, a restart on the same database and
storage, the janitor, and then the proof: fsck is clean, every quota is exact, every
committed version still downloads with its SHA-256, and (uploads) each user's change feed
names exactly the committed documents.

Once during 12 concurrent multipart uploads (PostgreSQL with local storage, and with S3 on
moto), once during a retention run (PostgreSQL with local storage). In both, a row lock held
by the test makes sure the kill lands while known requests are in the middle of their
transaction. The janitor (tests/faults/proof.py) runs every cleanup job with a clock three
days ahead, past every grace period, so anything the crash left behind must be found and
removed; then the documents, versions, blobs and quotas are compared with exact expectations.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from docstore.documents.models import Blob
from docstore.uploads.models import UploadSession
from tests.faults.helpers import API, Client, problem, sha256_hex
from tests.faults.proof import Store, janitor_and_proof
from tests.faults.sites import ADMIN, PART, Site, locked_waits

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

UPLOADS = 12  # 20 until the suite outgrew its time: the race needs a crowd, not 20
USERS = 4


@dataclass
class Job:
    """One upload of the crowd and how far it got before the crash."""

    user: Client
    name: str
    data: bytes
    started: dict[str, Any] | None = None
    parts: list[dict[str, Any]] | None = None
    completed: dict[str, Any] | None = None
    error: str | None = None


def _upload_until_killed(job: Job, barrier: threading.Barrier, finished: list[Job]) -> None:
    try:
        r = job.user.initiate(job.name, job.data)
        assert r.status_code == 201, r.text
        job.started = r.json()
        job.parts = job.user.put_parts(job.started, job.data)
        barrier.wait(60)  # every complete goes at once
        done = job.user.complete(job.started["upload_id"], job.parts)
        if done.status_code == 201:
            job.completed = done.json()
            finished.append(job)
        else:
            job.error = f"{done.status_code} {done.text[:200]}"
    except (httpx.HTTPError, threading.BrokenBarrierError, AssertionError) as exc:
        job.error = repr(exc)


def _leftovers(store: Store, jobs: list[Job]) -> dict[str, tuple[str, str | None, bool]]:
    """Per upload id: the session's state, its blob row's state, whether storage has its object."""
    svc = store.services()
    try:
        out = {}
        for job in jobs:
            assert job.started is not None
            with svc.database.transaction() as db:
                session = db.get_one(UploadSession, job.started["upload_id"])
                blob = None if session.blob_id is None else db.get(Blob, session.blob_id)
                state, blob_state, key = session.state, blob and blob.state, session.storage_key
            stored = key is not None and svc.store.head(key) is not None
            out[job.started["upload_id"]] = (state, blob_state, stored)
        return out
    finally:
        svc.close()


@pytest.mark.parametrize("site", ["local", "s3"], indirect=True)
def test_kill9_during_12_concurrent_multipart_uploads(site: Site) -> None:
    """All 12 completes go at once; one user's row is held locked, so that user's completes
    are known to be in flight at the kill (parts joined in storage, the last transaction
    waiting to charge the quota) while every other complete has answered. Half of the
    interrupted clients retry after the restart; the other half abandon their upload."""
    server = site.start()
    rng = random.Random(10)
    users = [Client.register(server.url, f"u{i}", timeout=60) for i in range(USERS)]
    cursors = {u.user_id: u.get(f"{API}/changes/cursor").json()["cursor"] for u in users}
    jobs = []
    for i in range(UPLOADS):
        # Two multi-part: one answered (i=1), one held and then abandoned (i=7).
        size = PART + rng.randrange(1, 100_000) if i % 6 == 1 else rng.randrange(1, 300_000)
        jobs.append(Job(users[i % USERS], f"file-{i}.bin", os.urandom(size)))
    held = users[-1]
    stuck = [j for j in jobs if j.user is held]
    assert any(len(j.data) > PART for j in stuck)  # a multi-part upload among them
    barrier = threading.Barrier(UPLOADS + 1)
    finished: list[Job] = []
    threads = [
        threading.Thread(target=_upload_until_killed, args=(job, barrier, finished)) for job in jobs
    ]
    for t in threads:
        t.start()
    with psycopg.connect(site.dsn, connect_timeout=5) as lock, psycopg.connect(site.dsn) as watch:
        watch.autocommit = True
        # Bounded waits, generous: on a loaded 2-core machine this phase took over a minute.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until every job's parts are in storage
            if barrier.n_waiting == UPLOADS or not any(t.is_alive() for t in threads):
                break
            threads[0].join(0.05)
        assert barrier.n_waiting == UPLOADS, [j.error for j in jobs]
        lock.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (held.user_id,))
        barrier.wait(60)  # every complete goes at once
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until the others answered and the held ones wait
            if len(finished) == UPLOADS - len(stuck) and len(locked_waits(watch)) == len(stuck):
                break
            threads[0].join(0.1)
        errors = {j.name: j.error for j in jobs if j.error}
        assert sorted(j.name for j in finished) == sorted(j.name for j in jobs if j not in stuck), (
            errors
        )
        # The held user's completes wait on its row (the charge), or on its root folder's
        # row (the name check), which the first of them holds while it waits on the user.
        waits = locked_waits(watch)
        assert len(waits) == len(stuck), waits
        site.kill9()
        lock.rollback()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    interrupted = [j for j in jobs if j.completed is None]
    assert interrupted == stuck, [j.error for j in jobs]
    assert all(j.started is not None and j.parts is not None for j in jobs)
    # Killed between joining the parts and the commit: each left its object in storage,
    # a pending blob row and a session still completing.
    left = _leftovers(site.store, interrupted)
    assert set(left.values()) == {("completing", "pending", True)}, left

    server = site.start()
    clients = {u.user_id: u.on(server.url) for u in users}
    for job in jobs:
        job.user = clients[job.user.user_id]
    # Half the interrupted clients come back and retry their complete; it must succeed.
    retried, abandoned = interrupted[::2], interrupted[1::2]
    assert any(len(j.data) > PART for j in abandoned)  # parts joined, then left to the janitor
    for job in retried:
        assert job.started is not None
        r = job.user.complete(job.started["upload_id"], job.parts)
        assert r.status_code == 201, r.text
        job.completed = r.json()
    # Completes that answered stay answered: a repeat gives the same document.
    for job in jobs:
        if job.completed is None:
            continue
        assert job.completed["current_version"]["checksum_sha256"] == sha256_hex(job.data)
        assert job.started is not None
        again = job.user.complete(job.started["upload_id"], job.parts)
        assert again.status_code == 201 and again.json()["id"] == job.completed["id"]
    proof = janitor_and_proof(site.store, clients)
    # Exactly the completed uploads are documents, each one version of its bytes; the
    # abandoned ones left nothing: no document, no charge, no blob, no object.
    kept = [j for j in jobs if j.completed is not None]
    assert len(kept) == UPLOADS - len(abandoned) == 11
    assert len(proof.versions) == len(kept)
    assert proof.blobs == sorted((sha256_hex(j.data), len(j.data)) for j in kept)
    for user_id, client in clients.items():
        mine = [j for j in kept if j.user.user_id == user_id]
        assert proof.by_owner(user_id) == {j.name: [sha256_hex(j.data)] for j in mine}
        assert client.used_bytes() == sum(len(j.data) for j in mine)
    # The change feed, read after the restart: one `created` for each committed upload
    # (the kill lost none), nothing for the uploads whose transaction died with the process.
    for user_id, client in clients.items():
        mine = [j for j in kept if j.user.user_id == user_id]
        feed = _changes_since(client, cursors[user_id])
        assert sorted((c["kind"], c["op"], c["id"]) for c in feed) == sorted(
            ("document", "created", j.completed["id"]) for j in mine if j.completed is not None
        )
    # The janitor expired exactly the abandoned sessions; completing one now finds nothing.
    assert proof.janitor["uploads.expire"]["expired"] == len(abandoned)
    assert set(_leftovers(site.store, abandoned).values()) == {("expired", None, False)}
    for job in abandoned:
        assert job.started is not None
        r = job.user.complete(job.started["upload_id"], job.parts)
        assert problem(r) == (404, "not_found"), r.text
    print(f"interrupted {len(interrupted)} of {UPLOADS}, {len(abandoned)} abandoned; {proof}")


def _changes_since(client: Client, cursor: str) -> list[dict[str, Any]]:
    """Every change of the client's feed after `cursor` (bounded: 100 pages)."""
    changes: list[dict[str, Any]] = []
    for _ in range(100):
        r = client.get(f"{API}/changes", params={"cursor": cursor, "limit": 1000})
        assert r.status_code == 200, r.text
        body = r.json()
        changes += body["changes"]
        cursor = body["cursor"]
        if not body["has_more"]:
            return changes
    raise AssertionError("the feed did not end within 100 pages")


def _admin(url: str) -> Client:
    http = httpx.Client(base_url=url, timeout=60, trust_env=False)
    r = http.post(f"{API}/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    body = r.json()
    return Client(url, body["token"], body["user"]["id"], http)


def test_kill9_during_a_retention_run(site: Site) -> None:
    server = site.start()
    admin = _admin(server.url)
    plan = {"quota_bytes": 10**9, "max_versions": 1, "retention_days": 0}
    assert admin.request("PUT", f"{API}/admin/plans/tiny", json=plan).status_code == 200
    users = [Client.register(server.url, f"r{i}") for i in range(3)]
    versions_before = 0
    for user in users:
        r = admin.request("PATCH", f"{API}/admin/users/{user.user_id}", json={"plan": "tiny"})
        assert r.status_code == 200, r.text
        for d in range(3):
            doc = user.put_file(f"doc-{d}.txt", os.urandom(1000 + d)).json()
            for _ in range(3):
                r = user.post(f"{API}/documents/{doc['id']}/versions", content=os.urandom(2000))
                assert r.status_code == 201, r.text
            versions_before += 4

    # Hold one owner's row: the run deletes versions and drops blob references, then
    # waits to release that owner's quota, in the middle of its transaction.
    with psycopg.connect(site.dsn, connect_timeout=5) as lock, psycopg.connect(site.dsn) as watch:
        watch.autocommit = True
        lock.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (users[-1].user_id,))
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(admin.post(f"{API}/admin/retention/run"))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        runner = threading.Thread(target=run)
        runner.start()
        for _ in range(600):  # bounded: until the run waits on the held row
            if locked_waits(watch):
                break
            runner.join(0.05)
        assert locked_waits(watch)
        site.kill9()
        lock.rollback()
        runner.join(60)
    assert isinstance(outcome[0], httpx.HTTPError)  # the run died with the server

    server = site.start()
    admin = admin.on(server.url)
    clients = {u.user_id: u.on(server.url) for u in users}
    # The killed run committed nothing: the whole cut is still to be made, exactly once.
    r = admin.post(f"{API}/admin/retention/run")
    assert r.status_code == 200, r.text
    assert r.json()["versions_deleted"] == versions_before - 9
    again = admin.post(f"{API}/admin/retention/run")
    assert problem(again) == (200, None) and again.json()["versions_deleted"] == 0
    proof = janitor_and_proof(site.store, clients)
    assert len(proof.versions) == 9
    print(proof)
