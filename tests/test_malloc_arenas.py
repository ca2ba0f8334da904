"""`docstore serve` caps glibc's malloc arenas (the soak's RSS growth, bench/soak.py)."""

from __future__ import annotations

import os
import sys

import pytest

from docstore.server import MALLOC_ARENAS, limit_malloc_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc arenas are Linux's")
def test_serve_caps_arenas_for_itself_and_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "")  # so that teardown restores the original
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    limit_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == str(MALLOC_ARENAS)


def test_an_operators_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    limit_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == "8"
