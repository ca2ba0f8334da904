"""The audit log's background jobs: chain new entries every few seconds, prune hourly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docstore.audit.keys import signer_for
from docstore.audit.sealing import Sealer, prune
from docstore.jobs import Job, register

if TYPE_CHECKING:
    from docstore.services import Services

SEAL_INTERVAL_SECONDS = 2.0
PRUNE_INTERVAL_SECONDS = 3600.0

# One sealer per process: it remembers which writers it is waiting for between passes.
SEALER = Sealer()


def seal_job(svc: Services) -> dict[str, Any]:
    """Chain the entries committed since the last pass."""
    return SEALER.run(svc.database, signer_for(svc))


def prune_job(svc: Services) -> dict[str, Any]:
    """Drop sealed entries older than DOCSTORE_AUDIT_RETENTION_DAYS (unset: keep forever)."""
    days = svc.settings.audit_retention_days
    if days is None:
        return {"pruned": 0, "retention": "forever"}
    return prune(svc.database, signer_for(svc), days)


register(Job("audit.seal", SEAL_INTERVAL_SECONDS, seal_job))
register(Job("audit.prune", PRUNE_INTERVAL_SECONDS, prune_job))
