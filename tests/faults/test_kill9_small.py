"""`kill -9` of the server while a write group (documents.write_group) of small uploads is in
the middle of its transaction: no answered upload is lost, and nothing of the unanswered
ones stays (small files' bytes are rows of that transaction, storage.inline; a file placed
before it would be the storage sweep's).

A row lock held by the test on one user's row makes the group's transaction wait at that
user's quota charge, so the kill lands while known uploads are in a group that has stored
its bytes and not yet committed; uploads that arrive meanwhile queue behind it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from sqlalchemy import select

from docstore.documents.models import Blob
from docstore.storage.inline import inline_store
from tests.faults.helpers import Client
from tests.faults.proof import janitor_and_proof
from tests.faults.sites import Site, locked_waits

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@dataclass
class Small:
    user: Client
    name: str
    data: bytes
    status: int | None = None
    doc_id: int | None = None
    error: str | None = None


def _send(job: Small) -> None:
    try:
        r = job.user.put_file(job.name, job.data)
        job.status = r.status_code
        if r.status_code == 201:
            job.doc_id = int(r.json()["id"])
    except httpx.HTTPError as exc:  # the kill: no answer
        job.error = repr(exc)


def test_kill9_in_the_middle_of_a_write_group_loses_no_answered_upload(site: Site) -> None:
    server = site.start()
    free = [Client.register(server.url, f"free{i}", timeout=60) for i in range(2)]
    held = Client.register(server.url, "held", timeout=60)
    users = [*free, held]
    before = [
        Small(u, f"before-{k}.txt", f"before {k} {u.user_id}".encode())
        for k in range(3)
        for u in users
    ]
    for job in before:
        _send(job)
        assert job.status == 201, job.error
    during = [
        Small(users[k % 3], f"during-{k}.txt", hashlib.sha256(str(k).encode()).digest() * 64)
        for k in range(9)
    ]
    with psycopg.connect(site.dsn, connect_timeout=5) as lock, psycopg.connect(site.dsn) as watch:
        watch.autocommit = True
        lock.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (held.user_id,))
        threads = [threading.Thread(target=_send, args=(job,)) for job in during]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until a group's transaction waits on the row
            if locked_waits(watch):
                break
            time.sleep(0.1)
        assert locked_waits(watch), [j.error for j in during]
        # The free users' uploads in groups before the held one have answered by now; the
        # ones in that group or queued behind it have not.
        time.sleep(2)
        site.kill9()
        lock.rollback()
    for t in threads:
        t.join(60)
    answered = [j for j in before + during if j.status == 201]
    lost = [j for j in during if j.status is None]
    assert lost, "the kill must land while uploads wait"
    assert all(j.error is not None for j in lost)
    assert all(j.status in (201, None) for j in during), [(j.status, j.error) for j in during]
    assert any(j.user is held for j in lost)

    # Files: the killed group had stored its bytes before its transaction, objects no blob
    # row names, which only the storage sweep (in the janitor below) may delete. Kept in
    # the database (storage.inline: local storage, small files), its bytes were to be rows
    # of that transaction: nothing of them is left at all.
    svc = site.store.services()
    try:
        with svc.database.transaction() as db:
            keys = set(db.scalars(select(Blob.storage_key)))
        objects = {o.key for o in svc.store.iter_objects("")}
        inline = inline_store(svc.store) is not None
    finally:
        svc.close()
    if inline:
        assert all(job.data for job in lost) and max(len(j.data) for j in lost) < 65536
        assert objects and not objects - keys
        assert {k for k in objects if k.startswith("inline/")} == {
            k for k in keys if k.startswith("inline/")
        }
    else:
        assert objects - keys

    server = site.start()
    clients = {u.user_id: u.on(server.url) for u in users}
    proof = janitor_and_proof(site.store, clients)
    # Every answered upload is a document with its bytes. An unanswered one is whole or
    # absent: on PostgreSQL each upload of a group commits alone and is answered at once, so
    # one the kill caught between its commit and its answer may be there (whole, as any
    # request killed after its commit); the held user's, which waited on the row, are not.
    for user_id in clients:
        kept = proof.by_owner(user_id)
        mine = [j for j in answered if j.user.user_id == user_id]
        assert {j.name: kept.get(j.name) for j in mine} == {
            j.name: [hashlib.sha256(j.data).hexdigest()] for j in mine
        }
        sent = {
            j.name: [hashlib.sha256(j.data).hexdigest()] for j in lost if j.user.user_id == user_id
        }
        extra = {
            name: digests for name, digests in kept.items() if name not in {j.name for j in mine}
        }
        assert all(sent.get(name) == digests for name, digests in extra.items()), extra
    assert not any(proof.by_owner(held.user_id).get(j.name) for j in lost if j.user is held)
    for job in answered:
        assert job.doc_id is not None
        assert clients[job.user.user_id].download(job.doc_id) == job.data
    for client in clients.values():
        client.close()
