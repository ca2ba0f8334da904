"""A complete that committed but whose answer never reached the client, then retried.

A loopback proxy sits between the client and the real server; for the first complete it
forwards the request and resets the connection as the server's answer comes back (the
server answers only after its transaction committed). The client retries, as it must.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import API, Client, MiB, host_port, sha256_hex
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.server import ServerProcess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def proxied_server(
    tmp_path: Path, pg_url: str, make_proxy: Callable[[str, int], TcpProxy]
) -> Iterator[tuple[ServerProcess, TcpProxy]]:
    env = {"DOCSTORE_RUN_JOBS_IN_SERVER": "false", "DOCSTORE_UPLOAD_PART_SIZE": str(5 * MiB)}
    server = start_server(tmp_path, pg_url, env)
    try:
        yield server, make_proxy(*host_port(server.url))
    finally:
        server.stop()


def _complete_losing_the_answer(
    user: Client, proxy: TcpProxy, upload_id: str, parts: list[dict[str, object]]
) -> None:
    """POST complete through the proxy; the answer is dropped on its way back."""
    lossy = user.on(f"http://{proxy.address}")
    proxy.drop_responses()
    dropped = proxy.dropped_responses
    try:
        with pytest.raises(httpx.TransportError):
            lossy.complete(upload_id, parts)
    finally:
        proxy.resume()
        lossy.close()
    assert proxy.dropped_responses > dropped  # the server did answer: it had committed


def _versions(user: Client, doc_id: int) -> list[dict[str, object]]:
    r = user.get(f"{API}/documents/{doc_id}/versions")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_retried_complete_after_a_lost_answer_is_the_same_document_charged_once(
    proxied_server: tuple[ServerProcess, TcpProxy],
) -> None:
    server, proxy = proxied_server
    ann = Client.register(server.url, "ann")

    # A new document from a two-part upload.
    data = os.urandom(5 * MiB + 1234)
    started = ann.initiate("report.bin", data).json()
    parts = ann.put_parts(started, data)
    _complete_losing_the_answer(ann, proxy, started["upload_id"], parts)
    retried = ann.complete(started["upload_id"], parts)
    assert retried.status_code == 201, retried.text
    doc = retried.json()
    again = ann.complete(started["upload_id"], parts)
    assert again.status_code == 201 and again.json()["id"] == doc["id"]
    assert again.json()["current_version"]["id"] == doc["current_version"]["id"]
    assert ann.used_bytes() == len(data)
    names = [i["name"] for i in ann.get(f"{API}/folders/root/children").json()["items"]]
    assert names == ["report.bin"]
    assert len(_versions(ann, doc["id"])) == 1

    # A new version of that document: one version added, charged once.
    v2 = os.urandom(300_000)
    started = ann.initiate("report.bin", v2, document_id=doc["id"]).json()
    parts = ann.put_parts(started, v2)
    _complete_losing_the_answer(ann, proxy, started["upload_id"], parts)
    retried = ann.complete(started["upload_id"], parts)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == doc["id"]
    version = retried.json()["current_version"]
    assert version["checksum_sha256"] == sha256_hex(v2)
    assert _versions(ann, doc["id"])[0]["id"] == version["id"]
    assert len(_versions(ann, doc["id"])) == 2
    assert ann.used_bytes() == len(data) + len(v2)
    assert ann.download(doc["id"]) == v2
    ann.close()
