"""Comment tests reuse the sharing tests' fast in-process password hashing."""

from tests.sharing.conftest import _fast_password_hashes

__all__ = ["_fast_password_hashes"]
