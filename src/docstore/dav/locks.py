"""LOCK and UNLOCK (RFC 4918 class 2): locks live in the database (docstore.dav.locking),
so every server process honours them, and each is audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from docstore.audit.service import Action, record
from docstore.context import Actor
from docstore.dav import ifheader, locking
from docstore.dav import props as P
from docstore.dav.base import XML, DavBase, DavError, depth_header
from docstore.dav.tree import Node, Target, resolve
from docstore.dav.xmlio import (
    DAV,
    error_body,
    parse,
)
from docstore.documents import service as documents
from docstore.errors import (
    Forbidden,
    NotFound,
)
from docstore.services import Services
from docstore.sharing.permissions import Level
from docstore.versions import service as versions


class LockMethods(DavBase):
    """LOCK (new, refresh, on an unmapped URL) and UNLOCK."""

    async def lock(self, request: Request, segments: list[str], slash: bool) -> Response:
        root = parse(await request.body())
        depth = depth_header(request, "infinity", ("0", "infinity"))
        timeout = locking.parse_timeout(request.headers.get("timeout"))

        if root is None:
            return await self.refresh(request, segments, timeout)
        if root.tag != f"{{{DAV}}}lockinfo":
            raise DavError(400, "The body must be a DAV:lockinfo element.")
        scope_el = root.find(f"{{{DAV}}}lockscope")
        type_el = root.find(f"{{{DAV}}}locktype")
        if scope_el is None or type_el is None or type_el.find(f"{{{DAV}}}write") is None:
            raise DavError(400, "A lock needs a lockscope and a write locktype.")
        exclusive = scope_el.find(f"{{{DAV}}}exclusive") is not None
        if not exclusive and scope_el.find(f"{{{DAV}}}shared") is None:
            raise DavError(400, "The lockscope must be exclusive or shared.")
        owner_el = root.find(f"{{{DAV}}}owner")
        owner_xml = P.prop_value(owner_el) if owner_el is not None else None

        def run(db: Session, actor: Actor) -> tuple[str, str, bool]:
            target = resolve(db, actor, segments)
            self.writable(target)
            node = target.node
            if node is None and target.parent is None:
                raise DavError(409, "The parent collection does not exist.")
            if node is not None and node.kind not in ("folder", "document"):
                raise DavError(403, "This resource cannot be locked.")
            self.check_if(db, actor, request, target)
            ns, rel = self.ns_of(target)
            assert ns is not None
            locks = locking.live_locks(db, ns)
            if locking.conflicts(locks, rel, exclusive, depth == "infinity"):
                raise DavError(423, body=error_body("no-conflicting-lock"))
            created = False
            if node is None:
                assert target.parent is not None
                self.check_locks(db, actor, target, membership=True)
                node = self.make_empty(db, self.svc(request), actor, target)
                created = True
            elif node.level < Level.EDIT:
                raise Forbidden("Locking needs EDIT permission.")
            assert actor.user_id is not None
            lock = locking.create(
                db,
                ns_root=ns,
                rel=rel,
                user_id=actor.user_id,
                exclusive=exclusive,
                depth_infinity=depth == "infinity" and node.is_collection,
                owner_xml=owner_xml,
                timeout=timeout,
                document_id=node.item_id if node.kind == "document" else None,
                folder_id=node.item_id if node.kind == "folder" else None,
            )
            _audit_lock(db, actor, Action.LOCK, node, exclusive=exclusive, depth=depth)
            body = self.lock_body(lock, node)
            return lock.token, body, created

        token, body, created = await self.work(request, run)
        return Response(
            body.encode("utf-8"),
            status_code=201 if created else 200,
            media_type=XML,
            headers={"Lock-Token": f"<{token}>"},
        )

    @staticmethod
    def lock_body(lock: Any, node: Node) -> str:
        href = P.lock_href(node, lock) if lock.path != node.rel else node.href
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>'
            f"{locking.activelock(lock, href)}</D:lockdiscovery></D:prop>"
        )

    def make_empty(self, db: Session, svc: Services, actor: Actor, target: Target) -> Node:
        """LOCK on an unmapped URL makes an empty document there (RFC 4918 7.3)."""
        assert target.parent is not None
        folder, name = documents.target_folder(db, actor, target.parent.item_id, target.name)
        stored = versions.store_bytes(db, svc, b"")
        blob = documents.attach_blob(db, stored)
        doc, version = documents.create_document(
            db, actor, folder.id, name, documents.guess_mime(name), blob
        )
        node = Node(
            kind="document",
            href=target.parent.href + target.segments[-1],
            name=name,
            item_id=doc.id,
            owner_id=doc.owner_id,
            version_id=version.id,
        )
        ns, rel = self.ns_of(target)
        node.ns_root, node.rel, node.ns_href = ns, rel, target.parent.ns_href
        return node

    async def refresh(self, request: Request, segments: list[str], timeout: int) -> Response:
        tokens = ifheader.submitted_tokens(ifheader.parse(request.headers.get("if")))
        if not tokens:
            raise DavError(
                400, "A LOCK without a body refreshes: it needs an If header with the token."
            )

        def run(db: Session, actor: Actor) -> str:
            target = resolve(db, actor, segments)
            node = target.node
            if node is None:
                raise NotFound()
            for token in tokens:
                lock = locking.by_token(db, token)
                if (
                    lock is not None
                    and lock.root_folder_id == node.ns_root
                    and locking.covers(lock, node.rel)
                ):
                    if lock.user_id != actor.user_id:
                        raise Forbidden("This lock belongs to someone else.")
                    locking.refresh(db, lock, timeout)
                    return self.lock_body(lock, node)
            raise DavError(412, body=error_body("lock-token-matches-request-uri"))

        body = await self.work(request, run)
        return Response(body.encode("utf-8"), status_code=200, media_type=XML)

    async def unlock(self, request: Request, segments: list[str], slash: bool) -> Response:
        raw = request.headers.get("lock-token", "").strip()
        if not (raw.startswith("<") and raw.endswith(">")):
            raise DavError(400, "Lock-Token must be a coded URL: <token>.")
        token = raw[1:-1]

        def run(db: Session, actor: Actor) -> None:
            target = resolve(db, actor, segments)
            node = target.node
            if node is None:
                raise NotFound()
            lock = locking.by_token(db, token)
            if (
                lock is None
                or lock.root_folder_id != node.ns_root
                or not locking.covers(lock, node.rel)
            ):
                raise DavError(409, body=error_body("lock-token-matches-request-uri"))
            if lock.user_id != actor.user_id and node.level < Level.OWNER:
                raise Forbidden("This lock belongs to someone else.")
            _audit_lock(db, actor, Action.UNLOCK, node, lock_user_id=lock.user_id)
            db.delete(lock)
            db.flush()

        await self.work(request, run)
        return Response(status_code=204)


def _audit_lock(db: Session, actor: Actor, action: Action, node: Node, **details: object) -> None:
    """LOCK / UNLOCK in the audit log, like their API-side effects (a locked document
    refuses writes): on the document, or with the folder in the details."""
    document_id = node.item_id if node.kind == "document" else None
    extra = {} if document_id is not None else {"folder_id": node.item_id}
    record(
        db,
        actor,
        action,
        document_id=document_id,
        owner_id=node.owner_id,
        details={**extra, **details, "via": "webdav"},
    )
