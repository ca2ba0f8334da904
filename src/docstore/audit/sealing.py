"""Tamper evidence: entries chained by keyed seals, the sealing task, pruning (verification:
`docstore.audit.verification`).

seal(entry) = HMAC-SHA256(audit key, seal(previous entry) || canonical bytes of entry), in id
order; the first entry chains from GENESIS, the first entry after a pruned stretch from the
checkpoint. The key is not in the database (docstore.audit.keys), checkpoints are signed
with it, and each sealing pass anchors its head outside the database, so someone who can
write the database can neither reseal an edit, forge a checkpoint, nor cut off the newest
entries unseen (`docstore.audit.verification.verify(..., anchor=True)`). Entries sealed
before the key existed keep their plain SHA-256 seals up to the signed "legacy" checkpoint
(migration 0004).

Requests never touch the chain: they insert unsealed rows in their own transaction, and a
background sealer chains them in id order shortly after they commit. Only one sealer
extends the chain at a time: on PostgreSQL a transaction-scoped advisory lock (sealers
that do not get it skip the pass), on SQLite the write lock every transaction takes.

PostgreSQL can commit ids out of order: a transaction may hold id 10 uncommitted while id
11 is already visible. Sealing 11 first would leave 10 outside the chain forever, so the
sealer only seals up to a bound below which every id is final. An inserting transaction
holds a RowExclusiveLock on audit_log from before it draws an id until it ends; the sealer
reads max(id), then the transactions holding that lock, and treats that max as final once
all of them have ended (checked on a later pass; at once when none were running).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from docstore.audit.keys import Signer
from docstore.audit.models import AuditCheckpoint, AuditLog
from docstore.db import Database, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
# pg_advisory lock key shared by every sealer and pruner ("docaudit" in ASCII).
LOCK_KEY = 0x646F636175646974
_TABLE = cast(Table, AuditLog.__table__)

CHAIN_COLUMNS = (
    AuditLog.id,
    AuditLog.user_id,
    AuditLog.document_id,
    AuditLog.folder_id,
    AuditLog.share_id,
    AuditLog.owner_id,
    AuditLog.action,
    AuditLog.ip_address,
    AuditLog.user_agent,
    AuditLog.timestamp,
    AuditLog.details,
)


class ChainFields(Protocol):
    """What the seal covers: every column of an entry except the seal itself."""

    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> int | None: ...
    @property
    def document_id(self) -> int | None: ...
    @property
    def folder_id(self) -> int | None: ...
    @property
    def share_id(self) -> int | None: ...
    @property
    def owner_id(self) -> int | None: ...
    @property
    def action(self) -> str: ...
    @property
    def ip_address(self) -> str | None: ...
    @property
    def user_agent(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def details(self) -> dict[str, Any] | None: ...


def format_timestamp(ts: datetime) -> str:
    """The fixed timestamp format of the canonical bytes (UTC, microseconds)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(entry: ChainFields) -> bytes:
    """A deterministic serialisation of an entry: sorted-key ASCII JSON, fixed time format."""
    doc = {
        "id": entry.id,
        "user_id": entry.user_id,
        "document_id": entry.document_id,
        "folder_id": entry.folder_id,
        "share_id": entry.share_id,
        "owner_id": entry.owner_id,
        "action": entry.action,
        "ip_address": entry.ip_address,
        "user_agent": entry.user_agent,
        "timestamp": format_timestamp(entry.timestamp),
        "details": entry.details,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def chain(previous_seal: str, entry: ChainFields, key: bytes) -> str:
    """The seal of `entry` when it follows an entry sealed `previous_seal`, under `key`."""
    message = previous_seal.encode("ascii") + canonical_bytes(entry)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def legacy_chain(previous_seal: str, entry: ChainFields) -> str:
    """The unkeyed seal of before the audit key (anyone can compute it): only entries up to
    the signed legacy checkpoint may carry one."""
    return hashlib.sha256(previous_seal.encode("ascii") + canonical_bytes(entry)).hexdigest()


def _try_lock(db: Session) -> bool:
    """Take the sealers' advisory lock for this transaction (PostgreSQL), or say it is held."""
    return bool(db.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))))


def latest_checkpoint(db: Session, *, any_kind: bool = False) -> AuditCheckpoint | None:
    """The checkpoint of the most recent prune (or of any kind), if any; not checked."""
    stmt = select(AuditCheckpoint)
    if not any_kind:
        stmt = stmt.where(AuditCheckpoint.kind == "prune")
    return db.scalar(
        stmt.order_by(AuditCheckpoint.last_pruned_id.desc(), AuditCheckpoint.id.desc()).limit(1)
    )


def chain_tail(db: Session) -> tuple[int, str]:
    """(id, seal) the next entry chains from: the last sealed entry, a checkpoint, genesis."""
    row = db.execute(
        select(AuditLog.id, AuditLog.seal)
        .where(AuditLog.seal.is_not(None))
        .order_by(AuditLog.id.desc())
        .limit(1)
    ).first()
    if row is not None:
        return int(row.id), str(row.seal)
    cp = latest_checkpoint(db, any_kind=True)
    if cp is not None:
        return cp.last_pruned_id, cp.seal
    return 0, GENESIS


_LOCK_HOLDERS = text(
    "SELECT DISTINCT virtualtransaction FROM pg_locks "
    "WHERE locktype = 'relation' AND relation = to_regclass('audit_log') "
    "AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()"
)
_ANY_ALIVE = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY(:ids)"
)


@dataclass
class _Horizon:
    """What one sealer knows about one database: ids up to `final` can no longer appear,
    and where it left the chain."""

    final: int = 0
    # (max id seen, transactions that might still insert an id below it)
    pending: tuple[int, list[str]] | None = None
    # The (id, seal) this sealer last wrote: still the tail if nobody moved on from it.
    tail: tuple[int, str] | None = None


@dataclass
class Sealer:
    """Chains committed, unsealed entries in id order. Safe to run in several processes."""

    batch_size: int = 2000
    max_batches: int = 100
    _horizons: dict[str, _Horizon] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, database: Database, signer: Signer) -> dict[str, Any]:
        """One pass: seal what is final, in batches (each its own short transaction), and
        anchor the head each batch committed."""
        sealed = 0
        with self._lock:
            for _ in range(self.max_batches):
                count, more = self._seal_batch(database, signer)
                sealed += count
                if not more:
                    break
        return {"sealed": sealed}

    def _final_id(self, db: Session, horizon: _Horizon) -> int:
        """The highest id below which no uncommitted entry can exist (PostgreSQL)."""
        newest = int(db.scalar(select(func.coalesce(func.max(AuditLog.id), 0))) or 0)
        holders = sorted(str(v) for v in db.scalars(_LOCK_HOLDERS))
        if not holders:
            horizon.final = max(horizon.final, newest)
            horizon.pending = None
            return horizon.final
        if horizon.pending is not None:
            bound, waiting_for = horizon.pending
            if not db.scalar(_ANY_ALIVE, {"ids": waiting_for}):
                horizon.final = max(horizon.final, bound)
                horizon.pending = None
        if horizon.pending is None:
            horizon.pending = (newest, holders)
        return horizon.final

    def _tail(self, db: Session, horizon: _Horizon) -> tuple[int, str]:
        """The chain's tail: the one this sealer wrote last if it still is, else looked up.

        chain_tail() walks back over every unsealed entry, so with a backlog it is not run
        per batch. The remembered tail is still the tail when its row keeps that seal and the
        entry right after it is unsealed: another sealer would have sealed that one first.
        """
        if horizon.tail is not None:
            tail_id, seal = horizon.tail
            stored = db.scalar(select(AuditLog.seal).where(AuditLog.id == tail_id))
            after = db.execute(
                select(AuditLog.seal).where(AuditLog.id > tail_id).order_by(AuditLog.id).limit(1)
            ).first()
            if stored == seal and (after is None or after.seal is None):
                return horizon.tail
        return chain_tail(db)

    def _seal_batch(self, database: Database, signer: Signer) -> tuple[int, bool]:
        count, more, head = self._seal_in_transaction(database, signer.key)
        if head is not None:  # committed: only now is it a head the chain must reach
            signer.anchor_head(head[0], head[1], count)
        return count, more

    def _seal_in_transaction(
        self, database: Database, key: bytes
    ) -> tuple[int, bool, tuple[int, str] | None]:
        horizon = self._horizons.setdefault(database.url, _Horizon())
        with database.transaction() as db:
            final: int | None = None
            if database.is_postgres:
                if not _try_lock(db):
                    return 0, False, None  # another sealer is extending the chain right now
                final = self._final_id(db, horizon)
            tail_id, seal = self._tail(db, horizon)
            stmt = select(*CHAIN_COLUMNS).where(AuditLog.seal.is_(None), AuditLog.id > tail_id)
            if final is not None:
                stmt = stmt.where(AuditLog.id <= final)
            rows = db.execute(stmt.order_by(AuditLog.id).limit(self.batch_size)).all()
            if not rows:
                return 0, False, None
            ids, seals = [], []
            for row in rows:
                seal = chain(seal, cast(ChainFields, row), key)
                ids.append(row.id)
                seals.append(seal)
            if not _write_seals(db, database.is_postgres, ids, seals):
                # Someone sealed these rows under us: never fork the chain, roll back.
                raise RuntimeError("audit entries were sealed concurrently; pass abandoned")
            horizon.tail = (ids[-1], seals[-1])  # checked before use, so a rollback is harmless
            return len(rows), len(rows) == self.batch_size, horizon.tail


_PG_WRITE_SEALS = text(
    "UPDATE audit_log SET seal = v.seal"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:seals AS varchar[])) AS v(id, seal)"
    " WHERE audit_log.id = v.id AND audit_log.seal IS NULL"
)


def _write_seals(db: Session, is_postgres: bool, ids: list[int], seals: list[str]) -> bool:
    """Store the seals, only on rows still unsealed; whether every row took its seal."""
    if is_postgres:  # one statement per batch, not one per row
        result = db.connection().execute(_PG_WRITE_SEALS, {"ids": ids, "seals": seals})
    else:
        result = db.connection().execute(
            update(_TABLE)
            .where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.seal.is_(None))
            .values(seal=bindparam("b_seal")),
            [{"b_id": i, "b_seal": s} for i, s in zip(ids, seals, strict=True)],
        )
    return result.rowcount == len(ids)


def seal_until_done(
    database: Database, signer: Signer, *, rounds: int = 50, pause: float = 0.05
) -> int:
    """Seal everything committed now, waiting (bounded) for in-flight writers: for commands
    and tests. The background job uses `Sealer.run` on its schedule instead."""
    import time

    sealer = Sealer()
    total = 0
    for _ in range(rounds):
        total += int(sealer.run(database, signer)["sealed"])
        with database.transaction() as db:
            tail_id, _ = chain_tail(db)
            left = db.scalar(
                select(AuditLog.id)
                .where(AuditLog.id > tail_id, AuditLog.seal.is_(None))
                .order_by(AuditLog.id)
                .limit(1)
            )
        if left is None:
            break
        time.sleep(pause)
    return total


def adopt_legacy(database: Database, signer: Signer) -> int:
    """Sign the checkpoints written without a key (migration 0004's legacy checkpoint and
    the prune checkpoints of before it), so the entries they vouch for keep verifying.

    Only once, on the first start with the key: while no checkpoint is signed yet and the
    anchor is still empty. Later an unsigned checkpoint is an attacker's, and stays forged.
    """
    with database.transaction() as db:
        if database.is_postgres:
            db.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
        unsigned = list(db.scalars(select(AuditCheckpoint).where(AuditCheckpoint.mac.is_(None))))
        if not unsigned:
            return 0
        signed = db.scalar(select(AuditCheckpoint.id).where(AuditCheckpoint.mac.is_not(None)))
        if signed is not None or signer.anchor is None or not signer.anchor.is_empty():
            log.warning(
                "audit: %d unsigned checkpoint(s) left unsigned: the chain was adopted before",
                len(unsigned),
            )
            return 0
        for cp in unsigned:
            cp.mac = signer.sign_checkpoint(cp.kind, cp.last_pruned_id, cp.seal)
    log.info("audit: signed %d checkpoint(s) of the chain sealed before the key", len(unsigned))
    return len(unsigned)


# ---- retention ------------------------------------------------------------------------


def prune(
    database: Database,
    signer: Signer,
    retention_days: int,
    *,
    now: datetime | None = None,
    batch_size: int = 5000,
) -> dict[str, Any]:
    """Delete sealed entries older than the retention, oldest first, in batches; each batch
    records a checkpoint (last pruned id and its seal) so the rest still verifies.

    Only a prefix of the chain is ever removed: pruning stops at the first entry that is
    recent or not sealed yet, and it never removes the newest entry (SQLite would hand its
    id out again).
    """
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    pruned = 0
    last: int | None = None
    while True:
        with database.transaction() as db:
            if database.is_postgres:
                db.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
            newest = db.scalar(select(func.max(AuditLog.id)))
            if newest is None:
                break
            rows = db.execute(
                select(AuditLog.id, AuditLog.timestamp, AuditLog.seal)
                .where(AuditLog.id < newest)
                .order_by(AuditLog.id)
                .limit(batch_size)
            ).all()
            upto = None
            for row in rows:
                if row.seal is None or row.timestamp >= cutoff:
                    break
                upto = row
            if upto is None:
                break
            result = db.connection().execute(delete(_TABLE).where(_TABLE.c.id <= upto.id))
            db.add(
                AuditCheckpoint(
                    last_pruned_id=upto.id,
                    seal=upto.seal,
                    created_at=utcnow(),
                    kind="prune",
                    mac=signer.sign_checkpoint("prune", upto.id, upto.seal),
                )
            )
            pruned += int(result.rowcount or 0)
            last = int(upto.id)
            if upto is not rows[-1] or len(rows) < batch_size:
                break
    if pruned:
        log.info("audit: pruned %d entries up to #%s", pruned, last)
    return {"pruned": pruned, "last_pruned_id": last}
