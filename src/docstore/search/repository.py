"""The search statement: full-text matches joined to the live documents and folders, with
the permission rule (`sharing.permissions.readable`) and the filters in the same
statement, ordered and paged by a keyset over (key, updated_at, kind, id).

`key` ranks name matches above content matches: a name match scores NAME_BOOST plus its
relevance, a content match its relevance (bm25 on SQLite, ts_rank_cd on PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy import table as sql_table
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement

from docstore.context import Actor
from docstore.db import UTCDateTime
from docstore.documents.models import Document
from docstore.folders.models import Folder
from docstore.search import query as ql
from docstore.search.models import SearchText
from docstore.sharing.permissions import readable

NAME_BOOST = 100000.0
CONFIG: ColumnElement[Any] = literal_column("'docstore_search'::regconfig")


@dataclass(frozen=True)
class Filters:
    """What narrows a search besides the query."""

    kind: str | None = None  # "document" | "folder"
    mime: str | None = None
    modified_after: datetime | None = None
    owner: str | None = None  # "me" | "others"
    within: Folder | None = None  # the subtree searched


@dataclass(frozen=True)
class After:
    """The keyset position of the last row of the previous page."""

    key: float
    updated_at: datetime
    kind: str
    id: int


def _fts(table: str) -> Any:
    return literal_column(table)


def _sqlite_hits(table: str, match: str, name: str) -> Any:
    """rowid and relevance (-bm25) of the rows of an FTS5 table matching `match`."""
    fts = _fts(table)
    return (
        select(
            literal_column(f"{table}.rowid").label("id"),
            (-literal_column(f"{table}.rank")).label("rel"),
        )
        .select_from(sql_table(table))
        .where(fts.op("MATCH")(bindparam(name, match, type_=String)))
    )


def _sqlite_ids(table: str, match: str, name: str) -> Any:
    return (
        select(literal_column(f"{table}.rowid"))
        .select_from(sql_table(table))
        .where(_fts(table).op("MATCH")(bindparam(name, match, type_=String)))
    )


def name_vector(model: type[Document] | type[Folder]) -> ColumnElement[Any]:
    """The expression the PostgreSQL name indexes are built on (migration 0013_search)."""
    return func.to_tsvector(CONFIG, func.docstore_search_name(model.name))


def _tsq(text: str, name: str) -> ColumnElement[Any]:
    return func.to_tsquery(CONFIG, bindparam(name, text, type_=String))


TSV: ColumnElement[Any] = literal_column("search_texts.tsv")


def _document_hits(q: ql.Query, postgres: bool) -> Any:
    """(id, key) of the documents whose name or text matches, best key per document."""
    pos = q.positive
    name_only = tuple(t for t in pos if t.name_only)
    parts: list[Any] = []
    if postgres:
        vec = name_vector(Document)
        tsq = _tsq(ql.tsquery(pos, names=True), "dn")
        rank = cast(func.ts_rank_cd(vec, tsq), Float(53))
        parts.append(
            select(Document.id.label("id"), (rank + NAME_BOOST).label("key")).where(
                vec.op("@@")(tsq)
            )
        )
        if not q.name_only:
            content = tuple(t for t in pos if not t.name_only)
            ctsq = _tsq(ql.tsquery(content, names=False), "dc")
            crank = cast(func.ts_rank_cd(TSV, ctsq), Float(53))
            hit: Any = select(SearchText.document_id.label("id"), crank.label("key")).where(
                TSV.op("@@")(ctsq)
            )
            if name_only:
                hit = hit.where(
                    SearchText.document_id.in_(
                        select(Document.id).where(
                            vec.op("@@")(_tsq(ql.tsquery(name_only, names=True), "dno"))
                        )
                    )
                )
            parts.append(hit)
    else:
        names = _sqlite_hits("search_document_names", ql.fts_match(pos, names=True), "dn").subquery(
            "name_hits"
        )
        parts.append(select(names.c.id, (names.c.rel + NAME_BOOST).label("key")))
        if not q.name_only:
            content = tuple(t for t in pos if not t.name_only)
            hit = _sqlite_hits("search_content", ql.fts_match(content, names=False), "dc").subquery(
                "content_hits"
            )
            chosen = select(hit.c.id, hit.c.rel.label("key"))
            if name_only:
                only = _sqlite_ids(
                    "search_document_names", ql.fts_match(name_only, names=True), "dno"
                )
                chosen = chosen.where(hit.c.id.in_(only))
            parts.append(chosen)
    hits = union_all(*parts).subquery("hits")
    return select(hits.c.id, func.max(hits.c.key).label("key")).group_by(hits.c.id)


def _excluded(q: ql.Query, model: type[Document] | type[Folder], postgres: bool) -> list[Any]:
    """Conditions that drop items whose name (or a document's text) has an excluded term."""
    if not q.negative:
        return []
    if postgres:
        neg = _tsq(ql.ts_any(q.negative), "neg")
        out: list[Any] = [~name_vector(model).op("@@")(neg)]
        if model is Document:
            out.append(~Document.id.in_(select(SearchText.document_id).where(TSV.op("@@")(neg))))
        return out
    match = ql.fts_any(q.negative)
    table = "search_document_names" if model is Document else "search_folder_names"
    out = [~model.id.in_(_sqlite_ids(table, match, "neg"))]
    if model is Document:
        out.append(~Document.id.in_(_sqlite_ids("search_content", match, "neg")))
    return out


def _common(model: type[Document] | type[Folder], actor: Actor, f: Filters) -> list[Any]:
    conds: list[Any] = [readable(actor, model)]
    if f.owner == "me":
        conds.append(model.owner_id == actor.user_id)
    elif f.owner == "others":
        conds.append(model.owner_id != actor.user_id)
    if f.modified_after is not None:
        conds.append(model.updated_at > f.modified_after)
    return conds


def documents_statement(q: ql.Query, actor: Actor, f: Filters, postgres: bool) -> Any:
    """kind, id, key, updated_at of the matching documents the actor may see."""
    if f.kind == "folder":
        return None
    hits = _document_hits(q, postgres).subquery("doc_hits")
    parent = aliased(Folder)
    stmt = (
        select(
            literal("document", String).label("kind"),
            Document.id.label("id"),
            hits.c.key.label("key"),
            Document.updated_at.label("updated_at"),
        )
        .select_from(hits)
        .join(Document, Document.id == hits.c.id)
        .where(*_common(Document, actor, f), *_excluded(q, Document, postgres))
    )
    if f.within is not None:
        stmt = stmt.join(parent, parent.id == Document.folder_id).where(
            parent.path.startswith(f.within.path, autoescape=False)
        )
    if f.mime:
        mime = f.mime.lower().removesuffix("*")
        cond = (
            Document.mime_type.startswith(mime, autoescape=True)
            if mime.endswith("/")
            else (Document.mime_type == mime)
        )
        stmt = stmt.where(cond)
    return stmt


def folders_statement(q: ql.Query, actor: Actor, f: Filters, postgres: bool) -> Any:
    """kind, id, key, updated_at of the matching folders the actor may see."""
    if f.kind == "document" or f.mime:
        return None
    pos = q.positive
    if postgres:
        vec = name_vector(Folder)
        tsq = _tsq(ql.tsquery(pos, names=True), "fn")
        key = cast(func.ts_rank_cd(vec, tsq), Float(53)) + NAME_BOOST
        stmt = select(
            literal("folder", String).label("kind"),
            Folder.id.label("id"),
            key.label("key"),
            Folder.updated_at.label("updated_at"),
        ).where(vec.op("@@")(tsq))
    else:
        hits = _sqlite_hits("search_folder_names", ql.fts_match(pos, names=True), "fn").subquery(
            "folder_hits"
        )
        stmt = (
            select(
                literal("folder", String).label("kind"),
                Folder.id.label("id"),
                (hits.c.rel + NAME_BOOST).label("key"),
                Folder.updated_at.label("updated_at"),
            )
            .select_from(hits)
            .join(Folder, Folder.id == hits.c.id)
        )
    stmt = stmt.where(
        Folder.parent_id.is_not(None), *_common(Folder, actor, f), *_excluded(q, Folder, postgres)
    )
    if f.within is not None:
        stmt = stmt.where(
            Folder.path.startswith(f.within.path, autoescape=False), Folder.id != f.within.id
        )
    return stmt


def search_statement(
    q: ql.Query, actor: Actor, f: Filters, postgres: bool, after: After | None, limit: int
) -> Any:
    """One page of (kind, id, key, updated_at), best first; None when nothing can match."""
    parts: list[Any] = [
        s
        for s in (
            documents_statement(q, actor, f, postgres),
            folders_statement(q, actor, f, postgres),
        )
        if s is not None
    ]
    if not parts:
        return None
    found: Any = union_all(*parts) if len(parts) > 1 else parts[0]
    rows = found.subquery("found")
    stmt = select(rows.c.kind, rows.c.id, rows.c.key, rows.c.updated_at)
    if after is not None:
        k = bindparam("after_key", after.key, type_=Float(53))
        u = bindparam("after_updated", after.updated_at, type_=UTCDateTime)
        kd = bindparam("after_kind", after.kind, type_=String)
        i: Any = bindparam("after_id", after.id)
        stmt = stmt.where(
            or_(
                rows.c.key < k,
                and_(rows.c.key == k, rows.c.updated_at < u),
                and_(rows.c.key == k, rows.c.updated_at == u, rows.c.kind > kd),
                and_(rows.c.key == k, rows.c.updated_at == u, rows.c.kind == kd, rows.c.id < i),
            )
        )
    return stmt.order_by(
        rows.c.key.desc(), rows.c.updated_at.desc(), rows.c.kind, rows.c.id.desc()
    ).limit(limit + 1)
