"""Engine, session and the transaction boundary of a request or a background task."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    RowMapping,
    String,
    create_engine,
    event,
    inspect,
    literal_column,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import (
    DeclarativeBase,
    Session,
    configure_mappers,
    make_transient_to_detached,
    sessionmaker,
)
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants BIGINT ids.
IdType = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite hands back the text SQLAlchemy stored ("YYYY-MM-DD HH:MM:SS.ffffff", UTC):
        # one C call makes it an aware datetime, 6x faster than SQLAlchemy's parser plus
        # process_result_value's replace() (a listing page reads 2,000 of these).
        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            return datetime.fromisoformat(value + "+00:00")

        return process


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


_ON_ROLLBACK = "docstore.on_rollback"
_WRITER = "docstore.sqlite_writer"
SQLITE_LOCK_TIMEOUT = 30.0
_AFTER_COMMIT = "docstore.after_commit"
# session.info key: set on sessions of `Database.read_transaction`.
READ_ONLY = "docstore.read_only"


def on_rollback(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` if this session's transaction rolls back (or its commit fails)."""
    session.info.setdefault(_ON_ROLLBACK, []).append(fn)


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` once this session's transaction has committed."""
    session.info.setdefault(_AFTER_COMMIT, []).append(fn)


def _run_hooks(session: Session, name: str) -> None:
    hooks: list[Callable[[], None]] = session.info.pop(name, [])
    session.info.pop(_AFTER_COMMIT if name == _ON_ROLLBACK else _ON_ROLLBACK, None)
    for fn in hooks:
        try:
            fn()
        except Exception:  # best effort: the janitor catches what a hook could not do
            log.exception("transaction hook %s failed", name)


class Base(DeclarativeBase):
    """Declarative base shared by every domain's models."""

    metadata = MetaData(naming_convention=NAMING)


M = TypeVar("M", bound=Base)


def detached(model: type[M], row: RowMapping, prefix: str = "") -> M:
    """An instance of `model` from a Core row holding all its columns (labelled
    `prefix` + name), as if an earlier session had loaded it: attributes read without a
    session, nothing pending to flush, and `Session.get` still loads the row afresh. For
    hot paths where the ORM's loading cost more than the query (bench/PROFILE.md,
    session 5)."""
    # As the ORM's own loading does: a bare instance with its dict filled, no attribute
    # events (the constructor's cost 4x the rest: 22 vs 5 us for a users row).
    mapper = inspect(model)
    if not mapper.configured:  # the constructor would have configured the mappers
        configure_mappers()
    obj = cast(M, mapper.class_manager.new_instance())
    obj.__dict__.update({c.key: row[prefix + c.key] for c in model.__table__.columns})
    make_transient_to_detached(obj)
    return obj


def inserted(db: Session, statement: Any, params: dict[str, Any]) -> Any:
    """Run a Core INSERT ... RETURNING every column of its table's model and put the new
    row in the session as a persistent instance (later changes to it flush as UPDATEs).
    The unit of work's INSERT cost 2-3x the statement on the upload path."""
    row = db.connection().execute(statement, params).one()
    obj = detached(statement.entity_description["entity"], row._mapping)
    db.add(obj)
    return obj


def first_row(db: Session, statement: Any, params: dict[str, Any]) -> Any:
    """The first row of a Core SELECT in the session's transaction, or None; see `rows`."""
    found = rows(db, statement, params, first=True)
    return found[0] if found else None


def rows(db: Session, statement: Any, params: dict[str, Any], *, first: bool = False) -> list[Any]:
    """The rows of a Core SELECT in the session's transaction: tuples readable by position,
    by attribute (the statement's column keys) and through `._mapping`, as SQLAlchemy's.

    On SQLite the statement, compiled once, runs straight on the sqlite3 connection, and
    SQLAlchemy's own bind and result processors convert the values: its execution context
    and result objects cost more than SQLite's work for the reads every request makes (the
    token, a document; bench/PROFILE.md, session 6). Elsewhere it is `Connection.execute`.
    `statement` must be built once (a module constant or a cached builder).
    """
    conn = db.connection()
    if conn.dialect.name != "sqlite":
        result = conn.execute(statement, params)
        if first:
            return [] if (row := result.first()) is None else [row]
        return list(result.all())
    plan = _PLANS.get(id(statement))
    if plan is None or plan.statement is not statement:
        plan = _PLANS[id(statement)] = _Plan.build(statement, conn.dialect)
    values = plan.compiled.construct_params(params)
    args = [proc(values[name]) if proc is not None else values[name] for name, proc in plan.binds]
    driver: Any = conn.connection.driver_connection  # sqlite3.Connection
    cursor = driver.execute(plan.sql, args)
    raw = cursor.fetchmany(1) if first else cursor.fetchall()
    make, procs = plan.row, plan.results
    if not any(procs):
        return [make(r) for r in raw]
    return [make(p(v) if p is not None else v for p, v in zip(procs, r)) for r in raw]  # noqa: B905


class _Plan:
    """A SELECT compiled for SQLite: its SQL, its binds in order with their processors,
    its result processors and a row type over its column keys."""

    def __init__(self, statement: Any, compiled: Any, binds: Any, results: Any, row: Any) -> None:
        self.statement = statement  # kept alive: the plan is found by id()
        self.compiled = compiled
        self.sql = compiled.string
        self.binds = binds
        self.results = results
        self.row = row

    @classmethod
    def build(cls, statement: Any, dialect: Dialect) -> _Plan:
        compiled = statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("rows() takes statements without expanding parameters")
        binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup
        ]
        columns = list(statement.selected_columns)
        keys = list(statement.selected_columns.keys())
        results = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        return cls(statement, compiled, binds, results, _row_type(tuple(keys)))


_PLANS: dict[int, _Plan] = {}


def _row_type(keys: tuple[str, ...]) -> Callable[[Any], Any]:
    index = {key: i for i, key in enumerate(keys)}

    class CompiledRow(tuple[Any, ...]):
        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            try:
                return self[index[name]]
            except KeyError:
                raise AttributeError(name) from None

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(keys, self, strict=True))

    return CompiledRow


def _driver_begin(conn: Any, statement: str) -> None:
    # Straight to sqlite3: SQLAlchemy's execution context for the BEGIN was 7 % of the
    # event loop's time serving GET /documents/{id} (py-spy; bench/PROFILE.md, session 5).
    conn.connection.driver_connection.execute(statement)


def _sqlite_engine(url: str, *, read_only: bool, **kwargs: Any) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's implicit one.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        if read_only:  # SQLite itself refuses any write on these connections
            cur.execute("PRAGMA query_only=ON")
        cur.close()

    if read_only:

        @event.listens_for(engine, "begin")
        def _sqlite_begin_read(conn: Any) -> None:
            # A deferred BEGIN: in WAL mode a reader sees the last commit before its first
            # read and never waits for the writer, nor the writer for it.
            _driver_begin(conn, "BEGIN")

    return engine


def make_read_engine(url: str) -> Engine | None:
    """For a SQLite file, a second engine whose connections can only read and take no
    write lock; None where the main engine serves reads too (PostgreSQL, in-memory SQLite).
    """
    if not url.startswith("sqlite") or url in ("sqlite://", "sqlite:///:memory:"):
        return None
    return _sqlite_engine(url, read_only=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and write-serialising transactions."""
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url, read_only=False, **kwargs)

        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # One transaction at a time per process, queued on a lock: SQLite's own busy
            # handler polls with sleeps of 1 to 100 ms, which under 32 concurrent requests
            # put p99 in the seconds. The lock is this connection's until it goes back to
            # the pool (after COMMIT/ROLLBACK has run); other processes on the same file
            # still meet SQLite's lock and busy_timeout.
            if not conn.info.get(_WRITER):
                if not writer.acquire(timeout=SQLITE_LOCK_TIMEOUT):
                    # What SQLite says after busy_timeout; the app answers it with 503.
                    locked = sqlite3.OperationalError("database is locked")
                    raise OperationalError("BEGIN IMMEDIATE", None, locked)
                conn.info[_WRITER] = True
            # IMMEDIATE takes the write lock up front: a read-then-write transaction can
            # then never fail with "database is locked" when it upgrades (SQLite has no
            # row locks, so this is what stands in for SELECT ... FOR UPDATE).
            _driver_begin(conn, "BEGIN IMMEDIATE")

        @event.listens_for(engine, "checkin")
        def _sqlite_checkin(_dbapi_conn: Any, record: Any) -> None:
            if record.info.pop(_WRITER, False):
                writer.release()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Database:
    """One engine and its session factory; built by the app factory, never at import."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.read_engine = make_read_engine(url) or self.engine
        self.read_sessionmaker = sessionmaker(
            self.read_engine, expire_on_commit=False, info={READ_ONLY: True}
        )
        self._session_info: dict[str, Any] = {}

    def configure_sessions(self, info: dict[str, Any]) -> None:
        """Put `info` (besides what earlier calls put) into every session either session
        factory hands out."""
        self._session_info.update(info)
        self.sessionmaker.configure(info=dict(self._session_info))
        self.read_sessionmaker.configure(info={**self._session_info, READ_ONLY: True})

    @property
    def local_reads(self) -> bool:
        """Whether reads are calls into this process's SQLite library (a file with its own
        read engine), never a network round trip."""
        return self.read_engine is not self.engine

    @property
    def is_postgres(self) -> bool:
        """Whether the backend is PostgreSQL (row locks, advisory locks)."""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits when the block succeeds and rolls back on any error.

        Work outside the database registers hooks: `on_rollback(session, fn)` undoes a
        side effect (e.g. deletes bytes just written) when the transaction does not commit;
        `after_commit(session, fn)` runs once it has.
        """
        yield from self._run(self.sessionmaker())

    @contextmanager
    def read_transaction(self) -> Iterator[Session]:
        """A transaction for a request that only reads: on SQLite it neither takes nor
        waits for the write lock, and the database refuses writes in it. Audit entries
        recorded in it are kept in `session.info` for the caller to write (see
        audit.service.record and audit.group_commit).
        """
        yield from self._run(self.read_sessionmaker())

    def _run(self, session: Session) -> Iterator[Session]:
        session.info[_ON_ROLLBACK] = []
        session.info[_AFTER_COMMIT] = []
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            _run_hooks(session, _ON_ROLLBACK)
            raise
        else:
            _run_hooks(session, _AFTER_COMMIT)
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
