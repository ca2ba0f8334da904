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
    exists,
    func,
    literal,
    literal_column,
    not_,
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


# How many matches of one kind (document names, document text, folder names) are ranked.
# Ranking is the cost of a search for a word in nearly every text: bm25 / ts_rank_cd per
# match (ts_rank_cd of a phrase of two such words: ~150 us a document on PostgreSQL, 3 s
# for 20,000). So each kind takes its visible matches newest first (the index's own
# order: FTS5 rowid, the primary key) and ranks at most RANK_WINDOW of them. A query with
# fewer visible matches is ranked exactly; one with more ranks and returns the newest
# RANK_WINDOW of each kind (as Elasticsearch's max_result_window bounds deep paging).
RANK_WINDOW = 200


def _window(stmt: Any, id_column: Any) -> Any:
    """The first RANK_WINDOW rows of `stmt` in the index's order (newest first)."""
    return stmt.order_by(id_column.desc()).limit(RANK_WINDOW)


def _document_conditions(actor: Actor, f: Filters) -> list[Any]:
    """What a matching document must also pass besides the exclusions: the permission rule
    and the filters; evaluated for each match before the window is cut, never after. Built
    once a search and shared by its parts (building `readable` for documents costs ~2 ms
    of Python: its aliases)."""
    conds = _common(Document, actor, f)
    if f.within is not None:
        parent = aliased(Folder)
        conds.append(
            exists(
                select(parent.id).where(
                    parent.id == Document.folder_id,
                    parent.path.startswith(f.within.path, autoescape=False),
                )
            )
        )
    if f.mime:
        mime = f.mime.lower().removesuffix("*")
        conds.append(
            Document.mime_type.startswith(mime, autoescape=True)
            if mime.endswith("/")
            else (Document.mime_type == mime)
        )
    return conds


def _document_hits(q: ql.Query, actor: Actor, f: Filters, postgres: bool) -> Any:
    """(id, key) of the visible documents whose name or text matches, best key per document."""
    pos = q.positive
    name_only = tuple(t for t in pos if t.name_only)
    content = tuple(t for t in pos if not t.name_only)
    base = _document_conditions(actor, f)
    name_conds = [*base, *_excluded(q, Document, postgres)]
    parts: list[Any] = []
    if postgres:
        vec = name_vector(Document)
        tsq = _tsq(ql.tsquery(pos, names=True), "dn")
        names = _window(
            select(Document.id, Document.name).where(vec.op("@@")(tsq), *name_conds),
            Document.id,
        ).subquery("name_hits")
        name_rank = cast(
            func.ts_rank_cd(func.to_tsvector(CONFIG, func.docstore_search_name(names.c.name)), tsq),
            Float(53),
        )
        parts.append(select(names.c.id, (name_rank + NAME_BOOST).label("key")))
        if not q.name_only:
            # The exclusions ride in the text's own tsquery: one @@ per candidate row.
            match = ql.tsquery(content, names=False)
            if q.negative:
                match = f"({match}) & !({ql.ts_any(q.negative)})"
            ctsq = _tsq(match, "dc")
            conds = [*base, *_excluded(q, Document, postgres, content=False)]
            if name_only:
                conds.append(vec.op("@@")(_tsq(ql.tsquery(name_only, names=True), "dno")))
            texts = _window(
                select(SearchText.document_id.label("id"), TSV.label("tsv"))
                .join(Document, Document.id == SearchText.document_id)
                .where(TSV.op("@@")(ctsq), *conds),
                SearchText.document_id,
            ).subquery("content_hits")
            crank = cast(
                func.ts_rank_cd(texts.c.tsv, _tsq(ql.tsquery(content, names=False), "dr")),
                Float(53),
            )
            parts.append(select(texts.c.id, crank.label("key")))
    else:
        names = _window(
            _sqlite_hits("search_document_names", ql.fts_match(pos, names=True), "dn")
            .join(Document, Document.id == literal_column("search_document_names.rowid"))
            .where(*name_conds),
            literal_column("search_document_names.rowid"),
        ).subquery("name_hits")
        parts.append(select(names.c.id, (names.c.rel + NAME_BOOST).label("key")))
        if not q.name_only:
            conds = [*base, *_excluded(q, Document, postgres, content=False)]
            if name_only:
                only = _sqlite_ids(
                    "search_document_names", ql.fts_match(name_only, names=True), "dno"
                )
                conds.append(Document.id.in_(only))
            parts.append(_sqlite_content_hits(content, q.negative, conds))
    hits = union_all(*parts).subquery("hits")
    return select(hits.c.id, func.max(hits.c.key).label("key")).group_by(hits.c.id)


def _sqlite_content_hits(
    content: tuple[ql.Term, ...], negative: tuple[ql.Term, ...], conds: list[Any]
) -> Any:
    """(id, key) of the newest RANK_WINDOW visible texts matching `content`, ranked by bm25.
    With a phrase the window is found by the phrase and ranked by its words (fts_words):
    FTS5 computes a phrase's bm25 from a count of the texts holding it, over all of them."""
    row: Any = literal_column("search_content.rowid")
    match = ql.fts_match(content, names=False)
    words = ql.fts_words(content)
    if negative:  # the text's own exclusions are part of its MATCH: one doclist merge
        match = f"({match}) NOT ({ql.fts_any(negative)})"
        words = f"({words}) NOT ({ql.fts_any(negative)})"
    if words == match:
        hit = _window(
            _sqlite_hits("search_content", match, "dc")
            .join(Document, Document.id == row)
            .where(*conds),
            row,
        ).subquery("content_hits")
        return select(hit.c.id, hit.c.rel.label("key"))
    window = _window(
        select(row.label("id"))
        .select_from(sql_table("search_content"))
        .where(_fts("search_content").op("MATCH")(bindparam("dc", match, type_=String)))
        .join(Document, Document.id == row)
        .where(*conds),
        row,
    ).cte("content_window")
    ranked = (
        _sqlite_hits("search_content", words, "dr")
        .where(
            row >= select(func.min(window.c.id)).scalar_subquery(),
            # "+ 0": checked per row; a bare IN would be a lookup per id (bm25 each time).
            (row + 0).in_(select(window.c.id)),
        )
        .subquery("content_hits")
    )
    return select(ranked.c.id, ranked.c.rel.label("key"))


def _excluded(
    q: ql.Query, model: type[Document] | type[Folder], postgres: bool, content: bool = True
) -> list[Any]:
    """Conditions that drop items whose name (or a document's text) has an excluded term."""
    if not q.negative:
        return []
    if postgres:
        neg = _tsq(ql.ts_any(q.negative), "neg")
        out: list[Any] = [not_(name_vector(model).op("@@", is_comparison=True)(neg))]
        if model is Document and content:
            # Correlated: one probe of the document's own text, not every text's @@.
            out.append(
                ~exists(
                    select(SearchText.document_id).where(
                        SearchText.document_id == Document.id, TSV.op("@@")(neg)
                    )
                )
            )
        return out
    # Correlated (a seek in the term's doclist per candidate), not NOT IN: that would list
    # every text holding a common word first (20,000 rowids for a word in every text).
    match = ql.fts_any(q.negative)
    table = "search_document_names" if model is Document else "search_folder_names"
    tables = [table, "search_content"] if model is Document and content else [table]
    return [
        ~exists(_sqlite_ids(t, match, "neg").where(literal_column(f"{t}.rowid") == model.id))
        for t in tables
    ]


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
    hits = _document_hits(q, actor, f, postgres).subquery("doc_hits")
    return (
        select(
            literal("document", String).label("kind"),
            Document.id.label("id"),
            hits.c.key.label("key"),
            Document.updated_at.label("updated_at"),
        )
        .select_from(hits)
        .join(Document, Document.id == hits.c.id)
    )


def folders_statement(q: ql.Query, actor: Actor, f: Filters, postgres: bool) -> Any:
    """kind, id, key, updated_at of the matching folders the actor may see."""
    if f.kind == "document" or f.mime:
        return None
    pos = q.positive
    conds = [
        Folder.parent_id.is_not(None),
        *_common(Folder, actor, f),
        *_excluded(q, Folder, postgres),
    ]
    if f.within is not None:
        conds += [Folder.path.startswith(f.within.path, autoescape=False), Folder.id != f.within.id]
    if postgres:
        vec = name_vector(Folder)
        tsq = _tsq(ql.tsquery(pos, names=True), "fn")
        hits = _window(
            select(Folder.id, Folder.name, Folder.updated_at).where(vec.op("@@")(tsq), *conds),
            Folder.id,
        ).subquery("folder_hits")
        rank = func.ts_rank_cd(
            func.to_tsvector(CONFIG, func.docstore_search_name(hits.c.name)), tsq
        )
        return select(
            literal("folder", String).label("kind"),
            hits.c.id.label("id"),
            (cast(rank, Float(53)) + NAME_BOOST).label("key"),
            hits.c.updated_at.label("updated_at"),
        )
    hits = _window(
        _sqlite_hits("search_folder_names", ql.fts_match(pos, names=True), "fn")
        .add_columns(Folder.updated_at.label("updated_at"))
        .join(Folder, Folder.id == literal_column("search_folder_names.rowid"))
        .where(*conds),
        literal_column("search_folder_names.rowid"),
    ).subquery("folder_hits")
    return select(
        literal("folder", String).label("kind"),
        hits.c.id.label("id"),
        (hits.c.rel + NAME_BOOST).label("key"),
        hits.c.updated_at.label("updated_at"),
    )


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
