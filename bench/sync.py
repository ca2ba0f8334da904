"""`docstore sync` on a tree of many small files: initial sync up, then down to a second
folder, then the no-op re-sync of the same tree (the target: < 2 s for 10,000 files — no
hashing of unchanged files and one change-feed call).

    PYTHONPATH=src .venv/bin/python -m bench.sync [--files 10000] [--runs 1]

Starts `docstore serve` (SQLite, local storage) and runs the sync engine in this process,
the way `docstore sync` does. Prints a table and writes bench/results/sync.json; bench/run
adds the same rows to its table (BENCH_ONLY=sync).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.perf import servers
from bench.perf.client import Docstore
from bench.perf.report import Row, render
from bench.perf.util import stats

from docstore.client import DocstoreClient
from docstore.client.sync import Syncer

RESULTS = Path(__file__).resolve().parent / "results"


def make_tree(root: Path, files: int, per_dir: int = 500) -> None:
    """`files` files of 100-1,000 bytes, `per_dir` to a folder."""
    for i in range(files):
        d = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(os.urandom(100 + i % 900))


def _timed(syncer: Syncer) -> tuple[float, Any]:
    t0 = time.perf_counter()
    report = syncer.run_once()
    elapsed = time.perf_counter() - t0
    if not report.ok:
        raise RuntimeError(f"sync failed: {list(report.errors.items())[:5]}")
    return elapsed, report


def measure(
    url: str,
    token: str,
    work: Path,
    files: int,
    runs: int,
    cpu: Callable[[], float] = lambda: 0.0,
) -> list[Row]:
    """`cpu()`: the server's CPU seconds so far (per-file server CPU: the steadiest figure)."""
    up, down, noop, noop_feed = [], [], [], []
    up_cpu, down_cpu, noop_cpu = [], [], []
    for run in range(runs):
        a, b = work / f"a{run}", work / f"b{run}"
        a.mkdir(), b.mkdir()
        make_tree(a, files)
        remote = f"/bench-sync-{run}"
        with DocstoreClient(url, token) as ds, Syncer(ds, a, remote) as s:
            c0 = cpu()
            t, _ = _timed(s)
            up.append(files / t)
            up_cpu.append((cpu() - c0) * 1000 / files)
        with DocstoreClient(url, token) as ds, Syncer(ds, b, remote) as s:
            c0 = cpu()
            t, _ = _timed(s)
            down.append(files / t)
            down_cpu.append((cpu() - c0) * 1000 / files)
        with DocstoreClient(url, token) as ds, Syncer(ds, a, remote) as s:
            _timed(s)  # the first pass after our own uploads reads them back from the feed
            c0 = time.process_time()
            t, report = _timed(s)
            noop_cpu.append(time.process_time() - c0)
            noop.append(t)
            noop_feed.append(float(report.feed_calls))
            assert not report.changed and not report.listed
        shutil.rmtree(a), shutil.rmtree(b)
    return [
        Row(
            "sync_up",
            f"sync: first sync of {files} small files up",
            "files/s",
            stats(up),
            extra={"server_cpu_ms_per_file": stats(up_cpu)},
        ),
        Row(
            "sync_down",
            "sync: the same tree down to a new folder",
            "files/s",
            stats(down),
            extra={"server_cpu_ms_per_file": stats(down_cpu)},
        ),
        Row(
            "sync_noop",
            f"sync: no-op re-sync of {files} unchanged files",
            "s",
            stats(noop),
            lower_is_better=True,
            target_abs=("<", 2.0),
            # The client's own CPU for the round: wall time on a loaded machine is mostly waiting.
            extra={"feed_calls": stats(noop_feed), "client_cpu_s": stats(noop_cpu)},
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    proc = servers.docstore(work, "docstore-sync")
    try:
        owner = Docstore.register(proc.url, "sync@bench.example")
        rows = measure(proc.url, owner.token, work, args.files, args.runs, proc.cpu_seconds)
    finally:
        proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    table = render(rows)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"files": args.files, "runs": args.runs, "rows": [r.as_dict() for r in rows]}
    (RESULTS / "sync.json").write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
