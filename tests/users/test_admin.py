"""Admin bootstrap, admin user endpoints and plans."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from docstore.app import create_app
from tests.fixtures.app import BASE, Api, make_settings


def test_admin_bootstrap_and_admin_endpoints(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path, database_url, admin_email="root@example.com", admin_password="admin-password"
    )
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        api = Api(client)
        r = client.post(
            "/api/v1/auth/login", json={"email": "root@example.com", "password": "admin-password"}
        )
        assert r.status_code == 200
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        assert r.json()["user"]["is_admin"] is True

        r = client.put(
            "/api/v1/admin/plans/team",
            headers=admin,
            json={"quota_bytes": 1000, "max_versions": 5, "retention_days": 7},
        )
        assert r.status_code == 200
        plans = client.get("/api/v1/admin/plans", headers=admin).json()
        assert {p["name"] for p in plans} == {"free", "team"}
        free = next(p for p in plans if p["name"] == "free")
        assert (free["quota_bytes"], free["max_versions"], free["retention_days"]) == (
            10 * 1024**3,
            100,
            30,
        )

        r = client.post(
            "/api/v1/admin/users",
            headers=admin,
            json={
                "email": "gus@example.com",
                "name": "Gus",
                "password": "gus-password",
                "plan": "team",
            },
        )
        assert r.status_code == 201
        gus = r.json()
        assert (gus["plan"], gus["quota_bytes"]) == ("team", 1000)
        r = client.patch(
            f"/api/v1/admin/users/{gus['id']}", headers=admin, json={"quota_bytes": 5000}
        )
        assert r.status_code == 200 and r.json()["quota_bytes"] == 5000
        r = client.patch(f"/api/v1/admin/users/{gus['id']}", headers=admin, json={"plan": "free"})
        assert r.json()["quota_bytes"] == 10 * 1024**3
        r = client.patch("/api/v1/admin/users/999999", headers=admin, json={"quota_bytes": 1})
        assert r.status_code == 404
        r = client.patch(f"/api/v1/admin/users/{gus['id']}", headers=admin, json={"plan": "nope"})
        assert r.status_code == 422

        # A normal user gets 403 on every admin endpoint.
        hal = api.register("hal")
        assert hal.get("/api/v1/admin/plans").status_code == 403
        assert hal.get("/api/v1/admin/users").status_code == 403
        r = hal.post(
            "/api/v1/admin/users",
            json={"email": "x@example.com", "name": "x", "password": "long enough"},
        )
        assert r.status_code == 403
        assert (
            hal.patch(f"/api/v1/admin/users/{hal.id}", json={"is_admin": True}).status_code == 403
        )


def test_closed_signup(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, open_signup=False)
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        r = client.post(
            "/api/v1/auth/register",
            json={"email": "x@example.com", "name": "x", "password": "long enough"},
        )
        assert r.status_code == 403
