"""What a zip member is and whether it is a document: its record, its name as people read it, and
the policy that keeps links, paths out of the archive, OS junk and oversized files from being units.

zipindex reads archives into these records; it imports this module, never the other way round,
so the fan-out's policy and the parser share one record and one set of error codes.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import PermanentError
from chalicelib.humanize import human_bytes

STORED, DEFLATED = 0, 8
_FLAG_UTF8 = 0x0800
_SEPARATORS = re.compile(r"[\\/]")
# "C:\x" and "C:x" (relative to drive C's current directory) both leave the extraction folder.
_DRIVE = re.compile(r"^[A-Za-z]:")
_WINDOWS_JUNK = frozenset({"thumbs.db", "desktop.ini"})


class ZipFormatError(PermanentError):
    default_code = "zip_corrupt"


def zip_error(code: str, message: str, **details: Any) -> ZipFormatError:
    return ZipFormatError(message, code=code, details=details)


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
    # The next member's header (or the central directory): the furthest this member's bytes may
    # reach. 0 means unknown, for members rebuilt by callers that did not carry it.
    end_offset: int = 0
    is_symlink: bool = False


def decode_name(raw_name: bytes, flags: int, unicode_path: bytes | None) -> str:
    """The name as Info-ZIP's unzip reads it, in NFC.

    ``unicode_path`` is the data of the entry's Info-ZIP Unicode Path extra field (0x7075), if any.
    macOS Archive Utility writes UTF-8 without setting the UTF-8 flag, so unflagged bytes that are
    valid UTF-8 are taken as UTF-8 (a cp437 name with accents almost never is); its names are also
    decomposed (e + combining accent), which NFC turns into the characters people type and compare.
    """
    if flags & _FLAG_UTF8:
        name = raw_name.decode("utf-8", errors="replace")
    else:
        name = _unicode_path_name(raw_name, unicode_path) or _utf8_or_cp437(raw_name)
    return unicodedata.normalize("NFC", name)


def _unicode_path_name(raw_name: bytes, block: bytes | None) -> str | None:
    # Version 1, then the CRC-32 of the name field it stands for: a tool that renamed the entry
    # without updating the field leaves a stale name, which the CRC exposes.
    if block is None or len(block) < 5 or block[0] != 1:
        return None
    if int.from_bytes(block[1:5], "little") != zlib.crc32(raw_name):
        return None
    try:
        return block[5:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _utf8_or_cp437(raw_name: bytes) -> str:
    try:
        return raw_name.decode("utf-8")
    except UnicodeDecodeError:
        return raw_name.decode("cp437")


def unreadable(member: ZipMember) -> ZipFormatError | None:
    """Why the member's bytes cannot be read at all (password, compression method), or None."""
    if member.encrypted:
        return zip_error(
            "zip_encrypted",
            f"{member.name!r} is password-protected inside the zip archive and cannot be read; "
            "re-create the zip without a password.",
            member=member.name,
        )
    if member.method not in (STORED, DEFLATED):
        return zip_error(
            "zip_unsupported_method",
            f"{member.name!r} uses a compression method (number {member.method}) that is not "
            "supported; please re-create the zip with standard (deflate) compression.",
            member=member.name,
            method=member.method,
        )
    return None


def is_unsafe_path(name: str) -> bool:
    """An absolute path, a drive letter or a '..' component: a name that points out of the archive.

    Backslashes count as separators too: Windows tools write them, and extractors honour them.
    """
    return (
        name.startswith(("/", "\\"))
        or _DRIVE.match(name) is not None
        or ".." in _SEPARATORS.split(name)
    )


def is_os_junk(name: str) -> bool:
    """Files the operating system adds to a folder (Finder's __MACOSX/ copies, AppleDouble ._*
    files and .DS_Store; Windows' Thumbs.db and desktop.ini), at any depth: never a document."""
    *folders, base = name.split("/")
    return (
        "__MACOSX" in folders
        or base.startswith("._")
        or base == ".DS_Store"
        or base.lower() in _WINDOWS_JUNK
    )


def member_problem(member: ZipMember, *, max_bytes: int) -> PermanentError | None:
    """Why this member must not become a pending unit, or None if it may.

    Directories and OS junk are not asked about: they are not units at all (is_dir, is_os_junk).
    """
    if is_unsafe_path(member.name):
        return zip_error(
            "zip_unsafe_path",
            f"{member.name!r} has a path that points outside the zip archive (an absolute path, a "
            "drive letter or '..'), so it was not processed. Re-create the zip from a folder so "
            "that every path is relative to it.",
            member=member.name,
        )
    if member.is_symlink:
        return zip_error(
            "zip_symlink",
            f"{member.name!r} is a symbolic link, not a document, so it was not processed. Put "
            "the file it points to in the zip instead of the link.",
            member=member.name,
        )
    problem = unreadable(member)
    if problem is not None:
        return problem
    if member.uncompressed_size > max_bytes:
        return zip_error(
            "member_too_large",
            f"{member.name!r} is {human_bytes(member.uncompressed_size)} uncompressed; the limit "
            f"is {human_bytes(max_bytes)} per file. Split it into smaller files and upload them "
            "again.",
            member=member.name,
            size=member.uncompressed_size,
            limit=max_bytes,
        )
    return None
