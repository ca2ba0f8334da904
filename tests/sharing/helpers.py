"""Small helpers shared by the sharing tests (in-process and against real servers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.fixtures.app import Api, User

API = "/api/v1"


def remote_api(url: str) -> Api:
    """The test helper API over real HTTP to a running server (same calls as in-process)."""
    return Api(httpx.Client(base_url=url, follow_redirects=False, timeout=30))  # type: ignore[arg-type]


def share(owner: User, *, expect: int = 201, **body: Any) -> dict[str, Any]:
    """POST /shares as `owner` and check the status."""
    r = owner.post(f"{API}/shares", json=body)
    assert r.status_code == expect, r.text
    return dict(r.json())


def share_with(owner: User, grantee: User | str, permission: str, **target: Any) -> dict[str, Any]:
    """Share a document or folder with a user (or an email) at `permission`."""
    email = grantee if isinstance(grantee, str) else grantee.email
    return share(owner, email=email, permission=permission, **target)


def link(owner: User, permission: str = "VIEW", **body: Any) -> dict[str, Any]:
    """Create a link share; the answer holds its token."""
    return share(owner, link=True, permission=permission, **body)


def in_seconds(seconds: float) -> str:
    """An RFC 3339 UTC time `seconds` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def code(r: httpx.Response) -> tuple[int, str | None]:
    """The status and, for problem JSON, the machine-readable code."""
    is_problem = r.headers.get("content-type", "").startswith("application/problem+json")
    return r.status_code, r.json().get("code") if is_problem else None


def tree(owner: User, *names: str, parent: int | None = None) -> list[dict[str, Any]]:
    """Nested folders parent/names[0]/names[1]/...; returns them top first."""
    out = []
    for name in names:
        folder = owner.mkdir(name, parent)
        out.append(folder)
        parent = folder["id"]
    return out


def upload(owner: User, name: str, data: bytes, folder: int | None = None) -> dict[str, Any]:
    """Simple upload; 201 expected."""
    r = owner.upload(name, data, folder)
    assert r.status_code == 201, r.text
    return dict(r.json())


def statuses_around(
    read: Callable[[], int], change: Callable[[], None]
) -> tuple[list[int], list[int]]:
    """Read in a loop on a thread while `change` runs (once the reads have begun): the
    statuses of the reads that started before `change` returned, and of those after."""
    log: list[tuple[float, int]] = []  # (when a read started, its status)
    stop = threading.Event()

    def reader() -> None:
        for _ in range(400):  # bounded; normally stopped much earlier
            if stop.is_set():
                return
            started = time.monotonic()
            log.append((started, read()))

    def wait_for(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)

    worker = threading.Thread(target=reader)
    worker.start()
    wait_for(lambda: len(log) >= 2)
    change()
    returned = time.monotonic()
    wait_for(lambda: sum(started > returned for started, _ in log) >= 5)
    stop.set()
    worker.join(30)
    before = [status for started, status in log if started < returned]
    after = [status for started, status in log if started > returned]
    return before, after
