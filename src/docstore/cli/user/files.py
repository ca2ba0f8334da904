"""Files over HTTP: `ls`, `mkdir`, `upload`, `download`, `mv`, `rm`, `versions`, `restore`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from docstore.cli import exit_codes
from docstore.cli.exit_codes import CliError
from docstore.cli.user.common import (
    EPILOG,
    FILES,
    JsonOpt,
    commands,
    connect,
    document,
    emit_json,
    err,
    files,
    human,
    out,
    parent_and_name,
    progress_bars,
    resolve,
    table,
    version_by_number,
    when,
)
from docstore.cli.user.transfer import (
    _ACTIONS,
    _download_row,
    _kill_after,
    _plan_upload,
    _remote_files,
    _run_batch,
    _run_upload_job,
    batch_groups,
)

if TYPE_CHECKING:
    from docstore.client import Child


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
    batch_threshold: Annotated[
        int,
        typer.Option(
            help="New files under this many bytes go many to a request (POST /files/batch); "
            "0 sends every file on its own."
        ),
    ] = 1024 * 1024,
    as_json: JsonOpt = False,
    kill_after_parts: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Upload a file or a directory tree; content already stored is not sent again.

    A file whose SHA-256 equals the current version of the remote document of that name is
    skipped; a changed file becomes a new version. Large files go in parallel parts and an
    interrupted upload resumes where it stopped when the command is run again.

    Example: docstore upload ./reports /projects/q1
    """
    from docstore.client.client import BATCH_MAX_BYTES, BATCH_MAX_FILES
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
            # Small new files go many to a request; the rest (and every group) in parallel.
            groups = batch_groups(jobs, batch_threshold, BATCH_MAX_FILES, BATCH_MAX_BYTES)
            batched = {id(j) for g in groups for j in g}
            singles = [j for j in jobs if id(j) not in batched]
            tasks: list[Callable[[], None]] = [
                functools.partial(_run_batch, ds, g, progress, overall) for g in groups
            ]
            tasks += [
                functools.partial(
                    _run_upload_job,
                    ds,
                    j,
                    parallel=parallel,
                    threshold=multipart_threshold,
                    progress=progress,
                    overall=overall,
                    on_part=on_part,
                )
                for j in singles
            ]
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                list(pool.map(lambda task: task(), tasks))
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
