"""WebDAV beside wsgidav (issue 23): the three figures the issue asks for, in one run.

    .venv/bin/python bench/dav.py [--entries 10000] [--files 1000] [--size-mib 1024] [--runs 3]

Starts `docstore serve` (SQLite, local storage) and wsgidav (cheroot, anonymous, a
directory root) on loopback, and measures, each docstore figure next to wsgidav's in the
same run:
- PROPFIND depth 1 (allprop) on a folder of --entries documents (docstore's made in SQL as
  copies of one uploaded document, as bench/perf's listing; wsgidav's as 4 KiB files);
- `rclone copy` of --files files of 4 KiB (vendor=other, --transfers 8, --tpslimit 0);
- one --size-mib PUT and GET with curl.
Times are medians of --runs runs (after one warm-up for PROPFIND). Prints the table and
writes bench/results/dav.json. Needs wsgidav and cheroot (the test extra's venv has them),
rclone and curl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.perf.client import Docstore, populate_folder  # noqa: E402
from tests.fixtures.server import free_port, start_server  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="docstore-dav-bench-"))
    db_url = f"sqlite:///{tmp}/docstore.db"
    srv = start_server(tmp, db_url)
    wd_root = tmp / "wsgidav"
    wd_root.mkdir()
    port = free_port()
    wsgidav = Path(sys.executable).parent / "wsgidav"
    wd = subprocess.Popen(
        [str(wsgidav), "--host", "127.0.0.1", "--port", str(port), "--root", str(wd_root),
         "--auth", "anonymous", "--server", "cheroot", "--no-config", "-q", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wd_url = f"http://127.0.0.1:{port}"
    rows: list[dict[str, object]] = []
    try:
        for _ in range(300):
            try:
                httpx.get(wd_url + "/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        owner = Docstore.register(srv.url, "dav@bench.example")
        rows.append(propfind(srv.url, owner, db_url, wd_url, wd_root, args))
        rows.append(rclone_copy(srv.url, owner, wd_url, tmp, args))
        rows += put_get(srv.url, owner, wd_url, tmp, args)
    finally:
        wd.terminate()
        wd.wait(10)
        srv.stop()
    for row in rows:
        print(
            f"{row['what']:<40} docstore {row['docstore']:>9.1f} {row['unit']:<8}"
            f" wsgidav {row['wsgidav']:>9.1f}  ratio {row['ratio']:.2f} (target {row['target']})"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dav.json").write_text(json.dumps({"rows": rows, "runs": args.runs}, indent=2))
    return 0


def propfind(
    url: str, owner: Docstore, db_url: str, wd_url: str, wd_root: Path, args: argparse.Namespace
) -> dict[str, object]:
    n = args.entries
    folder = owner.mkdir("list")
    r = owner.http.post("/files", params={"name": "a-first.txt", "folder_id": folder},
                        content=b"x" * 4096)  # fmt: skip
    r.raise_for_status()
    populate_folder(db_url, folder, int(r.json()["id"]), n - 1)
    (wd_root / "list").mkdir()
    for i in range(n):
        (wd_root / "list" / f"l-{i:05d}.txt").write_bytes(b"x" * 4096)

    def timed(target: str, headers: dict[str, str]) -> float:
        with httpx.Client(timeout=300) as client:
            t0 = time.perf_counter()
            r = client.request("PROPFIND", target, headers={"Depth": "1", **headers})
            dt = time.perf_counter() - t0
        if r.status_code != 207 or r.content.count(b"response>") < n:
            raise RuntimeError(f"PROPFIND {target}: {r.status_code}")
        return dt * 1000

    timed(f"{url}/dav/files/list/", owner.auth)
    timed(f"{wd_url}/list/", {})
    ds = median_of(args.runs, lambda: timed(f"{url}/dav/files/list/", owner.auth))
    wd = median_of(args.runs, lambda: timed(f"{wd_url}/list/", {}))
    return {"what": f"PROPFIND depth 1, {n} entries", "unit": "ms", "docstore": ds,
            "wsgidav": wd, "ratio": ds / wd, "target": "<= 0.25"}  # fmt: skip


def rclone_copy(
    url: str, owner: Docstore, wd_url: str, tmp: Path, args: argparse.Namespace
) -> dict[str, object]:
    src = tmp / "small"
    src.mkdir()
    for i in range(args.files):
        (src / f"f-{i:05d}.bin").write_bytes(os.urandom(4096))
    config = tmp / "rclone.conf"
    config.write_text("")
    secret = subprocess.run(["rclone", "obscure", "--", owner.token], capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    email = owner.user["email"]
    counter = iter(range(1_000_000))

    def rate(remote: str) -> float:
        target = f"{remote}run{next(counter)}"
        t0 = time.perf_counter()
        subprocess.run(["rclone", "--config", str(config), "copy", str(src), target,
                        "--transfers", "8", "--checkers", "8", "--tpslimit", "0"],
                       capture_output=True, check=True)  # fmt: skip
        return args.files / (time.perf_counter() - t0)

    ours = f":webdav,url='{url}/dav/files/',vendor=other,user='{email}',pass='{secret}':"
    theirs = f":webdav,url='{wd_url}/',vendor=other:"
    ds = median_of(args.runs, lambda: rate(ours))
    wd = median_of(args.runs, lambda: rate(theirs))
    return {"what": f"rclone copy {args.files} x 4 KiB", "unit": "files/s", "docstore": ds,
            "wsgidav": wd, "ratio": ds / wd, "target": ">= 1.0"}  # fmt: skip


def put_get(
    url: str, owner: Docstore, wd_url: str, tmp: Path, args: argparse.Namespace
) -> list[dict[str, object]]:
    big = tmp / "big.bin"
    with big.open("wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1 << 20))
    auth = ["-H", f"Authorization: Bearer {owner.token}"]
    counter = iter(range(1_000_000))

    def curl(extra: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", *extra], check=True)
        return args.size_mib * 1.048576 / (time.perf_counter() - t0)

    def put(base: str, headers: list[str]) -> float:
        return curl([*headers, "-T", str(big), f"{base}/big{next(counter)}.bin"])

    ds_put = median_of(args.runs, lambda: put(f"{url}/dav/files", auth))
    wd_put = median_of(args.runs, lambda: put(wd_url, []))
    ds_get = median_of(args.runs, lambda: curl([*auth, f"{url}/dav/files/big0.bin"]))
    wd_get = median_of(args.runs, lambda: curl([f"{wd_url}/big{args.runs}.bin"]))
    size = f"{args.size_mib} MiB"
    return [
        {"what": f"{size} PUT", "unit": "MB/s", "docstore": ds_put, "wsgidav": wd_put,
         "ratio": ds_put / wd_put, "target": ">= 1.0"},
        {"what": f"{size} GET", "unit": "MB/s", "docstore": ds_get, "wsgidav": wd_get,
         "ratio": ds_get / wd_get, "target": ">= 1.0"},
    ]  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
