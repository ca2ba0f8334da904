"""Checking the audit chain: every seal in id order from GENESIS or the newest genuine
checkpoint, the signed checkpoints, and (when asked) the heads anchored outside the
database or written down by a person. What the seals are: `docstore.audit.sealing`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from docstore.audit.keys import AnchorRecord, Signer
from docstore.audit.models import AuditCheckpoint, AuditLog
from docstore.audit.sealing import (
    CHAIN_COLUMNS,
    GENESIS,
    ChainFields,
    chain,
    format_timestamp,
    latest_checkpoint,
    legacy_chain,
)
from docstore.db import Database

log = logging.getLogger(__name__)


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
