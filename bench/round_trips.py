"""Round trips per `GET /documents/{id}` of a shared document on PostgreSQL + Redis.

Counts, inside one app process (the real app and lifespan through Starlette's TestClient,
a scratch PostgreSQL database, Redis), what each request sends to a server and waits for:
checkouts of the (sync) pool (each a pre-ping `SELECT 1`), its BEGINs (psycopg sends its
own) and COMMITs/ROLLBACKs, statements on any engine, and Redis commands. Requests run one
after another, so the audit group commit's batch holds one entry each: its round trips are
counted in full here, and are shared by every request of a batch under load.

Run: PYTHONPATH=$PWD/src:$PWD bench/.venv/bin/python -m bench.round_trips
  [--requests 50] [--verbose]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.perf import servers
from sqlalchemy import event
from sqlalchemy.engine import Engine


def count(requests: int, verbose: bool = False) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from docstore.app import create_app
    from docstore.cache import RedisCache
    from docstore.config import Settings
    from docstore.db.psycopg_reads import PsycopgReads

    name = f"docstore_rt_{os.getpid()}"
    url = servers.pg_database(name)
    if url is None or not servers.redis_ok():
        raise SystemExit("PostgreSQL or Redis unreachable on 127.0.0.1")
    seen: Counter[str] = Counter()
    counting = False
    try:
        with tempfile.TemporaryDirectory() as data:
            settings = Settings(
                data_dir=Path(data),
                database_url=url,
                redis_url=servers.REDIS_URL,
                run_jobs_in_server=False,
            )
            app = create_app(settings)
            with TestClient(app) as client:
                svc = app.state.services

                def hook(name: str) -> Any:
                    def fn(*_a: Any, **_k: Any) -> None:
                        if counting:
                            seen[name] += 1

                    return fn

                engine = svc.database.engine
                event.listen(engine, "checkout", hook("checkout (pre-ping)"))
                event.listen(engine, "begin", hook("BEGIN"))

                def statement(_c: Any, _cur: Any, sql: str, *_a: Any) -> None:
                    if counting:
                        seen["statement"] += 1
                        if verbose:
                            print("   ", " ".join(sql.split())[:110])

                # Every engine: the audit group commit runs on the asyncio engine, which is
                # made on first use.
                event.listen(Engine, "before_cursor_execute", statement)
                # The hot read runs straight on psycopg (db.psycopg_reads: autocommit, no
                # BEGIN/COMMIT, no pre-ping), past SQLAlchemy's events.
                real_read = PsycopgReads.fetch_first

                async def hot_read(self: PsycopgReads, stmt: Any, params: Any) -> Any:
                    if counting:
                        seen["statement"] += 1
                        if verbose:
                            print("   ", "hot read:", " ".join(str(stmt).split())[:100])
                    return await real_read(self, stmt, params)

                PsycopgReads.fetch_first = hot_read  # type: ignore[method-assign]
                event.listen(engine, "commit", hook("COMMIT"))
                event.listen(engine, "rollback", hook("ROLLBACK"))
                cache = svc.cache
                if isinstance(cache, RedisCache):
                    real = cache._r.execute_command

                    def redis_cmd(*args: Any, **kwargs: Any) -> Any:
                        if counting:
                            seen["redis"] += 1
                        return real(*args, **kwargs)

                    cache._r.execute_command = redis_cmd  # type: ignore[method-assign]
                _, reader, doc_id = _setup(client, url)
                headers = {"authorization": f"Bearer {reader}"}
                for _ in range(5):  # warm: caches, pool, prepared statements
                    assert (
                        client.get(f"/api/v1/documents/{doc_id}", headers=headers).status_code
                        == 200
                    )
                counting = True
                for _ in range(requests):
                    r = client.get(f"/api/v1/documents/{doc_id}", headers=headers)
                    assert r.status_code == 200, r.text
                counting = False
    finally:
        servers.drop_pg_database(name)
    per = {k: v / requests for k, v in sorted(seen.items())}
    per["total"] = sum(per.values())
    return per


def _setup(client: Any, db_url: str) -> tuple[str, str, int]:
    from bench.perf.client import mark_verified

    def register(email: str) -> dict[str, Any]:
        r = client.post(
            "/api/v1/auth/register",
            json={"email": email, "name": email.split("@")[0], "password": "bench password 1"},
        )
        r.raise_for_status()
        return dict(r.json())

    owner, reader = register("owner@rt.example"), register("reader@rt.example")
    mark_verified(db_url, int(reader["user"]["id"]))
    h = {"authorization": f"Bearer {owner['token']}"}
    parent = top = None
    for depth in range(11):
        r = client.post(
            "/api/v1/folders", json={"name": f"level-{depth}", "parent_id": parent}, headers=h
        )
        r.raise_for_status()
        parent = int(r.json()["id"])
        top = top or parent
    body = b"hello from ten levels down\n"
    r = client.post(
        "/api/v1/files", params={"folder_id": parent, "name": "deep.txt"}, content=body, headers=h
    )
    r.raise_for_status()
    doc_id = int(r.json()["id"])
    r = client.post(
        "/api/v1/shares",
        json={"folder_id": top, "permission": "VIEW", "email": reader["user"]["email"]},
        headers=h,
    )
    r.raise_for_status()
    return owner["token"], reader["token"], doc_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--verbose", action="store_true", help="print each statement")
    args = parser.parse_args()
    for k, v in count(args.requests, args.verbose).items():
        print(f"{k:22} {v:5.2f} per request")


if __name__ == "__main__":
    main()
