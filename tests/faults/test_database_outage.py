"""PostgreSQL going away under the real server: clean 503s while it is down, then healing.

The shared PostgreSQL is never restarted (other tests use it): the server reaches its
database through a loopback proxy, and the proxy is what goes down. "Restarted" is what a
restart looks like from the server: every connection reset, new ones refused, then back.
Afterwards the janitor runs and the kill -9 test's proof holds (tests/faults/proof.py): fsck
clean, storage holding exactly the committed versions' objects, exact quotas and bytes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.faults.helpers import API, Client, print_errors, problem, sha256_hex, through
from tests.faults.proof import Store, janitor_and_proof
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.server import ServerProcess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def server_via_proxy(
    tmp_path: Path, pg_url: str, make_proxy: Callable[[str, int], TcpProxy]
) -> Iterator[tuple[ServerProcess, TcpProxy, Store]]:
    proxy = make_proxy("127.0.0.1", 5432)
    env = {"DOCSTORE_RUN_JOBS_IN_SERVER": "false"}
    server = start_server(tmp_path, through(pg_url, proxy.address), env)
    try:
        # The janitor reaches the database directly, and the server's storage (its default).
        yield server, proxy, Store(pg_url, f"file://{server.data_dir / 'blobs'}", tmp_path)
    finally:
        server.stop()
        print_errors(server.log, "database error")


def _down_requests(ann: Client) -> list[httpx.Response]:
    """One of each kind: read, write, auth, upload."""
    anonymous = httpx.Client(base_url=ann.base, timeout=ann.http.timeout, trust_env=False)
    with anonymous:
        login = anonymous.post(
            f"{API}/auth/login", json={"email": "nobody@example.com", "password": "x" * 12}
        )
    return [
        ann.get(f"{API}/users/me"),
        ann.get(f"{API}/folders/root/children"),
        ann.put_file("during.txt", b"bytes"),
        ann.post(f"{API}/folders", json={"name": "new", "parent_id": None}),
        ann.initiate("big.bin", b"x" * 100),
        login,
    ]


def _pending_blobs(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("SELECT count(*) FROM blobs WHERE state = 'pending'").fetchone()
    return int(row[0]) if row else 0


def test_database_restart_gives_503_then_the_pool_recovers(
    server_via_proxy: tuple[ServerProcess, TcpProxy, Store],
) -> None:
    server, proxy, store = server_via_proxy
    ann = Client.register(server.url, "ann")
    data = os.urandom(5000)
    doc = ann.put_file("before.txt", data).json()
    # Several pooled connections, so the restart breaks more than one.
    threads = [threading.Thread(target=ann.used_bytes) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    used = ann.used_bytes()

    # A request in flight when the database goes: its query hangs, then the link is reset.
    proxy.stall()
    in_flight: list[httpx.Response] = []
    worker = threading.Thread(
        target=lambda: in_flight.append(ann.get(f"{API}/documents/{doc['id']}"))
    )
    held_before = proxy.held
    worker.start()
    for _ in range(300):  # bounded: until the server's query reaches the stalled link
        if proxy.held > held_before:
            break
        worker.join(0.05)
    assert proxy.held > held_before
    proxy.refuse()
    worker.join(30)
    assert not worker.is_alive()
    assert problem(in_flight[0]) == (503, "database_unavailable")

    # While it is down: every kind of request fails cleanly and at once.
    for r in _down_requests(ann):
        assert problem(r) == (503, "database_unavailable"), r.text
    health = httpx.get(f"{server.url}/healthz", timeout=30)
    assert health.status_code == 503 and health.json()["database"] == "unavailable"

    proxy.resume()
    # The very next requests succeed: pooled connections that died are replaced.
    for _ in range(3):
        assert ann.used_bytes() == used
    assert ann.download(doc["id"]) == data
    r = ann.put_file("after.txt", b"after")
    assert r.status_code == 201, r.text
    assert ann.used_bytes() == used + len(b"after")
    assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
    names = {i["name"] for i in ann.get(f"{API}/folders/root/children").json()["items"]}
    assert names == {"before.txt", "after.txt"}  # nothing from the outage got in

    # An upload in flight when the database goes: its pending blob row is committed and
    # its bytes go to storage, then the transaction that would make the document, and the
    # clean-up of the pending row, find no database. That row is the janitor's to find.
    dsn = store.database_url.replace("postgresql+psycopg://", "postgresql://")
    release = threading.Event()

    def body() -> Iterator[bytes]:
        yield os.urandom(64 * 1024)
        release.wait(60)
        yield os.urandom(64 * 1024)

    cut: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: cut.append(ann.put_file("cut.bin", body())))
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as watch:
        worker.start()
        for _ in range(600):  # bounded: until the upload's pending blob row is committed
            if _pending_blobs(watch):
                break
            worker.join(0.05)
        assert _pending_blobs(watch) == 1
        proxy.refuse()
        release.set()
        worker.join(60)
        assert not worker.is_alive()
        assert problem(cut[0]) == (503, "database_unavailable"), cut[0].text
        assert _pending_blobs(watch) == 1  # left for the janitor
    proxy.resume()
    assert ann.used_bytes() == used + len(b"after")

    # Whatever the failed requests left behind, the janitor finds it: exactly the two
    # committed documents remain, each charged once and whole, and fsck is clean.
    proof = janitor_and_proof(store, {ann.user_id: ann})
    print(proof.janitor)
    assert proof.by_owner(ann.user_id) == {
        "before.txt": [sha256_hex(data)],
        "after.txt": [sha256_hex(b"after")],
    }
    assert proof.blobs == sorted([(sha256_hex(data), len(data)), (sha256_hex(b"after"), 5)])
    assert ann.used_bytes() == len(data) + len(b"after")
    ann.close()
