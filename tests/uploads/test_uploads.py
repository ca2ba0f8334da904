"""Multipart uploads in-process (real database, real local store served by the app)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from docstore.db import utcnow
from docstore.documents.models import Blob, DocumentVersion
from docstore.services import Services
from docstore.sharing.models import Share
from docstore.sharing.permissions import Level
from docstore.storage.base import MAX_PART_NUMBER, MIN_PART_SIZE, StorageError
from docstore.uploads import tasks
from docstore.uploads.models import UploadSession
from docstore.uploads.schemas import ABSURD_SIZE
from docstore.uploads.service import plan_parts
from docstore.users.models import User
from tests.fixtures.app import Api
from tests.uploads.helpers import MiB, Uploader, sha256_hex

NewUploader = Callable[[], Uploader]


@pytest.fixture
def svc(api: Api) -> Services:
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return services


def objects(svc: Services) -> list[str]:
    return [o.key for o in svc.store.iter_objects()]


def session_row(svc: Services, upload_id: str) -> UploadSession:
    with svc.database.transaction() as db:
        row = db.get_one(UploadSession, upload_id)
        db.expunge(row)
        return row


def set_quota(svc: Services, user_id: int, quota: int) -> None:
    with svc.database.transaction() as db:
        db.execute(update(User).where(User.id == user_id).values(quota_bytes=quota))


def versions_count(svc: Services) -> int:
    with svc.database.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(DocumentVersion)) or 0)


def assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


# -- part sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "part_size", "count"),
    [
        (0, 8 * MiB, 1),
        (1, 8 * MiB, 1),
        (8 * MiB, 8 * MiB, 1),
        (8 * MiB + 1, 8 * MiB, 2),
        (10_000 * 8 * MiB, 8 * MiB, 10_000),
        (10_000 * 8 * MiB + 1, 9 * MiB, 8_889),
        (5 * 1024**4, 525 * MiB, 9_987),
    ],
)
def test_part_size_grows_so_no_upload_needs_more_than_10000_parts(
    size: int, part_size: int, count: int
) -> None:
    assert plan_parts(size, 8 * MiB) == (part_size, count)


def test_part_plan_holds_for_any_size() -> None:
    for size in [1, MIN_PART_SIZE * 3 + 7, 97 * 1024**3 + 13, 5 * 1024**4, ABSURD_SIZE]:
        part_size, count = plan_parts(size, 8 * MiB)
        assert MIN_PART_SIZE <= part_size <= 5 * 1024**3
        assert count <= MAX_PART_NUMBER
        assert (count - 1) * part_size < size <= count * part_size


# -- the flow ---------------------------------------------------------------------------


def test_multipart_upload_creates_a_document(svc: Services, new_uploader: NewUploader) -> None:
    ann = new_uploader()
    data = os.urandom(10 * MiB + 1234)
    r = ann.initiate("report.bin", data)
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["skip_upload"] is False
    assert started["part_size"] == 5 * MiB and started["part_count"] == 3
    assert [p["part_number"] for p in started["parts"]] == [1, 2, 3]
    assert all(p["method"] == "PUT" and "/storage/parts/" in p["url"] for p in started["parts"])
    assert "blobs/" not in r.text  # no storage key leaves the server
    assert ann.me()["used_bytes"] == 0  # nothing charged before complete

    reported = ann.put_parts(started, data)
    done = ann.complete(started["upload_id"], parts=reported)
    assert done.status_code == 201, done.text
    doc = done.json()
    assert doc["name"] == "report.bin" and doc["size_bytes"] == len(data)
    assert doc["current_version"]["checksum_sha256"] == sha256_hex(data)
    assert doc["version"]["id"] == doc["current_version"]["id"]
    assert doc["resolution"] == "saved" and doc["permission"] == "OWNER"
    assert ann.download(doc["id"]).content == data
    assert ann.me()["used_bytes"] == len(data)
    assert len(objects(svc)) == 1 and svc.store.list_multipart_uploads() == []


def test_complete_without_etags_lists_the_parts(svc: Services, new_uploader: NewUploader) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 10)
    doc = ann.upload("a.bin", data)  # no parts list: the server asks storage
    assert ann.download(doc["id"]).content == data


def test_empty_file(new_uploader: NewUploader) -> None:
    ann = new_uploader()
    doc = ann.upload("empty.txt", b"")
    assert doc["size_bytes"] == 0 and doc["mime_type"] == "text/plain"
    assert ann.download(doc["id"]).content == b""


def test_completing_twice_returns_the_same_document_and_charges_once(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann = new_uploader()
    data = os.urandom(6 * MiB)
    started = ann.initiate("twice.bin", data).json()
    ann.put_parts(started, data)
    first = ann.complete(started["upload_id"])
    second = ann.complete(started["upload_id"])
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["version"]["id"] == second.json()["version"]["id"]
    assert ann.me()["used_bytes"] == len(data)
    assert versions_count(svc) == 1
    assert_problem(ann.discard(started["upload_id"]), 409, "conflict")


def test_someone_elses_session_is_404(svc: Services, new_uploader: NewUploader) -> None:
    ann, bob = new_uploader(), new_uploader()
    data = os.urandom(1000)
    started = ann.initiate("mine.bin", data).json()
    ann.put_parts(started, data)
    assert_problem(bob.complete(started["upload_id"]), 404, "not_found")
    assert_problem(bob.discard(started["upload_id"]), 404, "not_found")
    assert_problem(bob.complete("no-such-upload"), 404, "not_found")
    assert session_row(svc, started["upload_id"]).state == "pending"
    assert ann.complete(started["upload_id"]).status_code == 201
    assert bob.me()["used_bytes"] == 0


# -- validation before anything is signed ----------------------------------------------


def test_sizes_and_fields_are_validated_before_any_url_is_signed(
    api: Api, svc: Services, new_uploader: NewUploader
) -> None:
    ann = new_uploader()
    good = {"size_bytes": 10, "checksum_sha256": sha256_hex(b"x" * 10)}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "size_bytes": -1}, 422, "validation_error"),
        ({**good, "size_bytes": 10**30}, 422, "validation_error"),
        ({**good, "size_bytes": ABSURD_SIZE + 1}, 422, "validation_error"),
        ({**good, "size_bytes": "10"}, 422, "validation_error"),
        ({**good, "size_bytes": 1.5}, 422, "validation_error"),
        ({**good, "size_bytes": True}, 422, "validation_error"),
        ({**good, "size_bytes": 5 * 1024**4 + 1}, 413, "too_large"),
        ({**good, "checksum_sha256": "abc"}, 422, "validation_error"),
        ({**good, "checksum_sha256": "g" * 64}, 422, "validation_error"),
        ({**good, "document_id": 1, "folder_id": 1}, 422, "validation_error"),
        ({**good, "base_version_id": 1}, 422, "validation_error"),
        ({**good, "unknown": 1}, 422, "validation_error"),
        ({**good, "folder_id": 999999}, 404, "not_found"),
        ({**good, "document_id": 999999}, 404, "not_found"),
    ]
    for fields, status, code in cases:
        assert_problem(ann.initiate("f.bin", **fields), status, code)
    assert_problem(ann.initiate("", **good), 422, "validation_error")
    assert_problem(ann.initiate("a/b", **good), 422, "validation_error")
    r = api.client.post("/api/v1/uploads", json={"filename": "x", **good})
    assert_problem(r, 401, "unauthenticated")
    assert svc.store.list_multipart_uploads() == []
    with svc.database.transaction() as db:
        assert db.scalar(select(func.count()).select_from(UploadSession)) == 0


def test_quota_is_checked_at_initiate(svc: Services, new_uploader: NewUploader) -> None:
    ann = new_uploader()
    set_quota(svc, ann.user_id, 1000)
    assert_problem(ann.initiate("big.bin", os.urandom(1001)), 507, "quota_exceeded")
    assert svc.store.list_multipart_uploads() == []
    assert ann.initiate("fits.bin", os.urandom(1000)).status_code == 201


def test_quota_is_reserved_at_initiate(svc: Services, new_uploader: NewUploader) -> None:
    ann = new_uploader()
    set_quota(svc, ann.user_id, 1500)
    one, two = os.urandom(1000), os.urandom(1000)
    first = ann.initiate("one.bin", one).json()
    # The open upload's 1000 bytes are reserved: the second no longer fits (issue 21).
    assert_problem(ann.initiate("two.bin", two), 507, "quota_exceeded")
    assert ann.me()["reserved_bytes"] == 1000
    ann.put_parts(first, one)
    assert ann.complete(first["upload_id"]).status_code == 201
    assert (ann.me()["used_bytes"], ann.me()["reserved_bytes"]) == (1000, 0)
    set_quota(svc, ann.user_id, 2000)
    assert ann.upload("two.bin", two)["size_bytes"] == 1000
    assert ann.me()["used_bytes"] == 2000


def test_name_taken_in_the_folder_is_409_at_initiate(new_uploader: NewUploader) -> None:
    ann = new_uploader()
    ann.upload("same.txt", b"one")
    assert_problem(ann.initiate("same.txt", b"two"), 409, "name_conflict")


# -- refused completes ------------------------------------------------------------------


def test_checksum_mismatch_stores_and_charges_nothing(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann = new_uploader()
    promised, sent = os.urandom(5 * MiB + 1), os.urandom(5 * MiB + 1)
    started = ann.initiate("lie.bin", promised).json()
    ann.put_parts(started, sent)
    assert_problem(ann.complete(started["upload_id"]), 422, "checksum_mismatch")
    assert objects(svc) == [] and svc.store.list_multipart_uploads() == []
    assert ann.me()["used_bytes"] == 0 and versions_count(svc) == 0
    assert session_row(svc, started["upload_id"]).state == "aborted"
    assert_problem(ann.complete(started["upload_id"]), 404, "not_found")


def test_wrong_parts_are_422_and_leave_the_upload_intact(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann = new_uploader()
    data = os.urandom(10 * MiB + 5)
    started = ann.initiate("parts.bin", data).json()
    reported = ann.put_parts({**started, "parts": started["parts"][:2]}, data)
    upload_id = started["upload_id"]
    # Part 3 missing: the parts hold fewer bytes than declared.
    assert_problem(ann.complete(upload_id), 422, "validation_error")
    assert_problem(ann.complete(upload_id, parts=reported), 422, "validation_error")
    bad_etag = [reported[0], {"part_number": 2, "etag": '"' + "0" * 32 + '"'}]
    assert_problem(ann.complete(upload_id, parts=bad_etag), 422, "validation_error")
    never_sent = [*reported, {"part_number": 3, "etag": "abc"}]
    assert_problem(ann.complete(upload_id, parts=never_sent), 422, "validation_error")
    twice = [reported[0], reported[0]]
    assert_problem(ann.complete(upload_id, parts=twice), 422, "validation_error")
    out_of_range = [{"part_number": 10_001, "etag": "x"}]
    assert_problem(ann.complete(upload_id, parts=out_of_range), 422, "validation_error")
    assert objects(svc) == [] and ann.me()["used_bytes"] == 0

    reported = ann.put_parts(started, data)  # now every part, part 1 and 2 again
    done = ann.complete(upload_id, parts=reported)
    assert done.status_code == 201, done.text
    assert ann.download(done.json()["id"]).content == data


def test_a_small_part_before_the_last_is_refused(new_uploader: NewUploader) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 100)
    started = ann.initiate("small.bin", data).json()
    # Part 1 holds too little; part 2 the rest would make the sizes add up, but a part
    # never holds more than part_size: it is refused as it arrives.
    uneven = {**started, "part_size": 50}
    ann.put_parts({**uneven, "parts": started["parts"][:1]}, data)
    r = ann.api.put(started["parts"][1]["url"], content=data[50:])
    assert_problem(r, 413, "too_large")
    assert_problem(ann.complete(started["upload_id"]), 422, "validation_error")
    # With a planned-size part 2, the short part 1 is still refused.
    r = ann.api.put(started["parts"][1]["url"], content=data[started["part_size"] :])
    assert r.status_code == 200
    assert_problem(ann.complete(started["upload_id"]), 422, "validation_error")


def test_discard_leaves_nothing(svc: Services, new_uploader: NewUploader) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 1)
    started = ann.initiate("gone.bin", data).json()
    ann.put_parts(started, data)
    assert len(svc.store.list_multipart_uploads()) == 1
    assert ann.discard(started["upload_id"]).status_code == 204
    assert svc.store.list_multipart_uploads() == [] and objects(svc) == []
    assert ann.discard(started["upload_id"]).status_code == 204  # idempotent
    assert_problem(ann.complete(started["upload_id"]), 404, "not_found")
    put = ann.api.put(started["parts"][0]["url"], content=b"late")
    assert put.status_code == 404
    assert ann.me()["used_bytes"] == 0


# -- deduplication ----------------------------------------------------------------------


def test_same_user_skips_the_upload_of_content_they_have(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 3)
    first = ann.upload("first.bin", data)
    r = ann.initiate("second.bin", data)
    assert r.status_code == 201
    assert r.json()["skip_upload"] is True and r.json()["parts"] == []
    second = ann.complete(r.json()["upload_id"])
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first["id"]
    assert ann.download(second.json()["id"]).content == data
    assert ann.me()["used_bytes"] == 2 * len(data)  # each version is charged in full
    assert len(objects(svc)) == 1


def test_skip_upload_needs_read_access_not_just_the_checksum(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann, bob, eve = new_uploader(), new_uploader(), new_uploader()
    data = os.urandom(2000)
    doc = ann.upload("shared.bin", data)
    with svc.database.transaction() as db:
        db.add(
            Share(
                document_id=doc["id"],
                kind="user",
                shared_with_user_id=bob.user_id,
                permission=int(Level.VIEW),
                created_by=ann.user_id,
            )
        )
    claim = eve.initiate("claim.bin", data)  # eve only knows the checksum
    assert claim.json()["skip_upload"] is False and len(claim.json()["parts"]) == 1
    r = bob.initiate("copy.bin", data)
    assert r.json()["skip_upload"] is True  # bob can already read these bytes
    # The document is trashed before bob completes: he can no longer read it, no skip.
    assert ann.api.delete(f"/api/v1/documents/{doc['id']}", headers=ann.headers).status_code == 204
    assert_problem(bob.complete(r.json()["upload_id"]), 409, "conflict")
    assert bob.me()["used_bytes"] == 0


def test_same_bytes_from_two_users_are_stored_once_and_charged_twice(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann, bob = new_uploader(), new_uploader()
    data = os.urandom(5 * MiB + 77)
    a_doc = ann.upload("a.bin", data)
    b_start = bob.initiate("b.bin", data).json()
    assert b_start["skip_upload"] is False
    bob.put_parts(b_start, data)
    b_doc = bob.complete(b_start["upload_id"]).json()
    assert len(objects(svc)) == 1
    assert ann.me()["used_bytes"] == bob.me()["used_bytes"] == len(data)
    assert bob.download(b_doc["id"]).content == data
    assert ann.download(a_doc["id"]).content == data
    with svc.database.transaction() as db:
        blobs = list(db.scalars(select(Blob)))
        assert [(b.state, b.ref_count) for b in blobs] == [("active", 2)]


# -- new versions -----------------------------------------------------------------------


def test_upload_a_new_version_with_conflict_detection(new_uploader: NewUploader) -> None:
    ann = new_uploader()
    doc = ann.upload("notes.txt", b"v1\n")
    base = doc["current_version"]["id"]
    v2 = ann.upload("ignored", b"v2\n", document_id=doc["id"], base_version_id=base)
    assert v2["id"] == doc["id"] and v2["current_version"]["version_number"] == 2
    stale = ann.initiate("x", b"v3 from stale\n", document_id=doc["id"], base_version_id=base)
    started = stale.json()
    ann.put_parts(started, b"v3 from stale\n")
    conflict = ann.complete(started["upload_id"])
    assert_problem(conflict, 409, "version_conflict")
    assert conflict.json()["current_version_id"] == v2["current_version"]["id"]
    copy = ann.complete(started["upload_id"], on_conflict="copy")
    assert copy.status_code == 201, copy.text
    assert copy.json()["resolution"] == "conflict_copy" and copy.json()["id"] != doc["id"]
    assert "conflict copy" in copy.json()["name"]
    assert ann.me()["used_bytes"] == 3 + 3 + len(b"v3 from stale\n")


def test_a_new_version_needs_edit_on_the_document(svc: Services, new_uploader: NewUploader) -> None:
    ann, bob = new_uploader(), new_uploader()
    doc = ann.upload("private.txt", b"mine")
    assert_problem(bob.initiate("x", b"theirs", document_id=doc["id"]), 404, "not_found")
    wrong_base = ann.initiate("x", b"v2", document_id=doc["id"], base_version_id=999999)
    assert_problem(wrong_base, 422, "validation_error")
    assert svc.store.list_multipart_uploads() == []


# -- expiry, crashes --------------------------------------------------------------------


def test_expired_sessions_are_aborted_by_the_job(svc: Services, new_uploader: NewUploader) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 1)
    started = ann.initiate("slow.bin", data).json()
    ann.put_parts({**started, "parts": started["parts"][:1]}, data)
    live = ann.initiate("live.bin", b"still uploading").json()
    assert len(svc.store.list_multipart_uploads()) == 2

    assert tasks.expire_sessions(svc)["expired"] == 0  # nothing expired yet
    with svc.database.transaction() as db:
        db.execute(
            update(UploadSession)
            .where(UploadSession.id == started["upload_id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_problem(ann.complete(started["upload_id"]), 404, "not_found")
    result = tasks.expire_sessions(svc)
    assert result["expired"] == 1
    assert session_row(svc, started["upload_id"]).state == "expired"
    assert session_row(svc, live["upload_id"]).state == "pending"
    remaining = [u.upload_id for u in svc.store.list_multipart_uploads()]
    assert remaining == [session_row(svc, live["upload_id"]).storage_upload_id]
    assert objects(svc) == []


def test_job_sweeps_storage_uploads_of_ended_sessions(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann = new_uploader()
    started = ann.initiate("crashed.bin", b"abc").json()
    foreign = svc.store.create_multipart("blobs/not-a-session-key")
    with svc.database.transaction() as db:  # as if a crash hit between the two steps
        db.execute(update(UploadSession).values(state="aborted"))
    assert tasks.expire_sessions(svc)["orphan_uploads_aborted"] == 1
    assert [u.upload_id for u in svc.store.list_multipart_uploads()] == [foreign]
    assert_problem(ann.complete(started["upload_id"]), 404, "not_found")


@pytest.fixture
def fail_commit_after_storage_complete(svc: Services) -> Iterator[list[str]]:
    """Make the first commit after the storage-side complete fail, as if the database died."""
    armed: list[str] = []
    real_complete = svc.store.complete_multipart

    def complete(key: str, upload_id: str, parts: Any, **options: Any) -> str | None:
        digest = real_complete(key, upload_id, parts, **options)
        armed.append(key)
        return digest

    def before_commit(session: Session) -> None:
        if armed and len(armed) == 1:
            armed.append("fired")
            raise OperationalError("COMMIT", {}, Exception("injected: the database went away"))

    svc.store.complete_multipart = complete  # type: ignore[method-assign]
    event.listen(svc.database.sessionmaker, "before_commit", before_commit)
    yield armed
    event.remove(svc.database.sessionmaker, "before_commit", before_commit)
    svc.store.complete_multipart = real_complete  # type: ignore[method-assign]


def test_failed_commit_after_storage_complete_leaves_no_version_no_charge_no_object(
    svc: Services, new_uploader: NewUploader, fail_commit_after_storage_complete: list[str]
) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 9)
    started = ann.initiate("crash.bin", data).json()
    ann.put_parts(started, data)
    r = ann.complete(started["upload_id"])
    assert fail_commit_after_storage_complete[-1] == "fired"
    assert_problem(r, 503, "database_unavailable")
    assert versions_count(svc) == 0 and ann.me()["used_bytes"] == 0
    # The object is there, known by its pending blob row committed before the join.
    key = fail_commit_after_storage_complete[0]
    assert objects(svc) == [key]
    with svc.database.transaction() as db:
        assert db.scalar(select(Blob.state).where(Blob.storage_key == key)) == "pending"

    # Never retried: once the session expires, the janitor deletes the object.
    tasks.expire_sessions(svc, now=utcnow() + timedelta(days=2))
    assert objects(svc) == [] and svc.store.list_multipart_uploads() == []
    assert versions_count(svc) == 0 and ann.me()["used_bytes"] == 0
    with svc.database.transaction() as db:
        assert db.scalar(select(Blob.state).where(Blob.storage_key == key)) == "deleting"


def test_complete_retried_after_a_failed_commit_succeeds_once(
    svc: Services, new_uploader: NewUploader, fail_commit_after_storage_complete: list[str]
) -> None:
    ann = new_uploader()
    data = os.urandom(5 * MiB + 9)
    started = ann.initiate("retry.bin", data).json()
    ann.put_parts(started, data)
    assert ann.complete(started["upload_id"]).status_code == 503
    done = ann.complete(started["upload_id"])  # the object is found and verified again
    assert done.status_code == 201, done.text
    assert ann.download(done.json()["id"]).content == data
    assert ann.me()["used_bytes"] == len(data) and versions_count(svc) == 1


def test_storage_outage_at_complete_is_503_and_retryable(
    svc: Services, new_uploader: NewUploader, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = new_uploader()
    data = os.urandom(1000)
    started = ann.initiate("outage.bin", data).json()
    ann.put_parts(started, data)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("storage is down")

    with monkeypatch.context() as m:
        m.setattr(svc.store, "complete_multipart", down)
        m.setattr(svc.store, "head", down)
        assert_problem(ann.complete(started["upload_id"]), 503, "storage_unavailable")
    assert ann.complete(started["upload_id"]).status_code == 201
    assert ann.me()["used_bytes"] == 1000


def test_a_complete_refused_for_quota_deletes_the_joined_object(
    svc: Services, new_uploader: NewUploader
) -> None:
    ann = new_uploader()
    set_quota(svc, ann.user_id, 100)
    data = os.urandom(100)
    started = ann.initiate("later.bin", data).json()
    ann.put_parts(started, data)
    set_quota(svc, ann.user_id, 50)  # the quota shrank while the bytes were on their way
    assert_problem(ann.complete(started["upload_id"]), 507, "quota_exceeded")
    # Deleted at once, not left for the expiry job (issue 21); the session is over.
    assert objects(svc) == [] and svc.store.list_multipart_uploads() == []
    assert ann.discard(started["upload_id"]).status_code == 204
    assert_problem(ann.complete(started["upload_id"]), 404, "not_found")
    assert (ann.me()["used_bytes"], ann.me()["reserved_bytes"]) == (0, 0)
