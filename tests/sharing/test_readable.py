"""`permissions.readable`, the permission-scoped condition for reads of many items, returns
exactly the items the single-item checks (`get_document_for` / `get_folder_for`) allow: for
owners, direct and inherited shares, revoked and expired ones, links and trashed items, at
every level, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.db import Database, utcnow
from docstore.documents.models import Document
from docstore.errors import Forbidden, NotFound
from docstore.folders.models import Folder
from docstore.sharing.models import Share
from docstore.sharing.permissions import Level, get_document_for, get_folder_for, readable
from docstore.users import service as users
from docstore.users.models import User

LEVELS = [Level.VIEW, Level.COMMENT, Level.EDIT, Level.OWNER]


def _folder(db: Session, owner: User, parent: Folder, name: str, deleted: bool = False) -> Folder:
    folder = Folder(owner_id=owner.id, parent_id=parent.id, name=name, path="", created_by=owner.id)
    folder.is_deleted = deleted
    db.add(folder)
    db.flush()
    folder.path = f"{parent.path}{folder.id}/"
    db.flush()
    return folder


def _document(
    db: Session, owner: User, folder: Folder, name: str, deleted: bool = False
) -> Document:
    doc = Document(owner_id=owner.id, folder_id=folder.id, name=name, mime_type="text/plain")
    doc.is_deleted = deleted
    db.add(doc)
    db.flush()
    return doc


def _share(db: Session, by: User, level: Level, **fields: object) -> Share:
    share = Share(kind="link" if "token_hash" in fields else "user", permission=int(level))
    share.created_by = by.id
    for key, value in fields.items():
        setattr(share, key, value)
    db.add(share)
    db.flush()
    return share


def _world(db: Session) -> list[Actor]:
    alice, bob, carol, dave = (
        users.create_user(db, email=f"{n}@example.com", name=n, password="a long password 1")
        for n in ("alice", "bob", "carol", "dave")
    )
    root = db.get_one(Folder, alice.root_folder_id)
    a = _folder(db, alice, root, "a")
    b = _folder(db, alice, a, "b")
    trashed = _folder(db, alice, a, "trashed", deleted=True)
    d1 = _document(db, alice, root, "d1")
    d2 = _document(db, alice, a, "d2")
    d3 = _document(db, alice, b, "d3")
    _document(db, alice, a, "gone", deleted=True)
    _document(db, alice, trashed, "inside-trash", deleted=True)
    _document(db, bob, db.get_one(Folder, bob.root_folder_id), "bobs")
    past = utcnow() - timedelta(hours=1)
    _share(db, alice, Level.VIEW, folder_id=a.id, shared_with_user_id=bob.id)
    _share(db, alice, Level.EDIT, document_id=d1.id, shared_with_user_id=bob.id)
    _share(db, alice, Level.EDIT, folder_id=b.id, shared_with_user_id=bob.id, expires_at=past)
    _share(db, alice, Level.COMMENT, document_id=d3.id, shared_with_user_id=carol.id,
           is_active=False)  # fmt: skip
    _share(db, alice, Level.COMMENT, folder_id=b.id, shared_with_user_id=carol.id)
    on_a = _share(db, alice, Level.EDIT, folder_id=a.id, token_hash="a" * 64)
    on_d1 = _share(db, alice, Level.VIEW, document_id=d1.id, token_hash="b" * 64)
    expired = _share(db, alice, Level.EDIT, document_id=d2.id, token_hash="c" * 64,
                     expires_at=past)  # fmt: skip
    people = [Actor(user=u) for u in (alice, bob, carol, dave)]
    return [*people, *(Actor(user=None, link=link) for link in (on_a, on_d1, expired))]


def _allowed(
    db: Session, actor: Actor, model: type, item_id: int, needed: Level, trash: bool
) -> bool:
    try:
        if model is Document:
            get_document_for(db, actor, item_id, needed, include_deleted=trash)
        else:
            get_folder_for(db, actor, item_id, needed, include_deleted=trash)
    except (NotFound, Forbidden):
        return False
    return True


@pytest.mark.parametrize("model", [Document, Folder])
def test_readable_returns_what_the_single_item_checks_allow(
    database: Database, model: type
) -> None:
    with database.transaction() as db:
        actors = _world(db)
        ids = list(db.scalars(select(model.id)))
        checked = 0
        for actor in actors:
            for needed in LEVELS:
                for trash in (False, True):
                    expected = {i for i in ids if _allowed(db, actor, model, i, needed, trash)}
                    condition = readable(actor, model, needed, include_deleted=trash)
                    got = set(db.scalars(select(model.id).where(condition)))
                    assert got == expected, (actor.user_id, actor.link, needed, trash)
                    checked += len(expected)
        assert checked > 20  # the world gives most combinations something to see
