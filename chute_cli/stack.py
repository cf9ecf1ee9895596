"""Finding a running local stack, or starting one in the background for the length of a command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from pydantic import ValidationError

from chute_cli.client import LOCAL_CONFIG_PATH, LocalConfig, load_local_config

STACK_LOG_PATH = Path(".chute") / "stack.log"
# The directory holding chute_cli/ and infra/: the stack must import from it whatever the root is.
_PROJECT_DIR = Path(__file__).resolve().parents[1]
_POLL_S = 0.5


class StackError(Exception):
    """The local stack could not be started; the message says where to look."""


def api_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP server answers at url; any status counts, only no answer does not."""
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException:
        return False
    return True


def running_stack(root: Path) -> LocalConfig | None:
    """The config of a local stack started under root that answers now, if any."""
    try:
        config = load_local_config(root)
    except (FileNotFoundError, ValidationError, ValueError):
        return None
    return config if api_answers(config.api_url) else None


@dataclass
class StackProcess:
    """A local stack this command started, and so must stop."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace_s: float = 15.0) -> None:
        """Ask the stack to shut down cleanly, and kill it if it has not within grace_s."""
        # SIGTERM, not SIGINT: the stack treats both as Ctrl-C, but a process started in the
        # background by a non-interactive shell inherits SIGINT ignored.
        self.process.terminate()
        if not self._exited_within(grace_s):
            self.process.kill()
            self.process.wait()

    def _exited_within(self, seconds: float) -> bool:
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True


def _config_mtime(root: Path) -> int | None:
    try:
        return (root / LOCAL_CONFIG_PATH).stat().st_mtime_ns
    except FileNotFoundError:
        return None


def start_stack(root: Path, *, timeout_s: float) -> tuple[LocalConfig, StackProcess]:
    """Start ``python -m infra.local`` under root and wait until its API answers.

    Output goes to ``.chute/stack.log``. A ``local.json`` left by an earlier run does not count:
    only one written after the start does.
    """
    log_path = root / STACK_LOG_PATH
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stale_mtime = _config_mtime(root)
    python_path = os.pathsep.join(
        p for p in (str(_PROJECT_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local", "--root", str(root)],
            cwd=root,
            env=os.environ | {"PYTHONPATH": python_path},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in the terminal reaches this command, which then
            # stops the stack in order, instead of both dying at once.
            start_new_session=True,
        )
    stack = StackProcess(process, log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.poll()
        if code is not None:
            raise StackError(
                f"The local stack exited with code {code} while starting; see {log_path}."
            )
        if _config_mtime(root) not in (None, stale_mtime):
            config = running_stack(root)
            if config is not None:
                return config, stack
        if time.monotonic() >= deadline:
            stack.stop()
            raise StackError(
                f"The local stack did not answer within {timeout_s:.0f} s; see {log_path}."
            )
        time.sleep(_POLL_S)
