"""Tamper evidence: entries chained by keyed seals, the sealing task, verification, pruning.

seal(entry) = HMAC-SHA256(audit key, seal(previous entry) || canonical bytes of entry), in id
order; the first entry chains from GENESIS, the first entry after a pruned stretch from the
checkpoint. The key is not in the database (docstore.audit.keys), checkpoints are signed
with it, and each sealing pass anchors its head outside the database, so someone who can
write the database can neither reseal an edit, forge a checkpoint, nor cut off the newest
entries unseen (`verify(..., anchor=True)`). Entries sealed before the key existed keep
their plain SHA-256 seals up to the signed "legacy" checkpoint (migration 0004).

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Row, Table, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from docstore.audit.keys import AnchorRecord, Signer
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


# ---- verification -------------------------------------------------------------------


@dataclass
class Verdict:
    """The outcome of checking the whole chain (and, when asked, the heads it must reach)."""

    ok: bool
    checked: int = 0
    pending: int = 0
    first_broken_id: int | None = None
    problem: str | None = None
    reason: str | None = None
    last_good_id: int | None = None
    head_id: int | None = None
    head_seal: str | None = None
    checkpoint_id: int | None = None
    # Entries up to this id carry the unkeyed seals of before the audit key.
    legacy_through: int | None = None
    # Not sealed yet (not tamper-evident yet): the first such entry and when it was written.
    pending_first_id: int | None = None
    pending_since: str | None = None
    # verify(anchor=True): anchored heads checked, the newest, lines not signed by the key.
    anchored: int = 0
    anchored_head_id: int | None = None
    anchor_invalid_lines: int = 0
    # verify(expect=...): False when the expected head has been pruned since (not checkable).
    expect_checked: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return dict(self.__dict__)


Expected = Callable[[str, Any], str]


def _rows_after(db: Session, after_id: int, limit: int) -> Sequence[Row[Any]]:
    stmt = select(*CHAIN_COLUMNS, AuditLog.seal).where(AuditLog.id > after_id)
    return db.execute(stmt.order_by(AuditLog.id).limit(limit)).all()


def _one_after(database: Database, after_id: int) -> Row[Any] | None:
    with database.transaction() as db:
        rows = _rows_after(db, after_id, 1)
    return rows[0] if rows else None


@dataclass
class _Link:
    """An entry the walk has accepted: its id and seal."""

    id: int
    seal: str


def _classify(
    database: Database, expected: Expected, row: Row[Any], prev: _Link, before_prev: _Link | None
) -> tuple[int, str, str]:
    """Why `row` does not chain from `prev`: (first broken id, problem, reason), from what
    the neighbouring seals show."""
    if before_prev is not None and row.seal == expected(before_prev.seal, row):
        # `row` chains past `prev`: prev was slipped in (with a seal forged to fit).
        return (
            prev.id,
            "inserted",
            f"entry #{prev.id} was inserted: the entry after it chains past it",
        )
    nxt = _one_after(database, row.id)
    if nxt is not None and nxt.seal == expected(prev.seal, nxt):
        return (
            row.id,
            "inserted",
            f"entry #{row.id} was inserted: the entry after it chains past it",
        )
    if nxt is None or nxt.seal == expected(str(row.seal), nxt):
        if row.id - prev.id > 1:
            return (
                row.id,
                "edited_or_deleted",
                f"entry #{row.id} does not chain from #{prev.id}: it was edited, or an entry "
                f"between #{prev.id} and #{row.id} was deleted",
            )
        return (
            row.id,
            "edited",
            f"entry #{row.id} was edited: its content no longer matches its seal",
        )
    return (
        row.id,
        "reordered",
        f"the chain breaks at entry #{row.id}: entries were reordered, edited or replaced "
        "(or resealed without the audit key)",
    )


def _iter_chain(database: Database, after_id: int, batch: int) -> Iterator[Row[Any]]:
    """Entries after `after_id` in id order, in batches of short transactions (no long
    transaction: on SQLite it would hold the write lock for the whole walk)."""
    while True:
        with database.transaction() as db:
            rows = _rows_after(db, after_id, batch)
        yield from rows
        if len(rows) < batch:
            return
        after_id = rows[-1].id


@dataclass
class _Trust:
    """What the checkpoints establish once their signatures are checked."""

    start: AuditCheckpoint | None = None  # newest genuine prune checkpoint
    legacy_through: int | None = None
    legacy_seal: str | None = None
    forged: list[AuditCheckpoint] = field(default_factory=list)


def _checkpoints(db: Session, signer: Signer) -> _Trust:
    """Sort the checkpoints into genuine (signed with the key) and forged."""
    trust = _Trust()
    for cp in db.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.last_pruned_id)):
        if not signer.checkpoint_ok(cp.kind, cp.last_pruned_id, cp.seal, cp.mac):
            trust.forged.append(cp)
        elif cp.kind == "legacy":
            trust.legacy_through, trust.legacy_seal = cp.last_pruned_id, cp.seal
        elif cp.kind == "prune":
            trust.start = cp  # ordered by id: the last genuine one wins
    return trust


def verify(
    database: Database,
    signer: Signer,
    *,
    anchor: bool = False,
    expect: tuple[int, str] | None = None,
    batch_size: int = 2000,
) -> Verdict:
    """Check the whole chain; report the first entry that was edited, deleted, reordered,
    inserted or resealed without the key, and checkpoints not signed with the key.
    Unsealed entries at the end are pending, not broken (reported with their age).

    With `anchor`, every head the anchor recorded must still be in the chain with the same
    seal (truncation and rewrites show); `expect` = (id, seal) checks one head given by hand.
    """
    with database.transaction() as db:
        trust = _checkpoints(db, signer)
    cp = trust.start
    verdict = Verdict(
        ok=True,
        checkpoint_id=cp.last_pruned_id if cp else None,
        legacy_through=trust.legacy_through,
    )
    _walk(database, signer, trust, verdict, batch_size)
    if trust.forged:
        forged = trust.forged[0]
        note = (
            f"the {forged.kind} checkpoint at #{forged.last_pruned_id} is not signed with the "
            "audit key: it is forged"
        )
        if verdict.ok:
            return _broken(verdict, forged.last_pruned_id, "forged_checkpoint", note)
        verdict.problem = "forged_checkpoint"
        verdict.reason = f"{note}; {verdict.reason}"
        return verdict
    start_id = cp.last_pruned_id if cp else 0
    if verdict.ok and (anchor or expect is not None):
        _check_heads(database, signer, verdict, anchor, expect, start_id)
    if expect is not None:
        verdict.expect_checked = expect[0] > start_id
    return verdict


def _walk(
    database: Database, signer: Signer, trust: _Trust, verdict: Verdict, batch_size: int
) -> None:
    key, legacy_through = signer.key, trust.legacy_through or 0

    def expected(previous: str, row: Any) -> str:
        entry = cast(ChainFields, row)
        if row.id <= legacy_through:
            return legacy_chain(previous, entry)
        return chain(previous, entry, key)

    cp = trust.start
    start_id, start_seal = (cp.last_pruned_id, cp.seal) if cp else (0, GENESIS)
    with database.transaction() as db:
        stray = db.scalar(select(func.min(AuditLog.id)).where(AuditLog.id <= start_id))
    if stray is not None:
        _broken(
            verdict,
            stray,
            "inserted",
            f"entry #{stray} lies within the pruned range (up to #{start_id}): it was inserted",
        )
        return
    prev, before_prev = _Link(start_id, start_seal), None
    restart = True
    while restart:
        restart = False
        for row in _iter_chain(database, prev.id, batch_size):
            if row.seal is None:
                state = _unsealed(database, row.id)
                if state == "resealed":
                    restart = True  # sealed while we read: walk on from the last good entry
                    break
                if state == "inserted":
                    _broken(
                        verdict,
                        row.id,
                        "inserted",
                        f"entry #{row.id} has no seal but later entries do: it was inserted "
                        "or its seal removed",
                        prev.id,
                    )
                    return
                with database.transaction() as db:
                    verdict.pending = int(
                        db.scalar(
                            select(func.count()).select_from(AuditLog).where(AuditLog.id >= row.id)
                        )
                        or 0
                    )
                verdict.pending_first_id = row.id
                verdict.pending_since = format_timestamp(row.timestamp)
                return
            # The unkeyed prefix is vouched for by its last seal, which the key signed.
            crosses = trust.legacy_seal is not None and prev.id < legacy_through <= row.id
            if crosses and (row.id != legacy_through or row.seal != trust.legacy_seal):
                _broken(
                    verdict,
                    legacy_through,
                    "rewritten",
                    f"entry #{legacy_through}, the last one sealed before the audit key, is "
                    "gone or no longer has the seal its signed checkpoint records: the old "
                    f"entries after #{start_id} up to #{legacy_through} were rewritten (their "
                    "unkeyed seals cannot say which one first)",
                    start_id,
                )
                return
            if row.seal != expected(prev.seal, row):
                with database.transaction() as db:
                    moved = latest_checkpoint(db)
                if (
                    moved is not None
                    and signer.checkpoint_ok(
                        moved.kind, moved.last_pruned_id, moved.seal, moved.mac
                    )
                    and moved.last_pruned_id >= prev.id
                    and row.id > moved.last_pruned_id
                    and row.seal == expected(moved.seal, row)
                ):
                    verdict.checkpoint_id = moved.last_pruned_id  # pruned while we walked
                else:
                    broken_id, problem, reason = _classify(
                        database, expected, row, prev, before_prev
                    )
                    last_good = prev.id
                    if broken_id == prev.id and before_prev is not None:
                        verdict.checked -= 1  # prev passed only because its seal was forged
                        last_good = before_prev.id
                    _broken(verdict, broken_id, problem, reason, last_good)
                    return
            prev, before_prev = _Link(row.id, str(row.seal)), prev
            verdict.checked += 1
            verdict.head_id, verdict.head_seal = prev.id, prev.seal


def _chunks(records: Iterable[AnchorRecord], size: int) -> Iterator[list[AnchorRecord]]:
    chunk: list[AnchorRecord] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_heads(
    database: Database,
    signer: Signer,
    verdict: Verdict,
    anchor: bool,
    expect: tuple[int, str] | None,
    start_id: int,
) -> None:
    """Each recorded head past the pruned range must be in the log with its recorded seal.

    The anchor is streamed in chunks (one query per 1,000 heads), never held whole. Of all
    mismatches the one with the lowest id is reported.
    """
    worst: tuple[int, str, str] | None = None

    def records() -> Iterator[AnchorRecord]:
        if expect is not None:
            yield AnchorRecord(expect[0], expect[1], 0, "", 0)
        if not anchor:
            return
        for item in signer.anchored():
            if isinstance(item, int):
                verdict.anchor_invalid_lines += 1
                continue
            verdict.anchored += 1
            if verdict.anchored_head_id is None or item.id > verdict.anchored_head_id:
                verdict.anchored_head_id = item.id
            yield item

    for chunk in _chunks(records(), 1000):
        wanted = [r for r in chunk if r.id > start_id]
        if not wanted:
            continue
        with database.transaction() as db:
            found_rows = db.execute(
                select(AuditLog.id, AuditLog.seal).where(AuditLog.id.in_({r.id for r in wanted}))
            )
            seals = {int(entry_id): seal for entry_id, seal in found_rows}
            for rec in wanted:
                if worst is not None and rec.id >= worst[0]:
                    continue
                found = _head_problem(db, rec, rec.id in seals, seals.get(rec.id))
                if found is not None:
                    worst = found
    if (
        anchor
        and verdict.anchored == 0
        and (verdict.head_id or 0) > max(start_id, verdict.legacy_through or 0)
    ):
        worst = worst or (
            max(start_id, verdict.legacy_through or 0) + 1,
            "no_anchor",
            f"the anchor holds no head signed with the audit key, yet entries up to "
            f"#{verdict.head_id} are sealed with it: the anchor is missing or was replaced",
        )
    if worst is not None:
        _broken(verdict, *worst)


def _head_problem(
    db: Session, rec: AnchorRecord, present: bool, seal: str | None
) -> tuple[int, str, str] | None:
    """What is wrong with the log at a recorded head, or None when it is there as recorded."""
    source = f"the anchor recorded at {rec.time}" if rec.line else "the expected head"
    if present and seal == rec.seal:
        return None
    if present:
        return (
            rec.id,
            "rewritten",
            f"entry #{rec.id} no longer has the seal {source} ({rec.seal[:16]}…): the log was "
            f"rewritten at or before #{rec.id}",
        )
    below = db.scalar(select(func.max(AuditLog.id)).where(AuditLog.id < rec.id)) or 0
    later = db.scalar(select(func.min(AuditLog.id)).where(AuditLog.id > rec.id))
    if later is None:
        return (
            below + 1,
            "truncated",
            f"the newest entries were deleted: {source} says the chain reached #{rec.id}, "
            f"but the log ends at #{below}",
        )
    return (
        below + 1,
        "deleted",
        f"entries after #{below} up to #{rec.id} were deleted ({source} says #{rec.id} "
        f"was sealed) and later entries chained over the gap",
    )


def _unsealed(database: Database, row_id: int) -> str:
    """An unsealed entry: 'pending' (nothing sealed after it), 'resealed' (the sealer got to
    it while we read) or 'inserted' (sealed entries follow it)."""
    with database.transaction() as db:
        later = db.scalar(
            select(AuditLog.id).where(AuditLog.id > row_id, AuditLog.seal.is_not(None)).limit(1)
        )
        if later is None:
            return "pending"
        still = db.scalar(select(AuditLog.seal).where(AuditLog.id == row_id))
    return "resealed" if still is not None else "inserted"


def _broken(
    verdict: Verdict, row_id: int, problem: str, reason: str, last_good: int | None = None
) -> Verdict:
    verdict.ok = False
    verdict.first_broken_id = row_id
    verdict.problem = problem
    verdict.reason = reason
    verdict.last_good_id = last_good or None
    return verdict


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
