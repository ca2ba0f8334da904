"""What sync leaves alone: its own state folder, editors' temporary files, `.docstoreignore`.

`.docstoreignore` (at the top of the sync folder) uses gitignore syntax. It is parsed by
`pathspec`, already in the environment: gitignore matching (anchoring, `**`, negation with
`!`, directory-only patterns with a trailing `/`) is subtle enough that a home-made matcher
would be a source of sync bugs.
"""

from __future__ import annotations

from pathlib import Path

import pathspec

from docstore.client.sync.state import STATE_DIR

IGNORE_FILE = ".docstoreignore"
# Editors' lock and swap files, half-written temporaries, Finder metadata.
BUILTIN = ["~$*", ".~lock*", "*.swp", "*.tmp", ".DS_Store", f"/{STATE_DIR}/"]


class Ignore:
    """Decides, for a relative POSIX path, whether sync skips it."""

    def __init__(self, patterns: list[str]) -> None:
        self.spec = pathspec.GitIgnoreSpec.from_lines(BUILTIN + patterns)

    @classmethod
    def for_dir(cls, local_dir: Path) -> Ignore:
        try:
            lines = (local_dir / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            lines = []
        return cls(lines)

    def file(self, rel: str) -> bool:
        return bool(self.spec.match_file(rel))

    def dir(self, rel: str) -> bool:
        return bool(self.spec.match_file(rel + "/"))
