"""Webhook delivery end to end, on SQLite and PostgreSQL: a real server, a real
`docstore worker` process and a real HTTP receiver on loopback. Every delivery's signature
is checked with the README's own verification code; deliveries arrive in order, at least
once across a worker killed mid-delivery; a failing receiver gets retries, then the
webhook is disabled with the reason; a revoked share stops deliveries; redelivery works."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.app import Api, User
from tests.fixtures.server import ServerProcess, per_backend, shared_server
from tests.sharing.helpers import API, remote_api, share_with, upload
from tests.webhooks.helpers import (
    SERVER_ENV,
    Received,
    Receiver,
    WorkerProcess,
    readme_verify,
    start_receiver,
)

HOOKS = f"{API}/webhooks"
verify = readme_verify()


@pytest.fixture(scope="module", params=per_backend("webhooks"))
def hook_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from shared_server(request, tmp_path_factory, SERVER_ENV)


@pytest.fixture(scope="module")
def worker(hook_server: ServerProcess) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(hook_server)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = start_receiver()
    yield rec
    rec.server.shutdown()


@pytest.fixture
def api(hook_server: ServerProcess, worker: WorkerProcess) -> Api:
    return remote_api(hook_server.url)


def _hook(user: User, receiver: Receiver, path: str, **body: Any) -> dict[str, Any]:
    events = body.pop("events", ["created", "updated", "moved", "deleted", "access_lost"])
    r = user.post(HOOKS, json={"url": receiver.base + path, "events": events, **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _signed(got: list[Received], secret: str) -> list[dict[str, Any]]:
    """The bodies, each checked against its signature (the README's verify)."""
    for r in got:
        assert verify(secret, r.headers["Docstore-Signature"], r.body), r.headers
        assert not verify("whsec_wrong", r.headers["Docstore-Signature"], r.body)
    return [r.json for r in got]


def _deliveries(user: User, hook_id: int) -> list[dict[str, Any]]:
    r = user.get(f"{HOOKS}/{hook_id}/deliveries", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_signed_in_order_and_at_least_once_across_a_worker_kill(
    api: Api, receiver: Receiver, worker: WorkerProcess
) -> None:
    ann = api.register()
    path = f"/order/{ann.id}"
    hook = _hook(ann, receiver, path)
    # A second webhook, scoped to one folder: only what happens in there.
    inbox = ann.mkdir("Inbox")
    scoped = _hook(ann, receiver, f"/scoped/{ann.id}", events=["created"], folder_id=inbox["id"])
    inbox_docs = [upload(ann, "first.txt", b"1", inbox["id"])]
    docs = [upload(ann, f"d{i}.txt", b"x" * i) for i in range(1, 4)]
    got = _signed(receiver.wait_for(path, lambda g: len(g) >= 5), hook["secret"])
    first = [("created", inbox["id"]), ("created", inbox_docs[0]["id"])]
    assert [(c["op"], c["id"]) for c in got[:2]] == first
    got = got[2:]
    assert [(c["op"], c["id"], c["entry"]["name"]) for c in got] == [
        ("created", d["id"], d["name"]) for d in docs
    ]
    seqs = [c["seq"] for c in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert {c["webhook_id"] for c in got} == {hook["id"]}

    # The worker is killed while the receiver holds the next delivery: its answer is never
    # recorded, so the restarted worker sends that change again, then the next one.
    held, arrived = receiver_hold(receiver, path)
    d4 = upload(ann, "d4.txt", b"four")
    assert arrived.wait(60), "the held delivery never arrived"
    worker.kill()
    held.set()
    d5 = upload(ann, "d5.txt", b"five")
    worker.start()
    got = _signed(
        receiver.wait_for(path, lambda g: any(r.json["id"] == d5["id"] for r in g)),
        hook["secret"],
    )
    ids = [c["id"] for c in got][2:]
    assert ids[:3] == [d["id"] for d in docs]
    assert ids[3:] == [d4["id"]] * (len(ids) - 4) + [d5["id"]] and ids.count(d4["id"]) >= 2
    seqs = [c["seq"] for c in got]
    assert seqs == sorted(seqs)  # never N+1 before N

    # The receiver has the last change; the worker records its answer just after: wait for
    # that (bounded), as the attempt is written once the POST returns.
    attempts = _deliveries(ann, hook["id"])
    for _ in range(300):
        if {a["change_seq"] for a in attempts if a["status"] == "delivered"} >= set(seqs):
            break
        time.sleep(0.1)
        attempts = _deliveries(ann, hook["id"])
    d4_seq = next(c["seq"] for c in got if c["id"] == d4["id"])
    cut = [a for a in attempts if a["change_seq"] == d4_seq and a["status"] == "failed"]
    assert cut and "Interrupted" in cut[-1]["error"]
    done = [a for a in attempts if a["status"] == "delivered"]
    assert {a["change_seq"] for a in done} == set(seqs)
    assert all(a["response_code"] == 200 and a["latency_ms"] is not None for a in done)

    # The scoped webhook saw only the folder's documents (and, at least once, each).
    inbox_docs.append(upload(ann, "second.txt", b"2", inbox["id"]))
    last = inbox_docs[1]["id"]
    in_scope = _signed(
        receiver.wait_for(f"/scoped/{ann.id}", lambda g: any(r.json["id"] == last for r in g)),
        scoped["secret"],
    )
    assert list(dict.fromkeys(c["id"] for c in in_scope)) == [d["id"] for d in inbox_docs]
    assert [c["entry"]["path"] for c in in_scope][-1] == "/second.txt"


def receiver_hold(receiver: Receiver, path: str) -> tuple[Any, Any]:
    held, arrived = threading.Event(), threading.Event()
    with receiver.lock:
        receiver.hold[path] = held
        receiver.arrived[path] = arrived
    return held, arrived


def test_a_failing_receiver_is_retried_then_disabled_then_resumed(
    api: Api, receiver: Receiver
) -> None:
    bob = api.register()
    path = f"/fail/{bob.id}"
    receiver.status[path] = 500
    hook = _hook(bob, receiver, path, events=["created"])
    doc = upload(bob, "report.txt", b"numbers")
    base = f"{HOOKS}/{hook['id']}"
    shown: dict[str, Any] = {}

    def disabled(_: list[Received]) -> bool:
        shown.update(bob.get(base).json())
        return shown["active"] is False

    receiver.wait_for(path, disabled)
    got = _signed(receiver.at(path), hook["secret"])
    # Retried (the retry window is 3 s, the first delay 0.2 s doubling to 0.5 s): several
    # attempts, all at the same change, and no more than the backoff allows.
    assert 3 <= len(got) <= 16
    assert {c["id"] for c in got} == {doc["id"]} and len({c["seq"] for c in got}) == 1
    assert "HTTP 500" in shown["disabled_reason"] and "3 s" in shown["disabled_reason"]
    attempts = _deliveries(bob, hook["id"])
    assert [a["attempt"] for a in reversed(attempts)] == list(range(1, len(attempts) + 1))
    assert {(a["status"], a["response_code"]) for a in attempts} == {("failed", 500)}
    assert all(a["error"] == "HTTP 500" for a in attempts)

    # Fixed and resumed: it continues from the change that failed.
    receiver.status[path] = 200
    r = bob.patch(base, json={"active": True})
    assert r.status_code == 200 and r.json()["disabled_reason"] is None
    receiver.wait_for(path, lambda g: len(g) > len(got))
    assert bob.get(base).json()["active"] is True
    delivered = [a for a in _deliveries(bob, hook["id"]) if a["status"] == "delivered"]
    assert [a["change_seq"] for a in delivered] == [got[0]["seq"]]

    # Redelivery: the same change once more, marked as such.
    r = bob.post(f"{base}/deliveries/{delivered[0]['id']}/redeliver")
    assert r.status_code == 202 and r.json()["redelivery"] is True
    again = receiver.wait_for(path, lambda g: len(g) > len(got) + 1)
    assert _signed(again, hook["secret"])[-1]["seq"] == got[0]["seq"]


def test_a_revoked_share_stops_deliveries(api: Api, receiver: Receiver) -> None:
    ann, bob = api.register(), api.register()
    shared = ann.mkdir("Shared")
    share = share_with(ann, bob, "VIEW", folder_id=shared["id"])
    path = f"/revoked/{bob.id}"
    hook = _hook(bob, receiver, path)
    base = f"{HOOKS}/{hook['id']}"
    one = upload(ann, "one.txt", b"1", shared["id"])
    got = _signed(receiver.wait_for(path, lambda g: len(g) >= 1), hook["secret"])
    assert [(c["op"], c["id"]) for c in got] == [("created", one["id"])]
    assert got[0]["entry"]["path"] == "/Shared/one.txt"

    # A change made while shared but not yet delivered when the share ends is never sent:
    # what counts is what Bob sees at delivery time.
    assert bob.patch(base, json={"active": False}).status_code == 200
    two = upload(ann, "two.txt", b"2", shared["id"])
    assert ann.delete(f"{API}/shares/{share['id']}").status_code == 204
    assert bob.patch(base, json={"active": True}).status_code == 200
    three = upload(ann, "three.txt", b"3", shared["id"])
    mine = upload(bob, "mine.txt", b"bob's own")
    got = _signed(
        receiver.wait_for(path, lambda g: any(r.json["id"] == mine["id"] for r in g)),
        hook["secret"],
    )
    # Documents and folders number apart: an item is its kind and id.
    items = [(c["kind"], c["id"]) for c in got]
    assert ("document", two["id"]) not in items and ("document", three["id"]) not in items
    assert ("access_lost", shared["id"], None) in [(c["op"], c["id"], c["entry"]) for c in got]
    assert got[-1]["op"] == "created" and got[-1]["entry"]["name"] == "mine.txt"
