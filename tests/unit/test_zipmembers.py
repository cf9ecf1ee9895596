"""Hostile and odd members: overlapping entries, names from every writer, links, OS junk, bombs,
and the policy that decides which members become units (zipindex's listing and zipmembers)."""

from __future__ import annotations

import dataclasses
import io
import struct
import tracemalloc
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.errors import PermanentError
from chalicelib.zipindex import ZipFormatError, ZipMember, member_span, open_member
from chalicelib.zipmembers import is_os_junk, member_problem
from tests.unit.test_zipindex import MIXED, build_zip, error_code, list_members, read_member

MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Entry:
    raw_name: bytes
    stored: bytes = b""  # the bytes after the local header, compressed if method is 8
    method: int = 0
    flags: int = 0
    size: int | None = None  # the declared uncompressed size; len(stored) when None
    crc: int | None = None  # crc32(stored) when None
    extra: bytes = b""  # the central directory's extra field
    made_by: int = 0x031E  # Unix, spec version 3.0
    external_attr: int = 0o100644 << 16
    offset: int | None = None  # the local header it points at; None: its own, written here


def assemble(entries: list[Entry], central_order: list[int] | None = None) -> bytes:
    """A zip written by hand, so names, attributes, offsets and sizes can say anything."""
    out, offsets = bytearray(), []
    for e in entries:
        crc = zlib.crc32(e.stored) if e.crc is None else e.crc
        size = len(e.stored) if e.size is None else e.size
        if e.offset is not None:
            offsets.append(e.offset)
            continue
        offsets.append(len(out))
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, e.flags, e.method, 0, 0x21, crc,
            len(e.stored), size, len(e.raw_name), 0,
        )  # fmt: skip
        out += e.raw_name + e.stored
    cd_offset = len(out)
    for i in central_order or range(len(entries)):
        e = entries[i]
        crc = zlib.crc32(e.stored) if e.crc is None else e.crc
        size = len(e.stored) if e.size is None else e.size
        out += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, e.made_by, 20, e.flags, e.method, 0, 0x21, crc,
            len(e.stored), size, len(e.raw_name), len(e.extra), 0, 0, 0, e.external_attr,
            offsets[i],
        )  # fmt: skip
        out += e.raw_name + e.extra
    count, cd_size = len(entries), len(out) - cd_offset
    return bytes(
        out + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0)
    )


def deflated_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(MIB)
    return b"".join(packer.compress(block) for _ in range(size // MIB)) + packer.flush()


def listing_error(data: bytes) -> ZipFormatError:
    with pytest.raises(ZipFormatError) as exc:
        list_members(data)
    return exc.value


# ---- overlapping members (CVE-2024-0450) ----------------------------------------------------
def test_256_entries_over_one_compressed_block_refuse_the_whole_archive() -> None:
    kernel = deflated_zeros(8 * MIB)
    entries = [Entry(b"000.bin", kernel, method=8, size=8 * MIB, crc=0)]
    entries += [
        dataclasses.replace(entries[0], raw_name=b"%03d.bin" % i, offset=0) for i in range(1, 256)
    ]
    data = assemble(entries)
    assert len(data) < 40_000  # 2 GB of work from a few KB, were each entry a unit
    error = listing_error(data)
    assert error.code == "zip_overlapping_members"
    assert error.message == (
        "This zip archive is malformed: '000.bin' overlaps '001.bin', a trick used by zip bombs, "
        "so none of its files were processed. Re-create the archive with a standard zip tool and "
        "upload it again."
    )
    assert error.details == {"member": "000.bin", "header_offset": 0, "other": "001.bin"}


def test_member_whose_data_covers_the_next_local_header_is_refused() -> None:
    data = bytearray(build_zip([("a.txt", b"a" * 50, 0), ("b.txt", b"b" * 50, 0)]))
    first = data.index(b"PK\x01\x02")
    data[first + 20 : first + 28] = struct.pack("<II", 50 + 30, 50 + 30)  # sizes reach into b.txt
    error = listing_error(bytes(data))
    assert (error.code, error.details["other"]) == ("zip_overlapping_members", "b.txt")


def test_member_whose_name_and_data_run_into_the_directory_is_refused() -> None:
    data = bytearray(build_zip([("a.txt", b"a" * 50, 0)]))
    entry = data.index(b"PK\x01\x02")
    # 30 + 50 + 5 still fits before the directory without the name, not with it.
    data[entry + 20 : entry + 28] = struct.pack("<II", 55, 55)
    error = listing_error(bytes(data))
    assert error.code == "zip_overlapping_members"
    assert "'a.txt' overlaps the archive's table of contents" in error.message


def test_end_offset_is_the_next_member_in_the_file_not_in_the_directory() -> None:
    entries = [Entry(b"a.txt", b"a" * 10), Entry(b"b.txt", b"b" * 20), Entry(b"c.txt", b"c")]
    data = assemble(entries, central_order=[2, 0, 1])
    members = list_members(data)
    assert [(m.name, m.header_offset, m.end_offset) for m in members] == [
        ("c.txt", 100, 136),
        ("a.txt", 0, 45),
        ("b.txt", 45, 100),
    ]
    assert [read_member(data, m) for m in members] == [b"c", b"a" * 10, b"b" * 20]


def test_members_with_data_descriptors_are_not_taken_for_overlaps() -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.out = io.BytesIO()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            return self.out.write(b)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content, _ in MIXED:
            zf.writestr(name, content)
    data = sink.out.getvalue()
    members = list_members(data)
    assert all(m.flags & 0x08 for m in members if not m.is_dir)
    assert [m.end_offset for m in members] == [m.header_offset for m in members[1:]] + [
        data.index(b"PK\x01\x02")
    ]
    assert [read_member(data, m) for m in members] == [content for _, content, _ in MIXED]


def test_local_header_claiming_a_longer_extra_than_fits_is_refused_when_opened() -> None:
    data = bytearray(build_zip([("a.txt", b"a" * 50, 0), ("b.txt", b"b" * 50, 0)]))
    members = list_members(bytes(data))
    data[28:30] = struct.pack("<H", 8)  # a.txt's data would now end inside b.txt's header
    with pytest.raises(ZipFormatError) as exc:
        read_member(bytes(data), members[0])
    assert error_code(exc) == "zip_overlapping_members"
    assert exc.value.details == {"member": "a.txt", "end_offset": members[1].header_offset}


def test_member_span_never_passes_end_offset_nor_the_longest_local_header() -> None:
    data = build_zip([("a.txt", b"a" * 50, 0), ("b.txt", b"b" * 50, 0)])
    first, second = list_members(data)
    assert member_span(first) == (0, second.header_offset)
    far = dataclasses.replace(first, end_offset=10**9)  # a gap after the member
    assert member_span(far) == (0, 30 + 2 * 65_535 + 50)


def test_member_rebuilt_from_the_carried_fields_reads_the_same() -> None:
    data = build_zip(MIXED)
    for listed, (_, content, _) in zip(list_members(data), MIXED, strict=True):
        rebuilt = ZipMember(
            index=0, name=listed.name, header_offset=listed.header_offset,
            compressed_size=listed.compressed_size, uncompressed_size=listed.uncompressed_size,
            method=listed.method, crc32=listed.crc32, flags=0, is_dir=False, encrypted=False,
            end_offset=listed.end_offset,
        )  # fmt: skip
        assert read_member(data, rebuilt) == content


# ---- names -----------------------------------------------------------------------------------
def unicode_path(raw_name: bytes, name: str, *, version: int = 1, crc: int | None = None) -> bytes:
    body = struct.pack("<BI", version, zlib.crc32(raw_name) if crc is None else crc)
    body += name.encode()
    return struct.pack("<HH", 0x7075, len(body)) + body


def name_of(entry: Entry) -> str:
    return list_members(assemble([entry]))[0].name


@pytest.mark.parametrize("flags", [0, 0x800], ids=["archive-utility-no-flag", "utf8-flag"])
def test_decomposed_utf8_name_reads_as_composed_text(flags: int) -> None:
    raw = unicodedata.normalize("NFD", "Résumé.pdf").encode()
    assert raw == b"Re\xcc\x81sume\xcc\x81.pdf"
    assert name_of(Entry(raw, flags=flags)) == "R\u00e9sum\u00e9.pdf"


def test_cp437_name_without_the_flag_reads_as_cp437() -> None:
    assert name_of(Entry(b"caf\x82.txt")) == "café.txt"


def test_unicode_path_extra_field_names_a_legacy_encoded_entry() -> None:
    raw = "日本.txt".encode("shift_jis")
    assert name_of(Entry(raw, extra=unicode_path(raw, "日本.txt"))) == "日本.txt"


@pytest.mark.parametrize(
    ("version", "crc"), [(1, zlib.crc32(b"old.txt")), (2, None)], ids=["stale-crc", "version-2"]
)
def test_unicode_path_extra_field_is_ignored_unless_it_matches(
    version: int, crc: int | None
) -> None:
    raw = "日本.txt".encode("shift_jis")
    extra = unicode_path(raw, "renamed.txt", version=version, crc=crc)
    assert name_of(Entry(raw, extra=extra)) == "ô·û{.txt"


# ---- symlinks --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("create_system", "mode", "is_symlink"),
    [(3, 0o120777, True), (3, 0o100644, False), (3, 0o040755, False), (0, 0o120777, False)],
    ids=["unix-link", "unix-file", "unix-dir", "msdos-attributes"],
)
def test_symlinks_are_unix_entries_with_a_link_mode(
    create_system: int, mode: int, is_symlink: bool
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link.txt", date_time=(2024, 1, 2, 3, 4, 6))
        info.create_system, info.external_attr = create_system, mode << 16
        zf.writestr(info, "/etc/passwd")
    assert list_members(buf.getvalue())[0].is_symlink is is_symlink


# ---- the policy ------------------------------------------------------------------------------
def member(name: str = "docs/a.txt", **changes: Any) -> ZipMember:
    plain = ZipMember(
        index=0, name=name, header_offset=0, compressed_size=10, uncompressed_size=10, method=8,
        crc32=0, flags=0, is_dir=False, encrypted=False,
    )  # fmt: skip
    return dataclasses.replace(plain, **changes)


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "\\Windows\\x.txt", "../x.txt", "docs/../../x.txt", "a\\..\\b.txt",
     "C:\\x.txt", "C:x.txt", "c:/x.txt", ".."],
)  # fmt: skip
def test_paths_out_of_the_archive_are_unsafe(name: str) -> None:
    problem = member_problem(member(name), max_bytes=MIB)
    assert problem is not None
    assert (problem.code, problem.details) == ("zip_unsafe_path", {"member": name})


@pytest.mark.parametrize("name", ["a..b.txt", "..hidden.txt", "docs/.../x.txt", "café/C:.txt"])
def test_names_that_only_look_like_escapes_are_safe(name: str) -> None:
    assert member_problem(member(name), max_bytes=MIB) is None


def test_symlink_member_is_a_problem_in_words() -> None:
    problem = member_problem(member("link.txt", is_symlink=True), max_bytes=MIB)
    assert isinstance(problem, PermanentError)
    assert (problem.code, problem.message) == (
        "zip_symlink",
        "'link.txt' is a symbolic link, not a document, so it was not processed. Put the file it "
        "points to in the zip instead of the link.",
    )


@pytest.mark.parametrize(
    ("changes", "code", "says"),
    [
        ({"encrypted": True}, "zip_encrypted", "re-create the zip without a password"),
        ({"method": 12}, "zip_unsupported_method", "standard (deflate) compression"),
        ({"name": "../x", "is_symlink": True}, "zip_unsafe_path", "points outside the zip"),
    ],
)
def test_unreadable_members_are_problems(changes: dict[str, Any], code: str, says: str) -> None:
    problem = member_problem(member(**changes), max_bytes=MIB)
    assert problem is not None
    assert problem.code == code
    assert says in problem.message


def test_member_over_the_size_limit_is_too_large_in_words() -> None:
    problem = member_problem(member(uncompressed_size=96 * MIB), max_bytes=64 * MIB)
    assert problem is not None
    assert (problem.code, problem.message, problem.details) == (
        "member_too_large",
        "'docs/a.txt' is 96 MB uncompressed; the limit is 64 MB per file. Split it into smaller "
        "files and upload them again.",
        {"member": "docs/a.txt", "size": 96 * MIB, "limit": 64 * MIB},
    )
    assert member_problem(member(uncompressed_size=64 * MIB), max_bytes=64 * MIB) is None


@pytest.mark.parametrize(
    "name",
    ["__MACOSX/._report.pdf", "__MACOSX/docs/report.pdf", "docs/__MACOSX/x.txt", "._report.pdf",
     "docs/._report.pdf", ".DS_Store", "a/b/.DS_Store", "Thumbs.db", "x/THUMBS.DB",
     "desktop.ini", "x/Desktop.INI"],
)  # fmt: skip
def test_os_junk_is_recognised_at_any_depth(name: str) -> None:
    assert is_os_junk(name)


@pytest.mark.parametrize(
    "name",
    ["report.pdf", "__MACOSX.txt", "docs/__MACOSX", "my._notes.txt", "DS_Store", "Thumbs.db.txt",
     "x/notdesktop.ini"],
)  # fmt: skip
def test_documents_with_junk_like_names_are_not_junk(name: str) -> None:
    assert not is_os_junk(name)


# ---- a member that lies about its size -------------------------------------------------------
class Tally:
    """What a reader was given before the stream failed."""

    def __init__(self) -> None:
        self.largest = self.total = 0

    def drain(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            self.largest, self.total = max(self.largest, len(chunk)), self.total + len(chunk)


@pytest.mark.parametrize("declared", [1024, 8 * MIB], ids=["1-kb", "8-mb"])
def test_deflate_bomb_is_stopped_at_its_declared_size_in_bounded_memory(declared: int) -> None:
    data = assemble([Entry(b"bomb.txt", deflated_zeros(100 * MIB), method=8, size=declared)])
    bomb = list_members(data)[0]
    start, end = member_span(bomb)
    stream, tally = io.BytesIO(data[start:end]), Tally()
    tracemalloc.start()
    try:
        with pytest.raises(ZipFormatError) as exc:
            tally.drain(open_member(stream, bomb, chunk_size=64 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error_code(exc) == "zip_corrupt"
    assert exc.value.message == (
        "This zip archive is damaged and cannot be read ('bomb.txt' is larger than the archive "
        "says)."
    )
    # Nothing past the declared size reaches the reader, and no more than a chunk at a time.
    assert tally.total == (0 if declared < 64 * 1024 else declared)
    assert tally.largest == (0 if declared < 64 * 1024 else 64 * 1024)
    assert peak < 4 * MIB
