"""The `If:` request header (RFC 4918 section 10.4): lists of lock-token and ETag
conditions, optionally tagged with the resource they apply to."""

from __future__ import annotations

from dataclasses import dataclass, field

from docstore.errors import BadRequest


@dataclass
class Condition:
    """One condition: a state token (`<...>`) or an entity tag (`[...]`), maybe negated."""

    negated: bool
    token: str | None = None
    etag: str | None = None


@dataclass
class IfList:
    """A parenthesised list (all conditions must hold), maybe tagged with a resource."""

    resource: str | None
    conditions: list[Condition] = field(default_factory=list)


def parse(value: str | None) -> list[IfList]:
    """The header's lists, in order; 400 when it is malformed."""
    if value is None:
        return []
    lists: list[IfList] = []
    resource: str | None = None
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c.isspace():
            i += 1
        elif c == "<":
            end = value.find(">", i)
            if end < 0:
                raise BadRequest("Malformed If header: unterminated resource tag.")
            resource = value[i + 1 : end]
            i = end + 1
        elif c == "(":
            current = IfList(resource)
            i += 1
            negated = False
            while True:
                while i < n and value[i].isspace():
                    i += 1
                if i >= n:
                    raise BadRequest("Malformed If header: unterminated list.")
                c = value[i]
                if c == ")":
                    i += 1
                    break
                if value.startswith("Not", i) or value.startswith("not", i):
                    negated = True
                    i += 3
                elif c == "<":
                    end = value.find(">", i)
                    if end < 0:
                        raise BadRequest("Malformed If header: unterminated state token.")
                    current.conditions.append(Condition(negated, token=value[i + 1 : end]))
                    negated = False
                    i = end + 1
                elif c == "[":
                    end = value.find("]", i)
                    if end < 0:
                        raise BadRequest("Malformed If header: unterminated entity tag.")
                    tag = value[i + 1 : end].strip()
                    current.conditions.append(Condition(negated, etag=tag))
                    negated = False
                    i = end + 1
                else:
                    raise BadRequest("Malformed If header.")
            if not current.conditions:
                raise BadRequest("Malformed If header: empty list.")
            lists.append(current)
        else:
            raise BadRequest("Malformed If header.")
    return lists


def submitted_tokens(lists: list[IfList]) -> frozenset[str]:
    """Every lock token the header presents (not negated)."""
    return frozenset(
        c.token for lst in lists for c in lst.conditions if c.token is not None and not c.negated
    )
