"""Helpers for the audit tests: reading the log over HTTP, admins, direct rows."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from docstore.audit.keys import FileAnchor, Signer
from docstore.audit.models import AuditLog
from docstore.audit.service import Action, record
from docstore.context import system_actor
from docstore.db import Database
from docstore.services import Services
from docstore.sharing.models import Share
from docstore.users.models import User
from tests.fixtures.app import Api
from tests.fixtures.app import User as ApiUser

DOCSTORE = Path(sys.executable).with_name("docstore")
# The audit key of the tests' direct calls and of `run_cli` (DOCSTORE_AUDIT_KEY).
AUDIT_KEY = "test-audit-key-0123456789abcdef0123456789abcdef"
SIGNER = Signer(AUDIT_KEY.encode())


def anchored_signer(tmp_path: Path) -> Signer:
    """The tests' key with an anchor file under tmp_path (the one `run_cli` uses)."""
    return Signer(AUDIT_KEY.encode(), FileAnchor(tmp_path / "audit-anchor.jsonl"))


def services(api: Api) -> Services:
    """The in-process app's services."""
    svc: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return svc


def make_admin(api: Api, user: ApiUser) -> ApiUser:
    """Turn a registered user into an administrator (directly on the database)."""
    with services(api).database.transaction() as db:
        db.execute(update(User).where(User.id == user.id).values(is_admin=True))
    return user


def share_directly(api: Api, owner: ApiUser, grantee: ApiUser, document_id: int, level: int) -> int:
    """A share row written straight to the database (no SHARE entry): for tests that need
    a sharee whatever the state of the sharing endpoints."""
    with services(api).database.transaction() as db:
        share = Share(
            document_id=document_id,
            kind="user",
            shared_with_user_id=grantee.id,
            permission=level,
            created_by=owner.id,
        )
        db.add(share)
        db.flush()
        return share.id


def entries(user: ApiUser, **params: Any) -> list[dict[str, Any]]:
    """Every entry `user` may see under `params`, following the cursor (bounded)."""
    return [entry for page in user.pages("/api/v1/audit", **params) for entry in page["items"]]


def add_entries(
    database: Database, n: int, *, timestamp: datetime | None = None, action: Action = Action.VIEW
) -> list[int]:
    """`n` entries written by `record`, committed in one transaction; their ids. Callers
    write from one thread at a time, so the new ids are those above the old maximum."""
    with database.transaction() as db:
        before = db.scalar(select(func.coalesce(func.max(AuditLog.id), 0)))
        for i in range(n):
            record(db, system_actor(), action, document_id=i + 1, owner_id=1, details={"i": i})
        mine = AuditLog.id > before
        if timestamp is not None:
            db.execute(update(AuditLog).where(mine).values(timestamp=timestamp))
        return list(db.scalars(select(AuditLog.id).where(mine).order_by(AuditLog.id)))


def run_cli(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `docstore` executable on `database_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
    env.update(
        {
            "DOCSTORE_DATABASE_URL": database_url,
            "DOCSTORE_DATA_DIR": str(tmp_path / "cli-data"),
            "DOCSTORE_SECRET_KEY": "cli-secret",
            "DOCSTORE_AUDIT_KEY": AUDIT_KEY,
            "DOCSTORE_AUDIT_ANCHOR_FILE": str(tmp_path / "audit-anchor.jsonl"),
            "COLUMNS": "200",
        }
    )
    return subprocess.run(
        [str(DOCSTORE), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
