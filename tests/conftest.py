"""Shared fixtures: real databases, the app, real servers, a real S3 protocol server."""

import os

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
