"""A real webhook receiver on loopback, the README's verification code, and a real
`docstore worker` process that a test can kill and start again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fixtures.server import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify() -> Callable[..., bool]:
    """`verify` as the README's Webhooks section defines it (its first python block), so
    the documented code is the code the tests check every delivery with."""
    text = README.read_text()
    section = text[text.index("\n## Webhooks\n") :]
    section = section[: section.index("\n## ", 1)]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "README's Webhooks section has no python block"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), "README.md#webhooks", "exec"), namespace)  # noqa: S102
    verify: Callable[..., bool] = namespace["verify"]
    return verify


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """ThreadingHTTPServer on 127.0.0.1: records every request; answers each path with its
    status (default 200); a path in `hold` answers only once its event is set (the request
    has arrived when `arrived[path]` is set)."""

    server: ThreadingHTTPServer
    got: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    hold: dict[str, threading.Event] = field(default_factory=dict)
    arrived: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.got if r.path == path]

    def wait_for(
        self, path: str, done: Callable[[list[Received]], bool], seconds: float = 60
    ) -> list[Received]:
        """The requests to `path` once `done` holds for them (bounded wait)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen = self.at(path)
            if done(seen):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"receiver: {path} got {[r.json for r in self.at(path)]}")


def start_receiver() -> Receiver:
    """A receiver on a free loopback port, serving on a daemon thread."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = holder[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with me.lock:
                me.got.append(Received(self.path, dict(self.headers.items()), body))
                held = me.hold.pop(self.path, None)
                arrived = me.arrived.pop(self.path, None)
                status = me.status.get(self.path, 200)
            if arrived is not None:
                arrived.set()
            if held is not None:
                held.wait(60)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender is gone (a killed worker)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    holder.append(receiver)
    threading.Thread(target=server.serve_forever, daemon=True, name="receiver").start()
    return receiver


# The shared server runs no jobs; its worker is a process of its own, quick to retry.
SERVER_ENV = {
    "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
    "DOCSTORE_WEBHOOK_ALLOW_PRIVATE": "true",
    "DOCSTORE_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "DOCSTORE_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
    "DOCSTORE_WEBHOOK_RETRY_WINDOW_SECONDS": "3",
}


@dataclass
class WorkerProcess:
    """`docstore worker --job webhooks.deliver` beside a started server (same database,
    data dir and secret key), polling every 0.2 s, with a 3 s job lease so a killed worker's
    successor takes over quickly."""

    srv: ServerProcess
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
        env.update(SERVER_ENV)
        env.update(
            {
                "DOCSTORE_DATA_DIR": str(self.srv.data_dir),
                "DOCSTORE_SECRET_KEY": "e2e-secret",
                "DOCSTORE_TRANSACTION_GUARD": "1",
                "DOCSTORE_JOB_INTERVALS": json.dumps({"webhooks.deliver": 0.2}),
                "DOCSTORE_JOB_POLL_SECONDS": "0.2",
                "DOCSTORE_JOB_LEASE_SECONDS": "3",
            }
        )
        if self.srv.database_url:
            env["DOCSTORE_DATABASE_URL"] = self.srv.database_url
        self.starts += 1
        log = (self.srv.data_dir / f"worker-{self.starts}.log").open("wb")
        cmd = [sys.executable, "-m", "docstore.cli.main", "worker", "--job", "webhooks.deliver"]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.srv.data_dir
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no chance to record anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
