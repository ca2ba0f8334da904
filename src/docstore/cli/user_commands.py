"""The everyday `docstore` commands: files, versions, sharing and trash over the HTTP API.

They use `docstore.client` against the server saved by `docstore login` (or DOCSTORE_URL and
DOCSTORE_TOKEN). Paths like /projects/q1/plan.md are resolved through the API; `doc:ID` and
`folder:ID` name an item by id (for items others shared with you). Output is a table by
default and JSON with `--json`; errors map to the exit codes in `docstore.cli.exit_codes`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from docstore.cli import credentials, exit_codes
from docstore.cli.exit_codes import CliError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from docstore.client import Child, DocstoreClient, Node, Share, Version
    from docstore.client.models import Id

EPILOG = exit_codes.HELP
FILES = "Files (over HTTP, after docstore login)"
SHARING = "Sharing and comments (over HTTP)"
ACCOUNT = "Account (over HTTP)"

commands = typer.Typer()
trash_app = typer.Typer(
    help="List the trash, restore items from it or purge them. Example: docstore trash",
    invoke_without_command=True,
    epilog=EPILOG,
)
commands.add_typer(trash_app, name="trash", rich_help_panel=FILES)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
_REF = re.compile(r"^(doc|folder):(\S+)$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(app: typer.Typer) -> None:
    """Add the user commands to `app`; errors then exit with the documented codes."""
    app.add_typer(commands)
    app.info.cls = exit_codes.ExitCodeGroup
    app.info.epilog = EPILOG


# -- helpers ----------------------------------------------------------------------------------


def connect(*, login_required: bool = True) -> DocstoreClient:
    """A client for the saved (or DOCSTORE_URL/DOCSTORE_TOKEN) server and token."""
    from docstore.client import DocstoreClient

    creds = credentials.load()
    if login_required and not creds.token:
        raise CliError(
            "not logged in: run `docstore login` (or set DOCSTORE_URL and DOCSTORE_TOKEN)",
            exit_codes.AUTH,
        )
    return DocstoreClient(creds.url, creds.token)


def emit_json(value: Any) -> None:
    """Print a JSON document on stdout."""
    typer.echo(json.dumps(value, default=str, indent=2))


def human(n: int | None) -> str:
    """1536 → '1.5 KiB'."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - unreachable


def files(n: int) -> str:
    """'1 file', '2 files'."""
    return f"{n} file" if n == 1 else f"{n} files"


def when(value: datetime | None) -> str:
    """A timestamp in local time, to the minute."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


def parse_expiry(value: str | None) -> datetime | None:
    """'7d', '12h', '30m', '2w' from now, or an ISO 8601 time."""
    if value is None:
        return None
    match = _DURATION.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return datetime.now(UTC) + delta
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration like 7d, 12h, 30m nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve(ds: DocstoreClient, path: str) -> Node:
    """A path in the caller's tree, or `doc:ID` / `folder:ID`."""
    from docstore.client import Node

    ref = _REF.match(path)
    if ref is None:
        try:
            return ds.resolve(path)
        except ValueError as exc:
            raise CliError(str(exc), exit_codes.USAGE) from None
    kind, ident = ref.groups()
    if kind == "doc":
        doc = ds.get_document(ident)
        return Node(
            kind="document",
            id=doc.id,
            name=doc.name,
            path=path,
            parent_id=doc.parent_folder_id,
            size_bytes=doc.size_bytes,
            current_version_id=doc.current_version.id if doc.current_version else None,
        )
    folder = ds.get_folder(ident)
    return Node(
        kind="folder", id=folder.id, name=folder.name, path=path, parent_id=folder.parent_id
    )


def document(ds: DocstoreClient, path: str) -> Node:
    """A path that must name a document."""
    node = resolve(ds, path)
    if node.kind != "document":
        raise CliError(f"{path} is a folder, not a document", exit_codes.USAGE)
    return node


def version_by_number(ds: DocstoreClient, doc_id: Id, number: int) -> Version:
    """The version with this number (as `docstore versions` shows them)."""
    for version in ds.iter_versions(doc_id):
        if version.version_number == number:
            return version
    raise CliError(f"there is no version {number}", exit_codes.NOT_FOUND)


def parent_and_name(path: str) -> tuple[str, str]:
    """'/a/b/c' → ('/a/b', 'c')."""
    pure = PurePosixPath("/" + path.strip("/"))
    if not pure.name:
        raise CliError("the root folder has no name", exit_codes.USAGE)
    return str(pure.parent), pure.name


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Progress]:
    """Rich progress bars on stderr (drawn only when stderr is a terminal)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled or not err.is_terminal,
    )
    with progress:
        yield progress


def _share_row(share: Share) -> dict[str, Any]:
    return {
        "id": share.id,
        "permission": share.permission,
        "with": "link" if share.kind == "link" else share.email or share.user_id,
        "expires": when(share.expires_at),
        "active": share.is_active,
        "password": "yes" if share.has_password else "",
    }


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table with these columns."""
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


# -- account ----------------------------------------------------------------------------------


@commands.command(rich_help_panel=ACCOUNT, epilog=EPILOG)
def login(
    url: Annotated[
        str | None, typer.Option(help="Server address (asked for when not given).")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Account email (asked for).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (scripts).")
    ] = False,
) -> None:
    """Sign in and save the token in the user config directory (mode 0600).

    DOCSTORE_URL and DOCSTORE_TOKEN, when set, override the saved login.

    Example: docstore login --url https://docs.example.com --email ann@example.com
    """
    from docstore.client import DocstoreClient

    saved = credentials.load()
    url = url or typer.prompt("Server URL", default=saved.url, err=True)
    email = email or typer.prompt("Email", default=saved.email or None, err=True)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, err=True)
    with DocstoreClient(url) as ds:
        token = ds.login(email, password)
    path = credentials.save(url, token.token, token.user.email)
    err.print(f"Logged in to {url} as {token.user.email}; token saved in {path} (mode 0600).")


@commands.command(rich_help_panel=ACCOUNT, epilog=EPILOG)
def logout() -> None:
    """Revoke the saved token and forget it.

    Example: docstore logout
    """
    creds = credentials.load()
    if creds.token:
        from docstore.client import DocstoreClient, Unauthenticated

        # An expired or revoked token: forgetting it is all that is left to do.
        with DocstoreClient(creds.url, creds.token) as ds, suppress(Unauthenticated):
            ds.logout()
    credentials.clear()
    err.print("Logged out.")


@commands.command(rich_help_panel=ACCOUNT, epilog=EPILOG)
def whoami(as_json: JsonOpt = False) -> None:
    """Show the signed-in account, its plan and how much of the quota is used.

    Example: docstore whoami --json
    """
    with connect() as ds:
        me = ds.me()
    if as_json:
        emit_json({**me.model_dump(mode="json"), "url": ds.base_url})
        return
    out.print(
        table(
            f"{me.email} on {ds.base_url}",
            ["name", "plan", "used", "quota", "admin"],
            [[me.name, me.plan, human(me.used_bytes), human(me.quota_bytes), me.is_admin]],
        )
    )


# -- browsing ---------------------------------------------------------------------------------


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def ls(
    path: Annotated[str, typer.Argument(help="Folder or document; default: your root.")] = "/",
    as_json: JsonOpt = False,
) -> None:
    """List a folder (or show one document).

    Example: docstore ls /projects/q1
    """
    with connect() as ds:
        node = resolve(ds, path)
        if node.kind == "document":
            doc = ds.get_document(node.id)
            items: list[Any] = [doc]
            rows = [[doc.name, "file", human(doc.size_bytes), when(doc.updated_at), doc.id]]
        else:
            children = list(ds.iter_children(node.id))
            items = children
            rows = [
                [
                    c.name + ("/" if c.kind == "folder" else ""),
                    "folder" if c.kind == "folder" else "file",
                    human(c.size_bytes) if c.kind == "document" else "",
                    when(c.updated_at),
                    c.id,
                ]
                for c in children
            ]
    if as_json:
        emit_json([i.model_dump(mode="json") for i in items])
        return
    out.print(table(node.path, ["name", "type", "size", "modified", "id"], rows))


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def mkdir(
    path: Annotated[str, typer.Argument(help="Folder to create.")],
    parents: Annotated[
        bool, typer.Option("-p", "--parents", help="Create missing parents; no error if it exists.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a folder.

    Example: docstore mkdir -p /projects/q1/drafts
    """
    with connect() as ds:
        if parents:
            node = ds.makedirs(path)
            folder = ds.get_folder(node.id)
        else:
            parent_path, name = parent_and_name(path)
            parent = resolve(ds, parent_path)
            if parent.kind != "folder":
                raise CliError(f"{parent_path} is not a folder", exit_codes.USAGE)
            folder = ds.create_folder(name, parent.id)
    if as_json:
        emit_json(folder.model_dump(mode="json"))
    else:
        err.print(f"folder {path} (id {folder.id})")


# -- upload -----------------------------------------------------------------------------------


@dataclass
class _Job:
    """One local file to send, and what happened to it."""

    local: Path
    remote: str
    folder_id: Id
    size: int
    existing: Child | None
    sha256: str = ""
    action: str = "pending"
    document_id: Id | None = None
    version_number: int | None = None
    bytes_sent: int = 0
    parts_sent: list[int] = field(default_factory=list)
    parts_resumed: int = 0
    error: str | None = None
    exit_code: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "local": str(self.local),
            "remote": self.remote,
            "action": self.action,
            "size_bytes": self.size,
            "sha256": self.sha256,
            "document_id": self.document_id,
            "version_number": self.version_number,
            "bytes_sent": self.bytes_sent,
            "parts_sent": self.parts_sent,
            "parts_resumed": self.parts_resumed,
            "error": self.error,
        }


class _RemoteTree:
    """Remote folders by id with their children listed once, for a whole upload."""

    def __init__(self, ds: DocstoreClient) -> None:
        self.ds = ds
        self.listed: dict[str, dict[str, Child]] = {}

    def children(self, folder_id: Id) -> dict[str, Child]:
        key = str(folder_id)
        if key not in self.listed:
            self.listed[key] = {c.name: c for c in self.ds.iter_children(folder_id)}
        return self.listed[key]

    def folder(self, parent_id: Id, name: str, remote: str) -> Id:
        from docstore.client import Child

        name = _nfc(name)
        child = self.children(parent_id).get(name)
        if child is None:
            created = self.ds.ensure_folder(name, parent_id)
            child = Child(kind="folder", id=created.id, name=created.name)
            self.children(parent_id)[name] = child
        elif child.kind != "folder":
            raise CliError(f"{remote} exists and is a document, not a folder", exit_codes.CONFLICT)
        return child.id


def _nfc(name: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", name)


def _plan_upload(ds: DocstoreClient, src: Path, dest: str) -> list[_Job]:
    """Create the remote folders and list what each local file should become."""
    base = ds.makedirs(dest)
    tree = _RemoteTree(ds)
    prefix = base.path.rstrip("/")

    def job(local: Path, folder_id: Id, remote_dir: str) -> _Job:
        name = _nfc(local.name)
        existing = tree.children(folder_id).get(name)
        remote = f"{remote_dir}/{name}"
        if existing is not None and existing.kind == "folder":
            raise CliError(f"{remote} exists and is a folder", exit_codes.CONFLICT)
        return _Job(local, remote, folder_id, local.stat().st_size, existing)

    if src.is_file():
        return [job(src, base.id, prefix)]
    jobs: list[_Job] = []
    top_remote = f"{prefix}/{_nfc(src.resolve().name)}"
    folder_ids: dict[Path, Id] = {src: tree.folder(base.id, src.resolve().name, top_remote)}
    remote_dirs: dict[Path, str] = {src: top_remote}
    for dirpath_str, dirnames, filenames in os.walk(src):
        dirpath = Path(dirpath_str)
        dirnames.sort()
        folder_id, remote_dir = folder_ids[dirpath], remote_dirs[dirpath]
        for d in dirnames:
            sub = dirpath / d
            remote_dirs[sub] = f"{remote_dir}/{_nfc(d)}"
            folder_ids[sub] = tree.folder(folder_id, d, remote_dirs[sub])
        for f in sorted(filenames):
            local = dirpath / f
            if local.is_file():  # regular files and links to them; not sockets or fifos
                jobs.append(job(local, folder_id, remote_dir))
    return jobs


def _run_upload_job(
    ds: DocstoreClient,
    job: _Job,
    *,
    parallel: int,
    threshold: int,
    progress: Progress,
    overall: TaskID,
    on_part: Callable[[int, int], None] | None,
) -> None:
    """Send one file unless the same bytes are already its current version."""
    from docstore.client import DocstoreError

    existing = job.existing
    try:
        if existing is not None and existing.size_bytes == job.size:
            current = ds.get_document(existing.id).current_version
            if current is not None and current.checksum_sha256 == job.sha256:
                job.action = "unchanged"
                job.document_id = existing.id
                job.version_number = current.version_number
                progress.advance(overall, job.size)
                return
        task = None
        if job.size >= threshold:
            task = progress.add_task(job.local.name, total=job.size)

        def advance(n: int) -> None:
            progress.advance(overall, n)
            if task is not None:
                progress.advance(task, n)

        result = ds.upload_file(
            job.local,
            folder_id=job.folder_id,
            document_id=existing.id if existing else None,
            base_version_id=existing.current_version_id if existing else None,
            checksum_sha256=job.sha256,
            multipart_threshold=threshold,
            parallel=parallel,
            progress=advance,
            on_part=on_part,
        )
        if task is not None:
            progress.remove_task(task)
        doc = result.document
        job.document_id = doc.id
        job.version_number = doc.current_version.version_number if doc.current_version else None
        job.bytes_sent = result.bytes_sent
        job.parts_sent = result.parts_sent
        job.parts_resumed = result.parts_resumed
        if result.method == "skipped":
            job.action = "deduplicated"
        else:
            job.action = "new version" if existing else "uploaded"
    except DocstoreError as exc:
        job.action, job.error, job.exit_code = (
            "failed",
            str(exc),
            exit_codes.for_code(exc.code, exc.status),
        )
    except OSError as exc:
        job.action, job.error, job.exit_code = "failed", str(exc), exit_codes.ERROR


def _kill_after(parts: int) -> Callable[[int, int], None]:
    """Fault injection for the resume test: SIGKILL this process once `parts` parts are saved."""

    def on_part(_: int, done: int) -> None:
        if done >= parts:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    return on_part


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def upload(
    src: Annotated[Path, typer.Argument(help="Local file or directory (recursive).")],
    dest: Annotated[str, typer.Argument(help="Remote folder; created if missing.")] = "/",
    parallel: Annotated[
        int, typer.Option(min=1, max=32, help="Files, and parts of a large file, sent at once.")
    ] = 4,
    multipart_threshold: Annotated[
        int,
        typer.Option(help="Files of at least this many bytes go as resumable multipart uploads."),
    ] = 16 * 1024 * 1024,
    as_json: JsonOpt = False,
    kill_after_parts: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Upload a file or a directory tree; content already stored is not sent again.

    A file whose SHA-256 equals the current version of the remote document of that name is
    skipped; a changed file becomes a new version. Large files go in parallel parts and an
    interrupted upload resumes where it stopped when the command is run again.

    Example: docstore upload ./reports /projects/q1
    """
    from docstore.client.transfer import file_sha256

    if not src.exists():
        raise CliError(f"{src}: no such file or directory", exit_codes.NOT_FOUND)
    with connect() as ds:
        jobs = _plan_upload(ds, src, dest)
        total = sum(j.size for j in jobs)
        with progress_bars(not as_json) as progress:
            hashing = progress.add_task("hashing", total=total)
            for j in jobs:
                j.sha256 = file_sha256(j.local, lambda n: progress.advance(hashing, n))
            progress.remove_task(hashing)
            overall = progress.add_task(f"uploading {files(len(jobs))}", total=total)
            on_part = _kill_after(kill_after_parts) if kill_after_parts else None
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                list(
                    pool.map(
                        lambda j: _run_upload_job(
                            ds,
                            j,
                            parallel=parallel,
                            threshold=multipart_threshold,
                            progress=progress,
                            overall=overall,
                            on_part=on_part,
                        ),
                        jobs,
                    )
                )
    counts = {a: sum(1 for j in jobs if j.action == a) for a in _ACTIONS}
    sent = sum(j.bytes_sent for j in jobs)
    failed = [j for j in jobs if j.action == "failed"]
    if as_json:
        emit_json(
            {
                "files": len(jobs),
                **{k.replace(" ", "_"): v for k, v in counts.items()},
                "bytes_sent": sent,
                "items": [j.row() for j in jobs],
            }
        )
    else:
        for j in failed:
            err.print(f"[red]failed[/] {j.local} → {j.remote}: {j.error}", highlight=False)
        out.print(
            f"{files(len(jobs))}: {counts['uploaded']} uploaded, {counts['new version']} new "
            f"version(s), {counts['unchanged']} unchanged (skipped), "
            f"{counts['deduplicated']} already stored (deduplicated), "
            f"{counts['failed']} failed; {human(sent)} sent",
            highlight=False,
        )
    if failed:
        raise typer.Exit(failed[0].exit_code or exit_codes.ERROR)


_ACTIONS = ("uploaded", "new version", "unchanged", "deduplicated", "failed")


# -- download ---------------------------------------------------------------------------------


def _remote_files(
    ds: DocstoreClient, folder_id: Id, local: Path, remote: str
) -> Iterator[tuple[Child, Path, str]]:
    """Every document below a folder: (child, local path, remote path); folders created."""
    local.mkdir(parents=True, exist_ok=True)
    for child in ds.iter_children(folder_id):
        if "/" in child.name or child.name in (".", ".."):
            continue  # never write outside the target directory
        path = f"{remote.rstrip('/')}/{child.name}"
        if child.kind == "folder":
            yield from _remote_files(ds, child.id, local / child.name, path)
        else:
            yield child, local / child.name, path


def _download_row(remote: str, local: Path, version: Version) -> dict[str, Any]:
    return {
        "remote": remote,
        "local": str(local),
        "version_number": version.version_number,
        "size_bytes": version.size_bytes,
        "sha256": version.checksum_sha256,
    }


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def download(
    path: Annotated[str, typer.Argument(help="Document, or folder (downloaded recursively).")],
    version: Annotated[
        int | None, typer.Option("--version", help="Version number (default: current).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Local file or directory.")
    ] = None,
    parallel: Annotated[int, typer.Option(min=1, max=32, help="Files fetched at once.")] = 4,
    as_json: JsonOpt = False,
) -> None:
    """Download a document (verifying its SHA-256), or a whole folder.

    Example: docstore download /projects/q1/plan.md --version 2 -o plan-v2.md
    """
    with connect() as ds:
        node = resolve(ds, path)
        if node.kind == "document":
            version_id = version_by_number(ds, node.id, version).id if version else None
            dest = output or Path(node.name)
            if dest.is_dir():
                dest = dest / node.name
            with progress_bars(not as_json) as progress:
                task = progress.add_task(node.name, total=node.size_bytes)
                got = ds.download(
                    node.id,
                    dest,
                    version_id=version_id,
                    progress=lambda n: progress.advance(task, n),
                )
            rows = [_download_row(node.path, dest, got)]
        else:
            if version is not None:
                raise CliError("--version applies to a document, not a folder", exit_codes.USAGE)
            dest = output or Path(node.name or "docstore")
            todo = list(_remote_files(ds, node.id, dest, node.path))
            with progress_bars(not as_json) as progress:
                total = sum(c.size_bytes or 0 for c, _, _ in todo)
                task = progress.add_task(f"downloading {files(len(todo))}", total=total)

                def fetch(item: tuple[Child, Path, str]) -> dict[str, Any]:
                    child, local, remote = item
                    got = ds.download(child.id, local, progress=lambda n: progress.advance(task, n))
                    return _download_row(remote, local, got)

                with ThreadPoolExecutor(max_workers=parallel) as pool:
                    rows = list(pool.map(fetch, todo))
    if as_json:
        emit_json({"files": len(rows), "bytes": sum(r["size_bytes"] for r in rows), "items": rows})
        return
    size = sum(r["size_bytes"] for r in rows)
    out.print(
        f"downloaded {files(len(rows))}, {human(size)}, to {dest}; SHA-256 verified",
        highlight=False,
    )


# -- moving and deleting ----------------------------------------------------------------------


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def mv(
    src: Annotated[str, typer.Argument(help="Item to move or rename.")],
    dst: Annotated[str, typer.Argument(help="Existing folder to move into, or the new path.")],
    as_json: JsonOpt = False,
) -> None:
    """Move and/or rename a document or folder.

    Example: docstore mv /drafts/plan.md /projects/q1/plan-final.md
    """
    from docstore.client import NotFound

    with connect() as ds:
        node = resolve(ds, src)
        if node.path == "/" or node.parent_id is None:
            raise CliError("the root folder cannot be moved", exit_codes.USAGE)
        try:
            target = resolve(ds, dst)
        except NotFound:
            target = None
        if target is not None and target.kind == "folder":
            parent_id, name = target.id, node.name
        elif target is not None:
            raise CliError(f"{dst} already exists", exit_codes.CONFLICT)
        else:
            parent_path, name = parent_and_name(dst)
            parent = resolve(ds, parent_path)
            if parent.kind != "folder":
                raise CliError(f"{parent_path} is not a folder", exit_codes.USAGE)
            parent_id = parent.id
        new_name = name if name != node.name else None
        moved = str(parent_id) != str(node.parent_id)
        if node.kind == "folder":
            result: Any = ds.update_folder(
                node.id, name=new_name, **({"parent_id": parent_id} if moved else {})
            )
        else:
            result = ds.update_document(
                node.id, name=new_name, **({"parent_folder_id": parent_id} if moved else {})
            )
    if as_json:
        emit_json(result.model_dump(mode="json"))
    else:
        err.print(f"moved {src} → {dst}")


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def rm(
    path: Annotated[str, typer.Argument(help="Document or folder to move to the trash.")],
    recursive: Annotated[
        bool, typer.Option("-r", "--recursive", help="Needed to remove a folder.")
    ] = False,
) -> None:
    """Move a document (or, with -r, a folder and all it holds) to the trash.

    Example: docstore rm -r /projects/old
    """
    with connect() as ds:
        node = resolve(ds, path)
        if node.kind == "folder":
            if not recursive:
                raise CliError(f"{path} is a folder: use rm -r", exit_codes.USAGE)
            if node.parent_id is None and node.path == "/":
                raise CliError("the root folder cannot be removed", exit_codes.USAGE)
            ds.delete_folder(node.id)
        else:
            ds.delete_document(node.id)
    err.print(f"moved {path} to the trash (docstore trash restore {node.name!r} brings it back)")


# -- versions ---------------------------------------------------------------------------------


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def versions(
    path: Annotated[str, typer.Argument(help="Document.")],
    as_json: JsonOpt = False,
) -> None:
    """List a document's versions, newest first.

    Example: docstore versions /projects/q1/plan.md
    """
    with connect() as ds:
        node = document(ds, path)
        items = list(ds.iter_versions(node.id))
    if as_json:
        emit_json([v.model_dump(mode="json") for v in items])
        return
    rows = [
        [
            v.version_number,
            human(v.size_bytes),
            v.checksum_sha256[:12],
            when(v.created_at),
            v.created_by,
            "✓" if v.is_current else "",
            "pinned" if v.keep_forever else "",
            v.id,
        ]
        for v in items
    ]
    out.print(
        table(
            node.path,
            ["version", "size", "sha256", "created", "by", "current", "kept", "id"],
            rows,
        )
    )


@commands.command(rich_help_panel=FILES, epilog=EPILOG)
def restore(
    path: Annotated[str, typer.Argument(help="Document.")],
    version: Annotated[int, typer.Option("--version", help="Version number to restore.")],
    as_json: JsonOpt = False,
) -> None:
    """Make an old version's content the current version again (as a new version).

    Example: docstore restore /projects/q1/plan.md --version 2
    """
    with connect() as ds:
        node = document(ds, path)
        old = version_by_number(ds, node.id, version)
        saved = ds.restore_version(node.id, old.id)
    if as_json:
        emit_json(saved.model_dump(mode="json"))
    else:
        err.print(f"restored version {version} of {path} as version {saved.version.version_number}")


# -- sharing ----------------------------------------------------------------------------------


def _target(node: Node) -> tuple[Id | None, Id | None]:
    """(document_id, folder_id) for a share of this node."""
    return (node.id, None) if node.kind == "document" else (None, node.id)


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def share(
    path: Annotated[str, typer.Argument(help="Document or folder.")],
    with_: Annotated[str, typer.Option("--with", help="Email of the person to share with.")],
    permission: Annotated[
        str, typer.Option(help="VIEW, COMMENT or EDIT.", case_sensitive=False)
    ] = "VIEW",
    expires: Annotated[
        str | None, typer.Option(help="Expiry: a duration (7d, 12h) or an ISO time.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Share a document or folder with a person (a folder share covers all below it).

    Example: docstore share /projects/q1 --with bob@example.com --permission EDIT
    """
    level = _permission(permission)
    with connect() as ds:
        node = resolve(ds, path)
        doc_id, folder_id = _target(node)
        created = ds.create_share(
            document_id=doc_id,
            folder_id=folder_id,
            permission=level,
            email=with_,
            expires_at=parse_expiry(expires),
        )
    if as_json:
        emit_json(created.model_dump(mode="json"))
    else:
        err.print(f"shared {path} with {with_} ({level}); share id {created.id}")


def _permission(value: str) -> Any:
    level = value.upper()
    if level not in ("VIEW", "COMMENT", "EDIT"):
        raise typer.BadParameter("permission must be VIEW, COMMENT or EDIT")
    return level


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def link(
    path: Annotated[str, typer.Argument(help="Document or folder.")],
    expires: Annotated[
        str | None, typer.Option(help="Expiry: a duration (7d, 12h, 30m) or an ISO time.")
    ] = None,
    password: Annotated[
        bool, typer.Option("--password", help="Protect the link with a password (asked for).")
    ] = False,
    permission: Annotated[
        str, typer.Option(help="VIEW, COMMENT or EDIT.", case_sensitive=False)
    ] = "VIEW",
    as_json: JsonOpt = False,
) -> None:
    """Create a link share that anyone with the URL can open.

    Example: docstore link /projects/q1/plan.md --expires 7d --password
    """
    level = _permission(permission)
    secret = None
    if password:
        secret = typer.prompt("Link password", hide_input=True, confirmation_prompt=True, err=True)
    with connect() as ds:
        node = resolve(ds, path)
        doc_id, folder_id = _target(node)
        created = ds.create_share(
            document_id=doc_id,
            folder_id=folder_id,
            permission=level,
            link=True,
            expires_at=parse_expiry(expires),
            password=secret,
        )
    if as_json:
        emit_json(created.model_dump(mode="json"))
        return
    url = created.url or (f"{ds.base_url}/api/v1/links/{created.token}" if created.token else "")
    out.print(url, highlight=False, soft_wrap=True)
    err.print(
        f"link to {path} ({level}), expires {when(created.expires_at) or 'never'}; "
        f"share id {created.id}"
    )


def _shares_of(ds: DocstoreClient, node: Node) -> list[Share]:
    if node.kind == "document":
        return ds.document_shares(node.id)
    return ds.folder_shares(node.id)


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def shares(
    path: Annotated[str, typer.Argument(help="Document or folder you own.")],
    as_json: JsonOpt = False,
) -> None:
    """List the shares of a document or folder.

    Example: docstore shares /projects/q1
    """
    with connect() as ds:
        items = _shares_of(ds, resolve(ds, path))
    if as_json:
        emit_json([s.model_dump(mode="json") for s in items])
        return
    rows = [list(_share_row(s).values()) for s in items]
    out.print(table(path, ["id", "permission", "with", "expires", "active", "password"], rows))


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def unshare(
    path: Annotated[str, typer.Argument(help="Document or folder you own.")],
    with_: Annotated[str | None, typer.Option("--with", help="Revoke this person's share.")] = None,
    links: Annotated[bool, typer.Option("--links", help="Revoke every link share.")] = False,
    share_id: Annotated[str | None, typer.Option("--id", help="Revoke this share id.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Revoke every share.")] = False,
) -> None:
    """Revoke shares of a document or folder, at once.

    Example: docstore unshare /projects/q1 --with bob@example.com
    """
    if not (with_ or links or share_id or all_):
        raise CliError("say which shares to revoke: --with EMAIL, --links, --id or --all", 2)
    with connect() as ds:
        chosen = []
        for s in _shares_of(ds, resolve(ds, path)):
            row = _share_row(s)
            if (
                all_
                or (share_id is not None and str(s.id) == share_id)
                or (links and row["with"] == "link")
                or (with_ is not None and str(row["with"]).lower() == with_.lower())
            ):
                chosen.append(s)
        if not chosen:
            raise CliError(f"no matching share on {path}", exit_codes.NOT_FOUND)
        for s in chosen:
            ds.delete_share(s.id)
    err.print(f"revoked {len(chosen)} share(s) of {path}")


def _user_id(ds: DocstoreClient, path: str, email: str) -> Id:
    """A user id for an email: from the shares on the item and its folders, or the admin list."""
    if email.isdigit():
        return int(email)
    wanted = email.strip().lower()
    from docstore.client import DocstoreError

    nodes: list[Node] = []
    with suppress(DocstoreError):
        nodes = ds.resolve_chain(path) if not _REF.match(path) else [resolve(ds, path)]
    for node in reversed(nodes):
        try:
            found = _shares_of(ds, node)
        except DocstoreError:
            continue
        for s in found:
            if s.user_id is not None and (s.email or "").lower() == wanted:
                return s.user_id
    with suppress(DocstoreError):  # an administrator can look anyone up
        for user in ds.admin_list_users():
            if user.email.lower() == wanted:
                return user.id
    raise CliError(
        f"no user {email} among the shares of {path}; pass their user id instead",
        exit_codes.NOT_FOUND,
    )


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def access(
    path: Annotated[str, typer.Argument(help="Document.")],
    user: Annotated[
        str | None, typer.Option("--user", help="Whose access (email or user id); default: yours.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the effective permission on a document and why (owner, direct, folder, link).

    Example: docstore access /projects/q1/plan.md --user bob@example.com
    """
    with connect() as ds:
        node = document(ds, path)
        user_id = _user_id(ds, path, user) if user else None
        result = ds.access(node.id, user_id)
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    rows = [[v.kind, v.share_id, v.folder_id] for v in result.via]
    title = f"{user or 'you'}: {result.permission or 'no access'} on {path}"
    out.print(table(title, ["via", "share id", "folder id"], rows))


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def shared(as_json: JsonOpt = False) -> None:
    """List what others shared with you (use doc:ID or folder:ID as a path for these).

    Example: docstore shared
    """
    with connect() as ds:
        items = ds.shared_with_me()
    if as_json:
        emit_json([i.model_dump(mode="json") for i in items])
        return
    rows = [
        [i.name, f"{'folder' if i.kind == 'folder' else 'doc'}:{i.id}", i.permission] for i in items
    ]
    out.print(table("shared with me", ["name", "path", "permission"], rows))


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def comment(
    path: Annotated[str, typer.Argument(help="Document.")],
    text: Annotated[str, typer.Argument(help="The comment.")],
    as_json: JsonOpt = False,
) -> None:
    """Comment on a document (needs COMMENT permission).

    Example: docstore comment /projects/q1/plan.md "Looks good, ship it"
    """
    with connect() as ds:
        node = document(ds, path)
        created = ds.add_comment(node.id, text)
    if as_json:
        emit_json(created.model_dump(mode="json"))
    else:
        err.print(f"comment {created.id} added to {path}")


@commands.command(rich_help_panel=SHARING, epilog=EPILOG)
def comments(
    path: Annotated[str, typer.Argument(help="Document.")],
    as_json: JsonOpt = False,
) -> None:
    """List a document's comments.

    Example: docstore comments /projects/q1/plan.md
    """
    with connect() as ds:
        items = ds.list_comments(document(ds, path).id)
    if as_json:
        emit_json([c.model_dump(mode="json") for c in items])
        return
    rows = [[when(c.created_at), c.author_id, c.body] for c in items]
    out.print(table(path, ["when", "author", "comment"], rows))


# -- trash ------------------------------------------------------------------------------------


def _trash_ref(item: Any) -> str:
    return f"{'folder' if item.kind == 'folder' else 'doc'}:{item.id}"


def _pick_trash(ds: DocstoreClient, refs: list[str]) -> list[Any]:
    """Trash items by `doc:ID` / `folder:ID` (as `docstore trash` shows) or by name."""
    items = ds.list_trash()
    picked = []
    for ref in refs:
        matches = [i for i in items if _trash_ref(i) == ref] or [
            i for i in items if i.name == _nfc(ref)
        ]
        if not matches:
            raise CliError(f"{ref} is not in the trash", exit_codes.NOT_FOUND)
        if len(matches) > 1:
            names = ", ".join(_trash_ref(i) for i in matches)
            raise CliError(f"{ref} is ambiguous: use one of {names}", exit_codes.USAGE)
        picked.append(matches[0])
    return picked


@trash_app.callback()
def trash(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the trash; `trash restore ITEM` and `trash purge ITEM|--all` act on it.

    Example: docstore trash
    """
    if ctx.invoked_subcommand is not None:
        return
    with connect() as ds:
        items = ds.list_trash()
    if as_json:
        emit_json([i.model_dump(mode="json") for i in items])
        return
    rows = [[i.name, i.kind, _trash_ref(i), when(i.deleted_at)] for i in items]
    out.print(table("trash", ["name", "type", "item", "deleted"], rows))


@trash_app.command("restore", epilog=EPILOG)
def trash_restore(
    items: Annotated[list[str], typer.Argument(help="doc:ID, folder:ID or a name.")],
    as_json: JsonOpt = False,
) -> None:
    """Put items back where they were (or in the root if that folder is gone).

    Example: docstore trash restore plan.md folder:12
    """
    restored = []
    with connect() as ds:
        for item in _pick_trash(ds, items):
            if item.kind == "folder":
                restored.append(ds.restore_folder(item.id).model_dump(mode="json"))
            else:
                restored.append(ds.restore_document(item.id).model_dump(mode="json"))
    if as_json:
        emit_json(restored)
    else:
        for r in restored:
            err.print(f"restored {r['name']}")


@trash_app.command("purge", epilog=EPILOG)
def trash_purge(
    items: Annotated[list[str] | None, typer.Argument(help="doc:ID, folder:ID or a name.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Purge the whole trash.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete trashed items for good: their versions go and the quota is released.

    Example: docstore trash purge --all --yes
    """
    if not items and not all_:
        raise CliError("name the items to purge, or pass --all", exit_codes.USAGE)
    with connect() as ds:
        chosen = [] if all_ else _pick_trash(ds, items or [])
        what = "the whole trash" if all_ else ", ".join(i.name for i in chosen)
        if not yes and not typer.confirm(f"Purge {what} for good?", err=True):
            raise typer.Exit(exit_codes.ERROR)
        if all_:
            ds.empty_trash()
        for item in chosen:
            if item.kind == "folder":
                ds.purge_folder(item.id)
            else:
                ds.purge_document(item.id)
    err.print(f"purged {what}")
