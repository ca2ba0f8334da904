"""The worker: leases keep each job in one process at a time; due jobs run, others wait;
`docstore serve` runs the jobs in-process; `docstore worker` and `retention run` work."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from docstore.app import create_app
from docstore.config import Settings
from docstore.db import utcnow
from docstore.jobs import JOBS, Job
from docstore.retention.models import JobLease
from docstore.retention.worker import Worker, load_jobs
from docstore.services import Services
from tests.fixtures.app import BASE, make_settings

DOCSTORE = Path(sys.executable).with_name("docstore")
MY_JOBS = {"retention.versions", "trash.purge", "blobs.gc", "blobs.sweep"}


def _services(tmp_path: Path, url: str) -> Services:
    return Services.from_settings(make_settings(tmp_path, url))


def test_two_workers_on_one_postgres_never_overlap(tmp_path: Path, pg_url: str) -> None:
    """Two worker loops with their own connection pools, as two processes would have."""
    first, second = _services(tmp_path, pg_url), _services(tmp_path, pg_url)
    with first.database.engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE overlap_probe (holder text, started timestamptz, ended timestamptz)")
        )

    done = threading.Event()
    counts: dict[str, int] = {}

    def exclusive(svc: Services) -> dict[str, Any]:
        name = threading.current_thread().name
        counts[name] = counts.get(name, 0) + 1
        if len(counts) == 2 and min(counts.values()) >= 5:
            done.set()
        with svc.database.engine.begin() as conn:
            run_id = conn.execute(
                text(
                    "INSERT INTO overlap_probe VALUES (:h, clock_timestamp(), NULL) RETURNING ctid"
                ),
                {"h": threading.current_thread().name},
            ).scalar()
        time.sleep(0.02)
        with svc.database.engine.begin() as conn:
            conn.execute(
                text("UPDATE overlap_probe SET ended = clock_timestamp() WHERE ctid = :c"),
                {"c": run_id},
            )
        return {}

    job = Job("test.exclusive", 0.0, exclusive)

    def loop(svc: Services) -> None:
        # Until each worker has run the job 5 times (bounded): how often a worker wins the
        # lease depends on scheduling, so a fixed number of passes proved nothing on a busy box.
        worker = Worker(svc, jobs={job.name: job})
        for _ in range(3000):
            if done.is_set():
                return
            worker.run_pending()
            time.sleep(0.002)

    threads = [
        threading.Thread(target=loop, args=(svc,), name=f"w{i}")
        for i, svc in enumerate((first, second))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    with first.database.engine.begin() as conn:
        runs = conn.execute(
            text("SELECT holder, started, ended FROM overlap_probe ORDER BY started")
        ).all()
    for svc in (first, second):
        svc.close()
    assert len(runs) >= 10
    assert {r.holder for r in runs} == {"w0", "w1"}
    assert all(r.ended is not None for r in runs)
    for before, after in itertools.pairwise(runs):
        assert after.started >= before.ended, (before, after)


def test_leases_due_times_and_a_dead_holder(tmp_path: Path, database_url: str) -> None:
    svc = _services(tmp_path, database_url)
    runs: list[str] = []

    def hourly(_: Services) -> dict[str, Any]:
        runs.append("ran")
        return {"n": len(runs)}

    job = Job("test.hourly", 3600.0, hourly)
    one = Worker(svc, jobs={job.name: job}, holder="one")
    two = Worker(svc, jobs={job.name: job}, holder="two")
    try:
        assert [r.name for r in one.run_pending()] == ["test.hourly"]
        assert one.run_pending() == [] and two.run_pending() == []  # not due for an hour
        assert runs == ["ran"]
        # A holder that died mid-run: its lease blocks others until it runs out.
        with svc.database.transaction() as db:
            db.execute(
                update(JobLease)
                .where(JobLease.name == job.name)
                .values(holder="dead", lease_until=utcnow() + timedelta(minutes=5),
                        last_started_at=utcnow() - timedelta(hours=2))
            )  # fmt: skip
        assert two.run_job(job, force=True) is None
        with svc.database.transaction() as db:
            db.execute(
                update(JobLease)
                .where(JobLease.name == job.name)
                .values(lease_until=utcnow() - timedelta(seconds=1))
            )
        run = two.run_job(job)
        assert run is not None and run.ok and run.result == {"n": 2}
        with svc.database.transaction() as db:
            lease = db.get_one(JobLease, job.name)
            assert lease.holder is None and lease.last_result == {"ok": True, "n": 2}
        # A failing job is logged, recorded and releases its lease.
        bad = Job("test.bad", 0.0, lambda s: 1 / 0)  # type: ignore[arg-type,return-value]
        run = one.run_job(bad)
        assert run is not None and not run.ok
        assert one.run_job(bad) is not None
    finally:
        svc.close()


def test_every_job_is_registered(tmp_path: Path, sqlite_url: str) -> None:
    jobs = load_jobs()
    assert set(jobs) >= MY_JOBS
    assert jobs["retention.versions"].interval_seconds == 24 * 3600
    assert JOBS is not jobs
    svc = _services(tmp_path, sqlite_url)
    try:
        assert set(Worker(svc, only=["blobs.gc"]).jobs) == {"blobs.gc"}
        with pytest.raises(ValueError, match=r"no\.such\.job"):
            Worker(svc, only=["no.such.job"])
    finally:
        svc.close()


def test_serve_runs_the_jobs_in_process(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, run_jobs_in_server=True, job_poll_seconds=0.1)
    with TestClient(create_app(settings), base_url=BASE) as client:
        svc: Services = client.app.state.services  # type: ignore[attr-defined]
        finished: set[str] = set()
        for _ in range(1200):  # at most a minute: other domains' jobs run in the same loop
            with svc.database.transaction() as db:
                finished = set(
                    db.scalars(select(JobLease.name).where(JobLease.last_finished_at.is_not(None)))
                )
            if finished >= MY_JOBS:
                break
            time.sleep(0.05)
        assert finished >= MY_JOBS


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSTORE_")}
    env.update(
        {
            "DOCSTORE_DATA_DIR": str(settings.data_dir),
            "DOCSTORE_DATABASE_URL": settings.resolved_database_url,
            "DOCSTORE_STORAGE_URL": settings.resolved_storage_url,
            "DOCSTORE_SECRET_KEY": "test-secret",
        }
    )
    return subprocess.run(
        [str(DOCSTORE), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_worker_and_retention_commands(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    proc = _cli(settings, "retention", "run", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["versions_deleted"] == 0
    proc = _cli(settings, "worker", "--once", "--job", "blobs.gc", "--job", "trash.purge")
    assert proc.returncode == 0, proc.stderr
    assert "blobs.gc" in proc.stdout and "trash.purge" in proc.stdout


def test_a_short_job_runs_on_its_own_interval_not_the_poll(tmp_path: Path, sqlite_url: str) -> None:
    """audit.seal asks for every 2 s; the loop must not make it wait the 30 s poll."""
    svc = _services(tmp_path, sqlite_url)
    runs: list[float] = []
    quick = Job("test.quick", 0.1, lambda _: runs.append(time.monotonic()) or {})  # type: ignore[func-returns-value]
    daily = Job("test.daily", 86400.0, lambda _: {})
    worker = Worker(svc, jobs={quick.name: quick, daily.name: daily})
    stop = threading.Event()
    loop = threading.Thread(target=worker.run_forever, args=(stop, 30.0), daemon=True)
    loop.start()
    try:
        for _ in range(200):  # at most 10 s
            if len(runs) >= 3:
                break
            time.sleep(0.05)
        assert len(runs) >= 3, f"ran {len(runs)} time(s): the loop slept through the interval"
        # The daily job ran once and is not asked for again before its day is out.
        assert worker.seconds_to_next(30.0) <= 0.1
        with svc.database.transaction() as db:
            daily_lease = db.get_one(JobLease, daily.name)
            assert daily_lease.last_finished_at is not None
    finally:
        stop.set()
        loop.join(10)
        svc.close()
