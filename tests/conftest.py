"""Shared fixtures: real databases, the app, real servers, a real S3 protocol server."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.app",
    "tests.fixtures.server",
    "tests.fixtures.s3",
    "tests.fixtures.localstack",
    "tests.fixtures.redis",
]
