"""The password rule, checked on register, reset, change and admin create: at least
`MIN_LENGTH` characters and not one of the common passwords shipped with the package
(`data/common-passwords.txt`, compared case-insensitively, spaces ignored)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated

from pydantic import AfterValidator, Field

MIN_LENGTH = 10
MAX_LENGTH = 1024


def _key(password: str) -> str:
    return "".join(password.split()).casefold()


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list (one per line; `#` starts a comment)."""
    text = resources.files("docstore.users").joinpath("data/common-passwords.txt").read_text()
    lines = (line.strip() for line in text.splitlines())
    return frozenset(_key(line) for line in lines if line and not line.startswith("#"))


def problem(password: str) -> str | None:
    """Why `password` is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    key = _key(password)
    if key in common_passwords() or len(set(key)) <= 2:
        return "this password is too common: choose another"
    return None


def _validate(password: str) -> str:
    reason = problem(password)
    if reason is not None:
        raise ValueError(reason)
    return password


NewPassword = Annotated[
    str, Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH), AfterValidator(_validate)
]
"""A request field that sets a password: 422 `validation_error` with the reason."""
