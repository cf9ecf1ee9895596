"""`make demo` at small size, for real: a child process runs the stack, the CLI drives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_demo(root: Path, *args: str) -> dict[str, object]:
    # Port 0: the stack binds a free port itself and says which in local.json. (A port probed
    # here and handed over could be taken meanwhile by a test running beside this one.)
    env = {**os.environ, "CHUTE_API_PORT": "0"}
    finished = subprocess.run(
        [sys.executable, "-m", "chute_cli", "--root", str(root), "demo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = [line for line in finished.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, finished.stdout
    result: dict[str, object] = json.loads(lines[0])
    return result


@pytest.mark.e2e
def test_the_demo_completes_every_file_and_sends_one_notification(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--files", "24", "--size-mb", "2")

    assert result["status"] == "completed"
    assert result["total_files"] == 24
    assert result["completed"] == 24
    assert result["failed"] == 0
    assert result["notifications_sent"] == 1


@pytest.mark.e2e
def test_a_corrupt_file_fails_alone_and_the_session_completes_with_errors(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--files", "12", "--size-mb", "1", "--corrupt", "1")

    assert result["status"] == "completed_with_errors"
    assert (result["completed"], result["failed"]) == (11, 1)
    assert result["notifications_sent"] == 1
