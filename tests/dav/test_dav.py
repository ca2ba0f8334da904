"""WebDAV through the in-process app (real database and storage): authentication, the
API-equivalent semantics of each method, bad input, locks seen by the API, and every
permission boundary of tests/sharing held through DAV too."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, func, select, update

from docstore.config import Settings
from docstore.db import Database
from docstore.documents.models import Blob
from docstore.documents.models import Document as DocumentRow
from docstore.documents.write_group import write_group
from docstore.users.models import User as UserRow
from tests.dav.requests import API, DAV, basic, dav, lockinfo
from tests.fixtures.app import Api, User
from tests.web.test_session_security import sign_in

PROPFIND_ETAG = (
    b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
    b"<D:getcontentlength/><D:resourcetype/><D:quota-used-bytes/>"
    b"<D:quota-available-bytes/><X:nope xmlns:X='urn:x'/></D:prop></D:propfind>"
)


def doc_id(user: User, name: str, folder: Any = "root") -> int:
    items = user.get(f"{API}/folders/{folder}/children").json()["items"]
    return int(next(i["id"] for i in items if i["name"] == name))


def test_auth_options_and_401(api: Api) -> None:
    ann = api.register()
    client = api.client
    r = client.request("OPTIONS", "/dav/files/")
    assert r.status_code == 200 and r.headers["DAV"] == "1, 2"
    assert "PROPFIND" in r.headers["Allow"] and "LOCK" in r.headers["Allow"]
    r = client.request("PROPFIND", "/dav/files/", headers={"Depth": "0"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="docstore"')
    # An app password (any API token of the account), the account password, a Bearer token.
    assert dav(ann, "PROPFIND", "/dav/files/", headers={"Depth": "0"}).status_code == 207
    r = client.request(
        "PROPFIND", "/dav/files/", headers={"Depth": "0", **basic(ann, "correct horse")}
    )
    assert r.status_code == 207
    r = ann.request("PROPFIND", "/dav/files/", headers={"Depth": "0"})
    assert r.status_code == 207
    # Wrong password, or another account's token under this email: 401, same answer.
    bob = api.register()
    for headers in (basic(ann, "wrong password!"), basic(ann, bob.token)):
        r = client.request("PROPFIND", "/dav/files/", headers={"Depth": "0", **headers})
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    r = client.request(
        "PROPFIND", "/dav/files/", headers={"Depth": "0", "Authorization": "Basic %%%"}
    )
    assert r.status_code == 401, r.text


def test_put_get_versions_etag_and_conditions(api: Api, settings: Settings) -> None:
    ann = api.register()
    ua = {"User-Agent": "Finder-test/1.0"}
    r = dav(ann, "PUT", f"{DAV}/notes.txt", content=b"first",
            headers={**ua, "Content-Type": "application/octet-stream"})  # fmt: skip
    assert r.status_code == 201
    etag = r.headers["ETag"]
    doc = doc_id(ann, "notes.txt")
    assert ann.get(f"{API}/documents/{doc}").headers["ETag"] == etag  # the API's ETag
    r = dav(ann, "GET", f"{DAV}/notes.txt")
    assert r.status_code == 200 and r.content == b"first" and r.headers["ETag"] == etag
    assert dav(ann, "GET", f"{DAV}/notes.txt", headers={"If-None-Match": etag}).status_code == 304
    r = dav(ann, "GET", f"{DAV}/notes.txt", headers={"Range": "bytes=1-3"})
    assert r.status_code == 206 and r.content == b"irs"
    head = dav(ann, "HEAD", f"{DAV}/notes.txt")
    assert head.headers["content-length"] == "5"
    assert head.headers["content-type"].startswith("text/plain")  # from the name

    # A PUT of an existing document is a new version, through the save path (If-Match).
    r = dav(ann, "PUT", f"{DAV}/notes.txt", content=b"second", headers={"If-Match": etag})
    assert r.status_code == 204
    new_etag = r.headers["ETag"]
    assert new_etag != etag
    versions = ann.get(f"{API}/documents/{doc}/versions").json()["items"]
    assert [v["version_number"] for v in versions] == [2, 1]
    r = dav(ann, "PUT", f"{DAV}/notes.txt", content=b"stale", headers={"If-Match": etag})
    assert r.status_code == 412
    r = dav(ann, "PUT", f"{DAV}/notes.txt", content=b"x", headers={"If-None-Match": "*"})
    assert r.status_code == 412
    assert dav(ann, "GET", f"{DAV}/notes.txt").content == b"second"

    # Chunked transfer encoding (no Content-Length), as Finder sends.
    r = dav(ann, "PUT", f"{DAV}/chunked.bin", content=iter([b"a" * 70_000, b"b" * 70_000]))
    assert r.status_code == 201
    assert dav(ann, "GET", f"{DAV}/chunked.bin").content == b"a" * 70_000 + b"b" * 70_000

    # Identical content deduplicates onto one blob.
    assert dav(ann, "PUT", f"{DAV}/copy-of-notes.txt", content=b"second").status_code == 201
    database = Database(settings.resolved_database_url)
    try:
        with database.transaction() as db:
            digest = versions[0]["checksum_sha256"]
            active = select(func.count()).where(Blob.sha256 == digest, Blob.state == "active")
            assert db.scalar(active) == 1
    finally:
        database.dispose()

    # Audited like the API, with the client's user agent.
    entries = ann.get(f"{API}/audit", params={"document_id": doc}).json()["items"]
    uploads = [e for e in entries if e["action"] == "UPLOAD"]
    assert len(uploads) == 2 and uploads[-1]["user_agent"] == "Finder-test/1.0"


def test_propfind_and_bad_input(api: Api) -> None:
    ann = api.register()
    assert dav(ann, "MKCOL", f"{DAV}/docs").status_code == 201
    assert dav(ann, "PUT", f"{DAV}/docs/a.txt", content=b"hello").status_code == 201
    r = dav(ann, "PROPFIND", f"{DAV}/docs/", headers={"Depth": "1"})
    assert r.status_code == 207
    assert r.text.count("<D:response>") == 2 and "/dav/files/docs/a.txt" in r.text
    r = dav(ann, "PROPFIND", f"{DAV}/docs/a.txt", headers={"Depth": "0"}, content=PROPFIND_ETAG)
    etag = ann.get(f"{API}/documents/{doc_id(ann, 'a.txt', _folder(ann, 'docs'))}")
    assert f"<D:getetag>{etag.headers['ETag']}</D:getetag>" in r.text
    assert "<D:getcontentlength>5</D:getcontentlength>" in r.text and "404 Not Found" in r.text
    r = dav(ann, "PROPFIND", f"{DAV}/", headers={"Depth": "0"}, content=PROPFIND_ETAG)
    assert "<D:quota-used-bytes>5</D:quota-used-bytes>" in r.text
    assert "<D:quota-available-bytes>" in r.text

    r = dav(ann, "PROPFIND", f"{DAV}/", headers={"Depth": "infinity"})
    assert r.status_code == 403 and "propfind-finite-depth" in r.text
    assert dav(ann, "PROPFIND", f"{DAV}/", headers={"Depth": "2"}).status_code == 400
    r = dav(ann, "PROPFIND", f"{DAV}/", headers={"Depth": "0"}, content=b"<D:propfind xmlns")
    assert r.status_code == 400
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&x;</D:displayname></D:prop>'
        b"</D:propfind>"
    )
    r = dav(ann, "PROPFIND", f"{DAV}/", headers={"Depth": "0"}, content=xxe)
    assert r.status_code == 400 and "root:" not in r.text
    # Names the API refuses: 400 with the reason; a missing parent: 409.
    r = dav(ann, "PUT", f"{DAV}/bad%01name.txt", content=b"x")
    assert r.status_code == 400 and "control" in r.text
    assert dav(ann, "PUT", f"{DAV}/nowhere/a.txt", content=b"x").status_code == 409
    assert dav(ann, "MKCOL", f"{DAV}/docs").status_code == 405
    r = dav(ann, "COPY", f"{DAV}/docs/a.txt",
            headers={"Destination": "http://elsewhere.example/dav/files/b.txt"})  # fmt: skip
    assert r.status_code == 502
    r = dav(ann, "MOVE", f"{DAV}/docs/a.txt", headers={"Destination": "/dav/files/docs/"})
    assert r.status_code == 403
    assert dav(ann, "PROPFIND", f"{DAV}/missing", headers={"Depth": "0"}).status_code == 404


def _folder(user: User, name: str, parent: Any = "root") -> int:
    return doc_id(user, name, parent)


def test_quota_507(api: Api, settings: Settings) -> None:
    ann = api.register()
    database = Database(settings.resolved_database_url)
    try:
        with database.transaction() as db:
            db.execute(update(UserRow).where(UserRow.id == ann.id).values(quota_bytes=10))
    finally:
        database.dispose()
    assert dav(ann, "PUT", f"{DAV}/big.bin", content=b"x" * 100).status_code == 507
    # Without a declared length the charge at the save refuses it too.
    r = dav(ann, "PUT", f"{DAV}/big2.bin", content=iter([b"x" * 60, b"y" * 60]))
    assert r.status_code == 507
    assert ann.me()["used_bytes"] == 0


def test_move_copy_delete_trash_and_versions(api: Api) -> None:
    ann = api.register()
    assert dav(ann, "MKCOL", f"{DAV}/a").status_code == 201
    assert dav(ann, "PUT", f"{DAV}/a/x.txt", content=b"one").status_code == 201
    assert dav(ann, "PUT", f"{DAV}/a/x.txt", content=b"two").status_code == 204
    doc = doc_id(ann, "x.txt", _folder(ann, "a"))
    r = dav(ann, "COPY", f"{DAV}/a/x.txt", headers={"Destination": f"{DAV}/copy.txt"})
    assert r.status_code == 201
    assert dav(ann, "GET", f"{DAV}/copy.txt").content == b"two"
    r = dav(ann, "MOVE", f"{DAV}/a/x.txt",
            headers={"Destination": f"{DAV}/copy.txt", "Overwrite": "F"})  # fmt: skip
    assert r.status_code == 412
    r = dav(ann, "MOVE", f"{DAV}/a/x.txt", headers={"Destination": f"{DAV}/y.txt"})
    assert r.status_code == 201
    assert doc_id(ann, "y.txt") == doc  # the same document, moved and renamed
    actions = {
        e["action"] for e in ann.get(f"{API}/audit", params={"document_id": doc}).json()["items"]
    }
    assert {"MOVE", "RENAME", "UPLOAD"} <= actions

    # Versions: a read-only collection v1, v2 with the old bytes.
    r = dav(ann, "PROPFIND", f"/dav/versions/{doc}/", headers={"Depth": "1"})
    assert r.status_code == 207 and f"/dav/versions/{doc}/v1" in r.text and "/v2" in r.text
    assert dav(ann, "GET", f"/dav/versions/{doc}/v1").content == b"one"
    assert dav(ann, "PUT", f"/dav/versions/{doc}/v3", content=b"x").status_code == 403

    # DELETE moves to the trash; the trash lists it; MOVE out of it restores.
    assert dav(ann, "DELETE", f"{DAV}/y.txt").status_code == 204
    assert ann.get(f"{API}/documents/{doc}").status_code == 404
    r = dav(ann, "PROPFIND", "/dav/trash/", headers={"Depth": "1"})
    entry = f"d{doc}-y.txt"
    assert entry in r.text
    assert dav(ann, "DELETE", f"/dav/trash/{entry}").status_code == 403
    r = dav(ann, "MOVE", f"/dav/trash/{entry}", headers={"Destination": f"{DAV}/a/back.txt"})
    assert r.status_code == 201
    assert dav(ann, "GET", f"{DAV}/a/back.txt").content == b"two"
    assert ann.get(f"{API}/documents/{doc}").json()["name"] == "back.txt"
    # A folder too, with what is inside.
    assert dav(ann, "DELETE", f"{DAV}/a/").status_code == 204
    assert dav(ann, "GET", f"{DAV}/a/back.txt").status_code == 404
    folder_entry = next(i for i in ann.get(f"{API}/trash").json()["items"] if i["kind"] == "folder")
    r = dav(ann, "MOVE", f"/dav/trash/f{folder_entry['id']}-a",
            headers={"Destination": f"{DAV}/a"})  # fmt: skip
    assert r.status_code == 201
    assert dav(ann, "GET", f"{DAV}/a/back.txt").content == b"two"


def test_locks_are_honoured_by_the_api(api: Api) -> None:
    ann = api.register()
    assert dav(ann, "PUT", f"{DAV}/locked.txt", content=b"v1").status_code == 201
    doc = doc_id(ann, "locked.txt")
    body = lockinfo("ann")
    r = dav(ann, "LOCK", f"{DAV}/locked.txt", content=body, headers={"Timeout": "Second-600"})
    assert r.status_code == 200
    token = r.headers["Lock-Token"]
    # The lock shows: in the API's document (holder, expiry) and on the web UI's page.
    shown = ann.get(f"{API}/documents/{doc}").json()["lock"]
    assert shown["owner"] == ann.info["name"]
    expires = datetime.fromisoformat(shown["expires_at"])
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)
    sign_in(api.client, ann.email)
    page = api.client.get(f"/documents/{doc}")
    assert f"Locked by {ann.info['name']} (WebDAV) until" in page.text, page.text
    assert expires.strftime("%Y-%m-%d %H:%M UTC") in page.text
    # The API refuses writes to the locked document: 423 locked.
    r = ann.post(f"{API}/documents/{doc}/versions", content=b"api")
    assert r.status_code == 423 and r.json()["code"] == "locked"
    assert ann.patch(f"{API}/documents/{doc}", json={"name": "z.txt"}).status_code == 423
    assert ann.delete(f"{API}/documents/{doc}").status_code == 423
    # DAV without the token: 423; with it: the write goes through.
    assert dav(ann, "PUT", f"{DAV}/locked.txt", content=b"v2").status_code == 423
    r = dav(ann, "PUT", f"{DAV}/locked.txt", content=b"v2", headers={"If": f"({token})"})
    assert r.status_code == 204
    r = dav(ann, "UNLOCK", f"{DAV}/locked.txt", headers={"Lock-Token": token})
    assert r.status_code == 204
    assert ann.get(f"{API}/documents/{doc}").json()["lock"] is None
    assert "Locked by" not in api.client.get(f"/documents/{doc}").text
    assert ann.post(f"{API}/documents/{doc}/versions", content=b"api").status_code == 201
    # A depth-infinity lock on a folder holds the documents below it, for the API too.
    assert dav(ann, "MKCOL", f"{DAV}/box").status_code == 201
    assert dav(ann, "PUT", f"{DAV}/box/in.txt", content=b"in").status_code == 201
    inner = doc_id(ann, "in.txt", _folder(ann, "box"))
    r = dav(ann, "LOCK", f"{DAV}/box/", content=body, headers={"Depth": "infinity"})
    assert r.status_code == 200
    r = ann.post(f"{API}/documents/{inner}/versions", content=b"api")
    assert r.status_code == 423 and r.json()["code"] == "locked"
    assert ann.get(f"{API}/documents/{inner}").json()["lock"]["owner"] == ann.info["name"]
    assert "Locked by" in api.client.get(f"/documents/{inner}").text
    assert dav(ann, "PUT", f"{DAV}/box/new.txt", content=b"n").status_code == 423
    token = dav(ann, "PROPFIND", f"{DAV}/box/", headers={"Depth": "0"}).text
    assert "opaquelocktoken:" in token


def share(owner: User, who: User, permission: str, **target: int) -> int:
    r = owner.post(f"{API}/shares", json={"permission": permission, "email": who.email, **target})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_permission_boundaries_hold_through_dav(api: Api) -> None:
    ann, bob, eve = api.register(), api.register(), api.register()
    team = ann.mkdir("team")
    assert dav(ann, "PUT", f"{DAV}/team/plan.txt", content=b"plan").status_code == 201
    plan = doc_id(ann, "plan.txt", team["id"])
    share_id = share(ann, bob, "VIEW", folder_id=team["id"])

    r = dav(bob, "PROPFIND", "/dav/shared/", headers={"Depth": "1"})
    assert r.status_code == 207 and "/dav/shared/team/" in r.text
    assert dav(bob, "GET", "/dav/shared/team/plan.txt").content == b"plan"
    # VIEW: 403 on every write.
    assert dav(bob, "PUT", "/dav/shared/team/plan.txt", content=b"x").status_code == 403
    assert dav(bob, "PUT", "/dav/shared/team/new.txt", content=b"x").status_code == 403
    assert dav(bob, "DELETE", "/dav/shared/team/plan.txt").status_code == 403
    assert dav(bob, "MKCOL", "/dav/shared/team/sub").status_code == 403
    r = dav(bob, "MOVE", "/dav/shared/team/plan.txt",
            headers={"Destination": "/dav/shared/team/moved.txt"})  # fmt: skip
    assert r.status_code == 403
    # Moving into another owner's folder is refused, as in the API.
    assert dav(bob, "PUT", f"{DAV}/mine.txt", content=b"m").status_code == 201
    r = dav(bob, "MOVE", f"{DAV}/mine.txt", headers={"Destination": "/dav/shared/team/mine.txt"})
    assert r.status_code == 403
    # A stranger sees nothing: 404, never 403.
    assert dav(eve, "PROPFIND", f"/dav/versions/{plan}/", headers={"Depth": "0"}).status_code == 404
    assert dav(eve, "GET", "/dav/shared/team/plan.txt").status_code == 404

    # EDIT: a new version through DAV (charged to the owner).
    assert ann.patch(f"{API}/shares/{share_id}", json={"permission": "EDIT"}).status_code == 200
    assert dav(bob, "PUT", "/dav/shared/team/plan.txt", content=b"plan 2").status_code == 204
    assert ann.get(f"{API}/documents/{plan}/versions").json()["items"][0]["version_number"] == 2
    # Only the owner deletes, as in the API.
    assert dav(bob, "DELETE", "/dav/shared/team/plan.txt").status_code == 403
    # Revoked: the next request no longer sees it.
    assert ann.delete(f"{API}/shares/{share_id}").status_code == 204
    assert dav(bob, "GET", "/dav/shared/team/plan.txt").status_code == 404
    r = dav(bob, "PROPFIND", "/dav/shared/", headers={"Depth": "1"})
    assert "team" not in r.text


def _puts_in_a_held_group(
    api: Api, who: Any, puts: list[tuple[str, bytes, dict[str, str]]]
) -> tuple[list[httpx.Response | None], list[str]]:
    """The PUTs `puts` (path below /dav/files/, body, headers) sent at once while, on
    SQLite, another transaction holds the database lock, so that they queue behind it and
    form one write group (or two); their answers, and the statements run meanwhile."""
    svc = api.client.app.state.services  # type: ignore[attr-defined]
    group = write_group(svc)
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    release = threading.Event()
    holding = threading.Event()

    def hold_the_lock() -> None:  # SQLite: one writer; the groups wait behind this one
        with svc.database.transaction() as db:
            db.execute(update(UserRow).where(UserRow.id == who.id).values(name="Held"))
            holding.set()
            release.wait(60)

    answers: list[httpx.Response | None] = [None] * len(puts)

    def put(i: int) -> None:
        path, body, headers = puts[i]
        answers[i] = dav(who, "PUT", f"{DAV}/{path}", content=body, headers=headers)

    event.listen(svc.database.engine, "before_cursor_execute", note)
    try:
        holder = threading.Thread(target=hold_the_lock)
        if not svc.database.is_postgres:
            holder.start()
            assert holding.wait(30)
        threads = [threading.Thread(target=put, args=(i,)) for i in range(len(puts))]
        for t in threads:
            t.start()
        queued, steady = 0, 0
        for _ in range(200):  # bounded (20 s): until the queue behind the held group settles
            if svc.database.is_postgres or len(group._jobs) >= len(puts) - 1:
                break
            steady = steady + 1 if len(group._jobs) == queued and queued else 0
            if steady >= 10:  # the rest went into the held group, or are slow: go on
                break
            queued = len(group._jobs)
            time.sleep(0.1)
        release.set()
        for t in threads:
            t.join(60)
        if holder.is_alive() or not svc.database.is_postgres:
            holder.join(60)
    finally:
        release.set()
        event.remove(svc.database.engine, "before_cursor_execute", note)
    return answers, statements


def test_concurrent_puts_of_new_files_are_recorded_together_and_each_answered(
    api: Api, settings: Settings
) -> None:
    """rclone's pattern: several PUTs of new small files at once. On SQLite the write
    group records a group's new files in one batch (documents.write_group `Deferred`):
    here the first PUT's group is held at the database lock until the others have queued
    behind it, so they form one group (or two). Each is answered as if alone: 201 with its
    version's ETag; two PUTs of one new path make one document with two versions (the
    second runs again alone after the batch, onto the first)."""
    ann = api.register()
    svc = api.client.app.state.services  # type: ignore[attr-defined]
    names = [f"n{i}.txt" for i in range(6)] + ["dup.txt", "dup.txt"]
    bodies = [f"body {i}".encode() for i in range(len(names))]
    first = dav(ann, "PUT", f"{DAV}/warm.txt", content=b"warm")  # the group's loop is set
    assert first.status_code == 201
    answers, statements = _puts_in_a_held_group(
        api, ann, [(n, b, {}) for n, b in zip(names, bodies, strict=True)]
    )
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO DOCUMENTS ")]
    statuses = [a.status_code if a is not None else None for a in answers]
    assert statuses[:6] == [201] * 6, statuses
    assert sorted(s or 0 for s in statuses[6:]) == [201, 204], statuses
    if not svc.database.is_postgres:  # two groups at most, an INSERT each (+ dup's alone)
        assert len(inserts) <= 3, len(inserts)
    for i, name in enumerate(names[:6]):
        got = dav(ann, "GET", f"{DAV}/{name}")
        assert got.content == bodies[i]
        assert got.headers["ETag"] == answers[i].headers["ETag"]  # type: ignore[union-attr]
    dup = doc_id(ann, "dup.txt")
    versions = ann.get(f"{API}/documents/{dup}/versions").json()["items"]
    assert [v["version_number"] for v in versions] == [2, 1]
    last = dav(ann, "GET", f"{DAV}/dup.txt")
    assert last.content in (bodies[6], bodies[7])
    assert ann.me()["used_bytes"] == 4 + sum(len(b) for b in bodies)


def test_a_group_of_new_files_overwrites_and_refusals_keeps_each_outcome_apart(
    api: Api,
) -> None:
    """A write group's PUTs only check before they write (`write_group.Then`): their
    writes alone take a savepoint. In one held group: new files (201), overwrites of
    existing files, with and without a matching If-Match (204, a new version), and
    refusals found by the checks (412 on a stale If-Match, 412 on If-None-Match: * over an
    existing file, 409 under a missing folder). Each answer is its own, every refused body
    leaves no version and no object, and the quota counts exactly what was kept. On SQLite
    the group takes no savepoint for a job that only checked."""
    ann = api.register()
    svc = api.client.app.state.services  # type: ignore[attr-defined]
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        assert dav(ann, "PUT", f"{DAV}/{name}", content=b"v1 " + name.encode()).status_code == 201
    etag_b = dav(ann, "HEAD", f"{DAV}/b.txt").headers["ETag"]
    puts = [
        ("new1.txt", b"new one", {}),
        ("a.txt", b"a, second", {}),
        ("b.txt", b"b, second", {"If-Match": etag_b}),
        ("c.txt", b"c, refused", {"If-Match": '"999999"'}),
        ("d.txt", b"d, refused", {"If-None-Match": "*"}),
        ("gone/x.txt", b"no folder", {}),
        ("new2.txt", b"new two", {}),
    ]
    objects_before = {o.key for o in svc.store.iter_objects()}
    used_before = ann.me()["used_bytes"]
    answers, statements = _puts_in_a_held_group(api, ann, puts)
    statuses = [a.status_code if a is not None else None for a in answers]
    assert statuses == [201, 204, 204, 412, 412, 409, 201], statuses
    for (path, body, _), status in zip(puts, statuses, strict=True):
        got = dav(ann, "GET", f"{DAV}/{path}")
        if status in (201, 204):
            assert got.content == body
        elif path != "gone/x.txt":
            assert got.content == b"v1 " + path.encode()  # the refused body left no version
    for name, count in (("a.txt", 2), ("b.txt", 2), ("c.txt", 1), ("d.txt", 1)):
        items = ann.get(f"{API}/documents/{doc_id(ann, name)}/versions").json()["items"]
        assert len(items) == count, (name, items)
    kept = [b for (_, b, _), s in zip(puts, statuses, strict=True) if s in (201, 204)]
    assert ann.me()["used_bytes"] == used_before + sum(len(b) for b in kept)
    objects_after = {o.key for o in svc.store.iter_objects()}
    assert len(objects_after - objects_before) == len(kept)  # the refused bodies' are gone
    if not svc.database.is_postgres:
        # One savepoint per overwrite (its writes), per batch of new files, and per job
        # run again alone; the refusals and the new files' checks take none.
        savepoints = [s for s in statements if s.lstrip().upper().startswith("SAVEPOINT")]
        assert len(savepoints) <= 2 + 2 + 1, savepoints


def test_a_put_right_after_its_token_is_revoked_is_refused_and_leaves_nothing(
    api: Api,
) -> None:
    """A small PUT from credentials that signed in moments ago is authenticated in the
    write group's transaction, not before its body (dav.base.RecentTokens): a token
    revoked in between still gets 401, and neither a document nor an object stays. A
    wrong app password is never taken for a recent one: 401 before anything is stored."""
    ann = api.register()
    svc = api.client.app.state.services  # type: ignore[attr-defined]
    assert dav(ann, "PROPFIND", f"{DAV}/", headers={"Depth": "0"}).status_code == 207
    assert dav(ann, "PUT", f"{DAV}/kept.txt", content=b"kept").status_code == 201
    assert ann.post(f"{API}/auth/logout").status_code == 204  # revokes ann's token

    def objects() -> set[str]:
        return {o.key for o in svc.store.iter_objects()}

    before = objects()
    r = dav(ann, "PUT", f"{DAV}/late.txt", content=b"after the revocation")
    assert r.status_code == 401, r.text
    assert "WWW-Authenticate" in r.headers
    r = api.client.request(
        "PUT", f"{DAV}/wrong.txt", content=b"x", headers=basic(ann, "not-the-token-at-all")
    )
    assert r.status_code == 401
    assert objects() == before  # the refused bodies' objects are gone
    with svc.database.transaction() as db:
        names = set(db.scalars(select(DocumentRow.name).where(DocumentRow.owner_id == ann.id)))
    assert names == {"kept.txt"}
