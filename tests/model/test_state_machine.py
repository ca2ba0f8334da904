"""A model-based test: random sequences of operations by three users (and an admin running
retention) through the HTTP API, checked after every step against a small reference model.

Invariants after every step:
- each user's `used_bytes` is the sum of the sizes of the versions of the documents they
  own that are not purged (trashed documents still count);
- every user's effective permission on every document (GET /documents/{id}: 200 with
  `permission`, or 404) is what the model derives from ownership and active shares on the
  document or any folder above it;
- every version of every live document downloads and hashes to its SHA-256, and the
  version list is the model's;
- after blob GC (grace 0) no storage object is left without a referencing version, and no
  referenced blob lost its object.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from docstore.app import create_app
from docstore.db import utcnow
from docstore.documents.models import Blob, DocumentVersion
from docstore.retention import gc
from tests.fixtures.app import BASE, Api, User, make_settings

LEVELS = {"VIEW": 1, "COMMENT": 2, "EDIT": 3, "OWNER": 4}
NAMES = {v: k for k, v in LEVELS.items()}
MAX_VERSIONS = 2
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"
_names = itertools.count()


@dataclass
class Version:
    id: int
    number: int
    size: int
    sha256: str


@dataclass
class Doc:
    id: int
    owner: int
    folder: int
    name: str
    versions: list[Version] = field(default_factory=list)
    trashed: bool = False

    @property
    def current(self) -> Version:
        return max(self.versions, key=lambda v: v.number)


@dataclass
class Folder:
    id: int
    owner: int
    parent: int | None


def text(seed: int, lines: int = 4) -> bytes:
    """Small text content whose lines a 3-way merge can tell apart."""
    return "".join(f"line {i} v{seed}\n" for i in range(lines)).encode()


def edit(data: bytes, line: int, seed: int) -> bytes:
    """`data` with one line changed."""
    rows = data.decode().splitlines(keepends=True) or ["\n"]
    rows[line % len(rows)] = f"edited {seed}\n"
    return "".join(rows).encode()


class Model(RuleBasedStateMachine):
    """Three users, a folder each besides the root, documents, shares and the trash."""

    api: Api
    admin: User

    def __init__(self) -> None:
        super().__init__()
        self.users: list[User] = []
        self.folders: dict[int, Folder] = {}
        self.docs: dict[int, Doc] = {}
        # (kind, item id, grantee user id) -> (share id, level)
        self.shares: dict[tuple[str, int, int], tuple[int, int]] = {}
        self.content: dict[int, bytes] = {}  # version id -> bytes
        self.seed = itertools.count(1)
        for _ in range(3):
            user = self.api.register(f"m{next(_names)}")
            r = self.admin.patch(f"/api/v1/admin/users/{user.id}", json={"plan": "tiny"})
            assert r.status_code == 200, r.text
            self.users.append(user)
            self.folders[user.root] = Folder(user.root, user.id, None)
            sub = user.mkdir("sub")
            self.folders[sub["id"]] = Folder(sub["id"], user.id, user.root)

    # -- the reference model ----------------------------------------------------------

    def level(self, user: User, doc: Doc) -> int | None:
        """The user's effective level on the document, None when they may not see it."""
        if doc.trashed:
            return None
        if doc.owner == user.id:
            return LEVELS["OWNER"]
        found = [
            lvl
            for (k, i, u), (_, lvl) in self.shares.items()
            if k == "doc" and i == doc.id and u == user.id
        ]
        folder: int | None = doc.folder
        while folder is not None:
            found += [
                lvl
                for (k, i, u), (_, lvl) in self.shares.items()
                if k == "folder" and i == folder and u == user.id
            ]
            folder = self.folders[folder].parent
        return max(found) if found else None

    def folder_level(self, user: User, folder_id: int) -> int | None:
        folder = self.folders[folder_id]
        if folder.owner == user.id:
            return LEVELS["OWNER"]
        found = []
        current: int | None = folder_id
        while current is not None:
            found += [
                lvl
                for (k, i, u), (_, lvl) in self.shares.items()
                if k == "folder" and i == current and u == user.id
            ]
            current = self.folders[current].parent
        return max(found) if found else None

    def expect_denied(self, r: Any, level: int | None) -> None:
        """404 when the caller cannot see the item, 403 when they can but may not act."""
        assert r.status_code == (404 if level is None else 403), (level, r.status_code, r.text)

    def add_version(self, doc: Doc, body: dict[str, Any], data: bytes) -> None:
        v = Version(body["id"], body["version_number"], body["size_bytes"], body["checksum_sha256"])
        assert v.size == len(data) and v.sha256 == hashlib.sha256(data).hexdigest()
        doc.versions.append(v)
        self.content[v.id] = data

    def add_doc(self, body: dict[str, Any], data: bytes) -> Doc:
        doc = Doc(body["id"], body["owner_id"], body["parent_folder_id"], body["name"])
        assert body["owner_id"] == self.folders[doc.folder].owner, "ownership follows the folder"
        self.docs[doc.id] = doc
        self.add_version(doc, body["current_version"], data)
        return doc

    def live_docs(self) -> list[Doc]:
        return [d for d in self.docs.values() if not d.trashed]

    # -- rules ------------------------------------------------------------------------

    @rule(u=st.integers(0, 2), f=st.integers(0, 100), lines=st.integers(1, 6))
    def upload(self, u: int, f: int, lines: int) -> None:
        user = self.users[u]
        folder_id = sorted(self.folders)[f % len(self.folders)]
        data = text(next(self.seed), lines)
        r = user.upload(f"doc{next(_names)}.txt", data, folder=folder_id)
        level = self.folder_level(user, folder_id)
        if level is not None and level >= LEVELS["EDIT"]:
            assert r.status_code == 201, r.text
            doc = self.add_doc(r.json(), data)
            assert doc.owner == self.folders[folder_id].owner
        else:
            self.expect_denied(r, level)

    @precondition(lambda self: self.docs)
    @rule(u=st.integers(0, 2), d=st.integers(0, 100), line=st.integers(0, 5))
    def save_current(self, u: int, d: int, line: int) -> None:
        user = self.users[u]
        doc = self.docs[sorted(self.docs)[d % len(self.docs)]]
        data = edit(self.content[doc.current.id], line, next(self.seed))
        r = user.post(
            f"/api/v1/documents/{doc.id}/versions",
            params={"base_version_id": doc.current.id},
            content=data,
        )
        level = self.level(user, doc)
        if level is not None and level >= LEVELS["EDIT"]:
            assert r.status_code == 201, r.text
            assert r.json()["resolution"] == "saved"
            self.add_version(doc, r.json()["version"], data)
        else:
            self.expect_denied(r, level)

    @precondition(lambda self: any(len(d.versions) > 1 for d in self.live_docs()))
    @rule(
        u=st.integers(0, 2),
        d=st.integers(0, 100),
        mode=st.sampled_from(["reject", "copy", "merge"]),
        line=st.integers(0, 5),
    )
    def save_stale(self, u: int, d: int, mode: str, line: int) -> None:
        user = self.users[u]
        candidates = [x for x in self.live_docs() if len(x.versions) > 1]
        doc = candidates[d % len(candidates)]
        base = sorted(doc.versions, key=lambda v: v.number)[-2]
        data = edit(self.content[base.id], line, next(self.seed))
        r = user.post(
            f"/api/v1/documents/{doc.id}/versions",
            params={"base_version_id": base.id, "on_conflict": mode},
            content=data,
        )
        level = self.level(user, doc)
        if level is None or level < LEVELS["EDIT"]:
            self.expect_denied(r, level)
            return
        if mode == "reject":
            assert r.status_code == 409, r.text
            assert r.json()["code"] == "version_conflict"
            assert r.json()["current_version_id"] == doc.current.id
        elif mode == "copy":
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["resolution"] == "conflict_copy"
            assert body["document"]["id"] != doc.id
            assert body["document"]["parent_folder_id"] == doc.folder
            self.add_doc(body["document"], data)
        elif r.status_code == 409:
            assert r.json()["code"] == "merge_conflict", r.text
        else:
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["resolution"] == "merged"
            merged = user.download(doc.id, version_id=body["version"]["id"])
            assert merged.status_code == 200
            self.add_version(doc, body["version"], merged.content)

    @precondition(lambda self: any(len(d.versions) > 1 for d in self.live_docs()))
    @rule(u=st.integers(0, 2), d=st.integers(0, 100))
    def restore_version(self, u: int, d: int) -> None:
        user = self.users[u]
        candidates = [x for x in self.live_docs() if len(x.versions) > 1]
        doc = candidates[d % len(candidates)]
        old = min(doc.versions, key=lambda v: v.number)
        r = user.post(f"/api/v1/documents/{doc.id}/versions/{old.id}/restore")
        level = self.level(user, doc)
        if level is not None and level >= LEVELS["EDIT"]:
            assert r.status_code == 201, r.text
            self.add_version(doc, r.json()["version"], self.content[old.id])
        else:
            self.expect_denied(r, level)

    @precondition(lambda self: any(len(d.versions) > 1 for d in self.live_docs()))
    @rule(u=st.integers(0, 2), d=st.integers(0, 100))
    def delete_version(self, u: int, d: int) -> None:
        user = self.users[u]
        candidates = [x for x in self.live_docs() if len(x.versions) > 1]
        doc = candidates[d % len(candidates)]
        old = min(doc.versions, key=lambda v: v.number)
        r = user.delete(f"/api/v1/documents/{doc.id}/versions/{old.id}")
        level = self.level(user, doc)
        if level == LEVELS["OWNER"]:
            assert r.status_code == 204, r.text
            doc.versions.remove(old)
        else:
            self.expect_denied(r, level)

    @precondition(lambda self: self.docs)
    @rule(u=st.integers(0, 2), t=st.integers(0, 100), folder=st.booleans(), lvl=st.integers(1, 3))
    def share(self, u: int, t: int, folder: bool, lvl: int) -> None:
        owner = self.users[u]
        grantee = self.users[(u + 1 + t % 2) % 3]
        if folder:
            # A root folder cannot be shared (422): the subfolder is.
            owned = sorted(
                f for f, x in self.folders.items() if x.owner == owner.id and x.parent is not None
            )
            item_id, key, kind = owned[t % len(owned)], "folder_id", "folder"
        else:
            owned = sorted(d.id for d in self.live_docs() if d.owner == owner.id)
            if not owned:
                return
            item_id, key, kind = owned[t % len(owned)], "document_id", "doc"
        r = owner.post(
            "/api/v1/shares", json={key: item_id, "permission": NAMES[lvl], "email": grantee.email}
        )
        assert r.status_code == 201, r.text
        self.shares[(kind, item_id, grantee.id)] = (r.json()["id"], lvl)

    @precondition(lambda self: self.shares)
    @rule(s=st.integers(0, 100), by_owner=st.booleans())
    def revoke(self, s: int, by_owner: bool) -> None:
        key = sorted(self.shares)[s % len(self.shares)]
        share_id, _ = self.shares[key]
        kind, item_id, grantee_id = key
        owner_id = self.folders[item_id].owner if kind == "folder" else self.docs[item_id].owner
        owner = next(x for x in self.users if x.id == owner_id)
        grantee = next(x for x in self.users if x.id == grantee_id)
        if not by_owner:
            r = grantee.delete(f"/api/v1/shares/{share_id}")
            assert r.status_code in (403, 404), r.text
            return
        r = owner.delete(f"/api/v1/shares/{share_id}")
        assert r.status_code == 204, r.text
        del self.shares[key]

    @precondition(lambda self: self.live_docs())
    @rule(d=st.integers(0, 100), f=st.integers(0, 1))
    def move(self, d: int, f: int) -> None:
        docs = self.live_docs()
        doc = docs[d % len(docs)]
        owner = next(x for x in self.users if x.id == doc.owner)
        own = sorted(i for i, x in self.folders.items() if x.owner == owner.id)
        target = own[f % len(own)]
        r = owner.patch(f"/api/v1/documents/{doc.id}", json={"parent_folder_id": target})
        assert r.status_code == 200, r.text
        doc.folder = target
        # Into someone else's folder: never (a move does not change the owner).
        other = next(i for i, x in self.folders.items() if x.owner != owner.id)
        r = owner.patch(f"/api/v1/documents/{doc.id}", json={"parent_folder_id": other})
        assert r.status_code in (403, 404), r.text

    @precondition(lambda self: self.live_docs())
    @rule(d=st.integers(0, 100), u=st.integers(0, 2))
    def delete(self, d: int, u: int) -> None:
        docs = self.live_docs()
        doc = docs[d % len(docs)]
        user = self.users[u]
        r = user.delete(f"/api/v1/documents/{doc.id}")
        level = self.level(user, doc)
        if level == LEVELS["OWNER"]:
            assert r.status_code == 204, r.text
            doc.trashed = True
        else:
            self.expect_denied(r, level)

    @precondition(lambda self: any(d.trashed for d in self.docs.values()))
    @rule(d=st.integers(0, 100), purge=st.booleans())
    def restore_or_purge(self, d: int, purge: bool) -> None:
        trashed = [x for x in self.docs.values() if x.trashed]
        doc = trashed[d % len(trashed)]
        owner = next(x for x in self.users if x.id == doc.owner)
        other = next(x for x in self.users if x.id != doc.owner)
        if purge:
            assert other.delete(f"/api/v1/trash/{doc.id}").status_code == 404
            r = owner.delete(f"/api/v1/trash/{doc.id}")
            assert r.status_code == 204, r.text
            del self.docs[doc.id]
            self.shares = {k: v for k, v in self.shares.items() if k[:2] != ("doc", doc.id)}
        else:
            assert other.post(f"/api/v1/documents/{doc.id}/restore").status_code == 404
            r = owner.post(f"/api/v1/documents/{doc.id}/restore")
            assert r.status_code == 200, r.text
            doc.trashed = False
            doc.folder = r.json()["parent_folder_id"]
            doc.name = r.json()["name"]

    @rule()
    def retention(self) -> None:
        r = self.admin.post("/api/v1/admin/retention/run")
        assert r.status_code == 200, r.text
        deleted = 0
        for doc in self.docs.values():
            keep = sorted(doc.versions, key=lambda v: v.number)[-MAX_VERSIONS:]
            deleted += len(doc.versions) - len(keep)
            doc.versions = keep
        # Other examples' users are on the tiny plan too: at least ours went.
        assert r.json()["versions_deleted"] >= deleted

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def quotas_are_exact(self) -> None:
        for user in self.users:
            expected = sum(
                v.size for d in self.docs.values() if d.owner == user.id for v in d.versions
            )
            assert user.me()["used_bytes"] == expected, user.email

    @invariant()
    def permissions_match(self) -> None:
        for doc in self.docs.values():
            for user in self.users:
                r = user.get(f"/api/v1/documents/{doc.id}")
                level = self.level(user, doc)
                if level is None:
                    assert r.status_code == 404, (doc, user.email, r.text)
                else:
                    assert r.status_code == 200, r.text
                    assert r.json()["permission"] == NAMES[level], (doc, user.email)
                    assert r.json()["current_version"]["id"] == doc.current.id

    @invariant()
    def bytes_are_intact(self) -> None:
        for doc in self.live_docs():
            owner = next(x for x in self.users if x.id == doc.owner)
            r = owner.get(f"/api/v1/documents/{doc.id}/versions")
            assert r.status_code == 200, r.text
            assert [v["id"] for v in r.json()["items"]] == [
                v.id for v in sorted(doc.versions, key=lambda v: -v.number)
            ]
            for v in doc.versions:
                got = owner.download(doc.id, version_id=v.id)
                assert got.status_code == 200, got.text
                assert hashlib.sha256(got.content).hexdigest() == v.sha256

    @invariant()
    def no_unreferenced_objects_after_gc(self) -> None:
        svc = self.api.client.app.state.services  # type: ignore[attr-defined]
        gc.collect(svc.database, svc.store, svc.settings, now=utcnow() + timedelta(seconds=1))
        objects = {o.key for o in svc.store.iter_objects(gc.BLOB_PREFIX)}
        with svc.database.transaction() as db:
            refs = dict(
                db.execute(
                    select(Blob.storage_key, func.count(DocumentVersion.id))
                    .outerjoin(DocumentVersion, DocumentVersion.blob_id == Blob.id)
                    .group_by(Blob.storage_key)
                ).all()
            )
            counts = dict(db.execute(select(Blob.storage_key, Blob.ref_count)).all())
            states = dict(db.execute(select(Blob.storage_key, Blob.state)).all())
        unreferenced = {k for k in objects if refs.get(k, 0) == 0}
        assert not unreferenced, {k: states.get(k) for k in unreferenced}
        lost = {k for k, n in refs.items() if n and k not in objects}
        assert not lost
        assert all(counts[k] == n for k, n in refs.items()), (counts, refs)


@pytest.fixture
def model_api(tmp_path: Path, database_url: str) -> Iterator[tuple[Api, User]]:
    """The app in-process with an admin, a tiny retention plan and GC without grace."""
    settings = make_settings(
        tmp_path,
        database_url,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        blob_gc_grace_seconds=0,
    )
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        r = client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert r.status_code == 200, r.text
        admin = User(api, r.json()["token"], r.json()["user"])
        plan = {"quota_bytes": 10**9, "max_versions": MAX_VERSIONS, "retention_days": 0}
        r = admin.request("PUT", "/api/v1/admin/plans/tiny", json=plan)
        assert r.status_code == 200, r.text
        yield api, admin


def test_model(model_api: tuple[Api, User]) -> None:
    """Random sequences of operations keep quotas, permissions and bytes exact."""
    api, admin = model_api

    class Bound(Model):
        pass

    Bound.api, Bound.admin = api, admin
    run_state_machine_as_test(
        Bound,
        settings=settings(
            max_examples=12,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            # Shrinking a sequence of HTTP calls takes minutes; the failing steps are printed.
            phases=(Phase.explicit, Phase.reuse, Phase.generate),
        ),
    )
