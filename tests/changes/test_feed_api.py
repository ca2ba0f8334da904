"""The change feed's HTTP contract, in-process on both databases: cursors (scoped, bad,
expired), entries and paths, what a sharee and a stranger see, and no row for a write that
failed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from docstore.pagination import decode_cursor, encode_cursor
from tests.changes.helpers import API
from tests.fixtures.app import Api, User
from tests.sharing.conftest import cheap_hasher


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from docstore import security

    monkeypatch.setattr(security, "_hasher", cheap_hasher())


def _cursor(user: User, **params: Any) -> str:
    r = user.get(f"{API}/changes/cursor", params=params)
    assert r.status_code == 200, r.text
    return str(r.json()["cursor"])


def _ops(user: User, cursor: str) -> list[tuple[str, str, int, str | None]]:
    r = user.get(f"{API}/changes", params={"cursor": cursor})
    assert r.status_code == 200, r.text
    return [
        (c["op"], c["kind"], c["id"], (c["entry"] or {}).get("path")) for c in r.json()["changes"]
    ]


def test_sharee_gets_access_changes_and_stranger_nothing(api: Api) -> None:
    ann, bob, eve = api.register(), api.register(), api.register()
    ca, cb, ce = _cursor(ann), _cursor(bob), _cursor(eve)
    team = ann.mkdir("team")
    private = ann.mkdir("private")
    doc = ann.upload("a.txt", b"a", team["id"]).json()
    r = ann.post(
        f"{API}/shares", json={"folder_id": team["id"], "email": bob.email, "permission": "VIEW"}
    )
    assert r.status_code == 201, r.text
    cb2 = _cursor(bob)
    assert ann.post(f"{API}/documents/{doc['id']}/versions", content=b"b").status_code == 201
    moved = ann.patch(f"{API}/documents/{doc['id']}", json={"parent_folder_id": private["id"]})
    assert moved.status_code == 200
    assert ann.delete(f"{API}/shares/{r.json()['id']}").status_code == 204

    assert _ops(ann, ca) == [
        ("created", "folder", team["id"], "/team"),
        ("created", "folder", private["id"], "/private"),
        ("created", "document", doc["id"], "/private/a.txt"),  # entries are as of now
        ("updated", "document", doc["id"], "/private/a.txt"),
        ("moved", "document", doc["id"], "/private/a.txt"),
    ]
    assert _ops(bob, cb) == [
        ("access_gained", "folder", team["id"], None),  # revoked since: no entry now
        ("updated", "document", doc["id"], None),
        ("access_lost", "document", doc["id"], None),  # moved out of the shared folder
        ("access_lost", "folder", team["id"], None),
    ]
    assert [op for op, *_ in _ops(bob, cb2)] == ["updated", "access_lost", "access_lost"]
    assert _ops(eve, ce) == []  # a stranger learns not even an id


def test_paths_from_the_shared_folder_and_scoped_cursor(api: Api) -> None:
    ann, bob = api.register(), api.register()
    team = ann.mkdir("team")
    sub = ann.mkdir("sub", team["id"])
    r = ann.post(
        f"{API}/shares", json={"folder_id": team["id"], "email": bob.email, "permission": "EDIT"}
    )
    assert r.status_code == 201
    cb, scoped = _cursor(bob), _cursor(ann, folder_id=sub["id"])
    other = ann.mkdir("other")
    doc = bob.upload("b.txt", b"b", sub["id"]).json()
    assert _ops(bob, cb) == [("created", "document", doc["id"], "/team/sub/b.txt")]
    assert _ops(ann, scoped) == [("created", "document", doc["id"], "/b.txt")]
    moved = ann.patch(f"{API}/documents/{doc['id']}", json={"parent_folder_id": other["id"]})
    assert moved.status_code == 200
    # Moved out of the subtree: in the scoped feed, with no entry (the client drops it).
    assert _ops(ann, scoped)[-1] == ("moved", "document", doc["id"], None)
    assert bob.get(f"{API}/changes/cursor", params={"folder_id": other["id"]}).status_code == 404


def test_failed_write_leaves_no_change_and_bad_cursors(api: Api) -> None:
    ann = api.register()
    cursor = _cursor(ann)
    ann.mkdir("same")
    assert ann.post(f"{API}/folders", json={"name": "same", "parent_id": None}).status_code == 409
    assert [op for op, *_ in _ops(ann, cursor)] == ["created"]

    assert ann.get(f"{API}/changes", params={"cursor": "not-a-cursor"}).status_code == 400
    old = decode_cursor(cursor)
    assert old is not None
    expired = encode_cursor({**old, "t": int(time.time()) - 31 * 86400})
    r = ann.get(f"{API}/changes", params={"cursor": expired})
    assert (r.status_code, r.json()["code"]) == (410, "cursor_expired")
    r = ann.get(f"{API}/changes/wait", params={"cursor": expired, "timeout": 1})
    assert r.status_code == 410
    anonymous = api.client.get(f"{API}/changes", params={"cursor": cursor})
    assert anonymous.status_code == 401
    page = ann.get(f"{API}/changes", params={"cursor": cursor, "limit": 1001})
    assert page.status_code == 422


def test_share_expiry_and_level_change_reach_the_sharee(api: Api) -> None:
    """An expiry is not a write: the `changes.share_expiry` job announces it (once), a new
    expiry on the same share grants again, and a level change is an `updated` entry."""
    from datetime import UTC, datetime, timedelta

    from docstore.changes.tasks import notice_share_expiry

    svc = api.client.app.state.services  # type: ignore[attr-defined]
    ann, bob, eve = api.register(), api.register(), api.register()
    team = ann.mkdir("team")
    inner = ann.mkdir("inner", team["id"])
    doc = ann.upload("a.txt", b"a", inner["id"]).json()
    soon = datetime.now(UTC) + timedelta(seconds=2)
    folder_share = ann.post(
        f"{API}/shares",
        json={
            "folder_id": team["id"],
            "email": bob.email,
            "permission": "VIEW",
            "expires_at": soon.isoformat(),
        },
    )
    assert folder_share.status_code == 201, folder_share.text
    # The document inside stays shared with bob another way, without expiry.
    r = ann.post(
        f"{API}/shares", json={"document_id": doc["id"], "email": bob.email, "permission": "VIEW"}
    )
    assert r.status_code == 201, r.text
    cb, ce = _cursor(bob), _cursor(eve)

    assert notice_share_expiry(svc) == {"noticed": 0}  # not expired yet: nothing announced
    assert _ops(bob, cb) == []
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    assert bob.get(f"{API}/folders/{team['id']}").status_code == 404  # gone at once
    assert notice_share_expiry(svc) == {"noticed": 1}
    assert notice_share_expiry(svc) == {"noticed": 0}  # announced once
    assert _ops(bob, cb) == [
        ("access_lost", "folder", team["id"], None),
        ("access_gained", "document", doc["id"], "/a.txt"),  # as shared to bob
    ]

    cb2 = _cursor(bob)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    share_id = folder_share.json()["id"]
    r = ann.patch(f"{API}/shares/{share_id}", json={"expires_at": later})
    assert r.status_code == 200, r.text
    assert _ops(bob, cb2) == [("access_gained", "folder", team["id"], "/team")]

    cb3 = _cursor(bob)
    r = ann.patch(f"{API}/shares/{share_id}", json={"permission": "EDIT"})
    assert r.status_code == 200, r.text
    changes = bob.get(f"{API}/changes", params={"cursor": cb3}).json()["changes"]
    assert [(c["op"], c["id"], c["entry"]["permission"]) for c in changes] == [
        ("updated", team["id"], "EDIT")
    ]
    assert _ops(eve, ce) == []  # a stranger hears of none of it


def test_savepoints_keep_released_rows_drop_rolled_back_ones_and_lock_only_at_commit(
    api: Api,
) -> None:
    """The write group and the batch upload run each upload in a savepoint of one
    transaction: a released savepoint's rows wait for the real commit (the append lock is
    not taken at a savepoint: held there, it deadlocked with writers holding a folder row
    — the soak's 503), and a rolled-back savepoint's rows are dropped, not the others'."""
    from sqlalchemy import text

    from docstore.changes import service as changes
    from docstore.folders.models import Folder

    svc = api.client.app.state.services  # type: ignore[attr-defined]
    ann = api.register()
    a, b, c = ann.mkdir("a"), ann.mkdir("b"), ann.mkdir("c")
    cursor = _cursor(ann)

    def item(folder: dict[str, Any]) -> changes.Item:
        return changes.folder_item(db.get_one(Folder, folder["id"]))

    def advisory_locks(db: Any) -> int:
        if db.get_bind().dialect.name != "postgresql":
            return 0
        sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        return int(db.execute(text(sql)).scalar_one())

    with svc.database.transaction() as db:
        with db.begin_nested():
            changes.append(db, None, item(a), changes.Op.UPDATED, [ann.id])
        assert advisory_locks(db) == 0
        try:
            with db.begin_nested():
                changes.append(db, None, item(b), changes.Op.UPDATED, [ann.id])
                raise RuntimeError("this upload fails alone")
        except RuntimeError:
            pass
        with db.begin_nested():
            changes.append(db, None, item(c), changes.Op.UPDATED, [ann.id])
        assert advisory_locks(db) == 0
    assert [(op, i) for op, _, i, _ in _ops(ann, cursor)] == [
        ("updated", a["id"]),
        ("updated", c["id"]),
    ]
