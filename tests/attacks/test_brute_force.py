"""Password guessing (issue 21, items 1 and 5): failed logins are throttled per address and
per account, before argon2 runs, and are audited against the targeted account; wrong link
passwords limit the guessing address, never the link for everyone.

The end-to-end tests run against real servers: one on SQLite, and two on PostgreSQL sharing
Redis, with requests alternating between them (the counters must be shared).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from docstore import security
from docstore.app import create_app
from docstore.cache import MemoryCache
from docstore.config import Settings
from docstore.throttle import Throttle
from docstore.users.login_limits import LoginGuard, LoginLimits
from tests.attacks.deployment import API, BACKENDS, From, code, deploy, retry_after
from tests.audit.helpers import entries, make_admin, services
from tests.fixtures.app import BASE, Api, make_settings

LOGIN = f"{API}/auth/login"
PASSWORD = "correct horse"

pytestmark = pytest.mark.e2e


def register(client: From, name: str) -> dict[str, Any]:
    r = client.post(
        f"{API}/auth/register",
        json={"email": f"{name}@example.com", "name": name, "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def login(client: From, email: str, password: str) -> tuple[int, str | None]:
    return code(client.post(LOGIN, json={"email": email, "password": password}))


# -- item 1: failed logins ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_logins_are_throttled_per_address_and_per_account(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    urls = deploy(
        request,
        tmp_path,
        backend,
        {
            "DOCSTORE_LOGIN_FREE_FAILURES_PER_ACCOUNT": "3",
            "DOCSTORE_LOGIN_ACCOUNT_BACKOFF_SECONDS": "10",
        },
    )
    ann = register(From(request, urls, "127.0.0.1"), "ann")
    email = ann["user"]["email"]
    owner = From(request, urls, "127.0.0.3")

    # Credential stuffing from one address: ten failures (the default), then 429 with
    # Retry-After for that address, whatever the account and even with the right password.
    stuffer = From(request, urls, "127.0.0.2")
    for i in range(10):
        assert login(stuffer, f"victim{i}@example.com", "guess-guess") == (401, "unauthenticated")
    for _ in range(5):
        r = stuffer.post(LOGIN, json={"email": "victim0@example.com", "password": "again"})
        assert 1 <= retry_after(r) <= 30 * 60
    r = stuffer.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert 1 <= retry_after(r) <= 30 * 60
    # Another address is not affected.
    assert owner.post(LOGIN, json={"email": email, "password": PASSWORD}).status_code == 200

    # Guesses at one account from a new address each time: three free failures, then the
    # account waits 10 s, for everyone, the owner included...
    addresses = iter(range(1, 200))

    def guess() -> Any:
        n = next(addresses)  # a new address each time, on alternating processes
        return From(request, urls, f"127.0.1.{n}", start=n).post(
            LOGIN, json={"email": email, "password": "not-the-password"}
        )

    for _ in range(3):
        assert code(guess()) == (401, "unauthenticated")
    blocked_at = time.monotonic()
    assert code(guess()) == (401, "unauthenticated")
    wait = retry_after(guess())
    # The block lasts 10 s from the fourth failure (however slow this machine is).
    assert wait <= 10 and wait + (time.monotonic() - blocked_at) >= 10
    wait = retry_after(owner.post(LOGIN, json={"email": email, "password": PASSWORD}))
    assert wait <= 10
    # ... but not for long: once the wait is over, the owner signs in, which resets the
    # account's count (two guesses are free again). (The doubling: the test below.)
    time.sleep(wait + 0.2)
    assert owner.post(LOGIN, json={"email": email, "password": PASSWORD}).status_code == 200
    for _ in range(2):
        assert code(guess()) == (401, "unauthenticated")

    # The owner sees the failed sign-ins on her account in her own audit log (Activity).
    me = From(request, urls, "127.0.0.1")
    r = me.get(
        f"{API}/audit",
        params={"action": "LOGIN_FAILED"},
        headers={"Authorization": f"Bearer {ann['token']}"},
    )
    assert r.status_code == 200, r.text
    failed = r.json()["items"]
    assert len(failed) == 4 + 2  # every 401 on her account; no 429 reached the password
    assert {e["user_id"] for e in failed} == {ann["user"]["id"]}
    assert all(e["ip_address"].startswith("127.0.1.") for e in failed)


class CountingHasher(PasswordHasher):
    """argon2id at the smallest cost, counting the passwords it checks."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(security, "_hasher", counting)
    return counting


def app_with(tmp_path: Path, database_url: str, **settings: Any) -> Iterator[Api]:
    values: Settings = make_settings(tmp_path, database_url, **settings)
    with TestClient(create_app(values), base_url=BASE, follow_redirects=False) as client:
        yield Api(client)


@pytest.fixture
def lenient_accounts(tmp_path: Path, database_url: str) -> Iterator[Api]:
    """The app with the per-account back-off out of the way (the address limit is tested)."""
    yield from app_with(tmp_path, database_url, login_free_failures_per_account=100)


def test_refused_logins_never_reach_argon2_and_the_audit_names_the_target(
    lenient_accounts: Api, hasher: CountingHasher
) -> None:
    api = lenient_accounts
    ann = api.register("ann")
    admin = make_admin(api, api.register("root"))
    client = api.client
    hasher.verified = 0

    r = client.post(LOGIN, json={"email": "nobody@example.com", "password": "guess-guess"})
    assert code(r) == (401, "unauthenticated")
    answers = [
        code(client.post(LOGIN, json={"email": ann.email, "password": f"guess-{i}"}))
        for i in range(29)
    ]
    assert answers == [(401, "unauthenticated")] * 9 + [(429, "rate_limited")] * 20
    assert hasher.verified == 10  # the 20 refused attempts cost no argon2
    r = client.post(LOGIN, json={"email": ann.email, "password": PASSWORD})
    assert 1 <= retry_after(r) <= 30 * 60
    assert hasher.verified == 10

    # The web sign-in form goes the same way.
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = client.post("/login", data={"email": ann.email, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert not any(c.startswith("docstore_session=") for c in r.headers.get_list("set-cookie"))
    assert hasher.verified == 10

    # LOGIN_FAILED names the targeted account, or keeps the email when there is none.
    failed = entries(admin, action="LOGIN_FAILED")
    assert len(failed) == 10
    unknown = [e for e in failed if e["user_id"] is None]
    assert [e["details"]["email"] for e in unknown] == ["nobody@example.com"]
    assert sum(e["user_id"] == ann.id for e in failed) == 9
    assert len(entries(ann, action="LOGIN_FAILED")) == 9  # she sees them too


@pytest.fixture
def strict_accounts(tmp_path: Path, database_url: str) -> Iterator[Api]:
    """Two free failures per account, then a minute's wait."""
    yield from app_with(
        tmp_path,
        database_url,
        login_free_failures_per_account=2,
        login_account_backoff_seconds=60,
    )


def test_a_successful_login_resets_the_accounts_failures(strict_accounts: Api) -> None:
    api = strict_accounts
    ann = api.register("ann")

    def attempt(password: str) -> int:
        r = api.client.post(LOGIN, json={"email": ann.email, "password": password})
        return r.status_code

    assert [attempt("wrong-one"), attempt("wrong-two"), attempt(PASSWORD)] == [401, 401, 200]
    # Counted from zero again: two free failures, the third blocks the account.
    assert [attempt("wrong-three"), attempt("wrong-four"), attempt("wrong-five")] == [401] * 3
    assert attempt(PASSWORD) == 429


def test_the_accounts_wait_doubles_with_each_failure_up_to_the_cap(strict_accounts: Api) -> None:
    api = strict_accounts
    ann = api.register("ann")
    cache = services(api).cache
    limits = LoginLimits.from_settings(Settings())
    block = LoginGuard(Throttle(cache, MemoryCache()), limits, ann.email, None).account_block

    def attempt() -> httpx.Response:
        return api.client.post(LOGIN, json={"email": ann.email, "password": "wrong-again"})

    assert [attempt().status_code for _ in range(2)] == [401, 401]  # free
    waits = []
    for _ in range(4):
        assert attempt().status_code == 401
        waits.append(retry_after(attempt()))
        cache.delete(block)  # as if the wait were over, without sleeping through it
    # 60 s, then doubled, capped at 300 s (each with a minute's slack for a slow machine).
    assert 0 < waits[0] <= 60 < waits[1] <= 120 < waits[2] <= 240 < waits[3] <= 300


# -- item 5: link passwords ---------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_link_guesses_limit_the_guessing_address_not_the_link(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    urls = deploy(
        request,
        tmp_path,
        backend,
        {
            "DOCSTORE_LINK_PASSWORD_BACKOFF_SECONDS": "1",
            "DOCSTORE_LINK_PASSWORD_BACKOFF_MAX_SECONDS": "1",
        },
    )
    owner = From(request, urls, "127.0.0.1")
    ann = register(owner, "ann")
    auth = {"Authorization": f"Bearer {ann['token']}"}
    doc = owner.post(f"{API}/files", params={"name": "l.txt"}, content=b"linked", headers=auth)
    assert doc.status_code == 201, doc.text
    body = {"document_id": doc.json()["id"], "permission": "VIEW", "link": True}
    r = owner.post(f"{API}/shares", json={**body, "password": "let me in"}, headers=auth)
    assert r.status_code == 201, r.text
    url = f"{API}/links/{r.json()['token']}"

    # Ten wrong guesses from one address (alternating processes)...
    attacker = From(request, urls, "127.0.0.2")
    for i in range(10):
        r = attacker.get(url, headers={"X-Link-Password": f"guess-{i}"})
        assert code(r) == (403, "link_password_invalid")

    # ... do not lock the link: someone who knows the password, elsewhere, still gets in.
    # The link as a whole has slowed down (the configured 1 s before each try).
    friend = From(request, urls, "127.0.0.3")
    started = time.monotonic()
    r = friend.get(url, headers={"X-Link-Password": "let me in"})
    assert r.status_code == 200, r.text
    assert time.monotonic() - started >= 1.0  # a lower bound: the delay is a sleep
    r = friend.get(f"{url}/download", headers={"X-Link-Password": "let me in"})
    assert r.status_code == 307
    assert friend.get(r.headers["location"]).content == b"linked"

    # The guessing address is refused for the window, the right password included.
    for password in ("guess-10", "let me in"):
        assert retry_after(attacker.get(url, headers={"X-Link-Password": password})) >= 1
        r = attacker.get(f"{url}/download", headers={"X-Link-Password": password})
        assert code(r) == (429, "rate_limited")
