"""Upload and download throughput of multipart uploads, beside a plain curl to the same store.

    .venv/bin/python bench/upload.py [--size-mib 1024] [--parallel 4]

Starts `docstore serve` (SQLite) in local mode, then in S3 mode against a moto_server, and
for each measures, with curl as the client everywhere:
- upload: POST /uploads, every part PUT to its signed URL (curl --parallel), complete
  (local: the server joins and hashes the parts; S3: the server reads the object back
  once and hashes it, see uploads/service.py `_verify`);
- download: GET /documents/{id}/download, following the redirect to the signed URL;
- the ceiling: one plain curl PUT of the whole file, and a GET of it, to the same store
  (local: a single part URL of the server's own storage endpoint; S3: presigned
  PutObject/GetObject straight to moto);
- the server's CPU seconds per GiB in each phase, from /proc/<pid>/stat.
Prints a table and writes bench/results/upload.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from docstore.config import Settings
from docstore.storage.factory import make_blob_store
from docstore.uploads.service import plan_parts

MiB = 1024 * 1024
GiB = 1024 * MiB
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "upload.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret"  # noqa: S105 - a throwaway server's signing key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            httpx.get(url, timeout=1, trust_env=False)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    sys.exit(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def curl(*args: str) -> str:
    """Run curl; its stdout (fails loudly on an HTTP error)."""
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--noproxy", "*", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"curl {' '.join(args[:3])}... failed: {out.stderr}{out.stdout[-2000:]}")
    return out.stdout


@dataclass
class Row:
    """One line of the table."""

    mode: str
    path: str
    upload_mb_s: float
    download_mb_s: float
    cpu_upload_s_per_gib: float | None = None
    cpu_complete_s_per_gib: float | None = None
    cpu_download_s_per_gib: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Server:
    """`docstore serve` in a temporary data directory."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = work / f"server-{self.port}"
        data.mkdir()
        self.data = data
        self.log = data / "server.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
        full_env |= {
            "DOCSTORE_DATA_DIR": str(data),
            "DOCSTORE_SECRET_KEY": SECRET,
            "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
            **env,
        }
        cmd = [sys.executable, "-m", "docstore.cli.main", "serve", "--host", "127.0.0.1"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port)], env=full_env, stdout=out, stderr=out, cwd=data
            )
        wait_http(f"{self.url}/healthz", self.proc, self.log)
        r = httpx.post(
            f"{self.url}/api/v1/auth/register",
            json={"email": "bench@example.com", "name": "Bench", "password": "bench-pass-1"},
        )
        r.raise_for_status()
        self.auth = f"Authorization: Bearer {r.json()['token']}"
        self.headers = {"Authorization": f"Bearer {r.json()['token']}"}

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        r = httpx.request(
            method, f"{self.url}/api/v1{path}", headers=self.headers, timeout=3600, **kw
        )
        if r.status_code >= 400:
            sys.exit(f"{method} {path}: {r.status_code} {r.text}")
        return r


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(8 * MiB, left))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def split(path: Path, part_size: int, into: Path) -> list[Path]:
    into.mkdir(exist_ok=True)
    parts = []
    with path.open("rb") as f:
        n = 1
        while chunk := f.read(part_size):
            part = into / f"part-{n:05d}"
            part.write_bytes(chunk)
            parts.append(part)
            n += 1
    return parts


def multipart(
    srv: Server, name: str, size: int, sha: str, parts: list[Path], parallel: int
) -> tuple[dict[str, Any], float, float, float, float]:
    """The client's whole upload: (document, seconds, part seconds, cpu parts, cpu complete)."""
    cpu0, t0 = srv.cpu(), time.perf_counter()
    started = srv.api(
        "POST", "/uploads", json={"filename": name, "size_bytes": size, "checksum_sha256": sha}
    ).json()
    assert len(started["parts"]) == len(parts), (len(started["parts"]), len(parts))
    args = ["--parallel", "--parallel-max", str(parallel), "-o", "/dev/null"]
    for part, req in zip(parts, started["parts"], strict=True):
        args += ["-T", str(part), req["url"]]
        for k, v in req["headers"].items():
            args += ["-H", f"{k}: {v}"]
    curl(*args)
    cpu1, t1 = srv.cpu(), time.perf_counter()
    doc = srv.api("POST", f"/uploads/{started['upload_id']}/complete").json()
    cpu2, t2 = srv.cpu(), time.perf_counter()
    return doc, t2 - t0, t1 - t0, cpu1 - cpu0, cpu2 - cpu1


def download(srv: Server, doc_id: int, out: Path) -> tuple[float, float]:
    cpu0, t0 = srv.cpu(), time.perf_counter()
    curl("-L", "-H", srv.auth, "-o", str(out), f"{srv.url}/api/v1/documents/{doc_id}/download")
    return time.perf_counter() - t0, srv.cpu() - cpu0


def mb_s(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 1)


def per_gib(cpu: float, size: int) -> float:
    return round(cpu / (size / GiB), 2)


def same(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)], check=False).returncode == 0


def bench_local(work: Path, src: Path, sha: str, parts: list[Path], parallel: int) -> list[Row]:
    size = src.stat().st_size
    srv = Server(work, {})
    try:
        doc, up_s, part_s, cpu_parts, cpu_complete = multipart(
            srv, "local.bin", size, sha, parts, parallel
        )
        out = work / "local-down.bin"
        down_s, cpu_down = download(srv, doc["id"], out)
        assert same(src, out), "local download differs"
        out.unlink()
        ours = Row(
            "local",
            "docstore multipart via server",
            mb_s(size, up_s),
            mb_s(size, down_s),
            per_gib(cpu_parts, size),
            per_gib(cpu_complete, size),
            per_gib(cpu_down, size),
            {"part_phase_mb_s": mb_s(size, part_s), "complete_s": round(up_s - part_s, 2)},
        )
        # Ceiling: the whole file in one PUT to one signed part URL of the same store
        # (an upload laid out as a single part of the file's size), and a GET of the
        # stored object's signed URL.
        store = Settings(
            data_dir=srv.data, secret_key=SECRET, public_url=srv.url
        ).resolved_storage_url
        local = make_blob_store(store, public_url=srv.url, secret_key=SECRET.encode())
        upload_id = local.create_multipart("bench/ceiling", part_size=size, size=size)
        part_url = local.sign_part("bench/ceiling", upload_id, 1, 3600).url
        cpu0, t0 = srv.cpu(), time.perf_counter()
        curl("-T", str(src), "-o", "/dev/null", part_url)
        put_s, cpu_put = time.perf_counter() - t0, srv.cpu() - cpu0
        local.abort_multipart("bench/ceiling", upload_id)
        url = srv.api("GET", f"/documents/{doc['id']}/download", params={"redirect": "false"})
        cpu0, t0 = srv.cpu(), time.perf_counter()
        curl("-o", "/dev/null", url.json()["url"])
        get_s, cpu_get = time.perf_counter() - t0, srv.cpu() - cpu0
        ceiling = Row(
            "local",
            "curl PUT/GET, one request",
            mb_s(size, put_s),
            mb_s(size, get_s),
            per_gib(cpu_put, size),
            None,
            per_gib(cpu_get, size),
        )
        return [ours, ceiling]
    finally:
        stop(srv.proc)


def bench_s3(work: Path, src: Path, sha: str, parts: list[Path], parallel: int) -> list[Row]:
    size = src.stat().st_size
    port = free_port()
    moto_log = work / "moto.log"
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    with moto_log.open("wb") as out:
        moto = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p",
             str(port)], stdout=out, stderr=out, env=env,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    srv = None
    try:
        wait_http(f"{endpoint}/moto-api/", moto, moto_log)
        storage = f"s3://bench-uploads?endpoint_url={endpoint}&region=us-east-1&create_bucket=true"
        srv = Server(work, {"DOCSTORE_STORAGE_URL": storage})
        doc, up_s, part_s, cpu_parts, cpu_complete = multipart(
            srv, "s3.bin", size, sha, parts, parallel
        )
        out = work / "s3-down.bin"
        down_s, cpu_down = download(srv, doc["id"], out)
        assert same(src, out), "S3 download differs"
        out.unlink()
        ours = Row(
            "s3 (moto)",
            "docstore multipart via signed URLs",
            mb_s(size, up_s),
            mb_s(size, down_s),
            per_gib(cpu_parts, size),
            per_gib(cpu_complete, size),
            per_gib(cpu_down, size),
            {"part_phase_mb_s": mb_s(size, part_s), "complete_s": round(up_s - part_s, 2)},
        )
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        params = {"Bucket": "bench-uploads", "Key": "ceiling.bin"}
        put_url = client.generate_presigned_url("put_object", Params=params, ExpiresIn=3600)
        t0 = time.perf_counter()
        curl("-T", str(src), "-o", "/dev/null", put_url)
        put_s = time.perf_counter() - t0
        get_url = client.generate_presigned_url("get_object", Params=params, ExpiresIn=3600)
        t0 = time.perf_counter()
        curl("-o", "/dev/null", get_url)
        get_s = time.perf_counter() - t0
        ceiling = Row("s3 (moto)", "curl PUT/GET, one request", mb_s(size, put_s),
                      mb_s(size, get_s))  # fmt: skip
        return [ours, ceiling]
    finally:
        if srv is not None:
            stop(srv.proc)
        stop(moto)


def table(rows: list[Row]) -> str:
    head = ["mode", "path", "upload MB/s", "download MB/s", "server CPU s/GiB: parts",
            "complete", "download"]  # fmt: skip

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v}"

    lines = [head] + [
        [r.mode, r.path, cell(r.upload_mb_s), cell(r.download_mb_s),
         cell(r.cpu_upload_s_per_gib), cell(r.cpu_complete_s_per_gib),
         cell(r.cpu_download_s_per_gib)]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        if n == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--parallel", type=int, default=4, help="part PUTs in flight")
    parser.add_argument("--only", choices=["local", "s3"], default=None)
    args = parser.parse_args()
    if not shutil.which("curl"):
        sys.exit("bench/upload.py needs curl")
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="docstore-bench-upload-") as tmp:
        work = Path(tmp)
        src = work / "file.bin"
        sha = make_file(src, size)
        part_size, _ = plan_parts(size, 8 * MiB)
        parts = split(src, part_size, work / "parts")
        rows: list[Row] = []
        if args.only in (None, "local"):
            rows += bench_local(work, src, sha, parts, args.parallel)
        if args.only in (None, "s3"):
            rows += bench_s3(work, src, sha, parts, args.parallel)
    print(f"\n{args.size_mib} MiB file, {len(parts)} parts of {part_size // MiB} MiB, "
          f"{args.parallel} part PUTs in flight, {os.cpu_count()} cores\n")  # fmt: skip
    print(table(rows))
    local = [r for r in rows if r.mode == "local"]
    summary: dict[str, Any] = {}
    if len(local) == 2:
        ratio = round(local[0].upload_mb_s / local[1].upload_mb_s, 2)
        summary["local_upload_vs_ceiling"] = ratio
        print(f"\nlocal multipart upload / curl ceiling: {ratio:.0%} (target >= 70%)")
    for r in rows:
        if r.notes:
            print(f"{r.mode}: part phase {r.notes['part_phase_mb_s']} MB/s, "
                  f"complete {r.notes['complete_s']} s")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "size_bytes": size,
                "part_size": part_size,
                "parallel": args.parallel,
                "rows": [asdict(r) for r in rows],
                **summary,
            },
            indent=2,
        )
    )
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
