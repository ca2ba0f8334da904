"""Keyset pagination: opaque cursors over (sort value, id) pairs."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, tuple_
from sqlalchemy.sql import ColumnElement

from docstore.errors import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

T = TypeVar("T")


def encode_cursor(data: dict[str, Any]) -> str:
    """An opaque, URL-safe cursor."""
    raw = json.dumps(data, separators=(",", ":"), default=_default).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The cursor's data (None: no cursor, the first page), or 400 bad_request when it was
    not made by us. An empty `cursor=` is refused too: it is no cursor we ever handed out, and
    reading it as "the first page" would restart a client's walk without telling it."""
    if cursor is None:
        return None
    if not cursor:
        raise BadRequest("The cursor is empty: leave it out for the first page.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("The cursor is not valid.") from exc
    if not isinstance(data, dict):
        raise BadRequest("The cursor is not valid.")
    return data


def cursor_int(cursor: str | None, key: str) -> int | None:
    """The integer position `key` of a cursor from `page` (None: the first page), or 400
    bad_request when the cursor is not one of ours."""
    data = decode_cursor(cursor)
    if data is None:
        return None
    value = data.get(key)
    if not isinstance(value, int):
        raise BadRequest("The cursor is not valid.")
    return value


def page(
    rows: Sequence[T], limit: int, position: Callable[[T], dict[str, Any]]
) -> tuple[list[T], str | None]:
    """A page from `rows` fetched with `limit + 1`: the first `limit`, and the cursor after
    the last of them (`position` of that row, encoded) when there are more."""
    if len(rows) <= limit:
        return list(rows), None
    return list(rows[:limit]), encode_cursor(position(rows[limit - 1]))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value))


def after(col: Any, id_col: Any, desc: bool) -> ColumnElement[bool]:
    """Rows strictly after the cursor in the (col, id) order, ascending or descending; the
    cursor's position is bound as `after_value` and `after_id`.

    A row-value comparison, `(col, id) > (value, last_id)`: SQLite and PostgreSQL both seek
    an index on (…, col) straight to the cursor, where the equivalent OR form made SQLite
    walk every earlier entry of the folder (page 10 of 10,000 cost 1.7 times page 1).
    """
    key = tuple_(col, id_col)
    bound = tuple_(
        bindparam("after_value", type_=col.type), bindparam("after_id", type_=id_col.type)
    )
    return key < bound if desc else key > bound
