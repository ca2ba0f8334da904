"""GET /metrics: hidden unless the token (or an allowed address) is presented; after known
traffic its counters have moved by exactly that traffic, and the text parses as Prometheus's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from docstore.config import Settings
from docstore.retention import fsck
from docstore.services import Services
from docstore.users.models import User as UserRow
from tests.fixtures.app import Api, make_settings

TOKEN = "scrape-me-please"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Counting does not depend on the database: SQLite only."""
    return sqlite_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, metrics_token=TOKEN, metrics_allow=["10.9.9.9"])


def scrape(api: Api) -> Samples:
    r = api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_hidden_without_the_token(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 404
    wrong = api.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 404
    assert api.client.get("/api/v1/metrics").status_code == 404  # not on the API path


def test_counters_move_by_the_traffic_made(api: Api) -> None:
    svc: Services = api.client.app.state.services  # type: ignore[attr-defined]
    ann, bob = api.register(), api.register()
    before = scrape(api)
    sizes = (100, 200, 300)
    docs = []
    for i, size in enumerate(sizes):
        r = ann.upload(f"f{i}.bin", bytes([i]) * size)
        assert r.status_code == 201, r.text
        docs.append(r.json()["id"])
    dup = bob.upload("same.bin", bytes([0]) * 100)  # ann's f0 content: deduplicated
    assert dup.status_code == 201, dup.text
    for _ in range(2):
        assert ann.get(f"/api/v1/documents/{docs[0]}").status_code == 200
    assert ann.get("/api/v1/documents/999999").status_code == 404
    downloaded = ann.download(docs[2])
    assert downloaded.status_code == 200 and len(downloaded.content) == 300
    with svc.database.transaction() as db:
        db.execute(update(UserRow).where(UserRow.id == ann.info["id"]).values(quota_bytes=10))
    assert ann.upload("big.bin", b"x" * 50).status_code == 507
    data = b"session" * 10
    opened = ann.post(
        "/api/v1/uploads",
        json={"filename": "s.bin", "size_bytes": len(data),
              "checksum_sha256": hashlib.sha256(data).hexdigest()},
    )  # fmt: skip
    assert opened.status_code in (201, 507)
    fsck.run(svc)  # a job run, recorded
    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/api/v1/documents/{document_id}"
    get_ok = {"method": "GET", "route": route, "status": "200"}
    assert delta("docstore_http_requests_total", **get_ok) == 2
    assert delta("docstore_http_requests_total", method="GET", route=route, status="404") == 1
    assert delta("docstore_http_request_duration_seconds_count", **get_ok) == 2
    assert delta("docstore_http_request_duration_seconds_bucket", le="+Inf", **get_ok) == 2
    assert not any("999999" in str(labels) for _, labels in after)  # templates, not paths
    assert delta("docstore_uploaded_bytes_total") == sum(sizes) + 100
    assert delta("docstore_dedup_saved_bytes_total") == 100
    assert delta("docstore_downloaded_bytes_total") == 300
    assert delta("docstore_quota_rejections_total") == 1 + (opened.status_code == 507)
    files = {"route": "/api/v1/files"}
    # A small body (up to documents.receive.SMALL_BODY) is read whole before its rows are
    # written, so the 50 bytes refused for quota were received too (a larger body is
    # refused on its Content-Length, never read: tests/uploads).
    assert delta("docstore_http_received_bytes_total", **files) == sum(sizes) + 100 + 50
    assert value(after, "docstore_upload_sessions_open") == (opened.status_code == 201)
    assert value(after, "docstore_job_last_run_ok", job="fsck") == 1
    assert value(after, "docstore_job_last_success_timestamp_seconds", job="fsck") > 0
    assert value(after, "docstore_db_pool_connections", state="in_use") >= 0
    assert ("docstore_storage_errors_total", ()) in after


def test_an_allowed_address_scrapes_without_the_token(settings: Settings) -> None:
    from starlette.requests import Request

    from docstore.ops.metrics import allowed

    def request(host: str) -> Request:
        return Request({"type": "http", "headers": [], "client": (host, 4000)})

    assert allowed(settings, request("10.9.9.9"))
    assert not allowed(settings, request("10.9.9.10"))
    wide = settings.model_copy(update={"metrics_allow": ["10.0.0.0/8"], "metrics_token": None})
    assert allowed(wide, request("10.9.9.10"))
    assert not allowed(wide, request("192.168.1.1"))
