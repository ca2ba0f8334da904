"""`docstore search` and `docstore reindex` as a user runs them: the real executable
against a real server (one per module, SQLite), the index built by the reindex command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli, cli, cli_server  # noqa: F401  (fixtures)
from tests.search import files

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cli_search")]


@pytest.fixture
def user(cli: Cli) -> Cli:  # noqa: F811
    """The CLI logged in as a new user."""
    cli.signup()
    return cli


def test_search_and_reindex_from_the_command_line(user: Cli, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "finance").mkdir(parents=True)
    (tree / "finance" / "Quarterly-Report-2026.docx").write_bytes(
        files.docx("Revenue grew in the <third> quarter")
    )
    (tree / "notes.txt").write_text("Revenue projections, draft")
    user.ok("upload", str(tree), "/")

    pending = user.ok("reindex", env=user.admin_env)
    assert "indexed 2" in pending.stderr
    assert "indexed 0" in user.ok("reindex", env=user.admin_env).stderr  # resumable: done

    hits = user.json("search", "revenue")
    assert sorted(h["path"] for h in hits) == [
        "/tree/finance/Quarterly-Report-2026.docx",
        "/tree/notes.txt",
    ]
    docx = next(h for h in hits if h["name"].endswith(".docx"))
    assert "<mark>Revenue</mark>" in docx["snippet"] and "&lt;third&gt;" in docx["snippet"]
    assert [h["name"] for h in user.json("search", "quarterly rep", "--in", "/tree/finance")] == [
        "Quarterly-Report-2026.docx"
    ]
    assert user.json("search", "revenue -draft", "--in", "/tree/finance")[0]["kind"] == "document"
    shown = user.ok("search", "revenue").stdout
    assert "/tree/notes.txt" in shown and "<mark>" not in shown

    again = user.ok("reindex", "--all", "--user", user.email or "", env=user.admin_env)
    assert "indexed 2" in again.stderr
    bad = user.run("search", "--", "-only")  # after --, a leading - is an exclusion
    assert bad.returncode != 0 and "no words" in bad.stderr
