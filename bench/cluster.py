"""GET and 4 KiB upload rate through nginx with 1, 2 and 3 `docstore serve` processes.

    PYTHONPATH=src:. .venv/bin/python bench/cluster.py [--seconds 8] [--runs 3] [--files 600]

One local cluster (docstore.cluster: PostgreSQL, a private Redis, moto, 3 servers, no
workers); server 0 is measured straight, then nginx is pointed at the first 1, 2, then 3
servers (a conf reload) and measured each time: `GET /documents/{id}` of the owner's
document, 16 connections; 4 KiB simple uploads (POST /files, S3 storage) from 8
clients. bench/run adds it as the `cluster` section. On a 2-core machine the curve shows
what the balancer costs and how far more processes help on the same cores, not the scale
of many machines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.perf import load
from bench.perf import workloads as w
from bench.perf.client import Docstore
from bench.perf.util import log, stats

from docstore.cluster import Cluster

RESULTS = Path(__file__).resolve().parent / "results"
# 16, not bench/run's 32: three servers' pools on a PostgreSQL of max_connections=100
# shared with other work ran out of connections ("too many clients") at 32.
CONNS = 16


def measure(seconds: float, runs: int, files: int, work: Path) -> dict[int, dict[str, Any]]:
    """{servers: {"get": stats, "upload": stats}} for 1, 2 and 3 servers behind nginx, and
    (0) for server 0 reached straight."""
    cluster = Cluster(work / "cluster")
    out: dict[int, dict[str, Any]] = {}
    try:
        state = cluster.up(servers=3, workers=0, private_redis=True)
        owner = Docstore.register(state.url, "cluster-owner@bench.example")
        folder = owner.mkdir("cluster")
        doc = owner.upload_small(folder, "doc.txt", b"hello through nginx\n")
        path = f"/api/v1/documents/{doc['id']}"
        for n in (0, 1, 2, 3):  # 0: server 0 straight, without nginx (the balancer's cost)
            base = cluster.server_url(0) if n == 0 else state.url
            if n:
                cluster.balance(list(range(n)))
            load.run(base + path, CONNS, 2, owner.auth)  # warm-up
            gets = [load.run(base + path, CONNS, seconds, owner.auth) for _ in range(runs)]
            if any(int(g["non2xx"]) for g in gets):
                raise RuntimeError(f"non-2xx answers from {base} ({n} server(s))")
            ups = [
                w.small_files(
                    w.docstore_small_sender(folder, f"s{n}r{i}"), base, owner.auth, files, 8
                )
                for i in range(runs)
            ]
            out[n] = {"get": stats([g["rps"] for g in gets]), "upload": stats(ups)}
            log(f"{n} server(s): GET {out[n]['get']['median']:.0f}/s, "
                f"4 KiB upload {out[n]['upload']['median']:.0f}/s")  # fmt: skip
    finally:
        cluster.down()
    return out


def table(result: dict[int, dict[str, Any]]) -> str:
    """The figures as a text table (median [min-max] of the runs)."""

    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}]"

    lines = [
        "| servers behind nginx | GET /documents/{id}, 16 conns (req/s) "
        "| 4 KiB uploads, 8 clients (files/s) |",
        "|---|---|---|",
    ]
    for n, row in sorted(result.items()):
        name = "1, straight (no nginx)" if n == 0 else str(n)
        lines.append(f"| {name} | {cell(row['get'])} | {cell(row['upload'])} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=600)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="docstore-cluster-bench-"))
    result = measure(args.seconds, args.runs, args.files, work)  # kept on failure: the logs
    shutil.rmtree(work, ignore_errors=True)
    text = table(result)
    sys.stdout.write(text + "\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {"when": when, "settings": vars(args), "rows": result, "table": text}
    (RESULTS / "cluster.json").write_text(json.dumps(body, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
