"""FastAPI dependencies: the request's unit of work, the caller, the client address."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Row
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from docstore import session_cookie
from docstore.audit import service as audit
from docstore.audit.group_commit import GroupCommit
from docstore.context import Actor
from docstore.errors import DocstoreError, Unauthenticated
from docstore.services import Services
from docstore.users import service as users
from docstore.users import verification

T = TypeVar("T")


def get_services(request: Request) -> Services:
    """The app's services (database, store, cache, settings)."""
    services: Services = request.app.state.services
    return services


class UnitOfWork:
    """A request's one unit of work: one transaction, committed before the answer is sent
    and rolled back on any error. Every endpoint opens it through this class, in one of two
    ways: as the `DB` dependency (its session, for an ordinary endpoint), or, on the hot
    endpoints, `await UnitOfWork(request).run(work, ...)`, which authenticates the caller and
    runs `work(db, actor)` inside it in one worker-thread hop. The variants of `run` are its
    parameters: `read_only` (a read transaction, on the event loop itself where that is
    cheaper), `actor` (the caller is known already: the unit of work opens after a streamed
    body), `token_in_work` (`work` authenticates `self.token` in its own first statement) and
    `storage` (`work` calls the blob store: a read then never runs on the event loop).
    """

    __slots__ = ("request", "svc", "token")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.svc = get_services(request)
        # The presented token, once `run(..., token_in_work=True)` has read it.
        self.token = ""

    def transaction(self, *, read_only: bool = False) -> AbstractContextManager[Session]:
        """The unit of work's transaction: every way of opening it comes through here."""
        database = self.svc.database
        return database.read_transaction() if read_only else database.transaction()

    async def run(
        self,
        work: Callable[[Session, Actor], T],
        *,
        read_only: bool = False,
        actor: Actor | None = None,
        token_in_work: bool = False,
        storage: bool = False,
    ) -> T:
        """`work(db, actor)` in the unit of work, on one worker thread.

        The hot endpoints use this instead of the `DB` and `CurrentActor` dependencies, which
        cost a worker-thread hop each (plus one for the commit and one for validating a sync
        endpoint's answer): five hops become one, and on SQLite the write lock is never held
        across a return to the event loop. The caller is authenticated first (401 without a
        valid token), unless `actor` is given: an upload whose body streams in authenticates
        in one unit of work before the stream and passes that actor to the next, after it.
        """
        if read_only:
            return await self._read(work, token_in_work, storage)
        request = self.request

        def run() -> T:
            with self.transaction() as db:
                return work(db, actor if actor is not None else authenticate_request(request, db))

        return await run_in_threadpool(run)

    async def _read(
        self, work: Callable[[Session, Actor], T], token_in_work: bool, storage: bool = False
    ) -> T:
        """`run` for an endpoint that only reads the database: a read-only transaction,
        whose audit entries the group commit writes before the answer is sent.

        On embedded SQLite (no Redis: every lookup is in this process) the transaction runs
        on the event loop itself. A read there takes tens of microseconds and waits for no
        lock (WAL), while a worker-thread hop costs more than the whole read: the GIL changes
        hands at every call into sqlite3 (bench/PROFILE.md, session 5). `work` must therefore
        do nothing but database reads and in-process lookups.

        With `token_in_work`, `work` gets an actor without a user yet and authenticates
        `self.token` itself, before anything else (`users.service.check_token`): a hot read
        does it in the same statement as its fetch (documents.service.get_with_token), one
        round trip instead of two.
        """
        request = self.request
        token, from_cookie = presented_token(request)
        self.token = token

        def run() -> tuple[T, list[dict[str, Any]], list[int]]:
            with self.transaction(read_only=True) as db:
                actor = anonymous_actor(request)
                try:
                    if not token_in_work:
                        authenticate_as(actor, db, token)
                    result = work(db, actor)
                except DocstoreError:
                    require_verified(request, actor)  # an unverified caller learns nothing more
                    raise
                if from_cookie:  # as authenticate_request: once the token is known good
                    session_cookie.check_csrf(request, token)
                require_verified(request, actor)
                return result, audit.deferred(db), users.deferred_uses(db)

        # `storage`: work asks the blob store (S3 is a network round trip): never on the loop.
        inline = self.svc.inline_reads and not storage
        result, entries, uses = run() if inline else await run_in_threadpool(run)
        # A token's stale last use (at most once a minute) rides on the audit batch.
        await audit_log(request).write(entries, [users.touch_later(uses)] if uses else [])
        return result

    async def read_one_statement(
        self,
        statement: Callable[[str], tuple[Any, dict[str, Any]]],
        check: Callable[[Session, Actor, Row[Any] | None], T],
    ) -> T:
        """`run(work, read_only=True, token_in_work=True)` for a read that PostgreSQL
        answers in one statement: `statement(token)` authenticates, checks and fetches
        (documents.service.get_in_one_statement), `check(db, actor, row)` decides in Python
        what `work` would have (401, 404, the level, the VIEW entry).

        The statement runs on the event loop over the database's asyncio pool, in
        autocommit (`Database.fetch_first`): one round trip and no worker-thread hop where
        `run` took six round trips and a hop. `db` is a read session that never connects:
        it only carries the audit entries and token uses to the group commit, which writes
        them before the answer goes out, as for every read.
        """
        request = self.request
        token, from_cookie = presented_token(request)
        self.token = token
        row = await self.svc.database.fetch_first(*statement(token))
        actor = anonymous_actor(request)
        db = self.svc.database.read_sessionmaker()
        try:
            try:
                result = check(db, actor, row)
            except DocstoreError:
                require_verified(request, actor)  # an unverified caller learns nothing more
                raise
            if from_cookie:
                session_cookie.check_csrf(request, token)
            require_verified(request, actor)
            entries, uses = audit.deferred(db), users.deferred_uses(db)
        finally:
            db.close()
        await audit_log(request).write(entries, [users.touch_later(uses)] if uses else [])
        return result


def get_db(request: Request) -> Iterator[Session]:
    """The `DB` dependency: the request's unit of work (`UnitOfWork`) as a session,
    committed when the endpoint returns, else rolled back.

    Declared with scope="function" so the commit happens before the response is sent:
    a client never sees success for a write that then failed to commit.
    """
    with UnitOfWork(request).transaction() as session:
        yield session


DB = Annotated[Session, Depends(get_db, scope="function")]
Svc = Annotated[Services, Depends(get_services)]


def _in_networks(host: str, networks: list[str]) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    for net in networks:
        try:
            if addr in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_ip(request: Request) -> str | None:
    """The socket's peer; X-Forwarded-For only counts when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    trusted = get_services(request).settings.trusted_proxies
    if peer is None or not trusted or not _in_networks(peer, trusted):
        return peer
    # Walk the chain from the right: the first address not a trusted proxy is the client.
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _in_networks(hop, trusted):
            return hop[:64]
    return peer


def bearer_token(request: Request) -> str | None:
    """The token from `Authorization: Bearer …`, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def anonymous_actor(request: Request) -> Actor:
    """An actor with no user, carrying the client's address for audit."""
    return Actor(user=None, ip=client_ip(request), user_agent=request.headers.get("user-agent"))


def authenticate_request(request: Request, db: Session) -> Actor:
    """The signed-in caller (bearer token, or the web UI's session cookie), or 401.

    A state-changing request authenticated by the cookie must carry the page's CSRF token.
    """
    token, from_cookie = presented_token(request)
    actor = authenticate_as(anonymous_actor(request), db, token)
    if from_cookie:
        session_cookie.check_csrf(request, token)
    require_verified(request, actor)
    return actor


def require_verified(request: Request, actor: Actor) -> None:
    """DOCSTORE_REQUIRE_VERIFIED_EMAIL: 403 `email_unverified` for an account that has not
    proven its address, but for signing out and verifying (users.verification)."""
    settings = get_services(request).settings
    if settings.require_verified_email:
        verification.require_verified(settings, actor.user, request.method, request.url.path)


def authenticate_as(actor: Actor, db: Session, token: str) -> Actor:
    """`actor` signed in as the holder of `token`, or 401."""
    actor.user, actor.token_id = users.authenticate(db, token)
    return actor


def presented_token(request: Request) -> tuple[str, bool]:
    """The bearer token, else the web UI's session cookie (then True: a state-changing
    request must carry the page's CSRF token, checked once the token is), or 401. Not yet
    checked against the database."""
    token = bearer_token(request)
    if token is not None:
        return token, False
    token = session_cookie.cookie_token(request)
    if token is None:
        raise Unauthenticated()
    return token, True


def get_actor(request: Request, db: DB) -> Actor:
    """`authenticate_request` as a dependency, in the request's unit of work (`DB`), whose
    reads so far it then commits (`end_before_stream`: the body of a save may stream next)."""
    actor = authenticate_request(request, db)
    end_before_stream(db)
    return actor


def end_before_stream(db: Session) -> None:
    """End the request's transaction (its reads so far, committed) before a body streams in:
    on SQLite it holds the write lock, which the stream would keep for as long as the bytes
    take, and the streaming code opens transactions of its own. The unit of work begins
    again at the next use of `db`. One of the two places a request has a second
    transaction (docs/DEVELOPING.md, "Transactions")."""
    db.commit()


def audit_log(request: Request) -> GroupCommit:
    """The group commit that writes read requests' audit entries (one per app)."""
    log: GroupCommit | None = getattr(request.app.state, "audit_log", None)
    if log is None:
        log = request.app.state.audit_log = GroupCommit(get_services(request).database)
    return log


CurrentActor = Annotated[Actor, Depends(get_actor)]
