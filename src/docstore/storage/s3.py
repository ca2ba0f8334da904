"""Blobs in an S3 bucket; clients upload parts and download through presigned URLs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import parse_qs, quote, urlsplit

import boto3
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from docstore import metrics
from docstore.storage.base import (
    MAX_PRESIGN_SECONDS,
    MIN_PART_SIZE,
    MultipartInfo,
    ObjectInfo,
    PartInfo,
    SignedRequest,
    StorageError,
    normalize_etag,
)
from docstore.storage.disposition import clip_filename, content_disposition, safe_content_type

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PUT_PART_SIZE = 8 * 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_URL_OPTIONS = {
    "endpoint_url",
    "region",
    "create_bucket",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
}
# Storage that stops answering must fail a request within seconds, never hang it (botocore
# waits 60 s per attempt by default). READ_TIMEOUT bounds each wait for the next bytes; S3
# keeps long operations (CompleteMultipartUpload) alive with whitespace, so a healthy store
# never goes that quiet. MAX_ATTEMPTS counts the first try: a call gives up after at most
# MAX_ATTEMPTS waits of READ_TIMEOUT plus the backoff between them.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
MAX_ATTEMPTS = 3
# CompleteMultipartUpload alone may stay silent for long: stores that do not send S3's
# whitespace keep-alive (moto took 12 s for 1 GiB here) join the parts before answering.
COMPLETE_READ_TIMEOUT = 300.0


def _positive(
    options: dict[str, str], name: str, default: float, *, integer: bool = False
) -> float:
    """A positive number from the URL's options (a whole one with `integer`), or `default`."""
    text = options.get(name)
    if text is None:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = 0
    if not 0 < value < 3600:
        kind = "a whole number" if integer else "a number of seconds"
        raise ValueError(f"{name} must be {kind} above 0 and below 3600")
    return value


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _storage_errors(action: str) -> Iterator[None]:
    """Turn botocore's failures into StorageError (its message names no key or bucket)."""
    try:
        yield
    except ClientError as exc:
        raise StorageError(f"S3 refused to {action}: {_error_code(exc) or 'error'}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"S3 could not {action}: {type(exc).__name__}") from exc


class S3BlobStore:
    """Objects in one bucket; credentials come from the usual AWS variables and files."""

    kind = "s3"
    max_presign_seconds = MAX_PRESIGN_SECONDS

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        create_bucket: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.bucket = bucket
        self.region = region

        def make_client(read: float) -> S3Client:
            config = Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read,
            )
            return session.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )

        session = boto3.session.Session()
        self._session = session
        self.client: S3Client = make_client(read_timeout)
        self._complete_client = make_client(max(read_timeout, COMPLETE_READ_TIMEOUT))
        if create_bucket:
            self._ensure_bucket()

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """Build from `s3://BUCKET?endpoint_url=...&region=...&create_bucket=true`.

        `connect_timeout`, `read_timeout` (seconds) and `max_attempts` tune how soon an
        unreachable store fails a request.
        """
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://BUCKET URL: {url!r}")
        if parts.path not in ("", "/"):
            raise ValueError("an s3:// storage URL names a bucket only, no path")
        options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(options) - _URL_OPTIONS
        if unknown:
            raise ValueError(f"unknown s3:// URL options: {', '.join(sorted(unknown))}")
        create = options.get("create_bucket", "false").lower()
        if create not in ("true", "false", "1", "0"):
            raise ValueError("create_bucket must be true or false")
        return cls(
            parts.netloc,
            endpoint_url=options.get("endpoint_url") or None,
            region=options.get("region") or None,
            create_bucket=create in ("true", "1"),
            connect_timeout=_positive(options, "connect_timeout", CONNECT_TIMEOUT),
            read_timeout=_positive(options, "read_timeout", READ_TIMEOUT),
            max_attempts=int(_positive(options, "max_attempts", MAX_ATTEMPTS, integer=True)),
        )

    def _ensure_bucket(self) -> None:
        """Create the bucket unless it exists (for tests and first starts)."""
        with _storage_errors("create the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND | {"NoSuchBucket"}:
                    raise
            try:
                if self.region and self.region != "us-east-1":
                    # Any region name, not only those the type stubs list.
                    location: Any = {"LocationConstraint": self.region}
                    self.client.create_bucket(
                        Bucket=self.bucket, CreateBucketConfiguration=location
                    )
                else:
                    self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    # -- objects -------------------------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Upload from the server: one PUT when small, else 8 MiB parts (aborted on error).

        Chunks are read in the calling thread, and every request carries the SHA-256 of its
        bytes, so S3 refuses anything damaged on the way.
        """
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []
        try:
            with _storage_errors("store the object"):
                for chunk in chunks:
                    buffer += chunk
                    size += len(chunk)
                    while len(buffer) >= PUT_PART_SIZE:
                        if upload_id is None:
                            upload_id = self.create_multipart(key, checksum_sha256=True)
                        data = bytes(buffer[:PUT_PART_SIZE])
                        del buffer[:PUT_PART_SIZE]
                        parts.append(self._upload_part(key, upload_id, len(parts) + 1, data))
                if upload_id is None:
                    data = bytes(buffer)
                    self.client.put_object(
                        Bucket=self.bucket, Key=key, Body=data, ChecksumSHA256=_sha256_b64(data)
                    )
                    return size
                if buffer:
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                with suppress(StorageError):
                    self.abort_multipart(key, upload_id)
            raise
        return size

    def _upload_part(
        self, key: str, upload_id: str, number: int, data: bytes
    ) -> CompletedPartTypeDef:
        checksum = _sha256_b64(data)
        response = self.client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumSHA256=checksum,
        )
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}

    def open(self, key: str) -> BinaryIO:
        """The object's body as a stream; KeyError when it is missing."""
        with _storage_errors("read the object"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _NOT_FOUND:
                    raise KeyError(key) from None
                raise
        return cast(BinaryIO, _CountedBody(response["Body"]))

    def head(self, key: str) -> ObjectInfo | None:
        """Size and time of the object, or None."""
        with _storage_errors("look up the object"):
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _NOT_FOUND:
                    return None
                raise
        return ObjectInfo(key, response["ContentLength"], _utc(response.get("LastModified")))

    def delete(self, key: str) -> None:
        """Delete the object (S3 deletes are idempotent)."""
        with _storage_errors("delete the object"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def iter_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        with _storage_errors("list objects"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], item["Size"], _utc(item.get("LastModified")))

    # -- multipart -----------------------------------------------------------------------

    def create_multipart(
        self,
        key: str,
        content_type: str | None = None,
        *,
        checksum_sha256: bool = False,
        part_size: int = MIN_PART_SIZE,
        size: int | None = None,
    ) -> str:
        """Start an upload; with `checksum_sha256` S3 demands a SHA-256 with every part.

        `part_size` and `size` are hints for stores that lay parts out themselves; S3
        takes any (a part too big fails at complete, and the expiry job aborts it).
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ContentType"] = safe_content_type(content_type)
        if checksum_sha256:
            params["ChecksumAlgorithm"] = "SHA256"
        with _storage_errors("start the upload"):
            return self.client.create_multipart_upload(**params)["UploadId"]

    def sign_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        expires_in: int,
        checksum_sha256_b64: str | None = None,
    ) -> SignedRequest:
        """A presigned UploadPart; a checksum becomes a signed header the client must send."""
        fast = self._sign_part_fast(key, upload_id, part_number, expires_in, checksum_sha256_b64)
        if fast is not None:
            return fast
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": part_number,
        }
        headers = {}
        if checksum_sha256_b64 is not None:
            params["ChecksumSHA256"] = checksum_sha256_b64
            headers["x-amz-checksum-sha256"] = checksum_sha256_b64
        with _storage_errors("sign the part"):
            url = self.client.generate_presigned_url(
                "upload_part", Params=params, ExpiresIn=_presign_seconds(expires_in)
            )
        return SignedRequest(url=url, method="PUT", headers=headers)

    def _sign_part_fast(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        expires_in: int,
        checksum_sha256_b64: str | None,
    ) -> SignedRequest | None:
        """The same presigned UploadPart as `generate_presigned_url`, at a third of the CPU.

        Why: an upload signs one URL per part (128 for 1 GiB) and botocore's client
        pipeline (parameter validation, endpoint rules, event hooks) cost about 0.27 ms per
        URL: 35 ms of server CPU per GiB, most of the S3 upload path's budget (issue 27:
        < 0.05 CPU-s/GiB); this way it is 0.1 ms (12 ms per GiB). The object's URL is the
        same for every part, so it is taken once per key from the client (cached), and each
        part is signed by botocore's own SigV4 query signer. LocalStack checks these
        signatures (test_localstack*.py). None when the credentials cannot be had this way:
        the caller takes the slow path.
        """
        credentials = self._session.get_credentials()
        region = self.client.meta.region_name
        if credentials is None or not region:
            return None
        url = (
            f"{self._object_url(key)}?uploadId={quote(upload_id, safe='')}"
            f"&partNumber={int(part_number)}"
        )
        headers = {}
        if checksum_sha256_b64 is not None:
            headers["x-amz-checksum-sha256"] = checksum_sha256_b64
        request = AWSRequest(method="PUT", url=url, headers=dict(headers))
        signer = S3SigV4QueryAuth(
            credentials.get_frozen_credentials(),
            "s3",
            region,
            expires=_presign_seconds(expires_in),
        )
        signer.add_auth(request)
        return SignedRequest(url=request.url or url, method="PUT", headers=headers)

    @lru_cache(maxsize=256)  # noqa: B019 - one store per process, keys are few at a time
    def _object_url(self, key: str) -> str:
        """The object's URL (scheme, host, path) as the client addresses it."""
        with _storage_errors("sign the part"):
            signed = self.client.generate_presigned_url(
                "upload_part",
                Params={"Bucket": self.bucket, "Key": key, "UploadId": "x", "PartNumber": 1},
                ExpiresIn=60,
            )
        parts = urlsplit(signed)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """Every part received, past S3's 1,000-part pages."""
        paginator = self.client.get_paginator("list_parts")
        parts = []
        with _storage_errors("list the parts"):
            pages = paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id)
            for page in pages:
                for item in page.get("Parts", []):
                    parts.append(
                        PartInfo(
                            item["PartNumber"],
                            normalize_etag(item["ETag"]),
                            item["Size"],
                            item.get("ChecksumSHA256"),
                        )
                    )
        return sorted(parts, key=lambda p: p.part_number)

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[PartInfo], *, listed: bool = False
    ) -> None:
        """Join the parts; S3 does not give the whole file's SHA-256, so this returns None.

        With `listed` the parts are ListParts' own answer and are not listed again (10 ms of
        CPU per 128 parts, a fifth of the S3 upload path's budget).
        """
        ordered = sorted(parts, key=lambda p: p.part_number)
        if not ordered:
            raise StorageError("a multipart upload needs at least one part")
        if len({p.part_number for p in ordered}) != len(ordered):
            raise StorageError("a part number is listed twice")
        # Checked here too so both stores fail alike and early; the listing also supplies the
        # part checksums S3 wants back when the upload was created with checksum_sha256.
        stored = {p.part_number: p for p in (parts if listed else self.list_parts(key, upload_id))}
        body: list[CompletedPartTypeDef] = []
        for index, part in enumerate(ordered):
            found = stored.get(part.part_number)
            if found is None:
                raise StorageError(f"part {part.part_number} was not uploaded")
            if normalize_etag(part.etag) != found.etag:
                raise StorageError(f"part {part.part_number} does not match its ETag")
            if index < len(ordered) - 1 and found.size < MIN_PART_SIZE:
                raise StorageError(f"part {part.part_number} is smaller than {MIN_PART_SIZE} bytes")
            entry: CompletedPartTypeDef = {
                "PartNumber": part.part_number,
                "ETag": f'"{found.etag}"',
            }
            checksum = part.checksum_sha256 or found.checksum_sha256
            if checksum:
                entry["ChecksumSHA256"] = checksum
            body.append(entry)
        with _storage_errors("complete the upload"):
            self._complete_client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": body}
            )
        return None

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Discard the upload; an unknown one is fine."""
        with _storage_errors("abort the upload"):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND | {"NoSuchUpload"}:
                    raise

    def list_multipart_uploads(self, prefix: str = "") -> list[MultipartInfo]:
        """Unfinished uploads whose key starts with `prefix`, all pages."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        uploads = []
        with _storage_errors("list uploads"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    uploads.append(
                        MultipartInfo(item["Key"], item["UploadId"], _utc(item.get("Initiated")))
                    )
        return uploads

    # -- downloads -----------------------------------------------------------------------

    def sign_download(
        self,
        key: str,
        expires_in: int,
        filename: str,
        content_type: str | None = None,
        grant: str | None = None,
    ) -> str:
        """A presigned GetObject that answers with a safe disposition and no caching.

        S3 serves it without asking docstore: `grant` is not checked again, so a revoked
        share's URL works until it expires (DOCSTORE_SIGNED_URL_TTL_SECONDS).
        """
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentDisposition": content_disposition(clip_filename(filename)),
            "ResponseContentType": safe_content_type(content_type),
            "ResponseCacheControl": "private, no-store",
        }
        with _storage_errors("sign the download"):
            return self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=_presign_seconds(expires_in)
            )

    def check(self) -> bool:
        """Whether the bucket answers."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError):
            return False
        return True

    def housekeeping(self, older_than_seconds: float) -> int:
        """Nothing to do: S3 writes leave no temp files (multipart uploads have their own
        janitor, uploads.tasks)."""
        return 0


class _CountedBody:
    """The object's body, counting the bytes read (metrics.STORAGE_READ): what the bench's
    "bytes read back" row and /metrics report."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, amt: int | None = None) -> bytes:
        data: bytes = self._body.read(amt)
        metrics.STORAGE_READ.inc(len(data))
        return data

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _CountedBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


def _utc(moment: datetime | None) -> datetime | None:
    """botocore's times are aware but in the local zone; docstore keeps UTC."""
    return moment.astimezone(UTC) if moment is not None else None


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _presign_seconds(expires_in: int) -> int:
    if not 0 < expires_in <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires_in must be 1..{MAX_PRESIGN_SECONDS} seconds")
    return int(expires_in)
