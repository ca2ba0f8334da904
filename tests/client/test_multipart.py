"""Multipart uploads through the client: parallel parts, `skip_upload`, retries, resume."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from docstore.client import ConnectionFailed, DocstoreClient, transfer
from tests.fixtures.app import BASE, Api

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries back off for milliseconds here, not seconds."""
    monkeypatch.setattr(transfer, "RETRY_DELAY", 0.001)


class FlakyParts(httpx.BaseTransport):
    """The app's own transport, except that chosen part PUTs first fail like a dropped link."""

    def __init__(self, inner: httpx.BaseTransport, fail: dict[int, int]) -> None:
        self.inner = inner
        self.fail = dict(fail)  # part number → failures left
        self.puts: Counter[int] = Counter()
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/storage/parts/" in request.url.path:
            number = int(request.url.path.rsplit("/", 1)[1])
            with self.lock:
                self.puts[number] += 1
                failing = self.fail.get(number, 0) > 0
                if failing:
                    self.fail[number] -= 1
            if failing:
                request.read()  # the bytes went out, the answer never came back
                raise httpx.ConnectError("connection reset by peer", request=request)
        return self.inner.handle_request(request)


def _client(api: Api, transport: httpx.BaseTransport | None = None) -> DocstoreClient:
    user = api.register()
    if transport is None:
        return DocstoreClient(BASE, user.token, http=api.client)
    return DocstoreClient(BASE, user.token, http=httpx.Client(transport=transport))


def test_parallel_parts_then_skip_upload_for_content_already_readable(
    api: Api, tmp_path: Path
) -> None:
    flaky = FlakyParts(api.client._transport, {2: 2})  # part 2 fails twice, then goes through
    ds = _client(api, flaky)
    src = tmp_path / "video.bin"
    data = os.urandom(2 * 8 * MiB + 123)
    src.write_bytes(data)
    seen: list[int] = []
    result = ds.upload_file(src, state_dir=tmp_path / "state", progress=seen.append)
    assert result.method == "multipart"
    assert (result.parts_total, result.parts_sent) == (3, [1, 2, 3])
    assert result.bytes_sent == len(data)
    assert dict(flaky.puts) == {1: 1, 2: 3, 3: 1}  # retried, bounded
    assert sum(seen) == len(data)  # progress counts every byte once, retries included
    assert result.document.current_version is not None
    assert result.document.current_version.checksum_sha256 == hashlib.sha256(data).hexdigest()
    assert list((tmp_path / "state").iterdir()) == []  # nothing left to resume

    again = ds.upload_file(src, name="copy.bin", state_dir=tmp_path / "state")
    assert (again.method, again.bytes_sent) == ("skipped", 0)
    assert again.document.name == "copy.bin"
    assert sum(flaky.puts.values()) == 5  # no part was sent for the copy
    ds.download(again.document.id, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data


def test_interrupted_upload_resumes_with_the_missing_parts_only(api: Api, tmp_path: Path) -> None:
    flaky = FlakyParts(api.client._transport, {3: 99})  # part 3 cannot get through today
    ds = _client(api, flaky)
    src = tmp_path / "big.bin"
    data = os.urandom(3 * 8 * MiB + 7)
    src.write_bytes(data)
    with pytest.raises(ConnectionFailed):
        ds.upload_file(src, parallel=1, state_dir=tmp_path / "state")
    assert flaky.puts[1] == flaky.puts[2] == 1 and flaky.puts[3] == 5
    assert len(list((tmp_path / "state").iterdir())) == 1

    flaky.fail.clear()
    flaky.puts.clear()
    result = ds.upload_file(src, state_dir=tmp_path / "state")
    assert (result.parts_resumed, result.parts_sent) == (2, [3, 4])
    assert dict(flaky.puts) == {3: 1, 4: 1}
    assert result.bytes_sent == len(data) - 2 * 8 * MiB
    assert ds.me().used_bytes == len(data)
    ds.download(result.document.id, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data


def test_a_changed_file_is_not_resumed_from_a_stale_state(api: Api, tmp_path: Path) -> None:
    flaky = FlakyParts(api.client._transport, {2: 99})
    ds = _client(api, flaky)
    src = tmp_path / "doc.bin"
    src.write_bytes(os.urandom(2 * 8 * MiB + 1))
    with pytest.raises(ConnectionFailed):
        ds.upload_file(src, parallel=1, state_dir=tmp_path / "state")
    new = os.urandom(2 * 8 * MiB + 1)
    src.write_bytes(new)  # same size, new content and mtime: a different upload
    flaky.fail.clear()
    flaky.puts.clear()
    result = ds.upload_file(src, state_dir=tmp_path / "state")
    assert (result.parts_resumed, result.parts_sent) == (0, [1, 2, 3])
    ds.download(result.document.id, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == new
