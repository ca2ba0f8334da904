"""schemathesis over the app's own OpenAPI document, against the real server process.

The document is the one `create_app()` builds, which is what the server serves at
/api/v1/openapi.json (`test_served_document_is_the_fuzzed_one` proves it); it is loaded at
import so that `schema.parametrize()` can make one test per operation. The requests go to
a real `docstore serve` on SQLite and on PostgreSQL, as a signed-in user who already owns
folders, documents, versions, shares, comments and a trashed item, so that small generated
ids hit real rows. Stateless: the examples, coverage and fuzzing phases per operation.
Stateful: `schema.as_state_machine()`, sequences over the links schemathesis infers.
Checks: every default check of schemathesis (no 5xx; status, content type, headers and body
as declared; invalid data refused and valid data accepted; a deleted resource stays gone; a
created one is there; an operation that declares credentials refuses a request without
them), plus `problem_details` (every error is problem JSON naming its own status and code).

Excluded operations, and why:
- Every operation that revokes the fuzzing user's own token (POST /auth/logout, and the
  account issue's password change and reset, session revocation): every later case would
  be 401. The target fixture asserts that the token still works at the end, so an
  operation that revokes it and is not excluded here fails the module.
- /admin/*: the fuzzing user is not an admin, so they can only answer 401/403; the model
  test (tests/model) runs retention as an admin, and fuzzing plans and quotas as an admin
  would starve the other operations of quota (admin disable/enable revoke tokens too).
- /webhooks: a fuzzed URL makes the server resolve random host names and its worker POST
  to whatever public address a webhook names; tests talk only to 127.0.0.1 (tests/webhooks
  covers validation, including every malformed and refused URL class).
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
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.specs.openapi.checks import positive_data_acceptance

from docstore.app import create_app
from docstore.config import Settings
from tests.fixtures import databases
from tests.fixtures.server import ServerProcess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

# Bounded so the whole module stays within about three minutes on two cores.
MAX_EXAMPLES = 12
STATEFUL_EXAMPLES = 20
STATEFUL_STEPS = 10
EXCLUDED = (
    r"^/api/v1/(auth/logout|auth/password-reset|users/me/password|users/me/sessions|admin/"
    r"|webhooks)"
)
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
# positive_data_acceptance expects a schema-valid request to succeed (or 401/403/404/409/
# 429). These operations have rules JSON Schema cannot state (the document states the ones
# it can: names, checksums, If-Match), so there a valid-looking request may also get 400/422.
SEMANTIC_RULES = {
    ("POST", "/api/v1/auth/register"): "the email's domain must be able to receive mail "
    "(email-validator refuses special-use names such as .test)",
    ("POST", "/api/v1/users/me/email"): "as register's email; and not the account's own",
    ("POST", "/api/v1/shares"): "exactly one of document_id and folder_id; not the root folder",
    ("GET", "/api/v1/folders/{folder_id}/shares"): "the root folder cannot be shared",
    ("POST", "/api/v1/uploads/{upload_id}/complete"): "each part number at most once",
    ("POST", "/api/v1/uploads"): "base_version_id only with document_id; size_bytes within "
    "the configured file limit (413)",
    ("POST", "/api/v1/files"): "X-Checksum-SHA256 must be the hash of the bytes sent",
    ("POST", "/api/v1/documents/{document_id}/versions"): "X-Checksum-SHA256 must be the "
    "hash of the bytes sent; base_version_id and If-Match must name the same version",
    ("POST", "/api/v1/links/{token}/versions"): "as POST /documents/{document_id}/versions",
    ("POST", "/api/v1/groups"): "a name is at most 200 characters after NFC normalisation",
    ("POST", "/api/v1/groups/{group_id}/members"): "exactly one of email and user_id",
}
# A mailed link's token is one the server issued, unused and unexpired: any other is 400
# bad_request (API.md "Accounts"). JSON Schema cannot say which tokens were mailed.
MAILED_TOKENS = {
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/invitations/{token}/accept"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
}
SEMANTIC_STATUSES = {
    **{operation: ["422"] for operation in SEMANTIC_RULES},
    **{operation: ["400", "422"] for operation in MAILED_TOKENS},
    ("POST", "/api/v1/uploads"): ["413", "422"],
}
# Every listing's cursor is opaque: one the server did not issue is 400 bad_request.
CURSOR_OPERATIONS = {
    (method.upper(), path)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    if any(p["name"] == "cursor" for p in operation.get("parameters", []))
}
# DELETE of a document or folder moves it to the trash (API.md): its owner still restores
# and purges it, and lists (to revoke) its shares (sharing.service._owned_target takes
# trashed items). use_after_free would call each of those a deleted resource still served.
ON_TRASHED_ITEMS = [
    "POST /api/v1/documents/{document_id}/restore",
    "POST /api/v1/folders/{folder_id}/restore",
    "GET /api/v1/documents/{document_id}/shares",
    "GET /api/v1/folders/{folder_id}/shares",
    "DELETE /api/v1/trash/{document_id}",
    "DELETE /api/v1/trash/folders/{folder_id}",
]
DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# Invalid data refused: schemathesis's own list, and 413 too_large, which is how the server
# refuses a JSON body over its 1 MiB limit (limits.BodyLimits) before reading what is in it
# (schemathesis made one, a `parts` list far over its maxItems, to complete an upload).
NEGATIVE_REFUSED = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx",
]  # fmt: skip


# 507 `quota_exceeded` (API.md) is the right answer to an upload declared bigger than the
# owner's quota (the free plan's 10 GiB; size_bytes may go up to max_file_bytes, 5 TiB):
# not a server error there. problem_details still holds it to problem JSON.
QUOTA_OPERATIONS = {("POST", "/api/v1/uploads")}


def accepting(method: str, path: str, *extra: str) -> dict[str, Any]:
    """A schemathesis per-operation setting: positive data may also get `extra` statuses."""
    checks: dict[str, Any] = {
        "positive_data_acceptance": {"expected-statuses": [*DEFAULT_ACCEPTED, *extra]}
    }
    if (method, path) in QUOTA_OPERATIONS:
        checks["not_a_server_error"] = {"expected-statuses": ["2xx", "3xx", "4xx", "507"]}
    return {"include-name": f"{method} {path}", "checks": checks}


CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "checks": {"negative_data_rejection": {"expected-statuses": NEGATIVE_REFUSED}},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
        },
        "operations": [
            accepting(method, path, "400", *SEMANTIC_STATUSES.get((method, path), []))
            for method, path in sorted(set(SEMANTIC_RULES) | CURSOR_OPERATIONS | MAILED_TOKENS)
        ]
        + [
            {"include-name": name, "checks": {"use_after_free": {"enabled": False}}}
            for name in ON_TRASHED_ITEMS
        ],
    }
)
# schemathesis adds the links it infers into the dict it is given: hand it a copy, so DOCUMENT
# stays the app's own document for test_served_document_is_the_fuzzed_one in any test order.
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=CONFIG).exclude(
    path_regex=EXCLUDED
)


LEAKS = ("Traceback", "sqlalchemy", "psycopg", "sqlite3", "storage_key")


def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error answers RFC 9457 problem JSON whose `status` is the response's and which
    names a `code`; no error body carries a trace, SQL driver or storage key."""
    if response.status_code < 400:
        return None
    media_type = response.headers.get("content-type", [""])[0].split(";")[0]
    assert media_type == "application/problem+json", f"error sent as {media_type!r}"
    body = response.json()
    assert body["status"] == response.status_code, body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("detail"), str), body
    leaked = [word for word in LEAKS if word in response.text]
    assert not leaked, f"{leaked} in {response.text[:500]}"
    return None


EXTRA_CHECKS = [problem_details]


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
        auth = seed(server.url)
        yield Target(server, auth)
        # No fuzzed operation may have revoked the token (see EXCLUDED): were it revoked,
        # every case after that one answered 401 and tested nothing.
        r = httpx.get(f"{server.url}/api/v1/users/me", headers=auth, timeout=30)
        assert r.status_code == 200, f"the fuzzing user's token stopped working: {r.text}"
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
    """Every generated request passes every default check and `problem_details`."""
    case.call_and_validate(
        base_url=target.url, headers=target.auth, additional_checks=EXTRA_CHECKS, timeout=30
    )


def test_stateful(target: Target) -> None:
    """Sequences that feed one response's ids into the next request (inferred links).

    Failures are collected, not raised inside the machine: hypothesis would replay the
    failing sequence against a server whose state has moved on, and report that replay's
    divergence (FlakyStrategyDefinition) instead of the failure. For the same reason each
    run has one example (STATEFUL_EXAMPLES runs), and a run that hypothesis still ends with
    FlakyStrategyDefinition is counted, not failed; any other error, FlakyFailure included,
    is the test's failure. The test fails if no run completed or no step was executed.
    """
    failures: list[str] = []
    steps = 0

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": target.url, "headers": target.auth, "timeout": 30}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            nonlocal steps
            steps += 1
            # A link may carry a null from one response (a root folder's parent_id) into the
            # next request's path: `/trash/folders/None` is not schema-valid, and its 422 is
            # right, so positive_data_acceptance does not apply to that request.
            null_in_path = any(v is None for v in (case.path_parameters or {}).values())
            try:
                case.validate_response(
                    response,
                    additional_checks=EXTRA_CHECKS,
                    excluded_checks=[positive_data_acceptance] if null_in_path else None,
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )
            except Exception as exc:
                failures.append(f"{case.method} {case.formatted_path}: {exc}"[:3000])

    # One example per run: hypothesis only replays a choice sequence (and so can diverge
    # from a server whose state moved on) when a run has several examples to mutate.
    completed = 0
    diverged: list[str] = []
    for _ in range(STATEFUL_EXAMPLES):
        try:
            Machine.run(
                settings=settings(
                    phases=PHASES,
                    max_examples=1,
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    database=None,
                )
            )
            completed += 1
        except FlakyStrategyDefinition as exc:
            # Hypothesis saw the same draws lead elsewhere: the server's state, not a
            # failure (schemathesis' own engine treats it the same way).
            diverged.append(str(exc)[:500])
    if completed == 0:
        pytest.fail(f"no stateful run completed in {STATEFUL_EXAMPLES}: " + "\n".join(diverged))
    assert steps > 0, "the state machine executed no step"
    assert not failures, "\n\n".join(failures[:5])
