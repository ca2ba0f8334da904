"""`kill -9` of the real server in the middle of work, a restart on the same database and
storage, the janitor, and then the proof: fsck is clean, every quota is exact and every
committed version still downloads with its SHA-256.

Once during 20 concurrent multipart uploads (PostgreSQL with local storage, and with S3 on
moto), once during a retention run (PostgreSQL with local storage). The janitor runs twice:
the registered jobs as of now, and again with a clock three days ahead, past every grace
period, so anything the crash left behind must be found and removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from sqlalchemy import func, select

from docstore.config import Settings
from docstore.db import utcnow
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.retention import fsck, gc
from docstore.services import Services
from docstore.uploads import tasks as upload_jobs
from docstore.users.models import User as UserRow
from tests.faults.helpers import API, Client, MiB, docstore, problem, sha256_hex
from tests.fixtures.s3 import unique_bucket
from tests.fixtures.server import ServerProcess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

UPLOADS = 20
USERS = 4
PART = 5 * MiB
ADMIN = ("admin@example.com", "admin pass word")


@dataclass
class Site:
    """One database and one storage, served by whichever server process is alive."""

    tmp: Path
    database_url: str
    env: dict[str, str]
    server: ServerProcess | None = None
    started: list[ServerProcess] = field(default_factory=list)

    def start(self) -> ServerProcess:
        self.server = start_server(self.tmp, self.database_url, self.env)
        self.started.append(self.server)
        return self.server

    def kill9(self) -> None:
        assert self.server is not None
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(30)

    def services(self) -> Services:
        settings = Settings(
            data_dir=self.tmp / "janitor",
            database_url=self.database_url,
            storage_url=self.env["DOCSTORE_STORAGE_URL"],
            secret_key="e2e-secret",
            run_jobs_in_server=False,
        )
        return Services.from_settings(settings)

    def cli_env(self) -> dict[str, str]:
        return {
            **self.env,
            "DOCSTORE_DATABASE_URL": self.database_url,
            "DOCSTORE_DATA_DIR": str(self.tmp / "cli"),
            "DOCSTORE_SECRET_KEY": "e2e-secret",
        }


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> Iterator[Site]:
    mode = getattr(request, "param", "local")
    if mode == "s3":
        moto = request.getfixturevalue("moto_endpoint")
        query = urlencode({"endpoint_url": moto, "region": "us-east-1", "create_bucket": "true"})
        storage = f"s3://{unique_bucket()}?{query}"
    else:
        storage = f"file://{tmp_path / 'blobs'}"
    env = {
        "DOCSTORE_STORAGE_URL": storage,
        "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
        "DOCSTORE_UPLOAD_PART_SIZE": str(PART),
        "DOCSTORE_ADMIN_EMAIL": ADMIN[0],
        "DOCSTORE_ADMIN_PASSWORD": ADMIN[1],
    }
    s = Site(tmp_path, pg_url, env)
    try:
        yield s
    finally:
        for server in s.started:
            server.stop()


def janitor_and_proof(site: Site, clients: dict[int, Client]) -> dict[str, Any]:
    """Run the cleanup jobs, then check fsck, quotas and every version's bytes."""
    svc = site.services()
    try:
        later = utcnow() + timedelta(days=3)
        done = {
            "uploads.expire": upload_jobs.expire_sessions(svc, now=later),
            "blobs.gc": gc.collect(svc.database, svc.store, svc.settings, now=later).as_dict(),
            "blobs.sweep": gc.sweep(svc.database, svc.store, svc.settings, now=later),
        }
        report = fsck.run(svc, now=later, rehash=True)
        assert report.ok, report.as_dict()
        with svc.database.transaction() as db:
            versions = db.execute(
                select(
                    DocumentVersion.id,
                    DocumentVersion.document_id,
                    DocumentVersion.size_bytes,
                    DocumentVersion.checksum_sha256,
                    Document.owner_id,
                ).join(Document, Document.id == DocumentVersion.document_id)
            ).all()
            used = dict(db.execute(select(UserRow.id, UserRow.used_bytes)).all())
            pending = db.scalar(
                select(func.count()).select_from(Blob).where(Blob.state != "active")
            )
            keys = set(db.scalars(select(Blob.storage_key)))
        assert pending == 0  # nothing half-uploaded or half-deleted is left
        assert {o.key for o in svc.store.iter_objects()} == keys  # and no stray object
        assert svc.store.list_multipart_uploads() == []
    finally:
        svc.close()
    # The command an operator runs agrees.
    out = docstore(site.cli_env(), "fsck", "--json", cwd=site.tmp)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["ok"] is True
    # Quotas are exact: the API's used_bytes is the sum of the owner's live versions.
    for user_id, client in clients.items():
        expected = sum(v.size_bytes for v in versions if v.owner_id == user_id)
        assert client.used_bytes() == expected == used[user_id]
    # Every committed version downloads, and its bytes hash to its SHA-256.
    for v in versions:
        data = clients[v.owner_id].download(v.document_id, v.id)
        assert len(data) == v.size_bytes
        assert hashlib.sha256(data).hexdigest() == v.checksum_sha256
    return {"janitor": done, "versions": len(versions)}


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


@pytest.mark.parametrize("site", ["local", "s3"], indirect=True)
def test_kill9_during_20_concurrent_multipart_uploads(site: Site) -> None:
    server = site.start()
    rng = random.Random(10)
    users = [Client.register(server.url, f"u{i}", timeout=60) for i in range(USERS)]
    jobs = []
    for i in range(UPLOADS):
        size = PART + rng.randrange(1, 100_000) if i % 5 == 0 else rng.randrange(1, 300_000)
        jobs.append(Job(users[i % USERS], f"file-{i}.bin", os.urandom(size)))
    barrier = threading.Barrier(UPLOADS + 1)
    finished: list[Job] = []
    threads = [
        threading.Thread(target=_upload_until_killed, args=(job, barrier, finished)) for job in jobs
    ]
    for t in threads:
        t.start()
    barrier.wait(120)
    for _ in range(2000):  # bounded: kill as soon as the first complete has answered
        if finished or not any(t.is_alive() for t in threads):
            break
        threads[0].join(0.005)
    site.kill9()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    interrupted = [j for j in jobs if j.completed is None]
    assert all(j.started is not None for j in jobs), [j.error for j in jobs]

    server = site.start()
    clients = {u.user_id: u.on(server.url) for u in users}
    for job in jobs:
        job.user = clients[job.user.user_id]
    # Half the interrupted clients come back and retry their complete; it must succeed.
    for job in interrupted[::2]:
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
    proof = janitor_and_proof(site, clients)
    # An abandoned upload either committed before the crash or left nothing behind.
    assert proof["versions"] >= sum(1 for j in jobs if j.completed is not None)
    print(f"interrupted {len(interrupted)} of {UPLOADS}; {proof}")


def _admin(url: str) -> Client:
    http = httpx.Client(base_url=url, timeout=60, trust_env=False)
    r = http.post(f"{API}/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    body = r.json()
    return Client(url, body["token"], body["user"]["id"], http)


def _waiting_on_a_lock(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchone()
    return int(row[0]) if row else 0


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
    dsn = site.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, connect_timeout=5) as lock, psycopg.connect(dsn) as watch:
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
            if _waiting_on_a_lock(watch):
                break
            runner.join(0.05)
        assert _waiting_on_a_lock(watch) > 0
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
    proof = janitor_and_proof(site, clients)
    assert proof["versions"] == 9
    print(proof)
