"""`docstore` user commands over HTTP, run as a real process against a real server."""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import PASSWORD, Cli

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cli_files")]

MiB = 1024 * 1024


def make_tree(root: Path) -> dict[str, bytes]:
    """199 small files in nested folders plus one of 50 MiB; relative path → content."""
    rng = random.Random(9)
    files: dict[str, bytes] = {"big.bin": os.urandom(50 * MiB)}
    names = ["notes.txt", "plan v2.md", "résumé.pdf", "empty.dat", "data.csv"]
    i = 0
    while len(files) < 200:
        folder = f"d{i % 7}/s{i % 3}" if i % 4 else f"d{i % 7}"
        name = f"{i}-{names[i % len(names)]}"
        size = 0 if name.endswith("empty.dat") else rng.randint(1, 20_000)
        files[f"{folder}/{name}"] = rng.randbytes(size)
        i += 1
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_login_saves_the_token_privately_and_env_overrides_it(cli: Cli) -> None:
    assert cli.run("ls").returncode == 6  # not logged in yet
    email = cli.signup()
    saved = cli.config_dir / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_dir.stat().st_mode) == 0o700
    token = json.loads(saved.read_text())["token"]
    assert cli.json("whoami")["email"] == email

    # The prompts: URL (default kept), email, hidden password, all read from stdin here.
    proc = cli.ok("login", "--url", cli.server.url, input=f"{email}\n{PASSWORD}\n")
    assert "Email" in proc.stderr and "Password" in proc.stderr  # prompts never go to stdout
    assert PASSWORD not in proc.stdout + proc.stderr
    assert json.loads(saved.read_text())["token"] != token

    other = httpx.post(
        f"{cli.server.url}/api/v1/auth/register",
        json={"email": "override@example.com", "name": "O", "password": PASSWORD},
    ).json()["token"]
    assert cli.json("whoami", env={"DOCSTORE_TOKEN": other})["email"] == "override@example.com"
    assert cli.run("whoami", env={"DOCSTORE_TOKEN": "bogus"}).returncode == 6
    unreachable = cli.run("whoami", env={"DOCSTORE_URL": "http://127.0.0.1:9"})
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr

    current = json.loads(saved.read_text())["token"]
    cli.ok("logout")
    assert not saved.exists()
    revoked = httpx.get(
        f"{cli.server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {current}"}
    )
    assert revoked.status_code == 401
    assert cli.run("whoami").returncode == 6


def test_tree_upload_ls_download_then_reupload_sends_nothing(user: Cli, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    files = make_tree(tree)
    total = sum(len(d) for d in files.values())

    up = user.json("upload", str(tree), "/backup")
    assert (up["files"], up["uploaded"], up["failed"]) == (200, 200, 0)
    assert up["bytes_sent"] == total
    big = next(i for i in up["items"] if i["remote"] == "/backup/tree/big.bin")
    assert big["parts_sent"] == list(range(1, 8))  # 50 MiB in 8 MiB parts, in parallel

    listing = user.json("ls", "/backup/tree")
    assert sorted(i["name"] for i in listing) == ["big.bin", *(f"d{n}" for n in range(7))]
    table = user.ok("ls", "/backup/tree").stdout
    assert "big.bin" in table and "50.0 MiB" in table and "d3/" in table and "┃ name" in table

    back = tmp_path / "back"
    down = user.json("download", "/backup/tree", "-o", str(back))
    assert down["files"] == 200 and down["bytes"] == total
    got = {str(p.relative_to(back)): p.read_bytes() for p in back.rglob("*") if p.is_file()}
    assert got.keys() == files.keys()
    assert all(got[k] == files[k] for k in files), "a downloaded file differs"
    assert user.json("whoami")["used_bytes"] == total

    again = user.json("upload", str(tree), "/backup")
    assert (again["unchanged"], again["uploaded"], again["new_version"]) == (200, 0, 0)
    assert again["bytes_sent"] == 0
    assert user.json("whoami")["used_bytes"] == total
    assert len(user.json("versions", "/backup/tree/big.bin")) == 1

    changed = next(k for k in files if k.endswith("notes.txt"))
    (tree / changed).write_bytes(b"changed")
    third = user.ok("upload", str(tree), "/backup").stdout
    assert "0 uploaded, 1 new version(s), 199 unchanged (skipped)" in third
    assert "7 B sent" in third
    assert [v["version_number"] for v in user.json("versions", f"/backup/tree/{changed}")] == [
        2,
        1,
    ]
    assert user.json("whoami")["used_bytes"] == total + 7


def test_versions_and_restore(user: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "plan.md"
    doc.write_text("# plan\nv1\n")
    user.ok("upload", str(doc), "/docs")
    doc.write_text("# plan\nv2, longer\n")
    user.ok("upload", str(doc), "/docs")
    versions = user.json("versions", "/docs/plan.md")
    assert [v["version_number"] for v in versions] == [2, 1]
    table = user.ok("versions", "/docs/plan.md").stdout
    assert versions[1]["checksum_sha256"][:12] in table and "✓" in table

    restored = user.json("restore", "/docs/plan.md", "--version", "1")
    assert restored["version"]["version_number"] == 3
    assert restored["version"]["checksum_sha256"] == versions[1]["checksum_sha256"]
    user.ok("download", "/docs/plan.md", "-o", str(tmp_path / "now.md"))
    assert (tmp_path / "now.md").read_text() == "# plan\nv1\n"
    user.ok("download", "/docs/plan.md", "--version", "2", "-o", str(tmp_path / "v2.md"))
    assert (tmp_path / "v2.md").read_text() == "# plan\nv2, longer\n"
    assert user.run("restore", "/docs/plan.md", "--version", "9").returncode == 3
    assert user.run("versions", "/docs").returncode == 2  # a folder has no versions


def test_mkdir_mv_rm_and_trash_restore(user: Cli, tmp_path: Path) -> None:
    user.ok("mkdir", "-p", "/a/b/c")
    user.ok("mkdir", "-p", "/a/b/c")  # -p: no error when it exists
    assert user.run("mkdir", "/a/b/c").returncode == 4
    assert user.run("mkdir", "/x/y").returncode == 3  # no parent without -p
    f = tmp_path / "f.txt"
    f.write_text("hello\n")
    user.ok("upload", str(f), "/a/b")
    user.ok("mv", "/a/b/f.txt", "/a/g.txt")
    assert [i["name"] for i in user.json("ls", "/a")] == ["b", "g.txt"]
    user.ok("mv", "/a/g.txt", "/a/b/c")  # into an existing folder, same name
    assert user.json("ls", "/a/b/c/g.txt")[0]["name"] == "g.txt"
    assert user.run("mv", "/a/b", "/a/b/c").returncode == 4  # a cycle

    assert user.run("rm", "/a/b").returncode == 2  # a folder needs -r
    user.ok("rm", "-r", "/a/b")
    assert user.run("ls", "/a/b").returncode == 3
    trash = user.json("trash")
    assert [(t["kind"], t["name"]) for t in trash] == [("folder", "b")]
    assert "folder:" in user.ok("trash").stdout
    user.ok("trash", "restore", "b")
    assert user.json("ls", "/a/b/c/g.txt")[0]["name"] == "g.txt"
    assert user.json("trash") == []

    assert user.json("whoami")["used_bytes"] == 6
    user.ok("rm", "/a/b/c/g.txt")
    assert user.run("trash", "purge", "nothing-like-this", "--yes").returncode == 3
    user.ok("trash", "purge", "g.txt", "--yes")
    assert user.json("trash") == []
    assert user.json("whoami")["used_bytes"] == 0


def test_exit_codes_and_comments(user: Cli, tmp_path: Path) -> None:
    assert user.run("ls", "/no/such/thing").returncode == 3
    assert user.run("ls", "--no-such-option").returncode == 2
    assert user.run("download", "/nothing", "--version", "x").returncode == 2
    f = tmp_path / "memo.txt"
    f.write_text("memo\n")
    user.ok("upload", str(f), "/")
    user.ok("comment", "/memo.txt", "Looks good, ship it")
    assert [c["body"] for c in user.json("comments", "/memo.txt")] == ["Looks good, ship it"]
    assert "Looks good, ship it" in user.ok("comments", "/memo.txt").stdout

    assert user.email is not None
    user.ok("user", "set-quota", user.email, "10", env=user.admin_env)
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 100)
    over = user.run("upload", str(big), "/")
    assert over.returncode == 5, over.stderr
    assert "quota_exceeded" in over.stderr
    unknown = user.run("user", "set-quota", "nobody@example.com", "10", env=user.admin_env)
    assert unknown.returncode == 3


def test_upload_json_reports_hashes(user: Cli, tmp_path: Path) -> None:
    f = tmp_path / "one.bin"
    f.write_bytes(os.urandom(1000))
    out = user.json("upload", str(f), "/deep/er")
    item = out["items"][0]
    assert item["remote"] == "/deep/er/one.bin"
    assert item["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert (
        user.json("ls", "/deep/er/one.bin")[0]["current_version"]["checksum_sha256"]
        == (item["sha256"])
    )


def test_changes_once_and_follow(user: Cli) -> None:
    """`docstore changes` prints what changed after a cursor; `--follow` prints a change
    made elsewhere as it happens (long-poll), one JSON object per line."""
    import subprocess
    import threading

    from tests.cli.conftest import DOCSTORE

    start = user.json("changes")
    assert start["changes"] == []
    user.ok("mkdir", "/notes")
    got = user.json("changes", "--cursor", start["cursor"])
    assert [(c["op"], c["kind"], c["entry"]["path"]) for c in got["changes"]] == [
        ("created", "folder", "/notes")
    ]
    text = user.ok("changes", "--cursor", start["cursor"]).stdout
    assert "created" in text and "/notes" in text
    follow = subprocess.Popen(
        [str(DOCSTORE), "changes", "--follow", "--json", "--cursor", got["cursor"]],
        env=user.env, cwd=user.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(follow.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    try:
        user.ok("mkdir", "/notes/later")
        reader.join(30)  # bounded: the waiter is woken by the commit
        assert lines and json.loads(lines[0])["entry"]["path"] == "/notes/later"
    finally:
        follow.kill()
        follow.wait(10)


def test_tree_upload_sends_small_files_in_batches_each_failing_alone(
    user: Cli, tmp_path: Path
) -> None:
    """New small files go many to a request (POST /files/batch); a file the server refuses
    (a bidi control in its name) fails alone and is reported, the others are stored."""
    tree = tmp_path / "small"
    (tree / "a" / "b").mkdir(parents=True)
    for n in range(30):
        (tree / "a" / "b" / f"f{n}.txt").write_bytes(f"file {n}\n".encode())
    (tree / "top.txt").write_bytes(b"top")
    (tree / "evil\u202etxt.exe").write_bytes(b"refused")
    proc = user.run("upload", str(tree), "/batched", "--json")
    assert proc.returncode == 2, proc.stderr  # exit code of a value the server finds invalid
    out = json.loads(proc.stdout)
    assert (out["files"], out["uploaded"], out["failed"]) == (32, 31, 1)
    failed = next(i for i in out["items"] if i["action"] == "failed")
    assert failed["remote"].endswith("evil\u202etxt.exe") and "bidirectional" in failed["error"]
    assert sorted(i["name"] for i in user.json("ls", "/batched/small/a/b")) == sorted(
        f"f{n}.txt" for n in range(30)
    )
    back = tmp_path / "back"
    user.ok("download", "/batched/small/a/b/f7.txt", "-o", str(back))
    assert back.read_bytes() == b"file 7\n"
    # Sent again: nothing changed, nothing sent; one file changed: a new version, one by one.
    (tree / "top.txt").write_bytes(b"top v2")
    proc = user.run("upload", str(tree), "/batched", "--batch-threshold", "0", "--json")
    again = json.loads(proc.stdout)
    assert (again["unchanged"], again["new_version"], again["failed"]) == (30, 1, 1)
