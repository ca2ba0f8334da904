"""Processes on loopback, their memory and CPU, timing statistics and a raw HTTP client."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    import sys

    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Proc:
    """A server process started by the harness (always on 127.0.0.1, stopped by its pid)."""

    name: str
    cmd: Sequence[str]
    env: dict[str, str]
    log_path: Path
    url: str = ""
    popen: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self, cwd: Path | None = None) -> Proc:
        """Start the process in its own session, output to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            list(self.cmd),
            env=self.env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def wait_http(self, path: str = "/", timeout: float = 60.0) -> None:
        """Block until `url + path` answers anything over HTTP (or raise with the log)."""
        deadline = time.monotonic() + timeout
        host, port = self.url.split("//", 1)[1].split("/", 1)[0].split(":")
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=2)
                conn.request("GET", path)
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer in {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def rss_mib(self) -> float:
        """Resident memory of the process and its children, MiB."""
        return sum(_rss_pages(p) for p in _tree(self.pid)) * PAGE / 2**20

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its live children, seconds."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """User and system CPU of the process and its live children, seconds."""
        ticks = [_cpu_ticks(p) for p in _tree(self.pid)]
        return sum(t[0] for t in ticks) / TICKS, sum(t[1] for t in ticks) / TICKS

    def stop(self) -> None:
        """SIGINT (a profiler writes its output), then SIGTERM to the group, then SIGKILL."""
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGINT)
            self.popen.wait(20)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            for child in children:
                pids.extend(_tree(int(child)))
    except OSError:
        pass
    return pids


def _rss_pages(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_ticks(pid: int) -> tuple[int, int]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0, 0


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated runs (a figure that could not be read is left out)."""
    values = [v for v in values if v == v] or [float("nan")]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def repeat(n: int, fn: Callable[[], float]) -> dict[str, float]:
    """Run `fn` n times; stats of what it returns."""
    return stats([fn() for _ in range(n)])


def make_file(path: Path, size: int) -> Path:
    """A file of `size` random-ish bytes (one random MiB repeated with a counter)."""
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        written = 0
        i = 0
        while written < size:
            chunk = i.to_bytes(8, "little") + block[8:]
            chunk = chunk[: size - written]
            f.write(chunk)
            written += len(chunk)
            i += 1
    return path


def have(cmd: str) -> str | None:
    """The path of an executable, if installed."""
    return shutil.which(cmd)


def curl(args: Sequence[str], timeout: float = 300) -> tuple[float, str]:
    """Run curl; returns (seconds, body/--write-out text). Raises on failure."""
    t0 = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-H", "Expect:", *args],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"curl {args[:3]} failed: {out.stderr.decode()} {out.stdout[:300]!r}")
    return dt, out.stdout.decode(errors="replace")


class KeepAlive:
    """One persistent HTTP/1.1 connection (http.client) for request loops."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = headers or {}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        h = {**self.headers, **(headers or {})}
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self.conn.close()
