"""The embedded local stack, what `make run` starts (`python -m infra.local`).

One process tree: moto in a child process (infra.moto_server), the resources of infra.resources
provisioned in it, the Chalice app on the local dev server, the dispatcher playing Lambda's SQS
event sources and schedule, and the email outbox printed to the console. `.chute/local.json`
tells tools and tests where everything is and carries a dev token.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from chalicelib.auth import issue_token
from chalicelib.budget import UPLOAD_TIMEOUT_S, WORKER_TIMEOUT_S
from chalicelib.services import set_services
from infra.dispatcher import Dispatcher, Route
from infra.localapi import ChuteRequestHandler
from infra.model_server import DevModelServer
from infra.moto_server import MotoServerProcess
from infra.outbox import OutboxPrinter
from infra.provision import Provisioned, provision
from infra.resources import LOCAL, Resources

if TYPE_CHECKING:
    from chalice.local import LocalDevServer
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("chute.local")

REGION = "us-east-1"
# moto accepts any credentials; fixed dummy ones keep a real AWS profile from ever being used.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
UPLOAD_CONCURRENCY = 2


def lambda_routes(app: ModuleType, info: Mapping[str, Any], work_concurrency: int) -> list[Route]:
    """Which queue feeds which Lambda entry point, as the AWS event source mappings do."""
    return [
        Route(
            "on_upload",
            app.on_upload,
            (info["uploads_queue_url"],),
            concurrency=UPLOAD_CONCURRENCY,
            timeout_s=UPLOAD_TIMEOUT_S,
        ),
        Route(
            "worker",
            app.worker,
            (info["work_high_queue_url"], info["work_queue_url"]),
            concurrency=work_concurrency,
            timeout_s=WORKER_TIMEOUT_S,
        ),
    ]


class PortInUse(Exception):
    def __init__(self, port: int, setting: str) -> None:
        super().__init__(
            f"Port {port} is already in use — is `make run` already running? "
            f"Stop it or set {setting}."
        )
        self.port = port


def _ensure_port_free(host: str, port: int, setting: str) -> None:
    with socket.socket() as probe:
        # As the servers themselves bind: a previous run's TIME_WAIT sockets are no conflict.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(port, setting) from exc
            raise


def _write_private(path: Path, text: str) -> None:
    """Write atomically (readers never see half a file), readable by the owner only."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)


def signing_key(path: Path) -> str:
    """The local token signing key, made on first use and kept so issued tokens stay valid."""
    with contextlib.suppress(FileNotFoundError):
        if key := path.read_text(encoding="utf-8").strip():
            return key
    key = secrets.token_urlsafe(32)
    _write_private(path, key + "\n")
    return key


class LocalStack:
    def __init__(
        self,
        root: Path,
        *,
        api_host: str = "127.0.0.1",
        api_port: int = 8000,  # 0: any free port
        moto_port: int = 0,  # 0: any free port
        model_port: int = 0,  # the dev model server's; 0: any free port
        work_concurrency: int = 4,
        start_api: bool = True,
        start_dispatcher: bool = True,
        app_module: str = "app",
        resources: Resources = LOCAL,
        persist: bool = False,  # keep the AWS state in .chute/state/ across restarts
        snapshot_interval_s: float = 30.0,
    ) -> None:
        self.root = root
        self.api_host = api_host
        self.api_port = api_port
        self.moto_port = moto_port
        self.model_port = model_port
        self.work_concurrency = work_concurrency
        self.start_api = start_api
        self.start_dispatcher = start_dispatcher
        self.app_module = app_module
        self.resources = resources
        self.state_dir = root / ".chute"
        self.persist = persist
        self.snapshot_interval_s = snapshot_interval_s
        self.restored: dict[str, Any] | None = None
        self._saver: threading.Thread | None = None
        self._stopping = threading.Event()
        self.info: dict[str, Any] = {}
        self.moto: MotoServerProcess | None = None
        self.model: DevModelServer | None = None
        self._api: LocalDevServer | None = None
        self._api_thread: threading.Thread | None = None
        self._dispatcher: Dispatcher | None = None
        self._outbox: OutboxPrinter | None = None
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> dict[str, Any]:
        """Start everything; the contents of `.chute/local.json`. PortInUse before starting
        anything if a requested port is taken."""
        if self.start_api and self.api_port:
            _ensure_port_free(self.api_host, self.api_port, "CHUTE_API_PORT")
        if self.moto_port:
            _ensure_port_free("127.0.0.1", self.moto_port, "CHUTE_MOTO_PORT")
        if self.model_port:
            _ensure_port_free("127.0.0.1", self.model_port, "CHUTE_DEV_MODEL_PORT")
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> dict[str, Any]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.moto = MotoServerProcess(port=self.moto_port, state_path=self.snapshot_path)
        endpoint = self.moto.start()
        self.restored = self.moto.restored
        session = boto3.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )
        key = signing_key(self.state_dir / "token_key")
        provisioned = provision(session, endpoint, self.resources)
        info = self._describe(endpoint, provisioned, key)
        info["model_base_url"] = self._model_url()
        self._configure_app(
            {
                **provisioned.settings(self.resources, REGION),
                "aws_endpoint_url": endpoint,
                "model_base_url": info["model_base_url"],
            },
            key,
        )
        sqs: SQSClient = session.client(
            "sqs",
            endpoint_url=endpoint,
            # One connection per polling thread, and a few for the outbox and deletes.
            config=Config(max_pool_connections=self.work_concurrency + UPLOAD_CONCURRENCY + 8),
        )
        if self.start_api or self.start_dispatcher:
            app = importlib.import_module(self.app_module)
            if self.start_api:
                info["api_url"] = self._serve_api(app)
                # Links in emails open the page this stack serves.
                self._set_env({"CHUTE_PUBLIC_URL": info["api_url"]})
            if self.start_dispatcher:
                self._dispatcher = Dispatcher(
                    sqs,
                    lambda_routes(app, info, self.work_concurrency),
                    region=REGION,
                    schedule=getattr(app, "sweeper", None),
                )
                self._dispatcher.start()
        self._outbox = OutboxPrinter(sqs, info["outbox_queue_url"], Path(info["outbox_path"]))
        self._outbox.start()
        if self.restored is not None:
            info["restored"] = self._after_restore(self.restored)
        if self.persist:
            self._stopping.clear()
            self._saver = threading.Thread(target=self._save_periodically, name="snapshot")
            self._saver.start()
        self.info = info
        _write_private(self.state_dir / "local.json", json.dumps(info, indent=2) + "\n")
        return info

    @property
    def snapshot_path(self) -> Path | None:
        return self.state_dir / "state" / "aws.pickle" if self.persist else None

    def _after_restore(self, restored: dict[str, Any]) -> dict[str, Any]:
        """What the restart restored; after a snapshot taken while handlers ran (the stack was
        killed), chute's recovery sends what lost messages carried (chalicelib.recovery)."""
        if "error" in restored:
            log.warning("the saved state could not be read (%s); starting empty", restored)
            return restored
        if not restored["clean"]:
            from chalicelib.config import WorkSettings
            from chalicelib.recovery import recover_open_sessions
            from chalicelib.services import get_services

            report = recover_open_sessions(get_services(WorkSettings))
            restored = {**restored, "recovered": report.__dict__}
        log.info("restored the saved state: %s", restored)
        return restored

    def _save_periodically(self) -> None:
        while not self._stopping.wait(self.snapshot_interval_s):
            self._save(clean=False)

    def _save(self, *, clean: bool) -> None:
        if self.moto is None:
            return
        try:
            saved = self.moto.save(clean=clean)
        except (OSError, RuntimeError, TimeoutError) as exc:
            saved = {"error": f"{type(exc).__name__}: {exc}"}
        if "error" in saved:
            log.warning("saving the stack's state failed: %s", saved["error"])
        else:
            log.debug("saved the stack's state: %s", saved)

    def _model_url(self) -> str:
        """Where prompts sessions call a model: CHUTE_MODEL_BASE_URL when set (Ollama, vLLM, a
        hosted endpoint), else the dev model server this stack starts, as it starts moto."""
        configured = os.environ.get("CHUTE_MODEL_BASE_URL")
        if configured:
            return configured
        self.model = DevModelServer.from_env(port=self.model_port)
        self.model.start()
        return self.model.url

    def _describe(self, endpoint: str, provisioned: Provisioned, key: str) -> dict[str, Any]:
        """The contents of local.json, but for api_url."""
        return {
            "api_url": None,
            "aws_endpoint_url": endpoint,
            **provisioned.settings(self.resources, REGION),
            "outbox_queue_url": provisioned.queue_urls[self.resources.outbox_queue.name],
            "token": issue_token(key, "dev", time.time()),
            "token_key_path": str(self.state_dir / "token_key"),
            "outbox_path": str(self.state_dir / "outbox.jsonl"),
        }

    def _configure_app(self, fields: Mapping[str, str], key: str) -> None:
        """Point chalicelib's Settings at this stack: the app reads them on first use."""
        self._set_env(
            {
                **CREDENTIALS,
                **{f"CHUTE_{name.upper()}": value for name, value in fields.items()},
                "CHUTE_TOKEN_KEY": key,
            }
        )
        set_services(None)

    def _set_env(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _serve_api(self, app: ModuleType) -> str:
        from chalice.config import Config as ChaliceConfig
        from chalice.local import LocalChalice, LocalDevServer, create_local_server

        config = ChaliceConfig.create(
            chalice_stage="dev", app_name="chute", project_dir=str(self.root)
        )
        # create_local_server rebases the app's class onto LocalChalice; a second stack in the
        # same process (tests) must not do that again to the same app object.
        if not isinstance(app.app, LocalChalice):
            create_local_server(app.app, config, self.api_host, 0).server.server_close()
        try:
            self._api = LocalDevServer(
                app.app, config, self.api_host, self.api_port, handler_cls=ChuteRequestHandler
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(self.api_port, "CHUTE_API_PORT") from exc
            raise
        # Chalice's ThreadedHTTPServer: one thread per connection, so the page's polling, uploads
        # and CLI calls are served concurrently.
        server = self._api.server
        self._api_thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
        self._api_thread.start()
        host = "127.0.0.1" if self.api_host in ("", "0.0.0.0") else self.api_host
        return f"http://{host}:{server.server_address[1]}"

    def stop(self) -> None:
        """Stop what was started, in reverse order; safe to call more than once."""
        if self._dispatcher is not None:
            self._dispatcher.stop()
            self._dispatcher = None
        if self._outbox is not None:
            self._outbox.stop()
            self._outbox = None
        if self._api is not None:
            self._api.server.shutdown()
            self._api.server.server_close()
            if self._api_thread is not None:
                self._api_thread.join()
            self._api = self._api_thread = None
        if self._saver is not None:
            self._stopping.set()
            self._saver.join()
            self._saver = None
        if self.moto is not None:
            if self.persist and self.info:
                # Every handler has stopped: this snapshot is one instant, and clean.
                self._save(clean=True)
            self.moto.stop()
            self.moto = None
        if self.model is not None:
            self.model.stop()
            self.model = None
        if self.info:
            # Only the stack that wrote it removes it: tools read its absence as "not running".
            (self.state_dir / "local.json").unlink(missing_ok=True)
            self.info = {}
        self._restore_env()
        set_services(None)


def _banner(info: Mapping[str, Any], state_dir: Path) -> str:
    return "\n".join(
        [
            "chute local stack is up",
            f"  API           {info['api_url']}",
            f"  AWS (moto)    {info['aws_endpoint_url']}  region {info['region']}, "
            f"bucket {info['bucket']}, table {info['table']}",
            f"  model         {info['model_base_url']}",
            f"  page          {info['api_url']}/#token={info['token']}   (open this)",
            f"  dev token     {info['token']}",
            f"  details       {state_dir / 'local.json'}",
            f"  email outbox  {info['outbox_path']}",
            _restored_line(info.get("restored")),
            "Press Ctrl-C to stop.",
        ]
    )


def _restored_line(restored: Mapping[str, Any] | None) -> str:
    if restored is None:
        return "  saved state   none: starting empty"
    if "error" in restored:
        return f"  saved state   unreadable, starting empty (kept at {restored['kept_at']})"
    saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(restored["saved_at"]))
    how = "" if restored["clean"] else ", after an unclean stop: lost messages re-sent"
    return f"  saved state   restored from {saved} in {restored['seconds']:.1f} s{how}"


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="where .chute/ lives")
    parser.add_argument("--api-host", default=env.get("CHUTE_API_HOST", "127.0.0.1"))
    # argparse applies `type` to string defaults, so a bad variable gets a usage error too.
    parser.add_argument("--api-port", type=int, default=env.get("CHUTE_API_PORT", "8000"))
    parser.add_argument("--moto-port", type=int, default=env.get("CHUTE_MOTO_PORT", "0"))
    parser.add_argument("--model-port", type=int, default=env.get("CHUTE_DEV_MODEL_PORT", "0"))
    parser.add_argument(
        "--work-concurrency", type=int, default=env.get("CHUTE_WORK_CONCURRENCY", "4")
    )
    parser.add_argument("--app", default="app", help="module holding the Chalice app")
    parser.add_argument(
        "--fresh", action="store_true", help="forget the saved sessions and start empty"
    )
    parser.add_argument(
        "--no-persist",
        dest="persist",
        action="store_false",
        default=env.get("CHUTE_PERSIST", "1") != "0",
        help="keep nothing across restarts (CHUTE_PERSIST=0)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stack = LocalStack(
        args.root.resolve(),
        api_host=args.api_host,
        api_port=args.api_port,
        moto_port=args.moto_port,
        model_port=args.model_port,
        work_concurrency=args.work_concurrency,
        app_module=args.app,
        persist=args.persist,
    )
    if args.fresh and stack.snapshot_path is not None:
        stack.snapshot_path.unlink(missing_ok=True)
    # SIGTERM (from a supervisor, or the CLI after its grace period) stops the stack as Ctrl-C
    # does; SIGINT is set too, since a shell starting us in the background leaves it ignored.
    previous_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        info = stack.start()
        print(_banner(info, stack.state_dir), flush=True)
        threading.Event().wait()
    except PortInUse as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    finally:
        # A second Ctrl-C must not interrupt the shutdown with a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    return 0


if __name__ == "__main__":
    sys.exit(main())
