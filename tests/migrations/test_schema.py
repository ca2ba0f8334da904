"""The migrations build exactly the schema the models describe, on both databases, and
downgrade cleanly to the start and back."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

import docstore.models  # noqa: F401  every domain's tables on Base.metadata
from docstore import migrate
from docstore.db import Base
from docstore.search.models import modelled


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _modelled})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _modelled(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
    """Leave out the search index's FTS5 tables, expression indexes and tsvector column."""
    table = getattr(getattr(obj, "table", None), "name", None)
    return modelled(name, type_, table)


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    assert _differences(database_url) == []


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    config = migrate.alembic_config(database_url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    assert _differences(database_url) == []
