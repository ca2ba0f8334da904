"""Signed download URLs and revoked shares (issue 21, item 7).

On local storage docstore serves its signed URLs itself, so a URL handed out through a share
or a link is checked against that share again when it is used: once the share is revoked the
URL answers 404, in every server process, while the owner's own URLs keep working. (On S3 a
presigned URL lives out its TTL: documented, not testable here.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient

from docstore.app import create_app
from tests.attacks.deployment import API, BACKENDS, From, code, deploy
from tests.fixtures.app import BASE, Api, make_settings
from tests.fixtures.mail import verify_over_http

pytestmark = pytest.mark.e2e


def on(url: str, server: str) -> str:
    """The same signed URL, sent to another server process (they share the signing key)."""
    return urlunsplit(urlsplit(url)._replace(netloc=urlsplit(server).netloc))


def without(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode(query)))


class Person:
    """A registered user speaking to the deployment."""

    def __init__(self, client: From, name: str) -> None:
        self.client = client
        r = client.post(
            f"{API}/auth/register",
            json={"email": f"{name}@example.com", "name": name, "password": "correct horse"},
        )
        assert r.status_code == 201, r.text
        self.email = r.json()["user"]["email"]
        verify_over_http(str(client.clients[0].base_url), self.email)
        self.auth = {"Authorization": f"Bearer {r.json()['token']}"}

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        r = self.client.request(method, path, headers=self.auth, **kw)
        assert r.status_code == expect, r.text
        return r.json() if r.content else None

    def url(self, doc_id: int) -> str:
        """A signed download URL for the current version."""
        out = self.call("GET", f"{API}/documents/{doc_id}/download?redirect=false", 200)
        return str(out["url"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_revoked_shares_signed_urls_stop_at_once(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    urls = deploy(request, tmp_path, backend, {})
    ann = Person(From(request, urls, "127.0.0.1"), "ann")
    bob = Person(From(request, urls, "127.0.0.2", start=1), "bob")
    anon = From(request, urls, "127.0.0.3")

    def fetch(url: str) -> tuple[int, bytes]:
        r = anon.get(url)
        return r.status_code, r.content if r.status_code == 200 else b""

    def upload(name: str, data: bytes, folder: int | None = None) -> int:
        params: dict[str, Any] = {"name": name}
        if folder is not None:
            params["folder_id"] = folder
        return int(ann.call("POST", f"{API}/files", 201, params=params, content=data)["id"])

    team = ann.call("POST", f"{API}/folders", 201, json={"name": "team", "parent_id": None})
    direct = upload("direct.txt", b"direct")
    inside = upload("inside.txt", b"inside", team["id"])
    linked = upload("linked.txt", b"linked")
    owners = {doc: ann.url(doc) for doc in (direct, inside, linked)}

    def share(**body: Any) -> dict[str, Any]:
        return dict(ann.call("POST", f"{API}/shares", 201, json={"permission": "VIEW", **body}))

    by_user = share(document_id=direct, email=bob.email)
    by_folder = share(folder_id=team["id"], email=bob.email)
    by_link = share(document_id=linked, link=True)
    out = anon.get(f"{API}/links/{by_link['token']}/download", params={"redirect": "false"})
    assert out.status_code == 200, out.text
    handed_out = {"user": bob.url(direct), "folder": bob.url(inside), "link": out.json()["url"]}
    for url in handed_out.values():
        assert fetch(url)[0] == 200
        for server in urls:  # warm every process (and its permission cache)
            assert fetch(on(url, server))[0] == 200

    for share_row in (by_user, by_folder, by_link):
        ann.call("DELETE", f"{API}/shares/{share_row['id']}", 204)
    for kind, url in handed_out.items():
        for server in urls:
            r = anon.get(on(url, server))
            assert code(r) == (404, "not_found"), (kind, r.text)
            assert b"direct" not in r.content and b"inside" not in r.content

    # The owner's own URLs, handed out before all this, keep working everywhere.
    for doc, url in owners.items():
        for server in urls:
            assert fetch(on(url, server))[0] == 200, doc

    # A share to the trash: the sharee's URL ends with the document's visibility.
    again = share(document_id=direct, email=bob.email)
    url = bob.url(direct)
    assert fetch(url) == (200, b"direct")
    ann.call("DELETE", f"{API}/documents/{direct}", 204)
    assert code(anon.get(url)) == (404, "not_found")
    assert again["is_active"]

    # The grant a URL carries is signed: it cannot be dropped to escape the check.
    by_folder = share(folder_id=team["id"], email=bob.email)
    url = bob.url(inside)
    ann.call("DELETE", f"{API}/shares/{by_folder['id']}", 204)
    assert code(anon.get(url)) == (404, "not_found")
    assert code(anon.get(without(url, "grant"))) == (403, "forbidden")


def test_the_signed_url_ttl_is_a_setting(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, signed_url_ttl_seconds=42)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        ann = Api(client).register("ann")
        doc = ann.upload("t.txt", b"ttl").json()
        before = time.time()
        out = ann.get(f"{API}/documents/{doc['id']}/download", params={"redirect": "false"}).json()
        expires = int(dict(parse_qsl(urlsplit(out["url"]).query))["expires"])
        assert before + 40 <= expires <= time.time() + 42
        stated = datetime.fromisoformat(out["expires_at"]).astimezone(UTC).timestamp()
        assert before + 40 <= stated <= time.time() + 42
