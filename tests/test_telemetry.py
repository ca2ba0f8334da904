"""DOCSTORE_TELEMETRY: FastAPI's native OpenTelemetry is consulted on each request only when on."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace

from docstore.app import create_app
from tests.fixtures.app import BASE, make_settings


@pytest.mark.parametrize("on", [False, True])
def test_telemetry_setting_decides_whether_requests_look_for_a_tracer(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, on: bool
) -> None:
    """Off (the default), a request never asks OpenTelemetry for its tracer provider, the
    lookup that cost every request a few percent (bench/PROFILE.md, session 6); on, FastAPI
    looks for one, and would trace through it once an operator configures one."""
    looked: list[object] = []
    real = trace.get_tracer_provider

    def counting() -> trace.TracerProvider:
        looked.append(None)
        return real()

    settings = make_settings(tmp_path, sqlite_url, telemetry=on)
    with TestClient(create_app(settings), base_url=BASE) as client:
        monkeypatch.setattr(trace, "get_tracer_provider", counting)
        assert client.get("/healthz").status_code == 200
    assert bool(looked) is on
