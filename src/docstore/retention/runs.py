"""The record of job runs (`job_runs`): written when a job ends, read by the admin console.

Scheduled jobs are recorded by the worker as it gives their lease back; runs asked for by
hand (`docstore fsck`, an admin's retention run or audit verification) by `timed`. Only the
newest `KEEP` runs of each job stay.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from docstore.db import Database, utcnow
from docstore.retention.models import JobRunRecord

KEEP = 20
# The names the admin console reports on, with what each is.
RETENTION = "retention.versions"
BLOB_GC = "blobs.gc"
FSCK = "fsck"
AUDIT_VERIFY = "audit.verify"

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """How a run ended: `ok`, and a JSON-able summary of what it did."""

    ok: bool
    summary: dict[str, Any]


def add(
    db: Session,
    name: str,
    *,
    started_at: datetime,
    finished_at: datetime,
    ok: bool,
    summary: dict[str, Any] | None,
    keep: int = KEEP,
) -> None:
    """Record one run in the caller's transaction and drop that job's runs beyond `keep`."""
    db.add(
        JobRunRecord(
            name=name, started_at=started_at, finished_at=finished_at, ok=ok, summary=summary
        )
    )
    db.flush()
    newest = (
        select(JobRunRecord.id)
        .where(JobRunRecord.name == name)
        .order_by(JobRunRecord.id.desc())
        .limit(keep)
        .subquery()
    )
    db.execute(
        delete(JobRunRecord)
        .where(JobRunRecord.name == name, JobRunRecord.id.not_in(select(newest.c.id)))
        .execution_options(synchronize_session=False)
    )


def record(database: Database, name: str, started_at: datetime, outcome: Outcome) -> None:
    """`add` in a transaction of its own, once the run is over."""
    with database.transaction() as db:
        add(
            db,
            name,
            started_at=started_at,
            finished_at=utcnow(),
            ok=outcome.ok,
            summary=outcome.summary,
        )


def timed(database: Database, name: str, work: Callable[[], T], judge: Callable[[T], Outcome]) -> T:
    """Run `work` (which opens its own transactions) and record how it ended; a run that
    raises is recorded as failed (with the error's type) and the error goes on."""
    started = utcnow()
    try:
        result = work()
    except Exception as exc:
        record(database, name, started, Outcome(False, {"error": type(exc).__name__}))
        raise
    record(database, name, started, judge(result))
    return result


def latest(db: Session, names: Collection[str] | None = None) -> dict[str, JobRunRecord]:
    """The newest run of each job (of `names`, or of every job recorded)."""
    newest = select(func.max(JobRunRecord.id)).group_by(JobRunRecord.name)
    if names is not None:
        newest = newest.where(JobRunRecord.name.in_(sorted(names)))
    rows = db.scalars(select(JobRunRecord).where(JobRunRecord.id.in_(newest)))
    return {row.name: row for row in rows}
