"""The change feed: catch-up speed, and what the outbox costs the 4 KiB upload.

    PYTHONPATH=$PWD:$PWD/src .venv/bin/python -m bench.feed [--changes 100000] [--runs 3]
        [--before-src /work/main/src]

- catch-up: a client pages through N changes (limit 1,000, entries included) after one
  cursor, over HTTP against `docstore serve` on SQLite; changes/s. The rows are written in
  SQL (N updates spread over 1,000 documents), as bench/perf writes its 10k listing: what
  is measured is the read, not N uploads.
- write overhead: sequential 4 KiB simple uploads (files/s) against a server from this tree
  (with the outbox) and one from `--before-src` (a tree without it), alternating runs.

`catch_up(url, owner, database_url, n)` is what bench/run's `feed` row calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench.perf import workloads as w
from bench.perf.client import Docstore, populate_folder
from bench.perf.util import free_port, stats
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parents[1]
DOCS = 1000
SMALL = 500


def catch_up(url: str, owner: Docstore, database_url: str, n: int, runs: int) -> dict[str, float]:
    """changes/s for a client reading `n` changes after one cursor (median of `runs`)."""
    from docstore.changes.models import Change
    from docstore.db import make_engine, utcnow
    from docstore.folders.models import Folder

    folder = owner.mkdir(f"feed-{time.time_ns()}")
    first = owner.upload_small(folder, "a-first.txt", b"x" * 4096)
    populate_folder(database_url, folder, int(first["id"]), DOCS - 1)
    cursor = owner.http.get("/changes/cursor").json()["cursor"]
    engine = make_engine(database_url)
    with engine.begin() as conn:
        path = conn.execute(select(Folder.path).where(Folder.id == folder)).scalar_one()
        base, now = int(first["id"]), utcnow()
        batch = 10_000
        for start in range(0, n, batch):
            conn.execute(
                insert(Change),
                [
                    {
                        "user_id": owner.user["id"],
                        "kind": "document",
                        "item_id": base + (i % DOCS),
                        "op": "updated",
                        "owner_id": owner.user["id"],
                        "path": path,
                        "actor_id": owner.user["id"],
                        "created_at": now,
                    }
                    for i in range(start, min(n, start + batch))
                ],
            )
    engine.dispose()

    def once() -> float:
        position, seen = cursor, 0
        started = time.perf_counter()
        for _ in range(n // 1000 + 10):
            page = owner.http.get("/changes", params={"cursor": position, "limit": 1000})
            page.raise_for_status()
            body = page.json()
            seen += len(body["changes"])
            position = body["cursor"]
            if not body["has_more"]:
                break
        elapsed = time.perf_counter() - started
        assert seen >= n, seen
        return seen / elapsed

    return stats([once() for _ in range(runs)])


def _serve(src: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
    env.update(
        PYTHONPATH=f"{src}:{ROOT}",
        DOCSTORE_DATA_DIR=str(data),
        DOCSTORE_SECRET_KEY="bench-secret",  # noqa: S106 - a throwaway bench server
        DOCSTORE_RUN_JOBS_IN_SERVER="false",
        DOCSTORE_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    cmd = [sys.executable, "-m", "docstore.cli.main", "serve", "--host", "127.0.0.1"]
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen([*cmd, "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server from {src} did not start")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before-src", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as tmp:
        work = Path(tmp)
        after, after_url = _serve(ROOT / "src", work / "after")
        procs = [after]
        try:
            owner = Docstore.register(after_url, "feed@bench.example")
            db_url = f"sqlite:///{work / 'after' / 'docstore.db'}"
            feed = catch_up(after_url, owner, db_url, args.changes, args.runs)
            servers = {"with outbox": (after_url, owner)}
            if args.before_src is not None:
                before, before_url = _serve(args.before_src, work / "before")
                procs.append(before)
                servers["without (before)"] = (
                    before_url,
                    Docstore.register(before_url, "feed@bench.example"),
                )
            small: dict[str, list[float]] = {k: [] for k in servers}
            for run in range(args.runs):
                for label, (url, user) in servers.items():
                    folder = user.mkdir(f"small-{run}")
                    send = w.docstore_small_sender(folder, f"r{run}")
                    small[label].append(w.small_files(send, url, user.auth, SMALL, 1))
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
    print(f"| row | unit | median [min-max], {args.runs} runs |")
    print("|---|---|---|")
    print(
        f"| feed catch-up of {args.changes:,} changes (limit 1,000, with entries) | changes/s "
        f"| {feed['median']:.0f} [{feed['min']:.0f}-{feed['max']:.0f}] |"
    )
    for label, values in small.items():
        s = stats(values)
        print(
            f"| {SMALL} x 4 KiB uploads, sequential, {label} | files/s "
            f"| {s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}] |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
