"""GET /audit: who sees what, filters, cursor pagination, validation, and that an index
serves every filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from docstore.audit.repository import AuditFilter, Position, readable_statements
from docstore.audit.service import Action
from docstore.db import Database
from docstore.pagination import encode_cursor
from tests.audit.helpers import entries, make_admin, services, share_directly
from tests.fixtures.app import Api


def _actions(items: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    return sorted((e["action"], e["user_id"]) for e in items)


def test_visibility_owner_sharee_stranger_admin(api: Api) -> None:
    ann, bob, carol = (
        api.register("ann", verify=False),
        api.register("bob", verify=False),
        api.register("carol", verify=False),
    )
    admin = make_admin(api, api.register("root", verify=False))
    doc = ann.upload("plan.txt", b"the plan").json()
    share_directly(api, ann, bob, doc["id"], 1)
    assert bob.get(f"/api/v1/documents/{doc['id']}").status_code == 200
    assert bob.get(f"/api/v1/documents/{doc['id']}/download").status_code == 307
    bob_doc = bob.upload("bob.txt", b"bob's own").json()
    failed = api.client.post("/api/v1/auth/login", json={"email": ann.email, "password": "x"})
    assert failed.status_code == 401

    # The owner sees the sharee's reads of her document, not the sharee's other actions.
    assert _actions(entries(ann, document_id=doc["id"])) == [
        ("DOWNLOAD", bob.id),
        ("UPLOAD", ann.id),
        ("VIEW", bob.id),
    ]
    # Besides, she sees the failed sign-in on her own account.
    assert _actions(entries(ann)) == sorted(
        [*_actions(entries(ann, document_id=doc["id"])), ("LOGIN_FAILED", ann.id)]
    )
    assert _actions(entries(ann, user_id=bob.id)) == [("DOWNLOAD", bob.id), ("VIEW", bob.id)]
    assert entries(ann, document_id=bob_doc["id"]) == []

    # The sharee sees his own actions, on her document too, but not hers.
    assert _actions(entries(bob)) == [("DOWNLOAD", bob.id), ("UPLOAD", bob.id), ("VIEW", bob.id)]
    assert _actions(entries(bob, document_id=doc["id"])) == [("DOWNLOAD", bob.id), ("VIEW", bob.id)]
    assert entries(bob, user_id=ann.id) == []

    # A stranger's query about someone else's document is an empty list, not an error.
    for params in ({"document_id": doc["id"]}, {"user_id": ann.id}, {}, {"action": "VIEW"}):
        r = carol.get("/api/v1/audit", params=params)
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, params

    # An admin sees everything, the failed sign-in on ann's account included.
    everything = entries(admin)
    assert _actions(everything) == [
        ("DOWNLOAD", bob.id),
        ("LOGIN_FAILED", ann.id),
        ("UPLOAD", ann.id),
        ("UPLOAD", bob.id),
        ("VIEW", bob.id),
    ]
    assert [e["action"] for e in entries(admin, action="LOGIN_FAILED")] == ["LOGIN_FAILED"]
    assert api.client.get("/api/v1/audit").status_code == 401


def test_pagination_filters_and_order(api: Api) -> None:
    ann, bob = api.register("ann", verify=False), api.register("bob", verify=False)
    mine = [ann.upload(f"f{i}.txt", b"x" * (i + 1)).json() for i in range(3)]
    theirs = bob.upload("shared.txt", b"y").json()
    share_directly(api, bob, ann, theirs["id"], 1)
    for d in mine:
        assert ann.patch(f"/api/v1/documents/{d['id']}", json={"name": d["name"] + ".bak"})
    for _ in range(2):  # ann's own actions on bob's document: the second visibility branch
        assert ann.get(f"/api/v1/documents/{theirs['id']}").status_code == 200

    full = ann.get("/api/v1/audit", params={"limit": 1000}).json()
    assert full["next_cursor"] is None and len(full["items"]) == 8
    keys = [(e["timestamp"], e["id"]) for e in full["items"]]
    assert keys == sorted(keys, reverse=True)  # newest first
    for limit in (1, 3):
        paged = entries(ann, limit=limit)
        assert [e["id"] for e in paged] == [e["id"] for e in full["items"]]

    views = entries(ann, action="VIEW")
    assert len(views) == 2 and all(v["document_id"] == theirs["id"] for v in views)
    middle = full["items"][4]["timestamp"]
    newer = entries(ann, since=middle)
    older = entries(ann, until=middle)
    assert [e["id"] for e in newer + older] == [e["id"] for e in full["items"]]
    assert all(e["timestamp"] >= middle for e in newer)
    naive = datetime.fromisoformat(middle).astimezone(UTC).replace(tzinfo=None).isoformat()
    assert [e["id"] for e in entries(ann, since=naive)] == [e["id"] for e in newer]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"cursor": "not a cursor!"}, 400, "bad_request"),
        ({"cursor": encode_cursor({"t": 1})}, 400, "bad_request"),
        ({"cursor": encode_cursor({"t": "2026-01-01", "i": 1})}, 400, "bad_request"),  # naive
        (
            {"cursor": encode_cursor({"t": "2026-01-01T00:00:00+00:00", "i": 10**21})},
            400,
            "bad_request",
        ),
        ({"limit": 0}, 422, "validation_error"),
        ({"limit": 1001}, 422, "validation_error"),
        ({"action": "EXPLODE"}, 422, "validation_error"),
        ({"since": "yesterday"}, 422, "validation_error"),
    ],
)
def test_bad_queries_are_problems(api: Api, params: dict[str, Any], status: int, code: str) -> None:
    ann = api.register(verify=False)
    r = ann.get("/api/v1/audit", params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


def _explain(database: Database, stmt: Any) -> str:
    compiled = stmt.compile(database.engine, compile_kwargs={"literal_binds": True})
    with database.engine.connect() as conn:
        if database.is_postgres:
            rows = conn.execute(text(f"EXPLAIN {compiled}")).all()
            return "\n".join(r[0] for r in rows)
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
        return "\n".join(r[-1] for r in rows)


def test_an_index_serves_every_filter(api: Api) -> None:
    database = services(api).database
    now = datetime.now(UTC)
    # Enough rows, spread over owners, users, documents and actions, for the planner to care.
    actions = list(Action)
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (user_id, document_id, owner_id, action, timestamp) "
                "VALUES (:u, :d, :o, :a, :t)"
            ),
            [
                {
                    "u": i % 50,
                    "d": i % 500,
                    "o": (i * 7) % 50,
                    "a": actions[i % len(actions)].value,
                    "t": (now - timedelta(seconds=i)).replace(tzinfo=None)
                    if not database.is_postgres
                    else now - timedelta(seconds=i),
                }
                for i in range(5000)
            ],
        )
        conn.execute(text("ANALYZE"))
    week = now - timedelta(days=7)
    cases = [
        AuditFilter(),
        AuditFilter(document_id=7),
        AuditFilter(user_id=3),
        AuditFilter(action="VIEW"),
        AuditFilter(since=week),
        AuditFilter(since=week, until=now),
        AuditFilter(document_id=7, action="VIEW", since=week),
        AuditFilter(user_id=3, until=now),
    ]
    page_end = Position(now - timedelta(seconds=10), 10)
    for is_admin in (True, False):
        for filters in cases:
            for before in (None, page_end):
                for stmt in readable_statements(3, is_admin, filters, before):
                    plan = _explain(database, stmt.limit(101))
                    where = f"admin={is_admin} {filters} {before}:\n{plan}"
                    assert "Seq Scan on audit_log" not in plan, where
                    assert "SCAN audit_log\n" not in plan + "\n", where
                    assert "ix_audit_log_" in plan, where
