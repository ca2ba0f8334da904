"""schemathesis over the app's own OpenAPI document, against the real server process.

The document is the one `create_app()` builds, which is what the server serves at
/api/v1/openapi.json (`test_served_document_is_the_fuzzed_one` proves it); it is loaded at
import so that `schema.parametrize()` can make one test per operation. The requests go to
a real `docstore serve` on SQLite and on PostgreSQL, as a signed-in user who already owns
folders, documents, versions, shares, comments and a trashed item, so that small generated
ids hit real rows. Stateless: the examples, coverage and fuzzing phases per operation.
Stateful: `schema.as_state_machine()`, sequences over the links schemathesis infers.
Checks: no 5xx, every response matches its declared schema, every status is declared.

Excluded operations, and why:
- POST /auth/logout revokes the fuzzing user's own token: every later case would be 401.
- /admin/*: the fuzzing user is not an admin, so they can only answer 401/403; the model
  test (tests/model) runs retention as an admin, and fuzzing plans and quotas as an admin
  would starve the other operations of quota.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from docstore.app import create_app
from docstore.config import Settings
from tests.fixtures import databases
from tests.fixtures.server import ServerProcess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# Bounded so the whole module stays within about three minutes on two cores.
MAX_EXAMPLES = 12
STATEFUL_EXAMPLES = 20
STATEFUL_STEPS = 10
EXCLUDED = r"^/api/v1/(auth/logout|admin/)"
# No shrinking: replaying against a server whose state moved on is not deterministic (the
# stateful run then reports FlakyStrategyDefinition instead of the failure); the failing
# request is printed with a curl command anyway.
PHASES = (Phase.explicit, Phase.generate)
SETTINGS = settings(
    phases=PHASES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    max_examples=MAX_EXAMPLES,
    database=None,
    derandomize=False,
)


def app_document() -> dict[str, Any]:
    """The OpenAPI document of the app, built without starting it."""
    app = create_app(Settings(data_dir=Path("/nonexistent"), run_jobs_in_server=False))
    return dict(app.openapi())


DOCUMENT = app_document()
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
        },
    }
)
# schemathesis adds the links it infers into the dict it is given: hand it a copy, so DOCUMENT
# stays the app's own document for test_served_document_is_the_fuzzed_one in any test order.
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=CONFIG).exclude(
    path_regex=EXCLUDED
)


def seed(url: str) -> dict[str, str]:
    """A user with folders, documents, versions, shares, a comment and a trashed document."""
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30) as c:
        r = c.post(
            "/auth/register",
            json={"email": "fuzz@example.com", "name": "Fuzz", "password": "fuzz-password"},
        )
        assert r.status_code == 201, r.text
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        r = c.post(
            "/auth/register",
            json={"email": "other@example.com", "name": "Other", "password": "other-password"},
        )
        assert r.status_code == 201, r.text
        c.headers.update(auth)
        folder = c.post("/folders", json={"name": "projects", "parent_id": None}).json()
        assert c.post("/folders", json={"name": "in", "parent_id": folder["id"]}).is_success
        docs = []
        for i, data in enumerate([b"hello\n", b"line one\nline two\n", b"%PDF-1.4 x"]):
            r = c.post("/files", params={"name": f"doc{i}.txt"}, content=data)
            assert r.status_code == 201, r.text
            docs.append(r.json())
        r = c.post("/files", params={"name": "f.txt", "folder_id": folder["id"]}, content=b"x")
        assert r.status_code == 201, r.text
        first = docs[0]
        r = c.post(
            f"/documents/{first['id']}/versions",
            params={"base_version_id": first["current_version"]["id"]},
            content=b"hello again\n",
        )
        assert r.status_code == 201, r.text
        assert c.post(f"/documents/{first['id']}/comments", json={"body": "ok"}).is_success
        r = c.post(
            "/shares",
            json={"document_id": first["id"], "permission": "VIEW", "email": "other@example.com"},
        )
        assert r.status_code == 201, r.text
        r = c.post("/shares", json={"folder_id": folder["id"], "permission": "EDIT", "link": True})
        assert r.status_code == 201, r.text
        assert c.delete(f"/documents/{docs[2]['id']}").status_code == 204
    return auth


class Target:
    """A seeded server and the fuzzing user's header."""

    def __init__(self, server: ServerProcess, auth: dict[str, str]) -> None:
        self.server = server
        self.url = server.url
        self.auth = auth


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", marks=pytest.mark.xdist_group("fuzz-sqlite")),
        pytest.param("postgres", marks=pytest.mark.xdist_group("fuzz-postgres")),
    ],
)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """One seeded real server per database for the whole module."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    pg_name = None
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        (tmp / "fuzz.db").write_bytes(template.read_bytes())
        url = f"sqlite:///{tmp / 'fuzz.db'}"
    else:
        pg_template = request.getfixturevalue("pg_template")
        pg_name = f"docstore_fuzz_{os.getpid()}"
        with databases._pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{pg_name}" TEMPLATE "{pg_template}"')
        url = databases.PG_URL_BASE + pg_name
    server = start_server(tmp, url)
    try:
        yield Target(server, seed(server.url))
    finally:
        server.stop()
        if pg_name is not None:
            with databases._pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-6000:]


def test_served_document_is_the_fuzzed_one(target: Target) -> None:
    """The server's /api/v1/openapi.json is the document the tests below are made from."""
    served = httpx.get(f"{target.url}/api/v1/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@SETTINGS
def test_stateless(case: Any, target: Target) -> None:
    """Every generated request: no 5xx, a declared status, a body that matches its schema."""
    case.call_and_validate(base_url=target.url, headers=target.auth, checks=CHECKS, timeout=30)


def test_stateful(target: Target) -> None:
    """Sequences that feed one response's ids into the next request (inferred links).

    Failures are collected, not raised inside the machine: hypothesis would replay the
    failing sequence against a server whose state has moved on, and report that replay's
    divergence (FlakyStrategyDefinition) instead of the failure. For the same reason a
    run that hypothesis ends as Flaky is simply run again (at most three runs).
    """
    failures: list[str] = []

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": target.url, "headers": target.auth, "timeout": 30}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:
                failures.append(f"{case.method} {case.formatted_path}: {exc}"[:3000])

    for _ in range(3):
        try:
            Machine.run(
                settings=settings(
                    phases=PHASES,
                    max_examples=STATEFUL_EXAMPLES,
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    database=None,
                )
            )
            break
        except Flaky:
            # Hypothesis saw the same draws lead elsewhere: the server's state, not a
            # failure (schemathesis' own engine treats it the same way). Run again.
            continue
    assert not failures, "\n\n".join(failures[:5])
