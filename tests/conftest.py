"""Shared fixtures: real databases, the app, real servers, a real S3 protocol server."""

import os

import pytest

# The transaction guard (docstore.db): a task that opens a transaction while it holds one
# fails at once instead of waiting 30 s for SQLite's write lock. Servers get it too.
os.environ.setdefault("DOCSTORE_TRANSACTION_GUARD", "1")

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.app",
    "tests.fixtures.server",
    "tests.fixtures.mail",
    "tests.fixtures.s3",
    "tests.fixtures.localstack",
    "tests.fixtures.redis",
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make `--dist loadgroup` (scripts/test) honour `xdist_group` marks again.

    pytest-xdist puts a test's group into its node id (`test[x]@group`) by writing
    `item._nodeid`; since pytest 9.2 the id is `item._id` and that write is lost, so each test
    of a group went to any worker and a module-scoped server started once per worker (one
    per test, often). Carry xdist's id over where it was lost.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        wanted = getattr(item, "_nodeid", None)
        if isinstance(wanted, str) and wanted != item.nodeid:
            item._id = NodeId.parse(wanted)
