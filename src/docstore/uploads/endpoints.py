"""Upload endpoints: initiate, complete and discard multipart uploads straight to storage."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response, status

from docstore.deps import CurrentActor, Svc
from docstore.schemas import problems
from docstore.uploads import service
from docstore.uploads.schemas import UploadComplete, UploadCreate, UploadOut, UploadResult

router = APIRouter(prefix="/uploads", tags=["uploads"])

UploadId = Path(min_length=1, max_length=64)


# Plain `def` endpoints run in the thread pool. None of them uses the request's session
# (`DB`): the service runs its own short transactions around the storage calls, and on
# SQLite a request transaction left open would block them (docs/DEVELOPING.md).
@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    # 429 too_many_uploads: the caller's open sessions are capped (max_open_uploads).
    responses=problems(400, 401, 403, 404, 409, 413, 422, 429, 503, 507),
)
def create_upload(body: UploadCreate, actor: CurrentActor, svc: Svc) -> UploadOut:
    """Start an upload: one signed request per part, or `skip_upload` when nothing need be sent."""
    return service.initiate(svc, actor, body)


@router.post(
    "/{upload_id}/complete",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult,
    # 413: a parts list may run past the 1 MiB JSON body limit (schemathesis found it).
    responses=problems(400, 401, 403, 404, 409, 413, 422, 503, 507),
)
def complete_upload(
    actor: CurrentActor,
    svc: Svc,
    upload_id: str = UploadId,
    body: UploadComplete | None = None,
) -> UploadResult:
    """Join and verify the parts, then create the document or version; repeatable."""
    return service.complete(svc, actor, upload_id, body or UploadComplete())


@router.delete(
    "/{upload_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 404, 409, 503),
)
def discard_upload(actor: CurrentActor, svc: Svc, upload_id: str = UploadId) -> Response:
    """Discard the upload and its parts; nothing is charged."""
    service.discard(svc, actor, upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
