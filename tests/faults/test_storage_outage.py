"""Storage (S3 on moto) unreachable while the real server takes uploads and downloads.

The server's storage endpoint is a loopback proxy in front of moto, so storage can be
made to refuse connections or to hang without touching moto itself. The signed URLs the
server hands out point at the same proxy: clients lose storage too, as they would.
Afterwards the janitor runs and the kill -9 test's proof holds (tests/faults/proof.py): fsck
clean, storage holding exactly the committed versions' objects, exact quotas and bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest

from tests.faults.helpers import API, Client, MiB, host_port, print_errors, problem, sha256_hex
from tests.faults.proof import Store, janitor_and_proof
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.s3 import unique_bucket
from tests.fixtures.server import ServerProcess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PART = 5 * MiB


@pytest.fixture
def s3_behind_proxy(
    tmp_path: Path,
    pg_url: str,
    moto_endpoint: str,
    make_proxy: Callable[[str, int], TcpProxy],
) -> Iterator[tuple[ServerProcess, TcpProxy, Store]]:
    proxy = make_proxy(*host_port(moto_endpoint))
    # The bucket is made here, with boto3's default timeouts: moto's first S3 call loads its
    # backend (6 to 12 s on a loaded machine), longer than the server's read timeout.
    bucket = unique_bucket()
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    query = urlencode(
        {
            "endpoint_url": f"http://{proxy.address}",
            "region": "us-east-1",
            # A hung store fails each call after 5 s (the defaults allow 3 attempts of 10 s).
            # Not 1 s: on a loaded machine (pytest -n 4 on 2 cores) a healthy moto behind the
            # proxy sometimes took over 1 s to answer, so a call after the outage could get
            # 503 (seen: the janitor's download). 5 s is 10 times its slowest steady answer
            # measured under load (0.47 s) and keeps each stalled call bounded.
            "connect_timeout": "5",
            "read_timeout": "5",
            "max_attempts": "1",
        }
    )
    storage_url = f"s3://{bucket}?{query}"
    env = {
        "DOCSTORE_STORAGE_URL": storage_url,
        "DOCSTORE_RUN_JOBS_IN_SERVER": "false",
        "DOCSTORE_UPLOAD_PART_SIZE": str(PART),
    }
    server = start_server(tmp_path, pg_url, env)
    try:
        yield server, proxy, Store(pg_url, storage_url, tmp_path)
    finally:
        server.stop()
        print_errors(server.log, "storage error")


def _documents(user: Client) -> list[str]:
    r = user.get(f"{API}/folders/root/children")
    assert r.status_code == 200, r.text
    return sorted(i["name"] for i in r.json()["items"] if i["kind"] == "document")


def _outage(ann: Client, proxy: TcpProxy, fault: str) -> dict[str, list[bytes]]:
    """Every storage-bound call during one outage, then the same calls once it is over.

    Returns the documents that must exist afterwards: name -> every version's bytes."""
    before = os.urandom(1000)
    kept = ann.put_file(f"before-{fault}.txt", before).json()
    big = os.urandom(PART + 777)
    # An upload whose parts reached storage before the outage: complete runs during it.
    started = ann.initiate(f"big-{fault}.bin", big).json()
    parts = ann.put_parts(started, big)
    base = kept["current_version"]["id"]
    assert ann.post(f"{API}/documents/{kept['id']}/versions", content=b"v2").status_code == 201
    used = ann.used_bytes()
    names = _documents(ann)

    getattr(proxy, fault)()
    small = os.urandom(2000)
    # Simple upload: the server streams the bytes to storage itself.
    assert problem(ann.put_file(f"small-{fault}.txt", small)) == (503, "storage_unavailable")
    # Multipart: starting needs storage, and so does joining the parts.
    assert problem(ann.initiate("other.bin", big)) == (503, "storage_unavailable")
    assert problem(ann.complete(started["upload_id"], parts)) == (503, "storage_unavailable")
    # A merge reads the current version's bytes on the server.
    merged = ann.post(
        f"{API}/documents/{kept['id']}/versions",
        params={"base_version_id": base, "on_conflict": "merge"},
        content=b"v3",
    )
    assert problem(merged) == (503, "storage_unavailable")
    # Download: the server asks storage (HEAD) before it signs a URL, so no dead link.
    r = ann.get(f"{API}/documents/{kept['id']}/download", params={"version_id": base})
    assert problem(r) == (503, "storage_unavailable")
    # Nothing was charged and nothing appeared.
    assert ann.used_bytes() == used
    assert _documents(ann) == names

    proxy.resume()
    # The service heals by itself: the same calls now succeed, with no restart.
    done = ann.complete(started["upload_id"], parts)
    assert done.status_code == 201, done.text
    assert done.json()["current_version"]["checksum_sha256"] == sha256_hex(big)
    assert ann.put_file(f"small-{fault}.txt", small).status_code == 201
    assert ann.download(kept["id"], base) == before
    assert ann.download(done.json()["id"]) == big
    assert ann.used_bytes() == used + len(small) + len(big)
    return {
        f"before-{fault}.txt": [before, b"v2"],
        f"big-{fault}.bin": [big],
        f"small-{fault}.txt": [small],
    }


def test_storage_refusing_then_hanging_is_503_charges_nothing_and_heals(
    s3_behind_proxy: tuple[ServerProcess, TcpProxy, Store],
) -> None:
    server, proxy, store = s3_behind_proxy
    ann = Client.register(server.url, "ann", timeout=120)
    expected = _outage(ann, proxy, "refuse")  # storage down: connections refused
    expected |= _outage(ann, proxy, "stall")  # storage hung: connections open, nothing answers
    # Whatever the failed calls left (pending blob rows, objects a stalled PUT finished
    # writing after the outage, the aborted attempts' multipart uploads), the janitor finds
    # it: exactly the committed versions remain, each charged once and whole.
    proof = janitor_and_proof(store, {ann.user_id: ann})
    print(proof.janitor)
    assert proof.by_owner(ann.user_id) == {
        name: [sha256_hex(data) for data in versions] for name, versions in expected.items()
    }
    contents = {data for versions in expected.values() for data in versions}
    assert set(proof.blobs) == {(sha256_hex(data), len(data)) for data in contents}
    assert ann.used_bytes() == sum(len(d) for versions in expected.values() for d in versions)
    ann.close()
