"""The prompts demo: a generated CSV batch through the local stack, its results checked row by row.

`make demo ARGS="--prompts 100"` writes a CSV of varied prompts, uploads it as a prompts session,
watches it, downloads the CSV results and compares them with the input: every row present, in
input order, with its prompt and its other columns intact (formula-looking cells come back
escaped with a leading apostrophe, as the export writes them).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.models import CreateSessionRequest, FileSpec
from chute_cli.client import ChuteClient
from chute_cli.promptsamples import PromptRow

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ResultsCheck:
    rows: int
    in_order: bool
    mismatches: list[str]


def unescaped(cell: str) -> str:
    """A CSV cell as it was before the export's formula escaping."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def check_results(body: bytes, rows: list[PromptRow]) -> ResultsCheck:
    """Compare a results CSV with the batch it came from."""
    table = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    mismatches = []
    ordinals = [r.get("ordinal", "") for r in table]
    in_order = ordinals == sorted(ordinals) and [unescaped(r.get("id", "")) for r in table] == [
        row.id for row in rows
    ]
    for got, want in zip(table, rows, strict=False):
        for field in ("prompt", "topic", "tone"):
            if unescaped(got.get(field, "")) != getattr(want, field):
                mismatches.append(f"{want.id}.{field}")
    if len(table) != len(rows):
        mismatches.append(f"{len(table)} rows for {len(rows)} prompts")
    return ResultsCheck(rows=len(table), in_order=in_order, mismatches=mismatches)


def start_prompts_session(client: ChuteClient, path: Path) -> str:
    """Create a prompts session for the CSV at `path` and upload it; the session id."""
    spec = FileSpec(name=path.name, size=path.stat().st_size, content_type="text/csv")
    created = client.create(
        CreateSessionRequest(job_type="prompts", files=[spec], name=f"demo: {path.stem}")
    )
    client.upload(created.uploads[0], path, "text/csv")
    return created.session_id


def results_fields(check: ResultsCheck) -> dict[str, Any]:
    return {"results_rows": check.rows, "results_in_order": check.in_order and not check.mismatches}
