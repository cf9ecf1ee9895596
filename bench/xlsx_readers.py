"""The two XLSX readers a prompts batch could go through, measured on the inputs that matter.

Run: .venv/bin/python -m bench.xlsx_readers [--rows 1000] [--big-mb 10]
openpyxl (read-only, cached values, defusedxml installed) and python-calamine each read, in a
fresh interpreter: a 1000 x 5 workbook, a workbook of about 10 MB, and a sheet whose XML declares
a billion-laughs entity. Reported per reader and input: seconds, peak RSS (the child's VmHWM, so
its imports count too) beside resource.getrusage's ru_maxrss (which on Linux may carry the
parent's peak across fork and exec, so it is an upper bound), rows read, and for the bomb whether
the reader refused it. A fourth input, "sparse" (one cell in A1 and one in XFD1048576, a few
hundred bytes), shows how each reader copes with a sheet whose extent is hostile (each read in a
fresh process with a 1 GB address-space cap, so a reader that allocates the whole extent fails
instead of taking the machine).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

_READ = r"""
import json, sys, time
path, reader = sys.argv[1], sys.argv[2]
import resource
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
started = time.perf_counter()
rows, refused, error = 0, False, None
try:
    if reader == "openpyxl":
        from openpyxl import load_workbook
        book = load_workbook(path, read_only=True, data_only=True)
        for _ in book[book.sheetnames[0]].iter_rows(values_only=True):
            rows += 1
    else:
        from python_calamine import CalamineWorkbook
        book = CalamineWorkbook.from_path(path)
        for _ in book.get_sheet_by_index(0).iter_rows():
            rows += 1
except Exception as exc:
    refused, error = True, f"{type(exc).__name__}: {str(exc)[:120]}"
import resource
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"s": round(time.perf_counter() - started, 3),
                  "peak_rss_mb": round(int(peak) / 1024, 1),
                  "ru_maxrss_mb": round(maxrss / 1024, 1),
                  "rows": rows, "refused": refused, "error": error}))
"""

_BOMB_SHEET = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + ']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>prompt</t></is></c></row>'
    '<row r="2"><c r="A2" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
)


def workbook(rows: int, columns: int, cell: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("prompts")
    sheet.append(["prompt", *(f"c{i}" for i in range(1, columns))])
    for n in range(rows):
        noise = hashlib.sha256(str(n).encode()).hexdigest()
        sheet.append([f"{cell} {n} {noise}", *(n * i for i in range(1, columns))])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def bomb(base: bytes) -> bytes:
    """A valid workbook whose first sheet is replaced by the billion-laughs XML."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = _BOMB_SHEET.encode()
            target.writestr(item, data)
    return out.getvalue()


def sparse(base: bytes) -> bytes:
    """A valid workbook whose first sheet has a cell in A1 and one in XFD1048576."""
    sheet = _BOMB_SHEET.split("]>", 1)[1].replace(
        '<row r="2"><c r="A2" t="inlineStr"><is><t>&lol9;</t></is></c></row>',
        '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>',
    )
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = ('<?xml version="1.0"?>' + sheet).encode()
            target.writestr(item, data)
    return out.getvalue()


def measure(path: Path, reader: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _READ, str(path), reader],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():  # killed, or out of address space
        return {"crashed": True, "returncode": done.returncode, "stderr": done.stderr[-200:]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--big-mb", type=float, default=10.0)
    args = parser.parse_args(argv)
    small = workbook(args.rows, 5, "Write a short poem about")
    # Distinct prompts (a hash in each) compress poorly: about --big-mb of workbook.
    big_rows = int(args.big_mb * 1024 * 1024 / 120)
    big = workbook(big_rows, 5, "Tell me, in detail, about item")
    inputs = {"small": small, "big": big, "bomb": bomb(small), "sparse": sparse(small)}
    result: dict[str, Any] = {"bench": "xlsx_readers", "inputs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in inputs.items():
            path = Path(tmp) / f"{name}.xlsx"
            path.write_bytes(data)
            result["inputs"][name] = {
                "bytes": len(data),
                "openpyxl": measure(path, "openpyxl"),
                "calamine": measure(path, "calamine"),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
