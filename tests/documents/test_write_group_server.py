"""Small uploads through a real server process, many at once (documents.write_group): every
one answered, every answered one durable and readable; clashing names fail alone."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.faults.helpers import Client
from tests.fixtures.server import ServerProcess

pytestmark = [pytest.mark.e2e]

CLIENTS = 8
EACH = 12


def test_many_concurrent_small_uploads_are_each_answered_and_durable(
    server: ServerProcess,
) -> None:
    users = [Client.register(server.url, f"w{i}", timeout=120) for i in range(CLIENTS)]
    data = {(u, i): os.urandom(1 + (i * 977) % 9000) for u in range(CLIENTS) for i in range(EACH)}

    def upload(u: int) -> list[tuple[int, int, int, str]]:
        out = []
        for i in range(EACH):
            r = users[u].put_file(f"f{i}.bin", data[(u, i)])
            out.append((u, i, r.status_code, r.text))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [a for batch in pool.map(upload, range(CLIENTS)) for a in batch]
    assert [a for a in answers if a[2] != 201] == []
    for u, i, _, text in answers:
        body = json.loads(text)
        digest = hashlib.sha256(data[(u, i)]).hexdigest()
        assert body["current_version"]["checksum_sha256"] == digest
        assert users[u].download(body["id"]) == data[(u, i)]
    for u, user in enumerate(users):
        assert user.used_bytes() == sum(len(data[(u, i)]) for i in range(EACH))
        user.close()


def test_concurrent_small_uploads_of_one_name_one_wins_the_others_fail_alone(
    server: ServerProcess,
) -> None:
    user = Client.register(server.url, "clash", timeout=120)
    bodies = [f"version {k}".encode() for k in range(6)]

    def upload(k: int) -> int:
        name = "same.txt" if k % 2 == 0 else f"other{k}.txt"
        return user.put_file(name, bodies[k]).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(upload, range(6)))
    same = [codes[k] for k in range(0, 6, 2)]
    assert sorted(same) == [201, 409, 409]
    assert [codes[k] for k in range(1, 6, 2)] == [201, 201, 201]
    winner = bodies[next(k for k in range(0, 6, 2) if codes[k] == 201)]
    assert user.used_bytes() == len(winner) + sum(len(bodies[k]) for k in range(1, 6, 2))
    user.close()
