"""`docstore audit verify|export` as the real executable on the configured database."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, delete, event, insert, select, update

from docstore.audit.export import iter_entries
from docstore.audit.models import AuditLog
from docstore.audit.sealing import prune, seal_until_done
from docstore.audit.service import Action
from docstore.db import Database, utcnow
from tests.audit.helpers import SIGNER, add_entries, run_cli, services, share_directly
from tests.fixtures.app import Api

TABLE = cast(Table, AuditLog.__table__)


def _verify(url: str, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    out = run_cli(url, tmp_path, "audit", "verify", "--json")
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def _row(database: Database, entry_id: int) -> dict[str, Any]:
    with database.engine.connect() as conn:
        return dict(conn.execute(select(TABLE).where(TABLE.c.id == entry_id)).one()._mapping)


def _log_of_real_actions(api: Api) -> tuple[Database, list[int]]:
    """A sealed log written by real requests."""
    ann, bob = api.register("ann", verify=False), api.register("bob", verify=False)
    doc = ann.upload("a.txt", b"one").json()
    share_directly(api, ann, bob, doc["id"], 1)
    for name in ("b.txt", "c.txt", "d.txt"):
        assert ann.patch(f"/api/v1/documents/{doc['id']}", json={"name": name}).status_code == 200
    assert bob.get(f"/api/v1/documents/{doc['id']}").status_code == 200
    assert bob.get(f"/api/v1/documents/{doc['id']}/download").status_code == 307
    assert ann.delete(f"/api/v1/documents/{doc['id']}").status_code == 204
    database = services(api).database
    seal_until_done(database, SIGNER)
    with database.engine.connect() as conn:
        ids = list(conn.scalars(select(TABLE.c.id).order_by(TABLE.c.id)))
    assert len(ids) == 7
    return database, ids


def test_verify_names_the_first_tampered_entry(api: Api, database_url: str, tmp_path: Path) -> None:
    database, ids = _log_of_real_actions(api)

    out = run_cli(database_url, tmp_path, "audit", "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "intact" in out.stdout and "7 entries verified" in out.stdout

    # Edit one row's action.
    third = _row(database, ids[2])
    with database.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == ids[2]).values(action="VIEW"))
    rc, body = _verify(database_url, tmp_path)
    assert (rc, body["ok"], body["first_broken_id"], body["problem"]) == (
        1,
        False,
        ids[2],
        "edited",
    )
    with database.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == ids[2]).values(action=third["action"]))

    # Delete a row: the entry after it no longer chains.
    fourth = _row(database, ids[3])
    with database.engine.begin() as conn:
        conn.execute(delete(TABLE).where(TABLE.c.id == ids[3]))
    out = run_cli(database_url, tmp_path, "audit", "verify")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"broken at entry #{ids[4]}" in out.stdout
    assert f"between #{ids[2]} and #{ids[4]} was deleted" in " ".join(out.stdout.split())
    with database.engine.begin() as conn:
        conn.execute(insert(TABLE).values(**fourth))

    # Swap two rows' timestamps.
    a, b = _row(database, ids[1]), _row(database, ids[5])
    with database.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == ids[1]).values(timestamp=b["timestamp"]))
        conn.execute(update(TABLE).where(TABLE.c.id == ids[5]).values(timestamp=a["timestamp"]))
    rc, body = _verify(database_url, tmp_path)
    assert (rc, body["first_broken_id"]) == (1, ids[1])
    with database.engine.begin() as conn:
        conn.execute(update(TABLE).where(TABLE.c.id == ids[1]).values(timestamp=a["timestamp"]))
        conn.execute(update(TABLE).where(TABLE.c.id == ids[5]).values(timestamp=b["timestamp"]))

    # Pruning leaves a checkpoint: what is left still verifies.
    assert prune(database, SIGNER, 0)["pruned"] == 6
    rc, body = _verify(database_url, tmp_path)
    assert (rc, body["ok"], body["checkpoint_id"], body["checked"]) == (0, True, ids[5], 1)


def test_export_streams_jsonl_and_csv(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    old = add_entries(database, 2, timestamp=utcnow() - timedelta(days=40))
    recent = add_entries(database, 3, action=Action.DOWNLOAD)
    with database.engine.begin() as conn:
        conn.execute(
            update(TABLE).where(TABLE.c.id == recent[0]).values(user_agent="=HYPERLINK(1)")
        )
    seal_until_done(database, SIGNER)
    since = (utcnow() - timedelta(days=1)).date().isoformat()

    out = run_cli(database_url, tmp_path, "audit", "export", "--since", since)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["id"] for e in lines] == recent
    assert lines[0]["user_agent"] == "=HYPERLINK(1)" and lines[0]["action"] == "DOWNLOAD"
    assert all(len(e["seal"]) == 64 and e["timestamp"].endswith("Z") for e in lines)
    assert "exported 3 entries" in out.stderr

    target = tmp_path / "all.csv"
    out = run_cli(database_url, tmp_path, "audit", "export", "--format", "csv", "-o", str(target))
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [int(r["id"]) for r in rows] == old + recent
    assert json.loads(rows[0]["details"]) == {"i": 0}
    assert rows[2]["user_agent"] == "'=HYPERLINK(1)"  # not a formula in a spreadsheet

    # In bounded memory: one small query per batch, never the whole log at once.
    selects: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "audit_log" in statement:
            selects.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        got = [e["id"] for e in iter_entries(database, batch_size=2)]
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert got == old + recent
    assert len(selects) == 3 and all("LIMIT" in s.upper() for s in selects)
