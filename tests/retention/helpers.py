"""Helpers for the retention, trash and GC tests: the app's services, admins, plans, clocks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from docstore.db import utcnow
from docstore.documents.models import Blob, DocumentVersion
from docstore.services import Services
from docstore.users.models import User as UserRow
from tests.fixtures.app import Api, User


def services(api: Api) -> Services:
    """The Services the in-process app runs on."""
    svc: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return svc


def make_admin(api: Api, user: User) -> User:
    """Turn a registered user into an administrator."""
    with services(api).database.transaction() as db:
        db.execute(update(UserRow).where(UserRow.id == user.id).values(is_admin=True))
    return user


def put_plan(admin: User, name: str, **limits: int) -> None:
    """Create or replace a plan through the admin API."""
    body = {"quota_bytes": 10**9, "max_versions": 100, "retention_days": 30, **limits}
    r = admin.request("PUT", f"/api/v1/admin/plans/{name}", json=body)
    assert r.status_code == 200, r.text


def set_plan(admin: User, user: User, plan: str) -> None:
    """Move a user to a plan through the admin API."""
    r = admin.patch(f"/api/v1/admin/users/{user.id}", json={"plan": plan})
    assert r.status_code == 200, r.text


def save(user: User, doc_id: int, data: bytes) -> dict[str, Any]:
    """A new version with `data` (raw body); returns the new version."""
    r = user.post(f"/api/v1/documents/{doc_id}/versions", content=data)
    assert r.status_code == 201, r.text
    return dict(r.json()["version"])


def later(**delta: float) -> datetime:
    """A time in the future: the controllable clock the jobs take as `now`."""
    return utcnow() + timedelta(**delta)


def blob_of(api: Api, version_id: int) -> Blob:
    """The blob row behind a version."""
    with services(api).database.transaction() as db:
        blob_id = db.scalar(select(DocumentVersion.blob_id).where(DocumentVersion.id == version_id))
        return db.get_one(Blob, blob_id)


def objects(api: Api) -> set[str]:
    """Keys of every stored object."""
    return {o.key for o in services(api).store.iter_objects()}
