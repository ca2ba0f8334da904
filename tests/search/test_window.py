"""The rank window (search.repository.RANK_WINDOW): a word with more visible matches than
the window ranks and returns the newest of them; the permission rule, the filters and the
exclusions apply before the window is cut, so invisible or excluded matches never take a
place in it."""

from __future__ import annotations

import pytest

from docstore.search import repository
from tests.fixtures.app import Api
from tests.search.helpers import index, names, search, upload


def test_the_newest_visible_matches_fill_the_window_and_are_ranked(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, stranger = api.register(), api.register()
    mine = []
    for i in range(5):
        # Alice's older texts hold the words more often; a stranger's text follows each.
        body = " ".join(["orchard apple"] * (5 - i) + ["filler"] * 10)
        mine.append(upload(alice, f"a{i}.txt", body.encode())["name"])
        upload(stranger, f"s{i}.txt", b"orchard apple orchard apple orchard apple")
    upload(alice, "excluded.txt", b"orchard apple pear")  # the newest, but excluded below
    index(api)
    monkeypatch.setattr(repository, "RANK_WINDOW", 3)

    # The three newest of Alice's five, none of the stranger's, best (not newest) first.
    best = ["a2.txt", "a3.txt", "a4.txt"]
    assert names(alice, "orchard -pear") == best
    assert names(alice, '"orchard apple" -pear') == best
    assert names(alice, "orchard -pear", mime="text/plain") == best
    scores = [h["score"] for h in search(alice, "orchard -pear")["items"]]
    assert scores == sorted(scores, reverse=True)
    # Without the exclusion the newest (excluded.txt) takes a place in the window.
    assert "excluded.txt" in names(alice, "orchard")
    assert len(names(alice, "orchard")) == 3
    # Paging walks the window, then ends.
    first = search(alice, "orchard -pear", limit=2)
    assert [h["name"] for h in first["items"]] == ["a2.txt", "a3.txt"]
    rest = search(alice, "orchard -pear", limit=2, cursor=first["next_cursor"])
    assert [h["name"] for h in rest["items"]] == ["a4.txt"] and rest["next_cursor"] is None
    # A name match still ranks above every content match.
    upload(alice, "orchard-plan.txt", b"nothing here")
    index(api)
    assert names(alice, "orchard -pear")[0] == "orchard-plan.txt"
    # With the window wider than the matches, every match is found.
    monkeypatch.setattr(repository, "RANK_WINDOW", 200)
    assert sorted(names(alice, "orchard -pear")) == sorted([*mine, "orchard-plan.txt"])
