"""The app's OpenAPI document: what FastAPI generates, completed with what it cannot know.

FastAPI documents every error as `application/json` (and adds a 422 of its own with an array
`detail`), and knows nothing of the authentication `deps.authenticate_request` does by hand.
The server sends every error as `application/problem+json` with a string `detail`
(`schemas.problem_response`), and takes a bearer token or the web UI's session cookie: the
document says so, for every operation at once, so that a new endpoint cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from docstore.schemas import PROBLEM_MEDIA_TYPE, PROBLEM_REF, Problem, describe_status
from docstore.session_cookie import CSRF_HEADER, SESSION_COOKIE

BEARER = "bearerAuth"
COOKIE = "sessionCookie"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from POST /auth/register or /auth/login.",
    },
    COOKIE: {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The web UI's session; a request that changes state must also send "
        f"the page's CSRF token in `{CSRF_HEADER}` (403 csrf_failed otherwise).",
    },
}
# Operations anyone may call (API.md: link-share endpoints need no auth; the link's token is
# in the path and its password, if any, in the X-Link-Password header parameter).
PUBLIC_PATHS = (
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/health",
    # Mailed links: the token in the body is the credential.
    "/api/v1/auth/verify-email",
    "/api/v1/auth/password-reset",
    "/api/v1/auth/password-reset/confirm",
)
# An invitation's token is in its path; a Bearer token there is optional.
PUBLIC_PREFIXES = ("/api/v1/links/", "/api/v1/auth/invitations/")
# Rules the services check (names.clean_name, the checksum and If-Match parsers) that JSON
# Schema can state: documented so that a client, or a fuzzer, can tell a valid value.
SHA256 = {"pattern": "^[0-9a-fA-F]{64}$"}
ETAG = {"pattern": '^(W/)?"?[0-9]+"?$'}
# Not empty, not '.' or '..', no '/', no control character, no surrounding whitespace.
# At most 255 bytes of UTF-8, which JSON Schema cannot count: it says 255 characters.
_NAME_CHAR = r"[^/\x00-\x1f\x7f-\x9f]"
_NAME_EDGE = r"[^\s/\x00-\x1f\x7f-\x9f]"
NAME: dict[str, Any] = {
    "minLength": 1,
    "maxLength": 255,
    "pattern": rf"^(?!\.\.?$){_NAME_EDGE}(?:{_NAME_CHAR}*{_NAME_EDGE})?$",
}
# An email to sign in with never holds NUL (on PostgreSQL the lookup itself is refused, 422;
# on SQLite it matches no account, 401). Other text fields do not say so: SQLite stores NUL
# where PostgreSQL refuses it, a difference the server does not yet remove.
NO_NUL: dict[str, Any] = {"pattern": "^[^\\x00]*$"}
# A display name (names.clean_display_name): some character other than whitespace; no '/',
# control, line or paragraph separator or bidi control character. At most 200 characters
# (after NFC, which JSON Schema cannot apply).
_DISPLAY_CHAR = r"[^/\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
_DISPLAY_SOLID = r"[^\s/\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
DISPLAY_NAME: dict[str, Any] = {
    "minLength": 1,
    "maxLength": 200,
    "pattern": rf"^{_DISPLAY_CHAR}*{_DISPLAY_SOLID}{_DISPLAY_CHAR}*$",
}
HEADER_RULES: dict[str, dict[str, Any]] = {"x-checksum-sha256": SHA256, "if-match": ETAG}
PROPERTY_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("FolderIn", "name"): NAME,
    ("FolderPatch", "name"): NAME,
    ("DocumentPatch", "name"): NAME,
    ("UploadCreate", "filename"): NAME,
    ("UploadCreate", "checksum_sha256"): SHA256,
    ("LoginIn", "email"): NO_NUL,
    ("GroupIn", "name"): DISPLAY_NAME,
}
QUERY_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/v1/files", "name"): NAME,
}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# FastAPI's own 422 (an array `detail`), which the server never sends.
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")


def is_public(path: str) -> bool:
    """Whether the operations of `path` need no credentials."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Document every error response as problem JSON and every operation's credentials."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400 and _is_problem(response):
                    if "HTTPValidationError" in str(response.get("content")):
                        response["description"] = describe_status(int(status))
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
            if not is_public(path):
                operation["security"] = [{BEARER: []}, {COOKIE: []}]
            for parameter in operation.get("parameters", []):
                rules = (
                    HEADER_RULES.get(parameter["name"].lower())
                    if parameter["in"] == "header"
                    else QUERY_RULES.get((path, parameter["name"]))
                )
                if rules:
                    _constrain(parameter["schema"], rules)
    for (model, name), rules in PROPERTY_RULES.items():
        _constrain(schemas[model]["properties"][name], rules)
    text = str(document.get("paths"))
    for name in _FASTAPI_SCHEMAS:
        if f"/{name}'" not in text:
            schemas.pop(name, None)
    return document


def _is_problem(response: dict[str, Any]) -> bool:
    """Whether an error response is the problem JSON (an endpoint may declare its own body,
    as the health check's 503 does)."""
    refs = {c.get("schema", {}).get("$ref") for c in response.get("content", {}).values()}
    return refs <= {None, PROBLEM_REF, "#/components/schemas/HTTPValidationError"}


def _constrain(schema: dict[str, Any], rules: dict[str, Any]) -> None:
    """Add string `rules` to a schema, or to its string branch when it may be null."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch.update(rules)


def install(app: FastAPI) -> None:
    """Make `app.openapi()` (and so /api/v1/openapi.json) serve the completed document."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
