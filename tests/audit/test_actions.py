"""Every action of API.md's list leaves exactly one entry with the right fields, and a
request that fails mid-transaction leaves none."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from docstore.app import create_app
from docstore.audit.models import AuditLog
from docstore.audit.service import Action
from docstore.documents import service as documents_service
from docstore.documents.models import Document
from tests.audit.helpers import entries, make_admin, services
from tests.fixtures.app import BASE, Api, make_settings
from tests.fixtures.app import User as ApiUser
from tests.fixtures.mail import token_of
from tests.fixtures.services import missing

PASSWORD = "correct horse"


def api_md_actions() -> set[str]:
    """The actions API.md's Audit section says are recorded (`../shared/API.md`: the shared
    directory sits beside the repository, in a checkout as in CI)."""
    path = Path(__file__).resolve().parents[3] / "shared" / "API.md"
    if not path.is_file():
        missing("shared/API.md", f"the contract is not at {path}")
    text = path.read_text()
    found = re.search(r"^Actions recorded:(.*?)\.$", text, re.MULTILINE | re.DOTALL)
    assert found, "API.md has no 'Actions recorded:' list"
    listed = {
        word.strip()
        for span in re.findall(r"`([^`]+)`", found.group(1))
        for word in span.split(",")
    }
    assert all(re.fullmatch(r"[A-Z_]+", word) for word in listed), listed
    return listed


# Actions API.md lists whose endpoints are not built yet, each with the issue that adds it.
# The test checks this is exactly API.md's list less what the server records: implement one
# and it must leave this set (and be walked above).
NOT_BUILT_YET: set[str] = set()


def _mentions(details: dict[str, Any] | None, *candidates: object) -> bool:
    """Whether any candidate appears among the values of `details` (one level deep)."""
    values = list((details or {}).values())
    return any(c in values for c in candidates)


class Walk:
    """Runs one step at a time and returns the single entry the step recorded."""

    def __init__(self, api: Api, auditor: ApiUser) -> None:
        self.api = api
        self.auditor = auditor
        self.last_id = max((e["id"] for e in entries(auditor)), default=0)
        self.seen: list[str] = []

    def step(self, action: Action, do: Callable[[], Any]) -> dict[str, Any]:
        """Run `do`; exactly one new entry, with `action`, the test client's address and a
        timestamp taken during the step."""
        start = datetime.now(UTC) - timedelta(seconds=1)
        do()
        end = datetime.now(UTC) + timedelta(seconds=1)
        new = [e for e in entries(self.auditor) if e["id"] > self.last_id]
        assert [e["action"] for e in new] == [action.value], new
        entry = new[0]
        self.last_id = entry["id"]
        self.seen.append(action.value)
        assert entry["ip_address"] == "testclient"
        assert start <= datetime.fromisoformat(entry["timestamp"]) <= end
        return entry

    def nothing(self, do: Callable[[], Any]) -> None:
        """Run `do`; it records nothing (setup done behind the API's back)."""
        do()
        assert [e for e in entries(self.auditor) if e["id"] > self.last_id] == []


def _ok(r: Any, status: int) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def test_every_action_is_recorded_once_with_its_fields(api: Api) -> None:
    auditor = make_admin(api, api.register("auditor"))
    ann, bob = api.register("ann"), api.register("bob")
    dave = api.register("dave", verify=False)
    ann_ua, bob_ua = {"User-Agent": "walk/ann"}, {"User-Agent": "walk/bob"}
    walk = Walk(api, auditor)

    e = walk.step(
        Action.LOGIN,
        lambda: _ok(
            api.client.post(
                "/api/v1/auth/login",
                json={"email": ann.email, "password": PASSWORD},
                headers=ann_ua,
            ),
            200,
        ),
    )
    assert (e["user_id"], e["document_id"], e["user_agent"]) == (ann.id, None, "walk/ann")

    e = walk.step(
        Action.LOGIN_FAILED,
        lambda: _ok(
            api.client.post(
                "/api/v1/auth/login", json={"email": ann.email, "password": "wrong"}, headers=bob_ua
            ),
            401,
        ),
    )
    # The targeted account is named (its owner sees the attempt); the email is then not kept.
    assert e["user_id"] == ann.id and e["user_agent"] == "walk/bob"
    assert "email" not in (e["details"] or {})

    folder = ann.mkdir("reports")
    doc: dict[str, Any] = {}

    def upload() -> None:
        doc.update(_ok(ann.upload("q1.txt", b"first draft\n", headers=ann_ua), 201))

    e = walk.step(Action.UPLOAD, upload)
    doc_id, v1 = doc["id"], doc["current_version"]["id"]
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (ann.id, doc_id, ann.id)
    assert e["user_agent"] == "walk/ann"
    assert e["details"]["version_number"] == 1 and e["details"]["version_id"] == v1

    share: dict[str, Any] = {}

    def share_it() -> None:
        body = {"document_id": doc_id, "permission": "COMMENT", "email": bob.email}
        share.update(_ok(ann.post("/api/v1/shares", json=body, headers=ann_ua), 201))

    e = walk.step(Action.SHARE, share_it)
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (ann.id, doc_id, ann.id)
    assert e["share_id"] == share["id"]
    assert _mentions(e["details"], bob.id, bob.email), e["details"]
    assert _mentions(e["details"], "COMMENT", 2), e["details"]

    e = walk.step(
        Action.VIEW, lambda: _ok(bob.get(f"/api/v1/documents/{doc_id}", headers=bob_ua), 200)
    )
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (bob.id, doc_id, ann.id)
    assert e["user_agent"] == "walk/bob"

    e = walk.step(
        Action.DOWNLOAD,
        lambda: _ok(
            bob.get(
                f"/api/v1/documents/{doc_id}/download",
                params={"redirect": "false"},
                headers=bob_ua,
            ),
            200,
        ),
    )
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (bob.id, doc_id, ann.id)
    assert e["details"]["version_id"] == v1

    e = walk.step(
        Action.COMMENT,
        lambda: _ok(
            bob.post(
                f"/api/v1/documents/{doc_id}/comments",
                json={"body": "Looks good."},
                headers=bob_ua,
            ),
            201,
        ),
    )
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (bob.id, doc_id, ann.id)

    link: dict[str, Any] = {}

    def make_link() -> None:
        body = {"document_id": doc_id, "permission": "VIEW", "link": True}
        link.update(_ok(ann.post("/api/v1/shares", json=body, headers=ann_ua), 201))

    walk.step(Action.SHARE, make_link)
    e = walk.step(
        Action.DOWNLOAD,
        lambda: _ok(
            api.client.get(
                f"/api/v1/links/{link['token']}/download", headers={"User-Agent": "walk/anon"}
            ),
            307,
        ),
    )
    # A link download records the link instead of a user.
    assert (e["user_id"], e["share_id"], e["document_id"]) == (None, link["id"], doc_id)
    assert (e["owner_id"], e["user_agent"]) == (ann.id, "walk/anon")

    e = walk.step(
        Action.RENAME,
        lambda: _ok(ann.patch(f"/api/v1/documents/{doc_id}", json={"name": "q1-final.txt"}), 200),
    )
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (ann.id, doc_id, ann.id)
    assert e["details"] == {"old_name": "q1.txt", "new_name": "q1-final.txt"}

    e = walk.step(
        Action.MOVE,
        lambda: _ok(
            ann.patch(f"/api/v1/documents/{doc_id}", json={"parent_folder_id": folder["id"]}),
            200,
        ),
    )
    assert e["details"] == {"from_folder_id": ann.root, "to_folder_id": folder["id"]}

    e = walk.step(
        Action.UPLOAD,
        lambda: _ok(ann.post(f"/api/v1/documents/{doc_id}/versions", content=b"second\n"), 201),
    )
    assert e["details"]["version_number"] == 2 and e["document_id"] == doc_id

    e = walk.step(
        Action.VERSION_DELETE,
        lambda: _ok(ann.delete(f"/api/v1/documents/{doc_id}/versions/{v1}"), 204),
    )
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (ann.id, doc_id, ann.id)
    assert e["details"]["version_id"] == v1 and e["details"]["version_number"] == 1

    e = walk.step(Action.UNSHARE, lambda: _ok(ann.delete(f"/api/v1/shares/{share['id']}"), 204))
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (ann.id, doc_id, ann.id)
    assert e["share_id"] == share["id"]

    e = walk.step(Action.DELETE, lambda: _ok(ann.delete(f"/api/v1/documents/{doc_id}"), 204))
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (ann.id, doc_id, ann.id)

    e = walk.step(Action.RESTORE, lambda: _ok(ann.post(f"/api/v1/documents/{doc_id}/restore"), 200))
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (ann.id, doc_id, ann.id)
    assert e["details"]["to_folder_id"] == folder["id"]

    walk.step(Action.DELETE, lambda: _ok(ann.delete(f"/api/v1/documents/{doc_id}"), 204))
    e = walk.step(Action.PURGE, lambda: _ok(ann.delete(f"/api/v1/trash/{doc_id}"), 204))
    assert (e["user_id"], e["document_id"], e["owner_id"]) == (ann.id, doc_id, ann.id)

    change = {"current_password": PASSWORD, "new_password": "a new pass phrase"}
    e = walk.step(
        Action.PASSWORD_CHANGE,
        lambda: _ok(ann.post("/api/v1/users/me/password", json=change, headers=ann_ua), 204),
    )
    assert (e["user_id"], e["document_id"], e["user_agent"]) == (ann.id, None, "walk/ann")
    assert e["details"]["sessions_ended"] == 1  # the token of the LOGIN step

    group: dict[str, Any] = {}
    e = walk.step(
        Action.GROUP_CREATE,
        lambda: group.update(_ok(ann.post("/api/v1/groups", json={"name": "Design"}), 201)),
    )
    assert e["user_id"] == ann.id and e["details"]["group_id"] == group["id"]
    members = f"/api/v1/groups/{group['id']}/members"
    e = walk.step(
        Action.GROUP_MEMBER_ADD, lambda: _ok(ann.post(members, json={"user_id": bob.id}), 201)
    )
    assert e["user_id"] == ann.id and e["details"]["member_id"] == bob.id
    e = walk.step(Action.GROUP_MEMBER_REMOVE, lambda: _ok(ann.delete(f"{members}/{bob.id}"), 204))
    assert e["user_id"] == ann.id and e["details"]["member_id"] == bob.id

    # WebDAV locks: LOCK and UNLOCK of a document, with the client's user agent.
    held: dict[str, Any] = {}
    walk.step(
        Action.UPLOAD,
        lambda: held.update(_ok(ann.upload("held.txt", b"hold me\n", headers=ann_ua), 201)),
    )
    lockinfo = (
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        b"</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
    )
    answer: dict[str, Any] = {}
    e = walk.step(
        Action.LOCK,
        lambda: answer.update(
            r=ann.request("LOCK", "/dav/files/held.txt", content=lockinfo, headers=ann_ua)
        ),
    )
    assert answer["r"].status_code == 200, answer["r"].text
    assert (e["user_id"], e["document_id"], e["user_agent"]) == (ann.id, held["id"], "walk/ann")
    assert e["details"]["exclusive"] is True
    unlock = {**ann_ua, "Lock-Token": answer["r"].headers["Lock-Token"]}
    e = walk.step(
        Action.UNLOCK,
        lambda: _ok(ann.request("UNLOCK", "/dav/files/held.txt", headers=unlock), 204),
    )
    assert (e["user_id"], e["document_id"]) == (ann.id, held["id"])

    verify = token_of(api.mailed_link(dave.email, "verify_email"))
    e = walk.step(
        Action.EMAIL_VERIFIED,
        lambda: _ok(api.client.post("/api/v1/auth/verify-email", json={"token": verify}), 200),
    )
    assert e["user_id"] == dave.id and e["details"]["email"] == dave.email
    walk.nothing(
        lambda: _ok(api.client.post("/api/v1/auth/password-reset", json={"email": dave.email}), 202)
    )
    reset = {"token": token_of(api.mailed_link(dave.email, "password_reset"))}
    reset["password"] = "a new long passphrase"
    e = walk.step(
        Action.PASSWORD_RESET,
        lambda: _ok(api.client.post("/api/v1/auth/password-reset/confirm", json=reset), 204),
    )
    assert e["user_id"] == dave.id

    # Webhooks: a new destination for the owner's changes, and its end (a public address:
    # the check resolves it, no request is made).
    hook: dict[str, Any] = {}
    body = {"url": "https://8.8.8.8/hook", "events": ["created"]}
    e = walk.step(
        Action.WEBHOOK_CREATE,
        lambda: hook.update(_ok(ann.post("/api/v1/webhooks", json=body), 201)),
    )
    assert e["user_id"] == ann.id and e["details"]["webhook_id"] == hook["id"]
    assert e["details"]["url"] == body["url"] and "secret" not in str(e["details"])
    e = walk.step(
        Action.WEBHOOK_DELETE, lambda: _ok(ann.delete(f"/api/v1/webhooks/{hook['id']}"), 204)
    )
    assert e["user_id"] == ann.id and e["details"]["webhook_id"] == hook["id"]

    # The walk covers API.md's whole list, less the actions of endpoints not built yet.
    listed = api_md_actions()
    assert listed - {a.value for a in Action} == NOT_BUILT_YET, (
        "NOT_BUILT_YET must name exactly the actions of API.md the server does not record yet"
    )
    assert {a.value for a in Action} <= listed, "the server records actions API.md does not list"
    assert set(walk.seen) == listed - NOT_BUILT_YET


@pytest.fixture
def faulty_api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    """The app with server errors answered as 500 instead of raised into the test."""
    app = create_app(make_settings(tmp_path, database_url))
    with TestClient(
        app, base_url=BASE, follow_redirects=False, raise_server_exceptions=False
    ) as client:
        yield Api(client)


def _audit_rows(api: Api) -> list[tuple[str, int | None]]:
    with services(api).database.transaction() as db:
        return [(r.action, r.document_id) for r in db.scalars(select(AuditLog))]


def test_fault_after_record_leaves_no_entry(
    faulty_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = faulty_api.register("ann")
    doc = _ok(ann.upload("a.txt", b"content"), 201)
    before = _audit_rows(faulty_api)

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("injected fault after the RENAME entry was added")

    # update() records RENAME, flushes, then builds the response with document_out.
    monkeypatch.setattr(documents_service, "document_out", boom)
    r = ann.patch(f"/api/v1/documents/{doc['id']}", json={"name": "b.txt"})
    assert r.status_code == 500
    monkeypatch.undo()
    assert _audit_rows(faulty_api) == before
    assert _ok(ann.get(f"/api/v1/documents/{doc['id']}"), 200)["name"] == "a.txt"


def test_fault_after_the_entry_reached_the_database_leaves_nothing(faulty_api: Api) -> None:
    ann = faulty_api.register("ann", verify=False)
    engine = services(faulty_api).database.engine
    written: list[str] = []

    def fail_after_upload_entry(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.startswith("INSERT INTO audit_log") and "UPLOAD" in repr(params):
            written.append(statement)  # the row is in the transaction now
            raise RuntimeError("injected fault after the UPLOAD entry was written")

    event.listen(engine, "after_cursor_execute", fail_after_upload_entry)
    try:
        r = ann.upload("a.txt", b"will not stay")
    finally:
        event.remove(engine, "after_cursor_execute", fail_after_upload_entry)
    assert r.status_code == 500
    assert written
    assert _audit_rows(faulty_api) == []
    with services(faulty_api).database.transaction() as db:
        assert db.scalar(select(Document.id)) is None
    assert ann.me()["used_bytes"] == 0
