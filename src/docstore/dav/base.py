"""What every WebDAV method shares: errors as DAV answers, the request's unit of work,
authentication, and the If-header and lock checks (docstore.dav.server explains the whole)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import hashlib
import logging
import threading
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from docstore.audit import service as audit
from docstore.context import Actor
from docstore.dav import ifheader, locking
from docstore.dav.tree import Node, Target, resolve
from docstore.deps import anonymous_actor, audit_log, authenticate_as, bearer_token
from docstore.errors import (
    ChecksumMismatch,
    DocstoreError,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
    VersionConflict,
)
from docstore.services import Services
from docstore.users import login_limits
from docstore.users import service as users

log = logging.getLogger("docstore.dav")

T = TypeVar("T")
ALLOW = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK"
XML = "application/xml; charset=utf-8"
AUTH_HEADERS = {"WWW-Authenticate": 'Basic realm="docstore", charset="UTF-8"'}
WRITABLE_AREAS = ("files", "shared")


class DavError(Exception):
    """A WebDAV answer other than success, with its reason."""

    def __init__(self, status: int, reason: str = "", body: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body


def status_of(exc: DocstoreError) -> int:
    if isinstance(exc, VersionConflict):
        return 412
    if isinstance(exc, (ValidationFailed, ChecksumMismatch)):
        return 400
    return exc.status


def text_response(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        reason + "\n" if reason else "",
        status_code=status,
        media_type="text/plain; charset=utf-8",
        headers=headers,
    )


def url_segments(scope: Scope) -> tuple[list[str], bool]:
    """The path below /dav/ as decoded, NFC names, and whether it ended with '/'."""
    raw = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    if not path.startswith("/dav"):
        raise DavError(404)
    rest = path[4:]
    parts = []
    for seg in rest.split("/"):
        if not seg:
            continue
        try:
            name = unquote(seg, errors="strict")
        except UnicodeDecodeError:
            raise DavError(400, "The path is not valid UTF-8.") from None
        if name in (".", ".."):
            raise DavError(400, "'.' and '..' are not valid names.")
        parts.append(unicodedata.normalize("NFC", name))
    return parts, rest.endswith("/")


def depth_header(request: Request, default: str, allowed: tuple[str, ...]) -> str:
    value = request.headers.get("depth", default).strip().lower()
    if value not in ("0", "1", "infinity"):
        raise DavError(400, f"Depth must be 0, 1 or infinity, not {value!r}.")
    if value not in allowed:
        raise DavError(400, f"Depth {value} is not allowed for {request.method}.")
    return value


def etag_matches(header: str, etag: str | None) -> bool:
    if etag is None:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


_THREADS: ThreadPoolExecutor | None = None
_THREADS_LOCK = threading.Lock()
# Threads for WebDAV's transactions. Each request takes one for one transaction at a time
# and never waits for a second while it holds the first, so a full pool only queues.
MAX_THREADS = 64


async def in_thread(fn: Callable[[], T]) -> T:
    """`fn()` on a worker thread, in a copy of the request's context (its transaction
    slot, `db.task_scope`). asyncio's executor hop, not AnyIO's `to_thread`: its capacity
    limiter, cancel scope and backend lookups were ~10 % of a MKCOL's CPU (py-spy)."""
    global _THREADS
    if _THREADS is None:
        with _THREADS_LOCK:
            if _THREADS is None:
                _THREADS = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="dav")
    ctx = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_THREADS, ctx.run, fn)


class RecentTokens:
    """Authorization headers that signed in with a token (Bearer, or Basic with an app
    password) in the last `TTL` seconds, by digest: a small WebDAV PUT from such a caller
    authenticates in its write group's transaction instead of in a transaction and a
    thread hop of its own before its body (rclone: one PUT per file). Only a hint about
    when to check: every such PUT is still authenticated in the transaction that records
    it, and one that no longer passes (a token revoked meanwhile) is answered 401 with
    nothing kept. A header that never passed is never here, so its body is never written.
    """

    TTL = 10.0
    MAX = 10_000

    def __init__(self) -> None:
        self._seen: dict[bytes, float] = {}

    @staticmethod
    def _key(header: str) -> bytes:
        return hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()

    def note(self, header: str) -> None:
        if len(self._seen) >= self.MAX:
            self._seen.clear()
        self._seen[self._key(header)] = time.monotonic() + self.TTL

    def __contains__(self, header: str) -> bool:
        until = self._seen.get(self._key(header))
        return until is not None and until > time.monotonic()


_RECENT = RecentTokens()
_SIGNED_IN = "dav.signed_in"  # session.info: token sign-ins of this transaction, by header


def recently_signed_in(request: Request) -> bool:
    """Whether this request's credentials signed in with a token moments ago."""
    header = request.headers.get("authorization")
    return header is not None and header in _RECENT


class _NeedsWrite(Exception):
    """A read met the account password: the login throttle writes, so run as `work`."""


class DavBase:
    """The shared steps of every method; `DavApp` adds the methods themselves."""

    # -- the request's unit of work ---------------------------------------------------------

    def svc(self, request: Request) -> Services:
        services: Services = request.app.state.services
        return services

    async def work(
        self, request: Request, fn: Callable[[Session, Actor], T], actor: Actor | None = None
    ) -> T:
        """Authenticate (unless `actor` is given) and run `fn` in one transaction."""
        svc = self.svc(request)

        def run() -> T:
            with svc.database.transaction() as db:
                who = actor if actor is not None else self.authenticate(request, db, svc)
                return fn(db, who)

        return await in_thread(run)

    async def read(
        self, request: Request, fn: Callable[[Session, Actor], T], *, small: bool = False
    ) -> T:
        """`work` for a method that only reads (PROPFIND, GET, HEAD): a read transaction,
        which on SQLite neither takes nor waits for the write lock the PUTs hold (rclone
        sends a PROPFIND after each PUT). Its audit entries and token uses are written by
        the audit group commit before the answer, as the API's reads (`UnitOfWork`).
        Basic with the account password goes through the login throttle, a write: that
        request runs as `work` instead.

        `small`: a read of a few rows (MKCOL's check, PROPFIND depth 0, GET's metadata),
        which on embedded SQLite runs on the event loop itself, as the API's reads
        (deps.UnitOfWork, `Services.inline_reads`): there a read waits for no lock and
        costs less than the thread hop. A depth-1 listing of thousands still hops."""
        svc = self.svc(request)

        def run() -> tuple[T, list[dict[str, Any]], list[int]]:
            with svc.database.read_transaction() as db:
                result = fn(db, self.authenticate(request, db, svc, read_only=True))
                return result, audit.deferred(db), users.deferred_uses(db)

        try:
            result, entries, uses = run() if small and svc.inline_reads else await in_thread(run)
        except _NeedsWrite:
            return await self.work(request, fn)
        if entries or uses:  # most reads (MKCOL on an existing folder, PROPFIND) have none
            await audit_log(request).write(entries, [users.touch_later(uses)] if uses else [])
        return result

    def authenticate(
        self,
        request: Request,
        db: Session,
        svc: Services,
        *,
        read_only: bool = False,
        token_only: bool = False,
    ) -> Actor:
        """Bearer token; or Basic with the account email and an app password (any API
        token of that account) or the account password (throttled like a login; not with
        `token_only`, which answers 401 instead: a write group's transaction must not
        hold the throttle's own transaction)."""
        actor = anonymous_actor(request)
        header = request.headers.get("authorization", "")
        # A write group's transaction records several PUTs of one client, each with the
        # same credentials: a token is looked up once per transaction (its rows are
        # locked to others' writes until the commit: SQLite's one writer).
        signed_in: dict[str, tuple[Any, int]] = (
            db.info.setdefault(_SIGNED_IN, {}) if token_only else {}
        )
        known = signed_in.get(header)
        token = bearer_token(request)
        if known is not None:
            actor.user, actor.token_id = known
        elif token is not None:
            actor = authenticate_as(actor, db, token)
        else:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                raise Unauthenticated("Sign in with your email and an app password.")
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthenticated("The Basic credentials are malformed.") from None
            email, sep, password = decoded.partition(":")
            if not sep or not email or not password:
                raise Unauthenticated("The Basic credentials are malformed.")
            email = users.normalise_email(email)
            try:
                user, token_id = users.authenticate(db, password)
            except Unauthenticated:
                user = None
            if user is not None and user.email == email:
                actor.user, actor.token_id = user, token_id
            elif token_only:
                raise Unauthenticated("Wrong email or password.")
            elif read_only:
                raise _NeedsWrite()
            else:
                try:
                    actor.user = login_limits.login(
                        db, svc.database, svc.settings, actor, email, password
                    )
                except RateLimited:
                    raise
                except Unauthenticated:
                    raise Unauthenticated("Wrong email or password.") from None
        actor.lock_tokens = ifheader.submitted_tokens(ifheader.parse(request.headers.get("if")))
        if actor.token_id is not None and known is None:
            _RECENT.note(header)
            signed_in[header] = (actor.user, actor.token_id)
        return actor

    # -- checks -----------------------------------------------------------------------------

    def check_if(self, db: Session, actor: Actor, request: Request, target: Target) -> None:
        """412 when the If header's lists are all false for the resource they name."""
        lists = ifheader.parse(request.headers.get("if"))
        if not lists:
            return
        for lst in lists:
            node = target.node
            ns, rel = self.ns_of(target)
            if lst.resource is not None:
                path = urlsplit(lst.resource).path
                if path.rstrip("/") != (node.href if node else "").rstrip("/") and path.startswith(
                    "/dav"
                ):
                    scope = {"type": "http", "path": unquote(path), "raw_path": path.encode()}
                    try:
                        other = resolve(db, actor, url_segments(scope)[0])
                    except DavError:
                        continue
                    node = other.node
                    ns, rel = self.ns_of(other)
            locks = locking.live_locks(db, ns)
            ok = True
            for cond in lst.conditions:
                if cond.token is not None:
                    held = any(lk.token == cond.token and locking.covers(lk, rel) for lk in locks)
                    result = held
                else:
                    result = (
                        node is not None
                        and cond.etag is not None
                        and node.etag == cond.etag.removeprefix("W/")
                    )
                if cond.negated:
                    result = not result
                if not result:
                    ok = False
                    break
            if ok:
                return
        raise DavError(412, "No list of the If header holds.")

    @staticmethod
    def ns_of(target: Target) -> tuple[int | None, str]:
        """The lock namespace and path of what a target names (existing or to be made)."""
        if target.node is not None:
            return target.node.ns_root, target.node.rel
        parent = target.parent
        if parent is None or parent.ns_root is None:
            return None, ""
        rel = f"{parent.rel}/{target.name}" if parent.rel else target.name
        return parent.ns_root, rel

    def check_locks(
        self,
        db: Session,
        actor: Actor,
        target: Target,
        *,
        membership: bool = False,
        subtree: bool = False,
    ) -> None:
        """423 when a lock protects what the request changes and its token was not sent."""
        ns, rel = self.ns_of(target)
        held = locking.protecting(
            locking.live_locks(db, ns), rel, membership=membership, subtree=subtree
        )
        locking.require_tokens(held, actor.lock_tokens, actor.user_id)

    def adopt_locks(
        self, db: Session, target: Target, document_id: int | None, folder_id: int | None
    ) -> None:
        """Locks taken on an unmapped URL now name the item made there."""
        ns, rel = self.ns_of(target)
        for lock in locking.live_locks(db, ns):
            if lock.path == rel:
                lock.document_id, lock.folder_id = document_id, folder_id
        db.flush()

    @staticmethod
    async def body(request: Request) -> bytes:
        """A small request body (XML, or none): without Content-Length or Transfer-Encoding
        a request has none (RFC 9112, 6.3), and rclone's MKCOL before each upload then
        waits for no receive at all."""
        headers = request.headers
        if headers.get("content-length", "0").strip() == "0" and (
            "transfer-encoding" not in headers
        ):
            return b""
        return await request.body()

    @staticmethod
    def length(request: Request, limit: int) -> int | None:
        raw = request.headers.get("content-length")
        if raw is None:
            return None
        if not raw.strip().isdigit():
            raise DavError(400, "Content-Length is not a number.")
        if int(raw) > limit:
            raise DavError(413, f"The body is over the {limit}-byte limit.")
        return int(raw)

    @staticmethod
    def preconditions(request: Request, node: Node | None) -> None:
        """If-Match / If-None-Match of a write (412)."""
        h = request.headers
        etag = node.etag if node is not None else None
        if "if-match" in h and (node is None or not etag_matches(h["if-match"], etag)):
            raise DavError(412, "If-Match does not match the current version.")
        if "if-none-match" in h and node is not None:
            tags = h["if-none-match"].strip()
            if tags == "*" or etag_matches(tags, etag):
                raise DavError(412, "The resource exists (If-None-Match).")

    def writable(self, target: Target) -> None:
        """403 where nothing may be written (/dav/ itself, versions, trash)."""
        if target.area not in WRITABLE_AREAS or (
            target.area == "shared" and len(target.segments) < 2
        ):
            raise DavError(403, "This part of the WebDAV tree is read-only.")
