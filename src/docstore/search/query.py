"""The search query language: words (all must match), "exact phrase", -word, prefix*,
name:word; and its translation into an FTS5 MATCH string and a PostgreSQL tsquery.

Parsing never fails on odd input: quotes left open close at the end, stray operators and
punctuation are read as word separators. Only a query with nothing to look for (no
words, or only exclusions) or one too long is refused, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from docstore.errors import BadRequest

MAX_QUERY_CHARS = 500
MAX_TERMS = 16
MAX_WORD_CHARS = 64


@dataclass(frozen=True)
class Term:
    """One clause: its words (several: a phrase), and how it matches."""

    words: tuple[str, ...]
    prefix: bool = False  # the last word matches as a prefix
    negated: bool = False
    name_only: bool = False
    exact: bool = False  # typed as "a phrase" or word*: no implicit prefix on names


@dataclass(frozen=True)
class Query:
    """A parsed query: positive terms (all must match) and excluded ones."""

    terms: tuple[Term, ...]

    @property
    def positive(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if not t.negated)

    @property
    def negative(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.negated)

    @property
    def name_only(self) -> bool:
        """Every positive term is limited to names: content can not match."""
        return all(t.name_only for t in self.positive)


def words_of(text: str) -> tuple[str, ...]:
    """The words of `text` as the indexes split them: runs of letters and digits."""
    out: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch.isalnum():
            current.append(ch)
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return tuple(w[:MAX_WORD_CHARS] for w in out)


def _chunks(q: str) -> list[tuple[str, bool, bool, bool]]:
    """(text, quoted, negated, name_only) for each clause of the raw query."""
    out: list[tuple[str, bool, bool, bool]] = []
    i, n = 0, len(q)
    while i < n:
        if q[i].isspace():
            i += 1
            continue
        negated = name_only = False
        if q[i] == "-":
            negated, i = True, i + 1
        if q[i : i + 5].lower() == "name:":
            name_only, i = True, i + 5
        if i < n and q[i] == "-" and not negated:
            negated, i = True, i + 1
        if i < n and q[i] == '"':
            end = q.find('"', i + 1)
            end = n if end < 0 else end
            text, i = q[i + 1 : end], end + 1
            if i < n and q[i] == "*":
                text, i = text + "*", i + 1
            out.append((text, True, negated, name_only))
            continue
        start = i
        while i < n and not q[i].isspace() and q[i] != '"':
            i += 1
        out.append((q[start:i], False, negated, name_only))
    return out


def parse(q: str) -> Query:
    """Parse a query, or 400 bad_request with the reason when there is nothing to find."""
    if len(q) > MAX_QUERY_CHARS:
        raise BadRequest(f"The query is longer than {MAX_QUERY_CHARS} characters.")
    terms: list[Term] = []
    for text, quoted, negated, name_only in _chunks(q):
        words = words_of(text)
        if not words:
            continue
        prefix = text.rstrip().endswith("*")
        terms.append(Term(words, prefix, negated, name_only, exact=quoted or prefix))
    if len(terms) > MAX_TERMS:
        raise BadRequest(f"The query has more than {MAX_TERMS} terms.")
    query = Query(tuple(terms))
    if not query.positive:
        raise BadRequest("The query has no words to look for (only exclusions or symbols).")
    return query


# -- SQLite FTS5 --------------------------------------------------------------------------


def _fts_term(term: Term, *, names: bool) -> str:
    quoted = '"' + " ".join(w.replace('"', '""') for w in term.words) + '"'
    if term.prefix or (names and not term.exact):
        quoted += "*"
    return quoted


def fts_match(terms: tuple[Term, ...], *, names: bool) -> str:
    """An FTS5 MATCH string requiring every term (bare words match name prefixes)."""
    return " AND ".join(_fts_term(t, names=names) for t in terms)


def fts_words(terms: tuple[Term, ...]) -> str:
    """`fts_match` with each phrase read as its words (all required, in any order): what
    bm25 ranks. A phrase's bm25 needs the number of texts holding the phrase, which FTS5
    counts by checking the phrase in every text of its words (36 ms for two words found
    in every text); a word's count is stored."""
    return " AND ".join(
        _fts_term(Term((w,), t.prefix and i == len(t.words) - 1), names=False)
        for t in terms
        for i, w in enumerate(t.words)
    )


def fts_any(terms: tuple[Term, ...]) -> str:
    """An FTS5 MATCH string for any of the terms, as typed (exclusions)."""
    return " OR ".join(_fts_term(t, names=False) for t in terms)


# -- PostgreSQL tsquery -------------------------------------------------------------------


def _ts_term(term: Term, *, names: bool) -> str:
    lexemes = [f"'{w}'" for w in term.words]  # words are letters and digits only
    if term.prefix or (names and not term.exact):
        lexemes[-1] += ":*"
    inner = " <-> ".join(lexemes)
    return f"({inner})" if len(lexemes) > 1 else inner


def tsquery(terms: tuple[Term, ...], *, names: bool) -> str:
    """A to_tsquery string requiring every term (bare words match name prefixes)."""
    return " & ".join(_ts_term(t, names=names) for t in terms)


def ts_any(terms: tuple[Term, ...]) -> str:
    """A to_tsquery string for any of the terms, as typed (exclusions)."""
    return " | ".join(_ts_term(t, names=False) for t in terms)
