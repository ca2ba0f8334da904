"""Resolving a /dav/files/ path: one statement whatever its depth (rclone resolves about four
paths per file), with the answers of the walk one level at a time; lock checks without locks
cost no statement of their own, and a lock made in the transaction is still seen."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from docstore.context import Actor
from docstore.dav import locking
from docstore.dav.tree import Target, resolve
from docstore.db import Database, hooks_mark, roll_back_hooks_since
from docstore.users.models import User as UserRow
from tests.dav.requests import DAV, dav, lockinfo
from tests.fixtures.app import Api, User
from tests.fixtures.databases import executed

DEEP = ["a", "b", "c", "d", "e", "f"]


def _database(api: Api) -> Database:
    database: Database = api.client.app.state.services.database  # type: ignore[attr-defined]
    return database


def _resolve(api: Api, user: User, path: list[str], sent: list[str]) -> tuple[Target, int]:
    """What `path` resolves to for `user`, and how many statements the resolving sent: as
    SQLAlchemy sends them (`executed`), and on SQLite as the database runs them (its trace
    callback: `docstore.db.fastpath` runs reads on the driver's connection)."""
    with _database(api).read_transaction() as db:
        actor = Actor(user=db.get_one(UserRow, user.id))
        conn = db.connection()
        traced: list[str] = []
        if conn.dialect.name == "sqlite":
            conn.connection.driver_connection.set_trace_callback(traced.append)  # type: ignore[union-attr]
        sent.clear()
        try:
            target = resolve(db, actor, path)
        finally:
            if conn.dialect.name == "sqlite":
                conn.connection.driver_connection.set_trace_callback(None)  # type: ignore[union-attr]
        return target, len(traced) if conn.dialect.name == "sqlite" else len(sent)


def test_a_deep_path_resolves_in_one_statement_as_the_walk_did(api: Api) -> None:
    ann = api.register()
    for depth in range(1, len(DEEP) + 1):
        assert dav(ann, "MKCOL", f"{DAV}/{'/'.join(DEEP[:depth])}/").status_code == 201
    deep = "/".join(DEEP)
    assert dav(ann, "PUT", f"{DAV}/{deep}/g.txt", content=b"seven").status_code == 201
    assert dav(ann, "PUT", f"{DAV}/a/f", content=b"f").status_code == 201
    sent = executed(_database(api))

    def one(path: list[str]) -> Target:
        target, statements = _resolve(api, ann, ["files", *path], sent)
        assert statements == 1, (path, sent)
        return target

    # A document six folders down: its node, its parent's, the lock namespace of /files/.
    t = one([*DEEP, "g.txt"])
    assert t.node is not None and t.parent is not None
    assert (t.node.kind, t.node.href, t.node.rel) == (
        "document",
        f"{DAV}/{deep}/g.txt",
        f"{deep}/g.txt",
    )
    assert (t.node.size, t.node.ns_root, t.node.ns_href) == (5, ann.root, f"{DAV}/")
    assert t.node.etag == dav(ann, "HEAD", f"{DAV}/{deep}/g.txt").headers["ETag"]
    assert (t.parent.kind, t.parent.href, t.parent.rel) == ("folder", f"{DAV}/{deep}/", deep)
    assert t.name == "g.txt" and t.segments == ["files", *DEEP, "g.txt"]
    # The folder itself, and /files/ (the root: no parent).
    t = one(DEEP)
    assert t.node is not None and t.parent is not None
    assert (t.node.kind, t.node.rel, t.parent.rel) == ("folder", deep, "a/b/c/d/e")
    t = one([])
    assert t.node is not None and t.parent is None
    assert (t.node.kind, t.node.href, t.node.rel, t.name) == ("folder", f"{DAV}/", "", "files")
    # A missing leaf: no node, its parent (where a PUT would create it).
    t = one([*DEEP, "new.txt"])
    assert t.node is None and t.parent is not None and t.parent.rel == deep
    assert t.name == "new.txt" and t.segments == ["files", *DEEP, "new.txt"]
    t = one(["new.txt"])
    assert t.node is None and t.parent is not None and t.parent.rel == "" and t.name == "new.txt"
    # A missing folder, or a document, on the way: nothing, the path up to it.
    for path, stop in ((["a", "nope", "c", "x"], 2), ([*DEEP, "g.txt", "x"], 7)):
        t = one(path)
        assert (t.node, t.parent, t.name) == (None, None, path[stop - 1])
        assert t.segments == ["files", *path[:stop]]
    # A document one level down; names are case-sensitive.
    t = one(["a", "f"])
    assert t.node is not None and t.node.kind == "document" and t.node.rel == "a/f"
    assert one(["A"]).node is None and one(["a", "B"]).parent is not None
    assert one(["A", "b"]).parent is None
    # Any name: the walk passes the names as one parameter (JSON on SQLite).
    odd = 'we"ird\\ [ö] 1'
    assert dav(ann, "MKCOL", f"{DAV}/{quote(odd)}/").status_code == 201
    assert dav(ann, "PUT", f"{DAV}/{quote(odd)}/null", content=b"n").status_code == 201
    t = one([odd, "null"])
    assert t.node is not None and t.node.rel == f"{odd}/null"
    if _database(api).engine.dialect.name == "sqlite":  # PostgreSQL's text holds no NUL
        t = one([f"{odd}\x00"])
        assert t.node is None and t.parent is not None
        assert (one([f"{odd}\x00", "null"]).node, one([odd, "null\x00"]).node) == (None, None)
    # Trashed items are invisible.
    assert dav(ann, "DELETE", f"{DAV}/{deep}/g.txt").status_code == 204
    t = one([*DEEP, "g.txt"])
    assert t.node is None and t.parent is not None
    assert dav(ann, "DELETE", f"{DAV}/a/b/").status_code == 204
    t = one([*DEEP, "g.txt"])
    assert (t.node, t.parent, t.segments) == (None, None, ["files", "a", "b"])


def _lock_queries(sent: list[str]) -> list[str]:
    """Statements reading a namespace's locks other than the walk's (which says whether it
    has any). The document's own check for the API (`check_unlocked`) is another matter."""
    return [s for s in sent if "dav_locks.root_folder_id" in s and "walk" not in s]


def test_lock_checks_without_locks_send_no_statement_and_see_a_new_lock(api: Api) -> None:
    ann = api.register()
    sent = executed(_database(api))
    assert dav(ann, "MKCOL", f"{DAV}/box/").status_code == 201
    assert dav(ann, "PUT", f"{DAV}/box/one.txt", content=b"1").status_code == 201
    assert dav(ann, "PROPFIND", f"{DAV}/box/one.txt", headers={"Depth": "0"}).status_code == 207
    assert dav(ann, "PUT", f"{DAV}/box/one.txt", content=b"2").status_code == 204
    assert _lock_queries(sent) == []
    # With a lock in the namespace every check reads the locks, and the lock holds.
    body = lockinfo()
    r = dav(ann, "LOCK", f"{DAV}/box/", content=body, headers={"Depth": "infinity"})
    assert r.status_code == 200
    token = r.headers["Lock-Token"]
    sent.clear()
    assert dav(ann, "PUT", f"{DAV}/box/two.txt", content=b"2").status_code == 423
    assert _lock_queries(sent) != []
    r = dav(ann, "PUT", f"{DAV}/box/two.txt", content=b"2", headers={"If": f"({token})"})
    assert r.status_code == 201
    with _database(api).read_transaction() as db:
        target = resolve(db, Actor(user=db.get_one(UserRow, ann.id)), ["files", "x"])
        assert target.parent is not None
        assert [lk.path for lk in locking.live_locks(db, target.parent.ns_root)] == ["box"]
    # A savepoint that deleted the lock, found none, then rolled back (the write group's
    # shape) leaves the lock seen again.
    with _database(api).transaction() as db:
        actor = Actor(user=db.get_one(UserRow, ann.id))
        mark, savepoint = hooks_mark(db), db.begin_nested()
        locking.drop_below(db, ann.root, "box")
        target = resolve(db, actor, ["files", "x"])
        assert target.parent is not None and target.parent.ns_root == ann.root
        assert locking.live_locks(db, ann.root) == []
        savepoint.rollback()
        roll_back_hooks_since(db, mark)
        assert [lk.path for lk in locking.live_locks(db, ann.root)] == ["box"]
    # A lock made after the walk found none, in the same transaction, is seen.
    bob = api.register()
    with _database(api).transaction() as db:
        target = resolve(db, Actor(user=db.get_one(UserRow, bob.id)), ["files", "x"])
        assert target.parent is not None and target.parent.ns_root == bob.root
        assert locking.live_locks(db, bob.root) == []
        made: Any = locking.create(
            db, ns_root=bob.root, rel="x", user_id=bob.id, exclusive=True,
            depth_infinity=False, owner_xml=None, timeout=60, document_id=None, folder_id=None,
        )  # fmt: skip
        assert locking.live_locks(db, bob.root) == [made]
