"""db.detached and db.inserted: ORM instances built from Core rows on the hot paths behave
as loaded ones (attributes readable, nothing pending, later changes flushed as UPDATEs).
db.rows: the same rows as SQLAlchemy's own execution, whichever way it runs them."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, func, insert, literal_column, select

from docstore.db import Database, utcnow
from docstore.db.fastpath import detached, first_row, inserted, rows
from docstore.db.sql import api_time, json_object
from docstore.documents.models import Blob
from tests.fixtures.databases import executed

_INSERT = insert(Blob).returning(*Blob.__table__.c)


def _values(key: str) -> dict[str, Any]:
    return {
        "storage_key": key,
        "sha256": "0" * 64,
        "size_bytes": 3,
        "state": "active",
        "verified": True,
        "damaged": False,
        "ref_count": 1,
        "delete_attempts": 0,
        "created_at": utcnow(),
    }


def test_inserted_instance_is_persistent_and_flushes_changes_as_update(database: Database) -> None:
    seen = executed(database)
    with database.transaction() as db:
        blob: Blob = inserted(db, _INSERT, _values("k1"))
        assert blob.id and blob.storage_key == "k1" and blob.ref_count == 1
        assert blob in db and not db.dirty and not db.new
        assert db.get(Blob, blob.id) is blob  # in the identity map: no second SELECT
        blob.ref_count = 2
    kinds = [statement.split()[0].upper() for statement in seen]
    assert kinds.count("INSERT") == 1 and kinds.count("UPDATE") == 1
    with database.transaction() as db:
        assert db.scalar(select(Blob.ref_count).where(Blob.storage_key == "k1")) == 2


def test_detached_instance_reads_without_a_session_and_writes_nothing(database: Database) -> None:
    with database.transaction() as db:
        blob_id = db.connection().execute(_INSERT, _values("k2")).one().id
    with database.transaction() as db:
        row = db.connection().execute(select(*Blob.__table__.c).where(Blob.id == blob_id)).one()
        blob = detached(Blob, row._mapping)
        assert blob not in db
    # Outside any session, every column reads as stored; the instance is a detached copy.
    assert (blob.id, blob.storage_key, blob.size_bytes, blob.verified) == (blob_id, "k2", 3, True)
    with database.transaction() as db:
        fresh = db.get(Blob, blob_id)
        assert fresh is not blob and fresh is not None and fresh.storage_key == "k2"


# Every kind of value a hot read returns: datetimes (UTCDateTime), booleans, integers,
# strings, NULLs, a function with a literal (a bind SQLAlchemy adds), database-built text;
# bound: a datetime (a bind processor), a string, and a LIMIT.
_SELECT = (
    select(
        *Blob.__table__.c,
        func.coalesce(Blob.unreferenced_at, Blob.created_at).label("since"),
        api_time(Blob.created_at).label("created_text"),
        json_object({"key": Blob.storage_key, "n": literal_column("1")}).label("entry"),
    )
    .where(Blob.created_at > bindparam("after", type_=Blob.created_at.type))
    .where(Blob.state == bindparam("state"))
    .order_by(Blob.id)
    .limit(bindparam("limit"))
)


def test_rows_match_sqlalchemys_own_execution(database: Database) -> None:
    start = utcnow() - timedelta(seconds=5)
    with database.transaction() as db:
        for i, key in enumerate(("a", "b", "c")):
            db.connection().execute(_INSERT, {**_values(key), "verified": i != 1})
    # Five hours east of UTC: only a bind processor that converts to UTC finds the rows.
    after = start.astimezone(timezone(timedelta(hours=5)))
    params = {"after": after, "state": "active", "limit": 2}
    with database.read_transaction() as db:
        ours = rows(db, _SELECT, params)
        theirs = db.connection().execute(_SELECT, params).all()
        assert len(ours) == len(theirs) == 2
        for mine, expected in zip(ours, theirs, strict=True):
            assert tuple(mine) == tuple(expected)
            assert [type(v) for v in mine] == [type(v) for v in expected]
            assert mine._mapping == dict(expected._mapping)
            assert (mine.storage_key, mine.verified, mine[0]) == (
                expected.storage_key,
                expected.verified,
                expected[0],
            )
        assert ours[0].created_at.tzinfo is not None and ours[1].verified is False
        assert first_row(db, _SELECT, {**params, "state": "gone"}) is None
        assert first_row(db, _SELECT, params) == ours[0]
        assert not hasattr(ours[0], "no_such_column")


def test_dedup_lookups_use_the_hash_index_and_find_only_healthy_active_blobs(
    database: Database,
) -> None:
    """`blobs.find_dedup_targets` (a write group's and a batch upload's dedup): SQLite's
    planner, without statistics, answered its `IN` from the (state, unreferenced_at) index,
    reading every active blob per lookup; `db.sql.not_indexed` keeps it on the hash's own
    index. It still finds only verified, healthy, active blobs, the oldest first."""
    from docstore.documents.blobs import _DEDUP_PROBE, _DEDUP_TARGETS, find_dedup_targets

    wanted, other = "a" * 64, "b" * 64
    with database.transaction() as db:
        ids = []
        for key, changes in [
            ("old", {}),
            ("new", {}),
            ("damaged", {"damaged": True}),
            ("pending", {"state": "pending"}),
            ("unverified", {"verified": False}),
        ]:
            blob = inserted(db, _INSERT, {**_values(key), "sha256": wanted, **changes})
            ids.append(blob.id)
        inserted(db, _INSERT, {**_values("other"), "sha256": other, "size_bytes": 9})
        sick = "d" * 64  # held by a damaged blob only
        inserted(db, _INSERT, {**_values("sick"), "sha256": sick, "damaged": True})
    with database.transaction() as db:
        found = find_dedup_targets(db, {(wanted, 3), (other, 9), ("c" * 64, 1)})
        assert {k: b.storage_key for k, b in found.items()} == {
            (wanted, 3): "old",
            (other, 9): "other",
        }
        assert find_dedup_targets(db, {(sick, 3), ("c" * 64, 1)}) == {}
        assert find_dedup_targets(db, {(sick, 3), (other, 9)})[(other, 9)].storage_key == "other"
        if database.engine.dialect.name == "sqlite":
            # The probe that answers "none" on the fast path searches the same index.
            probe = str(_DEDUP_PROBE.compile(dialect=database.engine.dialect))
            driver_: Any = db.connection().connection.driver_connection
            rows_ = driver_.execute(f"EXPLAIN QUERY PLAN {probe}", ("[]", "active", 1, 0))
            details_ = " | ".join(str(row[-1]) for row in rows_.fetchall())
            assert "ix_blobs_sha256" in details_ and "ix_blobs_state_unref" not in details_
        if database.engine.dialect.name == "sqlite":
            compiled = _DEDUP_TARGETS.compile(dialect=database.engine.dialect)
            sql = str(compiled).replace("__[POSTCOMPILE_sha256s]", "?, ?")
            driver: Any = db.connection().connection.driver_connection
            plan = driver.execute(f"EXPLAIN QUERY PLAN {sql}", (wanted, other, "active"))
            details = " | ".join(str(row[-1]) for row in plan.fetchall())
            assert "ix_blobs_sha256" in details, details
            assert "ix_blobs_state_unref" not in details, details
