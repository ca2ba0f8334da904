"""`GET /metrics`: Prometheus text format, off the API path and off by default.

Who may scrape (README "Monitoring"): a client sending `Authorization: Bearer
<DOCSTORE_METRICS_TOKEN>`, or one whose address is in DOCSTORE_METRICS_ALLOW (addresses or
networks). With neither set the endpoint does not exist (404), and anyone else gets 404 too.

Counted as requests are answered (`RequestMetrics`): per route template and status, counts,
latency, body bytes; read from the database when scraped (`StateCollector`): open upload
sessions, each job's last success, duration and recent failures, and the pool's use.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docstore import metrics
from docstore.config import Settings
from docstore.db import utcnow
from docstore.retention import runs
from docstore.retention.models import JobRunRecord
from docstore.server import DIRECT_BODY_BYTES_KEY
from docstore.services import Services
from docstore.uploads.models import UploadSession

PATH = "/metrics"
_DOWNLOAD_ROUTES = ("/storage/objects",)


def _template(scope: Scope) -> str:
    """The matched route's full path template (with its router's prefix), never the path."""
    route = scope.get("route")
    if route is None:
        return "<unmatched>"
    app = scope.get("app")
    templates = getattr(getattr(app, "state", None), "route_templates", None)
    if templates is None and app is not None:  # built once per app, on its first request
        templates = {
            id(ctx.original_route): ctx.path_format or ctx.path
            for ctx in iter_route_contexts(app.routes)
        }
        app.state.route_templates = templates
    found = (templates or {}).get(id(route)) or getattr(route, "path", None)
    return str(found) if found else "<unmatched>"


class RequestMetrics:
    """Counts every HTTP request by method, route template and status, with its latency and
    body bytes (ASGI middleware: streamed bodies are counted as they pass)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received = sent = 0
        status = 500

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent, status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = _template(scope)
            # A body read from the socket directly (storage.bodyio) passed no receive().
            received += scope.get(DIRECT_BODY_BYTES_KEY, 0)
            if route != PATH:
                self._count(scope["method"], route, status, received, sent, started)

    @staticmethod
    def _count(method: str, route: str, status: int, received: int, sent: int, t0: float) -> None:
        key = (method, route, status)
        children = _CHILDREN.get(key)
        if children is None:
            # prometheus_client's `labels()` validates and locks on every call (4 % of the
            # server's GIL time under rclone, py-spy): its children are looked up once per
            # method, route template and status (a bounded set) and kept.
            labels = (method, route, str(status))
            children = _CHILDREN[key] = (
                metrics.REQUESTS.labels(*labels),
                metrics.LATENCY.labels(*labels),
            )
        requests, latency = children
        requests.inc()
        latency.observe(time.perf_counter() - t0)
        if received:
            _by_route(metrics.RECEIVED, route).inc(received)
        if sent:
            _by_route(metrics.SENT, route).inc(sent)
            if method == "GET" and (route in _DOWNLOAD_ROUTES or route.startswith("/dav")):
                metrics.DOWNLOADED.inc(sent)
        if status == 507:
            metrics.QUOTA_REJECTIONS.inc()


# RequestMetrics' labelled children by (method, route template, status), and by route.
_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_ROUTE_CHILDREN: dict[tuple[int, str], Any] = {}


def _by_route(counter: Any, route: str) -> Any:
    """`counter.labels(route)`, looked up once (a series appears when first counted)."""
    key = (id(counter), route)
    child = _ROUTE_CHILDREN.get(key)
    if child is None:
        child = _ROUTE_CHILDREN[key] = counter.labels(route)
    return child


class StateCollector(Collector):
    """What the database knows, read at scrape time: open upload sessions, the jobs' last
    runs, and the connection pool's use."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterable[Metric]:
        """The gauges (one short read transaction)."""
        now = utcnow()
        with self.svc.database.transaction() as db:
            open_sessions = db.scalar(
                select(func.count())
                .select_from(UploadSession)
                .where(UploadSession.state.in_(("pending", "completing")))
                .where(UploadSession.expires_at > now)
            )
            latest = runs.latest(db)
            success = dict(
                db.execute(
                    select(JobRunRecord.name, func.max(JobRunRecord.finished_at))
                    .where(JobRunRecord.ok.is_(True))
                    .group_by(JobRunRecord.name)
                ).all()
            )
            failed = dict(
                db.execute(
                    select(JobRunRecord.name, func.count())
                    .where(JobRunRecord.ok.is_(False))
                    .group_by(JobRunRecord.name)
                ).all()
            )
        yield GaugeMetricFamily(
            "docstore_upload_sessions_open", "Upload sessions open.", value=open_sessions or 0
        )
        yield from self._jobs(latest, success, failed)
        yield from self._pool()

    def _jobs(
        self, latest: dict[str, JobRunRecord], success: dict[str, Any], failed: dict[str, Any]
    ) -> Iterator[Metric]:
        last_ok = GaugeMetricFamily(
            "docstore_job_last_success_timestamp_seconds",
            "When each job last finished successfully (Unix time).",
            labels=["job"],
        )
        duration = GaugeMetricFamily(
            "docstore_job_last_duration_seconds",
            "How long each job's last run took.",
            labels=["job"],
        )
        ok = GaugeMetricFamily(
            "docstore_job_last_run_ok",
            "1 if each job's last run succeeded, else 0.",
            labels=["job"],
        )
        failures = GaugeMetricFamily(
            "docstore_job_recent_failures",
            f"Failed runs among each job's last {runs.KEEP} recorded runs.",
            labels=["job"],
        )
        for name, row in sorted(latest.items()):
            duration.add_metric([name], (row.finished_at - row.started_at).total_seconds())
            ok.add_metric([name], 1.0 if row.ok else 0.0)
            failures.add_metric([name], float(failed.get(name, 0)))
            if success.get(name) is not None:
                last_ok.add_metric([name], _aware(success[name]).timestamp())
        yield from (last_ok, duration, ok, failures)

    def _pool(self) -> Iterator[Metric]:
        pool: Any = self.svc.database.engine.pool
        used = GaugeMetricFamily(
            "docstore_db_pool_connections", "Database connections by state.", labels=["state"]
        )
        for state, attr in (("in_use", "checkedout"), ("idle", "checkedin"), ("size", "size")):
            reader = getattr(pool, attr, None)
            if callable(reader):
                used.add_metric([state], float(reader()))
        yield used


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def allowed(settings: Settings, request: Request) -> bool:
    """Whether this caller may scrape: the bearer token, or an allowed address."""
    if settings.metrics_token:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), settings.metrics_token.encode()
        ):
            return True
    host = request.client.host if request.client else None
    if host and settings.metrics_allow:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(
            address in ipaddress.ip_network(net, strict=False) for net in settings.metrics_allow
        )
    return False


def exposition(svc: Services) -> bytes:
    """The text format: this process's counters (or, in multiprocess mode, every
    process's), and the state read from the database."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    state = CollectorRegistry()
    state.register(StateCollector(svc))
    return counted + generate_latest(state)


def install(app: FastAPI, settings: Settings) -> None:
    """Count requests and, when a token or an address list is set, serve /metrics."""
    app.add_middleware(RequestMetrics)
    if not (settings.metrics_token or settings.metrics_allow):
        return

    @app.get(PATH, include_in_schema=False)
    def get_metrics(request: Request) -> Response:
        if not allowed(settings, request):
            return Response(status_code=404)
        svc: Services = request.app.state.services
        return Response(exposition(svc), media_type=CONTENT_TYPE_LATEST)
