from __future__ import annotations

import dataclasses
import io
import random
import struct
import zipfile
import zlib

import pytest

from chalicelib.zipindex import (
    ZipFormatError,
    ZipMember,
    member_span,
    open_member,
    read_central_directory,
)


class RecordingReader:
    """A read_range over bytes in memory that remembers every ranged GET it served."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> bytes:
        self.calls.append((start, end))
        return self.data[start:end]

    @property
    def bytes_read(self) -> int:
        return sum(end - start for start, end in self.calls)


def build_zip(
    entries: list[tuple[str, bytes, int]], *, comment: bytes = b"", force_zip64: bool = False
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", allowZip64=True) as zf:
        for name, data, method in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            info.compress_type = method
            with zf.open(info, "w", force_zip64=force_zip64) as member:
                member.write(data)
        zf.comment = comment
    return buf.getvalue()


def craft_zip(entries: list[tuple[bytes, bytes, int]], *, zip64: bool) -> bytes:
    """A stored-only zip written by hand; with zip64 every size and offset lives in the extra."""
    out, central = bytearray(), bytearray()
    for raw_name, data, flags in entries:
        offset, crc, size = len(out), zlib.crc32(data), len(data)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 45, flags, 0, 0, 0x21, crc, size, size, len(raw_name), 0
        )
        out += raw_name + data
        extra, fields = b"", (size, size, offset)
        if zip64:
            # An unrelated extra block first, so the zip64 block has to be searched for.
            extra = struct.pack("<HH4s", 0xCAFE, 4, b"skip")
            extra += struct.pack("<HHQQQ", 0x0001, 24, size, size, offset)
            fields = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            *(0x02014B50, 45, 45, flags, 0, 0, 0x21, crc, fields[1], fields[0]),
            *(len(raw_name), len(extra), 0, 0, 0, 0, fields[2]),
        )
        central += raw_name + extra
    cd_offset, cd_size, count = len(out), len(central), len(entries)
    out += central
    if zip64:
        record_offset = len(out)
        out += struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, cd_size, cd_offset
        )
        out += struct.pack("<IIQI", 0x07064B50, 0, record_offset, 1)
        count, cd_size, cd_offset = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0)
    return bytes(out)


def read_member(data: bytes, member: ZipMember, chunk_size: int = 256 * 1024) -> bytes:
    start, end = member_span(member)
    stream = io.BytesIO(data[start : min(end, len(data))])
    return b"".join(open_member(stream, member, chunk_size=chunk_size))


def list_members(data: bytes) -> list[ZipMember]:
    return read_central_directory(len(data), RecordingReader(data))


def assert_matches_zipfile(data: bytes, members: list[ZipMember]) -> None:
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert [m.index for m in members] == list(range(len(infos)))
    assert [
        (m.name, m.header_offset, m.compressed_size, m.uncompressed_size, m.method, m.crc32)
        for m in members
    ] == [
        (i.filename, i.header_offset, i.compress_size, i.file_size, i.compress_type, i.CRC)
        for i in infos
    ]
    assert [(m.flags, m.is_dir) for m in members] == [(i.flag_bits, i.is_dir()) for i in infos]


def error_code(exc: pytest.ExceptionInfo[ZipFormatError]) -> str:
    return exc.value.code


MIXED = [
    ("readme.txt", b"hello " * 1000, zipfile.ZIP_DEFLATED),
    ("raw.bin", bytes(range(256)) * 40, zipfile.ZIP_STORED),
    ("docs/", b"", zipfile.ZIP_STORED),
    ("docs/résumé 日本.md", "naïve ünïcödé\n".encode() * 500, zipfile.ZIP_DEFLATED),
    ("empty.txt", b"", zipfile.ZIP_DEFLATED),
]


def test_lists_stored_deflated_utf8_and_directory_members_like_zipfile() -> None:
    data = build_zip(MIXED, comment=b"made by a test")
    members = list_members(data)
    assert_matches_zipfile(data, members)
    assert [m.is_dir for m in members] == [False, False, True, False, False]
    assert members[3].name == "docs/résumé 日本.md"
    assert members[3].flags & 0x800
    assert not any(m.encrypted for m in members)


def test_open_member_round_trips_stored_and_deflated_content() -> None:
    data = build_zip(MIXED)
    for member, (_, content, _) in zip(list_members(data), MIXED, strict=True):
        assert read_member(data, member) == content
        assert read_member(data, member, chunk_size=7) == content


def test_archive_comment_containing_a_fake_end_record_is_skipped() -> None:
    comment = b"PK\x05\x06" + b"\x00" * 30 + b"PK\x05\x06\x01"
    data = build_zip(MIXED, comment=comment)
    # zipfile itself is fooled by this comment, so compare with the same archive without it.
    assert_matches_zipfile(build_zip(MIXED), list_members(data))


def test_longest_possible_comment_leaves_the_directory_to_one_more_read() -> None:
    data = build_zip(MIXED, comment=b"c" * 65_535)
    reader = RecordingReader(data)
    assert_matches_zipfile(data, read_central_directory(len(data), reader))
    tail_start = len(data) - (65_536 + 22)
    assert reader.calls == [(tail_start, len(data)), (data.index(b"PK\x01\x02"), tail_start)]


def test_empty_zip_has_no_members_and_takes_one_read() -> None:
    data = build_zip([])
    reader = RecordingReader(data)
    assert read_central_directory(len(data), reader) == []
    assert reader.calls == [(0, len(data))]


def test_listing_a_multi_megabyte_archive_reads_under_one_percent_of_it() -> None:
    rng = random.Random(7)
    entries = [(f"part{i}.bin", rng.randbytes(2_000_000), zipfile.ZIP_STORED) for i in range(4)]
    data = build_zip(entries)
    reader = RecordingReader(data)
    members = read_central_directory(len(data), reader)
    assert_matches_zipfile(data, members)
    assert len(reader.calls) <= 2
    assert reader.bytes_read < len(data) // 100
    assert read_member(data, members[2]) == entries[2][1]


def test_central_directory_larger_than_the_tail_takes_exactly_two_reads() -> None:
    data = build_zip([(f"f{i:04d}.txt", b"x", zipfile.ZIP_STORED) for i in range(200)])
    cd_offset = data.index(b"PK\x01\x02")
    reader = RecordingReader(data)
    members = read_central_directory(len(data), reader, tail_bytes=1024)
    assert_matches_zipfile(data, members)
    # The second read fetches exactly the part of the directory the tail did not cover.
    assert reader.calls == [(len(data) - 1024, len(data)), (cd_offset, len(data) - 1024)]


def test_more_than_65535_entries_are_listed_through_the_zip64_end_record() -> None:
    data = build_zip([(f"{i}", b"", zipfile.ZIP_STORED) for i in range(65_536)])
    assert data[-42:-38] == b"PK\x06\x07"
    reader = RecordingReader(data)
    members = read_central_directory(len(data), reader)
    assert len(members) == 65_536
    assert members[-1].name == "65535"
    assert_matches_zipfile(data, members)
    assert len(reader.calls) == 2


def test_forced_zip64_members_whose_local_extra_differs_round_trip() -> None:
    data = build_zip(MIXED, force_zip64=True)
    members = list_members(data)
    assert_matches_zipfile(data, members)
    for member, (_, content, _) in zip(members, MIXED, strict=True):
        assert read_member(data, member) == content


def test_crafted_zip64_extended_information_gives_sizes_and_offsets() -> None:
    entries = [(b"a.txt", b"alpha" * 100, 0), ("café.txt".encode("cp437"), b"beta", 0)]
    data = craft_zip(entries, zip64=True)
    reader = RecordingReader(data)
    members = read_central_directory(len(data), reader)
    assert len(reader.calls) == 1
    assert_matches_zipfile(data, members)
    assert [m.name for m in members] == ["a.txt", "café.txt"]
    assert [read_member(data, m) for m in members] == [b"alpha" * 100, b"beta"]


def test_missing_zip64_extra_field_is_corrupt() -> None:
    data = craft_zip([(b"a.txt", b"alpha", 0)], zip64=True).replace(
        b"\x01\x00\x18\x00", b"\x02\x00\x18\x00"
    )
    with pytest.raises(ZipFormatError) as exc:
        list_members(data)
    assert error_code(exc) == "zip_corrupt"


def test_deflate_output_is_bounded_by_chunk_size() -> None:
    content = b"\x00" * 20_000_000
    data = build_zip([("zeros.bin", content, zipfile.ZIP_DEFLATED)])
    member = list_members(data)[0]
    start, end = member_span(member)
    chunks = list(open_member(io.BytesIO(data[start:end]), member, chunk_size=65_536))
    assert max(len(c) for c in chunks) <= 65_536
    assert sum(len(c) for c in chunks) == len(content)


def test_member_span_covers_header_name_slack_and_data() -> None:
    data = build_zip([("dir/ü.txt", b"abc" * 10, zipfile.ZIP_STORED)])
    member = list_members(data)[0]
    # A listed member's span stops at the next record; without end_offset it is an estimate.
    assert member_span(member) == (0, data.index(b"PK\x01\x02"))
    unknown_end = dataclasses.replace(member, end_offset=0)
    assert member_span(unknown_end) == (0, 30 + len("dir/ü.txt".encode()) + 1024 + 30)
    assert member_span(unknown_end, local_header_slack=0)[1] == data.index(b"PK\x01\x02")


def test_corrupted_data_byte_raises_crc_mismatch() -> None:
    data = bytearray(build_zip([("raw.bin", b"0123456789" * 10, zipfile.ZIP_STORED)]))
    member = list_members(bytes(data))[0]
    data[30 + len("raw.bin") + 5] ^= 0xFF
    with pytest.raises(ZipFormatError) as exc:
        read_member(bytes(data), member)
    assert error_code(exc) == "zip_crc_mismatch"


def test_invalid_deflate_stream_raises_zip_corrupt() -> None:
    data = bytearray(build_zip([("text.txt", b"hello world " * 1000, zipfile.ZIP_DEFLATED)]))
    member = list_members(bytes(data))[0]
    data[30 + len("text.txt")] = 0xFF  # deflate block type 3 is reserved, so never valid
    with pytest.raises(ZipFormatError) as exc:
        read_member(bytes(data), member)
    assert error_code(exc) == "zip_corrupt"


def test_member_inflating_beyond_its_declared_size_is_stopped_as_corrupt() -> None:
    data = build_zip([("text.txt", b"hello world " * 1000, zipfile.ZIP_DEFLATED)])
    member = list_members(data)[0]
    lying = dataclasses.replace(member, uncompressed_size=member.uncompressed_size - 1)
    with pytest.raises(ZipFormatError) as exc:
        read_member(data, lying)
    assert error_code(exc) == "zip_corrupt"


@pytest.mark.parametrize("cut", [1, 10, 22, 5000])
def test_archive_with_its_tail_cut_off_is_rejected(cut: int) -> None:
    data = build_zip(MIXED)[:-cut]
    with pytest.raises(ZipFormatError) as exc:
        list_members(data)
    assert error_code(exc) in {"zip_not_a_zip", "zip_corrupt"}


def test_member_stream_that_ends_early_raises_zip_truncated() -> None:
    data = build_zip(MIXED)
    member = list_members(data)[0]
    start, _ = member_span(member)
    stream = io.BytesIO(data[start : start + 30 + len(member.name) + member.compressed_size - 1])
    with pytest.raises(ZipFormatError) as exc:
        b"".join(open_member(stream, member))
    assert error_code(exc) == "zip_truncated"


def test_read_range_returning_fewer_bytes_than_the_size_raises_zip_truncated() -> None:
    data = build_zip(MIXED)
    with pytest.raises(ZipFormatError) as exc:
        read_central_directory(len(data) + 100, RecordingReader(data))
    assert error_code(exc) == "zip_truncated"


@pytest.mark.parametrize("size", [0, 21, 100_000])
def test_random_bytes_are_not_a_zip(size: int) -> None:
    data = random.Random(size).randbytes(size)
    with pytest.raises(ZipFormatError) as exc:
        list_members(data)
    assert error_code(exc) == "zip_not_a_zip"
    assert "not a valid zip archive" in exc.value.message or "too small" in exc.value.message


def test_encrypted_member_is_listed_but_cannot_be_opened() -> None:
    data = bytearray(build_zip([("secret.txt", b"shh", zipfile.ZIP_STORED)]))
    data[data.index(b"PK\x01\x02") + 8] |= 0x01
    member = list_members(bytes(data))[0]
    assert member.encrypted
    with pytest.raises(ZipFormatError) as exc:
        open_member(io.BytesIO(bytes(data)), member)
    assert error_code(exc) == "zip_encrypted"


def test_unsupported_compression_method_is_listed_but_cannot_be_opened() -> None:
    data = build_zip([("text.txt", b"hello " * 100, zipfile.ZIP_BZIP2)])
    member = list_members(data)[0]
    assert member.method == zipfile.ZIP_BZIP2
    with pytest.raises(ZipFormatError) as exc:
        open_member(io.BytesIO(data), member)
    assert error_code(exc) == "zip_unsupported_method"


def test_too_many_members_is_refused_before_reading_the_directory() -> None:
    data = build_zip([(f"{i}", b"", zipfile.ZIP_STORED) for i in range(3)])
    reader = RecordingReader(data)
    with pytest.raises(ZipFormatError) as exc:
        read_central_directory(len(data), reader, tail_bytes=30, max_members=2)
    assert error_code(exc) == "zip_too_many_members"
    assert len(reader.calls) == 1


def test_bad_central_directory_signature_is_corrupt() -> None:
    data = bytearray(build_zip(MIXED))
    data[data.rindex(b"PK\x01\x02")] = ord("X")
    with pytest.raises(ZipFormatError) as exc:
        list_members(bytes(data))
    assert error_code(exc) == "zip_corrupt"


@pytest.mark.parametrize(
    ("field_offset", "value"),
    [
        (8, struct.pack("<H", 4)),
        (8, struct.pack("<HH", 4, 4)),
        (8, struct.pack("<HH", 6, 6)),
        (16, struct.pack("<I", 10**6)),
    ],
    ids=["counts-disagree", "fewer-than-listed", "more-than-listed", "directory-outside-file"],
)
def test_end_record_that_disagrees_with_the_directory_is_corrupt(
    field_offset: int, value: bytes
) -> None:
    data = bytearray(build_zip(MIXED))
    eocd = data.rindex(b"PK\x05\x06")
    data[eocd + field_offset : eocd + field_offset + len(value)] = value
    with pytest.raises(ZipFormatError) as exc:
        list_members(bytes(data))
    assert error_code(exc) == "zip_corrupt"


def test_member_offset_outside_the_file_is_corrupt() -> None:
    data = bytearray(build_zip(MIXED))
    entry = data.rindex(b"PK\x01\x02")
    data[entry + 42 : entry + 46] = struct.pack("<I", len(data))
    with pytest.raises(ZipFormatError) as exc:
        list_members(bytes(data))
    assert error_code(exc) == "zip_corrupt"


def test_stream_not_at_a_local_header_is_corrupt() -> None:
    data = build_zip(MIXED)
    member = list_members(data)[1]
    with pytest.raises(ZipFormatError) as exc:
        b"".join(open_member(io.BytesIO(data[1:]), member))
    assert error_code(exc) == "zip_corrupt"


def test_deflate_stream_longer_than_its_declared_compressed_size_is_corrupt() -> None:
    data = build_zip([("text.txt", random.Random(1).randbytes(5000), zipfile.ZIP_DEFLATED)])
    member = list_members(data)[0]
    short = dataclasses.replace(member, compressed_size=member.compressed_size - 100)
    with pytest.raises(ZipFormatError) as exc:
        read_member(data, short)
    assert error_code(exc) == "zip_corrupt"


def test_split_archive_is_refused_as_multi_part() -> None:
    data = bytearray(build_zip(MIXED))
    eocd = data.rindex(b"PK\x05\x06")
    data[eocd + 4 : eocd + 6] = struct.pack("<H", 1)
    with pytest.raises(ZipFormatError) as exc:
        list_members(bytes(data))
    assert error_code(exc) == "zip_multi_part"


def test_member_span_covers_the_name_even_when_flags_are_lost() -> None:
    name = "日本語のファイル名" * 20
    data = build_zip([(name, b"abc", zipfile.ZIP_STORED)])
    member = dataclasses.replace(list_members(data)[0], flags=0)
    start, end = member_span(member, local_header_slack=0)
    assert end - start >= 30 + len(name.encode()) + 3
    assert read_member(data, member) == b"abc"
