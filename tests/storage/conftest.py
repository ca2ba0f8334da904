"""Blob store fixtures: every backend, with the local one served over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from docstore.storage.base import BlobStore
from docstore.storage.endpoints import router
from docstore.storage.factory import make_blob_store
from docstore.storage.local import LocalBlobStore
from tests.fixtures import s3 as s3_fixtures

# Also registered globally when tests/conftest.py lists tests.fixtures.s3 as a plugin;
# naming them here keeps this suite self-contained either way.
moto_endpoint = s3_fixtures.moto_endpoint
s3_storage_url = s3_fixtures.s3_storage_url

SECRET = b"storage-test-secret"


@dataclass
class StorageServer:
    """A uvicorn server in a thread, serving the storage router for `app.state.blob_store`."""

    app: FastAPI
    url: str


@pytest.fixture(scope="session")
def storage_server() -> Iterator[StorageServer]:
    """One loopback server per session (per xdist worker); tests swap the store it serves."""
    app = FastAPI()
    app.include_router(router)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the storage test server did not start")
        time.sleep(0.01)
    try:
        yield StorageServer(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def local_store(tmp_path: Path, storage_server: StorageServer) -> LocalBlobStore:
    """A local store under tmp_path, built by the factory and served by the test server."""
    store = make_blob_store(
        f"file://{tmp_path / 'blobs'}", public_url=storage_server.url, secret_key=SECRET
    )
    assert isinstance(store, LocalBlobStore)
    storage_server.app.state.blob_store = store
    return store


@pytest.fixture
def s3_store(s3_storage_url: str, storage_server: StorageServer) -> BlobStore:
    """An S3 store on a fresh bucket of the session's moto server."""
    store = make_blob_store(s3_storage_url, public_url=storage_server.url, secret_key=SECRET)
    # The storage endpoints must refuse to serve anything but a local store.
    storage_server.app.state.blob_store = store
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> BlobStore:
    """Each backend in turn: the conformance suite runs once per store."""
    return request.getfixturevalue(f"{request.param}_store")  # type: ignore[no-any-return]
