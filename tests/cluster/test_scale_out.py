"""Scale-out under failure, on a real local cluster (tests/cluster/conftest.py): replicas
starting together, a rolling restart under load, a server killed mid-upload, a worker killed
holding a job's lease, and Redis and PostgreSQL going away."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from docstore import migrate
from tests.cluster.conftest import SERVERS, WORKERS, Running
from tests.faults.helpers import API, Client, MiB, docstore, sha256_hex

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.xdist_group("cluster")]

CLIENTS = 16


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def pg(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A direct connection to the cluster's database (SQLAlchemy URL in)."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def run_docstore(running: Running, *args: str) -> Any:
    """The `docstore` command on the cluster's settings."""
    env = running.cluster.env() | {"DOCSTORE_DATA_DIR": str(running.cluster.root / "cli")}
    return docstore(env, *args, cwd=running.cluster.root)


def assert_fsck_clean(running: Running) -> None:
    out = run_docstore(running, "fsck", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_concurrent_first_start(running: Running) -> None:
    """3 servers and 2 workers started at the same instant on an empty database: all up,
    the schema migrated by exactly one of them, nobody crashed on the race."""
    cluster = running.cluster
    assert all(cluster.ready(i) for i in range(SERVERS))
    names = [f"server{i}" for i in range(SERVERS)] + [f"worker{i}" for i in range(WORKERS)]
    wait_until(
        lambda: all("worker " in cluster.log(f"worker{i}").read_text() for i in range(WORKERS)),
        120,
        "both workers running their loop",
    )
    assert all(cluster.alive(name) for name in names)
    logs = {name: cluster.log(name).read_text() for name in names}
    migrated = [name for name, text in logs.items() if "migrating the schema" in text]
    assert len(migrated) == 1, migrated
    for name, text in logs.items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"
    with pg(running.database_url) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert rows == [(migrate.head_revision(),)]
    check = run_docstore(running, "migrate", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "latest schema" in check.stdout
    # Through the balancer, a request reaches a server.
    assert httpx.get(f"{running.url}/readyz", timeout=10).status_code == 200


class Load:
    """CLIENTS users uploading, saving, sharing, listing and downloading through nginx,
    each on a thread of its own, until stopped; every answer that is not the one the API
    promises is kept in `failures`."""

    def __init__(self, url: str) -> None:
        with ThreadPoolExecutor(8) as pool:  # each registration hashes a password: slow
            self.users = list(
                pool.map(lambda i: Client.register(url, f"load{i}", timeout=60), range(CLIENTS))
            )
        self.emails = [u.get(f"{API}/users/me").json()["email"] for u in self.users]
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.counts: Counter[str] = Counter()
        self.docs: dict[tuple[int, int], str] = {}  # (user, document) -> current checksum
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)
        assert not any(t.is_alive() for t in self.threads)

    def _ok(self, op: str, r: httpx.Response, status: int) -> bool:
        with self.lock:
            if r.status_code != status:
                self.failures.append(f"{op}: {r.status_code} {r.text[:300]}")
                return False
            self.counts[op] += 1
        return True

    def _work(self, i: int) -> None:
        me, peer = self.users[i], (i + 1) % CLIENTS
        for n in range(100_000):
            if self.stop.is_set():
                return
            try:
                self._round(i, n, me, peer)
            except httpx.HTTPError as exc:
                with self.lock:
                    self.failures.append(f"user {i}: {type(exc).__name__}: {exc}")
            # A breath between rounds: 16 clients still keep every server busy, and the
            # server being restarted gets a core to start on (2 cores here).
            self.stop.wait(0.1)

    def _round(self, i: int, n: int, me: Client, peer: int) -> None:
        data = f"{i}-{n}-".encode() + os.urandom(4096)
        r = me.put_file(f"f{n}.bin", data)
        if not self._ok("upload", r, 201):
            return
        doc = r.json()
        new = data + b" saved"
        r = me.post(
            f"{API}/documents/{doc['id']}/versions",
            content=new,
            params={"base_version_id": doc["current_version"]["id"]},
        )
        if not self._ok("save", r, 201):
            return
        with self.lock:
            self.docs[(i, doc["id"])] = sha256_hex(new)
        body = {"document_id": doc["id"], "email": self.emails[peer], "permission": "VIEW"}
        self._ok("share", me.post(f"{API}/shares", json=body), 201)
        self._ok("shared read", self.users[peer].get(f"{API}/documents/{doc['id']}"), 200)
        self._ok("list", me.get(f"{API}/folders/root/children"), 200)
        r = me.get(f"{API}/documents/{doc['id']}/download", params={"redirect": "false"})
        if self._ok("download link", r, 200):
            got = httpx.get(r.json()["url"], timeout=60, trust_env=False)
            if self._ok("download", got, 200) and sha256_hex(got.content) != sha256_hex(new):
                self.failures.append(f"download of {doc['id']}: wrong bytes")


def test_rolling_restart_under_load(running: Running) -> None:
    """16 clients work through nginx while each server in turn is stopped (SIGTERM: it
    drains), waited for and started again: no client sees a 5xx or a failed request; then
    fsck is clean and every document downloads with its checksum."""
    cluster = running.cluster
    load = Load(running.url).start()
    try:
        wait_until(lambda: load.counts["download"] >= CLIENTS, 60, "the load running")
        for i in range(SERVERS):
            code = cluster.stop(f"server{i}", signal.SIGTERM)
            assert code in (0, -signal.SIGTERM), f"server{i} ended with {code}"
            assert "Finished server process" in cluster.log(f"server{i}").read_text()
            cluster.start_server(i)
        done = load.counts["download"]
        wait_until(lambda: load.counts["download"] >= done + CLIENTS, 60, "the load after")
    finally:
        load.finish()
    assert load.failures == [], load.failures[:20]
    for op in ("upload", "save", "share", "shared read", "list", "download"):
        assert load.counts[op] > 0, load.counts
    assert_fsck_clean(running)
    owners = {i: load.users[i] for i in range(CLIENTS)}

    def check(item: tuple[tuple[int, int], str]) -> bool:
        (user, doc_id), checksum = item
        return sha256_hex(owners[user].download(doc_id)) == checksum

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(check, load.docs.items()))
    assert len(results) == len(load.docs) > 0
    assert all(results)
    for user in load.users:
        user.close()


def test_node_loss_mid_upload(running: Running) -> None:
    """A server killed (-9) while it receives an upload: that upload is lost whole and
    nothing is charged; a multipart upload begun on it carries on through another server
    (via nginx) and completes byte-identical, charged once."""
    cluster = running.cluster
    me = Client.register(running.url, "nodeloss", timeout=60)
    on_server0 = me.on(cluster.server_url(0))
    before = me.used_bytes()

    def body() -> Any:
        yield b"x" * 65536
        cluster.stop("server0", signal.SIGKILL)
        for _ in range(64):
            yield b"x" * 65536

    with pytest.raises(httpx.HTTPError):
        on_server0.put_file("lost.bin", body())
    assert me.used_bytes() == before  # through nginx: another server answers

    cluster.start_server(0)
    data = os.urandom(12 * MiB)  # 3 parts of 5 MiB
    r = on_server0.initiate("big.bin", data)
    assert r.status_code == 201, r.text
    started = r.json()
    assert len(started["parts"]) == 3
    first = dict(started, parts=started["parts"][:1])
    rest = dict(started, parts=started["parts"][1:])
    parts = on_server0.put_parts(first, data)
    cluster.stop("server0", signal.SIGKILL)
    parts += me.put_parts(rest, data)
    done = me.complete(started["upload_id"], parts)
    assert done.status_code == 201, done.text
    doc = done.json()
    again = me.complete(started["upload_id"], parts)  # a client unsure it got through
    assert again.status_code in (201, 404, 409), again.text
    assert me.download(doc["id"]) == data
    mine = me.get(f"{API}/users/me").json()
    assert mine["used_bytes"] == before + len(data)
    assert mine["reserved_bytes"] == 0
    children = me.get(f"{API}/folders/root/children").json()["items"]
    assert [c["name"] for c in children] == ["big.bin"]
    cluster.start_server(0)
    me.close()
    on_server0.close()


def s3_object_exists(running: Running, key: str) -> bool:
    """Whether the cluster's bucket holds `key` (asked of moto directly)."""
    import boto3
    from botocore.exceptions import ClientError

    assert running.cluster.state is not None
    query = parse_qs(urlsplit(running.cluster.state.storage_url).query)
    s3 = boto3.client(
        "s3",
        endpoint_url=query["endpoint_url"][0],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    try:
        s3.head_object(Bucket="docstore-cluster", Key=key)
    except ClientError:
        return False
    return True


def test_worker_failover(running: Running) -> None:
    """The worker running the blob GC is killed (-9) in the middle of it (its claim held
    up on a table lock): the other worker takes the job once the lease runs out, and the
    result is an uninterrupted run's: the unreferenced blob deleted once, the referenced
    one kept, fsck clean."""
    cluster = running.cluster
    state = cluster.state
    assert state is not None
    me = Client.register(running.url, "failover", timeout=60)
    old, new = os.urandom(2048), os.urandom(2048)
    doc = me.put_file("gc.bin", old).json()
    saved = me.post(f"{API}/documents/{doc['id']}/versions", content=new)
    assert saved.status_code == 201, saved.text
    first = doc["current_version"]["id"]
    assert me.request("DELETE", f"{API}/documents/{doc['id']}/versions/{first}").status_code == 204
    with pg(running.database_url) as conn:
        gone_key, kept_key = (
            conn.execute(
                "SELECT storage_key FROM blobs WHERE sha256 = %s", (sha256_hex(d),)
            ).fetchone()[0]  # type: ignore[index]
            for d in (old, new)
        )
    assert s3_object_exists(running, gone_key)
    logs = {f"worker{i}": cluster.log(f"worker{i}").stat().st_size for i in range(WORKERS)}

    blocker = pg(running.database_url)
    blocker.autocommit = False
    blocker.execute("LOCK TABLE blobs IN EXCLUSIVE MODE")  # GC's claim (an UPDATE) waits
    try:
        holder: list[str] = []

        def gc_stuck() -> bool:
            with pg(running.database_url) as conn:
                row = conn.execute(
                    "SELECT holder FROM job_leases WHERE name = 'blobs.gc' AND holder IS NOT NULL"
                    " AND EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted"
                    " AND relation = 'blobs'::regclass)"
                ).fetchone()
            holder[:] = [row[0]] if row else []
            return bool(holder)

        wait_until(gc_stuck, 60, "the blob GC waiting on the lock, under a worker's lease")
        pid = int(holder[0].rsplit(":", 2)[1])
        victim = next(name for name, p in state.pids.items() if p == pid)
        assert victim.startswith("worker")
        cluster.stop(victim, signal.SIGKILL)
    finally:
        blocker.rollback()
        blocker.close()
    survivor = next(name for name in logs if name != victim)

    def deleted() -> bool:
        with pg(running.database_url) as conn:
            row = conn.execute("SELECT 1 FROM blobs WHERE storage_key = %s", (gone_key,))
            return row.fetchone() is None

    def gc_logged() -> bool:
        return "job blobs.gc finished" in cluster.log(survivor).read_text()[logs[survivor] :]

    try:
        wait_until(deleted, 60, "the other worker finishing the GC")
        # The row goes with the GC's commit; the job's result is logged a moment after (a
        # CI run read the log in between).
        wait_until(gc_logged, 30, "the other worker logging the GC's result")
        after = cluster.log(survivor).read_text()[logs[survivor] :]
        assert "'objects_deleted': 1" in after, after[-3000:]
        assert not s3_object_exists(running, gone_key)
        assert s3_object_exists(running, kept_key)
        assert me.download(doc["id"]) == new
        assert_fsck_clean(running)
    finally:  # the next tests expect every worker up, whatever this one found
        cluster.start_worker(int(victim.removeprefix("worker")))
    me.close()


def test_worker_stops_gracefully(running: Running) -> None:
    """SIGTERM to a worker: it finishes the job it runs, gives every lease back and exits 0
    (its successor need not wait for a lease to run out)."""
    cluster = running.cluster
    assert cluster.state is not None
    pid = cluster.state.pids["worker0"]
    # Its loop runs (after start-up: a worker restarted by an earlier test may still be
    # migrating and importing, when SIGTERM simply ends it).
    wait_until(lambda: f":{pid}:" in cluster.log("worker0").read_text(), 120, "worker0's job loop")
    code = cluster.stop("worker0", signal.SIGTERM)
    assert code == 0, cluster.log("worker0").read_text()[-3000:]
    with pg(running.database_url) as conn:
        held = conn.execute(
            "SELECT name, holder FROM job_leases WHERE holder LIKE %s", (f"%:{pid}:%",)
        ).fetchall()
    assert held == []
    cluster.start_worker(0)


def test_redis_outage(running: Running) -> None:
    """Redis stopped for 10 s under requests: permission decisions come from the database
    (a new share reads at once, on every server); a revoke that could not reach the caches
    is refused whole with the documented 503 `cache_unavailable` (nothing changed: the share
    still reads); once Redis is back, a revoke holds on the very next request everywhere."""
    cluster = running.cluster
    assert cluster.state is not None
    owner = Client.register(running.url, "owner", timeout=60)
    reader = Client.register(running.url, "reader", timeout=60)
    reader_email = reader.get(f"{API}/users/me").json()["email"]
    seen: list[int] = []

    def document(name: str) -> str:
        r = owner.put_file(name, name.encode())
        assert r.status_code == 201, r.text
        return f"{API}/documents/{r.json()['id']}"

    def share(path: str) -> int:
        body = {"document_id": int(path.rsplit("/", 1)[1]), "email": reader_email}
        r = owner.post(f"{API}/shares", json=body | {"permission": "VIEW"})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def reads(path: str, expected: int) -> None:
        for _ in range(SERVERS):  # round robin: each server once
            r = reader.get(path)
            seen.append(r.status_code)
            assert r.status_code == expected, r.text

    first, second = document("first.txt"), document("second.txt")
    first_share = share(first)
    reads(first, 200)  # now cached in Redis
    redis_port = int(urlsplit(cluster.state.redis_url).port or 0)
    cluster.stop("redis")
    down_since = time.monotonic()
    second_share = share(second)
    reads(second, 200)
    refused = owner.request("DELETE", f"{API}/shares/{first_share}")
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "cache_unavailable"
    while time.monotonic() - down_since < 10:
        reads(first, 200)
        reads(second, 200)
        time.sleep(0.5)
    cluster.start_redis(redis_port)
    for share_id, path in ((first_share, first), (second_share, second)):
        assert owner.request("DELETE", f"{API}/shares/{share_id}").status_code == 204
        reads(path, 404)
    assert all(code < 500 for code in seen)
    owner.close()
    reader.close()


def test_database_outage(running: Running) -> None:
    """PostgreSQL goes away (its connections cut, new ones refused): requests fail fast
    with 503 `database_unavailable`, /readyz says so; when it is back the pools reconnect,
    and nothing half-written remains (fsck clean, only what succeeded is charged)."""
    cluster = running.cluster
    me = Client.register(running.url, "dbdown", timeout=60)
    doc = me.put_file("before.txt", b"before").json()
    used = me.used_bytes()
    running.pg_proxy.refuse()
    try:
        started = time.monotonic()
        r = me.get(f"{API}/documents/{doc['id']}")
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "database_unavailable"
        r = me.put_file("during.txt", b"during the outage")
        assert r.status_code == 503, r.text
        assert time.monotonic() - started < 20  # fail fast: no wait for a timeout
        ready = httpx.get(f"{cluster.server_url(0)}/readyz", timeout=10, trust_env=False)
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        time.sleep(2)
    finally:
        running.pg_proxy.resume()

    def back() -> bool:
        return me.get(f"{API}/documents/{doc['id']}").status_code == 200

    wait_until(back, 60, "requests answered again")
    for _ in range(2 * SERVERS):
        assert me.get(f"{API}/documents/{doc['id']}").status_code == 200
    assert me.put_file("after.txt", b"after").status_code == 201
    assert me.used_bytes() == used + len(b"after")
    names = {c["name"] for c in me.get(f"{API}/folders/root/children").json()["items"]}
    assert names == {"before.txt", "after.txt"}
    assert all(cluster.ready(i) for i in range(SERVERS))
    assert all(cluster.alive(f"worker{i}") for i in range(WORKERS))
    assert_fsck_clean(running)
    me.close()
