"""Listing a zip over ranged reads: chute's central-directory parser against the standard zipfile.

Run: .venv/bin/python -m bench.zip_listing [--members 2000] [--repeat 20] [--quick]

The fan-out lists a zip that lives in S3, where every read is a ranged GET: a round trip that
costs far more than the bytes it returns. The archive (N small deflated members, made in memory)
is wrapped in a file object that counts each read as one GET and the bytes it returned, which is
what a seekable S3 object adapter for zipfile would do. Both approaches list the same archive:
`read_central_directory` with a read_range over that object, and `zipfile.ZipFile(that object)`.
Also checked on both: whether a 256-entry overlapping archive (CVE-2024-0450) is refused when
listed, and how a macOS Archive Utility name (decomposed UTF-8, no UTF-8 flag) reads.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

from bench.timing import median_ms
from chalicelib.zipindex import ZipFormatError, read_central_directory


class CountingObject(io.RawIOBase):
    """A seekable read-only file over bytes in which every read is one ranged GET."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0
        self.size = len(data)
        self.gets = self.seeks = self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.seeks += 1
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._pos + size
        data = self._data[self._pos : end]
        self.gets += 1
        self.bytes_read += len(data)
        self._pos += len(data)
        return data

    def read_range(self, start: int, end: int) -> bytes:
        self.seek(start)
        return self.read(end - start)

    def counts(self) -> dict[str, int]:
        return {"gets": self.gets, "seeks": self.seeks, "bytes_read": self.bytes_read}


def make_zip(members: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(members):
            zf.writestr(f"reports/{i // 100:02d}/report-{i:05d}.txt", f"report {i}\n" * 20)
    return buf.getvalue()


def overlapping_zip(entries: int = 256) -> bytes:
    """One deflated block of 8 MiB of zeros, listed `entries` times at the same offset."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("000.bin", bytes(8 * 2**20))
    data = buf.getvalue()
    cd_offset = data.index(b"PK\x01\x02")
    entry = data[cd_offset : data.index(b"PK\x05\x06")]
    # Same entry, same local header, a different name of the same length each time.
    central = b"".join(entry.replace(b"000.bin", b"%03d.bin" % i) for i in range(entries))
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, len(central), cd_offset, 0)
    return data[:cd_offset] + central + eocd


def archive_utility_zip() -> bytes:
    """One member named as macOS Archive Utility writes it: NFD UTF-8 without the UTF-8 flag."""
    raw = unicodedata.normalize("NFD", "Résumé.txt").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("X" * len(raw)), b"")
    # zipfile would set the flag for a non-ASCII str name, so the raw bytes are written over it.
    return buf.getvalue().replace(b"X" * len(raw), raw)


def chute_listing(source: CountingObject) -> list[str]:
    return [m.name for m in read_central_directory(source.size, source.read_range)]


def zipfile_listing(source: CountingObject) -> list[str]:
    return zipfile.ZipFile(source).namelist()


def measure(
    data: bytes, lister: Callable[[CountingObject], list[str]], repeat: int
) -> dict[str, Any]:
    source = CountingObject(data)
    names = lister(source)
    try:
        lister(CountingObject(overlapping_zip()))
        refuses_overlap = False
    except (ZipFormatError, zipfile.BadZipFile):
        refuses_overlap = True
    return {
        **source.counts(),
        "members": len(names),
        "list_ms": median_ms(lambda: lister(CountingObject(data)), repeat),
        "refuses_overlapping_at_listing": refuses_overlap,
        "archive_utility_name": lister(CountingObject(archive_utility_zip()))[0],
    }


def run(members: int, repeat: int) -> dict[str, Any]:
    data = make_zip(members)
    if chute_listing(CountingObject(data)) != zipfile_listing(CountingObject(data)):
        raise AssertionError("the two listings disagree")
    return {
        "bench": "zip_listing",
        "python": sys.version.split()[0],
        "zip_bytes": len(data),
        "members": members,
        "central_directory_bytes": data.index(b"PK\x05\x06") - data.index(b"PK\x01\x02"),
        "chute": measure(data, chute_listing, repeat),
        "zipfile": measure(data, zipfile_listing, repeat),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=2000, help="members in the zip")
    parser.add_argument("--repeat", type=int, default=20, help="timed listings of each")
    parser.add_argument("--quick", action="store_true", help="200 members, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.repeat = 200, 3
    print(json.dumps(run(args.members, args.repeat)))


if __name__ == "__main__":
    main()
