"""Request-rate load: wrk when installed, else a small asyncio client; loopback only."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import time
from urllib.parse import urlsplit

from bench.perf.util import have


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    """req/s, p50 and p99 (ms) and error count from one wrk run (one thread: 2 cores here)."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errs.group(0) if errs else "",
    }


async def _pyload(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    req = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}\r\n".encode()
    lat: list[float] = []
    bad = 0
    stop = time.monotonic() + seconds

    async def one() -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            writer.write(req)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if not status.split()[1].startswith(b"2"):
                bad += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    dt = time.perf_counter() - t0
    lat.sort()
    return {
        "rps": len(lat) / dt,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
        "non2xx": bad,
        "socket_errors": "",
    }


def run(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    """One load run against `url` (a 127.0.0.1 address)."""
    assert urlsplit(url).hostname == "127.0.0.1"
    if have("wrk"):
        return wrk(url, connections, seconds, headers)
    return asyncio.run(_pyload(url, connections, seconds, headers))


def tool() -> str:
    return "wrk -t1" if have("wrk") else "asyncio client (install wrk for a lighter load tool)"
