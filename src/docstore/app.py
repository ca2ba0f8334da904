"""The FastAPI application: routers, problem-JSON error handlers, start-up work."""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from docstore import metrics, migrate, openapi
from docstore.accounts.endpoints import router as accounts_router
from docstore.admin.endpoints import router as admin_router
from docstore.audit.endpoints import router as audit_router
from docstore.audit.keys import signer_for
from docstore.audit.sealing import adopt_legacy
from docstore.changes.endpoints import router as changes_router
from docstore.comments.endpoints import router as comments_router
from docstore.config import Settings, get_settings
from docstore.dav.server import install as install_dav
from docstore.db import task_scope
from docstore.documents.endpoints import router as documents_router
from docstore.errors import DocstoreError
from docstore.folders.endpoints import router as folders_router
from docstore.groups.endpoints import router as groups_router
from docstore.limits import BodyLimits
from docstore.ops.metrics import RequestMetrics
from docstore.ops.metrics import install as install_metrics
from docstore.retention.endpoints import router as retention_router
from docstore.schemas import problem_response
from docstore.search.endpoints import router as search_router
from docstore.server import draining
from docstore.services import Services
from docstore.sharing import url_grants
from docstore.sharing.endpoints import links_router
from docstore.sharing.endpoints import router as sharing_router
from docstore.storage.base import StorageError
from docstore.storage.endpoints import router as storage_router
from docstore.storage.inline import write_out
from docstore.trash.endpoints import router as trash_router
from docstore.uploads.endpoints import router as uploads_router
from docstore.users import service as users
from docstore.users.endpoints import router as users_router
from docstore.users.session_endpoints import router as user_sessions_router
from docstore.versions.endpoints import router as versions_router
from docstore.web.account import router as web_account_router
from docstore.web.accounts import router as web_accounts_router
from docstore.web.admin import install as install_admin_web
from docstore.web.routes import install as install_web
from docstore.web.security import SecurityHeaders
from docstore.webhooks.endpoints import router as webhooks_router

log = logging.getLogger("docstore")

API_PREFIX = "/api/v1"
# FastAPI's native telemetry, all off (Settings.telemetry): its per-request check is then
# a dictionary lookup instead of a look for configured OpenTelemetry providers.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


problem = problem_response


def startup(services: Services) -> None:
    """Migrate the schema, make sure the default plan and the configured admin exist."""
    migrate.upgrade(services.database.engine)
    adopt_legacy(services.database, signer_for(services))
    # Small files kept in the database by a local installation, now on S3: write them out.
    if written := write_out(services.database, services.store):
        log.info("%d small objects kept in the database were written to storage", written)
    settings = services.settings
    with services.database.transaction() as db:
        users.ensure_default_plan(db)
        if settings.admin_email and settings.admin_password:
            users.bootstrap_admin(db, settings.admin_email, settings.admin_password)


def allowed_methods(app: FastAPI, request: Request) -> set[str]:
    """Every method the app serves at the request's path. Starlette's 405 names only the
    methods of the first route whose path matched (`GET /folders/{id}` answered an OPTIONS
    with `Allow: GET`, leaving out PATCH and DELETE)."""
    patterns: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        app.state, "route_patterns", None
    )
    if patterns is None:
        patterns = [
            (compile_path(route.path)[0], set(route.methods))
            for route in iter_route_contexts(app.routes)
            if route.methods and route.path
        ]
        app.state.route_patterns = patterns
    path = request.url.path
    return {m for pattern, methods in patterns if pattern.match(path) for m in methods}


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as problem JSON; nothing internal (SQL, keys, traces) leaks."""

    @app.exception_handler(DocstoreError)
    async def _domain(_: Request, exc: DocstoreError) -> JSONResponse:
        resp = problem(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
        resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "bad_request", "Bad request", "The body is not valid JSON.")
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem(422, "validation_error", "Validation failed", detail[:2000], errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        title = code.replace("_", " ").capitalize()
        resp = problem(exc.status_code, code, title, str(exc.detail))
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        if exc.status_code == 405:
            resp.headers["Allow"] = ", ".join(sorted(allowed_methods(request.app, request)))
        return resp

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # A race lost to a unique index: the same answer the up-front check would give.
        if "live_name" in str(exc.orig):
            return problem(409, "name_conflict", "Name taken", "An item with this name exists.")
        log.warning("integrity error: %s", exc.orig)
        return problem(409, "conflict", "Conflict", "The change conflicts with another one.")

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the request carried (PostgreSQL: a NUL character in
        # text, a number out of range): the client's input, not a server fault.
        log.info("database refused a value: %s", str(exc.orig).splitlines()[0])
        return problem(
            422,
            "validation_error",
            "Validation failed",
            "A value cannot be stored (text may not contain NUL characters).",
        )

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        log.error("storage error: %s", exc)
        metrics.STORAGE_ERRORS.inc()
        return problem(
            503,
            "storage_unavailable",
            "Storage is unavailable",
            "Storage did not answer; nothing was changed. Try again.",
        )

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database error: %s", exc.orig)
        return problem(
            503,
            "database_unavailable",
            "Database is unavailable",
            "The database did not answer; nothing was changed. Try again.",
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "internal_error", "Internal error", "Something went wrong on our side.")


class HealthOut(BaseModel):
    """What GET /health answers: `ok` or `degraded`, and each dependency's state."""

    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    storage: Literal["ok", "unavailable"]
    cache: str


def health(services: Services) -> dict[str, str]:
    """Whether the database, storage and cache answer."""
    try:
        with services.database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "unavailable"
    try:
        storage = "ok" if services.store.check() else "unavailable"
    except Exception:
        storage = "unavailable"
    cache = f"{services.cache.kind}:{'ok' if services.cache.ping() else 'unavailable'}"
    ok = database == "ok" and storage == "ok"
    return {
        "status": "ok" if ok else "degraded",
        "database": database,
        "storage": storage,
        "cache": cache,
    }


def readiness(services: Services) -> dict[str, str]:
    """Whether this process should get new requests: not while it drains (SIGTERM), while
    some process migrates the schema, or while the database or storage does not answer.
    (Liveness is /healthz; while this process itself migrates it does not listen yet.)"""
    if draining():
        return {"status": "draining"}
    try:
        with services.database.engine.connect() as conn:
            migrating = migrate.migration_running(conn)
            conn.rollback()
    except Exception:
        return {"status": "unavailable", "database": "unavailable"}
    if migrating:
        return {"status": "migrating"}
    try:
        stored = services.store.check()
    except Exception:
        stored = False
    if not stored:
        return {"status": "unavailable", "storage": "unavailable"}
    return {"status": "ready"}


class TransactionScope:
    """Each request is a task of its own for the transaction guard (`db.task_scope`): the
    worker threads it hops through share its one slot for an open transaction."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            task_scope()
        await self.app(scope, receive, send)


class DocstoreApp(FastAPI):
    """FastAPI, with WebDAV served in a lane of its own ahead of the API's stack.

    A WebDAV request passes only what it needs (`dav_lane`, built by `create_app`: the
    request metrics, security headers, body read timeouts and transaction scope the API's
    requests pass too); FastAPI's exception, telemetry and body-limit layers, the router
    and the mount were ~0.3 ms of CPU per request, and rclone sends three requests per
    file (issue 23)."""

    dav_lane: ASGIApp | None = None
    dav_route: Mount | None = None  # the route the metrics name WebDAV requests by

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.dav_lane
        if lane is not None and scope["type"] == "http":
            path = scope["path"]
            if path == "/dav" or path.startswith("/dav/"):
                scope["app"] = self
                scope["route"] = self.dav_route
                await lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app; resources are created in the lifespan, never at import time."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or Services.from_settings(settings)
        # Sync endpoints hop through worker threads several times per request (dependencies,
        # the endpoint, response validation), each hop taking a token. With AnyIO's default
        # 40, requests queued on the database (SQLite's write lock, or a full pool) could
        # hold every token while the request holding the lock waited for one to finish
        # (seen: 32 clients that disconnected mid-request left SQLite stalled for 30 s).
        # More tokens than requests admitted (uvicorn's limit_concurrency) rules that out.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, svc.settings.max_concurrent_requests + 16)
        await run_in_threadpool(startup, svc)
        app.state.services = svc
        app.state.blob_store = svc.store
        # The local store's download URLs handed out through a share are checked again.
        app.state.download_grants = url_grants.checker(svc.database)
        worker = None
        if svc.settings.run_jobs_in_server:
            from docstore.retention.worker import BackgroundWorker

            worker = BackgroundWorker(svc).start()
        # Everything loaded so far (modules, the ORM's mappers, the routes' models) lives as
        # long as the process: moved out of the collector's reach, a full collection no
        # longer walks it (seen: 100 ms pauses in the middle of a listing).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if worker is not None:
                await run_in_threadpool(worker.stop)
            await svc.database.dispose_async()
            if services is None:
                svc.close()

    app = DocstoreApp(
        title="docstore",
        version="1",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        telemetry=None if settings.telemetry else NO_TELEMETRY,
    )
    install_error_handlers(app)
    openapi.install(app)
    app.add_middleware(TransactionScope)
    app.add_middleware(
        BodyLimits,
        json_max_bytes=settings.json_max_bytes,
        read_timeout=settings.body_read_timeout_seconds,
    )
    # FastAPI tries the routes in order, ~20 µs each through included routers (0.165): the
    # hottest (document reads, listings, saves) come first. No two routers share a path.
    for router in (documents_router, folders_router, versions_router, users_router, audit_router):
        app.include_router(router, prefix=API_PREFIX)
    for router in (sharing_router, links_router, comments_router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(uploads_router, prefix=API_PREFIX)
    app.include_router(user_sessions_router, prefix=API_PREFIX)
    app.include_router(accounts_router, prefix=API_PREFIX)
    for router in (trash_router, retention_router, admin_router, groups_router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(changes_router, prefix=API_PREFIX)
    app.include_router(webhooks_router, prefix=API_PREFIX)
    app.include_router(search_router, prefix=API_PREFIX)
    app.include_router(storage_router)
    app.include_router(web_accounts_router)
    install_web(app, settings)
    install_admin_web(app)
    app.include_router(web_account_router)
    install_metrics(app, settings)  # outermost: counts every request, whatever answers it
    app.dav_route = install_dav(app)
    app.dav_lane = RequestMetrics(
        SecurityHeaders(
            BodyLimits(
                TransactionScope(app.dav_route.app),
                json_max_bytes=settings.json_max_bytes,
                read_timeout=settings.body_read_timeout_seconds,
            ),
            settings=settings,
        )
    )

    @app.get(
        f"{API_PREFIX}/health",
        tags=["maintenance"],
        response_model=None,
        responses={
            200: {"model": HealthOut, "description": "Database and storage answer"},
            503: {"model": HealthOut, "description": "Degraded: the database or storage does not"},
        },
    )
    @app.get("/healthz", include_in_schema=False)
    def get_health(request: Request) -> JSONResponse:
        """Database, storage and cache status (no auth)."""
        body = health(request.app.state.services)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/readyz", include_in_schema=False)
    def get_ready(request: Request) -> JSONResponse:
        """200 when this process takes new requests; 503 while it drains, a migration runs,
        or the database or storage does not answer (no auth)."""
        body = readiness(request.app.state.services)
        return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)

    return app
