"""`DocstoreClient`: one method per endpoint of API.md, typed results, typed errors."""

from __future__ import annotations

import contextlib
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from docstore.client import transfer
from docstore.client.errors import ConnectionFailed, NameConflict, NotFound, error_from_response
from docstore.client.models import (
    Access,
    AppPassword,
    AuditEntry,
    BatchFile,
    BatchItem,
    Child,
    ChildrenPage,
    Comment,
    Document,
    DownloadLink,
    Folder,
    Health,
    Id,
    LinkView,
    Node,
    Page,
    Plan,
    RetentionResult,
    SaveResult,
    SearchHit,
    SessionInfo,
    Share,
    SharedItem,
    Token,
    TrashItem,
    UploadSession,
    User,
    Version,
)

M = TypeVar("M", bound=BaseModel)
Permission = Literal["VIEW", "COMMENT", "EDIT"]
OnConflict = Literal["reject", "copy", "merge"]
Body = bytes | IO[bytes] | Iterable[bytes]
# What one POST /files/batch carries at most, under the server's default limits
# (DOCSTORE_BATCH_MAX_FILES 1,000, DOCSTORE_BATCH_MAX_BYTES 64 MiB).
BATCH_MAX_FILES = 500
BATCH_MAX_BYTES = 16 * 1024 * 1024


class _Unset:
    """Marks an argument that was not given (None is a meaningful value: the root folder)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()
USER_AGENT = "docstore-client/0.1"


def _seg(value: Id) -> str:
    """An id as one URL path segment."""
    return quote(str(value), safe="")


def split_path(path: str) -> list[str]:
    """'/projects/q1/plan.md' → ['projects', 'q1', 'plan.md'] (NFC, as the server stores names)."""
    parts = [unicodedata.normalize("NFC", p) for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise ValueError("'..' is not allowed in a docstore path")
    return parts


def _when(value: datetime | str | None) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class DocstoreClient:
    """A synchronous client of the docstore HTTP API (version 1).

    `base_url` is the server's address (without `/api/v1`). Every method raises a subclass of
    `docstore.client.errors.DocstoreError` built from the problem JSON when the server refuses.
    Pass `http` to reuse an `httpx.Client` (for instance a test client); it is not closed here.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 60.0,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_url = f"{self.base_url}/api/v1"
        self.token = token
        self.page_size = 1000  # items per page when iterating over a whole list
        self._owns_http = http is None
        self.http = http or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            headers={"User-Agent": USER_AGENT},
        )

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool (unless it was handed in)."""
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> DocstoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: Body | None = None,
        headers: dict[str, str] | None = None,
        files: list[tuple[str, Any]] | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> httpx.Response:
        """One API request (`path` below /api/v1); raises the typed error unless `ok`."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        all_headers = {**self._auth(), **(headers or {})}
        try:
            response = self.http.request(
                method,
                f"{self.api_url}{path}",
                json=json,
                params=query,
                content=content,
                headers=all_headers,
                files=files,
            )
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code not in ok:
            raise error_from_response(response)
        return response

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        return model.model_validate(self.request("GET", path, params=params).json())

    def _list(self, path: str, model: type[M], **params: Any) -> list[M]:
        """Every item of a list endpoint, whether it answers a page or a bare list."""
        return list(self._iter(path, model, limit=self.page_size, **params))

    def _iter(self, path: str, model: type[M], **params: Any) -> Iterator[M]:
        adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
        cursor: str | None = None
        while True:
            body = self.request("GET", path, params={**params, "cursor": cursor}).json()
            if isinstance(body, list):
                yield from adapter.validate_python(body)
                return
            yield from adapter.validate_python(body.get("items", []))
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def _page(self, path: str, model: type[M], **params: Any) -> Page[M]:
        body = self.request("GET", path, params=params).json()
        if isinstance(body, list):
            body = {"items": body, "next_cursor": None}
        return Page[model].model_validate(body)  # type: ignore[valid-type]

    # -- users and auth ---------------------------------------------------------------------

    def register(self, email: str, name: str, password: str) -> Token:
        """Open sign-up; the client then uses the new token."""
        body = {"email": email, "name": name, "password": password}
        token = Token.model_validate(self.request("POST", "/auth/register", json=body).json())
        self.token = token.token
        return token

    def login(self, email: str, password: str) -> Token:
        """Exchange email and password for a token; the client then uses it."""
        body = {"email": email, "password": password}
        token = Token.model_validate(self.request("POST", "/auth/login", json=body).json())
        self.token = token.token
        return token

    def logout(self) -> None:
        """Revoke the token in use."""
        self.request("POST", "/auth/logout")
        self.token = None

    def me(self) -> User:
        """The caller's account, quota and usage."""
        return self._get("/users/me", User)

    # -- account security (API.md "Accounts") ------------------------------------------

    def change_password(self, current_password: str, new_password: str) -> None:
        """Change the caller's password; every other session and app password ends."""
        body = {"current_password": current_password, "new_password": new_password}
        self.request("POST", "/users/me/password", json=body)

    def sessions(self) -> list[SessionInfo]:
        """The caller's active sessions and app passwords, newest first."""
        return self._list("/users/me/sessions", SessionInfo)

    def revoke_session(self, session_id: Id) -> None:
        """End a session or app password of the caller's at once."""
        self.request("DELETE", f"/users/me/sessions/{_seg(session_id)}")

    def create_app_password(self, name: str) -> AppPassword:
        """A new app password (a token without expiry); its secret is shown this once."""
        response = self.request("POST", "/users/me/app-passwords", json={"name": name})
        return AppPassword.model_validate(response.json())

    def admin_list_users(self) -> list[User]:
        """Every account (admin)."""
        return self._list("/admin/users", User)

    def admin_create_user(
        self,
        email: str,
        name: str,
        password: str,
        *,
        quota_bytes: int | None = None,
        plan: str | None = None,
        is_admin: bool = False,
    ) -> User:
        """Create an account (admin)."""
        body: dict[str, Any] = {"email": email, "name": name, "password": password}
        body |= {"quota_bytes": quota_bytes, "plan": plan, "is_admin": is_admin}
        return User.model_validate(
            self.request(
                "POST", "/admin/users", json={k: v for k, v in body.items() if v is not None}
            ).json()
        )

    def admin_update_user(
        self,
        user_id: Id,
        *,
        quota_bytes: int | None = None,
        plan: str | None = None,
        is_admin: bool | None = None,
    ) -> User:
        """Change a user's quota, plan or admin flag (admin)."""
        body = {"quota_bytes": quota_bytes, "plan": plan, "is_admin": is_admin}
        body = {k: v for k, v in body.items() if v is not None}
        return User.model_validate(
            self.request("PATCH", f"/admin/users/{_seg(user_id)}", json=body).json()
        )

    # -- folders ----------------------------------------------------------------------------

    def create_folder(self, name: str, parent_id: Id | None = None) -> Folder:
        """A new folder in `parent_id` (None: the caller's root)."""
        body = {"name": name, "parent_id": parent_id}
        return Folder.model_validate(self.request("POST", "/folders", json=body).json())

    def get_folder(self, folder_id: Id = "root") -> Folder:
        """A folder with the caller's permission on it."""
        return self._get(f"/folders/{_seg(folder_id)}", Folder)

    def list_children(
        self,
        folder_id: Id = "root",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        order_by: Literal["name", "updated_at"] | None = None,
    ) -> ChildrenPage:
        """One page of a folder's children (folders first)."""
        params = {"limit": limit, "cursor": cursor, "order_by": order_by}
        return self._get(f"/folders/{_seg(folder_id)}/children", ChildrenPage, **params)

    def iter_children(
        self, folder_id: Id = "root", *, order_by: Literal["name", "updated_at"] | None = None
    ) -> Iterator[Child]:
        """Every child of a folder, following the cursor."""
        cursor: str | None = None
        while True:
            page = self.list_children(
                folder_id, limit=self.page_size, cursor=cursor, order_by=order_by
            )
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def update_folder(
        self, folder_id: Id, *, name: str | None = None, parent_id: Id | _Unset | None = UNSET
    ) -> Folder:
        """Rename and/or move a folder (`parent_id=None` moves it to the root)."""
        body: dict[str, Any] = {} if name is None else {"name": name}
        if not isinstance(parent_id, _Unset):
            body["parent_id"] = parent_id
        return Folder.model_validate(
            self.request("PATCH", f"/folders/{_seg(folder_id)}", json=body).json()
        )

    def delete_folder(self, folder_id: Id) -> None:
        """Move a folder and everything under it to the trash."""
        self.request("DELETE", f"/folders/{_seg(folder_id)}")

    def restore_folder(self, folder_id: Id) -> Folder:
        """Bring a folder back from the trash."""
        return Folder.model_validate(
            self.request("POST", f"/folders/{_seg(folder_id)}/restore").json()
        )

    # -- uploads ----------------------------------------------------------------------------

    def create_upload(
        self,
        filename: str,
        size_bytes: int,
        checksum_sha256: str,
        *,
        folder_id: Id | None = None,
        document_id: Id | None = None,
        base_version_id: Id | None = None,
        mime_type: str | None = None,
        part_size: int | None = None,
        part_checksums_sha256: list[str] | None = None,
    ) -> UploadSession:
        """Start a multipart upload (POST /uploads): signed part URLs, or `skip_upload`.

        With `part_size` and each part's SHA-256 (base64), storage checks every part's
        bytes against it and the server needs to read nothing back (docstore.hashing).
        """
        body = {
            "filename": filename,
            "size_bytes": size_bytes,
            "checksum_sha256": checksum_sha256,
            "folder_id": folder_id,
            "document_id": document_id,
            "base_version_id": base_version_id,
            "mime_type": mime_type,
            "part_size": part_size,
            "part_checksums_sha256": part_checksums_sha256,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return UploadSession.model_validate(self.request("POST", "/uploads", json=body).json())

    def complete_upload(
        self,
        upload_id: str,
        parts: list[tuple[int, str]] | None = None,
        *,
        on_conflict: OnConflict | None = None,
    ) -> Document:
        """Finish a multipart upload; without `parts` the server lists them itself."""
        body: dict[str, Any] = {}
        if parts is not None:
            body["parts"] = [{"part_number": n, "etag": etag} for n, etag in sorted(parts)]
        if on_conflict is not None:
            body["on_conflict"] = on_conflict
        response = self.request("POST", f"/uploads/{_seg(upload_id)}/complete", json=body)
        return Document.model_validate(response.json())

    def abort_upload(self, upload_id: str) -> None:
        """Discard a multipart upload and its parts; nothing is charged."""
        self.request("DELETE", f"/uploads/{_seg(upload_id)}")

    def upload_bytes(
        self,
        name: str,
        content: Body,
        *,
        folder_id: Id | None = None,
        checksum_sha256: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
    ) -> Document:
        """Simple upload (POST /files) of a small body as a new document."""
        headers = {"Content-Type": "application/octet-stream"}
        if checksum_sha256:
            headers["X-Checksum-SHA256"] = checksum_sha256
        if size is not None:
            headers["Content-Length"] = str(size)
        params = {"name": name, "folder_id": folder_id, "mime_type": mime_type}
        response = self.request("POST", "/files", params=params, content=content, headers=headers)
        return Document.model_validate(response.json())

    def upload_batch(
        self,
        files: Iterable[BatchFile],
        *,
        folder_id: Id | None = None,
        max_files: int = BATCH_MAX_FILES,
        max_bytes: int = BATCH_MAX_BYTES,
    ) -> list[BatchItem]:
        """Upload many small files (POST /files/batch) into `folder_id` (default: the root),
        each at its relative path; as many requests as `max_files` / `max_bytes` need.

        Each file succeeds or fails alone: look at each item's `status` (201) and `error`;
        only a refusal of a whole request (401, 404, 413, ...) raises. A path that names an
        existing document fails with 409 `name_conflict`: send a new version instead.
        """
        results: list[BatchItem] = []
        group: list[BatchFile] = []
        size = 0
        for f in files:
            n = f.size()
            if group and (len(group) >= max_files or size + n > max_bytes):
                results += self._send_batch(group, folder_id)
                group, size = [], 0
            group.append(f)
            size += n
        if group:
            results += self._send_batch(group, folder_id)
        return results

    def _send_batch(self, group: list[BatchFile], folder_id: Id | None) -> list[BatchItem]:
        """One POST /files/batch; local files are streamed from disk, not read whole."""
        with contextlib.ExitStack() as stack:
            parts: list[tuple[str, Any]] = []
            for f in group:
                path = unicodedata.normalize("NFC", f.path)
                # The exact path: a filename cannot carry every name (documents.batch).
                headers = {"X-Docstore-Path": quote(path, safe="/")}
                if f.checksum_sha256:
                    headers["X-Checksum-SHA256"] = f.checksum_sha256
                body: Any = f.content
                if isinstance(body, Path):
                    body = stack.enter_context(body.open("rb"))
                mime = f.mime_type or "application/octet-stream"
                parts.append(("file", (path, body, mime, headers)))
            response = self.request(
                "POST", "/files/batch", params={"folder_id": folder_id}, files=parts
            )
        return [BatchItem.model_validate(i) for i in response.json()["items"]]

    def upload_file(
        self,
        path: str | Path,
        *,
        folder_id: Id | None = None,
        name: str | None = None,
        document_id: Id | None = None,
        base_version_id: Id | None = None,
        on_conflict: OnConflict | None = None,
        checksum_sha256: str | None = None,
        mime_type: str | None = None,
        multipart_threshold: int = transfer.MULTIPART_THRESHOLD,
        parallel: int = 4,
        resume: bool = True,
        state_dir: Path | None = None,
        progress: Callable[[int], None] | None = None,
        on_part: Callable[[int, int], None] | None = None,
    ) -> transfer.UploadResult:
        """Upload a local file as a new document, or a new version of `document_id`.

        Small files go in one request; larger ones as a parallel multipart upload that
        resumes where an interrupted one stopped. See `docstore.client.transfer`.
        """
        return transfer.upload_file(
            self,
            Path(path),
            folder_id=folder_id,
            name=name,
            document_id=document_id,
            base_version_id=base_version_id,
            on_conflict=on_conflict,
            checksum_sha256=checksum_sha256,
            mime_type=mime_type,
            multipart_threshold=multipart_threshold,
            parallel=parallel,
            resume=resume,
            state_dir=state_dir,
            progress=progress,
            on_part=on_part,
        )

    # -- documents --------------------------------------------------------------------------

    def get_document(self, document_id: Id) -> Document:
        """A document with its current version."""
        return self._get(f"/documents/{_seg(document_id)}", Document)

    def update_document(
        self,
        document_id: Id,
        *,
        name: str | None = None,
        parent_folder_id: Id | _Unset | None = UNSET,
    ) -> Document:
        """Rename and/or move a document (`parent_folder_id=None` moves it to the root)."""
        body: dict[str, Any] = {} if name is None else {"name": name}
        if not isinstance(parent_folder_id, _Unset):
            body["parent_folder_id"] = parent_folder_id
        return Document.model_validate(
            self.request("PATCH", f"/documents/{_seg(document_id)}", json=body).json()
        )

    def delete_document(self, document_id: Id) -> None:
        """Move a document to the trash."""
        self.request("DELETE", f"/documents/{_seg(document_id)}")

    def restore_document(self, document_id: Id) -> Document:
        """Bring a document back from the trash."""
        return Document.model_validate(
            self.request("POST", f"/documents/{_seg(document_id)}/restore").json()
        )

    def download_link(self, document_id: Id, version_id: Id | None = None) -> DownloadLink:
        """A short-lived signed URL for the bytes of a version (default: the current one)."""
        response = self.request(
            "GET",
            f"/documents/{_seg(document_id)}/download",
            params={"version_id": version_id, "redirect": "false"},
            ok=(200, 307),
        )
        if response.status_code == 307:
            return DownloadLink(url=response.headers["location"])
        return DownloadLink.model_validate(response.json())

    def download(
        self,
        document_id: Id,
        dest: str | Path,
        *,
        version_id: Id | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Version:
        """Stream a version to `dest`; `dest` is only written if the SHA-256 matches."""
        version = self.version_of(document_id, version_id)
        link = self.download_link(document_id, version.id)
        transfer.fetch_verified(self.http, link.url, Path(dest), version, progress)
        return version

    def version_of(self, document_id: Id, version_id: Id | None = None) -> Version:
        """The current version, or the version with that id."""
        if version_id is None:
            current = self.get_document(document_id).current_version
            if current is None:
                raise NotFound("The document has no version.")
            return current
        for version in self.iter_versions(document_id):
            if str(version.id) == str(version_id):
                return version
        raise NotFound(f"Version {version_id} does not exist.")

    # -- versions ---------------------------------------------------------------------------

    def list_versions(
        self, document_id: Id, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Version]:
        """One page of versions, newest first."""
        path = f"/documents/{_seg(document_id)}/versions"
        return self._page(path, Version, limit=limit, cursor=cursor)

    def iter_versions(self, document_id: Id) -> Iterator[Version]:
        """Every version, newest first."""
        path = f"/documents/{_seg(document_id)}/versions"
        return self._iter(path, Version, limit=self.page_size)

    def save_version(
        self,
        document_id: Id,
        content: Body,
        *,
        base_version_id: Id | None = None,
        on_conflict: OnConflict = "reject",
        checksum_sha256: str | None = None,
        size: int | None = None,
    ) -> SaveResult:
        """Save raw bytes as a new version; a stale base is rejected, copied or merged."""
        headers = {"Content-Type": "application/octet-stream"}
        if checksum_sha256:
            headers["X-Checksum-SHA256"] = checksum_sha256
        if size is not None:
            headers["Content-Length"] = str(size)
        params = {"base_version_id": base_version_id, "on_conflict": on_conflict}
        response = self.request(
            "POST",
            f"/documents/{_seg(document_id)}/versions",
            params=params,
            content=content,
            headers=headers,
        )
        return SaveResult.model_validate(response.json())

    def restore_version(self, document_id: Id, version_id: Id) -> SaveResult:
        """A new current version with that version's content."""
        path = f"/documents/{_seg(document_id)}/versions/{_seg(version_id)}/restore"
        return SaveResult.model_validate(self.request("POST", path).json())

    def pin_version(self, document_id: Id, version_id: Id, keep_forever: bool = True) -> Version:
        """Pin (or unpin) a version so retention never removes it."""
        path = f"/documents/{_seg(document_id)}/versions/{_seg(version_id)}"
        response = self.request("PATCH", path, json={"keep_forever": keep_forever})
        return Version.model_validate(response.json())

    def delete_version(self, document_id: Id, version_id: Id) -> None:
        """Delete a version that is not the current one."""
        self.request("DELETE", f"/documents/{_seg(document_id)}/versions/{_seg(version_id)}")

    # -- sharing ----------------------------------------------------------------------------

    def create_share(
        self,
        *,
        document_id: Id | None = None,
        folder_id: Id | None = None,
        permission: Permission = "VIEW",
        email: str | None = None,
        link: bool = False,
        expires_at: datetime | str | None = None,
        password: str | None = None,
        group_id: Id | None = None,
    ) -> Share:
        """Share a document or folder with a person (`email`), a group the caller is in
        (`group_id`) or as a link (`link=True`)."""
        if (document_id is None) == (folder_id is None):
            raise ValueError("give exactly one of document_id and folder_id")
        body: dict[str, Any] = {"permission": permission}
        body |= {"document_id": document_id} if document_id is not None else {}
        body |= {"folder_id": folder_id} if folder_id is not None else {}
        body |= {"email": email} if email is not None else {}
        body |= {"group_id": group_id} if group_id is not None else {}
        body |= {"link": True} if link else {}
        body |= {"expires_at": _when(expires_at)} if expires_at is not None else {}
        body |= {"password": password} if password is not None else {}
        return Share.model_validate(self.request("POST", "/shares", json=body).json())

    def document_shares(self, document_id: Id) -> list[Share]:
        """Shares of a document (owner only)."""
        return self._list(f"/documents/{_seg(document_id)}/shares", Share)

    def folder_shares(self, folder_id: Id) -> list[Share]:
        """Shares of a folder (owner only)."""
        return self._list(f"/folders/{_seg(folder_id)}/shares", Share)

    def update_share(
        self,
        share_id: Id,
        *,
        permission: Permission | None = None,
        expires_at: datetime | str | _Unset | None = UNSET,
    ) -> Share:
        """Change a share's permission or expiry (`expires_at=None` removes the expiry)."""
        body: dict[str, Any] = {} if permission is None else {"permission": permission}
        if not isinstance(expires_at, _Unset):
            body["expires_at"] = _when(expires_at)
        return Share.model_validate(
            self.request("PATCH", f"/shares/{_seg(share_id)}", json=body).json()
        )

    def delete_share(self, share_id: Id) -> None:
        """Revoke a share at once."""
        self.request("DELETE", f"/shares/{_seg(share_id)}")

    def shared_with_me(self) -> list[SharedItem]:
        """Documents and folders others shared with the caller."""
        return self._list("/shared-with-me", SharedItem)

    def access(self, document_id: Id, user_id: Id | None = None) -> Access:
        """The effective permission on a document (the caller's, or `user_id`'s) and why."""
        return self._get(f"/documents/{_seg(document_id)}/access", Access, user_id=user_id)

    def _link_headers(self, password: str | None) -> dict[str, str]:
        return {"X-Link-Password": password} if password is not None else {}

    def get_link(self, token: str, password: str | None = None) -> LinkView:
        """What a link share shows (no auth needed)."""
        response = self.request(
            "GET", f"/links/{_seg(token)}", headers=self._link_headers(password)
        )
        return LinkView.model_validate(response.json())

    def link_download_url(
        self,
        token: str,
        *,
        document_id: Id | None = None,
        version_id: Id | None = None,
        password: str | None = None,
    ) -> str:
        """The short-lived signed URL of a linked document (or one inside a linked folder)."""
        response = self.request(
            "GET",
            f"/links/{_seg(token)}/download",
            params={"document_id": document_id, "version_id": version_id, "redirect": "false"},
            headers=self._link_headers(password),
            ok=(200, 307),
        )
        if response.status_code == 307:
            return response.headers["location"]
        return DownloadLink.model_validate(response.json()).url

    def link_download(
        self,
        token: str,
        dest: str | Path,
        *,
        password: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Version:
        """Download the document a link shares, verifying its SHA-256."""
        view = self.get_link(token, password)
        if view.document is None or view.document.current_version is None:
            raise NotFound("This link shares a folder, not a document.")
        version = view.document.current_version
        url = self.link_download_url(token, version_id=version.id, password=password)
        transfer.fetch_verified(self.http, url, Path(dest), version, progress)
        return version

    def link_save_version(
        self,
        token: str,
        content: Body,
        *,
        base_version_id: Id | None = None,
        on_conflict: OnConflict = "reject",
        password: str | None = None,
    ) -> SaveResult:
        """Save a new version through a link that grants EDIT."""
        headers = {"Content-Type": "application/octet-stream", **self._link_headers(password)}
        params = {"base_version_id": base_version_id, "on_conflict": on_conflict}
        response = self.request(
            "POST",
            f"/links/{_seg(token)}/versions",
            params=params,
            content=content,
            headers=headers,
        )
        return SaveResult.model_validate(response.json())

    # -- comments ---------------------------------------------------------------------------

    def list_comments(self, document_id: Id) -> list[Comment]:
        """A document's comments."""
        return self._list(f"/documents/{_seg(document_id)}/comments", Comment)

    def add_comment(self, document_id: Id, body: str, version_id: Id | None = None) -> Comment:
        """Comment on a document (needs COMMENT)."""
        payload: dict[str, Any] = {"body": body}
        if version_id is not None:
            payload["version_id"] = version_id
        response = self.request("POST", f"/documents/{_seg(document_id)}/comments", json=payload)
        return Comment.model_validate(response.json())

    # -- trash ------------------------------------------------------------------------------

    def list_trash(self) -> list[TrashItem]:
        """The caller's trashed items."""
        return self._list("/trash", TrashItem)

    def purge_document(self, document_id: Id) -> None:
        """Purge a trashed document for good: versions removed, quota released."""
        self.request("DELETE", f"/trash/{_seg(document_id)}")

    def purge_folder(self, folder_id: Id) -> None:
        """Purge a trashed folder and everything under it for good."""
        self.request("DELETE", f"/trash/folders/{_seg(folder_id)}")

    def empty_trash(self) -> None:
        """Purge the whole trash."""
        self.request("DELETE", "/trash")

    # -- change feed ------------------------------------------------------------------------

    def changes_cursor(self, folder_id: Id | None = None) -> str:
        """The current position of the caller's change feed (or one folder's subtree)."""
        body = self.request("GET", "/changes/cursor", params={"folder_id": folder_id}).json()
        return str(body["cursor"])

    def changes(self, cursor: str, limit: int = 1000) -> dict[str, Any]:
        """`{changes, cursor, has_more}`: the changes after `cursor`, oldest first."""
        body: dict[str, Any] = self.request(
            "GET", "/changes", params={"cursor": cursor, "limit": limit}
        ).json()
        return body

    def wait_for_changes(self, cursor: str, timeout: int = 30) -> bool:
        """Long-poll: True as soon as there is a change after `cursor`, else False at
        `timeout` seconds."""
        body = self.request(
            "GET", "/changes/wait", params={"cursor": cursor, "timeout": timeout}
        ).json()
        backoff = body.get("backoff")
        if backoff and not body.get("changes"):
            time.sleep(min(float(backoff), 60.0))
        return bool(body.get("changes"))

    # -- audit, plans, maintenance ----------------------------------------------------------

    def search(
        self,
        q: str,
        *,
        folder_id: Id | None = None,
        kind: str | None = None,
        mime: str | None = None,
        owner: str | None = None,
        limit: int = 50,
    ) -> Iterator[SearchHit]:
        """Every item the caller can see matching `q` (GET /search), best first, page by
        page as they are consumed."""
        params = {"q": q, "folder_id": folder_id, "kind": kind, "mime": mime, "owner": owner}
        given = {k: v for k, v in params.items() if v is not None}
        return self._iter("/search", SearchHit, limit=limit, **given)

    def audit(
        self,
        *,
        document_id: Id | None = None,
        user_id: Id | None = None,
        action: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """One page of audit entries, newest first."""
        return self._page(
            "/audit",
            AuditEntry,
            document_id=document_id,
            user_id=user_id,
            action=action,
            since=_when(since),
            until=_when(until),
            limit=limit,
            cursor=cursor,
        )

    def list_plans(self) -> list[Plan]:
        """Every plan (admin)."""
        return self._list("/admin/plans", Plan)

    def put_plan(self, name: str, quota_bytes: int, max_versions: int, retention_days: int) -> Plan:
        """Create or replace a plan (admin)."""
        body = {
            "quota_bytes": quota_bytes,
            "max_versions": max_versions,
            "retention_days": retention_days,
        }
        return Plan.model_validate(
            self.request("PUT", f"/admin/plans/{_seg(name)}", json=body).json()
        )

    def run_retention(self, *, dry_run: bool = False) -> RetentionResult:
        """Run version retention now (admin); `dry_run` only reports."""
        params = {"dry_run": "true" if dry_run else "false"}
        response = self.request("POST", "/admin/retention/run", params=params)
        return RetentionResult.model_validate(response.json())

    def health(self) -> Health:
        """Database, storage and cache status (no auth)."""
        response = self.request("GET", "/health", ok=(200, 503))
        return Health.model_validate(response.json())

    # -- paths ------------------------------------------------------------------------------

    def find_child(self, folder_id: Id, name: str) -> Child | None:
        """The live child of a folder with this name, if any."""
        name = unicodedata.normalize("NFC", name)
        for child in self.iter_children(folder_id):
            if child.name == name:
                return child
        return None

    def resolve(self, path: str) -> Node:
        """The folder or document at a path like '/projects/q1/plan.md' in the caller's tree."""
        return self.resolve_chain(path)[-1]

    def resolve_chain(self, path: str) -> list[Node]:
        """Every node from the root down to the item at `path` (the root first)."""
        root = self.get_folder("root")
        chain = [Node(kind="folder", id=root.id, name="", path="/")]
        walked: list[str] = []
        for name in split_path(path):
            node = chain[-1]
            if node.kind != "folder":
                raise NotFound(f"{node.path} is a document, not a folder")
            walked.append(name)
            child = self.find_child(node.id, name)
            if child is None:
                raise NotFound(f"no such file or folder: /{'/'.join(walked)}")
            chain.append(
                Node(
                    kind=child.kind,
                    id=child.id,
                    name=child.name,
                    path="/" + "/".join(walked),
                    parent_id=node.id,
                    size_bytes=child.size_bytes,
                    current_version_id=child.current_version_id,
                )
            )
        return chain

    def makedirs(self, path: str) -> Node:
        """The folder at `path`, creating it and any missing parents (like `mkdir -p`)."""
        root = self.get_folder("root")
        node = Node(kind="folder", id=root.id, name="", path="/")
        walked: list[str] = []
        for name in split_path(path):
            walked.append(name)
            child = self.find_child(node.id, name)
            if child is None:
                folder = self.ensure_folder(name, node.id)
                child = Child(kind="folder", id=folder.id, name=folder.name)
            elif child.kind != "folder":
                raise NotFound(f"/{'/'.join(walked)} is a document, not a folder")
            node = Node(
                kind="folder",
                id=child.id,
                name=child.name,
                path="/" + "/".join(walked),
                parent_id=node.id,
            )
        return node

    def ensure_folder(self, name: str, parent_id: Id) -> Folder:
        """Create a folder, or return the one of that name that a concurrent client made."""
        try:
            return self.create_folder(name, parent_id)
        except NameConflict:
            # Someone else created it meanwhile: use theirs.
            child = self.find_child(parent_id, name)
            if child is None or child.kind != "folder":
                raise
            return self.get_folder(child.id)
