"""Where `docstore login` keeps the server URL and token: the user config dir, mode 0600.

`DOCSTORE_URL` and `DOCSTORE_TOKEN` override what is saved (for scripts and CI).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import typer

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass
class Credentials:
    """The server to talk to and the token to use (None when not logged in)."""

    url: str
    token: str | None
    email: str | None = None


def config_dir() -> Path:
    """The user config directory (`typer.get_app_dir`), e.g. ~/.config/docstore."""
    return Path(typer.get_app_dir("docstore"))


def credentials_path() -> Path:
    """The file holding the saved login."""
    return config_dir() / "credentials.json"


def _saved() -> dict[str, str]:
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return {}
    return (
        {k: str(v) for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}
    )


def load() -> Credentials:
    """The saved login, overridden by DOCSTORE_URL / DOCSTORE_TOKEN."""
    saved = _saved()
    url = os.environ.get("DOCSTORE_URL") or saved.get("url") or DEFAULT_URL
    token = os.environ.get("DOCSTORE_TOKEN") or saved.get("token")
    return Credentials(url=url.rstrip("/"), token=token, email=saved.get("email"))


def save(url: str, token: str, email: str) -> Path:
    """Write the login atomically, readable by the user only (dir 0700, file 0600)."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = credentials_path()
    tmp = directory / f".credentials.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"url": url.rstrip("/"), "token": token, "email": email}, f)
        os.chmod(tmp, 0o600)  # whatever the umask said
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def clear() -> bool:
    """Forget the saved login; whether there was one."""
    path = credentials_path()
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
