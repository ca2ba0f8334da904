"""Tamper evidence: the seal chain, the sealing task (concurrent sealers, out-of-order
commits), verification and pruning with a checkpoint."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import Table, delete, func, insert, select, text, update

from docstore.audit.keys import SIGNER_KEY
from docstore.audit.models import AuditCheckpoint, AuditLog
from docstore.audit.sealing import (
    GENESIS,
    LOCK_KEY,
    ChainFields,
    Sealer,
    canonical_bytes,
    chain,
    prune,
    seal_until_done,
)
from docstore.audit.service import Action, record
from docstore.audit.tasks import prune_job
from docstore.audit.verification import verify
from docstore.context import system_actor
from docstore.db import Database, utcnow
from docstore.jobs import JOBS
from tests.audit.helpers import SIGNER, add_entries

TABLE = cast(Table, AuditLog.__table__)
KEY = SIGNER.key


# For what only PostgreSQL does: the shared `database` fixture, on PostgreSQL alone.
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def _rows(database: Database) -> list[Any]:
    with database.transaction() as db:
        return list(db.execute(select(TABLE).order_by(TABLE.c.id)).all())


def _entry(**over: Any) -> SimpleNamespace:
    base = {
        "id": 7,
        "user_id": 1,
        "document_id": 2,
        "folder_id": None,
        "share_id": None,
        "owner_id": 1,
        "action": "RENAME",
        "ip_address": "192.0.2.1",
        "user_agent": "ua",
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
        "details": {"old_name": "a", "new_name": "b"},
    }
    return SimpleNamespace(**{**base, **over})


def test_canonical_bytes_are_deterministic_and_cover_every_field() -> None:
    a = _entry()
    same = _entry(
        details={"new_name": "b", "old_name": "a"},  # key order does not matter
        timestamp=datetime(2026, 1, 2, 5, 4, 5, 678, tzinfo=UTC).astimezone(
            datetime(2026, 1, 1, tzinfo=UTC).astimezone().tzinfo
        ),
    )
    assert canonical_bytes(cast(ChainFields, a)) == canonical_bytes(cast(ChainFields, a))
    assert b'"timestamp":"2026-01-02T03:04:05.000678Z"' in canonical_bytes(cast(ChainFields, a))
    assert canonical_bytes(cast(ChainFields, _entry(details=same.details))) == canonical_bytes(
        cast(ChainFields, a)
    )
    seal = chain(GENESIS, cast(ChainFields, a), KEY)
    assert len(seal) == 64 and chain(seal, cast(ChainFields, a), KEY) != seal
    changes = {
        "id": 8,
        "user_id": 3,
        "document_id": None,
        "folder_id": 4,
        "share_id": 5,
        "owner_id": 6,
        "action": "MOVE",
        "ip_address": "192.0.2.2",
        "user_agent": "other",
        "timestamp": a.timestamp + timedelta(microseconds=1),
        "details": {"old_name": "a", "new_name": "c"},
    }
    for name, value in changes.items():
        assert chain(GENESIS, cast(ChainFields, _entry(**{name: value})), KEY) != seal, name


def test_sealer_chains_in_id_order_once(database: Database) -> None:
    ids = add_entries(database, 5)
    assert Sealer(batch_size=2).run(database, SIGNER) == {"sealed": 5}
    assert Sealer().run(database, SIGNER) == {"sealed": 0}
    prev = GENESIS
    for row in _rows(database):
        prev = chain(prev, cast(ChainFields, row), KEY)
        assert row.seal == prev
    verdict = verify(database, SIGNER)
    assert verdict.ok and verdict.checked == 5 and verdict.pending == 0
    assert (verdict.head_id, verdict.head_seal) == (ids[-1], prev)
    add_entries(database, 2)
    verdict = verify(database, SIGNER)
    assert verdict.ok and verdict.checked == 5 and verdict.pending == 2


def test_concurrent_sealers_build_one_chain(database: Database) -> None:
    add_entries(database, 300)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for _ in range(20):
                add_entries(database, 10)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            stop.set()

    def sealer() -> None:
        mine = Sealer(batch_size=25)
        try:
            while not stop.is_set():
                mine.run(database, SIGNER)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=sealer) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    seal_until_done(database, SIGNER)
    verdict = verify(database, SIGNER)
    assert verdict.ok, verdict
    assert verdict.checked == 500 and verdict.pending == 0


@ON_POSTGRES
def test_an_entry_committed_late_is_not_skipped(database: Database) -> None:
    """PostgreSQL hands out ids before commit: id N may commit after N+1. The sealer must
    not seal N+1 while N can still appear."""
    sealer = Sealer()
    # Another process's writer: its own Database, which the one-transaction-per-task guard
    # (on in tests) does not count as this task's.
    other = Database(database.url, guard=False)
    early = other.sessionmaker()
    try:
        record(early, system_actor(), Action.VIEW, document_id=1)  # id N, not committed
        late_id = early.scalar(select(func.max(AuditLog.id)))
        (committed,) = add_entries(database, 1)  # id N+1, committed
        assert late_id is not None and committed > late_id
        for _ in range(3):
            sealer.run(database, SIGNER)
            assert [r.seal for r in _rows(database)] == [None]  # N+1 waits for N
        early.commit()
    finally:
        early.close()
        other.dispose()
    sealer.run(database, SIGNER)
    rows = _rows(database)
    assert [r.id for r in rows] == [late_id, committed]
    assert rows[0].seal == chain(GENESIS, cast(ChainFields, rows[0]), KEY)
    assert verify(database, SIGNER).ok


@ON_POSTGRES
def test_a_rolled_back_entry_leaves_a_gap_that_verifies(database: Database) -> None:
    sealer = Sealer()
    other = Database(database.url, guard=False)  # another process's writer, as above
    doomed = other.sessionmaker()
    try:
        record(doomed, system_actor(), Action.VIEW, document_id=1)
        add_entries(database, 1)
        sealer.run(database, SIGNER)
        doomed.rollback()
    finally:
        doomed.close()
        other.dispose()
    assert sealer.run(database, SIGNER) == {"sealed": 1}
    assert verify(database, SIGNER).ok


@ON_POSTGRES
def test_only_one_sealer_extends_the_chain_at_a_time(database: Database) -> None:
    add_entries(database, 3)
    with database.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        assert Sealer().run(database, SIGNER) == {"sealed": 0}
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
        other.commit()
    assert Sealer().run(database, SIGNER) == {"sealed": 3}


def test_a_sealer_notices_another_one_moved_the_tail(database: Database) -> None:
    first, second = Sealer(batch_size=3), Sealer(batch_size=3)
    add_entries(database, 3)
    assert first.run(database, SIGNER) == {"sealed": 3}  # `first` remembers where it left the chain
    add_entries(database, 2)
    assert second.run(database, SIGNER) == {"sealed": 2}
    add_entries(database, 2)
    # `first` must chain from `second`'s tail, not its own.
    assert first.run(database, SIGNER) == {"sealed": 2}
    verdict = verify(database, SIGNER)
    assert verdict.ok and verdict.checked == 7, verdict
    # The tail (newest entry) stays, as a checkpoint.
    assert prune(database, SIGNER, 0)["pruned"] == 6
    add_entries(database, 1)
    assert first.run(database, SIGNER) == {"sealed": 1}
    verdict = verify(database, SIGNER)
    assert verdict.ok and verdict.checked == 2, verdict


def _sealed_log(database: Database, n: int = 8) -> list[Any]:
    add_entries(database, n)
    seal_until_done(database, SIGNER)
    return _rows(database)


def test_verify_reports_an_inserted_entry(database: Database) -> None:
    add_entries(database, 6)
    with database.engine.begin() as conn:  # a gap, as a rolled-back transaction leaves
        conn.execute(delete(TABLE).where(TABLE.c.id == 3))
    seal_until_done(database, SIGNER)
    rows = _rows(database)
    assert verify(database, SIGNER).ok
    forged = {**rows[1]._asdict(), "id": 3, "action": "LOGIN", "seal": "f" * 64}
    with database.engine.begin() as conn:
        conn.execute(insert(TABLE).values(**forged))
    verdict = verify(database, SIGNER)
    assert (verdict.ok, verdict.first_broken_id, verdict.problem) == (False, 3, "inserted")

    # Even with a seal computed to fit after #2, the slipped-in entry is named.
    fitted = chain(rows[1].seal, cast(ChainFields, SimpleNamespace(**forged)), KEY)
    with database.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == 3).values(seal=fitted))
    verdict = verify(database, SIGNER)
    assert (verdict.ok, verdict.first_broken_id, verdict.problem) == (False, 3, "inserted")
    assert verdict.last_good_id == 2


def test_an_unsealed_entry_before_sealed_ones_is_reported(database: Database) -> None:
    rows = _sealed_log(database, 4)
    with database.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == rows[1].id).values(seal=None))
    verdict = verify(database, SIGNER)
    assert (verdict.ok, verdict.first_broken_id, verdict.problem) == (False, rows[1].id, "inserted")


def test_prune_removes_an_old_sealed_prefix_and_leaves_a_checkpoint(database: Database) -> None:
    long_ago = utcnow() - timedelta(days=100)
    old = add_entries(database, 4, timestamp=long_ago)
    recent = add_entries(database, 1)
    straggler = add_entries(database, 1, timestamp=long_ago)  # old, but after a recent one
    seal_until_done(database, SIGNER)
    unsealed = add_entries(database, 1, timestamp=long_ago)
    seals = {r.id: r.seal for r in _rows(database)}

    assert prune(database, SIGNER, 30, batch_size=3) == {"pruned": 4, "last_pruned_id": old[-1]}
    assert [r.id for r in _rows(database)] == recent + straggler + unsealed
    with database.transaction() as db:
        checkpoints = [(c.last_pruned_id, c.seal) for c in db.scalars(select(AuditCheckpoint))]
    assert checkpoints[-1] == (old[-1], seals[old[-1]])
    verdict = verify(database, SIGNER)
    assert verdict.ok and verdict.checkpoint_id == old[-1] and verdict.checked == 2
    assert prune(database, SIGNER, 30)["pruned"] == 0

    # A retention of 0 days takes every sealed entry, never the newest one.
    seal_until_done(database, SIGNER)
    assert prune(database, SIGNER, 0)["pruned"] == 2
    assert [r.id for r in _rows(database)] == unsealed
    assert verify(database, SIGNER).ok
    add_entries(database, 2)
    seal_until_done(database, SIGNER)
    assert verify(database, SIGNER).ok

    # An entry put back below the checkpoint is caught.
    with database.engine.begin() as conn:
        conn.execute(
            insert(TABLE).values(id=old[0], action="LOGIN", timestamp=long_ago, seal=seals[old[0]])
        )
    verdict = verify(database, SIGNER)
    assert (verdict.ok, verdict.first_broken_id, verdict.problem) == (False, old[0], "inserted")


def test_jobs_are_registered_and_prune_follows_the_setting(database: Database) -> None:
    # The worker imports every `docstore.<domain>.tasks` module; ours registers two jobs.
    assert {"audit.seal", "audit.prune"} <= set(JOBS)
    add_entries(database, 3, timestamp=utcnow() - timedelta(days=10))
    seal_until_done(database, SIGNER)
    svc: Any = SimpleNamespace(
        database=database,
        settings=SimpleNamespace(audit_retention_days=None),
        extensions={SIGNER_KEY: SIGNER},
    )
    assert prune_job(svc)["pruned"] == 0
    svc.settings.audit_retention_days = 5
    assert prune_job(svc)["pruned"] == 2
    assert JOBS["audit.seal"].run(svc)["sealed"] == 0
    assert verify(database, SIGNER).ok
