"""Where a unit's bytes are — a whole object, a member inside a zip object, or a row in the
normalised rows file — as one tagged union, with one open() per kind.

The fan-out writes a source on every unit it plans; the worker opens it; the sweeper carries it
into the message of a retried attempt. Nobody else knows how a kind is read.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

from pydantic import Field

from chalicelib.errors import PermanentError
from chalicelib.modelbase import Model
from chalicelib.zipindex import ZipMember, member_span, open_member

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK_BYTES = 256 * 1024


class ObjectSource(Model):
    kind: Literal["object"] = "object"
    key: str
    size: int = 0


class ZipMemberSource(Model):
    kind: Literal["zip_member"] = "zip_member"
    key: str
    name: str = ""  # the member's path in the archive (its local header repeats it)
    header_offset: int = 0
    # The furthest the member's bytes may reach (the next member's header); 0: not known.
    end_offset: int = 0
    compressed_size: int = 0
    uncompressed_size: int = 0
    method: int = 0
    crc32: int = 0

    @classmethod
    def of(cls, key: str, member: ZipMember) -> ZipMemberSource:
        return cls(
            key=key,
            name=member.name,
            header_offset=member.header_offset,
            end_offset=member.end_offset,
            compressed_size=member.compressed_size,
            uncompressed_size=member.uncompressed_size,
            method=member.method,
            crc32=member.crc32,
        )

    def member(self) -> ZipMember:
        return ZipMember(
            index=0,
            name=self.name,
            header_offset=self.header_offset,
            compressed_size=self.compressed_size,
            uncompressed_size=self.uncompressed_size,
            method=self.method,
            crc32=self.crc32,
            flags=0,
            is_dir=False,
            encrypted=False,
            end_offset=self.end_offset,
        )


class RowSource(Model):
    """One row of a prompts batch: a byte range of inputs/{sid}/rows.jsonl."""

    kind: Literal["row"] = "row"
    key: str
    start: int
    end: int  # exclusive


UnitSource = Annotated[ObjectSource | ZipMemberSource | RowSource, Field(discriminator="kind")]


def source_size(source: ObjectSource | ZipMemberSource | RowSource) -> int:
    """The unit's size in bytes as it will be read (uncompressed for a zip member)."""
    if isinstance(source, ObjectSource):
        return source.size
    if isinstance(source, ZipMemberSource):
        return source.uncompressed_size
    return source.end - source.start


class _ChunkReader(io.RawIOBase):
    """A read-once binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _get(s3: S3Client, bucket: str, key: str, byte_range: tuple[int, int] | None = None) -> Any:
    """The object's body (bytes start to end, exclusive); a unit whose input is gone (expired by
    the bucket's lifecycle, or deleted) fails for good instead of being retried."""
    from botocore.exceptions import ClientError

    extra = {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"} if byte_range else {}
    try:
        return s3.get_object(Bucket=bucket, Key=key, **extra)["Body"]  # type: ignore[arg-type]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise PermanentError(
                "This unit's input is no longer stored (inputs and results expire), so it "
                "cannot be processed.",
                code="source_missing",
            ) from exc
        raise


def _ranged(s3: S3Client, bucket: str, key: str, start: int, end: int) -> Iterator[bytes]:
    body = _get(s3, bucket, key, (start, end))
    return iter(lambda: body.read(CHUNK_BYTES), b"")


def open_source(
    source: ObjectSource | ZipMemberSource | RowSource, s3: S3Client, bucket: str
) -> BinaryIO:
    """A stream of the unit's bytes (decompressed and CRC-checked for a zip member): one GET."""
    chunks: Iterator[bytes]
    if isinstance(source, ObjectSource):
        body = _get(s3, bucket, source.key)
        chunks = iter(lambda: body.read(CHUNK_BYTES), b"")
    elif isinstance(source, ZipMemberSource):
        member = source.member()
        chunks = open_member(
            _get(s3, bucket, source.key, member_span(member)), member, chunk_size=CHUNK_BYTES
        )
    else:
        chunks = _ranged(s3, bucket, source.key, source.start, source.end)
    return io.BufferedReader(_ChunkReader(chunks), buffer_size=CHUNK_BYTES)
