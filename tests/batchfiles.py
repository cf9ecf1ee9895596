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


def replace_sheet(data: bytes, sheet_xml: bytes, part: str = "xl/worksheets/sheet1.xml") -> bytes:
    """The workbook with one part's XML replaced (the way hostile workbooks are made)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            body = sheet_xml if item.filename == part else source.read(item.filename)
            target.writestr(item.filename, body, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


_SHEET_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>prompt</t></is></c></row>'
)
_SHEET_TAIL = b"</sheetData></worksheet>"


def wide_row_sheet(cells: int) -> bytes:
    """A sheet whose second row has `cells` empty cells: openpyxl holds a row's cells whole."""
    row = b'<row r="2">' + b"<c/>" * cells + b"</row>"
    return replace_sheet(xlsx({"Sheet1": [["prompt"]]}), _SHEET_HEAD + row + _SHEET_TAIL)


def far_row_sheet(row_number: int) -> bytes:
    """A sheet whose second row is numbered `row_number`: openpyxl yields every row between."""
    row = f'<row r="{row_number}"><c r="A{row_number}" t="inlineStr"><is><t>x</t></is></c></row>'
    return replace_sheet(xlsx({"Sheet1": [["prompt"]]}), _SHEET_HEAD + row.encode() + _SHEET_TAIL)


def shared_strings_bomb(megabytes: int) -> bytes:
    """A workbook whose shared strings unpack to `megabytes` MB (they compress ~1000:1);
    openpyxl reads the shared strings whole, before any sheet."""
    head = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    body = b"<si><t>x</t></si>" * (megabytes * 1024 * 1024 // 17)
    sheet = _SHEET_HEAD + b'<row r="2"><c r="A2" t="s"><v>0</v></c></row>' + _SHEET_TAIL
    data = replace_sheet(xlsx({"Sheet1": [["prompt"]]}), sheet)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            part = source.read(item.filename)
            if item.filename == "xl/_rels/workbook.xml.rels":
                part = part.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdS" Target="sharedStrings.xml" Type="http://schemas.'
                    b'openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
                    b"</Relationships>",
                )
            if item.filename == "[Content_Types].xml":
                part = part.replace(
                    b"</Types>",
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
                    b'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
                )
            target.writestr(item.filename, part)
        target.writestr("xl/sharedStrings.xml", head + body + b"</sst>")
    return out.getvalue()


def cp1252_csv() -> bytes:
    return "prompt,note\nCafé crème — “quoted”,5 €\nÀ bientôt,naïve\n".encode("cp1252")


def multiline_csv() -> bytes:
    return csv_bytes(
        [["prompt", "tone"], ['Say "hi",\nthen, on a new line, "bye"', "warm, dry"], ["ok", ""]]
    )
