"""What the sync tests share: users on the shared server, and trees read from both sides."""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import httpx

from docstore.client import DocstoreClient, NotFound
from docstore.client.models import Id
from docstore.client.sync import Report, Syncer
from docstore.client.sync.state import STATE_DIR
from tests.fixtures.server import ServerProcess

_n = itertools.count()


def new_client(server: ServerProcess, name: str = "syncer") -> DocstoreClient:
    """A fresh user on the shared server (each test looks only at its own files)."""
    email = f"{name}-{uuid.uuid4().hex[:10]}@example.com"
    r = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"email": email, "name": name, "password": "pass-word-1"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    return DocstoreClient(server.url, r.json()["token"])


def same_user(client: DocstoreClient) -> DocstoreClient:
    """A second client (another laptop) of the same account."""
    return DocstoreClient(client.base_url, client.token)


def local_tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` but the sync state, by relative path."""
    out: dict[str, bytes] = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (Path(top) == root and d == STATE_DIR)]
        for f in files:
            p = Path(top) / f
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def remote_files(client: DocstoreClient, folder_id: Id) -> dict[str, Id]:
    """Every document under a remote folder: relative path → document id."""
    out: dict[str, Id] = {}
    stack: list[tuple[str, Id]] = [("", folder_id)]
    while stack:
        rel, folder = stack.pop()
        for child in client.iter_children(folder):
            crel = f"{rel}/{child.name}" if rel else child.name
            if child.kind == "folder":
                stack.append((crel, child.id))
            else:
                out[crel] = child.id
    return out


def remote_tree(client: DocstoreClient, path: str) -> dict[str, bytes]:
    """Every document under the remote folder `path`, with its current bytes."""
    try:
        root = client.resolve(path)
    except NotFound:
        return {}
    out: dict[str, bytes] = {}
    for rel, doc in remote_files(client, root.id).items():
        link = client.download_link(doc)
        out[rel] = client.http.get(link.url, follow_redirects=True).content
    return out


def sync(client: DocstoreClient, local: Path, remote: str) -> Report:
    with Syncer(client, local, remote) as s:
        return s.run_once()


def settle(pairs: list[tuple[DocstoreClient, Path]], remote: str, rounds: int = 6) -> list[Report]:
    """Sync every client in turn until a whole pass changes nothing (bounded)."""
    reports: list[Report] = []
    for _ in range(rounds):
        changed = False
        for client, local in pairs:
            report = sync(client, local, remote)
            reports.append(report)
            changed = changed or report.changed or not report.ok
        if not changed:
            return reports
    raise AssertionError(f"no quiescence after {rounds} passes: {reports[-len(pairs) :]}")
