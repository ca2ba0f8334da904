"""The WebDAV server (class 1 and 2, RFC 4918; quota properties, RFC 4331) mounted at /dav/.

A native part of the app: every request authenticates like the API, resolves its URL to
docstore's items (`tree`), and acts through the same services as the HTTP API: permission
checks (`sharing.permissions`), versions (`versions.service.save`), quota (507), dedup
(`documents.service.attach_blob`), the trash, and the audit log with the client's user
agent. Each step runs in one transaction on one worker thread (docs/DEVELOPING.md); a PUT's
body streams to storage, hashed on the way, between its check and its save.
"""

from __future__ import annotations

import logging
import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from docstore.audit.service import Action, record
from docstore.context import Actor
from docstore.dav import locking
from docstore.dav import props as P
from docstore.dav.base import (
    ALLOW,
    AUTH_HEADERS,
    XML,
    DavError,
    depth_header,
    etag_matches,
    recently_signed_in,
    status_of,
    text_response,
    url_segments,
)
from docstore.dav.locks import LockMethods
from docstore.dav.tree import Node, Target, resolve
from docstore.dav.xmlio import (
    DAV,
    MULTISTATUS_CLOSE,
    MULTISTATUS_OPEN,
    error_body,
    http_date,
    parse,
    propstat,
    qname,
)
from docstore.dav.xmlio import (
    response as ms_response,
)
from docstore.db import after_commit, on_rollback
from docstore.documents import blobs
from docstore.documents import service as documents
from docstore.documents.models import Blob, DocumentVersion
from docstore.documents.receive import discard, read_small_body, receive_body, small_length
from docstore.documents.recording import NewFile, record_new_files
from docstore.documents.service import StoredBytes
from docstore.documents.write_group import Deferred, Then, batching, write_group
from docstore.documents.write_group import new_key as write_group_key
from docstore.errors import (
    DocstoreError,
    Forbidden,
    NotFound,
    QuotaExceeded,
    Unauthenticated,
)
from docstore.folders import service as folders
from docstore.names import clean_name
from docstore.server import FRAGMENT_KEY
from docstore.services import Services
from docstore.sharing.permissions import Level
from docstore.storage.base import StorageError
from docstore.storage.ranges import answer_range, unsatisfiable
from docstore.users import repository as user_repo
from docstore.versions import service as versions

log = logging.getLogger("docstore.dav")


class DavApp(LockMethods):
    """The ASGI app mounted at /dav."""

    def __init__(self) -> None:
        self.methods: dict[str, Callable[[Request, list[str], bool], Any]] = {
            "OPTIONS": self.options,
            "PROPFIND": self.propfind,
            "PROPPATCH": self.proppatch,
            "GET": self.get,
            "HEAD": self.get,
            "PUT": self.put,
            "MKCOL": self.mkcol,
            "DELETE": self.delete,
            "COPY": self.copy_or_move,
            "MOVE": self.copy_or_move,
            "LOCK": self.lock,
            "UNLOCK": self.unlock,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            handler = self.methods.get(request.method)
            if handler is None:
                raise DavError(405, f"{request.method} is not supported here.")
            if request.method != "OPTIONS" and "authorization" not in request.headers:
                raise Unauthenticated("Sign in with your email and an app password.")
            segments, slash = url_segments(scope)
            response = await handler(request, segments, slash)
        except DavError as exc:
            headers = {"Allow": ALLOW} if exc.status == 405 else None
            if exc.body is not None:
                response = Response(exc.body, status_code=exc.status, media_type=XML)
            else:
                response = text_response(exc.status, exc.reason, headers)
        except DocstoreError as exc:
            headers = dict(exc.headers)
            if isinstance(exc, Unauthenticated):
                headers.update(AUTH_HEADERS)
            response = text_response(status_of(exc), exc.detail, headers)
        except StorageError as exc:
            log.error("dav: storage error: %s", exc)
            response = text_response(503, "Storage did not answer; nothing was changed.")
        except OperationalError as exc:
            log.error("dav: database error: %s", exc.orig)
            response = text_response(503, "The database did not answer; nothing was changed.")
        except IntegrityError:
            response = text_response(409, "The change conflicts with another one.")
        except DataError:
            response = text_response(400, "A value cannot be stored.")
        except Exception:  # a bug: logged with its trace, answered as a plain 500
            log.exception("dav: %s %s failed", request.method, scope["path"])
            response = text_response(500, "Internal server error.")
        await response(scope, receive, send)

    # -- methods ----------------------------------------------------------------------------

    async def options(self, request: Request, segments: list[str], slash: bool) -> Response:
        return Response(
            status_code=200,
            headers={
                "DAV": "1, 2",
                "Allow": ALLOW,
                "MS-Author-Via": "DAV",
                "Content-Length": "0",
            },
        )

    async def propfind(self, request: Request, segments: list[str], slash: bool) -> Response:
        depth = request.headers.get("depth", "infinity").strip().lower()
        if depth not in ("0", "1", "infinity"):
            raise DavError(400, f"Depth must be 0, 1 or infinity, not {depth!r}.")
        if depth == "infinity":
            raise DavError(403, body=error_body("propfind-finite-depth"))
        mode, names = P.propfind_request(await self.body(request))

        def run(db: Session, actor: Actor) -> str:
            target = resolve(db, actor, segments)
            node = target.node
            if node is None:
                raise NotFound()
            nodes = [node]
            parent_folder = None
            if depth == "1" and node.is_collection:
                nodes += P.members(db, actor, node)
                if node.kind == "folder":
                    parent_folder = node.item_id
            ctx = P.Context(locks=locking.live_locks(db, node.ns_root), viewer=actor.user_id)
            wants_dead = mode != "prop" or any(ns != DAV or n not in P.LIVE_SET for ns, n in names)
            if wants_dead:
                ctx.dead = P.load_dead(db, nodes, parent_folder)
            parts = [MULTISTATUS_OPEN]
            parts += [P.render(db, n, mode, names, ctx) for n in nodes]
            parts.append(MULTISTATUS_CLOSE)
            return "".join(parts)

        text = await self.read(request, run, small=depth == "0")
        return Response(text.encode("utf-8"), status_code=207, media_type=XML)

    async def proppatch(self, request: Request, segments: list[str], slash: bool) -> Response:
        root = parse(await request.body())
        if root is None or root.tag != f"{{{DAV}}}propertyupdate":
            raise DavError(400, "The body must be a DAV:propertyupdate element.")
        ops: list[tuple[str, ET.Element]] = []
        for action in root:
            ns, local = qname(action.tag)
            if ns != DAV or local not in ("set", "remove"):
                continue
            for prop in action:
                if prop.tag == f"{{{DAV}}}prop":
                    ops += [(local, p) for p in prop]

        def run(db: Session, actor: Actor) -> str:
            target = resolve(db, actor, segments)
            node = target.node
            if node is None:
                raise NotFound()
            self.check_if(db, actor, request, target)
            key = P.key_of(node)
            if key is None:
                raise DavError(403, "This resource has no writable properties.")
            if node.level < Level.EDIT:
                raise Forbidden("This needs EDIT permission.")
            self.check_locks(db, actor, target)
            protected = [
                (op, el)
                for op, el in ops
                if qname(el.tag)[0] == DAV and qname(el.tag)[1] in P.LIVE_SET
            ]
            if protected:
                failed = [P.empty_element(*qname(el.tag)) for _, el in protected]
                rest = [
                    P.empty_element(*qname(el.tag)) for op, el in ops if (op, el) not in protected
                ]
                body = propstat(failed, 403) + (propstat(rest, 424) if rest else "")
                return MULTISTATUS_OPEN + ms_response(node.href, body) + MULTISTATUS_CLOSE
            for op, el in ops:
                ns, name = qname(el.tag)
                P.set_dead(db, key, ns, name, P.prop_value(el) if op == "set" else None)
            done = [P.empty_element(*qname(el.tag)) for _, el in ops]
            return (
                MULTISTATUS_OPEN + ms_response(node.href, propstat(done, 200)) + MULTISTATUS_CLOSE
            )

        text = await self.work(request, run)
        return Response(text.encode("utf-8"), status_code=207, media_type=XML)

    async def get(self, request: Request, segments: list[str], slash: bool) -> Response:
        head = request.method == "HEAD"

        def run(db: Session, actor: Actor) -> tuple[Node, str | None, int]:
            target = resolve(db, actor, segments)
            node = target.node
            if node is None:
                raise NotFound()
            if node.is_collection:
                return node, None, 0
            if node.version_id is None:
                return node, None, 0
            version = db.get_one(DocumentVersion, node.version_id)
            blob = db.get_one(Blob, version.blob_id)
            if not head and node.document_id is not None:
                record(
                    db,
                    actor,
                    Action.DOWNLOAD,
                    document_id=node.document_id,
                    owner_id=node.owner_id,
                    details={
                        "version_id": version.id,
                        "version_number": version.version_number,
                        "via": "webdav",
                    },
                )
            return node, blob.storage_key, blob.size_bytes

        node, key, size = await self.read(request, run, small=True)
        if node.is_collection:
            body = b"" if head else f"{node.href}: a WebDAV collection\n".encode()
            return Response(body, media_type="text/plain; charset=utf-8")
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-cache"}
        if node.etag:
            headers["ETag"] = node.etag
        if node.modified is not None:
            headers["Last-Modified"] = http_date(node.modified)
        cond = self.conditional(request, node)
        if cond is not None:
            return Response(status_code=cond, headers=headers)
        if key is None:
            return Response(b"", media_type=node.mime, headers=headers)
        svc = self.svc(request)
        object_path = getattr(svc.store, "object_path", None)
        path = object_path(key) if object_path is not None else None
        if path is not None:  # a file (an inline object has none: `stream` reads it)
            st = await run_in_threadpool(os.stat, path)
            if stat.S_ISREG(st.st_mode):
                resp = FileResponse(path, headers=headers, media_type=node.mime, stat_result=st)
                resp.chunk_size = 4 * 1024 * 1024
                return resp
        return await self.stream(request, svc, key, size, node.mime, headers, head)

    @staticmethod
    def conditional(request: Request, node: Node) -> int | None:
        """304 or 412 from If-None-Match / If-Match / If-(Un)Modified-Since, else None."""
        h = request.headers
        if "if-match" in h and not etag_matches(h["if-match"], node.etag):
            return 412
        if "if-none-match" in h and etag_matches(h["if-none-match"], node.etag):
            return 304 if request.method in ("GET", "HEAD") else 412
        since = h.get("if-modified-since", "").strip()
        if node.modified is not None and "if-none-match" not in h and since:
            return 304 if since == http_date(node.modified) else None
        return None

    async def stream(
        self,
        request: Request,
        svc: Services,
        key: str,
        size: int,
        mime: str,
        headers: dict[str, str],
        head: bool,
    ) -> Response:
        """Bytes from a store that serves no files (S3) or of an inline object, with one
        byte range."""
        span = answer_range(request.headers.get("range", ""), size, headers)
        if span is None:
            return Response(status_code=416, headers=unsatisfiable(size))
        status_code, start, end = span
        headers["Content-Length"] = str(end - start + 1 if size else 0)
        if head:
            return Response(status_code=status_code, headers=headers, media_type=mime)

        def chunks() -> Any:
            with svc.store.open(key) as f:
                skip = start
                while skip > 0:
                    got = f.read(min(skip, 1 << 20))
                    if not got:
                        return
                    skip -= len(got)
                left = end - start + 1
                while left > 0:
                    data = f.read(min(left, 1 << 20))
                    if not data:
                        return
                    left -= len(data)
                    yield data

        return StreamingResponse(
            chunks(), status_code=status_code, headers=headers, media_type=mime
        )

    async def put(self, request: Request, segments: list[str], slash: bool) -> Response:
        svc = self.svc(request)
        limit = svc.settings.dav_max_put_bytes
        if request.headers.get("content-range"):
            raise DavError(400, "Content-Range is not supported on PUT.")

        # A small body (rclone copy of many small files) takes the small path: body in
        # memory, bytes and rows through the write group (a new file needs no pending row;
        # a new version's is written and activated in the group's transaction), under a
        # key that keeps it in the database where the store does (`write_group.new_key`).
        small = small_length(request)
        small = small if small is not None and small <= limit else None
        key = blobs.new_key() if small is None else write_group_key(svc, small)

        def checks(db: Session, actor: Actor, target: Target) -> None:
            """What a PUT must meet, before the body (large) and again with the rows."""
            self.writable(target)
            if target.node is None and target.parent is None:
                raise DavError(409, "The parent collection does not exist.")
            if target.node is not None and target.node.is_collection:
                raise DavError(405, "A collection cannot be PUT.")
            if target.parent is not None and target.parent.kind != "folder":
                raise DavError(403, "New items cannot be made here.")
            self.check_if(db, actor, request, target)
            self.preconditions(request, target.node)
            self.check_locks(db, actor, target, membership=target.node is None)
            node = target.node if target.node is not None else target.parent
            assert node is not None and node.item_id is not None
            if node.level < Level.EDIT:
                raise Forbidden("This needs EDIT permission.")

        def check(db: Session, actor: Actor) -> tuple[Actor, int]:
            """The large path's checks before any byte is received, with its pending row."""
            target = resolve(db, actor, segments)
            checks(db, actor, target)
            length = self.length(request, limit)
            if target.node is not None:
                owner = target.node.owner_id
                if (
                    length is not None
                    and owner is not None
                    and not user_repo.fits(db, owner, length)
                ):
                    raise QuotaExceeded("This file does not fit in the owner's quota.")
            else:
                assert target.parent is not None
                documents.check_new_document(db, actor, target.parent.item_id, target.name, length)
            # The pending blob row commits with these checks (one transaction, not two).
            return actor, blobs.add_pending(db, key, length or 0)

        # The small path, like the API's (documents.endpoints._upload_small), checks once,
        # with the rows in the write group's transaction: the body is already here, and
        # every check is made there anyway. Before it, only who is asking (a read
        # transaction, which on SQLite neither takes nor waits for the writer lock).
        # A caller whose token signed in moments ago is authenticated there too, in the
        # group's transaction (`base.RecentTokens`): no transaction of its own before.
        actor: Actor | None
        if small is not None and recently_signed_in(request):
            actor, blob_id = None, None
        elif small is not None:
            actor, blob_id = await self.read(request, lambda db, actor: (actor, None), small=True)
        else:
            actor, blob_id = await self.work(request, check)

        def finish(
            db: Session, actor: Actor, stored: StoredBytes
        ) -> tuple[bool, str | None] | Deferred | Then:
            target = resolve(db, actor, segments)
            checks(db, actor, target)
            node = target.node
            if node is not None:
                write = lambda: save_version(db, actor, node, stored)  # noqa: E731
            else:
                # EDIT on the parent was checked on the row `resolve` read in this
                # transaction; create_document locks the folder and refuses it if it is gone.
                parent = target.parent
                assert parent is not None and parent.item_id is not None
                name = clean_name(target.name)
                given = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if given in ("", "application/octet-stream", "application/x-www-form-urlencoded"):
                    given = ""  # what clients send for any file: the name says more
                mime = documents.guess_mime(name, given or None)
                ns, _ = self.ns_of(target)
                if (
                    blob_id is None
                    and batching(db)
                    and parent.owner_id is not None
                    and not locking.live_locks(db, ns)  # none to adopt (`adopt_locks`)
                ):
                    # Checked: its rows are written with the group's other new files.
                    owner = parent.owner_id
                    file = NewFile(parent.item_id, name, mime, stored)
                    kind = ("dav-new", owner, actor.user_id, actor.token_id, actor.ip,
                            actor.user_agent)  # fmt: skip
                    return Deferred(
                        kind, lambda db, files: record_new(db, actor, owner, files), file
                    )
                write = lambda: create(db, actor, target, name, mime, stored)  # noqa: E731
            # In a group's shared transaction the writes get a savepoint of their own
            # (`write_group.Then`); otherwise the transaction is theirs alone.
            return Then(write) if batching(db) else write()

        def save_version(
            db: Session, actor: Actor, node: Node, stored: StoredBytes
        ) -> tuple[bool, str | None]:
            assert node.item_id is not None
            if blob_id is None:  # the small path: a pending row, activated by the save
                stored.blob_id = blobs.add_pending(db, stored.key, stored.size)
            base = node.version_id if "if-match" in request.headers else None
            saved = versions.save(
                db, svc, actor, node.item_id, stored, base_version_id=base, on_conflict="reject"
            )
            return False, f'"{saved.version.id}"'

        def create(
            db: Session, actor: Actor, target: Target, name: str, mime: str, stored: StoredBytes
        ) -> tuple[bool, str | None]:
            assert target.parent is not None and target.parent.item_id is not None
            if blob_id is None:
                blob = documents.attach_new_bytes(db, svc.store, stored)
            else:
                blob = documents.attach_blob(db, stored)
                if blob.id != stored.blob_id:
                    after_commit(
                        db,
                        lambda: blobs.delete_now(
                            svc.store.delete, svc.database, stored.blob_id, stored.key
                        ),
                    )
            doc, version = documents.create_document(
                db, actor, target.parent.item_id, name, mime, blob
            )
            self.adopt_locks(db, target, doc.id, None)
            return True, f'"{version.id}"'

        def record_new(db: Session, actor: Actor, owner: int, files: list[NewFile]) -> list[object]:
            """The group's new files of this caller, recorded at once: each one's answer."""
            done = record_new_files(db, svc, actor, owner, files)
            return [
                d if isinstance(d, Exception) else (True, f'"{d[0].current_version.id}"')
                if d[0].current_version is not None else NotFound()
                for d in done
            ]  # fmt: skip

        def signed_in(db: Session) -> Actor:
            if actor is not None:
                return actor
            return self.authenticate(request, db, svc, token_only=True)

        if blob_id is None:
            data, digest = await read_small_body(request, limit, None)
            order = str(segments[:-1])
            small_stored = StoredBytes(blob_id=0, key=key, size=len(data), sha256=digest)
            # A deferred result comes back as its batch's answer for it (write_group).
            created, etag = cast(
                tuple[bool, str | None],
                await write_group(svc).submit(
                    key,
                    data,
                    lambda db: finish(db, signed_in(db), small_stored),
                    order=order,
                    checks_first=True,
                ),
            )
        else:
            stored = await receive_body(request, svc, limit, None, pending=(key, blob_id))

            def finish_large(db: Session, actor: Actor) -> tuple[bool, str | None]:
                on_rollback(db, lambda: discard(svc, stored.key, stored.blob_id))
                done = finish(db, actor, stored)
                assert not isinstance(done, (Deferred, Then))  # never in a group's transaction
                return done

            created, etag = await self.work(request, finish_large, actor)
        headers = {"ETag": etag} if etag else {}
        return Response(status_code=201 if created else 204, headers=headers)

    async def mkcol(self, request: Request, segments: list[str], slash: bool) -> Response:
        body = await self.body(request)
        if body:
            raise DavError(415, "MKCOL takes no body.")

        def exists(db: Session, actor: Actor) -> bool:
            return resolve(db, actor, segments).node is not None

        # rclone makes sure of a file's folder before each upload (405: it exists). That
        # answer needs only a read, which on SQLite waits for no write lock.
        if await self.read(request, exists, small=True):
            raise DavError(405, "Something exists at this URL already.")

        def run(db: Session, actor: Actor) -> None:
            target = resolve(db, actor, segments)
            if target.node is not None:
                raise DavError(405, "Something exists at this URL already.")
            self.writable(target)
            if target.parent is None:
                raise DavError(409, "The parent collection does not exist.")
            if target.parent.kind != "folder":
                raise DavError(403, "Collections cannot be made here.")
            self.check_if(db, actor, request, target)
            self.check_locks(db, actor, target, membership=True)
            folder = folders.create(db, actor, target.name, target.parent.item_id)
            self.adopt_locks(db, target, None, folder.id)

        await self.work(request, run)
        return Response(status_code=201)

    async def delete(self, request: Request, segments: list[str], slash: bool) -> Response:
        if request.scope.get(FRAGMENT_KEY) or b"#" in (request.scope.get("raw_path") or b""):
            raise DavError(400, "A URL with a fragment names no resource.")
        depth_header(request, "infinity", ("infinity",))

        def run(db: Session, actor: Actor) -> None:
            target = resolve(db, actor, segments)
            node = target.node
            if node is None:
                raise NotFound()
            self.writable(target)
            if node.kind == "folder" and not node.rel and target.area == "files":
                raise DavError(403, "The root collection cannot be deleted.")
            self.check_if(db, actor, request, target)
            self.check_locks(db, actor, target, membership=True, subtree=node.is_collection)
            self.remove(db, actor, node)

        await self.work(request, run)
        return Response(status_code=204)

    def remove(self, db: Session, actor: Actor, node: Node) -> None:
        """Move a node to the trash (through the services' owner check) and drop its locks."""
        assert node.item_id is not None
        if node.kind == "document":
            documents.delete(db, actor, node.item_id)
        elif node.kind == "folder":
            folders.delete(db, actor, node.item_id)
        else:
            raise DavError(403, "This resource cannot be deleted.")
        locking.drop_below(db, node.ns_root, node.rel)

    async def copy_or_move(self, request: Request, segments: list[str], slash: bool) -> Response:
        move = request.method == "MOVE"
        depth = depth_header(request, "infinity", ("infinity",) if move else ("0", "infinity"))
        dest_segments = self.destination(request)
        overwrite = request.headers.get("overwrite", "T").strip().upper()
        if overwrite not in ("T", "F"):
            raise DavError(400, "Overwrite must be T or F.")

        def run(db: Session, actor: Actor) -> bool:
            source = resolve(db, actor, segments)
            node = source.node
            if node is None:
                raise NotFound()
            if dest_segments == segments:
                raise DavError(403, "The source and the destination are the same.")
            if node.is_collection and dest_segments[: len(segments)] == segments:
                raise DavError(403, "A collection cannot go inside itself.")
            if segments[: len(dest_segments)] == dest_segments:
                raise DavError(403, "The destination holds the source.")
            from_trash = node.kind in ("trash_document", "trash_folder")
            if move and not from_trash:
                self.writable(source)
            if not move and node.kind not in ("document", "folder", "version"):
                raise DavError(403, "This resource cannot be copied.")
            dest = resolve(db, actor, dest_segments)
            self.writable(dest)
            if dest.node is None and dest.parent is None:
                raise DavError(409, "The destination's parent collection does not exist.")
            parent = dest.parent
            if parent is None or parent.kind != "folder" or parent.item_id is None:
                raise DavError(409 if parent is None else 403, "Nothing can be put there.")
            self.check_if(db, actor, request, source)
            if move and not from_trash:
                self.check_locks(db, actor, source, membership=True, subtree=node.is_collection)
            self.check_locks(db, actor, dest, membership=True, subtree=True)
            existed = dest.node is not None
            if existed:
                if overwrite == "F":
                    raise DavError(412, "The destination exists and Overwrite is F.")
                assert dest.node is not None
                self.remove(db, actor, dest.node)
            name = clean_name(dest.name)
            if from_trash:
                self.restore(db, actor, node, parent.item_id, name)
            elif move:
                self.relocate(db, actor, node, parent.item_id, name)
                locking.drop_below(db, node.ns_root, node.rel)
            else:
                self.duplicate(db, actor, node, parent.item_id, name, depth == "infinity")
            return existed

        existed = await self.work(request, run)
        return Response(status_code=204 if existed else 201)

    def destination(self, request: Request) -> list[str]:
        raw = request.headers.get("destination")
        if not raw:
            raise DavError(400, "Destination is required.")
        parts = urlsplit(raw.strip())
        if parts.netloc and parts.netloc.lower() != (request.headers.get("host") or "").lower():
            raise DavError(502, "The destination is on another server.")
        path = parts.path
        if not path.startswith("/dav/"):
            raise DavError(502 if parts.netloc else 400, "The destination is outside /dav/.")
        scope = {"type": "http", "path": path, "raw_path": path.encode("latin-1", "replace")}
        return url_segments(scope)[0]

    def relocate(self, db: Session, actor: Actor, node: Node, parent_id: int, name: str) -> None:
        """Rename and/or move an item through its service (one subtree statement)."""
        assert node.item_id is not None
        if node.kind == "document":
            documents.update(
                db, actor, node.item_id, name=name, move=True, parent_folder_id=parent_id
            )
        elif node.kind == "folder":
            if not node.rel and node.area == "files":
                raise DavError(403, "The root collection cannot be moved.")
            folders.update_folder(
                db, actor, node.item_id, name=name, parent_id=parent_id, move=True
            )
        else:
            raise DavError(403, "This resource cannot be moved.")

    def restore(self, db: Session, actor: Actor, node: Node, parent_id: int, name: str) -> None:
        """MOVE out of the trash: restore, then put it where the Destination says."""
        assert node.item_id is not None
        if node.kind == "trash_document":
            out = documents.restore(db, actor, node.item_id)
            if out.parent_folder_id != parent_id or out.name != name:
                documents.update(
                    db, actor, out.id, name=name, move=True, parent_folder_id=parent_id
                )
        else:
            folder = folders.restore(db, actor, node.item_id)
            if folder.parent_id != parent_id or folder.name != name:
                folders.update_folder(
                    db, actor, folder.id, name=name, parent_id=parent_id, move=True
                )

    def duplicate(
        self, db: Session, actor: Actor, node: Node, parent_id: int, name: str, deep: bool
    ) -> None:
        """COPY: a document shares its source's blob (no bytes copied); a folder copies its
        members when Depth is infinity."""
        if node.kind in ("document", "version"):
            version_id = node.version_id
            if node.level < Level.VIEW or version_id is None:
                raise NotFound()
            version = db.get_one(DocumentVersion, version_id)
            blob = versions.use_content(db, db.get_one(Blob, version.blob_id))
            folder, clean = documents.target_folder(db, actor, parent_id, name)
            doc, _ = documents.create_document(db, actor, folder.id, clean, node.mime, blob)
            if node.kind == "document" and node.item_id is not None:
                P.copy_dead(db, ("d", node.item_id), ("d", doc.id))
            return
        assert node.item_id is not None
        copy = folders.create(db, actor, name, parent_id)
        P.copy_dead(db, ("f", node.item_id), ("f", copy.id))
        if deep:
            for member in P.folder_members(db, node):
                self.duplicate(db, actor, member, copy.id, member.name, True)


def install(app: Any) -> Mount:
    """Mount the WebDAV server at /dav (the app's services are read per request), first
    among the routes: the router tries them in order, and behind the API's and the web
    UI's every WebDAV request cost ~180 failed matches (yappi: more CPU than the request's
    own work for rclone's small uploads). No other route's path starts with /dav/. The app
    serves the mount's requests in a lane of their own (`app.DocstoreApp`); the mount
    names them in the metrics and the route list."""
    mount = Mount("/dav", app=DavApp())
    app.router.routes.insert(0, mount)
    return mount
