"""The password rule (length >= 10, not a bundled common password) on every path that sets one."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from docstore.app import create_app
from docstore.users import passwords
from tests.fixtures.app import BASE, make_settings


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("nine char", False),
        ("ten chars!", True),
        ("1234567890", False),
        ("Password123", False),
        ("pass word 123", False),  # spaces do not disguise a common one
        ("QWERTYUIOP", False),  # nor does case
        ("aaaaabbbbbaaaaa", False),  # two distinct characters
        ("correct horse", True),
    ],
)
def test_rule(password: str, accepted: bool) -> None:
    assert (passwords.problem(password) is None) is accepted


def test_bundled_list_is_shipped_and_sizeable() -> None:
    listed = passwords.common_passwords()
    assert len(listed) > 500
    assert all(len(p) >= passwords.MIN_LENGTH for p in listed)


@pytest.mark.parametrize("password", ["short pw", "iloveyou123", "0987654321"])
def test_register_and_admin_create_refuse_weak_passwords(
    tmp_path: Path, database_url: str, password: str
) -> None:
    settings = make_settings(
        tmp_path, database_url, admin_email="root@example.com", admin_password="admin-password"
    )
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        r = client.post(
            "/api/v1/auth/register",
            json={"email": "w@example.com", "name": "W", "password": password},
        )
        assert r.status_code == 422
        assert r.json()["code"] == "validation_error"
        login = {"email": "root@example.com", "password": "admin-password"}
        token = client.post("/api/v1/auth/login", json=login).json()["token"]
        admin = {"Authorization": f"Bearer {token}"}
        body = {"email": "v@example.com", "name": "V", "password": password}
        r = client.post("/api/v1/admin/users", headers=admin, json=body)
        assert r.status_code == 422
        # Nothing was created by either refusal: both addresses are still free.
        for email in ("w@example.com", "v@example.com"):
            body = {"email": email, "name": "W", "password": "a sound passphrase"}
            assert client.post("/api/v1/auth/register", json=body).status_code == 201
