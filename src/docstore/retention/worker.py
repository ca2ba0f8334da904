"""The worker: runs the registered jobs (docstore.jobs) on their schedule, each in one
process at a time across every machine sharing the database.

Exclusion is a lease row per job (`job_leases`), taken with one conditional UPDATE:
`holder = me, lease_until = now + lease` where the previous lease has run out and the job
is due. That statement is atomic on PostgreSQL (row lock, WHERE re-checked) and on SQLite
(one writer), so it works for the embedded mode too. While a job runs, a heartbeat thread
extends the lease; if the process dies, the lease runs out and another worker takes over.
Times come from the database server on PostgreSQL, so machines need not agree on the clock.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pkgutil
import socket
import threading
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

import docstore
from docstore import jobs as registry
from docstore.db import Database, utcnow
from docstore.db.sql import insert_new
from docstore.jobs import Job
from docstore.retention import runs
from docstore.retention.models import JobLease
from docstore.services import Services

log = logging.getLogger(__name__)

# How often a waiting worker loop looks at its stop event.
WAKE_SLICE_SECONDS = 0.5


def load_jobs() -> dict[str, Job]:
    """Import every domain's `tasks` module (they register their jobs) and return the registry."""
    for mod in pkgutil.iter_modules(docstore.__path__):
        if not mod.ispkg:
            continue
        name = f"docstore.{mod.name}.tasks"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return dict(registry.JOBS)


def db_now(db: Session) -> datetime:
    """The database server's clock on PostgreSQL (shared by every machine), else ours."""
    if db.get_bind().dialect.name == "postgresql":
        value = db.scalar(select(func.clock_timestamp()))
        assert isinstance(value, datetime)
        return value
    return utcnow()


def _ensure_rows(db: Session, names: Collection[str]) -> None:
    for name in names:
        db.execute(insert_new(db, JobLease).values(name=name))


def acquire(
    database: Database, name: str, holder: str, interval: float, lease_seconds: float
) -> bool:
    """Take the job's lease if nobody holds it and the job is due; True when taken."""
    with database.transaction() as db:
        _ensure_rows(db, [name])
        now = db_now(db)
        result = db.execute(
            update(JobLease)
            .where(
                JobLease.name == name,
                or_(JobLease.lease_until.is_(None), JobLease.lease_until < now),
                or_(
                    JobLease.last_started_at.is_(None),
                    JobLease.last_started_at <= now - timedelta(seconds=interval),
                ),
            )
            .values(
                holder=holder,
                lease_until=now + timedelta(seconds=lease_seconds),
                last_started_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def renew(database: Database, name: str, holder: str, lease_seconds: float) -> bool:
    """Extend a lease this holder still has; False when it was lost."""
    with database.transaction() as db:
        now = db_now(db)
        result = db.execute(
            update(JobLease)
            .where(JobLease.name == name, JobLease.holder == holder)
            .values(lease_until=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release(database: Database, name: str, holder: str, result: dict[str, Any]) -> None:
    """Give the lease back and record how the run ended (on the lease, and in `job_runs`)."""
    with database.transaction() as db:
        now = db_now(db)
        started = db.scalar(
            select(JobLease.last_started_at).where(JobLease.name == name, JobLease.holder == holder)
        )
        if started is not None:
            ok = bool(result.get("ok", True))
            runs.add(db, name, started_at=started, finished_at=now, ok=ok, summary=result)
        db.execute(
            update(JobLease)
            .where(JobLease.name == name, JobLease.holder == holder)
            .values(holder=None, lease_until=None, last_finished_at=now, last_result=result)
            .execution_options(synchronize_session=False)
        )


@dataclass
class JobRun:
    """One run of a job by this worker."""

    name: str
    ok: bool
    seconds: float
    result: dict[str, Any]


class Worker:
    """Runs due jobs under their leases; one instance per loop (its own holder id)."""

    def __init__(
        self,
        svc: Services,
        *,
        jobs: Mapping[str, Job] | None = None,
        only: Collection[str] | None = None,
        holder: str | None = None,
    ) -> None:
        self.svc = svc
        self.jobs = dict(jobs if jobs is not None else load_jobs())
        if only:
            unknown = set(only) - set(self.jobs)
            if unknown:
                raise ValueError(f"unknown job(s): {', '.join(sorted(unknown))}")
            self.jobs = {k: v for k, v in self.jobs.items() if k in only}
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # When this worker next asks for each job's lease (time.monotonic()): a job that
        # ran is asked for again after its interval, one that another worker holds or ran
        # after the poll period. Jobs not yet due cost no database round trip.
        self._next_try: dict[str, float] = {}

    def interval(self, job: Job) -> float:
        """The job's interval, unless the settings override it."""
        return float(self.svc.settings.job_intervals.get(job.name, job.interval_seconds))

    def run_job(self, job: Job, *, force: bool = False) -> JobRun | None:
        """Run `job` if its lease can be taken (and, unless `force`, it is due)."""
        lease = float(self.svc.settings.job_lease_seconds)
        interval = 0.0 if force else self.interval(job)
        if not acquire(self.svc.database, job.name, self.holder, interval, lease):
            return None
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(job.name, lease, stop), daemon=True, name="lease"
        )
        beat.start()
        started = time.monotonic()
        log.info("job %s started (%s)", job.name, self.holder)
        try:
            result = job.run(self.svc)
            ok = True
        except Exception as exc:
            log.exception("job %s failed", job.name)
            result, ok = {"error": type(exc).__name__}, False
        finally:
            stop.set()
            beat.join()
        seconds = time.monotonic() - started
        try:
            release(self.svc.database, job.name, self.holder, {"ok": ok, **result})
        except Exception:
            log.exception("job %s: could not release its lease (it runs out by itself)", job.name)
        log.info("job %s finished in %.2fs: %s", job.name, seconds, result)
        return JobRun(job.name, ok, seconds, result)

    def _heartbeat(self, name: str, lease: float, stop: threading.Event) -> None:
        while not stop.wait(max(lease / 3, 0.05)):
            try:
                if not renew(self.svc.database, name, self.holder, lease):
                    log.error("job %s: lease lost while running", name)
                    return
            except Exception:
                log.exception("job %s: lease renewal failed", name)

    def run_pending(
        self,
        *,
        force: bool = False,
        forced: Collection[str] = (),
        stop: threading.Event | None = None,
    ) -> list[JobRun]:
        """One pass: run every due job whose lease is free (`forced` ones even if not due);
        once `stop` is set, no further job starts (the running one finishes and releases)."""
        runs = []
        poll = self.svc.settings.job_poll_seconds
        for job in self.jobs.values():
            if stop is not None and stop.is_set():
                break
            now_forced = force or job.name in forced
            if not now_forced and time.monotonic() < self._next_try.get(job.name, 0.0):
                continue
            try:
                run = self.run_job(job, force=now_forced)
            except Exception:
                log.exception("job %s: could not take its lease", job.name)
                run = None
            interval = self.interval(job)
            wait = interval if run is not None else min(interval, poll)
            self._next_try[job.name] = time.monotonic() + wait
            if run is not None:
                runs.append(run)
        return runs

    def seconds_to_next(self, poll: float) -> float:
        """How long the loop may sleep: until the next job is due, at most `poll`."""
        now = time.monotonic()
        due = [self._next_try.get(name, now) - now for name in self.jobs]
        return max(0.05, min([poll, *due]))

    def run_forever(self, stop: threading.Event, poll_seconds: float | None = None) -> None:
        """Run due jobs every `poll_seconds` until `stop` is set."""
        poll = poll_seconds if poll_seconds is not None else self.svc.settings.job_poll_seconds
        log.info("worker %s: jobs %s", self.holder, ", ".join(self.jobs) or "(none)")
        wake = registry.wake_event(self.svc)
        while not stop.is_set():
            wake.clear()
            woken = registry.take_woken(self.svc)
            for name in woken:
                self._next_try.pop(name, None)
            self.run_pending(forced=woken, stop=stop)
            # Until the next job is due, `docstore.jobs.wake` is set, or we are stopped.
            deadline = time.monotonic() + self.seconds_to_next(poll)
            while not stop.is_set() and not wake.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wake.wait(min(left, WAKE_SLICE_SECONDS))


class BackgroundWorker:
    """The worker loop on a daemon thread, for `docstore serve` (embedded mode)."""

    def __init__(self, svc: Services) -> None:
        self.stop_event = threading.Event()
        self.worker = Worker(svc)
        self.thread = threading.Thread(target=self._run, name="docstore-worker", daemon=True)

    def _run(self) -> None:
        # Let start-up finish before the first pass.
        if self.stop_event.wait(min(self.worker.svc.settings.job_poll_seconds, 5.0)):
            return
        self.worker.run_forever(self.stop_event)

    def start(self) -> BackgroundWorker:
        """Start the thread."""
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to stop after the job it is running, and wait for it."""
        self.stop_event.set()
        registry.wake(self.worker.svc)
        self.thread.join(timeout)
