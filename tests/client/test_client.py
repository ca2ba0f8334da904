"""The Python client against the real app (in-process, real database and blob store):
typed results, typed errors from the problem JSON, paths, verified downloads."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update

from docstore.client import (
    ChecksumMismatch,
    Cycle,
    DocstoreClient,
    Document,
    LinkExpired,
    LinkPasswordInvalid,
    LinkPasswordRequired,
    NameConflict,
    NotFound,
    QuotaExceeded,
    Unauthenticated,
    ValidationFailed,
    VersionConflict,
)
from docstore.config import Settings
from docstore.db import make_engine
from docstore.users.models import User
from tests.fixtures.app import BASE, Api

NewClient = Callable[[], DocstoreClient]


@pytest.fixture
def new_client(api: Api) -> NewClient:
    """Sign up a fresh user and return a client speaking HTTP to the app as them."""

    def make() -> DocstoreClient:
        user = api.register()
        return DocstoreClient(BASE, user.token, http=api.client)

    return make


def _set_quota(settings: Settings, user_id: int | str, quota: int) -> None:
    engine = make_engine(settings.resolved_database_url)
    with engine.begin() as conn:
        conn.execute(update(User).where(User.id == user_id).values(quota_bytes=quota))
    engine.dispose()


def test_errors_are_typed_from_problem_json(new_client: NewClient, settings: Settings) -> None:
    ds = new_client()
    with pytest.raises(NotFound) as not_found:
        ds.get_document(987654)
    assert not_found.value.status == 404 and not_found.value.code == "not_found"
    a = ds.create_folder("a")
    with pytest.raises(NameConflict):
        ds.create_folder("a")
    with pytest.raises(ValidationFailed):
        ds.create_folder("x/y")
    b = ds.create_folder("b", a.id)
    with pytest.raises(Cycle):
        ds.update_folder(a.id, parent_id=b.id)
    doc = ds.upload_bytes("n.txt", b"one\n", folder_id=a.id)
    assert isinstance(doc, Document) and doc.current_version is not None
    first = doc.current_version.id
    ds.save_version(doc.id, b"two\n", base_version_id=first)
    with pytest.raises(VersionConflict) as stale:
        ds.save_version(doc.id, b"three\n", base_version_id=first)
    assert stale.value.current_version_id == ds.get_document(doc.id).current_version.id  # type: ignore[union-attr]
    _set_quota(settings, ds.me().id, ds.me().used_bytes + 3)
    with pytest.raises(QuotaExceeded) as quota:
        ds.upload_bytes("big.bin", b"x" * 100)
    assert quota.value.status == 507
    ds.token = "not-a-token"
    with pytest.raises(Unauthenticated):
        ds.me()


def test_paths_resolve_across_pages_and_makedirs_is_idempotent(new_client: NewClient) -> None:
    ds = new_client()
    ds.page_size = 2  # force the cursor to be followed
    q1 = ds.makedirs("/projects/q1")
    assert ds.makedirs("projects/q1/").id == q1.id
    for i in range(5):
        ds.upload_bytes(f"f{i}.txt", f"{i}".encode(), folder_id=q1.id)
    node = ds.resolve("/projects/q1/f4.txt")
    assert node.kind == "document" and node.path == "/projects/q1/f4.txt"
    assert [n.name for n in ds.resolve_chain("/projects/q1")] == ["", "projects", "q1"]
    assert len(list(ds.iter_children(q1.id))) == 5
    with pytest.raises(NotFound):
        ds.resolve("/projects/q2/plan.md")
    with pytest.raises(NotFound):
        ds.resolve("/projects/q1/f4.txt/deeper")


def test_download_is_verified_and_never_leaves_bad_bytes(
    new_client: NewClient, settings: Settings, tmp_path: Path
) -> None:
    ds = new_client()
    data = os.urandom(300_000)
    doc = ds.upload_bytes("r.bin", data)
    here = tmp_path / "downloads"
    got = ds.download(doc.id, here / "r.bin")
    assert (here / "r.bin").read_bytes() == data
    assert got.checksum_sha256 == hashlib.sha256(data).hexdigest()
    # Damage the stored object behind the server's back: the client must refuse the bytes.
    blobs = [p for p in Path(settings.resolved_storage_url[7:]).rglob("*") if p.is_file()]
    damaged = [p for p in blobs if p.stat().st_size == len(data)]
    assert len(damaged) == 1
    damaged[0].write_bytes(b"\0" * len(data))
    with pytest.raises(ChecksumMismatch):
        ds.download(doc.id, here / "bad.bin")
    assert [p.name for p in here.iterdir()] == ["r.bin"]  # nor a temporary file left behind


def test_upload_file_and_versions_round_trip(new_client: NewClient, tmp_path: Path) -> None:
    ds = new_client()
    src = tmp_path / "notes.txt"
    src.write_text("v1\n")
    first = ds.upload_file(src)
    assert first.method == "simple" and first.bytes_sent == 3
    src.write_text("version two\n")
    doc = first.document
    second = ds.upload_file(src, document_id=doc.id, base_version_id=doc.current_version.id)  # type: ignore[union-attr]
    assert second.document.current_version.version_number == 2  # type: ignore[union-attr]
    versions = list(ds.iter_versions(doc.id))
    assert [v.version_number for v in versions] == [2, 1]
    restored = ds.restore_version(doc.id, versions[1].id)
    assert restored.version.version_number == 3
    assert restored.version.checksum_sha256 == versions[1].checksum_sha256
    pinned = ds.pin_version(doc.id, versions[0].id)
    assert pinned.keep_forever
    ds.download(doc.id, tmp_path / "v2.txt", version_id=versions[0].id)
    assert (tmp_path / "v2.txt").read_text() == "version two\n"


def test_sharing_links_comments_and_trash(api: Api, tmp_path: Path) -> None:
    ann_user, bob_user = api.register(), api.register()
    ann = DocstoreClient(BASE, ann_user.token, http=api.client)
    bob = DocstoreClient(BASE, bob_user.token, http=api.client)
    folder = ann.makedirs("/team")
    doc = ann.upload_bytes("plan.md", b"# plan\n", folder_id=folder.id)
    with pytest.raises(NotFound):
        bob.get_document(doc.id)
    share = ann.create_share(folder_id=folder.id, permission="COMMENT", email=bob_user.email)
    assert share.kind == "user" and share.user_id == bob_user.id
    access = ann.access(doc.id, user_id=bob_user.id)
    assert access.permission == "COMMENT"
    assert [(v.kind, v.folder_id) for v in access.via] == [("folder", folder.id)]
    assert [i.name for i in bob.shared_with_me()] == ["team"]
    comment = bob.add_comment(doc.id, "looks good")
    assert [c.body for c in ann.list_comments(doc.id)] == [comment.body]
    assert [s.id for s in ann.folder_shares(folder.id)] == [share.id]
    ann.delete_share(share.id)
    with pytest.raises(NotFound):
        bob.access(doc.id)

    anon = DocstoreClient(BASE, http=api.client)
    link = ann.create_share(document_id=doc.id, link=True, password="open sesame")
    assert link.token
    with pytest.raises(LinkPasswordRequired):
        anon.get_link(link.token)
    with pytest.raises(LinkPasswordInvalid):
        anon.get_link(link.token, "wrong")
    view = anon.get_link(link.token, "open sesame")
    assert view.kind == "document" and view.document is not None
    anon.link_download(link.token, tmp_path / "via-link.md", password="open sesame")
    assert (tmp_path / "via-link.md").read_bytes() == b"# plan\n"
    ann.delete_share(link.id)
    with pytest.raises(LinkExpired):
        anon.get_link(link.token, "open sesame")

    used = ann.me().used_bytes
    ann.delete_document(doc.id)
    assert [(t.kind, t.name) for t in ann.list_trash()] == [("document", "plan.md")]
    ann.restore_document(doc.id)
    assert ann.resolve("/team/plan.md").id == doc.id
    ann.delete_folder(folder.id)
    ann.purge_folder(folder.id)
    assert ann.list_trash() == []
    assert ann.me().used_bytes == used - len(b"# plan\n")
