"""S3's checks of a browser POST upload, which moto skips (DESIGN §11), for tests to switch on.

What AWS does with a POST to a bucket (the "POST Object" and "Creating a POST policy" pages of
the S3 documentation): the policy must be signed (SigV4: HMAC-SHA256 of the base64 policy with
the key derived from the credential's date, region and service), not expired, every condition
must hold (exact `{"field": value}`, `["eq", "$field", v]`, `["starts-with", "$field", p]`,
`["content-length-range", min, max]` on the file's bytes) and every form field but `policy`,
`x-amz-signature`, `file` and `x-ignore-*` must be named by a condition. A refusal answers 403
(400 for the size) and stores nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from moto.s3.responses import S3Response

Refusal = tuple[int, str, str]
_NOT_CONDITIONED = {"policy", "x-amz-signature", "file"}


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def check_post(
    form: Mapping[str, str], size: int, bucket: str, secret: str, now: datetime
) -> Refusal | None:
    """Why S3 would refuse this POST (status, code, message), or None when it would store it."""
    fields = {name.lower(): value for name, value in form.items()}
    policy_b64 = fields.get("policy", "")
    if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        return 400, "InvalidRequest", "Only AWS4-HMAC-SHA256 signed POSTs are accepted."
    try:
        _, date, region, service, _ = fields["x-amz-credential"].split("/")
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
    except (KeyError, ValueError):
        return 400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON."
    expected = hmac.new(
        _signing_key(secret, date, region, service), policy_b64.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, fields.get("x-amz-signature", "")):
        return 403, "SignatureDoesNotMatch", "The request signature we calculated does not match."
    expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if now >= expiration:
        return 403, "AccessDenied", "Invalid according to Policy: Policy expired."
    values = {**fields, "bucket": bucket}
    named: set[str] = set()
    for condition in policy["conditions"]:
        failed = _failed(condition, values, size, named)
        if failed:
            return failed
    extra = sorted(
        n for n in fields if n not in _NOT_CONDITIONED | named and not n.startswith("x-ignore-")
    )
    if extra:
        return 403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {extra[0]}"
    return None


def _failed(
    condition: Any, values: Mapping[str, str], size: int, named: set[str]
) -> Refusal | None:
    if isinstance(condition, dict):
        checks = [("eq", name.lower(), value) for name, value in condition.items()]
    elif condition[0].lower() == "content-length-range":
        low, high = condition[1], condition[2]
        if size > high:
            return 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
        if size < low:
            return 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum size"
        return None
    else:
        checks = [(condition[0].lower(), condition[1].lstrip("$").lower(), condition[2])]
    for operator, name, expected in checks:
        named.add(name)
        actual = values.get(name)
        holds = actual == expected if operator == "eq" else str(actual or "").startswith(expected)
        if actual is None or not holds:
            return (
                403,
                "AccessDenied",
                f'Invalid according to Policy: Policy Condition failed: ["{operator}", "${name}", '
                f'"{expected}"]',
            )
    return None


@contextmanager
def enforced_post_policies(secret: str, now: Callable[[], datetime]) -> Iterator[list[Refusal]]:
    """moto's in-process S3 refusing POST uploads as S3 would; the refusals it answered."""
    original = S3Response._bucket_response_post
    refusals: list[Refusal] = []

    def checked(self: S3Response, request: Any, bucket_name: str) -> Any:
        form = {k: v for k, v in self.form_data.items() if k != "file"}
        refusal = check_post(form, len(self.raw_body or b""), bucket_name, secret, now())
        if refusal is None:
            return original(self, request, bucket_name)
        refusals.append(refusal)
        status, code, message = refusal
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        return status, {"Content-Type": "application/xml"}, body

    S3Response._bucket_response_post = checked  # type: ignore[method-assign]
    try:
        yield refusals
    finally:
        S3Response._bucket_response_post = original  # type: ignore[method-assign]
