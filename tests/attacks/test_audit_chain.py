"""Issue 21 item 3: an insider who can write the database (but not read the audit key or
the anchor) tries to rewrite the audit log. Each way that used to pass `verify` is caught
and named, on SQLite and PostgreSQL (the `database` fixture runs both).

The four tampering cases of the issue: a naive edit; an edit followed by resealing every
later entry with the public chain function; deleting the newest entries; deleting old
entries behind a forged checkpoint. Plus the CLI's `head` / `verify --expect` / `--anchor`,
the key file, and chains sealed before the key (migration 0004).
"""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from alembic import command
from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    Table,
    column,
    delete,
    insert,
    select,
    table,
    update,
)

from docstore import migrate
from docstore.audit.keys import Signer, load_or_create_key
from docstore.audit.models import AuditCheckpoint, AuditLog
from docstore.audit.sealing import (
    GENESIS,
    ChainFields,
    adopt_legacy,
    chain,
    legacy_chain,
    prune,
    seal_until_done,
)
from docstore.audit.verification import verify
from docstore.config import Settings
from docstore.db import Database
from tests.audit.helpers import add_entries, anchored_signer, run_cli

TABLE = cast(Table, AuditLog.__table__)
CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
# The table as it was before migration 0004 (no kind, no signature).
OLD_CHECKPOINTS = table(
    "audit_checkpoints",
    column("last_pruned_id", BigInteger),
    column("seal", String),
    column("created_at", DateTime(timezone=True)),
)


def _rows(database: Database) -> list[Any]:
    with database.engine.connect() as conn:
        return list(conn.execute(select(TABLE).order_by(TABLE.c.id)).all())


def _sealed_log(database: Database, signer: Signer, n: int) -> list[int]:
    ids = add_entries(database, n)
    seal_until_done(database, signer)
    return ids


def _reseal_from(database: Database, first_id: int, seal_of: Any, start: str = GENESIS) -> None:
    """What an attacker does after an edit: recompute every later seal so the chain fits."""
    rows = _rows(database)
    prev = start
    with database.engine.begin() as conn:
        for row in rows:
            if row.id >= first_id:
                seal = seal_of(prev, cast(ChainFields, row))
                conn.execute(update(TABLE).where(TABLE.c.id == row.id).values(seal=seal))
                prev = seal
            else:
                prev = row.seal


def _edit(database: Database, entry_id: int) -> None:
    with database.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == entry_id).values(action="LOGIN"))


def test_a_naive_edit_is_named(database: Database, tmp_path: Path) -> None:
    signer = anchored_signer(tmp_path)
    ids = _sealed_log(database, signer, 6)
    _edit(database, ids[2])
    verdict = verify(database, signer)
    assert (verdict.ok, verdict.first_broken_id, verdict.problem) == (False, ids[2], "edited")
    assert f"entry #{ids[2]} was edited" in str(verdict.reason)


@pytest.mark.parametrize("resealer", ["public sha-256 chain", "guessed key"])
def test_an_edit_resealed_with_the_public_chain_function_is_named(
    database: Database, tmp_path: Path, resealer: str
) -> None:
    """Without the key, no recomputed seal fits: not today's unkeyed function, not the
    keyed one under any key but the right one."""
    signer = anchored_signer(tmp_path)
    ids = _sealed_log(database, signer, 6)
    _edit(database, ids[2])
    if resealer == "guessed key":
        _reseal_from(database, ids[2], lambda p, e: chain(p, e, b"a guess at the key " * 2))
    else:
        _reseal_from(database, ids[2], legacy_chain)
    verdict = verify(database, signer)
    assert not verdict.ok
    assert verdict.first_broken_id == ids[2], verdict
    assert verdict.last_good_id == ids[1]
    assert f"#{ids[2]}" in str(verdict.reason)


def test_deleting_the_newest_entries_is_caught_by_the_anchor(
    database: Database, tmp_path: Path
) -> None:
    signer = anchored_signer(tmp_path)
    ids = _sealed_log(database, signer, 4)
    ids += _sealed_log(database, signer, 3)  # a second sealing pass: a second anchored head
    head = verify(database, signer)
    assert head.ok and head.head_id == ids[-1]
    with database.engine.begin() as conn:
        conn.execute(delete(TABLE).where(TABLE.c.id >= ids[5]))

    # The database alone cannot tell a shorter log from a truncated one ...
    assert verify(database, signer).ok
    # ... the anchor and a written-down head can.
    verdict = verify(database, signer, anchor=True)
    assert (verdict.ok, verdict.first_broken_id, verdict.problem) == (False, ids[5], "truncated")
    assert f"reached #{ids[-1]}" in str(verdict.reason) and f"ends at #{ids[4]}" in str(
        verdict.reason
    )
    verdict = verify(database, signer, expect=(ids[-1], str(head.head_seal)))
    assert (verdict.ok, verdict.first_broken_id, verdict.problem) == (False, ids[5], "truncated")

    # New entries chained on from the cut cover the gap in the seals, not in the anchor.
    more = _sealed_log(database, signer, 2)
    assert verify(database, signer).ok
    verdict = verify(database, signer, anchor=True)
    assert not verdict.ok, verdict
    if more[0] > ids[-1]:  # PostgreSQL: new ids, a gap in the middle
        assert (verdict.first_broken_id, verdict.problem) == (ids[5], "deleted")
        assert f"entries after #{ids[4]} up to #{ids[-1]} were deleted" in str(verdict.reason)
    else:  # SQLite hands the ids out again: the anchored head has another seal now
        assert (verdict.first_broken_id, verdict.problem) == (ids[-1], "rewritten")
        assert f"rewritten at or before #{ids[-1]}" in str(verdict.reason)


def test_old_entries_deleted_behind_a_forged_checkpoint_are_named(
    database: Database, tmp_path: Path
) -> None:
    signer = anchored_signer(tmp_path)
    ids = _sealed_log(database, signer, 6)
    rows = {r.id: r for r in _rows(database)}
    with database.engine.begin() as conn:
        conn.execute(delete(TABLE).where(TABLE.c.id <= ids[2]))
        conn.execute(
            insert(CHECKPOINTS).values(
                last_pruned_id=ids[2], seal=rows[ids[2]].seal, created_at=datetime.now(UTC)
            )
        )
    verdict = verify(database, signer)
    assert (verdict.ok, verdict.problem) == (False, "forged_checkpoint"), verdict
    assert verdict.first_broken_id == ids[3]
    assert f"checkpoint at #{ids[2]} is not signed" in str(verdict.reason)
    assert f"entry #{ids[3]} does not chain" in str(verdict.reason)

    # A signature copied from a genuine checkpoint does not fit another one either.
    genuine = signer.sign_checkpoint("prune", ids[1], rows[ids[1]].seal)
    with database.engine.begin() as conn:
        conn.execute(update(CHECKPOINTS).values(mac=genuine))
    assert verify(database, signer).problem == "forged_checkpoint"


def test_cli_head_expect_and_anchor(database: Database, database_url: str, tmp_path: Path) -> None:
    """What an operator runs: `audit head` to write the head down, `verify --expect` and
    `verify --anchor` later."""
    ids = _sealed_log(database, anchored_signer(tmp_path), 5)
    out = run_cli(database_url, tmp_path, "audit", "head")
    assert out.returncode == 0, out.stderr
    head = out.stdout.strip()
    head_id, seal = head.split(":")
    assert int(head_id) == ids[-1] and len(seal) == 64

    out = run_cli(database_url, tmp_path, "audit", "verify", "--anchor", "--expect", head)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "intact" in out.stdout and "expected head" in out.stdout

    with database.engine.begin() as conn:
        conn.execute(delete(TABLE).where(TABLE.c.id >= ids[3]))
    out = run_cli(database_url, tmp_path, "audit", "verify", "--expect", head)
    assert out.returncode == 1
    assert f"broken at entry #{ids[3]}" in out.stdout and "deleted" in out.stdout
    out = run_cli(database_url, tmp_path, "audit", "verify", "--anchor", "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    body = json.loads(out.stdout)
    assert (body["first_broken_id"], body["problem"]) == (ids[3], "truncated")

    # A forged anchor line (no key) is ignored and reported; a malformed --expect is refused.
    with (tmp_path / "audit-anchor.jsonl").open("a") as f:
        f.write(json.dumps({"id": 1, "seal": "0" * 64, "count": 1, "time": "x", "mac": "y"}))
        f.write("\n")
    out = run_cli(database_url, tmp_path, "audit", "verify", "--anchor")
    assert "1 anchor line(s) not signed" in out.stderr
    assert run_cli(database_url, tmp_path, "audit", "verify", "--expect", "7:zz").returncode == 2


def test_the_key_file_is_private_and_made_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = Signer.from_settings(settings)
    key_file = tmp_path / "data" / "audit_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Signer.from_settings(settings).key == first.key == load_or_create_key(key_file)
    assert first.anchor is not None and first.anchor.path == tmp_path / "data" / (
        "audit-anchor.jsonl"
    )
    assert [p.name for p in key_file.parent.iterdir()] == ["audit_key"]  # no temporary left
    configured = Settings(data_dir=tmp_path / "other", audit_key="k" * 40)
    assert Signer.from_settings(configured).key == b"k" * 40
    assert not (tmp_path / "other" / "audit_key").exists()
    with pytest.raises(ValueError, match="at least 32"):
        Signer.from_settings(Settings(data_dir=tmp_path, audit_key="short"))


def test_a_chain_sealed_before_the_key_is_adopted_once(database: Database, tmp_path: Path) -> None:
    """Migration 0004 on a log sealed the old way: the old seals still verify up to the
    signed legacy checkpoint, new ones are keyed; a forged legacy checkpoint is not adopted."""
    cfg = migrate.alembic_config()
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003_audit_seal_index")
    old = add_entries(database, 5)
    prev, rows = GENESIS, _rows(database)
    with database.engine.begin() as conn:  # sealed, and its start pruned, the old way
        for row in rows:
            prev = legacy_chain(prev, cast(ChainFields, row))
            conn.execute(update(TABLE).where(TABLE.c.id == row.id).values(seal=prev))
        pruned_seal = conn.scalar(select(TABLE.c.seal).where(TABLE.c.id == old[1]))
        conn.execute(delete(TABLE).where(TABLE.c.id <= old[1]))
        conn.execute(
            insert(OLD_CHECKPOINTS).values(
                last_pruned_id=old[1], seal=pruned_seal, created_at=datetime.now(UTC)
            )
        )
    migrate.upgrade(database.engine)
    signer = anchored_signer(tmp_path)
    assert adopt_legacy(database, signer) == 2  # the legacy and the old prune checkpoint
    new = _sealed_log(database, signer, 3)
    verdict = verify(database, signer, anchor=True)
    assert verdict.ok, verdict
    assert (verdict.legacy_through, verdict.checked, verdict.head_id) == (old[-1], 6, new[-1])
    rows = {r.id: r for r in _rows(database)}
    assert rows[new[0]].seal == chain(
        rows[old[-1]].seal, cast(ChainFields, rows[new[0]]), signer.key
    )

    # Rewriting the old stretch with the old (public) function is caught at its signed end.
    _edit(database, old[2])
    _reseal_from(database, old[2], legacy_chain, start=pruned_seal)
    verdict = verify(database, signer)
    assert (verdict.ok, verdict.first_broken_id, verdict.problem) == (False, old[-1], "rewritten")
    assert f"after #{old[1]} up to #{old[-1]}" in str(verdict.reason)

    # A second, unsigned legacy checkpoint (to declare the whole log "old") is never signed.
    with database.engine.begin() as conn:
        conn.execute(
            insert(CHECKPOINTS).values(
                last_pruned_id=new[-1],
                seal=rows[new[-1]].seal,
                created_at=datetime.now(UTC),
                kind="legacy",
            )
        )
    assert adopt_legacy(database, signer) == 0
    assert verify(database, signer).problem == "forged_checkpoint"


def test_entries_not_sealed_yet_are_reported_as_such(database: Database, tmp_path: Path) -> None:
    """Between commit and the next sealing pass an entry is not tamper-evident: verify says
    which entries those are and since when, instead of counting them as verified."""
    signer = anchored_signer(tmp_path)
    ids = _sealed_log(database, signer, 3)
    waiting = add_entries(database, 2)
    verdict = verify(database, signer, anchor=True)
    assert verdict.ok and verdict.checked == 3 and verdict.head_id == ids[-1]
    assert (verdict.pending, verdict.pending_first_id) == (2, waiting[0])
    assert str(verdict.pending_since).endswith("Z")

    # A head written down before a prune removed it is reported as not checkable, not found.
    assert prune(database, signer, 0)["pruned"] == 3
    verdict = verify(database, signer, expect=(ids[0], "0" * 64))
    assert verdict.ok and verdict.expect_checked is False and verdict.checkpoint_id == ids[-1]
    verdict = verify(database, signer, expect=(waiting[0], "0" * 64))
    assert (verdict.ok, verdict.problem, verdict.expect_checked) == (False, "rewritten", True)
