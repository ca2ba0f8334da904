"""Helpers for the search tests."""

from __future__ import annotations

from typing import Any

from docstore.search.indexing import Progress, index_pending
from docstore.services import Services
from tests.fixtures.app import Api, User

API = "/api/v1"


def services(api: Api) -> Services:
    svc = api.client.app.state.services  # type: ignore[attr-defined]
    assert isinstance(svc, Services)
    return svc


def index(api: Api) -> Progress:
    """Run the worker's indexing job to the end (what `search.index` does each pass)."""
    return index_pending(services(api), max_batches=50)


def search(user: User, q: str, expect: int = 200, **params: Any) -> dict[str, Any]:
    r = user.get(f"{API}/search", params={"q": q, **params})
    assert r.status_code == expect, r.text
    return dict(r.json())


def names(user: User, q: str, **params: Any) -> list[str]:
    return [item["name"] for item in search(user, q, **params)["items"]]


def upload(user: User, name: str, data: bytes, folder: int | None = None) -> dict[str, Any]:
    r = user.upload(name, data, folder)
    assert r.status_code == 201, r.text
    return dict(r.json())
