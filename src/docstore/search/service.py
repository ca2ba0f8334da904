"""Search: one permission-scoped statement finds and pages the items (repository), then the
page's items are described (path, size, the caller's permission, a snippet)."""

from __future__ import annotations

import html
import unicodedata
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, func, literal_column, select
from sqlalchemy import table as sql_table
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.documents.models import Document, DocumentVersion
from docstore.errors import BadRequest
from docstore.folders.models import Folder
from docstore.pagination import decode_cursor, encode_cursor
from docstore.search import query as ql
from docstore.search import repository as repo
from docstore.search.models import SearchText
from docstore.search.schemas import SearchHit, SearchPage
from docstore.sharing.permissions import Level, get_folder_for, path_ids, readable

# Marks around matched words in the database's snippets; extraction removes them from text.
MARK_START, MARK_END = "\ue000", "\ue001"
SNIPPET_WORDS = 24
HEADLINE_CHARS = 200_000
KINDS = ("document", "folder")
OWNERS = ("me", "others")


def fold(text: str) -> str:
    """Lower case without accents, as the indexes compare words (Résumé -> resume)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def highlight_name(name: str, q: ql.Query) -> str:
    """The name, HTML-escaped, with the words the query's positive terms match in <mark>."""
    wanted: list[tuple[str, bool]] = []
    for term in q.positive:
        for i, word in enumerate(term.words):
            last = i == len(term.words) - 1
            wanted.append((fold(word), last and (term.prefix or not term.exact)))
    out: list[str] = []
    i, n = 0, len(name)
    while i < n:
        j = i
        while j < n and name[j].isalnum():
            j += 1
        if j == i:
            out.append(html.escape(name[i]))
            i += 1
            continue
        word = name[i:j]
        f = fold(word)
        hit = any(f == w or (prefix and f.startswith(w)) for w, prefix in wanted)
        out.append(f"<mark>{html.escape(word)}</mark>" if hit else html.escape(word))
        i = j
    return "".join(out)


def marked_html(text: str) -> str:
    """A database snippet (matches between MARK_START and MARK_END) as safe HTML."""
    escaped = html.escape(" ".join(text.split()))
    return escaped.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def _after(cursor: str | None) -> repo.After | None:
    data = decode_cursor(cursor)
    if data is None:
        return None
    try:
        after = repo.After(
            key=float(data["k"]),
            updated_at=datetime.fromisoformat(str(data["u"])),
            kind=str(data["t"]),
            id=int(data["i"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("The cursor is not valid.") from exc
    if after.kind not in KINDS:
        raise BadRequest("The cursor is not valid.")
    return after


def search(
    db: Session,
    actor: Actor,
    q: str,
    *,
    folder_id: int | None = None,
    kind: str | None = None,
    mime: str | None = None,
    modified_after: datetime | None = None,
    owner: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> SearchPage:
    """One page of the items the actor may see that match `q`, best first."""
    parsed = ql.parse(q)
    if kind is not None and kind not in KINDS:
        raise BadRequest("kind must be 'document' or 'folder'.")
    if owner is not None and owner not in OWNERS:
        raise BadRequest("owner must be 'me' or 'others'.")
    if mime is not None and "\x00" in mime:  # no type has one; PostgreSQL text refuses it
        raise BadRequest("mime may not contain NUL characters.")
    within = get_folder_for(db, actor, folder_id)[0] if folder_id is not None else None
    filters = repo.Filters(kind, mime or None, modified_after, owner, within)
    postgres = db.get_bind().dialect.name == "postgresql"
    stmt = repo.search_statement(parsed, actor, filters, postgres, _after(cursor), limit)
    rows = list(db.execute(stmt)) if stmt is not None else []
    more = len(rows) > limit
    rows = rows[:limit]
    items = _describe(db, actor, parsed, rows, postgres)
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(
            {"k": last.key, "u": last.updated_at, "t": last.kind, "i": last.id}
        )
    return SearchPage(items=items, next_cursor=next_cursor)


def _describe(
    db: Session, actor: Actor, q: ql.Query, rows: list[Any], postgres: bool
) -> list[SearchHit]:
    doc_ids = [r.id for r in rows if r.kind == "document"]
    folder_ids = [r.id for r in rows if r.kind == "folder"]
    docs = {
        d.id: d
        for d in db.execute(
            select(
                Document.id,
                Document.name,
                Document.owner_id,
                Document.mime_type,
                Document.created_at,
                Folder.path,
                DocumentVersion.size_bytes,
            )
            .join(Folder, Folder.id == Document.folder_id)
            .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
            .where(Document.id.in_(doc_ids))
        )
    } if doc_ids else {}  # fmt: skip
    folders = {
        f.id: f
        for f in db.execute(
            select(
                Folder.id,
                Folder.name,
                Folder.owner_id,
                Folder.path,
                Folder.created_at,
            ).where(Folder.id.in_(folder_ids))
        )
    } if folder_ids else {}  # fmt: skip
    levels = {
        **_shared_levels(db, actor, Document, [d for d in docs.values()], "document"),
        **_shared_levels(db, actor, Folder, [f for f in folders.values()], "folder"),
    }
    names = _visible_ancestors(db, actor, [d.path for d in docs.values()] + [
        f.path for f in folders.values()
    ])  # fmt: skip
    snippets = _content_snippets(db, q, doc_ids, postgres) if doc_ids and not q.name_only else {}
    out: list[SearchHit] = []
    for r in rows:
        score = r.key - repo.NAME_BOOST if r.key >= repo.NAME_BOOST / 2 else r.key
        if r.kind == "document":
            d = docs[r.id]
            level = levels.get(("document", d.id), _owned(actor, d.owner_id))
            out.append(
                SearchHit(
                    kind="document",
                    id=d.id,
                    name=d.name,
                    path=_path(names, d.path, d.name),
                    mime_type=d.mime_type,
                    size_bytes=d.size_bytes or 0,
                    updated_at=r.updated_at,
                    owner_id=d.owner_id,
                    permission=level.name,
                    snippet=snippets.get(d.id) or highlight_name(d.name, q),
                    score=round(score, 6),
                )
            )
        else:
            f = folders[r.id]
            level = levels.get(("folder", f.id), _owned(actor, f.owner_id))
            out.append(
                SearchHit(
                    kind="folder",
                    id=f.id,
                    name=f.name,
                    path=_path(names, f.path.removesuffix(f"{f.id}/"), f.name),
                    mime_type=None,
                    size_bytes=None,
                    updated_at=r.updated_at,
                    owner_id=f.owner_id,
                    permission=level.name,
                    snippet=highlight_name(f.name, q),
                    score=round(score, 6),
                )
            )
    return out


def _owned(actor: Actor, owner_id: int) -> Level:
    """OWNER for the actor's own rows (`_shared_levels` leaves them out), else VIEW."""
    return Level.OWNER if owner_id == actor.user_id else Level.VIEW


def _shared_levels(
    db: Session, actor: Actor, model: type[Document] | type[Folder], rows: list[Any], kind: str
) -> dict[tuple[str, int], Level]:
    """(kind, id) -> the actor's level on the page's rows of `model` it does not own, by the
    permission rule itself (`readable` at EDIT and COMMENT; the rows were found, so they are
    at least viewable): one query for the page, where `level_for` per item cost a grant
    query each (20 round trips a page for a sharee). Rows it owns are absent (OWNER)."""
    others = [r.id for r in rows if actor.user_id is None or r.owner_id != actor.user_id]
    if not others:
        return {}
    stmt = select(
        model.id,
        readable(actor, model, Level.EDIT),
        readable(actor, model, Level.COMMENT),
    ).where(model.id.in_(others))
    out: dict[tuple[str, int], Level] = {}
    for item_id, can_edit, can_comment in db.execute(stmt):
        level = Level.EDIT if can_edit else Level.COMMENT if can_comment else Level.VIEW
        out[(kind, item_id)] = level
    return out


def _visible_ancestors(db: Session, actor: Actor, paths: list[str]) -> dict[int, str | None]:
    """Folder id -> name for the ancestors the actor can see (None: hidden or a root)."""
    ids = {i for p in paths for i in path_ids(p)}
    if not ids:
        return {}
    stmt = select(Folder.id, Folder.name, Folder.parent_id, readable(actor, Folder)).where(
        Folder.id.in_(ids)
    )
    return {
        fid: (name if visible and parent is not None else None)
        for fid, name, parent, visible in db.execute(stmt)
    }


def _path(names: dict[int, str | None], folder_path: str, name: str) -> str:
    """The item's path from the highest folder the caller can see ('/A/B/name')."""
    chain: list[str] = []
    for fid in path_ids(folder_path):
        folder_name = names.get(fid)
        if folder_name is None:
            chain = []  # hidden (or the root): the visible part starts below it
        else:
            chain.append(folder_name)
    return "/" + "/".join([*chain, name])


def _content_snippets(
    db: Session, q: ql.Query, doc_ids: list[int], postgres: bool
) -> dict[int, str]:
    """Document id -> snippet HTML of the text around the matched words (where any)."""
    content = tuple(t for t in q.positive if not t.name_only)
    if not content:
        return {}
    if postgres:
        tsq = func.to_tsquery(repo.CONFIG, bindparam("sq", ql.ts_any(content), type_=String))
        options = (
            f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={SNIPPET_WORDS}, '
            'MinWords=8, MaxFragments=2, FragmentDelimiter=" … "'
        )
        body = func.left(SearchText.body, HEADLINE_CHARS)
        stmt: Any = select(
            SearchText.document_id, func.ts_headline(repo.CONFIG, body, tsq, options)
        ).where(
            SearchText.document_id.in_(doc_ids), literal_column("search_texts.tsv").op("@@")(tsq)
        )
    else:
        fts: Any = literal_column("search_content")
        stmt = (
            select(
                literal_column("search_content.rowid"),
                func.snippet(fts, 0, MARK_START, MARK_END, "…", SNIPPET_WORDS),
            )
            .select_from(sql_table("search_content"))
            .where(
                fts.op("MATCH")(bindparam("sq", ql.fts_any(content), type_=String)),
                literal_column("search_content.rowid").in_(doc_ids),
            )
        )
    return {
        int(doc_id): marked_html(text)
        for doc_id, text in db.execute(stmt)
        if text and MARK_START in text
    }
