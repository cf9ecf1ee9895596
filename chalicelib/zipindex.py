"""List a zip's members from its central directory and stream one member, using ranged reads only.

The fan-out runs in a Lambda with bounded memory and a zip can be many GB, so the archive is never
downloaded: the listing costs one ranged GET of the tail (plus one for a central directory that
does not fit in it) and each member is later read by one ranged GET starting at its local header.
Members whose bytes overlap are refused, the archive as a whole, before any of them becomes work.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple

from chalicelib.zipmembers import DEFLATED, decode_name, unreadable, zip_error
from chalicelib.zipmembers import ZipFormatError as ZipFormatError
from chalicelib.zipmembers import ZipMember as ZipMember

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
_UNICODE_PATH_ID = 0x7075
_FLAG_ENCRYPTED = 0x0001
_SATURATED = 0xFFFFFFFF
_UNIX = 3  # "version made by" high byte: the external attributes hold a Unix st_mode
_S_IFMT, _S_IFLNK = 0o170000, 0o120000
# A local header's name and extra lengths are 16-bit, so its variable part is at most this long.
_LOCAL_VARIABLE_MAX = 2 * 0xFFFF


def _corrupt(why: str, **details: Any) -> ZipFormatError:
    return zip_error(
        "zip_corrupt", f"This zip archive is damaged and cannot be read ({why}).", **details
    )


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
            raise zip_error(
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
    raise zip_error(
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
    return zip_error(
        "zip_multi_part",
        "This zip archive is split into several parts, which is not supported; "
        "please upload it as a single zip file.",
    )


def _extra_block(extra: bytes, block_id: int) -> bytes | None:
    """The data of the first extra-field block with this id, or None."""
    pos = 0
    while pos + 4 <= len(extra):
        found, size = struct.unpack_from("<HH", extra, pos)
        if found == block_id:
            return extra[pos + 4 : pos + 4 + size] if pos + 4 + size <= len(extra) else None
        pos += 4 + size
    return None


def _zip64_values(extra: bytes, wanted: int) -> list[int]:
    block = _extra_block(extra, _ZIP64_EXTRA_ID)
    if block is None or len(block) < 8 * wanted:
        raise _corrupt("a large-file (zip64) field is missing")
    return list(struct.unpack_from(f"<{wanted}Q", block))


def _is_symlink(made_by: int, external_attr: int) -> bool:
    # Only Unix writers put an st_mode in the high half of the external attributes.
    return made_by >> 8 == _UNIX and (external_attr >> 16) & _S_IFMT == _S_IFLNK


class _Entry(NamedTuple):
    """A central directory entry before its end_offset is known (ZipMember is frozen)."""

    name: str
    header_offset: int
    compressed_size: int
    uncompressed_size: int
    method: int
    crc32: int
    flags: int
    is_symlink: bool
    data_end: int  # where its data ends if its local header repeats the central name


def _parse_entries(directory: bytes, count: int, cd_offset: int) -> list[ZipMember]:
    entries: list[_Entry] = []
    pos = 0
    while pos < len(directory):
        if pos + _CENTRAL.size > len(directory):
            raise _corrupt("the central directory is cut short", entry=len(entries))
        fields = _CENTRAL.unpack_from(directory, pos)
        if fields[0] != _CENTRAL_SIG:
            raise _corrupt("a central directory entry has a bad signature", entry=len(entries))
        flags, method, crc, csize, usize = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, offset = fields[10], fields[11], fields[12], fields[16]
        name_start = pos + _CENTRAL.size
        extra_start = name_start + name_len
        pos = extra_start + extra_len + comment_len
        if pos > len(directory):
            raise _corrupt("the central directory is cut short", entry=len(entries))
        extra = directory[extra_start : pos - comment_len]
        # The zip64 extra holds, in this order, only the fields whose 32-bit slot is saturated.
        wanted = [usize, csize, offset].count(_SATURATED)
        if wanted:
            wide = iter(_zip64_values(extra, wanted))
            usize = next(wide) if usize == _SATURATED else usize
            csize = next(wide) if csize == _SATURATED else csize
            offset = next(wide) if offset == _SATURATED else offset
        raw_name = directory[name_start:extra_start]
        name = decode_name(raw_name, flags, _extra_block(extra, _UNICODE_PATH_ID))
        if offset + _LOCAL.size + csize > cd_offset:
            raise _corrupt("a member's data lies outside the file", member=name)
        symlink = _is_symlink(fields[1], fields[15])
        data_end = offset + _LOCAL.size + name_len + csize
        entries.append(_Entry(name, offset, csize, usize, method, crc, flags, symlink, data_end))
    if len(entries) != count:
        raise _corrupt("the number of entries does not match", expected=count, found=len(entries))
    ends = _end_offsets(entries, cd_offset)
    return [
        ZipMember(
            index=index,
            name=e.name,
            header_offset=e.header_offset,
            compressed_size=e.compressed_size,
            uncompressed_size=e.uncompressed_size,
            method=e.method,
            crc32=e.crc32,
            flags=e.flags,
            is_dir=e.name.endswith("/"),
            encrypted=bool(e.flags & _FLAG_ENCRYPTED),
            end_offset=end,
            is_symlink=e.is_symlink,
        )
        for index, (e, end) in enumerate(zip(entries, ends, strict=True))
    ]


def _end_offsets(entries: list[_Entry], cd_offset: int) -> list[int]:
    """Where each entry must end: the next header in the file; the archive refused if any overlap.

    Entries that share bytes are how small zips become huge (CVE-2024-0450: 256 entries over one
    compressed block are 256 units of the same gigabytes). No writer produces them, so the whole
    archive is refused rather than its members being read one by one.
    """
    order = sorted(range(len(entries)), key=lambda i: entries[i].header_offset)
    ends = [0] * len(entries)
    for rank, here in enumerate(order):
        after = entries[order[rank + 1]] if rank + 1 < len(order) else None
        ends[here] = cd_offset if after is None else after.header_offset
        if entries[here].data_end > ends[here]:
            raise _overlapping(entries[here], after)
    return ends


def _overlapping(entry: _Entry, neighbour: _Entry | None) -> ZipFormatError:
    other = "the archive's table of contents" if neighbour is None else repr(neighbour.name)
    return zip_error(
        "zip_overlapping_members",
        f"This zip archive is malformed: {entry.name!r} overlaps {other}, a trick used by zip "
        "bombs, so none of its files were processed. Re-create the archive with a standard zip "
        "tool and upload it again.",
        member=entry.name,
        header_offset=entry.header_offset,
        other=None if neighbour is None else neighbour.name,
    )


def read_central_directory(
    size: int, read_range: ReadRange, *, tail_bytes: int = 65_536 + 22, max_members: int = 100_000
) -> list[ZipMember]:
    """List the members in central-directory order, each with its end_offset.

    Reads the last ``tail_bytes`` once and, only if the central directory starts before them, the
    missing part once more: two reads for any archive, except one whose comment is so long that the
    zip64 records fall outside the tail as well. Raises ZipFormatError (zip_overlapping_members)
    for an archive whose members share bytes.
    """
    if size < _EOCD.size:
        raise zip_error("zip_not_a_zip", "This file is too small to be a zip archive.", size=size)
    tail = _Tail(size, read_range, tail_bytes)
    count, cd_offset, cd_size = _directory_location(tail)
    if count > max_members:
        raise zip_error(
            "zip_too_many_members",
            f"This zip archive contains {count:,} files; at most {max_members:,} are allowed.",
            members=count,
            limit=max_members,
        )
    return _parse_entries(tail.get(cd_offset, cd_offset + cd_size), count, cd_offset)


def member_span(member: ZipMember, *, local_header_slack: int = 1024) -> tuple[int, int]:
    """The byte range [start, end) to GET for open_member: never past the member's end_offset."""
    start = member.header_offset
    if member.end_offset:
        # The listing proved nothing else lives before end_offset, so the local header may be as
        # long as its 16-bit lengths allow; this bound only matters if a gap follows the member.
        end = start + _LOCAL.size + _LOCAL_VARIABLE_MAX + member.compressed_size
        return start, min(end, member.end_offset)
    # No end_offset: a member listed before names were NFC-normalised, whose UTF-8 name is never
    # shorter than the stored one whatever its encoding (each cp437 byte becomes 1-3 bytes, each
    # undecodable byte a 3-byte U+FFFD), so this holds even for callers that lost its flags.
    name_len = len(member.name.encode("utf-8", errors="surrogatepass"))
    return start, start + _LOCAL.size + name_len + local_header_slack + member.compressed_size


def _read_exact(stream: BinaryIO, n: int, member: ZipMember) -> bytes:
    # HTTP bodies may return short reads before the end, so loop until n bytes or EOF.
    parts: list[bytes] = []
    while n > 0:
        part = stream.read(n)
        if not part:
            raise zip_error(
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
    problem = unreadable(member)
    if problem is not None:
        raise problem
    return _verified(stream, member, chunk_size)


def _verified(stream: BinaryIO, member: ZipMember, chunk_size: int) -> Iterator[bytes]:
    header = _LOCAL.unpack(_read_exact(stream, _LOCAL.size, member))
    if header[0] != _LOCAL_SIG:
        raise _corrupt(f"the entry for {member.name!r} is not where the directory says")
    # Only the lengths are taken from the local header: its sizes and CRC are zero when the
    # writer streamed the member, so the central directory's values are the ones to trust.
    skip = header[9] + header[10]
    # The listing checked the central directory's lengths; a local header may still claim a longer
    # name or extra and so make the data start inside the next member.
    data_end = member.header_offset + _LOCAL.size + skip + member.compressed_size
    if member.end_offset and data_end > member.end_offset:
        raise zip_error(
            "zip_overlapping_members",
            f"The entry for {member.name!r} reaches into the next file of the zip archive, a "
            "trick used by zip bombs, so it was not processed. Re-create the archive with a "
            "standard zip tool and upload it again.",
            member=member.name,
            end_offset=member.end_offset,
        )
    while skip > 0:
        skip -= len(_read_exact(stream, min(chunk_size, skip), member))
    chunks = _compressed_chunks(stream, member, chunk_size)
    if member.method == DEFLATED:
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
        raise zip_error(
            "zip_crc_mismatch",
            f"The contents of {member.name!r} are damaged (checksum mismatch).",
            member=member.name,
        )
