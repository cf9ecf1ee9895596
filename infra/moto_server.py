"""moto's ThreadedMotoServer in a child process, with infra's moto fixes installed there.

A separate process because moto's request handling is pure Python: in the same process it would
compete for the GIL with the handlers the dispatcher runs, and the stack would measure itself.
The parent talks to the child over a pipe: "status" (are the fixes live there?) and "stop". The
child also stops when the pipe closes, so it never outlives the stack.

Started with multiprocessing's "spawn" (a fresh interpreter: forking a process that already runs
threads is unsafe), which imports the parent's main module in the child: a script that starts a
stack needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def _serve(conn: Connection, host: str, port: int, state_path: str | None) -> None:
    """The child: restore the saved state if there is one, then serve until told to stop or
    until the parent goes away; "save" and "save-clean" write the state (infra.snapshot)."""
    # Ctrl-C reaches the whole process group; the parent decides when moto stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Imported here: only the child needs moto's server (flask, werkzeug, every backend).
    from moto.server import ThreadedMotoServer

    from infra import moto_ddb_fast, moto_routing_fast, moto_sqs_fast

    # werkzeug logs every request; the dispatcher's long polls alone would flood the console.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fixes = {"sqs": moto_sqs_fast, "dynamodb": moto_ddb_fast, "routing": moto_routing_fast}
    for fix in fixes.values():
        fix.install()
    from infra import snapshot

    restored = snapshot.restore(Path(state_path)) if state_path else None
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    conn.send((server.get_host_and_port()[1], restored))
    with contextlib.suppress(EOFError):  # the parent went away without saying stop
        while (request := conn.recv()) != "stop":
            if request == "status":
                conn.send({name: fix.status() for name, fix in fixes.items()})
            elif request in ("save", "save-clean") and state_path:
                try:
                    conn.send(snapshot.save(Path(state_path), clean=request == "save-clean"))
                except Exception as exc:  # reported to the parent, which logs it
                    conn.send({"error": f"{type(exc).__name__}: {exc}"})
            else:
                conn.send(None)
    server.stop()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start children with SIGINT ignored: Python keeps an inherited SIG_IGN, so a Ctrl-C during
    the child's start-up (imports, before _serve runs) cannot print a traceback there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class MotoServerProcess:
    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, state_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        # Where moto's state is saved and restored from (infra.snapshot); None: kept in memory.
        self.state_path = state_path
        self.restored: dict[str, Any] | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> str:
        """Start the child and wait until the server accepts connections; the endpoint URL."""
        context = multiprocessing.get_context("spawn")
        conn, child_conn = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(child_conn, self.host, self.port, str(self.state_path or "") or None),
            name="moto",
            daemon=True,
        )
        with _sigint_ignored():
            process.start()
        child_conn.close()
        self._conn, self._process = conn, process
        deadline = time.monotonic() + timeout_s
        if not self._conn.poll(timeout_s):
            self.stop()
            raise RuntimeError(f"moto did not start within {timeout_s:.0f} s")
        self.port, self.restored = self._conn.recv()
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self.endpoint_url
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def status(self) -> dict[str, Any]:
        """What the fixes' status() say inside the child: {"sqs": …, "dynamodb": …, …}."""
        answer: dict[str, Any] = self._ask("status", 10)
        return answer

    def save(self, *, clean: bool, timeout_s: float = 300.0) -> dict[str, Any]:
        """Write moto's state to state_path; {"bytes", "seconds", "clean"} or {"error"}."""
        answer: dict[str, Any] = self._ask("save-clean" if clean else "save", timeout_s)
        return answer

    def _ask(self, request: str, timeout_s: float) -> Any:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("moto is not running")
            self._conn.send(request)
            if not self._conn.poll(timeout_s):
                raise TimeoutError("moto did not answer")
            return self._conn.recv()

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send("stop")
                self._conn.close()
                self._conn = None
            if self._process is not None:
                self._process.join(timeout_s)
                if self._process.is_alive():
                    self._process.terminate()
                    self._process.join(timeout_s)
                self._process = None
