"""Batch files as people make them, and as attackers do: generated here, never checked in."""

from __future__ import annotations

import csv
import io
import zipfile

from openpyxl import Workbook

from bench.xlsx_readers import bomb

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(32)


def csv_bytes(rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter).writerows(rows)
    return out.getvalue().encode(encoding)


def numbered(count: int, header: str = "prompt") -> bytes:
    return (header + "\n" + "".join(f"prompt {n}\n" for n in range(count))).encode()


def just_over(limit: int) -> bytes:
    line = b"prompt\n"
    return line + b"x" * (limit + 1 - len(line))


def xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_cached_formula(data: bytes, cell: str, formula: str, cached: str) -> bytes:
    """The workbook with `cell` of the first sheet a formula whose last computed value is
    `cached`, as Excel saves it (openpyxl writes formulas without values)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            body = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = body.decode()
                start = text.index(f'<c r="{cell}"')
                end = text.index("</c>", start) + len("</c>")
                kind = "" if cached.replace(".", "", 1).isdigit() else ' t="str"'
                formula_cell = f'<c r="{cell}"{kind}><f>{formula}</f><v>{cached}</v></c>'
                text = text[:start] + formula_cell + text[end:]
                body = text.encode()
            target.writestr(item, body)
    return out.getvalue()


def billion_laughs() -> bytes:
    return bomb(xlsx({"Sheet1": [["prompt"], ["x"]]}))


def docx_like() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()
