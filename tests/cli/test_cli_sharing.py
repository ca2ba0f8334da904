"""`docstore share | access | link | unshare | shared` as real processes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import PASSWORD, Cli
from tests.fixtures.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cli_sharing")]


@pytest.fixture
def bob(cli_server: ServerProcess, tmp_path: Path) -> Cli:
    """A second user with a HOME of their own."""
    other = Cli(cli_server, tmp_path / "bob-home")
    other.signup()
    return other


def test_share_and_access(user: Cli, bob: Cli, tmp_path: Path) -> None:
    assert bob.email is not None
    f = tmp_path / "plan.md"
    f.write_text("# plan\n")
    user.ok("upload", str(f), "/team/q1")
    doc_id = user.json("ls", "/team/q1/plan.md")[0]["id"]
    assert bob.run("ls", f"doc:{doc_id}").returncode == 3  # not shared yet: invisible

    made = user.json("share", "/team/q1/plan.md", "--with", bob.email, "--permission", "COMMENT")
    assert (made["kind"], made["permission"]) == ("user", "COMMENT")
    access = user.json("access", "/team/q1/plan.md", "--user", bob.email)
    assert access["permission"] == "COMMENT"
    assert [v["kind"] for v in access["via"]] == ["direct"]
    table = user.ok("access", "/team/q1/plan.md", "--user", bob.email).stdout
    assert f"{bob.email}: COMMENT" in table and "direct" in table
    assert user.json("access", "/team/q1/plan.md")["permission"] == "OWNER"

    shared = bob.json("shared")
    assert [(s["name"], s["permission"]) for s in shared] == [("plan.md", "COMMENT")]
    assert f"doc:{doc_id}" in bob.ok("shared").stdout
    bob.ok("comment", f"doc:{doc_id}", "from bob")
    bob.ok("download", f"doc:{doc_id}", "-o", str(tmp_path / "bob.md"))
    assert (tmp_path / "bob.md").read_text() == "# plan\n"
    assert bob.run("rm", f"doc:{doc_id}").returncode == 6  # visible, not permitted

    user.ok("share", "/team", "--with", bob.email, "--permission", "EDIT")
    via = user.json("access", "/team/q1/plan.md", "--user", bob.email)
    assert via["permission"] == "EDIT"
    assert {v["kind"] for v in via["via"]} == {"direct", "folder"}
    assert len(user.json("shares", "/team")) == 1
    assert bob.email in user.ok("shares", "/team").stdout

    user.ok("unshare", "/team", "--with", bob.email)
    user.ok("unshare", "/team/q1/plan.md", "--all")
    assert bob.run("access", f"doc:{doc_id}").returncode == 3
    assert user.run("unshare", "/team", "--with", bob.email).returncode == 3
    assert user.run("unshare", "/team").returncode == 2


def test_link_with_expiry_and_password(user: Cli, tmp_path: Path) -> None:
    f = tmp_path / "report.pdf"
    f.write_bytes(b"%PDF-1.7 report")
    user.ok("upload", str(f), "/")
    api = f"{user.server.url}/api/v1"

    made = user.json("link", "/report.pdf", "--expires", "7d")
    expires = datetime.fromisoformat(made["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    opened = httpx.get(f"{api}/links/{made['token']}")
    assert opened.status_code == 200 and opened.json()["document"]["name"] == "report.pdf"
    url = user.ok("link", "/report.pdf").stdout.strip()  # the human form prints the URL
    assert url.startswith("http") and httpx.get(url).status_code in (200, 307)

    locked = user.json("link", "/report.pdf", "--password", input="s3cret-link\ns3cret-link\n")
    assert locked["has_password"] is True
    token = locked["token"]
    assert httpx.get(f"{api}/links/{token}").json()["code"] == "link_password_required"
    ok = httpx.get(f"{api}/links/{token}", headers={"X-Link-Password": "s3cret-link"})
    assert ok.status_code == 200

    short = user.json("link", "/report.pdf", "--expires", "2s")
    deadline = time.monotonic() + 30
    status = 200
    while status != 410 and time.monotonic() < deadline:
        time.sleep(0.5)
        status = httpx.get(f"{api}/links/{short['token']}").status_code
    assert status == 410  # link_expired once past its expiry

    assert user.run("link", "/report.pdf", "--expires", "soon").returncode == 2
    assert len(user.json("shares", "/report.pdf")) == 4
    user.ok("unshare", "/report.pdf", "--links")
    assert httpx.get(f"{api}/links/{made['token']}").status_code == 410


def test_share_with_a_group(user: Cli, bob: Cli, tmp_path: Path) -> None:
    api = f"{user.server.url}/api/v1"
    r = httpx.post(f"{api}/auth/login", json={"email": user.email, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    group = httpx.post(f"{api}/groups", json={"name": "Design"}, headers=auth).json()
    r = httpx.post(f"{api}/groups/{group['id']}/members", json={"email": bob.email}, headers=auth)
    assert r.status_code == 201
    (bob_id,) = [m["id"] for m in r.json()["members"] if m["email"] == bob.email]
    f = tmp_path / "g.md"
    f.write_text("g\n")
    user.ok("upload", str(f), "/")
    made = user.json("share", "/g.md", "--group", str(group["id"]), "--permission", "COMMENT")
    assert (made["kind"], made["group_id"], made["permission"]) == ("group", group["id"], "COMMENT")
    assert "group Design" in user.ok("shares", "/g.md").stdout
    via = user.json("access", "/g.md", "--user", str(bob_id))["via"]
    assert [(v["kind"], v["group_id"]) for v in via] == [("group", group["id"])]
    assert [s["name"] for s in bob.json("shared")] == ["g.md"]
    assert user.run("share", "/g.md").returncode == 2  # neither --with nor --group
