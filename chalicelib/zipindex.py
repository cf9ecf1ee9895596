"""List a zip's members from its central directory and stream one member, using ranged reads only.

The fan-out runs in a Lambda with bounded memory and a zip can be many GB, so the archive is never
downloaded: the listing costs one ranged GET of the tail (plus one for a central directory that
does not fit in it) and each member is later read by one ranged GET starting at its local header.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from chalicelib.errors import PermanentError

ReadRange = Callable[[int, int], bytes]

_EOCD = struct.Struct("<IHHHHIIH")
_EOCD_MAGIC = struct.pack("<I", 0x06054B50)
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_ZIP64_LOCATOR_MAGIC = struct.pack("<I", 0x07064B50)
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
_ZIP64_EOCD_SIG = 0x06064B50
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_CENTRAL_SIG = 0x02014B50
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIG = 0x04034B50
_ZIP64_EXTRA_ID = 0x0001
_FLAG_ENCRYPTED = 0x0001
_FLAG_UTF8 = 0x0800
_STORED, _DEFLATED = 0, 8
_SATURATED = 0xFFFFFFFF


class ZipFormatError(PermanentError):
    default_code = "zip_corrupt"


def _error(code: str, message: str, **details: Any) -> ZipFormatError:
    return ZipFormatError(message, code=code, details=details)


def _corrupt(why: str, **details: Any) -> ZipFormatError:
    return _error(
        "zip_corrupt", f"This zip archive is damaged and cannot be read ({why}).", **details
    )


@dataclass(frozen=True)
class ZipMember:
    index: int
    name: str
    header_offset: int
    compressed_size: int
    uncompressed_size: int
    method: int
    crc32: int
    flags: int
    is_dir: bool
    encrypted: bool


class _Tail:
    """The bytes read so far, always a suffix [start, size) of the archive."""

    def __init__(self, size: int, read_range: ReadRange, tail_bytes: int) -> None:
        self.size = size
        self._read_range = read_range
        self.start = size - min(size, tail_bytes)
        self.data = self._read(self.start, size)

    def _read(self, start: int, end: int) -> bytes:
        data = self._read_range(start, end)
        if len(data) != end - start:
            raise _error(
                "zip_truncated",
                "The zip archive ended sooner than expected; it may not have finished uploading.",
                requested=end - start,
                received=len(data),
            )
        return data

    def get(self, start: int, end: int) -> bytes:
        """Bytes [start, end); a missing prefix is fetched with exactly one more read."""
        if start < 0 or end > self.size or start > end:
            raise _corrupt("a record points outside the file", start=start, end=end)
        if start < self.start:
            self.data = self._read(start, self.start) + self.data
            self.start = start
        return self.data[start - self.start : end - self.start]


def _find_eocd(tail: _Tail) -> int:
    data = tail.data
    pos = data.rfind(_EOCD_MAGIC, 0, len(data) - _EOCD.size + 4)
    while pos >= 0:
        # A signature is only the record if its comment length reaches exactly to the end of the
        # file; otherwise those 4 bytes are just part of the comment or of compressed data.
        if pos + _EOCD.size + _EOCD.unpack_from(data, pos)[7] == len(data):
            return tail.start + pos
        pos = data.rfind(_EOCD_MAGIC, 0, pos + 3)
    raise _error(
        "zip_not_a_zip",
        "This file is not a valid zip archive (no end-of-central-directory record found).",
    )


def _directory_location(tail: _Tail) -> tuple[int, int, int]:
    """(entry count, central directory offset, size), from the zip64 record when there is one."""
    eocd = _find_eocd(tail)
    _, disk, cd_disk, disk_count, count, cd_size, cd_offset, _ = _EOCD.unpack(
        tail.get(eocd, eocd + _EOCD.size)
    )
    directory_end = eocd
    locator = eocd - _ZIP64_LOCATOR.size
    # Writers add zip64 records only when a field overflows, and then saturate that field. A
    # saturated field without a locator is taken at face value: a plain zip may hold 65,535 entries.
    saturated = 0xFFFF in (disk_count, count) or _SATURATED in (cd_size, cd_offset)
    if saturated and locator >= 0 and tail.get(locator, eocd)[:4] == _ZIP64_LOCATOR_MAGIC:
        _, z64_disk, z64_offset, total_disks = _ZIP64_LOCATOR.unpack(tail.get(locator, eocd))
        if z64_disk != 0 or total_disks > 1:
            raise _multi_part()
        if z64_offset + _ZIP64_EOCD.size > locator:
            raise _corrupt("the zip64 end record is out of place")
        record = _ZIP64_EOCD.unpack(tail.get(z64_offset, z64_offset + _ZIP64_EOCD.size))
        if record[0] != _ZIP64_EOCD_SIG:
            raise _corrupt("the zip64 end record is missing")
        disk, cd_disk, disk_count, count, cd_size, cd_offset = record[4:]
        directory_end = z64_offset
    if disk != 0 or cd_disk != 0:
        raise _multi_part()
    if disk_count != count:
        raise _corrupt("the entry counts disagree", on_this_disk=disk_count, total=count)
    if cd_size < count * _CENTRAL.size or cd_offset + cd_size > directory_end:
        raise _corrupt("the central directory lies outside the file", offset=cd_offset)
    return count, cd_offset, cd_size


def _multi_part() -> ZipFormatError:
    return _error(
        "zip_multi_part",
        "This zip archive is split into several parts, which is not supported; "
        "please upload it as a single zip file.",
    )


def _zip64_values(extra: bytes, wanted: int) -> list[int]:
    pos = 0
    while pos + 4 <= len(extra):
        block_id, block_len = struct.unpack_from("<HH", extra, pos)
        if block_id == _ZIP64_EXTRA_ID:
            if block_len < 8 * wanted or pos + 4 + block_len > len(extra):
                break
            return list(struct.unpack_from(f"<{wanted}Q", extra, pos + 4))
        pos += 4 + block_len
    raise _corrupt("a large-file (zip64) field is missing")


def _parse_entries(directory: bytes, count: int, cd_offset: int) -> list[ZipMember]:
    members: list[ZipMember] = []
    pos = 0
    while pos < len(directory):
        if pos + _CENTRAL.size > len(directory):
            raise _corrupt("the central directory is cut short", entry=len(members))
        fields = _CENTRAL.unpack_from(directory, pos)
        if fields[0] != _CENTRAL_SIG:
            raise _corrupt("a central directory entry has a bad signature", entry=len(members))
        flags, method, crc, csize, usize = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, offset = fields[10], fields[11], fields[12], fields[16]
        name_start = pos + _CENTRAL.size
        extra_start = name_start + name_len
        pos = extra_start + extra_len + comment_len
        if pos > len(directory):
            raise _corrupt("the central directory is cut short", entry=len(members))
        # The zip64 extra holds, in this order, only the fields whose 32-bit slot is saturated.
        wanted = [usize, csize, offset].count(_SATURATED)
        if wanted:
            wide = iter(_zip64_values(directory[extra_start : pos - comment_len], wanted))
            usize = next(wide) if usize == _SATURATED else usize
            csize = next(wide) if csize == _SATURATED else csize
            offset = next(wide) if offset == _SATURATED else offset
        raw_name = directory[name_start:extra_start]
        name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437", errors="replace")
        if offset + _LOCAL.size + csize > cd_offset:
            raise _corrupt("a member's data lies outside the file", member=name)
        members.append(
            ZipMember(
                index=len(members),
                name=name,
                header_offset=offset,
                compressed_size=csize,
                uncompressed_size=usize,
                method=method,
                crc32=crc,
                flags=flags,
                is_dir=name.endswith("/"),
                encrypted=bool(flags & _FLAG_ENCRYPTED),
            )
        )
    if len(members) != count:
        raise _corrupt("the number of entries does not match", expected=count, found=len(members))
    return members


def read_central_directory(
    size: int, read_range: ReadRange, *, tail_bytes: int = 65_536 + 22, max_members: int = 100_000
) -> list[ZipMember]:
    """List the members in central-directory order.

    Reads the last ``tail_bytes`` once and, only if the central directory starts before them, the
    missing part once more: two reads for any archive, except one whose comment is so long that the
    zip64 records fall outside the tail as well.
    """
    if size < _EOCD.size:
        raise _error("zip_not_a_zip", "This file is too small to be a zip archive.", size=size)
    tail = _Tail(size, read_range, tail_bytes)
    count, cd_offset, cd_size = _directory_location(tail)
    if count > max_members:
        raise _error(
            "zip_too_many_members",
            f"This zip archive contains {count:,} files; at most {max_members:,} are allowed.",
            members=count,
            limit=max_members,
        )
    return _parse_entries(tail.get(cd_offset, cd_offset + cd_size), count, cd_offset)


def member_span(member: ZipMember, *, local_header_slack: int = 1024) -> tuple[int, int]:
    # UTF-8 is never shorter than the stored name whatever its encoding (each cp437 byte becomes
    # 1-3 bytes, each undecodable byte a 3-byte U+FFFD), so this holds even for callers that
    # rebuild a ZipMember without its flags.
    name_len = len(member.name.encode("utf-8", errors="surrogatepass"))
    start = member.header_offset
    return start, start + _LOCAL.size + name_len + local_header_slack + member.compressed_size


def _read_exact(stream: BinaryIO, n: int, member: ZipMember) -> bytes:
    # HTTP bodies may return short reads before the end, so loop until n bytes or EOF.
    parts: list[bytes] = []
    while n > 0:
        part = stream.read(n)
        if not part:
            raise _error(
                "zip_truncated",
                f"The zip archive ends in the middle of {member.name!r}; it may be incomplete.",
                member=member.name,
            )
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _compressed_chunks(stream: BinaryIO, member: ZipMember, chunk_size: int) -> Iterator[bytes]:
    remaining = member.compressed_size
    while remaining > 0:
        chunk = _read_exact(stream, min(chunk_size, remaining), member)
        remaining -= len(chunk)
        yield chunk


def _inflate(chunks: Iterator[bytes], member: ZipMember, chunk_size: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(-15)
    try:
        for chunk in chunks:
            # Bounding each output keeps a zip bomb from inflating a whole chunk in memory at once.
            data = chunk
            while data and not inflater.eof:
                yield inflater.decompress(data, chunk_size)
                data = inflater.unconsumed_tail
        yield inflater.flush()
    except zlib.error as exc:
        raise _corrupt(f"the compressed data of {member.name!r} is invalid") from exc
    if not inflater.eof:
        raise _corrupt(f"the compressed data of {member.name!r} stops early")


def open_member(
    stream: BinaryIO, member: ZipMember, *, chunk_size: int = 256 * 1024
) -> Iterator[bytes]:
    """Yield the member's decompressed bytes from a stream positioned at its local header."""
    if member.encrypted:
        raise _error(
            "zip_encrypted",
            f"{member.name!r} is password-protected inside the zip archive and cannot be read.",
            member=member.name,
        )
    if member.method not in (_STORED, _DEFLATED):
        raise _error(
            "zip_unsupported_method",
            f"{member.name!r} uses a compression method (number {member.method}) that is not "
            "supported; please re-create the zip with standard (deflate) compression.",
            member=member.name,
            method=member.method,
        )
    return _verified(stream, member, chunk_size)


def _verified(stream: BinaryIO, member: ZipMember, chunk_size: int) -> Iterator[bytes]:
    header = _LOCAL.unpack(_read_exact(stream, _LOCAL.size, member))
    if header[0] != _LOCAL_SIG:
        raise _corrupt(f"the entry for {member.name!r} is not where the directory says")
    # Only the lengths are taken from the local header: its sizes and CRC are zero when the
    # writer streamed the member, so the central directory's values are the ones to trust.
    skip = header[9] + header[10]
    while skip > 0:
        skip -= len(_read_exact(stream, min(chunk_size, skip), member))
    chunks = _compressed_chunks(stream, member, chunk_size)
    if member.method == _DEFLATED:
        chunks = _inflate(chunks, member, chunk_size)
    total, crc = 0, 0
    for chunk in chunks:
        total += len(chunk)
        if total > member.uncompressed_size:
            raise _corrupt(f"{member.name!r} is larger than the archive says")
        crc = zlib.crc32(chunk, crc)
        if chunk:
            yield chunk
    if total != member.uncompressed_size:
        raise _corrupt(f"{member.name!r} is smaller than the archive says")
    if crc != member.crc32:
        raise _error(
            "zip_crc_mismatch",
            f"The contents of {member.name!r} are damaged (checksum mismatch).",
            member=member.name,
        )
