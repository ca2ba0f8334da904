"""Effective-permission checks at scale on PostgreSQL: a folder tree 50 deep, 100,000
shares and 10,000 users, built with bulk SQL in a scratch database it creates and drops.

Prints, as one table, the latency of an effective-permission check (`level_for`, what
every endpoint calls) at p50/p99: cold (the database query; targets < 2 ms p99) and warm
(the cache: Redis when reachable, and the in-process cache; target < 0.3 ms p99), and the
request rate of `GET /documents/{id}` for a document shared through a folder 25 levels up,
against a real `docstore serve` process on 127.0.0.1 (with wrk when installed, else a small
Python load generator), with 1 and 2 server processes. Writes bench/results/permissions.json.

The 1 -> 2 process row for the shared GET is also in bench/run's table now (bench/perf/main.py,
"PostgreSQL + Redis, 1 -> 2 server processes"), measured in the same run as its peers.

Run: .venv/bin/python bench/permissions.py [--seconds 5] [--checks 3000]
(PostgreSQL from DOCSTORE_TEST_PG_DSN / DOCSTORE_TEST_PG_URL, Redis from
DOCSTORE_TEST_REDIS_URL, as the tests use them.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from docstore import migrate
from docstore.cache import MemoryCache, RedisCache
from docstore.context import Actor
from docstore.db import Database, utcnow
from docstore.security import hash_password
from docstore.sharing.permissions import Level, grant_params, grant_statement, level_for
from docstore.sharing.runtime import RUNTIME_KEY, GrantCache, SharingRuntime
from docstore.users.models import User

ADMIN_DSN = os.environ.get(
    "DOCSTORE_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
URL_BASE = os.environ.get("DOCSTORE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
REDIS_URL = os.environ.get("DOCSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = Path(__file__).parent / "results" / "permissions.json"

USERS = 10_000
DEPTH = 50
SHARES = 100_000
FOLDERS_PER_USER = 4
OWNER, READER = 1, 2  # the owner of the deep tree, and the user whose access is checked
HEAVY, HEAVY_SHARES = 3, 20_000  # a user with very many shares (VIEW near the chain's top)
READER_DEPTH = 25  # the reader's share is on the folder this deep in the owner's tree


def build(db: Database) -> dict[str, Any]:
    """Users, their folders, the deep chain, one document and 100,000 shares: set-based."""
    password_hash = hash_password("bench-password")
    with db.engine.begin() as conn:
        run = conn.execute
        run(
            text(
                "INSERT INTO plans (name, quota_bytes, max_versions, retention_days, created_at,"
                " updated_at) VALUES ('free', 10737418240, 100, 30, now(), now())"
            )
        )
        run(
            text(
                "INSERT INTO users (id, email, name, password_hash, is_admin, is_active,"
                " plan_name, quota_bytes, used_bytes, created_at)"
                " SELECT u, 'u' || u || '@bench.example', 'User ' || u, :pw, false, true,"
                " 'free', 10737418240, 0, now() FROM generate_series(1, :n) u"
            ),
            {"pw": password_hash, "n": USERS},
        )
        run(text("SELECT setval(pg_get_serial_sequence('users', 'id'), :n)"), {"n": USERS})
        run(
            text(
                "INSERT INTO folders (owner_id, parent_id, name, path, created_by, created_at,"
                " updated_at, is_deleted, trash_root)"
                " SELECT u, NULL, '', '/', u, now(), now(), false, false"
                " FROM generate_series(1, :n) u"
            ),
            {"n": USERS},
        )
        run(text("UPDATE folders SET path = '/' || id || '/' WHERE parent_id IS NULL"))
        run(
            text(
                "UPDATE users SET root_folder_id = f.id FROM folders f"
                " WHERE f.owner_id = users.id AND f.parent_id IS NULL"
            )
        )
        # Everyone's own folders, so shares spread over many folders of many owners.
        run(
            text(
                "INSERT INTO folders (owner_id, parent_id, name, path, created_by, created_at,"
                " updated_at, is_deleted, trash_root)"
                " SELECT r.owner_id, r.id, 'f' || k, r.path, r.owner_id, now(), now(), false,"
                " false FROM folders r CROSS JOIN generate_series(1, :k) k"
                " WHERE r.parent_id IS NULL"
            ),
            {"k": FOLDERS_PER_USER},
        )
        run(text("UPDATE folders SET path = path || id || '/' WHERE parent_id IS NOT NULL"))
        # The owner's chain, DEPTH folders deep.
        parent_id, path = run(
            text("SELECT id, path FROM folders WHERE owner_id = :o AND parent_id IS NULL"),
            {"o": OWNER},
        ).one()
        chain: list[int] = []
        for depth in range(1, DEPTH + 1):
            fid = run(
                text(
                    "INSERT INTO folders (owner_id, parent_id, name, path, created_by,"
                    " created_at, updated_at, is_deleted, trash_root)"
                    " VALUES (:o, :p, :name, '/', :o, now(), now(), false, false) RETURNING id"
                ),
                {"o": OWNER, "p": parent_id, "name": f"level{depth}"},
            ).scalar_one()
            path = f"{path}{fid}/"
            run(text("UPDATE folders SET path = :path WHERE id = :id"), {"path": path, "id": fid})
            chain.append(fid)
            parent_id = fid
        # One document (with one version) at the bottom of the chain.
        blob_id = run(
            text(
                "INSERT INTO blobs (storage_key, sha256, size_bytes, verified, damaged, state,"
                " ref_count, created_at, delete_attempts) VALUES ('blobs/bench', :sha, 5,"
                " true, false, 'active', 1, now(), 0) RETURNING id"
            ),
            {"sha": hashlib.sha256(b"bench").hexdigest()},
        ).scalar_one()
        doc_id = run(
            text(
                "INSERT INTO documents (owner_id, folder_id, name, mime_type, last_version_number,"
                " created_by, created_at, updated_at, is_deleted, trash_root)"
                " VALUES (:o, :f, 'deep.txt', 'text/plain', 1, :o, now(), now(), false, false)"
                " RETURNING id"
            ),
            {"o": OWNER, "f": chain[-1]},
        ).scalar_one()
        version_id = run(
            text(
                "INSERT INTO document_versions (document_id, version_number, blob_id, size_bytes,"
                " checksum_sha256, created_by, created_at, keep_forever, is_damaged)"
                " VALUES (:d, 1, :b, 5, :sha, :o, now(), false, false) RETURNING id"
            ),
            {"d": doc_id, "b": blob_id, "sha": hashlib.sha256(b"bench").hexdigest(), "o": OWNER},
        ).scalar_one()
        run(
            text("UPDATE documents SET current_version_id = :v WHERE id = :d"),
            {"v": version_id, "d": doc_id},
        )
        # The reader: COMMENT on a folder halfway down the chain, a few grants elsewhere.
        run(
            text(
                "INSERT INTO shares (folder_id, kind, shared_with_user_id, shared_with_email,"
                " permission, created_by, created_at, updated_at, is_active)"
                " VALUES (:f, 'user', :u, 'u' || :u || '@bench.example', 2, :o, now(), now(),"
                " true)"
            ),
            {"f": chain[READER_DEPTH - 1], "u": READER, "o": OWNER},
        )
        # 5,000 other users hold shares spread over the chain (its folders are popular).
        run(
            text(
                "INSERT INTO shares (folder_id, kind, shared_with_user_id, permission, created_by,"
                " created_at, updated_at, is_active)"
                " SELECT (:chain)[1 + (u % :depth)], 'user', u, 1 + (u % 3), :o, now(), now(),"
                " true FROM generate_series(3, 5002) u"
            ),
            {"chain": chain, "depth": DEPTH, "o": OWNER},
        )
        # The rest: random folders of random owners to random users; a tenth revoked and a
        # tenth expired (they stay in the table and the index, and must not count).
        # One user holds 20,000 shares: a check must not cost more for them.
        run(
            text(
                "WITH pool AS (SELECT array_agg(id) AS ids FROM folders"
                "  WHERE parent_id IS NOT NULL AND owner_id <> :o)"
                " INSERT INTO shares (folder_id, kind, shared_with_user_id, permission,"
                " created_by, created_at, updated_at, is_active)"
                " SELECT ids[1 + floor(random() * array_length(ids, 1))::int], 'user', :u,"
                " 1 + (g % 3), 1, now(), now(), true"
                " FROM generate_series(1, :k) g, pool"
            ),
            {"o": OWNER, "u": HEAVY, "k": HEAVY_SHARES},
        )
        rest = SHARES - 1 - 5000 - HEAVY_SHARES
        run(
            text(
                "WITH pool AS (SELECT array_agg(id) AS ids FROM folders"
                "  WHERE parent_id IS NOT NULL AND owner_id <> :o),"
                " pick AS (SELECT g, (SELECT ids FROM pool) AS ids,"
                "  2 + floor(random() * (:n - 1))::bigint AS uid FROM generate_series(1, :rest) g)"
                " INSERT INTO shares (folder_id, kind, shared_with_user_id, permission,"
                " created_by, created_at, updated_at, is_active, expires_at)"
                " SELECT ids[1 + floor(random() * array_length(ids, 1))::int], 'user', uid,"
                " 1 + (g % 3), 1, now(), now(), g % 10 <> 0,"
                " CASE WHEN g % 10 = 5 THEN now() - interval '1 day' END FROM pick"
            ),
            {"o": OWNER, "n": USERS, "rest": rest},
        )
        token = secrets.token_urlsafe(32)
        run(
            text(
                "INSERT INTO api_tokens (user_id, token_hash, kind, created_at, expires_at)"
                " VALUES (:u, :h, 'api', now(), now() + interval '1 day')"
            ),
            {"u": READER, "h": hashlib.sha256(token.encode()).hexdigest()},
        )
        counts = {
            t: run(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608 (fixed names)
            for t in ("users", "folders", "shares")
        }
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    return {"chain_path": path, "document_id": doc_id, "token": token, "counts": counts}


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # noqa: E731 - a one-line helper
    return {"p50_ms": p(0.50), "p99_ms": p(0.99), "mean_ms": statistics.fmean(ordered) / 1e6}


def time_checks(
    db: Database,
    runtime: SharingRuntime | None,
    world: dict[str, Any],
    n: int,
    user_id: int = READER,
    expect: Level = Level.COMMENT,
) -> dict[str, float]:
    """Latency of `level_for` for a user on the deep document (warmed up first)."""
    with db.sessionmaker() as session:
        if runtime is not None:
            session.info[RUNTIME_KEY] = runtime
        else:
            session.info.pop(RUNTIME_KEY, None)
        actor = Actor(user=session.get_one(User, user_id))
        path, doc_id = world["chain_path"], world["document_id"]
        check: Callable[[], Level] = lambda: level_for(  # noqa: E731 - closes over the loop's row
            session, actor, OWNER, path, doc_id
        )
        for _ in range(50):
            assert check() == expect
        samples = []
        for _ in range(n):
            start = time.perf_counter_ns()
            check()
            samples.append(time.perf_counter_ns() - start)
        session.rollback()
    return _percentiles(samples)


def time_round_trip(db: Database, n: int) -> dict[str, float]:
    """`SELECT 1` through the same session machinery: the floor under any database check."""
    with db.sessionmaker() as session:
        for _ in range(50):
            session.execute(text("SELECT 1"))
        samples = []
        for _ in range(n):
            start = time.perf_counter_ns()
            session.execute(text("SELECT 1")).scalar_one()
            samples.append(time.perf_counter_ns() - start)
    return _percentiles(samples)


def explain_query(db: Database, world: dict[str, Any], n: int, user_id: int) -> dict[str, Any]:
    """PostgreSQL's own execution time of the check's query (EXPLAIN ANALYZE), and the
    indexes its plan uses: the database's share of a cold check, free of client overhead."""
    stmt = grant_statement(db.engine.dialect.name)
    params = grant_params(user_id, world["chain_path"], world["document_id"], utcnow())
    compiled = stmt.compile(dialect=db.engine.dialect)
    sql = "EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled)
    samples, indexes = [], set()
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur:
            for _ in range(n):
                cur.execute(sql, compiled.construct_params(params))
                plan = cur.fetchone()[0][0]
                samples.append(int(plan["Execution Time"] * 1e6))
                indexes |= set(re.findall(r'"Index Name": "([^"]+)"', json.dumps(plan)))
    return {**_percentiles(samples), "indexes": sorted(indexes)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, redis_url: str | None, workers: int, data_dir: Path) -> tuple[Any, str]:
    """Start `docstore serve` on 127.0.0.1 and wait until it answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
    env |= {
        "DOCSTORE_DATA_DIR": str(data_dir),
        "DOCSTORE_DATABASE_URL": url,
        "DOCSTORE_SECRET_KEY": "bench-secret",
        "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
    }
    if redis_url:
        env["DOCSTORE_REDIS_URL"] = redis_url
    log = (data_dir / f"server-{port}.log").open("wb")
    cmd = [sys.executable, "-m", "docstore.cli.main", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"docstore serve did not start; see {log.name}")


def load(base: str, path: str, token: str, seconds: float) -> dict[str, float]:
    """Requests per second (and latency) of GET `path` with a bearer token, for `seconds`."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [wrk, "-t1", "-c8", f"-d{seconds:.0f}s", "--latency", "-H",
             f"Authorization: Bearer {token}", f"{base}{path}"],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout  # fmt: skip
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        return {
            "requests_per_s": rate,
            "p50_ms": _wrk_ms(out, "50%"),
            "p99_ms": _wrk_ms(out, "99%"),
            "errors": int(bad.group(1)) if bad else 0,
            "tool": "wrk -t1 -c8",  # type: ignore[dict-item]
        }
    return _python_load(base, path, token, seconds)


def _wrk_ms(out: str, which: str) -> float:
    m = re.search(rf"{re.escape(which)}\s+([\d.]+)(us|ms|s)\b", out)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def _python_load(base: str, path: str, token: str, seconds: float) -> dict[str, float]:
    samples: list[int] = []
    errors = 0
    end = time.monotonic() + seconds
    lock = threading.Lock()

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            for _ in range(1_000_000):  # bounded; the clock ends it
                if time.monotonic() >= end:
                    return
                start = time.perf_counter_ns()
                status = c.get(path).status_code
                with lock:
                    samples.append(time.perf_counter_ns() - start)
                    errors += status != 200

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"requests_per_s": len(samples) / seconds, **_percentiles(samples), "errors": errors}


def _redis_prefix_url() -> tuple[str | None, str]:
    prefix = f"docstore-bench:{secrets.token_hex(6)}:"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return None, prefix
    sep = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{sep}prefix={prefix}", prefix


def _clear_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load duration per run")
    parser.add_argument("--checks", type=int, default=3000, help="timed checks per row")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    name = f"docstore_bench_perm_{os.getpid()}"
    admin = psycopg.connect(ADMIN_DSN, autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    url = URL_BASE + name
    redis_url, prefix = _redis_prefix_url()
    console = Console()
    rows: list[dict[str, Any]] = []
    try:
        db = Database(url)
        migrate.upgrade(db.engine)
        t0 = time.perf_counter()
        world = build(db)
        built = time.perf_counter() - t0
        console.print(f"built {world['counts']} in {built:.1f} s (chain depth {DEPTH})")

        plan = explain_query(db, world, min(args.checks, 1000), READER)
        rows.append({"what": "check query, PostgreSQL execution (EXPLAIN ANALYZE)", **plan})
        heavy_plan = explain_query(db, world, min(args.checks, 1000), HEAVY)
        rows.append({"what": f"the same, user with {HEAVY_SHARES:,} shares", **heavy_plan})
        rows.append({"what": "baseline: SELECT 1 round trip", **time_round_trip(db, args.checks)})
        rows.append({"what": "check, cold (database)", **time_checks(db, None, world, args.checks)})
        heavy = time_checks(db, None, world, args.checks, HEAVY, Level.VIEW)
        rows.append({"what": f"check, cold, a user with {HEAVY_SHARES:,} shares", **heavy})
        if redis_url:
            warm = SharingRuntime(
                cache=RedisCache(redis_url), grants=GrantCache(RedisCache(redis_url))
            )
            rows.append(
                {"what": "check, warm (Redis)", **time_checks(db, warm, world, args.checks)}
            )
        memory = MemoryCache()
        local = SharingRuntime(cache=memory, grants=GrantCache(memory))
        rows.append(
            {"what": "check, warm (in-process)", **time_checks(db, local, world, args.checks)}
        )
        db.dispose()

        path = f"/api/v1/documents/{world['document_id']}"
        with tempfile.TemporaryDirectory() as tmp:
            for workers in (1, 2):
                proc, base = serve(url, redis_url, workers, Path(tmp))
                try:
                    r = httpx.get(
                        base + path, headers={"Authorization": f"Bearer {world['token']}"}
                    )
                    assert r.status_code == 200 and r.json()["permission"] == "COMMENT", r.text
                    result = load(base, path, world["token"], args.seconds)
                    baseline = load(base, "/api/v1/users/me", world["token"], args.seconds)
                finally:
                    proc.terminate()
                    proc.wait(30)
                cache = "Redis" if redis_url else "no cache"
                rows.append({"what": f"GET /documents/{{id}}, {workers} process(es), {cache}",
                             **result})  # fmt: skip
                rows.append({"what": f"baseline: GET /users/me, {workers} process(es)",
                             **baseline})  # fmt: skip
    finally:
        if args.keep:
            console.print(f"kept database {name}")
        else:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        if redis_url:
            _clear_prefix(prefix)

    table = Table(title=f"Permission checks: {USERS:,} users, {SHARES:,} shares, depth {DEPTH}")
    for col in ("what", "p50 ms", "p99 ms", "requests/s"):
        table.add_column(col, justify="left" if col == "what" else "right")
    for row in rows:
        rate = row.get("requests_per_s")
        table.add_row(
            row["what"], f"{row['p50_ms']:.3f}", f"{row['p99_ms']:.3f}",
            f"{rate:,.0f}" if rate is not None else "",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"indexes in the check's plan: {', '.join(plan['indexes'])};"
        f" for the user with many shares: {', '.join(heavy_plan['indexes'])}"
    )
    console.print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "users": USERS,
                "shares": SHARES,
                "depth": DEPTH,
                "counts": world["counts"],
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg()[0],
                "rows": rows,
            },
            indent=2,
        )
    )
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
