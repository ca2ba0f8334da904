"""The workloads and ceilings: each returns figures for one row of the table."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.perf import load
from bench.perf.client import API, Docstore, multipart_upload, sha256_file
from bench.perf.util import KeepAlive, Proc, curl, log, stats

GiB = 1024**3
MB = 1e6


# -- ceilings -------------------------------------------------------------------------------


def sha256_ceiling(runs: int) -> dict[str, float]:
    """hashlib SHA-256 over 256 MiB in 1 MiB blocks, MB/s."""
    block = os.urandom(1 << 20)

    def once() -> float:
        h = hashlib.sha256()
        t0 = time.perf_counter()
        for _ in range(256):
            h.update(block)
        return 256 * (1 << 20) / (time.perf_counter() - t0) / MB

    return stats([once() for _ in range(runs)])


def fsync_write_ceiling(work: Path, size: int, runs: int) -> dict[str, float]:
    """Write `size` bytes in 1 MiB blocks and fsync, MB/s."""
    block = os.urandom(1 << 20)

    def once() -> float:
        path = work / "fsync-ceiling.bin"
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(size >> 20):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        dt = time.perf_counter() - t0
        path.unlink()
        return size / dt / MB

    return stats([once() for _ in range(runs)])


def small_fsync_ceiling(work: Path, n: int = 300) -> dict[str, float]:
    """Files/s for create + 4 KiB write + fsync + rename + directory fsync (one at a time)."""
    d = work / "fsync-small"
    d.mkdir(exist_ok=True)
    data = os.urandom(4096)
    t0 = time.perf_counter()
    dfd = os.open(d, os.O_RDONLY)
    for i in range(n):
        tmp = d / f".t{i}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, d / f"f{i}")
        os.fsync(dfd)
    os.close(dfd)
    rate = n / (time.perf_counter() - t0)
    return stats([rate])


# -- 1 GiB upload / download ----------------------------------------------------------------


def tag_file(path: Path, run: str) -> str:
    """Make this run's bytes unique (no dedup across runs) and return their SHA-256."""
    with path.open("r+b") as f:
        f.write(hashlib.sha256(run.encode()).digest()[:16])
    return sha256_file(path)


def part_hashes(path: Path, part_size: int) -> list[str]:
    """Each part's SHA-256 (base64), hashed client-side (not the server's CPU)."""
    import base64

    out = []
    with path.open("rb") as f:
        while block := f.read(part_size):
            out.append(base64.b64encode(hashlib.sha256(block).digest()).decode())
    return out or [base64.b64encode(hashlib.sha256(b"").digest()).decode()]


def s3_upload_path(
    ds: Docstore, folder: int, path: Path, runs: int, proc: Proc, metrics: Callable[[], float]
) -> dict[str, Any]:
    """S3 mode, the upload request path alone (no download): server CPU per GiB and bytes
    read back from S3 (the server's docstore_storage_read_bytes counter), per run, with
    part checksums declared (S3 verifies) and, as the before, without (server reads back)."""
    size = path.stat().st_size
    part_size = 8 * 1024 * 1024
    # One small upload first: a fresh server's first S3 upload also pays one-time costs
    # (boto3 loading its endpoint rules, first statements), ~50 ms, not the path's own.
    warm = path.with_name("s3-warm-up.bin")
    warm.write_bytes(os.urandom(part_size + 1))
    _, doc = multipart_upload(
        ds,
        folder,
        "warm-up.bin",
        warm,
        sha256_file(warm),
        part_checksums=(part_size, part_hashes(warm, part_size)),
    )
    ds.http.delete(f"/documents/{doc['id']}").raise_for_status()
    out: dict[str, dict[str, list[float]]] = {}
    for mode in ("checksums", "read-back"):
        cpu, idle_cpu, read, rate = [], [], [], []
        for i in range(runs):
            sha = tag_file(path, f"s3path-{mode}-{i}-{time.time()}")
            sums = (part_size, part_hashes(path, part_size)) if mode == "checksums" else None
            # The idle server's own CPU rate (uvicorn's main loop ticks 10 times a second),
            # measured just before: on a loaded machine the upload is slow and it adds up.
            i0, t0 = proc.cpu_seconds(), time.perf_counter()
            time.sleep(10)
            idle_rate = (proc.cpu_seconds() - i0) / (time.perf_counter() - t0)
            r0, c0 = metrics(), proc.cpu_seconds()
            dt, doc = multipart_upload(
                ds, folder, f"s3-{mode}-{i}.bin", path, sha, part_checksums=sums
            )
            c1, r1 = proc.cpu_seconds(), metrics()
            assert doc["current_version"]["checksum_sha256"] == sha, "stored checksum differs"
            cpu.append((c1 - c0) / (size / GiB))
            idle_cpu.append((c1 - c0 - idle_rate * dt) / (size / GiB))
            read.append(r1 - r0)
            rate.append(size / dt / MB)
            log(
                f"  s3 upload [{mode}] run {i}: {rate[-1]:.0f} MB/s in {dt:.0f} s, server CPU "
                f"{cpu[-1]:.3f} s/GiB ({idle_cpu[-1]:.3f} above the idle "
                f"{idle_rate * 1000:.1f} ms/s), read back {read[-1] / MB:.1f} MB, "
                f"checksum_verified={doc['current_version'].get('checksum_verified')}"
            )
            ds.http.delete(f"/documents/{doc['id']}").raise_for_status()
        out[mode] = {"cpu": cpu, "above_idle": idle_cpu, "read": read, "rate": rate}
    return {mode: {k: stats(v) for k, v in figures.items()} for mode, figures in out.items()}


def big_docstore(
    ds: Docstore,
    folder: int,
    path: Path,
    runs: int,
    proc: Proc,
    label: str,
    *,
    part_checksums: bool = False,
) -> dict[str, Any]:
    """Upload (multipart when the API has it, else POST /files) then download, per run.

    `part_checksums`: declare each part's SHA-256 as the typed client does (hashed here,
    client-side, before the clock starts)."""
    size = path.stat().st_size
    multipart = ds.has_multipart()
    ups, downs, cpu, cpu_up = [], [], [], []
    for i in range(runs):
        sha = tag_file(path, f"{label}-{i}-{time.time()}")
        name = f"big-{label}-{i}.bin"
        c0 = proc.cpu_seconds()
        if multipart:
            sums = (8 * 1024 * 1024, part_hashes(path, 8 * 1024 * 1024)) if part_checksums else None
            c0 = proc.cpu_seconds()
            dt, doc = multipart_upload(ds, folder, name, path, sha, part_checksums=sums)
        else:
            dt, out = curl(
                [
                    "-X",
                    "POST",
                    "-T",
                    str(path),
                    "-H",
                    f"authorization: Bearer {ds.token}",
                    "-H",
                    f"x-checksum-sha256: {sha}",
                    "-H",
                    "content-type: application/octet-stream",
                    f"{ds.url}{API}/files?folder_id={folder}&name={name}",
                ],
                timeout=900,
            )
            import json

            doc = json.loads(out)
        c1 = proc.cpu_seconds()
        assert doc["current_version"]["checksum_sha256"] == sha, "stored checksum differs"
        ddt, _ = curl(
            [
                "-L",
                "-o",
                "/dev/null",
                "-H",
                f"authorization: Bearer {ds.token}",
                f"{ds.url}{API}/documents/{doc['id']}/download",
            ],
            timeout=900,
        )
        c2 = proc.cpu_seconds()
        ups.append(size / dt / MB)
        downs.append(size / ddt / MB)
        cpu.append(((c1 - c0) + (c2 - c1)) / (size / GiB))
        cpu_up.append((c1 - c0) / (size / GiB))
        log(
            f"  {label} run {i}: up {ups[-1]:.0f} MB/s, down {downs[-1]:.0f} MB/s, "
            f"server CPU {cpu[-1]:.2f} s/GiB (upload alone {cpu_up[-1]:.2f})"
        )
        r = ds.http.delete(f"/documents/{doc['id']}")
        r.raise_for_status()
    return {
        "upload": stats(ups),
        "download": stats(downs),
        "cpu_per_gib": stats(cpu),
        "upload_cpu_per_gib": stats(cpu_up),
        "method": "multipart POST /uploads" if multipart else "POST /files (simple upload)",
    }


def big_peer(
    url_for: Callable[[int], str],
    path: Path,
    runs: int,
    label: str,
    cleanup: Callable[[int], None] | None = None,
    headers: Sequence[str] = (),
) -> dict[str, Any]:
    """curl PUT then GET of the same file to a peer (`headers`: curl's -H arguments)."""
    size = path.stat().st_size
    ups, downs = [], []
    for i in range(runs):
        tag_file(path, f"{label}-{i}-{time.time()}")
        url = url_for(i)
        dt, _ = curl([*headers, "-T", str(path), url], timeout=900)
        ddt, _ = curl([*headers, "-o", "/dev/null", url], timeout=900)
        ups.append(size / dt / MB)
        downs.append(size / ddt / MB)
        log(f"  {label} run {i}: up {ups[-1]:.0f} MB/s, down {downs[-1]:.0f} MB/s")
        if cleanup:
            cleanup(i)
    return {"upload": stats(ups), "download": stats(downs)}


# -- 4 KiB files ----------------------------------------------------------------------------


def _payloads(n: int) -> list[bytes]:
    return [os.urandom(4096) for _ in range(n)]


def small_files(
    send: Callable[[KeepAlive, int, bytes], None],
    url: str,
    headers: dict[str, str],
    n: int,
    clients: int,
) -> float:
    """files/s for `n` 4 KiB files over `clients` keep-alive connections."""
    data = _payloads(n)
    bounds = [n * k // clients for k in range(clients + 1)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        conn = KeepAlive(url, headers)
        try:
            barrier.wait()
            for i in range(bounds[k], bounds[k + 1]):
                send(conn, i, data[i])
        except BaseException as exc:  # reported after the run
            errors.append(exc)
        finally:
            conn.close()

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker, k) for k in range(clients)]
        barrier.wait()
        t0 = time.perf_counter()
        for f in futures:
            f.result()
        dt = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return n / dt


def docstore_small_sender(folder: int, run: str) -> Callable[[KeepAlive, int, bytes], None]:
    def send(conn: KeepAlive, i: int, data: bytes) -> None:
        status, body = conn.request(
            "POST",
            f"{API}/files?folder_id={folder}&name={run}-{i}.txt",
            data,
            {
                "x-checksum-sha256": hashlib.sha256(data).hexdigest(),
                "content-type": "application/octet-stream",
            },
        )
        if status != 201:
            raise RuntimeError(f"docstore upload: {status} {body[:200]!r}")

    return send


def put_sender(prefix: str) -> Callable[[KeepAlive, int, bytes], None]:
    def send(conn: KeepAlive, i: int, data: bytes) -> None:
        status, body = conn.request("PUT", f"{prefix}/f{i}.txt", data)
        if status not in (200, 201, 204):
            raise RuntimeError(f"PUT {prefix}: {status} {body[:200]!r}")

    return send


# -- listing --------------------------------------------------------------------------------


def docstore_listing(ds: Docstore, folder: int, expect: int) -> tuple[float, float]:
    """Seconds to fetch every page of a folder's children (limit=1000) on one connection:
    (the requests alone, the same with the client's `json.loads` of each page).

    The first is what is compared with the peers, whose time is their one request: neither
    side's figure then holds the client's own JSON parsing (~1 ms a 1,000-entry page here).
    """
    import json
    from urllib.parse import quote

    conn = KeepAlive(ds.url, ds.auth)
    t0 = time.perf_counter()
    in_requests = 0.0
    cursor = None
    count = 0
    while True:
        path = f"{API}/folders/{folder}/children?limit=1000"
        if cursor:
            path += f"&cursor={quote(cursor)}"
        t = time.perf_counter()
        status, body = conn.request("GET", path)
        in_requests += time.perf_counter() - t
        if status != 200:
            raise RuntimeError(f"listing: {status} {body[:200]!r}")
        page = json.loads(body)
        count += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    dt = time.perf_counter() - t0
    conn.close()
    if count != expect:
        raise RuntimeError(f"listing returned {count} items, expected {expect}")
    return in_requests, dt


def peer_listing(
    url: str, method: str, path: str, headers: dict[str, str], check: bytes, expect: int
) -> float:
    conn = KeepAlive(url, headers)
    t0 = time.perf_counter()
    status, body = conn.request(method, path)
    dt = time.perf_counter() - t0
    conn.close()
    if status not in (200, 207) or body.count(check) < expect:
        raise RuntimeError(f"{method} {path}: {status}, {body.count(check)} entries")
    return dt


# -- shared-document GET --------------------------------------------------------------------


def rate(
    url: str, headers: dict[str, str], runs: int, seconds: float, proc: Proc, conns: int = 32
) -> dict:
    """req/s, p50, p99 over `runs` load runs (after a short warm-up), server CPU-ms/request."""
    load.run(url, conns, 2, headers)
    c0 = proc.cpu_seconds()
    results = [load.run(url, conns, seconds, headers) for _ in range(runs)]
    cpu = proc.cpu_seconds() - c0
    done = sum(r["rps"] * seconds for r in results)
    if not done:
        raise RuntimeError(f"no request to {url} completed in {runs} x {seconds:.0f} s")
    bad = sum(int(r["non2xx"]) for r in results)
    if bad:
        raise RuntimeError(f"{bad} non-2xx answers from {url}")
    return {
        "rps": stats([r["rps"] for r in results]),
        "p50_ms": stats([r["p50_ms"] for r in results]),
        "p99_ms": stats([r["p99_ms"] for r in results]),
        "server_cpu_ms_per_req": 1000 * cpu / done,
    }


# -- tree upload through the CLI (POST /files/batch) ----------------------------------------


def make_tree(root: Path, n: int, dirs: int = 10) -> None:
    """`n` files of 4 KiB of random bytes in `dirs` folders below `root`."""
    for i in range(n):
        d = root / f"d{i % dirs}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_bytes(os.urandom(4096))


def cli_tree_upload(url: str, token: str, tree: Path, dest: str) -> float:
    """files/s of `docstore upload TREE DEST` end to end (the CLI process started, the tree
    hashed, the remote folders listed and created, the files sent: small ones batched).
    Every file must come back uploaded; the server answers only once each one is durable."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "DOCSTORE_URL": url, "DOCSTORE_TOKEN": token}
    cmd = [sys.executable, "-m", "docstore.cli.main", "upload", str(tree), dest, "--json"]
    n = sum(1 for p in tree.rglob("*") if p.is_file())
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"docstore upload: {proc.returncode} {proc.stderr[:300]}")
    out = json.loads(proc.stdout)
    if out["uploaded"] != n:
        raise RuntimeError(f"docstore upload: {out['uploaded']} of {n} uploaded")
    return n / dt
