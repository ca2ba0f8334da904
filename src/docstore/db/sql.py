"""SQL text functions the database evaluates, so hot listings build no Python object per
value: `api_time` (a timestamp as the API writes it) and `json_object` (a row as JSON);
`insert_new`, an insert that leaves an existing row alone on either database; and
`not_indexed`, a column SQLite's planner must not pick an index for."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import String, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement


class _ApiTimeText(FunctionElement[str]):
    inherit_cache = True
    type = String()


def api_time(column: Any) -> Any:
    """`column` (a UTCDateTime) as text the way the API writes it, 'YYYY-MM-DDTHH:MM:SS.ffffffZ'
    with a zero fraction left out (pydantic's format), rendered by the database: a listing
    page's 2,000 timestamps then never become datetimes (bench/PROFILE.md)."""
    return _ApiTimeText(column)


@compiles(_ApiTimeText, "sqlite")
def _api_time_sqlite(element: _ApiTimeText, compiler: Any, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC). The CASE costs SQLite less than a second
    # replace() over every value (0.80 against 0.95 ms for a page's 2,000 timestamps).
    x = compiler.process(next(iter(element.clauses)), **kw)
    return (
        f"CASE WHEN {x} LIKE '%.000000' THEN replace(substr({x}, 1, 19), ' ', 'T') || 'Z'"
        f" ELSE replace({x}, ' ', 'T') || 'Z' END"
    )


@compiles(_ApiTimeText, "postgresql")
def _api_time_postgresql(element: _ApiTimeText, compiler: Any, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    text = f"""to_char({x} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')"""
    return f"replace({text}, '.000000', '') || 'Z'"


class _NotIndexed(FunctionElement[Any]):
    inherit_cache = True

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


def not_indexed(column: Any) -> Any:
    """`column`, in a term SQLite must not answer from an index on it: its planner has no
    statistics and may take a poor index (one that reads most of a table) over the one that
    finds a few rows (SQLite's documented unary "+"). Elsewhere the column itself."""
    return _NotIndexed(column)


@compiles(_NotIndexed)
def _not_indexed(element: _NotIndexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(next(iter(element.clauses)), **kw))


@compiles(_NotIndexed, "sqlite")
def _not_indexed_sqlite(element: _NotIndexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(next(iter(element.clauses)), **kw))


class _JsonObjectText(FunctionElement[str]):
    inherit_cache = True
    type = String()


_JSON_KEY = re.compile(r"[a-z_]+")


def json_object(columns: dict[str, Any]) -> Any:
    """One JSON object per row, its keys in `columns`' order, built by the database as text:
    a listing page's 1,000 entries then cost no Python object per column (PROFILE.md).
    Keys are ours (plain identifiers), written into the statement as literals."""
    args: list[Any] = []
    for key, column in columns.items():
        if not _JSON_KEY.fullmatch(key):
            raise ValueError(f"not a JSON key for a statement: {key!r}")
        args += [literal_column(f"'{key}'"), column]
    return _JsonObjectText(*args)


@compiles(_JsonObjectText, "sqlite")
def _json_object_sqlite(element: _JsonObjectText, compiler: Any, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(_JsonObjectText, "postgresql")
def _json_object_postgresql(element: _JsonObjectText, compiler: Any, **kw: Any) -> str:
    # json, not jsonb: json keeps the keys in the order given.
    return f"json_build_object({compiler.process(element.clauses, **kw)})::text"


def insert_new(db: Session, model: Any) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING` for `model` on this session's database: a row
    that processes starting at once may all try to create (the default plan, a job's lease
    row) is created by the first and left alone by the others, instead of their failing."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).on_conflict_do_nothing()
