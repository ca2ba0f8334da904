"""Soak: many concurrent clients for minutes on PostgreSQL + Redis + S3 (moto), then fsck.

Starts, all on 127.0.0.1: a scratch PostgreSQL database (created and dropped here, or the
one given), a `moto_server` S3 endpoint (or the one given), and a real `docstore serve`
process using them with Redis (its own key prefix on the shared Redis, removed at the end;
never a FLUSH). The in-server background jobs run, with the blob GC on a short grace so it
races the uploads' deduplication. Then `--clients` threads, spread over a few users who
share with each other, run a mixed workload for a warm-up plus `--seconds`:

- uploads: multipart (POST /uploads, PUT each part to its signed S3 URL, complete), now
  and then 5 MiB+ (two parts), re-sent bytes (dedup: skip_upload), or as a new version;
  and simple uploads (POST /files);
- saves: with the current base, and with a stale base in each on_conflict mode (reject,
  copy, merge), on the caller's own documents and on those shared with EDIT;
- shares: create (to another user, or a link) and revoke, after which the grantee (or the
  link) must be refused at once (Redis holds the permission cache);
- listings: folder children, shared-with-me, versions;
- downloads: the signed URL (redirect=false), followed, the bytes checked against the
  version's SHA-256 (own documents and shared ones);
- deletes: to the trash, then restore or purge.

Reports per operation the count, rate, p50 and p99 latency and the answers that were not
2xx (by status and problem code, 5xx apart); the request rate; the server's RSS (VmRSS of
its /proc/<pid>/status) after the warm-up and at the end; then stops the server, runs the
blob GC once (grace 0: nothing changes any more) and `docstore fsck`.

Targets (exit status 1 when one is missed): zero 5xx, zero fsck findings, RSS growth
under 50 MiB; and, as they are defects too: no download whose bytes differ from their
SHA-256, no transport error or timeout (a deadlock shows as one), no answer a correct
server cannot give (e.g. a stale-base reject that saved).

Run: .venv/bin/python bench/soak.py [--seconds 300] [--clients 32] [--json]
(PostgreSQL from DOCSTORE_TEST_PG_DSN / DOCSTORE_TEST_PG_URL, Redis from
DOCSTORE_TEST_REDIS_URL, as the tests use them.) Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import redis
from rich.console import Console
from rich.table import Table

ADMIN_DSN = os.environ.get(
    "DOCSTORE_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
URL_BASE = os.environ.get("DOCSTORE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
REDIS_URL = os.environ.get("DOCSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = Path(__file__).parent / "results" / "soak.json"

MiB = 1024 * 1024
PART_SIZE = 5 * MiB  # the smallest S3 allows: a "big" upload has two parts
RSS_LIMIT_MIB = 50.0
MAX_LIVE_DOCS = 120  # per user: past it, uploads give way to deletes (bounded world)
BIG_FRACTION = 0.02
PERMISSIONS = ("VIEW", "COMMENT", "EDIT")
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# Operations, in table order, with the non-2xx answers a correct server may give under
# this workload (another client deleted, purged, revoked or saved first).
OPS: dict[str, set[str]] = {
    "upload: POST /uploads": {"404 not_found", "409 version_conflict"},
    "upload: PUT part (S3)": set(),
    # 409 conflict: a dedup (skip_upload) complete after another client purged the only
    # version with those bytes: the caller must send them after all.
    "upload: complete": {"404 not_found", "409 version_conflict", "409 conflict"},
    "upload: POST /files": set(),
    "get document": {"404 not_found"},
    "save (current base)": {"404 not_found", "409 version_conflict", "403 forbidden"},
    "save (stale, reject)": {"404 not_found", "409 version_conflict", "403 forbidden"},
    "save (stale, copy)": {"404 not_found", "403 forbidden"},
    "save (stale, merge)": {"404 not_found", "409 merge_conflict", "403 forbidden"},
    "share create": {"404 not_found"},
    "share revoke": {"404 not_found"},
    "access after revoke": {"404 not_found", "410 link_expired"},  # the only right answers
    "list children": set(),
    "list shared-with-me": set(),
    "list versions": {"404 not_found"},
    "download: signed URL": {"404 not_found"},
    "download: GET bytes (S3)": set(),
    "delete (trash)": {"404 not_found"},
    "restore": {"404 not_found"},
    "purge": {"404 not_found"},
}


# ---- the world as the clients know it -------------------------------------------------


@dataclass
class User:
    index: int
    id: int
    email: str
    token: str
    folders: list[int | str]


@dataclass
class Doc:
    id: int
    owner: int  # user index
    text: bool
    versions: dict[int, str]  # version id -> SHA-256 (versions never change)
    texts: dict[int, bytes] = field(default_factory=dict)  # text documents: version -> bytes
    current: int = 0
    trashed: bool = False


@dataclass
class Share:
    id: int
    owner: int
    doc: int
    grantee: int | None  # None: a link
    permission: str
    token: str | None = None  # a link's


class World:
    """What the clients created, as far as they know (one lock; small and bounded)."""

    def __init__(self, users: list[User]) -> None:
        self.users = users
        self.lock = threading.Lock()
        self.docs: dict[int, Doc] = {}
        self.shares: dict[int, Share] = {}
        self.busy: set[int] = set()  # documents whose shares a client is changing

    def add_version(
        self,
        doc_id: int,
        owner: int,
        text: bool,
        version: dict[str, Any],
        content: bytes | None,
        current: bool = True,
    ) -> None:
        vid, sha = int(version["id"]), str(version["checksum_sha256"])
        with self.lock:
            doc = self.docs.get(doc_id)
            if doc is None:
                doc = self.docs[doc_id] = Doc(doc_id, owner, text, {})
            doc.versions[vid] = sha
            if text and content is not None:
                doc.texts[vid] = content
                for old in sorted(doc.texts)[:-4]:  # keep the newest few
                    del doc.texts[old]
            if current and vid > doc.current:
                doc.current = vid

    def live_docs(self, owner: int, text: bool | None = None) -> list[Doc]:
        with self.lock:
            return [
                d
                for d in self.docs.values()
                if d.owner == owner and not d.trashed and (text is None or d.text == text)
            ]

    def granted(self, user: int, levels: tuple[str, ...]) -> list[Doc]:
        """Documents shared with `user` at one of `levels` (as far as we know)."""
        with self.lock:
            ids = {
                s.doc for s in self.shares.values() if s.grantee == user and s.permission in levels
            }
            return [self.docs[i] for i in ids if i in self.docs and not self.docs[i].trashed]

    def forget(self, doc_id: int) -> None:
        with self.lock:
            self.docs.pop(doc_id, None)
            for sid in [s.id for s in self.shares.values() if s.doc == doc_id]:
                del self.shares[sid]


# ---- statistics -----------------------------------------------------------------------


class Stats:
    """Latencies (measured phase only) and every answer's status (the whole run)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.measuring = False
        self.latency_ms: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.transport: Counter[str] = Counter()
        self.anomalies: Counter[str] = Counter()
        self.examples: list[str] = []
        self.notes: Counter[str] = Counter()
        self.requests_measured = 0
        self.requests_total = 0

    def record(self, op: str, status: str, ms: float) -> None:
        with self.lock:
            self.requests_total += 1
            self.statuses[op][status] += 1
            if self.measuring:
                self.requests_measured += 1
                self.latency_ms[op].append(ms)

    def anomaly(self, kind: str, detail: str) -> None:
        with self.lock:
            self.anomalies[kind] += 1
            if len(self.examples) < 20:
                self.examples.append(f"{kind}: {detail}")

    def note(self, what: str) -> None:
        with self.lock:
            self.notes[what] += 1


def status_key(r: httpx.Response) -> str:
    """`201`, or `409 version_conflict` for a problem answer."""
    if r.status_code < 400:
        return str(r.status_code)
    code = ""
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        try:
            code = str(r.json().get("code", ""))
        except ValueError:
            code = "?"
    return f"{r.status_code} {code}".strip()


class Skip(Exception):
    """The operation cannot go on (another client got there first): not an error."""


class Client:
    """One simulated client: a user, an HTTP connection to the server, one to S3."""

    def __init__(self, base: str, user: User, world: World, stats: Stats, seed: int) -> None:
        self.user = user
        self.world = world
        self.stats = stats
        self.rng = random.Random(seed)
        self.api = httpx.Client(
            base_url=f"{base}/api/v1",
            timeout=60,
            trust_env=False,
            headers={"Authorization": f"Bearer {user.token}"},
        )
        self.raw = httpx.Client(timeout=60, trust_env=False)  # signed URLs: no auth header
        self.last_payload: tuple[bytes, bool] | None = None
        self.counter = 0

    def close(self) -> None:
        self.api.close()
        self.raw.close()

    def call(
        self, op: str, method: str, url: str, ok: tuple[int, ...], raw: bool = False, **kw: Any
    ) -> httpx.Response:
        """One request, timed and counted; Skip on an answer another client can cause."""
        client = self.raw if raw else self.api
        start = time.perf_counter()
        try:
            r = client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.stats.record(op, f"transport {type(exc).__name__}", 0.0)
            with self.stats.lock:
                self.stats.transport[op] += 1
            raise Skip from exc
        ms = (time.perf_counter() - start) * 1000
        key = status_key(r)
        self.stats.record(op, key, ms)
        if r.status_code in ok:
            return r
        if r.status_code >= 500:
            self.stats.anomaly("5xx", f"{op}: {r.status_code} {r.text[:300]}")
        elif key not in OPS[op]:
            self.stats.anomaly("unexpected status", f"{op}: {r.status_code} {r.text[:300]}")
        raise Skip(key)

    def name(self, ext: str) -> str:
        self.counter += 1
        return f"c{self.rng.getrandbits(32):08x}-{self.counter}{ext}"

    # ---- payloads

    def text_payload(self) -> bytes:
        lines = [f"line {i}: {self.rng.getrandbits(64):016x}\n" for i in range(12)]
        return "".join(lines).encode()

    def payload(self) -> tuple[bytes, bool]:
        """Fresh bytes: (data, is_text)."""
        roll = self.rng.random()
        if roll < BIG_FRACTION:
            return os.urandom(PART_SIZE + self.rng.randint(1, 256 * 1024)), False
        if roll < 0.5:
            return self.text_payload(), True
        return os.urandom(self.rng.randint(1, 64 * 1024)), False

    # ---- picking

    def visible_doc(self) -> Doc | None:
        own = self.world.live_docs(self.user.index)
        shared = self.world.granted(self.user.index, PERMISSIONS)
        pool = own + shared
        return self.rng.choice(pool) if pool else None

    def editable_text_doc(self) -> Doc | None:
        own = self.world.live_docs(self.user.index, text=True)
        shared = [d for d in self.world.granted(self.user.index, ("EDIT",)) if d.text]
        pool = own + shared
        return self.rng.choice(pool) if pool else None

    # ---- operations

    def upload_multipart(self) -> None:
        if len(self.world.live_docs(self.user.index)) >= MAX_LIVE_DOCS:
            return self.delete()
        body: dict[str, Any] = {}
        doc: Doc | None = None
        if self.last_payload is not None and self.rng.random() < 0.2:
            data, text = self.last_payload  # the same bytes again: deduplicated
        else:
            data, text = self.payload()
        if self.rng.random() < 0.25:
            doc = self.editable_text_doc() if text else None
        ext = ".txt" if text else ".bin"
        body = {
            "filename": self.name(ext),
            "size_bytes": len(data),
            "checksum_sha256": hashlib.sha256(data).hexdigest(),
        }
        if doc is not None:
            body |= {"document_id": doc.id, "base_version_id": doc.current}
        else:
            body["folder_id"] = self.rng.choice(self.user.folders)
        started = self.call("upload: POST /uploads", "POST", "/uploads", (201,), json=body).json()
        parts = []
        if started["skip_upload"]:
            self.stats.note("uploads skipped (dedup)")
        for part in started["parts"]:
            n, size = part["part_number"], started["part_size"]
            r = self.call(
                "upload: PUT part (S3)",
                part["method"],
                part["url"],
                (200,),
                raw=True,
                content=data[(n - 1) * size : n * size],
                headers=part["headers"],
            )
            parts.append({"part_number": n, "etag": r.headers["etag"]})
        done = self.call(
            "upload: complete",
            "POST",
            f"/uploads/{started['upload_id']}/complete",
            (201,),
            json={"parts": parts} if parts else None,
        ).json()
        owner = self.user.index if doc is None else doc.owner
        version = done["version"]
        if version["checksum_sha256"] != body["checksum_sha256"]:
            self.stats.anomaly("wrong checksum", f"complete of {done['id']}: {version}")
        self.world.add_version(int(done["id"]), owner, text, version, data)
        self.last_payload = (data, text) if len(data) < MiB else None
        return None

    def upload_simple(self) -> None:
        if len(self.world.live_docs(self.user.index)) >= MAX_LIVE_DOCS:
            return self.delete()
        data, text = self.payload()
        if len(data) > MiB:
            data = data[: 64 * 1024]
        folder = self.rng.choice(self.user.folders)
        params = {"name": self.name(".txt" if text else ".bin"), "folder_id": str(folder)}
        done = self.call(
            "upload: POST /files",
            "POST",
            "/files",
            (201,),
            params=params,
            content=data,
            headers={"X-Checksum-SHA256": hashlib.sha256(data).hexdigest()},
        ).json()
        self.world.add_version(
            int(done["id"]), self.user.index, text, done["current_version"], data
        )
        return None

    def current(self, doc: Doc) -> int:
        r = self.call("get document", "GET", f"/documents/{doc.id}", (200,))
        return int(r.json()["current_version"]["id"])

    def content_of(self, doc: Doc, vid: int) -> bytes:
        with self.world.lock:
            known = doc.texts.get(vid)
        return known if known is not None else self.download_version(doc, vid)

    def save(self, doc: Doc, base: int, data: bytes, op: str, mode: str) -> dict[str, Any]:
        r = self.call(
            op,
            "POST",
            f"/documents/{doc.id}/versions",
            (201,),
            params={"base_version_id": base, "on_conflict": mode},
            content=data,
        )
        return dict(r.json())

    def save_current(self) -> None:
        doc = self.editable_text_doc()
        if doc is None:
            return self.upload_simple()
        base = self.current(doc)
        data = self.edit(self.content_of(doc, base), 0)
        out = self.save(doc, base, data, "save (current base)", "reject")
        if out["resolution"] != "saved":
            self.stats.anomaly("wrong resolution", f"current-base save: {out['resolution']}")
        self.world.add_version(doc.id, doc.owner, True, out["version"], data)
        return None

    def edit(self, content: bytes, line: int) -> bytes:
        lines = content.decode().splitlines(keepends=True) or ["\n"]
        line = min(line, len(lines) - 1) if line >= 0 else len(lines) - 1
        lines[line] = f"edited by {self.user.index}: {self.rng.getrandbits(64):016x}\n"
        return "".join(lines).encode()

    def save_stale(self) -> None:
        """Save against a base someone replaced just before: each on_conflict mode."""
        doc = self.editable_text_doc()
        if doc is None:
            return self.upload_simple()
        mode = self.rng.choice(("reject", "copy", "merge"))
        base = self.current(doc)
        original = self.content_of(doc, base)
        first = self.edit(original, 0)
        try:  # someone else may save first: the base is then just as stale
            out = self.save(doc, base, first, "save (current base)", "reject")
            self.world.add_version(doc.id, doc.owner, True, out["version"], first)
        except Skip as exc:
            if not str(exc).startswith("409"):
                return None  # nothing saved (gone, or failed): the base may still be current
        incoming = self.edit(original, -1)
        op = f"save (stale, {mode})"
        if mode == "reject":
            self.call(
                op,
                "POST",
                f"/documents/{doc.id}/versions",
                (),
                params={"base_version_id": base, "on_conflict": "reject"},
                content=incoming,
            )
            return None  # a 2xx is "unexpected status": reject must never save
        out = self.save(doc, base, incoming, op, mode)
        resolution = out["resolution"]
        self.stats.note(f"stale {mode}: {resolution}")
        if mode == "copy":
            if resolution != "conflict_copy" or int(out["document"]["id"]) == doc.id:
                self.stats.anomaly("wrong resolution", f"copy gave {resolution}")
            owner = doc.owner  # the copy sits beside the original: same owner
            self.world.add_version(
                int(out["document"]["id"]), owner, True, out["version"], incoming
            )
        else:
            if resolution != "merged":
                self.stats.anomaly("wrong resolution", f"merge gave {resolution}")
            merged = self.download_version(doc, int(out["version"]["id"]))
            self.world.add_version(doc.id, doc.owner, True, out["version"], merged)
        return None

    @contextmanager
    def sharing(self, doc_id: int) -> Iterator[bool]:
        """Whether this client may change the document's shares now (one client at a time,
        so what a grantee can see after a revoke is known)."""
        with self.world.lock:
            free = doc_id not in self.world.busy
            self.world.busy.add(doc_id)
        try:
            yield free
        finally:
            if free:
                with self.world.lock:
                    self.world.busy.discard(doc_id)

    def share(self) -> None:
        mine = self.world.live_docs(self.user.index)
        others = [u for u in self.world.users if u.index != self.user.index]
        if not mine or not others:
            return self.upload_simple()
        doc = self.rng.choice(mine)
        permission = self.rng.choice(PERMISSIONS)
        grantee: User | None = None
        body: dict[str, Any] = {"document_id": doc.id, "permission": permission}
        if self.rng.random() < 0.2:
            body["link"] = True
        else:
            grantee = self.rng.choice(others)
            body["email"] = grantee.email
        with self.sharing(doc.id) as free:
            if not free:
                return None
            out = self.call("share create", "POST", "/shares", (201,), json=body).json()
            with self.world.lock:
                if doc.id in self.world.docs:
                    share = Share(
                        int(out["id"]),
                        self.user.index,
                        doc.id,
                        grantee.index if grantee else None,
                        permission,
                        out.get("token"),
                    )
                    self.world.shares[share.id] = share
        return None

    def revoke(self) -> None:
        """Revoke a share; the grantee (or the link) must lose access at once."""
        with self.world.lock:
            mine = [s for s in self.world.shares.values() if s.owner == self.user.index]
            share = self.rng.choice(mine) if mine else None
        if share is None:
            return self.share()
        with self.sharing(share.doc) as free:
            if not free:
                return None
            with self.world.lock:
                self.world.shares.pop(share.id, None)
            self.call("share revoke", "DELETE", f"/shares/{share.id}", (204,))
            op = "access after revoke"
            if share.grantee is not None:
                token = self.world.users[share.grantee].token
                self.call(
                    op,
                    "GET",
                    f"/documents/{share.doc}",
                    (404,),
                    headers={"Authorization": f"Bearer {token}"},
                )
            elif share.token:
                self.call(op, "GET", f"/links/{share.token}", (404, 410))
        return None

    def listing(self) -> None:
        roll = self.rng.random()
        if roll < 0.5:
            folder = self.rng.choice(self.user.folders)
            order = self.rng.choice(("name", "updated_at"))
            self.call(
                "list children",
                "GET",
                f"/folders/{folder}/children",
                (200,),
                params={"limit": 100, "order_by": order},
            )
        elif roll < 0.75:
            self.call("list shared-with-me", "GET", "/shared-with-me", (200,))
        else:
            doc = self.visible_doc()
            if doc is not None:
                self.call("list versions", "GET", f"/documents/{doc.id}/versions", (200,))

    def download_version(self, doc: Doc, vid: int) -> bytes:
        r = self.call(
            "download: signed URL",
            "GET",
            f"/documents/{doc.id}/download",
            (200,),
            params={"version_id": vid, "redirect": "false"},
        )
        got = self.call("download: GET bytes (S3)", "GET", r.json()["url"], (200,), raw=True)
        with self.world.lock:
            want = doc.versions.get(vid)
        have = hashlib.sha256(got.content).hexdigest()
        if want is not None and have != want:
            self.stats.anomaly("corrupt download", f"doc {doc.id} version {vid}")
        return got.content

    def download(self) -> None:
        doc = self.visible_doc()
        if doc is None:
            return self.upload_simple()
        with self.world.lock:
            vid = self.rng.choice(list(doc.versions))
        self.download_version(doc, vid)
        return None

    def delete(self) -> None:
        mine = self.world.live_docs(self.user.index)
        if not mine:
            return self.upload_simple()
        doc = self.rng.choice(mine)
        with self.world.lock:
            doc.trashed = True
        self.call("delete (trash)", "DELETE", f"/documents/{doc.id}", (204,))
        roll = self.rng.random()
        if roll < 0.35:
            self.call("restore", "POST", f"/documents/{doc.id}/restore", (200,))
            with self.world.lock:
                doc.trashed = False
        elif roll < 0.85:
            self.world.forget(doc.id)
            self.call("purge", "DELETE", f"/trash/{doc.id}", (204,))
        return None

    WEIGHTS: tuple[tuple[str, int], ...] = (
        ("upload_multipart", 14),
        ("upload_simple", 10),
        ("save_current", 8),
        ("save_stale", 12),
        ("share", 5),
        ("revoke", 4),
        ("listing", 16),
        ("download", 22),
        ("delete", 7),
    )

    def run(self, until: float) -> None:
        names = [n for n, _ in self.WEIGHTS]
        weights = [w for _, w in self.WEIGHTS]
        for _ in range(10_000_000):  # bounded; the clock ends it
            if time.monotonic() >= until:
                return
            op: Callable[[], None] = getattr(self, self.rng.choices(names, weights)[0])
            try:
                op()
            except Skip:
                pass
            except Exception:  # a bench bug or an answer of the wrong shape
                self.stats.anomaly("client exception", traceback.format_exc(limit=3)[-600:])


# ---- the services -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(url, timeout=2, trust_env=False)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"{url} did not come up:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def moto(work: Path, endpoint: str | None) -> Iterator[str]:
    """The given S3 endpoint, or a moto_server of our own."""
    if endpoint:
        yield endpoint
        return
    exe = Path(sys.executable).with_name("moto_server")
    port = free_port()
    log = work / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **AWS_ENV},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(f"{url}/moto-api/", proc, log)
        yield url
    finally:
        stop(proc)


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """The given database URL, or a scratch PostgreSQL database created and dropped here."""
    if url:
        yield url
        return
    name = f"docstore_soak_{os.getpid()}"
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield URL_BASE + name
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_prefix(url: str) -> Iterator[str]:
    """A Redis URL with a key prefix of this run's own; its keys are deleted afterwards."""
    prefix = f"docstore-soak:{secrets.token_hex(6)}:"
    redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}prefix={prefix}"
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])


def server_env(data_dir: Path, db_url: str, s3: str, redis_url: str) -> dict[str, str]:
    bucket = f"docstore-soak-{secrets.token_hex(6)}"
    query = urlencode({"endpoint_url": s3, "region": "us-east-1", "create_bucket": "true"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
    env |= AWS_ENV
    env |= {
        "DOCSTORE_DATA_DIR": str(data_dir),
        "DOCSTORE_DATABASE_URL": db_url,
        "DOCSTORE_STORAGE_URL": f"s3://{bucket}?{query}",
        "DOCSTORE_REDIS_URL": redis_url,
        "DOCSTORE_SECRET_KEY": "soak-secret",
        "DOCSTORE_UPLOAD_PART_SIZE": str(PART_SIZE),
        # The jobs run in the server; the blob GC often and on a short grace, so that it
        # races the uploads that deduplicate onto blobs.
        "DOCSTORE_RUN_JOBS_IN_SERVER": "true",
        "DOCSTORE_JOB_POLL_SECONDS": "2",
        "DOCSTORE_JOB_INTERVALS": json.dumps({"blobs.gc": 5, "uploads.expire": 30}),
        "DOCSTORE_BLOB_GC_GRACE_SECONDS": "5",
    }
    return env


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def register_users(base: str, n: int) -> list[User]:
    users = []
    run = secrets.token_hex(4)
    with httpx.Client(base_url=f"{base}/api/v1", timeout=60, trust_env=False) as http:
        for i in range(n):
            email = f"soak-{run}-{i}@example.com"
            r = http.post(
                "/auth/register",
                json={"email": email, "name": f"Soak {i}", "password": "soak-pass-1"},
            )
            r.raise_for_status()
            token = r.json()["token"]
            folders: list[int | str] = ["root"]
            for k in range(2):
                f = http.post(
                    "/folders",
                    json={"name": f"f{k}", "parent_id": None},
                    headers={"Authorization": f"Bearer {token}"},
                )
                f.raise_for_status()
                folders.append(int(f.json()["id"]))
            users.append(User(i, int(r.json()["user"]["id"]), email, token, folders))
    return users


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docstore.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


# ---- the run ----------------------------------------------------------------------------


def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_server(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`docstore serve` on a free loopback port: (process, base URL, its log)."""
    port = free_port()
    log = work / "server.log"
    cmd = [sys.executable, "-m", "docstore.cli.main", "serve", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=env["DOCSTORE_DATA_DIR"],
        )
    base = f"http://127.0.0.1:{port}"
    wait_up(f"{base}/healthz", proc, log)
    return proc, base, log


@dataclass
class Load:
    """What the load phase measured."""

    seconds: float
    rss_before: float
    rss_after: float
    rss_samples: list[tuple[float, float]]
    hung: int


def drive(
    pid: int,
    clients: list[Client],
    stats: Stats,
    warmup: float,
    seconds: float,
    log: Callable[[str], None],
) -> Load:
    """Run the clients for the warm-up and `seconds`; RSS of `pid` from the warm-up's end."""
    start = time.monotonic()
    until = start + warmup + seconds
    threads = [threading.Thread(target=c.run, args=(until,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    time.sleep(max(0.0, start + warmup - time.monotonic()))
    with stats.lock:
        stats.measuring = True
    measured_from = time.monotonic()
    rss_before = rss_mib(pid)
    samples = [(0.0, rss_before)]
    for _ in range(100_000):  # bounded; the clock ends it
        now = time.monotonic()
        if now >= until:
            break
        time.sleep(min(5.0, until - now))
        samples.append((round(time.monotonic() - measured_from, 1), rss_mib(pid)))
        if len(samples) % 6 == 0:
            log(
                f"  {samples[-1][0]:.0f} s: {stats.requests_measured:,} requests,"
                f" RSS {samples[-1][1]:.1f} MiB"
            )
    rss_after = rss_mib(pid)
    with stats.lock:
        stats.measuring = False
    measured = time.monotonic() - measured_from
    for t in threads:  # each finishes the operation it is in (60 s HTTP timeouts)
        t.join(timeout=180)
    return Load(measured, rss_before, rss_after, samples, sum(t.is_alive() for t in threads))


def check_storage(env: dict[str, str]) -> dict[str, Any]:
    """With the server stopped nothing changes any more: the blob GC takes everything
    unreferenced (grace 0), then `docstore fsck` checks that quotas, ref counts and objects
    agree and that nothing is left over."""
    quiet = env | {"DOCSTORE_BLOB_GC_GRACE_SECONDS": "0"}
    gc_run = cli(quiet, "worker", "--once", "--force", "--job", "blobs.gc")
    fsck_run = cli(quiet, "fsck", "--json")
    try:
        report = json.loads(fsck_run.stdout)
    except ValueError:
        output = fsck_run.stdout[-2000:] + fsck_run.stderr[-2000:]
        report = {"ok": False, "findings": [{"check": "fsck did not run", "detail": output}]}
    return {
        "gc": {"exit": gc_run.returncode, "output": gc_run.stdout[-1000:] + gc_run.stderr[-1000:]},
        "fsck": {
            "exit": fsck_run.returncode,
            "ok": bool(report.get("ok")) and fsck_run.returncode == 0,
            "checked": report.get("checked", {}),
            "findings": report.get("findings", []),
        },
    }


def soak(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """Services up, users registered, the load, then GC and fsck: the result as JSON."""
    warmup = args.warmup if args.warmup is not None else max(5.0, min(30.0, args.seconds / 10))
    users_n = args.users or max(2, min(8, args.clients // 4))
    stats = Stats()
    with tempfile.TemporaryDirectory(prefix="docstore-soak-") as tmp:
        work = Path(tmp)
        with (
            database(args.database_url) as db_url,
            moto(work, args.s3_endpoint) as s3,
            redis_prefix(args.redis_url) as redis_url,
        ):
            env = server_env(work / "data", db_url, s3, redis_url)
            (work / "data").mkdir()
            proc, base, server_log = start_server(work, env)
            try:
                users = register_users(base, users_n)
                world = World(users)
                clients = [
                    Client(base, users[i % users_n], world, stats, seed=i)
                    for i in range(args.clients)
                ]
                log(
                    f"server pid {proc.pid} on {base}; {args.clients} clients as {users_n} users;"
                    f" warm-up {warmup:.0f} s, then {args.seconds:.0f} s"
                )
                load = drive(proc.pid, clients, stats, warmup, args.seconds, log)
                for c in clients:
                    c.close()
            finally:
                stop(proc)
            checks = check_storage(env)
            text = server_log.read_text(errors="replace")
            if args.keep_log:
                Path(args.keep_log).write_text(text)
    tracebacks = text.count("Traceback")
    if tracebacks:
        first = text.index("Traceback")
        log(f"server log: {tracebacks} traceback(s); the first:\n{text[first : first + 4000]}")
    return summarize(stats, load, checks, tracebacks) | {
        "warmup_seconds": warmup,
        "clients": args.clients,
        "users": users_n,
    }


def summarize(stats: Stats, load: Load, checks: dict[str, Any], tracebacks: int) -> dict[str, Any]:
    """Per-operation rows, error counts and the targets."""
    ops: list[dict[str, Any]] = []
    by_status: Counter[str] = Counter()
    for op, expected in OPS.items():
        statuses = stats.statuses.get(op, Counter())
        lat = stats.latency_ms.get(op, [])
        non2xx = {k: v for k, v in statuses.items() if not k.startswith(("2", "3"))}
        by_status.update(non2xx)
        ops.append(
            {
                "op": op,
                "count": sum(statuses.values()),
                "measured": len(lat),
                "per_s": len(lat) / load.seconds,
                "p50_ms": pct(lat, 0.50),
                "p99_ms": pct(lat, 0.99),
                "expected_non_2xx": {k: v for k, v in non2xx.items() if k in expected},
                "unexpected": {
                    k: v for k, v in non2xx.items() if k not in expected and not k.startswith("5")
                },
                "5xx": {k: v for k, v in non2xx.items() if k.startswith("5")},
            }
        )
    fivexx = sum(sum(o["5xx"].values()) for o in ops)
    fsck = checks["fsck"]
    findings = [f for f in fsck["findings"] if f.get("severity", "error") == "error"]
    growth = load.rss_after - load.rss_before
    wrong = {k: v for k, v in stats.anomalies.items() if k not in ("5xx", "corrupt download")}
    targets = {
        "zero 5xx": fivexx == 0,
        "zero fsck findings": fsck["ok"] and not findings,
        f"RSS growth < {RSS_LIMIT_MIB:.0f} MiB": growth < RSS_LIMIT_MIB,
        "zero corrupt downloads": stats.anomalies["corrupt download"] == 0,
        "zero transport errors or hung clients": not stats.transport and load.hung == 0,
        "zero wrong answers": not wrong,
    }
    return {
        "seconds": load.seconds,
        "requests_measured": stats.requests_measured,
        "requests_total": stats.requests_total,
        "requests_per_s": stats.requests_measured / load.seconds,
        "ops": ops,
        "errors": {
            "5xx": fivexx,
            "non_2xx_by_status": dict(by_status),
            "transport": dict(stats.transport),
            "hung_clients": load.hung,
            "anomalies": dict(stats.anomalies),
            "examples": stats.examples,
        },
        "notes": dict(stats.notes),
        "rss_mib": {
            "after_warmup": load.rss_before,
            "end": load.rss_after,
            "growth": growth,
            "samples": load.rss_samples,
        },
        "server_tracebacks": tracebacks,
        **checks,
        "targets": targets,
        "ok": all(targets.values()),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }


def table(result: dict[str, Any]) -> Table:
    t = Table(
        title=f"Soak: {result['clients']} clients ({result['users']} users), "
        f"{result['seconds']:.0f} s after {result['warmup_seconds']:.0f} s warm-up, "
        "PostgreSQL + Redis + S3 (moto)",
        caption="latency and rate: the measured phase; answers: the whole run",
    )
    for col in (
        "operation",
        "count",
        "per s",
        "p50 ms",
        "p99 ms",
        "expected 4xx",
        "unexpected",
        "5xx",
    ):
        t.add_column(col, justify="left" if col in ("operation", "expected 4xx") else "right")

    def fmt(d: dict[str, int]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) or "-"

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for o in result["ops"]:
        t.add_row(
            o["op"],
            f"{o['count']:,}",
            f"{o['per_s']:.1f}",
            ms(o["p50_ms"]),
            ms(o["p99_ms"]),
            fmt(o["expected_non_2xx"]),
            fmt(o["unexpected"]),
            fmt(o["5xx"]),
        )
    t.add_section()
    t.add_row(
        "all requests",
        f"{result['requests_total']:,}",
        f"{result['requests_per_s']:.1f}",
        "",
        "",
        "",
        "",
        str(result["errors"]["5xx"]),
    )
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="measured duration")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before RSS and latency are measured (default: 10%%, 5 to 30 s)",
    )
    parser.add_argument("--users", type=int, default=None, help="users (default clients/4)")
    parser.add_argument("--database-url", help="a migrated or empty database to use")
    parser.add_argument("--s3-endpoint", help="a running S3 endpoint (default: own moto)")
    parser.add_argument("--redis-url", default=REDIS_URL, help="Redis (a prefix is added)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep-log", help="copy the server's log here")
    args = parser.parse_args(argv)
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 150)
    result = soak(args, lambda s: console.print(s, markup=False, highlight=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["ok"] else 1
    console.print(table(result))
    rss = result["rss_mib"]
    errors = result["errors"]
    console.print(
        f"server RSS: {rss['after_warmup']:.1f} MiB after the warm-up, {rss['end']:.1f} MiB at"
        f" the end: growth {rss['growth']:+.1f} MiB (target < {RSS_LIMIT_MIB:.0f})"
    )
    console.print(
        f"non-2xx answers: {errors['non_2xx_by_status'] or 'none'}; 5xx:"
        f" {errors['5xx']}; transport errors: {errors['transport'] or 'none'}"
    )
    if errors["examples"]:
        console.print("anomalies:", markup=False)
        for e in errors["examples"]:
            console.print(f"  {e}", markup=False, highlight=False)
    console.print(f"notes: {result['notes']}", markup=False)
    fsck = result["fsck"]
    verdict = "clean" if fsck["ok"] else f"{len(fsck['findings'])} finding(s)"
    console.print(f"fsck: {verdict} (exit {fsck['exit']}), checked {fsck['checked']}")
    for f in fsck["findings"][:20]:
        console.print(f"  {f}", markup=False)
    for name, ok in result["targets"].items():
        console.print(f"  {'[green]met[/green]' if ok else '[red]MISSED[/red]'}  {name}")
    console.print(
        f"machine: {result['cpu_count']} cores, load average"
        f" {result['load_average']:.1f}; wrote {args.out}"
    )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
