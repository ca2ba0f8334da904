"""Webhooks through the HTTP API in-process, on SQLite and PostgreSQL: the secret shown
once, validation (422 with the reason), another user's webhook is 404, and the SSRF guard
refusing loopback, private, link-local and metadata addresses when the server does not
allow them."""

from __future__ import annotations

from typing import Any

import pytest

from docstore.webhooks import network, signing
from tests.fixtures.app import Api, User
from tests.sharing.helpers import API, code

HOOKS = f"{API}/webhooks"
# A documentation address (TEST-NET-3): not public either, so only the private-allowing
# server accepts it; the guarded server must name the address in its refusal.
PUBLIC_LOOKING = "http://203.0.113.7/hook"


def _create(user: User, expect: int = 201, **body: Any) -> dict[str, Any]:
    r = user.post(HOOKS, json=body)
    assert r.status_code == expect, r.text
    return dict(r.json())


def test_create_list_show_update_delete(guarded_api: Api) -> None:
    """On the guarded server a URL must be public: 8.8.8.8 is (no request is made at
    creation, only the address check)."""
    ann = guarded_api.register("ann")
    folder = ann.mkdir("Reports")
    hook = _create(
        ann, url="https://8.8.8.8/in", events=["updated", "created"], folder_id=folder["id"]
    )
    assert hook["secret"].startswith(signing.PREFIX) and len(hook["secret"]) > 40
    assert hook["events"] == ["created", "updated"]  # the feed's order
    assert (hook["folder_id"], hook["active"], hook["disabled_reason"]) == (
        folder["id"],
        True,
        None,
    )

    shown = ann.get(f"{HOOKS}/{hook['id']}").json()
    assert "secret" not in shown and shown["url"] == "https://8.8.8.8/in"
    listed = ann.get(HOOKS).json()
    assert [h["id"] for h in listed["items"]] == [hook["id"]]
    assert all("secret" not in h for h in listed["items"])

    # A second webhook gets a different secret (random salt per webhook).
    other = _create(ann, url="http://8.8.4.4:8080/x?y=1", events=["deleted"])
    assert other["secret"] != hook["secret"]

    r = ann.patch(f"{HOOKS}/{hook['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    r = ann.patch(f"{HOOKS}/{hook['id']}", json={"active": True, "events": ["purged"]})
    assert (r.json()["active"], r.json()["events"]) == (True, ["purged"])
    r = ann.patch(f"{HOOKS}/{hook['id']}", json={"url": "https://1.1.1.1/new"})
    assert r.json()["url"] == "https://1.1.1.1/new"

    assert ann.get(f"{HOOKS}/{hook['id']}/deliveries").json() == {"items": [], "next_cursor": None}
    assert ann.delete(f"{HOOKS}/{hook['id']}").status_code == 204
    assert code(ann.get(f"{HOOKS}/{hook['id']}")) == (404, "not_found")
    assert [h["id"] for h in ann.get(HOOKS).json()["items"]] == [other["id"]]
    assert ann.delete(f"{HOOKS}/{other['id']}").status_code == 204
    _private_addresses_are_refused(ann)


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"url": "ftp://8.8.8.8/x", "events": ["created"]}, "url"),
    ({"url": "file:///etc/passwd", "events": ["created"]}, "url"),
    ({"url": "https:///nohost", "events": ["created"]}, "url"),
    ({"url": "https://user:pw@8.8.8.8/", "events": ["created"]}, "url"),
    ({"url": "https://8.8.8.8:99999/", "events": ["created"]}, "url"),
    ({"url": "https://8.8.8.8/" + "a" * 2000, "events": ["created"]}, "url"),
    ({"url": "https://8.8.8.8/", "events": []}, "events"),
    ({"url": "https://8.8.8.8/", "events": ["exploded"]}, "events"),
    ({"url": "https://8.8.8.8/", "events": ["created", "created"]}, "events"),
    ({"url": "https://8.8.8.8/", "events": "created"}, "events"),
    ({"url": "https://8.8.8.8/", "events": ["created"], "secret": "mine"}, "secret"),
    ({"events": ["created"]}, "url"),
]


def _invalid_bodies_are_422_naming_the_field(ann: User) -> None:
    for body, field in INVALID:
        r = ann.post(HOOKS, json=body)
        assert code(r) == (422, "validation_error"), (body, r.text)
        assert field in r.text, (body, r.text)
    assert ann.get(HOOKS).json()["items"] == []


def test_validation_and_another_users_webhook_is_404(guarded_api: Api) -> None:
    ann, bob = guarded_api.register("ann"), guarded_api.register("bob")
    _invalid_bodies_are_422_naming_the_field(bob)
    hook = _create(ann, url="https://8.8.8.8/", events=["created"])
    base = f"{HOOKS}/{hook['id']}"
    assert code(bob.get(base)) == (404, "not_found")
    assert code(bob.patch(base, json={"active": False})) == (404, "not_found")
    assert code(bob.delete(base)) == (404, "not_found")
    assert code(bob.get(f"{base}/deliveries")) == (404, "not_found")
    assert code(bob.post(f"{base}/deliveries/1/redeliver")) == (404, "not_found")
    assert bob.get(HOOKS).json()["items"] == []
    assert ann.get(base).json()["active"] is True  # untouched
    # A folder the caller cannot see is as absent as one that does not exist.
    private = ann.mkdir("Private")
    r = bob.post(HOOKS, json={"url": "https://8.8.8.8/", "events": ["created"],
                              "folder_id": private["id"]})  # fmt: skip
    assert code(r) == (404, "not_found")

    # Where the server allows private addresses (DOCSTORE_WEBHOOK_ALLOW_PRIVATE), only the
    # scheme and shape rules remain.
    guarded_api.client.app.state.services.settings.webhook_allow_private = True  # type: ignore[attr-defined]
    for url in ("http://127.0.0.1:8080/hook", "http://[::1]/hook", PUBLIC_LOOKING):
        _create(bob, url=url, events=["created"])
    r = bob.post(HOOKS, json={"url": "gopher://127.0.0.1/", "events": ["created"]})
    assert code(r) == (422, "validation_error")


REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://127.1/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://[::1]/hook",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://localhost:9/hook",
    PUBLIC_LOOKING,
]


def _private_addresses_are_refused(ann: User) -> None:
    for url in REFUSED:
        r = ann.post(HOOKS, json={"url": url, "events": ["created"]})
        assert code(r) == (422, "validation_error"), (url, r.text)
        assert "resolves to" in r.json()["detail"], (url, r.text)
    assert ann.get(HOOKS).json()["items"] == []
    # Nor can an existing webhook be pointed there.
    hook = _create(ann, url="https://8.8.8.8/", events=["created"])
    r = ann.patch(f"{HOOKS}/{hook['id']}", json={"url": "http://169.254.169.254/"})
    assert code(r) == (422, "validation_error")
    assert ann.get(f"{HOOKS}/{hook['id']}").json()["url"] == "https://8.8.8.8/"
    assert ann.delete(f"{HOOKS}/{hook['id']}").status_code == 204


def test_the_address_check_itself() -> None:
    """Every class of address the guard refuses, and public ones it lets through."""
    import ipaddress

    for ip, why in [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("fc00::1", "private"),
        ("::", "unspecified"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "private"),
        ("100.100.100.100", "shared"),
    ]:
        reason = network.forbidden_reason(ipaddress.ip_address(ip))
        assert reason is not None and why in reason, (ip, reason)
    for ip in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert network.forbidden_reason(ipaddress.ip_address(ip)) is None, ip
    with pytest.raises(network.Refused, match=r"resolves to 127\.0\.0\.1"):
        network.check("http://localhost/", allow_private=False)
    assert network.check("http://localhost:81/", allow_private=True).port == 81


def test_secret_is_derived_from_the_server_key() -> None:
    """The database holds only the salt: another server key gives another secret."""
    salt = signing.new_salt()
    assert signing.secret_for(b"key-1", salt) == signing.secret_for(b"key-1", salt)
    assert signing.secret_for(b"key-1", salt) != signing.secret_for(b"key-2", salt)
    header = signing.signature("whsec_x", 1700000000, b'{"a":1}')
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
