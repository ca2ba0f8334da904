"""Endpoints and web pages never pick a permission level: the service function an endpoint
calls decides what its action needs (sharing/permissions.py, docs/DEVELOPING.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import docstore

SRC = Path(docstore.__file__).parent
LEVELS = {"NONE", "VIEW", "COMMENT", "EDIT", "OWNER"}


def _http_layer() -> list[Path]:
    return sorted([*SRC.glob("*/endpoints.py"), *SRC.glob("web/**/*.py")])


def _levels_named(path: Path, root: Path = SRC) -> list[str]:
    """`Level.X` (a level chosen) at each line of a module where it occurs."""
    return [
        f"{path.relative_to(root)}:{node.lineno}: Level.{node.attr}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Level"
        and node.attr in LEVELS
    ]


def test_the_http_layer_is_found() -> None:
    files = {p.relative_to(SRC).as_posix() for p in _http_layer()}
    assert {"documents/endpoints.py", "folders/endpoints.py", "web/routes.py"} <= files


def test_endpoints_and_pages_pick_no_level() -> None:
    found = [hit for path in _http_layer() for hit in _levels_named(path)]
    assert found == [], "the service function decides the level:\n" + "\n".join(found)


def test_the_check_sees_a_level_chosen(tmp_path: Path) -> None:
    module = tmp_path / "endpoints.py"
    module.write_text("from x import Level\nneeded = Level.EDIT\nlabel = Level(3).name\n")
    assert [hit.split(": ")[1] for hit in _levels_named(module, tmp_path)] == ["Level.EDIT"]
