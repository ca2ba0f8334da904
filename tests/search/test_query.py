"""The query language on its own: what each piece of syntax means, and that any string
either parses or is refused with a reason (never another exception)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docstore.errors import BadRequest
from docstore.search.query import fts_any, fts_match, parse, ts_any, tsquery


def test_syntax() -> None:
    q = parse('Quarterly-Report "exact phrase" -draft name:budg* plain')
    [dashed, phrase, plain_name, _plain] = q.positive
    assert dashed.words == ("Quarterly", "Report") and not dashed.exact
    assert phrase.words == ("exact", "phrase") and phrase.exact
    assert plain_name.name_only and plain_name.prefix
    assert [t.words for t in q.negative] == [("draft",)]
    assert fts_match(q.positive, names=True) == (
        '"Quarterly Report"* AND "exact phrase" AND "budg"* AND "plain"*'
    )
    assert fts_match(q.positive, names=False) == (
        '"Quarterly Report" AND "exact phrase" AND "budg"* AND "plain"'
    )
    assert tsquery(q.positive, names=False) == (
        "('Quarterly' <-> 'Report') & ('exact' <-> 'phrase') & 'budg':* & 'plain'"
    )
    assert fts_any(q.negative) == '"draft"' and ts_any(q.negative) == "'draft'"
    # Operators of the engines are words here, quotes inside words cannot break out.
    assert parse("NOT OR AND NEAR").positive[0].words == ("NOT",)
    assert fts_match(parse('a"b').positive, names=False) == '"a" AND "b"'


@pytest.mark.parametrize("q", ["", "   ", "-a", "-a -b", "*** ---", '"', "x" * 501])
def test_nothing_to_find_is_refused_with_a_reason(q: str) -> None:
    with pytest.raises(BadRequest) as exc:
        parse(q)
    assert exc.value.args and exc.value.args[0]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_any_string_parses_or_is_refused(q: str) -> None:
    try:
        parsed = parse(q)
    except BadRequest:
        return
    assert parsed.positive
    for term in parsed.terms:
        assert term.words and all(w.isalnum() for w in term.words)
