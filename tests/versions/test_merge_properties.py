"""Property: edits to disjoint line ranges always merge cleanly and keep both edits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from docstore.versions.merge import is_text_type, merge_texts

line = st.text(alphabet="abcdefgh XYZ", min_size=0, max_size=12).map(lambda s: s + "\n")


Case = tuple[list[str], list[str], list[str], list[str]]


@st.composite
def disjoint_edits(draw: st.DrawFn) -> Case:
    """(base, current, incoming, expected merge): each side edits its own range."""
    # Lines are numbered so each is unique: with repeated lines, where an edit "is" is
    # ambiguous to any diff (git's included), and the property would not be well defined.
    texts = draw(st.lists(line, min_size=4, max_size=30))
    base = [f"{i}:{t}" for i, t in enumerate(texts)]
    # Split the base into [0, cut) for "current" and [cut + 1, n) for "incoming", leaving at
    # least one untouched line between them so the hunks are not adjacent.
    cut = draw(st.integers(min_value=1, max_value=len(base) - 3))
    left, right = base[:cut], base[cut + 1 :]

    def edit(lines: list[str], tag: str) -> list[str]:
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        new = f"<{tag}>\n"
        if kind == "replace":
            return [*lines[:i], new, *lines[i + 1 :]]
        if kind == "insert":
            return [*lines[:i], new, *lines[i:]]
        return lines[:i] + lines[i + 1 :] + [new]  # delete one line, mark the range

    edited_left, edited_right = edit(left, "current"), edit(right, "incoming")
    current = [*edited_left, base[cut], *right]
    incoming = [*left, base[cut], *edited_right]
    # Each side's range as that side left it, and the untouched line between them.
    expected = [*edited_left, base[cut], *edited_right]
    return base, current, incoming, expected


@settings(max_examples=200, deadline=None)
@given(disjoint_edits())
def test_disjoint_edits_merge_cleanly(case: Case) -> None:
    base, current, incoming, expected = ("".join(x).encode() for x in case)
    result = merge_texts(base, current, incoming)
    assert result.conflicts == 0
    # Exactly both edits and nothing else: not a concatenation, no line lost or doubled.
    assert result.data == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(line, min_size=1, max_size=20), st.booleans(), st.booleans())
def test_line_endings_and_final_newline_never_conflict(
    lines: list[str], crlf_current: bool, drop_final: bool
) -> None:
    base = "".join(lines)
    current = base.replace("\n", "\r\n") if crlf_current else base
    incoming = base[:-1] if drop_final else base
    result = merge_texts(base.encode(), current.encode(), incoming.encode())
    assert result.conflicts == 0
    # Each side's one change wins: current's line endings, incoming's missing final newline.
    expected = incoming.replace("\n", "\r\n") if crlf_current else incoming
    assert result.data == expected.encode()


def test_text_types() -> None:
    for mime in (
        "text/plain",
        "text/markdown",
        "application/json",
        "text/csv",
        "application/xml",
        "application/ld+json",
        "text/x-python; charset=utf-8",
    ):
        assert is_text_type(mime), mime
    for mime in ("image/png", "application/pdf", "application/octet-stream"):
        assert not is_text_type(mime), mime
