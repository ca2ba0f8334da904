"""Maintenance endpoints: run version retention on demand (admin)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from docstore.deps import CurrentActor, Svc
from docstore.retention import runs, service
from docstore.retention.schemas import RetentionOut
from docstore.schemas import problems
from docstore.users.service import require_admin

router = APIRouter(tags=["maintenance"])


@router.post("/admin/retention/run", response_model=RetentionOut, responses=problems(401, 403))
async def run_retention(actor: CurrentActor, svc: Svc, dry_run: bool = False) -> RetentionOut:
    """Apply version retention now (admin); `dry_run=true` only reports what would go.

    Each batch commits on its own (not in the request's transaction), so a long run never
    holds one huge transaction, and a run cut short keeps what it finished.
    """
    require_admin(actor)

    def work() -> service.RetentionResult:
        return service.run(svc.database, dry_run=dry_run, actor=actor.system())

    if dry_run:
        result = await run_in_threadpool(work)
    else:  # a real run is recorded as the retention job's latest (the admin console)
        result = await run_in_threadpool(runs.timed, svc.database, runs.RETENTION, work, _judge)
    return RetentionOut(**result.as_dict())


def _judge(result: service.RetentionResult) -> runs.Outcome:
    return runs.Outcome(True, {**result.as_dict(), "trigger": "admin"})
