"""After a fault: the janitor, then the proof that nothing was lost and nothing was left behind.

The janitor runs every cleanup job with a clock three days ahead, past every grace period, so
anything a fault left behind must be found and removed. Then: fsck (in-process, rehashing
every object, and the operator's `docstore fsck --json`) is clean, no blob is pending or
half-deleted, storage holds exactly the blob rows' objects and no multipart upload, every
quota is the sum of its owner's versions, and every version downloads with its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from docstore.config import Settings
from docstore.db import utcnow
from docstore.documents.models import Blob, Document, DocumentVersion
from docstore.retention import fsck, gc
from docstore.services import Services
from docstore.uploads import tasks as upload_jobs
from docstore.users.models import User as UserRow
from tests.faults.helpers import Client, docstore

SECRET = "e2e-secret"


@dataclass
class Store:
    """One database and one storage, as a server process was configured with them."""

    database_url: str
    storage_url: str
    workdir: Path

    def services(self) -> Services:
        """The parts the janitor uses, built like a server's (jobs not started)."""
        settings = Settings(
            data_dir=self.workdir / "janitor",
            database_url=self.database_url,
            storage_url=self.storage_url,
            secret_key=SECRET,
            run_jobs_in_server=False,
        )
        return Services.from_settings(settings)

    def cli_env(self) -> dict[str, str]:
        return {
            "DOCSTORE_DATABASE_URL": self.database_url,
            "DOCSTORE_STORAGE_URL": self.storage_url,
            "DOCSTORE_DATA_DIR": str(self.workdir / "cli"),
            "DOCSTORE_SECRET_KEY": SECRET,
        }


@dataclass
class Version:
    """One committed version, as the database holds it."""

    id: int
    document_id: int
    name: str
    owner_id: int
    size_bytes: int
    sha256: str


@dataclass
class Proof:
    """What the janitor did and what is left: every version, and every object's blob."""

    janitor: dict[str, Any]
    versions: list[Version]
    blobs: list[tuple[str, int]]  # (sha256, size) of every blob row, all active, sorted

    def by_owner(self, owner_id: int) -> dict[str, list[str]]:
        """The owner's documents by name, each with its versions' SHA-256 (oldest first)."""
        out: dict[str, list[str]] = {}
        for v in sorted(self.versions, key=lambda v: v.id):
            if v.owner_id == owner_id:
                out.setdefault(v.name, []).append(v.sha256)
        return out


def janitor_and_proof(store: Store, clients: Mapping[int, Client]) -> Proof:
    """Run the cleanup jobs, then check fsck, storage, quotas and every version's bytes.

    `clients` must hold a signed-in client for every owner of a document.
    """
    svc = store.services()
    try:
        later = utcnow() + timedelta(days=3)
        done = {
            "uploads.expire": upload_jobs.expire_sessions(svc, now=later),
            "blobs.gc": gc.collect(svc.database, svc.store, svc.settings, now=later).as_dict(),
            "blobs.sweep": gc.sweep(svc.database, svc.store, svc.settings, now=later),
        }
        report = fsck.run(svc, now=later, rehash=True)
        assert report.ok, report.as_dict()
        with svc.database.transaction() as db:
            rows = db.execute(
                select(
                    DocumentVersion.id,
                    DocumentVersion.document_id,
                    Document.name,
                    Document.owner_id,
                    DocumentVersion.size_bytes,
                    DocumentVersion.checksum_sha256,
                ).join(Document, Document.id == DocumentVersion.document_id)
            ).all()
            used = dict(db.execute(select(UserRow.id, UserRow.used_bytes)).all())
            pending = db.scalar(
                select(func.count()).select_from(Blob).where(Blob.state != "active")
            )
            blob_rows = db.execute(select(Blob.storage_key, Blob.sha256, Blob.size_bytes)).all()
        assert pending == 0  # nothing half-uploaded or half-deleted is left
        keys = {key for key, _, _ in blob_rows}
        assert {o.key for o in svc.store.iter_objects()} == keys  # and no stray object
        assert svc.store.list_multipart_uploads() == []
    finally:
        svc.close()
    # The command an operator runs agrees.
    out = docstore(store.cli_env(), "fsck", "--json", cwd=store.workdir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["ok"] is True
    versions = [Version(*row) for row in rows]
    owners = {v.owner_id for v in versions}
    assert owners <= set(clients), owners - set(clients)
    # Quotas are exact: the API's used_bytes is the sum of the owner's live versions.
    for user_id, client in clients.items():
        expected = sum(v.size_bytes for v in versions if v.owner_id == user_id)
        assert client.used_bytes() == expected == used[user_id]
    # Every committed version downloads, and its bytes hash to its SHA-256.
    for v in versions:
        data = clients[v.owner_id].download(v.document_id, v.id)
        assert len(data) == v.size_bytes
        assert hashlib.sha256(data).hexdigest() == v.sha256
    return Proof(done, versions, sorted((sha, size) for _, sha, size in blob_rows))
