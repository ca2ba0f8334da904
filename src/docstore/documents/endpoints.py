"""Document endpoints: simple upload, read, rename/move, trash, restore, download."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from docstore.context import Actor
from docstore.db import after_commit, on_rollback
from docstore.deps import DB, CurrentActor, Svc, UnitOfWork
from docstore.documents import batch, blobs, service
from docstore.documents.receive import (
    declared_length,
    discard,
    parse_checksum,
    read_small_body,
    receive_body,
    small_length,
)
from docstore.documents.schemas import DocumentOut, DocumentPatch, DownloadOut
from docstore.documents.write_group import new_key as write_group_key
from docstore.documents.write_group import write_group
from docstore.schemas import RAW_BODY, Id, problems
from docstore.services import Services

router = APIRouter(tags=["documents"])


def _finish_upload(
    db: Session,
    svc: Services,
    actor: Actor,
    folder_id: str | None,
    name: str,
    mime_type: str | None,
    stored: service.StoredBytes,
) -> DocumentOut:
    folder, clean = service.target_folder(db, actor, folder_id, name)
    blob = service.attach_blob(db, stored)
    if blob.id != stored.blob_id:
        after_commit(
            db, lambda: blobs.delete_now(svc.store.delete, svc.database, stored.blob_id, stored.key)
        )
    doc, _ = service.create_document(
        db, actor, folder.id, clean, service.guess_mime(clean, mime_type), blob
    )
    return service.created_out(db, actor, doc)


@router.post(
    "/files",
    status_code=status.HTTP_201_CREATED,
    response_model=DocumentOut,
    openapi_extra=RAW_BODY,
    responses=problems(400, 401, 403, 404, 409, 413, 422, 503, 507),
)
async def upload_file(
    request: Request,
    svc: Svc,
    name: str = Query(min_length=1, max_length=1024),
    folder_id: str | None = None,
    mime_type: str | None = Query(None, max_length=255),
    x_checksum_sha256: str | None = Header(None),
) -> DocumentOut:
    """Simple upload of a small file: the raw body is streamed to storage and hashed.

    Three steps, each one worker-thread hop: authenticate, check the name, folder and quota
    and commit the pending blob row (one transaction); store the bytes; record the
    document (second transaction: permission again, the name under the folder lock, the
    quota as the charge itself).
    """
    limit = svc.settings.simple_upload_max_bytes
    small = small_length(request)
    if small is not None and small <= limit:
        return await _upload_small(request, svc, name, folder_id, mime_type, x_checksum_sha256)
    key = blobs.new_key()

    def start(db: Session, actor: Actor) -> tuple[Actor, str | None, int]:
        expected = parse_checksum(x_checksum_sha256)
        length = declared_length(request, limit)
        service.check_new_document(db, actor, folder_id, name, length)
        return actor, expected, blobs.add_pending(db, key, length or 0)

    uow = UnitOfWork(request)
    actor, expected, blob_id = await uow.run(start)
    stored = await receive_body(request, svc, limit, expected, pending=(key, blob_id))

    def finish(db: Session, actor: Actor) -> DocumentOut:
        on_rollback(db, lambda: discard(svc, stored.key, stored.blob_id))
        return _finish_upload(db, svc, actor, folder_id, name, mime_type, stored)

    return await uow.run(finish, actor=actor)


async def _upload_small(
    request: Request,
    svc: Services,
    name: str,
    folder_id: str | None,
    mime_type: str | None,
    x_checksum_sha256: str | None,
) -> DocumentOut:
    """`upload_file` for a body of at most `receive.SMALL_BODY` bytes: the fast path of
    issue 27. The caller is authenticated in a read-only unit of work (on the event loop
    on embedded SQLite), so no stranger's bytes reach the disk; the body is read and
    hashed in memory; then the write group stores the bytes and records the document in
    a transaction shared with the concurrent small uploads (documents.write_group), and
    this answers once both are durable. The early checks of the large path (folder,
    name, quota before the body) are not made: the body is already here, and the record
    step makes each of them anyway (permission, the name under the folder lock, the
    quota as the charge), so they would only cost statements on every upload."""
    limit = svc.settings.simple_upload_max_bytes
    actor, expected = await UnitOfWork(request).run(
        lambda db, actor: (actor, parse_checksum(x_checksum_sha256)), read_only=True
    )
    data, digest = await read_small_body(request, limit, expected)
    key = write_group_key(svc, len(data))
    stored = service.StoredBytes(blob_id=0, key=key, size=len(data), sha256=digest)

    def record(db: Session) -> DocumentOut:
        return service.create_from_new_bytes(
            db, svc.store, actor, folder_id, name, mime_type, stored
        )

    return await write_group(svc).submit(key, data, record, order=str(folder_id))


@router.get("/documents/{document_id}", response_model=DocumentOut, responses=problems(401, 404))
async def get_document(document_id: Id, request: Request, response: Response) -> DocumentOut:
    """A document; the ETag is its current version id (for If-Match on save)."""
    uow = UnitOfWork(request)
    if uow.svc.database.async_reads:  # PostgreSQL: one statement, on the event loop
        out = await uow.read_one_statement(
            lambda token: service.get_in_one_statement(token, document_id),
            service.view_from_statement,
        )
    else:
        out = await uow.run(
            lambda db, actor: service.get_with_token(db, actor, uow.token, document_id),
            read_only=True,
            token_in_work=True,
        )
    if out.current_version is not None:
        response.headers["ETag"] = f'"{out.current_version.id}"'
    return out


@router.patch(
    "/documents/{document_id}",
    response_model=DocumentOut,
    responses=problems(400, 401, 403, 404, 409, 413, 422),
)
def update_document(
    document_id: Id, body: DocumentPatch, actor: CurrentActor, db: DB
) -> DocumentOut:
    """Rename and/or move a document (send `parent_folder_id` to move)."""
    return service.update(
        db,
        actor,
        document_id,
        name=body.name,
        move="parent_folder_id" in body.model_fields_set,
        parent_folder_id=body.parent_folder_id,
    )


@router.delete(
    "/documents/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 403, 404),
)
def delete_document(document_id: Id, actor: CurrentActor, db: DB) -> Response:
    """Move a document to the trash (owner only)."""
    service.delete(db, actor, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/documents/{document_id}/restore",
    response_model=DocumentOut,
    responses=problems(401, 403, 404),
)
def restore_document(document_id: Id, actor: CurrentActor, db: DB) -> DocumentOut:
    """Bring a document back from the trash."""
    return service.restore(db, actor, document_id)


@router.get(
    "/documents/{document_id}/download",
    response_model=DownloadOut,
    responses={
        307: {"description": "Redirect to a short-lived signed URL"},
        **problems(401, 404, 503),
    },
)
async def download_document(
    document_id: Id,
    request: Request,
    version_id: Id | None = None,
    redirect: bool = True,
) -> Response | DownloadOut:
    """307 to a short-lived signed URL for the bytes, or the URL as JSON (`redirect=false`).

    A read: its DOWNLOAD entry goes to the audit group commit, as a VIEW's does, and the
    answer waits for it (one shared commit under load, not one per download)."""
    uow = UnitOfWork(request)
    svc = uow.svc
    out = await uow.run(
        lambda db, actor: service.download(
            db, actor, svc.store, document_id, version_id, svc.settings.signed_url_ttl_seconds
        ),
        read_only=True,
        storage=True,
    )
    if redirect:
        return RedirectResponse(out.url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    return out


@router.post(
    "/files/batch",
    response_model=batch.BatchOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        # Only file parts: a form field is refused (422).
                        "additionalProperties": False,
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                    }
                }
            },
        }
    },
    responses=problems(400, 401, 403, 404, 413, 422, 503),
)
async def upload_batch(
    request: Request,
    folder_id: str | None = Query(None, max_length=32),
) -> batch.BatchOut:
    """Many small files into one folder tree: each part's filename is its path below the
    folder (folders created as needed), with an optional `X-Checksum-SHA256` part header.

    Each file succeeds (201) or fails alone (its problem in the item); a path that names an
    existing document fails with 409 `name_conflict` (no silent new version). Too many files
    or bytes for one request: 413 for the whole request, nothing kept.
    """
    uow = UnitOfWork(request)
    svc = uow.svc
    settings = svc.settings
    boundary = batch.boundary(request)
    batch.declared_length(request, settings.batch_max_bytes)

    def start(db: Session, actor: Actor) -> Actor:
        batch.target_folder(db, actor, folder_id)
        return actor

    actor = await uow.run(start)
    reader = await batch.receive(request, svc, boundary)

    def finish(db: Session, actor: Actor) -> None:
        stored = [p.stored for p in reader.parts if p.stored is not None]
        on_rollback(db, lambda: batch.discard_stored(svc, stored))
        batch.record_parts(db, svc, actor, batch.target_folder(db, actor, folder_id), reader.parts)

    await uow.run(finish, actor=actor)
    return batch.BatchOut(items=[p.out() for p in reader.parts])
