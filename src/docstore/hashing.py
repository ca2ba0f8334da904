"""The content hash: SHA-256 over fixed-size blocks, the one S3 can verify for docstore.

`content_hash = SHA-256(SHA-256(block 1) || SHA-256(block 2) || ...)` over the file cut into
blocks of `block_size` bytes (the last one shorter; an empty file is one empty block), as
Dropbox's `content_hash`. Uploaded with the multipart part size equal to the block size,
it is S3's composite `x-amz-checksum-sha256` of the object (`base64(content_hash)-N`): the
SHA-256 of each part is signed into its presigned URL, S3 refuses a part whose bytes do not
match it (BadDigest), and ListParts reports what S3 checked. So the server learns a hash of
the stored bytes it can deduplicate on without reading a byte back.

The file's plain SHA-256 cannot be learnt that way: S3 never hashes a multipart object as a
whole. Only the blocks' hashes are proven; the plain SHA-256 stays the client's claim until
the background verification (documents.tasks) reads the object once.

Shared by the server, the typed client and the tests; pure stdlib, at the bottom of the
layers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable

MiB = 1024 * 1024


def content_hash_of_digests(block_digests: Iterable[bytes]) -> str:
    """The content hash (hex) from the blocks' raw 32-byte SHA-256 digests, in order."""
    outer = hashlib.sha256()
    count = 0
    for digest in block_digests:
        if len(digest) != 32:
            raise ValueError("a block digest is 32 bytes")
        outer.update(digest)
        count += 1
    if count == 0:
        raise ValueError("a content hash needs at least one block")
    return outer.hexdigest()


def b64_digest(text: str) -> bytes:
    """A base64 SHA-256 (as `x-amz-checksum-sha256` carries it) as 32 raw bytes."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError("not a SHA-256 digest")
    return raw


def s3_composite(content_hash: str, parts: int) -> str:
    """S3's composite checksum of a multipart object with this content hash and part count."""
    return f"{base64.b64encode(bytes.fromhex(content_hash)).decode()}-{parts}"


class BlockHasher:
    """The plain SHA-256 and the content hash of a stream, in one pass.

    Each byte is hashed twice (whole file and its block): about twice the CPU of the plain
    SHA-256 alone, which is why the server only does this where it reads the bytes anyway
    (the background verification, the fallback read-back).
    """

    def __init__(self, block_size: int) -> None:
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self.size = 0
        self._whole = hashlib.sha256()
        self._block = hashlib.sha256()
        self._in_block = 0
        self.block_digests: list[bytes] = []

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self._whole.update(view)
        self.size += len(view)
        while len(view):
            room = self.block_size - self._in_block
            piece = view[:room]
            self._block.update(piece)
            self._in_block += len(piece)
            view = view[len(piece) :]
            if self._in_block == self.block_size:
                self.block_digests.append(self._block.digest())
                self._block = hashlib.sha256()
                self._in_block = 0

    def _all_digests(self) -> list[bytes]:
        if self._in_block or not self.block_digests:  # a short last block, or an empty file
            return [*self.block_digests, self._block.digest()]
        return list(self.block_digests)

    def sha256_hex(self) -> str:
        return self._whole.hexdigest()

    def content_hash(self) -> str:
        return content_hash_of_digests(self._all_digests())

    def block_digests_b64(self) -> list[str]:
        """Each block's SHA-256 in base64: the `x-amz-checksum-sha256` of each part."""
        return [base64.b64encode(d).decode() for d in self._all_digests()]


def content_hash_bytes(data: bytes, block_size: int) -> str:
    """The content hash of bytes in memory (tests, small server-made objects)."""
    hasher = BlockHasher(block_size)
    hasher.update(data)
    return hasher.content_hash()
