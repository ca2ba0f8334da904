"""A model-based test: random sequences of operations by three users (and an admin running
retention) through the HTTP API, checked after every step against a small reference model.

The operations: simple, multipart and deduplicated uploads (new documents and new
versions); saves with a current or a stale base in every conflict mode, with the 3-way
merge predicted by the model; version restore and delete; folder create, move, trash,
restore and purge; document move, trash, restore and purge; shares created, changed
(level, expiry) and revoked; links created, opened, downloaded, saved through and
revoked; the clock moving on (so shares and links expire); retention, with its exact
result predicted.

Invariants after every step:
- each user's `used_bytes` is the sum of the sizes of the versions of the documents they
  own that are not purged (trashed documents still count);
- every user's effective permission on every document and folder (GET: 200 with
  `permission`, or 404) is what the model derives from ownership, the trash and the
  active, unexpired shares on the item or any folder above it; folders sit where the model
  put them (`parent_id`, `path`);
- each user's trash lists exactly the items the model says they deleted and can restore;
- every link opens (200), is gone with its item (404) or has expired or been revoked
  (410), as the model says, and a folder link lists the model's children;
- every live document lists the model's versions (ids and SHA-256s); each version
  downloads over HTTP and hashes right when first seen, and all of them again at the end;
- after blob GC (grace 0) no storage object is left without a referencing version, no
  referenced blob lost its object, reference counts are exact, and every version of the
  model's documents points at a stored object whose bytes hash to the version's SHA-256.

Budget: `DOCSTORE_MODEL_EXAMPLES` (default 4) examples of `DOCSTORE_MODEL_STEPS` (default
20) steps per database; a failure is shrunk to a minimal sequence of steps.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

import docstore.db.columns
import docstore.sharing.runtime
from docstore import security
from docstore.app import create_app
from docstore.db import utcnow
from docstore.documents.models import Blob, DocumentVersion
from docstore.retention import gc
from docstore.storage.base import MIN_PART_SIZE
from docstore.versions.merge import merge_texts
from tests.fixtures.app import BASE, Api, User, make_settings

LEVELS = {"VIEW": 1, "COMMENT": 2, "EDIT": 3, "OWNER": 4}
NAMES = {v: k for k, v in LEVELS.items()}
VIEW, EDIT, OWNER = LEVELS["VIEW"], LEVELS["EDIT"], LEVELS["OWNER"]
MAX_VERSIONS = 2
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"
EXAMPLES = int(os.environ.get("DOCSTORE_MODEL_EXAMPLES", "4"))
STEPS = int(os.environ.get("DOCSTORE_MODEL_STEPS", "20"))
_names = itertools.count()
# Global, not per example: no two examples store the same bytes, so the model's blob
# accounting (one blob per content) never meets a blob an earlier example left behind.
_seeds = itertools.count(1)


class Clock:
    """How far the server's clock runs ahead of the wall clock (moved by the model)."""

    offset = timedelta(0)


def _shifted_now(tz: Any = None) -> datetime:
    return datetime.now(tz) + Clock.offset


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
    text: bool = True  # small text the save rules edit line by line
    versions: list[Version] = field(default_factory=list)
    trashed: bool = False
    trash_root: bool = False  # deleted itself (a trash entry), not with its folder
    stamp: int | None = None  # which delete took it to the trash

    @property
    def current(self) -> Version:
        return max(self.versions, key=lambda v: v.number)

    def ordered(self) -> list[Version]:
        return sorted(self.versions, key=lambda v: v.number)


@dataclass
class Folder:
    id: int
    owner: int
    parent: int | None
    name: str
    trashed: bool = False
    trash_root: bool = False
    stamp: int | None = None


@dataclass
class Share:
    id: int
    level: int
    expires: datetime | None


@dataclass
class Link:
    id: int
    token: str
    kind: str  # "doc" | "folder"
    item: int
    level: int
    expires: datetime | None
    revoked: bool = False
    gone: bool = False  # its item was purged (the share row with it)


def text(seed: int, lines: int = 4) -> bytes:
    """Small text content whose lines a 3-way merge can tell apart."""
    return "".join(f"line {i} v{seed}\n" for i in range(lines)).encode()


def big(seed: int) -> bytes:
    """Content of two multipart parts (binary: no save rule edits it)."""
    head = f"big v{seed}\n".encode()
    return head + bytes(MIN_PART_SIZE + 100 - len(head))


def edit(data: bytes, line: int, seed: int) -> bytes:
    """`data` with one line changed."""
    rows = data.decode().splitlines(keepends=True) or ["\n"]
    rows[line % len(rows)] = f"edited {seed}\n"
    return "".join(rows).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def merge_by_lines(base: bytes, current: bytes, incoming: bytes) -> bytes | None:
    """The 3-way merge the server must produce for the model's texts, or None for a conflict.

    Worked out by construction, not by the server's merge library: every version of a
    document has the same number of lines and a line's text names its place ("line 2 v7",
    "edited 9" exist at one index only), so each side's changes are replacements at known
    indices. Lines unchanged on both sides are fixed points; each run of adjacent changed
    lines between them comes from the one side that changed it, and is a conflict when both
    sides changed it differently (as diff3 and git do).
    """
    b, c, i = (x.decode().splitlines(keepends=True) for x in (base, current, incoming))
    assert len(b) == len(c) == len(i), "the model keeps a document's line count"
    by_c = {n for n in range(len(b)) if c[n] != b[n]}
    by_i = {n for n in range(len(b)) if i[n] != b[n]}
    out: list[str] = []
    n = 0
    while n < len(b):
        if n not in by_c | by_i:
            out.append(b[n])
            n += 1
            continue
        end = n
        while end < len(b) and end in by_c | by_i:
            end += 1
        in_c, in_i = bool(by_c & set(range(n, end))), bool(by_i & set(range(n, end)))
        if in_c and in_i and c[n:end] != i[n:end]:
            return None
        out += c[n:end] if in_c else i[n:end]
        n = end
    return "".join(out).encode()


def at(minutes: int | None) -> datetime | None:
    """A time `minutes` from the server's now (None: never)."""
    return None if minutes is None else utcnow() + timedelta(minutes=minutes)


def pick(items: Any, i: int) -> Any:
    ordered = sorted(items)
    return ordered[i % len(ordered)]


class Model(RuleBasedStateMachine):
    """Three users, each with a root, a subfolder, a folder in that and a two-version
    document in it, and what they do."""

    api: Api
    admin: User

    def __init__(self) -> None:
        super().__init__()
        # Trim what earlier examples left (their documents are on the same plan), so this
        # example's retention result is exactly the model's.
        assert self.admin.post("/api/v1/admin/retention/run").status_code == 200
        self.users: list[User] = []
        self.by_id: dict[int, User] = {}
        self.folders: dict[int, Folder] = {}
        self.docs: dict[int, Doc] = {}
        self.shares: dict[tuple[str, int, int], Share] = {}  # (kind, item, grantee id)
        self.links: dict[int, Link] = {}
        self.content: dict[int, bytes] = {}  # version id -> bytes
        self.fetched: set[int] = set()  # versions downloaded over HTTP already
        self.stamps = itertools.count(1)
        for _ in range(3):
            user = self.api.register(f"m{next(_names)}")
            r = self.admin.patch(f"/api/v1/admin/users/{user.id}", json={"plan": "tiny"})
            assert r.status_code == 200, r.text
            self.users.append(user)
            self.by_id[user.id] = user
            self.folders[user.root] = Folder(user.root, user.id, None, "")
            sub = user.mkdir(f"sub{next(_names)}")
            self.folders[sub["id"]] = Folder(sub["id"], user.id, user.root, sub["name"])
            inner = user.mkdir(f"inner{next(_names)}", parent=sub["id"])
            self.folders[inner["id"]] = Folder(inner["id"], user.id, sub["id"], inner["name"])
            data = text(next(_seeds))
            r = user.upload(self.new_name(), data, folder=inner["id"])
            assert r.status_code == 201, r.text
            doc = self.add_doc(r.json(), data)
            data = edit(data, 1, next(_seeds))  # two versions: a stale base from the start
            r = user.post(f"/api/v1/documents/{doc.id}/versions", content=data)
            assert r.status_code == 201, r.text
            self.add_version(doc, r.json()["version"], data)

    # -- the reference model ----------------------------------------------------------

    @staticmethod
    def active(grant: Share | Link) -> bool:
        return grant.expires is None or grant.expires > utcnow()

    def ancestors(self, folder_id: int) -> list[int]:
        """The folder and every folder above it."""
        chain: list[int] = []
        current: int | None = folder_id
        while current is not None:
            chain.append(current)
            current = self.folders[current].parent
        return chain

    def path(self, folder_id: int) -> str:
        return "/" + "".join(f"{f}/" for f in reversed(self.ancestors(folder_id)))

    def subtree(self, folder_id: int) -> list[int]:
        """The folder and every folder below it, trashed or not."""
        return [f for f in self.folders if folder_id in self.ancestors(f)]

    def granted(self, user: User, docs: set[int], folders: list[int]) -> int | None:
        found = [
            s.level
            for (kind, item, grantee), s in self.shares.items()
            if grantee == user.id
            and self.active(s)
            and ((kind == "doc" and item in docs) or (kind == "folder" and item in folders))
        ]
        return max(found) if found else None

    def level(self, user: User, doc: Doc) -> int | None:
        """The user's effective level on the document, None when they may not see it."""
        if doc.trashed:
            return None
        if doc.owner == user.id:
            return OWNER
        return self.granted(user, {doc.id}, self.ancestors(doc.folder))

    def folder_level(self, user: User, folder_id: int) -> int | None:
        folder = self.folders[folder_id]
        if folder.trashed:
            return None
        if folder.owner == user.id:
            return OWNER
        return self.granted(user, set(), self.ancestors(folder_id))

    def item_level(self, user: User, kind: str, item: int) -> int | None:
        return self.level(user, self.docs[item]) if kind == "doc" else self.folder_level(user, item)

    def link_level(self, link: Link, doc: Doc) -> int | None:
        """What a link grants on a document (None: nothing, 404)."""
        if link.revoked or link.gone or not self.active(link) or doc.trashed:
            return None
        if link.kind == "doc":
            return link.level if link.item == doc.id else None
        return link.level if link.item in self.ancestors(doc.folder) else None

    def owner_of(self, kind: str, item: int) -> User:
        owner = self.docs[item].owner if kind == "doc" else self.folders[item].owner
        return self.by_id[owner]

    def name_taken(self, folder_id: int, name: str, *, but: int | None = None) -> bool:
        """Whether a live document (other than `but`) or folder in the folder has `name`."""
        return any(
            d.folder == folder_id and d.name == name and not d.trashed and d.id != but
            for d in self.docs.values()
        ) or any(
            f.parent == folder_id and f.name == name and not f.trashed
            for f in self.folders.values()
        )

    def expect_denied(self, r: Any, level: int | None) -> None:
        """404 when the caller cannot see the item, 403 when they can but may not act."""
        assert r.status_code == (404 if level is None else 403), (level, r.status_code, r.text)
        assert r.json()["code"] == ("not_found" if level is None else "forbidden"), r.text

    def add_version(self, doc: Doc, body: dict[str, Any], data: bytes) -> None:
        v = Version(body["id"], body["version_number"], body["size_bytes"], body["checksum_sha256"])
        assert v.size == len(data) and v.sha256 == sha(data), "the stored bytes are not the model's"
        assert not doc.versions or v.number > doc.current.number
        doc.versions.append(v)
        self.content[v.id] = data

    def add_doc(self, body: dict[str, Any], data: bytes, *, is_text: bool = True) -> Doc:
        doc = Doc(body["id"], body["owner_id"], body["parent_folder_id"], body["name"], is_text)
        assert doc.id not in self.docs
        assert body["owner_id"] == self.folders[doc.folder].owner, "ownership follows the folder"
        self.docs[doc.id] = doc
        self.add_version(doc, body["current_version"], data)
        return doc

    def purge_docs(self, ids: list[int]) -> None:
        """Documents gone for good, with their shares and links."""
        for doc_id in ids:
            del self.docs[doc_id]
        self.shares = {k: v for k, v in self.shares.items() if not (k[0] == "doc" and k[1] in ids)}
        for link in self.links.values():
            link.gone |= link.kind == "doc" and link.item in ids

    def new_name(self, ext: str = ".txt") -> str:
        return f"doc{next(_names)}{ext}"

    def put_parts(self, started: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
        """Send each part to its signed URL (the app's own storage endpoint)."""
        size = started["part_size"]
        sent = []
        for part in started["parts"]:
            n = part["part_number"]
            r = self.api.client.request(
                part["method"],
                part["url"],
                content=data[(n - 1) * size : n * size],
                headers=part["headers"],
            )
            assert r.status_code == 200, r.text
            sent.append({"part_number": n, "etag": r.headers["etag"]})
        return sent

    def choose(self, user: User, kind: str, ids: Any, i: int) -> int:
        """Item `i` of `ids`: a non-negative `i` prefers items `user` can see (where the rules
        do something), a negative one picks among all (mostly others': the 404s)."""
        ordered = sorted(ids)
        if i >= 0:
            ordered = [x for x in ordered if self.item_level(user, kind, x)] or ordered
        return int(ordered[abs(i) % len(ordered)])

    def text_docs(self) -> list[int]:
        return sorted(d.id for d in self.docs.values() if d.text)

    def live_folders(self, *, roots: bool) -> list[int]:
        return sorted(
            f.id for f in self.folders.values() if not f.trashed and (roots or f.parent is not None)
        )

    # -- uploads ----------------------------------------------------------------------

    @rule(u=st.integers(0, 2), f=st.integers(-100, 100), lines=st.integers(1, 6))
    def upload(self, u: int, f: int, lines: int) -> None:
        user = self.users[u]
        folder = self.folders[self.choose(user, "folder", self.folders, f)]
        data = text(next(_seeds), lines)
        r = user.upload(self.new_name(), data, folder=folder.id)
        level = self.folder_level(user, folder.id)
        if level is not None and level >= EDIT:
            assert r.status_code == 201, r.text
            self.add_doc(r.json(), data)
        else:
            self.expect_denied(r, level)

    @rule(
        u=st.integers(0, 2),
        f=st.integers(-100, 100),
        lines=st.integers(1, 6),
        size=st.sampled_from(["one part", "one part", "one part", "two parts"]),
        discard=st.booleans(),
    )
    def upload_multipart(self, u: int, f: int, lines: int, size: str, discard: bool) -> None:
        user = self.users[u]
        folder = self.folders[self.choose(user, "folder", self.folders, f)]
        two = size == "two parts"
        data = big(next(_seeds)) if two else text(next(_seeds), lines)
        body = {
            "filename": self.new_name(".bin" if two else ".txt"),
            "size_bytes": len(data),
            "checksum_sha256": sha(data),
            "folder_id": folder.id,
        }
        r = user.post("/api/v1/uploads", json=body)
        level = self.folder_level(user, folder.id)
        if level is None or level < EDIT:
            self.expect_denied(r, level)
            return
        assert r.status_code == 201, r.text
        started = r.json()
        assert started["skip_upload"] is False, "nobody can read fresh bytes yet"
        assert len(started["parts"]) == (2 if two else 1)
        sent = self.put_parts(started, data)
        complete = f"/api/v1/uploads/{started['upload_id']}/complete"
        if discard:
            r = user.delete(f"/api/v1/uploads/{started['upload_id']}")
            assert r.status_code == 204, r.text
            assert user.post(complete, json={"parts": sent}).status_code == 404
            return
        r = user.post(complete, json={"parts": sent})
        assert r.status_code == 201, r.text
        assert r.json()["resolution"] == "saved"
        self.add_doc(r.json(), data, is_text=not two)

    @precondition(lambda self: self.text_docs())
    @rule(
        u=st.integers(0, 2),
        v=st.integers(0, 1000),
        as_version=st.booleans(),
        f=st.integers(-100, 100),
    )
    def upload_known(self, u: int, v: int, as_version: bool, f: int) -> None:
        """Upload bytes some version already holds: skipped only when the caller can
        already read them, stored once either way, charged to the owner each time."""
        user = self.users[u]
        vid, did = pick(
            ((ver.id, d.id) for d in self.docs.values() if d.text for ver in d.versions), v
        )
        source, data = self.docs[did], self.content[vid]
        body: dict[str, Any] = {
            "filename": self.new_name(),
            "size_bytes": len(data),
            "checksum_sha256": sha(data),
        }
        if as_version:
            body |= {"document_id": did, "base_version_id": source.current.id}
            level = self.level(user, source)
        else:
            folder_id = self.choose(user, "folder", self.folders, f)
            body["folder_id"] = folder_id
            level = self.folder_level(user, folder_id)
        r = user.post("/api/v1/uploads", json=body)
        if level is None or level < EDIT:
            self.expect_denied(r, level)
            return
        assert r.status_code == 201, r.text
        started = r.json()
        readable = any(
            ver.sha256 == sha(data)
            for d in self.docs.values()
            if (self.level(user, d) or 0) >= VIEW
            for ver in d.versions
        )
        assert started["skip_upload"] is readable, (readable, started)
        assert (started["parts"] == []) is readable
        sent = [] if readable else self.put_parts(started, data)
        r = user.post(
            f"/api/v1/uploads/{started['upload_id']}/complete",
            json={"parts": sent} if sent else None,
        )
        assert r.status_code == 201, r.text
        assert r.json()["resolution"] == "saved"
        if as_version:
            self.add_version(source, r.json()["version"], data)
        else:
            self.add_doc(r.json(), data)

    # -- versions ---------------------------------------------------------------------

    @precondition(lambda self: self.text_docs())
    @rule(u=st.integers(0, 2), d=st.integers(-100, 100), line=st.integers(0, 5))
    def save_current(self, u: int, d: int, line: int) -> None:
        user = self.users[u]
        doc = self.docs[self.choose(user, "doc", self.text_docs(), d)]
        data = edit(self.content[doc.current.id], line, next(_seeds))
        r = user.post(
            f"/api/v1/documents/{doc.id}/versions",
            params={"base_version_id": doc.current.id},
            content=data,
        )
        level = self.level(user, doc)
        if level is not None and level >= EDIT:
            assert r.status_code == 201, r.text
            assert r.json()["resolution"] == "saved"
            self.add_version(doc, r.json()["version"], data)
        else:
            self.expect_denied(r, level)

    @precondition(lambda self: any(len(self.docs[d].versions) > 1 for d in self.text_docs()))
    @rule(
        u=st.integers(0, 2),
        d=st.integers(-100, 100),
        mode=st.sampled_from(["reject", "copy", "merge"]),
        line=st.integers(0, 5),
    )
    def save_stale(self, u: int, d: int, mode: str, line: int) -> None:
        user = self.users[u]
        several = [x for x in self.text_docs() if len(self.docs[x].versions) > 1]
        doc = self.docs[self.choose(user, "doc", several, d)]
        base, current = doc.ordered()[-2:]
        data = edit(self.content[base.id], line, next(_seeds))
        r = user.post(
            f"/api/v1/documents/{doc.id}/versions",
            params={"base_version_id": base.id, "on_conflict": mode},
            content=data,
        )
        level = self.level(user, doc)
        if level is None or level < EDIT:
            self.expect_denied(r, level)
            return
        if mode == "reject":
            assert r.status_code == 409, r.text
            assert r.json()["code"] == "version_conflict"
            assert r.json()["current_version_id"] == current.id
            return
        if mode == "copy":
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["resolution"] == "conflict_copy"
            stem, ext = doc.name.rsplit(".", 1)
            name = body["document"]["name"]
            assert name.startswith(f"{stem} (conflict copy by {user.info['name']} "), name
            assert name.endswith(f".{ext}") and not self.name_taken(doc.folder, name)
            assert body["document"]["parent_folder_id"] == doc.folder
            self.add_doc(body["document"], data)
            return
        merged = merge_by_lines(self.content[base.id], self.content[current.id], data)
        if merged is None:
            assert r.status_code == 409, r.text
            assert r.json()["code"] == "merge_conflict"
            assert r.json()["current_version_id"] == current.id
            return
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["resolution"] == "merged"
        self.add_version(doc, body["version"], merged)  # the exact bytes, checked by hash
        got = user.download(doc.id, version_id=body["version"]["id"])
        assert got.status_code == 200 and got.content == merged, got.content

    @precondition(lambda self: any(len(d.versions) > 1 for d in self.docs.values()))
    @rule(u=st.integers(0, 2), d=st.integers(-100, 100))
    def restore_version(self, u: int, d: int) -> None:
        user = self.users[u]
        several = [x.id for x in self.docs.values() if len(x.versions) > 1]
        doc = self.docs[self.choose(user, "doc", several, d)]
        old = doc.ordered()[0]
        r = user.post(f"/api/v1/documents/{doc.id}/versions/{old.id}/restore")
        level = self.level(user, doc)
        if level is not None and level >= EDIT:
            assert r.status_code == 201, r.text
            self.add_version(doc, r.json()["version"], self.content[old.id])
        else:
            self.expect_denied(r, level)

    @precondition(lambda self: any(len(d.versions) > 1 for d in self.docs.values()))
    @rule(u=st.integers(0, 2), d=st.integers(-100, 100), which=st.integers(0, 100))
    def delete_version(self, u: int, d: int, which: int) -> None:
        user = self.users[u]
        several = [x.id for x in self.docs.values() if len(x.versions) > 1]
        doc = self.docs[self.choose(user, "doc", several, d)]
        old = doc.ordered()[which % (len(doc.versions) - 1)]  # any but the current
        r = user.delete(f"/api/v1/documents/{doc.id}/versions/{old.id}")
        level = self.level(user, doc)
        if level == OWNER:
            assert r.status_code == 204, r.text
            doc.versions.remove(old)
        else:
            self.expect_denied(r, level)
        if level is not None:
            r = user.delete(f"/api/v1/documents/{doc.id}/versions/{doc.current.id}")
            assert r.status_code == (409 if level == OWNER else 403), r.text

    # -- sharing ----------------------------------------------------------------------

    def share_target(self, user: User, folder: bool, t: int) -> tuple[str, int, str] | None:
        """A live item of anyone's (roots included, which cannot be shared)."""
        if folder:
            return (
                "folder",
                self.choose(user, "folder", self.live_folders(roots=True), t),
                "folder_id",
            )
        live = [d.id for d in self.docs.values() if not d.trashed]
        return ("doc", self.choose(user, "doc", live, t), "document_id") if live else None

    @rule(
        u=st.integers(0, 2),
        t=st.integers(-100, 100),
        folder=st.booleans(),
        lvl=st.integers(1, 3),
        g=st.integers(0, 1),
        minutes=st.sampled_from([None, 30, 90]),
    )
    def share(self, u: int, t: int, folder: bool, lvl: int, g: int, minutes: int | None) -> None:
        """Share with another user (again: the same share changes); only the owner may."""
        sharer = self.users[u]
        target = self.share_target(sharer, folder, t)
        if target is None:
            return
        kind, item, key = target
        owner = self.owner_of(kind, item)
        grantee = [x for x in self.users if x is not owner][g]
        expires = at(minutes)
        body = {key: item, "permission": NAMES[lvl], "email": grantee.email}
        if expires is not None:
            body["expires_at"] = expires.isoformat()
        r = sharer.post("/api/v1/shares", json=body)
        level = self.item_level(sharer, kind, item)
        if level != OWNER:
            self.expect_denied(r, level)
            return
        if kind == "folder" and self.folders[item].parent is None:
            assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
            return
        assert r.status_code == 201, r.text
        existing = self.shares.get((kind, item, grantee.id))
        if existing is not None:
            assert r.json()["id"] == existing.id, "sharing again changes the share"
        self.shares[(kind, item, grantee.id)] = Share(r.json()["id"], lvl, expires)

    @precondition(lambda self: self.shares)
    @rule(
        s=st.integers(0, 100),
        by_owner=st.booleans(),
        lvl=st.sampled_from([None, 1, 2, 3]),
        minutes=st.sampled_from(["keep", None, 30, 90, -30]),
    )
    def patch_share(self, s: int, by_owner: bool, lvl: int | None, minutes: Any) -> None:
        """Change a share's level or expiry (an expired one comes back with a later one)."""
        key = pick(self.shares, s)
        share = self.shares[key]
        kind, item, grantee_id = key
        body: dict[str, Any] = {}
        if lvl is not None:
            body["permission"] = NAMES[lvl]
        expires = share.expires
        if minutes != "keep":
            expires = at(minutes)
            body["expires_at"] = expires.isoformat() if expires else None
        if not by_owner:
            grantee = self.by_id[grantee_id]
            r = grantee.patch(f"/api/v1/shares/{share.id}", json=body)
            self.expect_denied(r, self.item_level(grantee, kind, item))
            return
        r = self.owner_of(kind, item).patch(f"/api/v1/shares/{share.id}", json=body)
        if minutes not in ("keep", None) and minutes < 0:
            assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
            return
        assert r.status_code == 200, r.text
        share.level = lvl if lvl is not None else share.level
        share.expires = expires
        assert r.json()["permission"] == NAMES[share.level]
        assert r.json()["is_active"] is self.active(share)

    @precondition(lambda self: self.shares)
    @rule(s=st.integers(0, 100), by_owner=st.booleans())
    def revoke(self, s: int, by_owner: bool) -> None:
        key = pick(self.shares, s)
        share = self.shares[key]
        kind, item, grantee_id = key
        if not by_owner:
            grantee = self.by_id[grantee_id]
            r = grantee.delete(f"/api/v1/shares/{share.id}")
            self.expect_denied(r, self.item_level(grantee, kind, item))
            return
        owner = self.owner_of(kind, item)
        r = owner.delete(f"/api/v1/shares/{share.id}")
        assert r.status_code == 204, r.text
        del self.shares[key]
        r = owner.patch(f"/api/v1/shares/{share.id}", json={"permission": "EDIT"})
        assert r.status_code == 409, r.text

    @rule(
        u=st.integers(0, 2),
        t=st.integers(-100, 100),
        folder=st.booleans(),
        lvl=st.integers(1, 3),
        minutes=st.sampled_from([None, 30, 90]),
    )
    def create_link(self, u: int, t: int, folder: bool, lvl: int, minutes: int | None) -> None:
        sharer = self.users[u]
        target = self.share_target(sharer, folder, t)
        if target is None:
            return
        kind, item, key = target
        expires = at(minutes)
        body: dict[str, Any] = {key: item, "permission": NAMES[lvl], "link": True}
        if expires is not None:
            body["expires_at"] = expires.isoformat()
        r = sharer.post("/api/v1/shares", json=body)
        level = self.item_level(sharer, kind, item)
        if level != OWNER:
            self.expect_denied(r, level)
            return
        if kind == "folder" and self.folders[item].parent is None:
            assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
            return
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        assert token and r.json()["url"].endswith(f"/links/{token}")
        self.links[r.json()["id"]] = Link(r.json()["id"], token, kind, item, lvl, expires)

    def link_status(self, link: Link) -> int:
        """What any request through the link answers before it looks at a document."""
        if link.gone:
            return 404
        if link.revoked or not self.active(link):
            return 410
        return 200

    @precondition(lambda self: self.links)
    @rule(
        k=st.integers(0, 100),
        op=st.sampled_from(["download", "save"]),
        d=st.integers(0, 100),
        line=st.integers(0, 5),
    )
    def use_link(self, k: int, op: str, d: int, line: int) -> None:
        """Download or save through a link, anonymously."""
        link = self.links[pick(self.links, k)]
        if link.kind == "doc":
            doc = self.docs.get(link.item) if not link.gone else None
            params: dict[str, Any] = {}
        else:
            doc = self.docs[pick(self.docs, d)] if self.docs else None
            params = {"document_id": doc.id} if doc else {}
        if doc is None or (op == "save" and not doc.text):
            op = "open"
        url = f"/api/v1/links/{link.token}"
        client = self.api.client
        if op == "open":
            r = client.get(url)
        elif op == "download":
            r = client.get(f"{url}/download", params=params)
        else:
            assert doc is not None
            data = edit(self.content[doc.current.id], line, next(_seeds))
            r = client.post(
                f"{url}/versions",
                params={**params, "base_version_id": doc.current.id},
                content=data,
            )
        status = self.link_status(link)
        if status != 200:
            assert r.status_code == status, (link, r.text)
            return
        if op == "open":
            self.check_link_page(link, r)
            return
        assert doc is not None
        level = self.link_level(link, doc)
        if op == "download":
            if level is None:
                assert r.status_code == 404, r.text
                return
            assert r.status_code == 307, r.text
            got = client.get(r.headers["location"])
            assert got.status_code == 200 and sha(got.content) == doc.current.sha256
            return
        if level is None or level < EDIT:
            self.expect_denied(r, level)
            return
        assert r.status_code == 201, r.text
        assert r.json()["resolution"] == "saved"
        self.add_version(doc, r.json()["version"], data)

    @precondition(lambda self: any(not x.revoked and not x.gone for x in self.links.values()))
    @rule(k=st.integers(0, 100), by_owner=st.booleans())
    def revoke_link(self, k: int, by_owner: bool) -> None:
        open_links = (x.id for x in self.links.values() if not x.revoked and not x.gone)
        link = self.links[pick(open_links, k)]
        owner = self.owner_of(link.kind, link.item)
        if not by_owner:
            other = next(x for x in self.users if x is not owner)
            r = other.delete(f"/api/v1/shares/{link.id}")
            self.expect_denied(r, self.item_level(other, link.kind, link.item))
            return
        r = owner.delete(f"/api/v1/shares/{link.id}")
        assert r.status_code == 204, r.text
        link.revoked = True

    @rule()
    def time_passes(self) -> None:
        """An hour goes by on the server's clock: 30- and then 90-minute grants end."""
        Clock.offset += timedelta(hours=1)

    # -- folders ----------------------------------------------------------------------

    @rule(u=st.integers(0, 2), f=st.integers(-100, 100))
    def mkdir(self, u: int, f: int) -> None:
        user = self.users[u]
        parent = self.folders[self.choose(user, "folder", self.folders, f)]
        name = f"f{next(_names)}"
        r = user.post("/api/v1/folders", json={"name": name, "parent_id": parent.id})
        level = self.folder_level(user, parent.id)
        if level is None or level < EDIT:
            self.expect_denied(r, level)
            return
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["owner_id"] == parent.owner, "ownership follows the folder"
        self.folders[body["id"]] = Folder(body["id"], parent.owner, parent.id, name)
        assert body["parent_id"] == parent.id and body["path"] == self.path(body["id"])

    @precondition(lambda self: self.live_folders(roots=False))
    @rule(u=st.integers(0, 2), f=st.integers(-100, 100), t=st.integers(-100, 100))
    def move_folder(self, u: int, f: int, t: int) -> None:
        user = self.users[u]
        folder = self.folders[self.choose(user, "folder", self.live_folders(roots=False), f)]
        target = self.folders[self.choose(user, "folder", self.folders, t)]
        r = user.patch(f"/api/v1/folders/{folder.id}", json={"parent_id": target.id})
        level = self.folder_level(user, folder.id)
        if level is None or level < EDIT:
            self.expect_denied(r, level)
            return
        if target.id != folder.parent:
            target_level = self.folder_level(user, target.id)
            if target_level is None or target_level < EDIT:
                self.expect_denied(r, target_level)
                return
            if target.owner != folder.owner:
                assert r.status_code == 403, r.text
                return
            if folder.id in self.ancestors(target.id):
                assert r.status_code == 409 and r.json()["code"] == "cycle", r.text
                return
        assert r.status_code == 200, r.text
        folder.parent = target.id
        assert r.json()["parent_id"] == target.id and r.json()["path"] == self.path(folder.id)

    @precondition(lambda self: self.live_folders(roots=False))
    @rule(u=st.integers(0, 2), f=st.integers(-100, 100))
    def delete_folder(self, u: int, f: int) -> None:
        """A folder goes to the trash with everything in it that was not there already."""
        user = self.users[u]
        folder = self.folders[self.choose(user, "folder", self.live_folders(roots=False), f)]
        r = user.delete(f"/api/v1/folders/{folder.id}")
        level = self.folder_level(user, folder.id)
        if level != OWNER:
            self.expect_denied(r, level)
            return
        assert r.status_code == 204, r.text
        stamp = next(self.stamps)
        below = self.subtree(folder.id)
        for item in [*(self.folders[i] for i in below), *self.docs.values()]:
            inside = item.folder in below if isinstance(item, Doc) else True
            if inside and not item.trashed:
                item.trashed, item.stamp, item.trash_root = True, stamp, False
        folder.trash_root = True

    def trashed_folders(self) -> list[int]:
        return sorted(f.id for f in self.folders.values() if f.trashed)

    @precondition(lambda self: self.trashed_folders())
    @rule(f=st.integers(0, 100), by_owner=st.booleans())
    def restore_folder(self, f: int, by_owner: bool) -> None:
        """Back where it was (or to the root), with exactly what its delete took."""
        folder = self.folders[pick(self.trashed_folders(), f)]
        owner = self.by_id[folder.owner]
        if not by_owner:
            other = next(x for x in self.users if x is not owner)
            assert other.post(f"/api/v1/folders/{folder.id}/restore").status_code == 404
            return
        r = owner.post(f"/api/v1/folders/{folder.id}/restore")
        if not folder.trash_root:
            assert r.status_code == 404, r.text  # it went with a folder: restore that one
            return
        assert r.status_code == 200, r.text
        assert folder.parent is not None
        parent = self.folders[folder.parent]
        target = parent.id if not parent.trashed else owner.root
        below = self.subtree(folder.id)
        for item in [*(self.folders[i] for i in below), *self.docs.values()]:
            inside = item.folder in below if isinstance(item, Doc) else True
            if inside and item.trashed and not item.trash_root and item.stamp == folder.stamp:
                item.trashed, item.stamp = False, None
        name = r.json()["name"]
        assert name == folder.name or self.name_taken(target, folder.name)
        assert not self.name_taken(target, name)
        folder.trashed, folder.trash_root, folder.stamp = False, False, None
        folder.parent, folder.name = target, name
        assert r.json()["parent_id"] == target and r.json()["path"] == self.path(folder.id)

    @precondition(lambda self: self.trashed_folders())
    @rule(f=st.integers(0, 100))
    def purge_folder(self, f: int) -> None:
        """Gone for good, except what was in the trash on its own: that moves to the root."""
        folder = self.folders[pick(self.trashed_folders(), f)]
        owner = self.by_id[folder.owner]
        other = next(x for x in self.users if x is not owner)
        assert other.delete(f"/api/v1/trash/folders/{folder.id}").status_code == 404
        r = owner.delete(f"/api/v1/trash/folders/{folder.id}")
        if not folder.trash_root:
            assert r.status_code == 404, r.text
            return
        assert r.status_code == 204, r.text
        # Top down: an entry moved to the root takes the entries below it along.
        for sub in sorted(self.subtree(folder.id), key=lambda i: len(self.ancestors(i))):
            still_below = folder.id in self.ancestors(sub)
            if sub != folder.id and still_below and self.folders[sub].trash_root:
                self.folders[sub].parent = owner.root
        below = self.subtree(folder.id)
        for doc in self.docs.values():
            if doc.folder in below and doc.trash_root:
                doc.folder = owner.root
        self.purge_docs([d.id for d in self.docs.values() if d.folder in below])
        for sub in below:
            del self.folders[sub]
        self.shares = {
            k: v for k, v in self.shares.items() if not (k[0] == "folder" and k[1] in below)
        }
        for link in self.links.values():
            link.gone |= link.kind == "folder" and link.item in below

    # -- documents --------------------------------------------------------------------

    @precondition(lambda self: self.docs)
    @rule(u=st.integers(0, 2), d=st.integers(-100, 100), t=st.integers(-100, 100))
    def move(self, u: int, d: int, t: int) -> None:
        user = self.users[u]
        doc = self.docs[self.choose(user, "doc", self.docs, d)]
        target = self.folders[self.choose(user, "folder", self.folders, t)]
        r = user.patch(f"/api/v1/documents/{doc.id}", json={"parent_folder_id": target.id})
        level = self.level(user, doc)
        if level is None or level < EDIT:
            self.expect_denied(r, level)
            return
        if target.id != doc.folder:
            target_level = self.folder_level(user, target.id)
            if target_level is None or target_level < EDIT:
                self.expect_denied(r, target_level)
                return
            if target.owner != doc.owner:
                assert r.status_code == 403, r.text  # a move never changes the owner
                return
            if self.name_taken(target.id, doc.name, but=doc.id):
                assert r.status_code == 409 and r.json()["code"] == "name_conflict", r.text
                return
        assert r.status_code == 200, r.text
        doc.folder = target.id
        assert r.json()["parent_folder_id"] == target.id

    @precondition(lambda self: self.docs)
    @rule(d=st.integers(-100, 100), u=st.integers(0, 2))
    def delete(self, d: int, u: int) -> None:
        user = self.users[u]
        doc = self.docs[self.choose(user, "doc", self.docs, d)]
        r = user.delete(f"/api/v1/documents/{doc.id}")
        level = self.level(user, doc)
        if level == OWNER:
            assert r.status_code == 204, r.text
            doc.trashed, doc.trash_root, doc.stamp = True, True, next(self.stamps)
        else:
            self.expect_denied(r, level)

    @precondition(lambda self: any(d.trashed for d in self.docs.values()))
    @rule(d=st.integers(0, 100), purge=st.booleans())
    def restore_or_purge(self, d: int, purge: bool) -> None:
        doc = self.docs[pick((x.id for x in self.docs.values() if x.trashed), d)]
        owner = self.by_id[doc.owner]
        other = next(x for x in self.users if x is not owner)
        if purge:
            assert other.delete(f"/api/v1/trash/{doc.id}").status_code == 404
            r = owner.delete(f"/api/v1/trash/{doc.id}")
            if not doc.trash_root:
                assert r.status_code == 404, r.text
                return
            assert r.status_code == 204, r.text
            self.purge_docs([doc.id])
            return
        assert other.post(f"/api/v1/documents/{doc.id}/restore").status_code == 404
        r = owner.post(f"/api/v1/documents/{doc.id}/restore")
        if not doc.trash_root:
            assert r.status_code == 404, r.text
            return
        assert r.status_code == 200, r.text
        target = doc.folder if not self.folders[doc.folder].trashed else owner.root
        name = r.json()["name"]
        assert name == doc.name or self.name_taken(target, doc.name)
        assert not self.name_taken(target, name)
        doc.trashed, doc.trash_root, doc.stamp = False, False, None
        doc.folder, doc.name = target, name
        assert r.json()["parent_folder_id"] == target

    # -- retention --------------------------------------------------------------------

    @rule(dry_run=st.booleans())
    def retention(self, dry_run: bool) -> None:
        """Every document keeps its newest MAX_VERSIONS versions (trashed ones too)."""
        r = self.admin.post("/api/v1/admin/retention/run", params={"dry_run": dry_run})
        assert r.status_code == 200, r.text
        before = Counter(v.sha256 for d in self.docs.values() for v in d.versions)
        size_of = {v.sha256: v.size for d in self.docs.values() for v in d.versions}
        removed: list[Version] = []
        touched = 0
        kept: dict[int, list[Version]] = {}
        for doc in self.docs.values():
            kept[doc.id] = doc.ordered()[-MAX_VERSIONS:]
            gone = doc.ordered()[:-MAX_VERSIONS]
            removed += gone
            touched += bool(gone)
        after = before - Counter(v.sha256 for v in removed)
        unreferenced = [s for s in before if s not in after]
        expected = {
            "versions_deleted": len(removed),
            "bytes_released": sum(v.size for v in removed),
            "blobs_deleted": len(unreferenced),
            "storage_bytes_freed": sum(size_of[s] for s in unreferenced),
            "documents": touched,
            "dry_run": dry_run,
        }
        got = {k: r.json()[k] for k in expected}
        assert got == expected
        if not dry_run:
            for doc in self.docs.values():
                doc.versions = kept[doc.id]

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def quotas_are_exact(self) -> None:
        for user in self.users:
            expected = sum(
                v.size for d in self.docs.values() if d.owner == user.id for v in d.versions
            )
            assert user.me()["used_bytes"] == expected, user.email

    @invariant()
    def documents_match(self) -> None:
        for doc in self.docs.values():
            for user in self.users:
                r = user.get(f"/api/v1/documents/{doc.id}")
                level = self.level(user, doc)
                if level is None:
                    assert r.status_code == 404, (doc, user.email, r.text)
                    continue
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["permission"] == NAMES[level], (doc, user.email)
                assert body["current_version"]["id"] == doc.current.id
                assert (body["parent_folder_id"], body["name"]) == (doc.folder, doc.name)

    @invariant()
    def folders_match(self) -> None:
        for folder in self.folders.values():
            if folder.parent is None:
                continue  # a root: its owner's alone, never moved, trashed or shared
            for user in self.users:
                r = user.get(f"/api/v1/folders/{folder.id}")
                level = self.folder_level(user, folder.id)
                if level is None:
                    assert r.status_code == 404, (folder, user.email, r.text)
                    continue
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["permission"] == NAMES[level], (folder, user.email)
                assert (body["parent_id"], body["path"]) == (folder.parent, self.path(folder.id))

    @invariant()
    def trash_is_exact(self) -> None:
        for user in self.users:
            listed = {
                (i["kind"], i["id"], i["original_parent_id"])
                for page in user.pages("/api/v1/trash")
                for i in page["items"]
            }
            expected = {
                ("document", d.id, d.folder)
                for d in self.docs.values()
                if d.owner == user.id and d.trash_root
            } | {
                ("folder", f.id, f.parent)
                for f in self.folders.values()
                if f.owner == user.id and f.trash_root
            }
            assert listed == expected, user.email

    @invariant()
    def links_match(self) -> None:
        for link in self.links.values():
            r = self.api.client.get(f"/api/v1/links/{link.token}")
            status = self.link_status(link)
            if status != 200:
                assert r.status_code == status, (link, r.text)
            else:
                self.check_link_page(link, r)

    def check_link_page(self, link: Link, r: Any) -> None:
        """What opening a live link shows: the document, or the folder and its children."""
        if link.kind == "doc":
            doc = self.docs[link.item]
            if doc.trashed:
                assert r.status_code == 404, r.text
                return
            assert r.status_code == 200, r.text
            assert r.json()["document"]["current_version"]["id"] == doc.current.id
            assert r.json()["permission"] == NAMES[link.level]
            return
        folder = self.folders[link.item]
        if folder.trashed:
            assert r.status_code == 404, r.text
            return
        assert r.status_code == 200, r.text
        assert r.json()["folder"]["id"] == folder.id and r.json()["next_cursor"] is None
        children = {("folder", f.id) for f in self.folders.values() if f.parent == folder.id}
        children |= {("document", d.id) for d in self.docs.values() if d.folder == folder.id}
        live = {
            (k, i)
            for k, i in children
            if not (self.folders[i] if k == "folder" else self.docs[i]).trashed
        }
        assert {(i["kind"], i["id"]) for i in r.json()["items"]} == live

    @invariant()
    def versions_are_exact(self) -> None:
        """Each live document lists the model's versions; a version is downloaded over HTTP
        the first time it is seen (all of them again at the end of the example), and
        `storage_is_exact` holds every stored object to its hash after every step."""
        for doc in self.docs.values():
            if not doc.trashed:
                self.check_versions(doc, only_new=True)

    def check_versions(self, doc: Doc, *, only_new: bool) -> None:
        owner = self.by_id[doc.owner]
        r = owner.get(f"/api/v1/documents/{doc.id}/versions")
        assert r.status_code == 200, r.text
        listed = [(v["id"], v["checksum_sha256"]) for v in r.json()["items"]]
        assert listed == [(v.id, v.sha256) for v in doc.ordered()[::-1]]
        for v in doc.versions:
            if only_new and v.id in self.fetched:
                continue
            got = owner.download(doc.id, version_id=v.id)
            assert got.status_code == 200, got.text
            assert sha(got.content) == v.sha256
            self.fetched.add(v.id)

    def teardown(self) -> None:
        """Every version of every live document downloads and hashes right, once more."""
        for doc in self.docs.values():
            if not doc.trashed:
                self.check_versions(doc, only_new=False)

    @invariant()
    def storage_is_exact(self) -> None:
        """After blob GC (grace 0): no object without a version, no version without its
        object, reference counts exact, and the model's versions point at their bytes."""
        svc = self.api.client.app.state.services  # type: ignore[attr-defined]
        gc.collect(svc.database, svc.store, svc.settings, now=utcnow() + timedelta(seconds=1))
        # Files under blobs/ and the small ones kept in the database (storage.inline).
        objects = {o.key for o in svc.store.iter_objects("")}
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
            ours = db.execute(
                select(DocumentVersion.id, Blob.storage_key, Blob.sha256)
                .join(Blob, Blob.id == DocumentVersion.blob_id)
                .where(DocumentVersion.document_id.in_(list(self.docs)))
            ).all()
        unreferenced = {k for k in objects if refs.get(k, 0) == 0}
        assert not unreferenced, {k: states.get(k) for k in unreferenced}
        lost = {k for k, n in refs.items() if n and k not in objects}
        assert not lost
        assert all(counts[k] == n for k, n in refs.items()), (counts, refs)
        expected = {v.id: v.sha256 for d in self.docs.values() for v in d.versions}
        assert {vid: digest for vid, _, digest in ours} == expected
        for key, blob_sha in {(key, digest) for _, key, digest in ours}:
            with svc.store.open(key) as stream:
                digest = hashlib.sha256()
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
            assert digest.hexdigest() == blob_sha, key


@pytest.fixture
def model_api(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Api, User]]:
    """The app in-process with an admin, a tiny retention plan, GC without grace, 5 MiB
    parts, and a clock the model moves forward (for the app and the grant cache alike)."""
    Clock.offset = timedelta(0)
    # docstore.db's utcnow() (and its column defaults) read the clock through this name.
    shifted = SimpleNamespace(now=_shifted_now, fromisoformat=datetime.fromisoformat)
    monkeypatch.setattr(docstore.db.columns, "datetime", shifted)
    shifted_time = SimpleNamespace(
        time=lambda: time.time() + Clock.offset.total_seconds(), monotonic=time.monotonic
    )
    monkeypatch.setattr(docstore.sharing.runtime, "time", shifted_time)
    # Every example registers three users: the model is about quotas, permissions and
    # bytes, not passwords, so an account need not cost a full argon2 hash (as in
    # tests/test_authorization_matrix.py).
    monkeypatch.setattr(
        security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    settings = make_settings(
        tmp_path,
        database_url,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        blob_gc_grace_seconds=0,
        upload_part_size=MIN_PART_SIZE,
        token_ttl_seconds=10 * 365 * 24 * 3600,  # the model's clock runs far ahead
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
    """Random sequences of operations keep quotas, permissions, the trash, links and bytes
    exact; a failure comes back shrunk to the fewest steps that still fail."""
    api, admin = model_api

    class Bound(Model):
        pass

    Bound.api, Bound.admin = api, admin
    run_state_machine_as_test(
        Bound,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
        ),
    )


def test_merge_by_lines_agrees_with_diff3_rules() -> None:
    """The model's merge, on hand-made cases: one side's change, both sides apart, both
    sides next to each other (a conflict), the same change on both sides."""
    base = b"a\nb\nc\nd\n"
    assert merge_by_lines(base, b"a\nX\nc\nd\n", base) == b"a\nX\nc\nd\n"
    assert merge_by_lines(base, b"X\nb\nc\nd\n", b"a\nb\nc\nY\n") == b"X\nb\nc\nY\n"
    assert merge_by_lines(base, b"a\nX\nc\nd\n", b"a\nb\nY\nd\n") is None
    assert merge_by_lines(base, b"a\nX\nc\nd\n", b"a\nY\nc\nd\n") is None
    assert merge_by_lines(base, b"a\nX\nc\nd\n", b"a\nX\nc\nd\n") == b"a\nX\nc\nd\n"


@st.composite
def model_texts(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """A base as the model makes them and two sides, each with some lines replaced."""
    n = draw(st.integers(1, 8))
    base = text(0, n)

    def side(tag: str) -> bytes:
        rows = base.decode().splitlines(keepends=True)
        for i in draw(st.sets(st.integers(0, n - 1), max_size=n)):
            rows[i] = f"edited {tag}{i}\n"
        return "".join(rows).encode()

    return base, side("c"), side("i")


@settings(max_examples=300, deadline=None)
@given(model_texts())
def test_merge_by_lines_agrees_with_the_server_merge(texts: tuple[bytes, bytes, bytes]) -> None:
    """On texts shaped like the model's, the server's merge is exactly the model's."""
    result = merge_texts(*texts)
    assert result.data == merge_by_lines(*texts)
