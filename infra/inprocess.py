"""chute on moto inside this process: the local stack's resources, handlers and Lambda event shapes,
with no servers and no threads. For integration tests and for benchmarks that count requests.

`app_session` is the boto3 session chute's own clients come from; the stand-in for Lambda's SQS
event source polls with a session of its own, so hooks on `app_session.events` see only chute.
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType, TracebackType
from typing import Any

import boto3
from moto import mock_aws

from chalicelib.clock import Clock
from chalicelib.config import Settings
from chalicelib.jobs import BUILT_IN, JobRegistry
from chalicelib.services import Services, set_services
from infra import moto_ddb_fast, moto_sqs_fast
from infra.dispatcher import Dispatcher, Route
from infra.local import lambda_routes
from infra.model_server import DevModelServer
from infra.provision import Provisioned, provision
from infra.resources import LOCAL

REGION = "us-east-1"
TOKEN_KEY = "in-process-signing-key"


class InProcessStack:
    def __init__(
        self,
        clock: Clock | None = None,
        jobs: JobRegistry = BUILT_IN,
        *,
        model: DevModelServer | None = None,
        **settings: Any,
    ) -> None:
        self._clock = clock
        self._jobs = jobs
        self._overrides = settings
        self._mock = mock_aws()
        self.app_session = boto3.Session(region_name=REGION)
        # The model endpoint prompts sessions call: a real HTTP server on 127.0.0.1, answering
        # at once unless the caller brings one with latency or failures.
        self.model = model or DevModelServer(latency_ms=0)

    def __enter__(self) -> InProcessStack:
        moto_ddb_fast.install()
        moto_sqs_fast.install()
        self.model.start()
        self._mock.start()
        try:
            self.provisioned: Provisioned = provision(
                boto3.Session(region_name=REGION), None, LOCAL
            )
            self.settings = Settings(**{**self.info(), **self._overrides})
            self.services = Services(self.settings, self._clock, self.app_session, self._jobs)
            set_services(self.services)
            self.app: ModuleType = importlib.import_module("app")
            self.sqs = boto3.Session(region_name=REGION).client("sqs")
            # Configuring the bucket notification sent an s3:TestEvent; it is nobody's upload.
            self.sqs.purge_queue(QueueUrl=self.uploads_queue_url)
            self.routes: list[Route] = lambda_routes(self.app, self.info(), 1)
            self._dispatcher = Dispatcher(self.sqs, self.routes, region=REGION, wait_time_s=0)
        except BaseException:
            self._mock.stop()
            self.model.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        set_services(None)
        self._mock.stop()
        self.model.stop()

    def info(self) -> dict[str, Any]:
        """The Settings fields that point chute at this stack's resources."""
        return {
            **self.provisioned.settings(LOCAL, REGION),
            "token_key": TOKEN_KEY,
            "model_base_url": self.model.url,
        }

    @property
    def uploads_queue_url(self) -> str:
        return str(self.info()["uploads_queue_url"])

    def drain(self, *functions: str) -> int:
        """Feed queued messages to their handlers (all, or the named functions' only), as Lambda
        would, until those queues are idle; the number of messages delivered.

        Messages a handler reports as failed stay invisible for their queue's visibility
        timeout, as on AWS.
        """
        routes = [r for r in self.routes if not functions or r.function in functions]
        delivered = 0
        while moved := sum(self._dispatcher.poll(route) for route in routes):
            delivered += moved
        return delivered

    def deliver(self, function: str, batches: int = 1) -> int:
        """Feed at most `batches` batches to the named function, as Lambda takes them one at a
        time; the number of messages delivered."""
        (route,) = [r for r in self.routes if r.function == function]
        return sum(self._dispatcher.poll(route) for _ in range(batches))

    def outbox(self) -> list[dict[str, Any]]:
        """Take the SNS envelopes waiting in the email outbox."""
        url = self.provisioned.queue_urls[LOCAL.outbox_queue.name]
        taken: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                taken.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return taken
