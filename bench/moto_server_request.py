"""Round trip of one cheap request through moto's HTTP server, before and after
infra.moto_routing_fast (which caches the server's choice of backend per host).

Run: .venv/bin/python -m bench.moto_server_request [--requests 300]
Prints one JSON line: median milliseconds per GetQueueAttributes over HTTP, client included,
with moto's routing ("before") and the cached routing ("after"). The server runs in this process.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

import boto3
from moto.server import ThreadedMotoServer

from bench.timing import median_ms
from infra import moto_routing_fast

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def _round_trips_ms(sqs: SQSClient, url: str, requests: int) -> float:
    return median_ms(
        lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]), requests
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sqs: SQSClient = boto3.client(
        "sqs",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    url = sqs.create_queue(QueueName="bench")["QueueUrl"]
    result: dict[str, float | int] = {"requests": args.requests}
    for label, switch in (
        ("before", moto_routing_fast.uninstall),
        ("after", moto_routing_fast.install),
    ):
        switch()
        result[f"request_ms_{label}"] = _round_trips_ms(sqs, url, args.requests)
    moto_routing_fast.uninstall()
    server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
