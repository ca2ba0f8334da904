"""The admin console's API: account search, disable/enable, storage totals and job runs,
the retention preview, the audit chain's status, verification and export."""

from __future__ import annotations

import csv
import io
import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from docstore.app import create_app
from docstore.config import Settings
from docstore.retention import fsck, runs
from docstore.retention.models import JobRunRecord
from docstore.retention.worker import Worker, load_jobs
from docstore.users.models import User as UserRow
from tests.fixtures.app import BASE, Api, User
from tests.retention.helpers import make_admin, put_plan, save, services, set_plan

A = "/api/v1/admin"
ADMIN_ROUTES = [
    ("GET", f"{A}/users"),
    ("POST", f"{A}/users/1/disable"),
    ("POST", f"{A}/users/1/enable"),
    ("GET", f"{A}/storage"),
    ("GET", f"{A}/retention/preview"),
    ("GET", f"{A}/audit/status"),
    ("POST", f"{A}/audit/verify"),
    ("GET", f"{A}/audit/export"),
]


def test_non_admins_get_403_on_every_admin_console_route(api: Api) -> None:
    """As the other /admin routes: a signed-in non-admin is forbidden, anonymous is 401."""
    hal = api.register("hal")
    for method, path in ADMIN_ROUTES:
        r = hal.request(method, path)
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), (method, path)
        assert api.client.request(method, path).status_code == 401, (method, path)


def _accounts(api: Api, *names: str) -> list[str]:
    """Accounts that only need to be found (no password to check): rows, without the cost
    of hashing a password each."""
    with services(api).database.transaction() as db:
        db.add_all(
            UserRow(email=f"{n}@example.com", name=n.title(), password_hash="!", plan_name="free",
                    quota_bytes=10 * 1024**3, used_bytes=0)
            for n in names
        )  # fmt: skip
    return [f"{n}@example.com" for n in names]


def test_search_users_pages_and_usage(api: Api) -> None:
    admin = make_admin(api, api.register("root"))
    first_person = api.register("person0")
    assert first_person.upload("a.txt", b"x" * 1000).status_code == 201
    people = [first_person.email, *_accounts(api, "person1", "person2", "person3", "person4")]
    _accounts(api, "zed")

    seen: list[dict[str, object]] = []
    for page in admin.pages(f"{A}/users", q="PERSON", limit=2):
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
    assert [u["email"] for u in seen] == people
    first = seen[0]
    assert first["used_bytes"] == 1000 and first["reserved_bytes"] == 0
    assert (first["plan"], first["is_active"], first["is_admin"]) == ("free", True, False)
    assert first["quota_bytes"] == 10 * 1024**3

    # By name (any case), and a pattern character is matched literally.
    r = admin.get(f"{A}/users", params={"q": "zE"})
    assert [u["email"] for u in r.json()["items"]] == ["zed@example.com"]
    assert admin.get(f"{A}/users", params={"q": "%"}).json()["items"] == []
    everyone = admin.get(f"{A}/users").json()
    assert len(everyone["items"]) == 7 and everyone["next_cursor"] is None
    assert admin.get(f"{A}/users", params={"cursor": "nonsense!"}).status_code == 400
    assert admin.get(f"{A}/users", params={"limit": 0}).status_code == 422


def test_disable_stops_tokens_at_once_in_every_process(api: Api, settings: Settings) -> None:
    """No process caches a token's account: disabled through one app, the token fails on a
    second app (another process) at its next request; enabled, it works again."""
    admin = make_admin(api, api.register("root"))
    eve = api.register("eve")
    with TestClient(create_app(settings), base_url=BASE) as other:
        assert other.get("/api/v1/users/me", headers=eve.headers).status_code == 200

        r = admin.post(f"{A}/users/{eve.id}/disable")
        assert r.status_code == 200 and r.json()["is_active"] is False

        assert other.get("/api/v1/users/me", headers=eve.headers).status_code == 401
        assert eve.get("/api/v1/users/me").status_code == 401
        login = {"email": eve.email, "password": "correct horse"}
        assert api.client.post("/api/v1/auth/login", json=login).status_code == 401
        listed = admin.get(f"{A}/users", params={"q": "eve"}).json()["items"]
        assert listed[0]["is_active"] is False

        r = admin.post(f"{A}/users/{eve.id}/enable")
        assert r.status_code == 200 and r.json()["is_active"] is True
        assert other.get("/api/v1/users/me", headers=eve.headers).status_code == 200
        assert api.client.post("/api/v1/auth/login", json=login).status_code == 200


def test_an_admin_cannot_disable_themself(api: Api) -> None:
    admin = make_admin(api, api.register("root"))
    r = admin.post(f"{A}/users/{admin.id}/disable")
    assert (r.status_code, r.json()["code"]) == (409, "conflict")
    assert "your own account" in r.json()["detail"]
    assert admin.get("/api/v1/users/me").status_code == 200
    assert admin.post(f"{A}/users/999999/disable").status_code == 404
    assert admin.post(f"{A}/users/999999/enable").status_code == 404


def _dedup_world(api: Api) -> tuple[User, User, User]:
    admin = make_admin(api, api.register("root"))
    ann, bob = api.register("ann"), api.register("bob")
    same = b"the same bytes " * 100  # 1500 bytes, stored once
    assert ann.upload("a.txt", same).status_code == 201
    assert bob.upload("b.txt", same).status_code == 201
    assert bob.upload("c.txt", b"other").status_code == 201
    return admin, ann, bob


def test_storage_totals_dedup_savings_pending_gc_and_last_runs(api: Api) -> None:
    admin, _, bob = _dedup_world(api)
    r = admin.get(f"{A}/storage")
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["users"], s["documents"], s["versions"]) == (3, 3, 3)
    assert s["logical_bytes"] == 1500 + 1500 + 5 == s["used_bytes"]
    assert s["referenced_bytes"] == 1505 and s["stored_bytes"] == 1505
    assert s["dedup_saved_bytes"] == 1500
    assert s["blobs"]["active"] == {"count": 2, "bytes": 1505}
    assert s["pending_gc"] == {"count": 0, "bytes": 0}
    assert set(s["last_runs"]) == {"retention.versions", "blobs.gc", "fsck", "audit.verify"}
    assert all(run is None for run in s["last_runs"].values())

    # A purged document's blob waits for the GC (inside its grace period).
    doc = bob.get("/api/v1/folders/root/children").json()["items"]
    other = next(d for d in doc if d["name"] == "c.txt")
    assert bob.delete(f"/api/v1/documents/{other['id']}").status_code == 204
    assert bob.delete(f"/api/v1/trash/{other['id']}").status_code == 204
    s = admin.get(f"{A}/storage").json()
    assert s["pending_gc"] == {"count": 1, "bytes": 5}
    assert s["pending_gc_due"] == {"count": 0, "bytes": 0}  # inside the grace period
    assert s["dedup_saved_bytes"] == 1500 and s["referenced_bytes"] == 1500

    svc = services(api)
    report = fsck.run(svc)
    worker = Worker(svc, jobs={"blobs.gc": load_jobs()["blobs.gc"]})
    gc_run = worker.run_job(worker.jobs["blobs.gc"], force=True)
    assert gc_run is not None and gc_run.ok
    assert admin.post(f"{A}/retention/run").status_code == 200

    last = admin.get(f"{A}/storage").json()["last_runs"]
    assert last["fsck"]["ok"] is report.ok is True
    assert last["fsck"]["summary"]["errors"] == 0
    assert last["blobs.gc"]["ok"] is True and last["blobs.gc"]["summary"]["ok"] is True
    assert last["retention.versions"]["summary"]["trigger"] == "admin"
    assert last["retention.versions"]["started_at"] <= last["retention.versions"]["finished_at"]


def test_only_the_newest_runs_of_a_job_are_kept(api: Api) -> None:
    svc = services(api)
    for i in range(runs.KEEP + 3):
        runs.timed(svc.database, "test.job", lambda i=i: i, lambda n: runs.Outcome(True, {"n": n}))
    with svc.database.transaction() as db:
        count = db.scalar(select(func.count()).where(JobRunRecord.name == "test.job"))
        newest = runs.latest(db, ["test.job"])["test.job"]
    assert count == runs.KEEP
    assert newest.summary == {"n": runs.KEEP + 2}


def test_retention_preview_lists_what_a_run_would_delete(api: Api) -> None:
    admin = make_admin(api, api.register("root"))
    ann = api.register("ann")
    put_plan(admin, "tight", max_versions=1, retention_days=0)
    set_plan(admin, ann, "tight")
    doc = ann.upload("notes.txt", b"v1").json()
    save(ann, doc["id"], b"v2 longer")
    save(ann, doc["id"], b"v3")

    r = admin.get(f"{A}/retention/preview")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["truncated"] is False
    assert [(i["document_name"], i["version_number"]) for i in body["items"]] == [
        ("notes.txt", 1),
        ("notes.txt", 2),
    ]
    assert body["items"][0]["owner_email"] == ann.email
    assert sum(i["size_bytes"] for i in body["items"]) == 2 + 9
    one = admin.get(f"{A}/retention/preview", params={"limit": 1}).json()
    assert len(one["items"]) == 1 and one["truncated"] is True

    dry = admin.post(f"{A}/retention/run", params={"dry_run": "true"}).json()
    assert (dry["versions_deleted"], dry["bytes_released"]) == (2, 11)
    # A dry run changes nothing and is not recorded as a run.
    assert len(admin.get(f"{A}/retention/preview").json()["items"]) == 2
    assert admin.get(f"{A}/storage").json()["last_runs"]["retention.versions"] is None


def test_audit_status_verify_and_export(api: Api) -> None:
    admin = make_admin(api, api.register("root"))
    ann = api.register("ann")
    ann.upload("a.txt", b"abc")
    r = admin.get(f"{A}/audit/status")
    assert r.status_code == 200 and r.json() == {"last_verification": None}

    r = admin.post(f"{A}/audit/verify")
    assert r.status_code == 200, r.text
    verdict = r.json()
    assert verdict["ok"] is True and verdict["first_broken_id"] is None
    status = admin.get(f"{A}/audit/status").json()["last_verification"]
    assert status["ok"] is True and status["summary"]["checked"] == verdict["checked"]

    r = admin.get(f"{A}/audit/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert any(e["action"] == "UPLOAD" and e["user_id"] == ann.id for e in lines)
    r = admin.get(f"{A}/audit/export", params={"format": "csv"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["id"] for row in rows] == [str(e["id"]) for e in lines]
    assert admin.get(f"{A}/audit/export", params={"format": "xml"}).status_code == 422
    later = admin.get(f"{A}/audit/export", params={"since": "2999-01-01T00:00:00Z"})
    assert later.status_code == 200 and later.text == ""
