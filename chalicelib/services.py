"""The one place AWS clients are made: lazily, from Settings, pointed at moto locally."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import boto3
from botocore.config import Config

from chalicelib.clock import Clock, SystemClock
from chalicelib.config import CoreSettings
from chalicelib.jobs import BUILT_IN, JobRegistry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from chalicelib.processors.base import ClientKey
    from chalicelib.store import Store

T = TypeVar("T")
# Which function's settings these services carry (ApiSettings, WorkSettings …).
S_co = TypeVar("S_co", bound=CoreSettings, covariant=True)
S = TypeVar("S", bound=CoreSettings)
S3V4 = Config(signature_version="s3v4")


class Services(Generic[S_co]):
    """Settings, clock, job types and clients for one process. Clients are created on first use."""

    def __init__(
        self,
        settings: S_co,
        clock: Clock | None = None,
        session: boto3.Session | None = None,
        jobs: JobRegistry = BUILT_IN,
    ) -> None:
        self._settings = settings
        self.clock: Clock = clock or SystemClock()
        self.jobs = jobs
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._session = session or boto3.Session(region_name=settings.region)
        self._config = Config(
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=50,
            s3={"addressing_style": "path"},
        )

    @property
    def settings(self) -> S_co:
        return self._settings

    def _client_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"config": self._config, "region_name": self.settings.region}
        if self.settings.aws_endpoint_url:
            kwargs["endpoint_url"] = self.settings.aws_endpoint_url
        return kwargs

    @cached_property
    def s3(self) -> S3Client:
        # SigV4 for presigned POSTs and GETs too (boto3 would sign them SigV2, which S3 refuses
        # for buckets made since 2020).
        kwargs = {**self._client_kwargs(), "config": self._config.merge(S3V4)}
        return self._session.client("s3", **kwargs)  # type: ignore[call-overload,no-any-return]

    @cached_property
    def sqs(self) -> SQSClient:
        return self._session.client("sqs", **self._client_kwargs())  # type: ignore[call-overload,no-any-return]

    @cached_property
    def ddb(self) -> DynamoDBClient:
        return self._session.client("dynamodb", **self._client_kwargs())  # type: ignore[call-overload,no-any-return]

    @cached_property
    def sns(self) -> SNSClient:
        return self._session.client("sns", **self._client_kwargs())  # type: ignore[call-overload,no-any-return]

    def aws_client(self, service: str, config: Config | None = None) -> Any:
        """A client of any other AWS service (Bedrock, Secrets Manager), with its own config
        merged over the shared one; the caller keeps it."""
        kwargs = self._client_kwargs()
        if config is not None:
            kwargs["config"] = self._config.merge(config)
        return self._session.client(service, **kwargs)  # type: ignore[call-overload]

    @cached_property
    def store(self) -> Store:
        from chalicelib.store import Store

        return Store(self.ddb, self.settings.table)

    def client(self, key: ClientKey[T]) -> T:
        """A processor's client (a model endpoint …), built once per process."""
        with self._clients_lock:
            if key.name not in self._clients:
                self._clients[key.name] = key.build(self)
            return self._clients[key.name]  # type: ignore[no-any-return]


_lock = threading.Lock()
_current: Services[CoreSettings] | None = None
# Built from the environment, one per kind of settings asked for. On AWS each function has its
# own process and asks for one kind; the local stack runs the API, the fan-out and the worker in
# one process, and they must not rebuild each other's clients on every call.
_built: dict[type[CoreSettings], Services[CoreSettings]] = {}


def get_services(kind: type[S]) -> Services[S]:
    """The process-wide Services, built on first call from the environment, read as `kind` —
    the settings of the function asking."""
    with _lock:
        if _current is not None and isinstance(_current.settings, kind):
            return _current  # type: ignore[return-value]
        if kind not in _built:
            _built[kind] = Services(kind())
        return _built[kind]  # type: ignore[return-value]


def set_services(services: Services[CoreSettings] | None) -> None:
    """Install (None: forget, with every Services built) the process-wide Services; for tests
    and the local stack."""
    global _current
    with _lock:
        _current = services
        _built.clear()
