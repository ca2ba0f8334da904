"""The delivery request itself, against a real loopback receiver (no database): it goes to
the address that was checked whatever the name (no DNS rebinding), is refused at delivery
time when the address is not allowed, follows no redirect, gives up at its time limit and
reads a bounded answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from docstore.config import Settings
from docstore.webhooks import delivery, network
from tests.webhooks.helpers import readme_verify


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append((self.path, self.headers.get("Host")))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow":
            time.sleep(1.5)
            self.send_response(200)
            self.end_headers()
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            try:
                for _ in range(50 * 16):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass  # the client stopped reading: what the cap is for
        else:
            self.send_response(204)
            self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


def _post(target: network.Target, **kw: Any) -> network.Outcome:
    return network.post(
        target,
        b"{}",
        {"Content-Type": "application/json"},
        timeout=kw.get("timeout", 5.0),
        max_response_bytes=kw.get("cap", 1024),
    )


def test_the_request_goes_to_the_checked_address_under_the_urls_name(port: int) -> None:
    """A target named `hooks.example.invalid` pinned to 127.0.0.1 (as `check` pins the
    address it resolved): the connection goes to the pinned address, the Host header keeps
    the name; a second resolution never happens."""
    target = network.Target(
        f"http://hooks.example.invalid:{port}/in?x=1", "http", "hooks.example.invalid", port,
        "/in?x=1", "127.0.0.1",
    )  # fmt: skip
    outcome = _post(target)
    assert (outcome.ok, outcome.status, outcome.error) == (True, 204, None)
    assert _Handler.seen[-1] == ("/in?x=1", f"hooks.example.invalid:{port}")


def test_an_address_refusing_the_connection_falls_back_to_the_next_checked_one(port: int) -> None:
    """The receiver listens on 127.0.0.1 only: ::1 (listed first, as a name with both
    families may resolve) refuses, and the delivery goes to the next checked address."""
    target = network.Target(
        f"http://both.example.invalid:{port}/both", "http", "both.example.invalid", port,
        "/both", "::1", ("127.0.0.1",),
    )  # fmt: skip
    assert _post(target).ok and _Handler.seen[-1][0] == "/both"
    alone = network.Target(target.url, "http", target.host, port, "/both", "::1")
    outcome = _post(alone)
    assert outcome.status is None and "ConnectError" in str(outcome.error)


def test_redirects_timeouts_and_large_answers(port: int) -> None:
    checked = network.check(f"http://127.0.0.1:{port}/redirect", allow_private=True)
    outcome = _post(checked)
    assert (outcome.ok, outcome.status) == (False, 302) and "Redirects" in str(outcome.error)
    assert all(path != "/elsewhere" for path, _ in _Handler.seen)

    slow = network.check(f"http://127.0.0.1:{port}/slow", allow_private=True)
    outcome = _post(slow, timeout=0.3)
    assert outcome.status is None and "Timeout" in str(outcome.error)

    # 50 MiB offered, at most the cap (plus one chunk) read: the delivery ends at once.
    huge = network.check(f"http://127.0.0.1:{port}/huge", allow_private=True)
    outcome = _post(huge, cap=1024)
    assert outcome.ok


def test_a_private_address_is_refused_at_delivery_time(port: int) -> None:
    """A webhook saved while allowed (or whose name now resolves elsewhere) is checked
    again before each delivery: nothing reaches the receiver."""
    before = len(_Handler.seen)
    attempt = delivery.Attempt(1, 1, 1, f"http://localhost:{port}/in", "whsec_x", b"{}")
    guarded = Settings(webhook_allow_private=False)
    outcome = delivery.send(guarded, attempt)
    assert outcome.status is None and "resolves to" in str(outcome.error)
    assert len(_Handler.seen) == before
    allowed = Settings(webhook_allow_private=True)
    assert delivery.send(allowed, attempt).ok and len(_Handler.seen) == before + 1


def test_the_signature_the_readme_verifies() -> None:
    """The README's code accepts a fresh signature and refuses a stale one, another
    secret, a changed body and a malformed header."""
    verify = readme_verify()
    attempt = delivery.Attempt(7, 3, 42, "http://x/", "whsec_abc", b'{"seq":42}')
    header = delivery.headers_for(attempt, int(time.time()))["Docstore-Signature"]
    assert verify("whsec_abc", header, attempt.body)
    assert not verify("whsec_abd", header, attempt.body)
    assert not verify("whsec_abc", header, b'{"seq":43}')
    stale = delivery.headers_for(attempt, int(time.time()) - 3600)["Docstore-Signature"]
    assert not verify("whsec_abc", stale, attempt.body)
    for bad in ("", "t=abc,v1=00", "v1=00", "garbage", header.replace("t=", "t=1,t=")):
        assert not verify("whsec_abc", bad, attempt.body)


def test_retry_delays_double_up_to_the_cap() -> None:
    settings = Settings(webhook_retry_base_seconds=30, webhook_retry_max_seconds=3600)
    delays = [delivery.retry_delay(settings, n) for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
