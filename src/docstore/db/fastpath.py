"""Fast paths past the ORM and SQLAlchemy's execution layer, for the reads and inserts a
profile showed cost more than the database's own work (bench/PROFILE.md). Each is named by
its import: `docstore.db.fastpath.rows`, `first_row`, `inserted`, `detached`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import RowMapping, bindparam, insert, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, configure_mappers, make_transient_to_detached

from docstore.db.columns import Base

M = TypeVar("M", bound=Base)


def detached(model: type[M], row: RowMapping, prefix: str = "") -> M:
    """An instance of `model` from a Core row holding all its columns (labelled
    `prefix` + name), as if an earlier session had loaded it: attributes read without a
    session, nothing pending to flush, and `Session.get` still loads the row afresh. For
    hot paths where the ORM's loading cost more than the query (bench/PROFILE.md,
    session 5)."""
    # As the ORM's own loading does: a bare instance with its dict filled, no attribute
    # events (the constructor's cost 4x the rest: 22 vs 5 us for a users row).
    shape = _SHAPES.get((model, prefix))
    if shape is None:
        mapper = inspect(model)
        if not mapper.configured:  # the constructor would have configured the mappers
            configure_mappers()
        keys = [(c.key, prefix + c.key) for c in model.__table__.columns]
        shape = _SHAPES[(model, prefix)] = (mapper.class_manager.new_instance, keys)
    new_instance, keys = shape
    obj = cast(M, new_instance())
    obj.__dict__.update({key: row[label] for key, label in keys})
    make_transient_to_detached(obj)
    return obj


# By (model, prefix): its instance factory and its columns' keys with their row labels.
_SHAPES: dict[tuple[type[Any], str], tuple[Callable[[], Any], list[tuple[str, str]]]] = {}


def inserted(db: Session, statement: Any, params: dict[str, Any]) -> Any:
    """Run a Core INSERT ... RETURNING every column of its table's model and put the new
    row in the session as a persistent instance (later changes to it flush as UPDATEs).
    The unit of work's INSERT cost 2-3x the statement on the upload path."""
    row = db.connection().execute(statement, params).one()
    obj = detached(statement.entity_description["entity"], row._mapping)
    db.add(obj)
    return obj


def insert_returning(model: type[Base], bound: tuple[str, ...]) -> Any:
    """For `inserted`: INSERT ... RETURNING every column of `model`'s table, the `bound`
    columns as bind parameters of those names and every other column that has a constant
    `default=` in the model at that value, so a new column is declared in one place."""
    table: Any = model.__table__
    values: dict[str, Any] = {key: bindparam(key) for key in bound}
    for column in table.columns:
        default = column.default
        if column.key not in values and default is not None and default.is_scalar:
            values[column.key] = default.arg
    return insert(model).values(**values).returning(*table.c)


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
    plan = plan_for(statement, conn.dialect)
    driver: Any = conn.connection.driver_connection  # sqlite3.Connection
    cursor = driver.execute(plan.sql, plan.args(params))
    raw = cursor.fetchmany(1) if first else cursor.fetchall()
    return [plan.row(r) for r in raw] if plan.convert else [plan.make(r) for r in raw]


class Plan:
    """A SELECT compiled once for a driver with positional parameters (sqlite3's `?`,
    psycopg's raw `$1`): its SQL, its binds in order with their processors, its result
    processors and a row type over its column keys: what SQLAlchemy's execution does per
    call, done once."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a plan takes statements without expanding parameters")
        if compiled.positiontup is None:
            raise ValueError("a plan takes a dialect with positional parameters")
        self.statement = statement  # kept alive: the plan is found by id()
        self.compiled = compiled
        self.sql: str = compiled.string
        self.binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup
        ]
        columns = list(statement.selected_columns)
        keys = tuple(statement.selected_columns.keys())
        self.results = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]
        self.make = _row_type(keys)
        # Only the columns with a processor are converted: a walk's row has ~50 columns
        # and a few dates, and a pass over every value was ~10 % of a small DAV read.
        self.converted = [(i, p) for i, p in enumerate(self.results) if p is not None]
        self.convert = bool(self.converted)

    def args(self, params: dict[str, Any]) -> list[Any]:
        """The driver's parameters, in order."""
        values = self.compiled.construct_params(params)
        return [p(values[n]) if p is not None else values[n] for n, p in self.binds]

    def row(self, raw: Any) -> Any:
        """One driver row as SQLAlchemy would return it (readable by position, attribute
        and `_mapping`)."""
        if not self.convert:
            return self.make(raw)
        values = list(raw)
        for i, process in self.converted:
            values[i] = process(values[i])
        return self.make(values)


# Plans by id() of their statement and the driver's paramstyle (a plan keeps its statement
# alive, so an id is never reused while its plan is here). The statements are module
# constants and cached builders' results, a few dozen; the bound keeps a caller that builds
# one per call from growing it without end (the oldest plan goes first, to be built again
# if it is still in use).
MAX_PLANS = 512
_PLANS: dict[tuple[int, str], Plan] = {}


def plan_for(statement: Any, dialect: Dialect) -> Plan:
    """The plan of `statement` for `dialect`'s driver, built on first use."""
    key = (id(statement), dialect.paramstyle)
    plan = _PLANS.get(key)
    if plan is None or plan.statement is not statement:
        while len(_PLANS) >= MAX_PLANS:
            _PLANS.pop(next(iter(_PLANS)), None)
        plan = _PLANS[key] = Plan(statement, dialect)
    return plan


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
