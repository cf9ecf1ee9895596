"""Security on the API (issue 16), through the in-process stack: every route's authentication and
owner isolation, body limits, presigned POST policies as S3 enforces them, and logs free of
secrets and file contents."""

from __future__ import annotations

import base64
import inspect
import io
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from chalice.test import Client

from chalicelib.auth import issue_token
from chalicelib.bodies import MANIFEST_MAX_BYTES, PREFERENCES_MAX_BYTES
from chalicelib.clock import FakeClock
from chalicelib.jobs import BUILT_IN
from chalicelib.log import logger
from infra.inprocess import TOKEN_KEY, InProcessStack
from tests.integration.conftest import Stack
from tests.s3_post_policy import enforced_post_policies

Route = tuple[str, str]  # (method, path)

# Every route chute serves, by who may call it. A route added to app.py without a place here
# fails test_every_route_is_known_to_these_tests: decide who may call it, and it is tested below.
STATIC: set[Route] = {("GET", "/"), ("GET", "/static/app.js"), ("GET", "/static/app.css")}
USER: set[Route] = {
    ("POST", "/sessions"),
    ("GET", "/sessions"),
    ("GET", "/me/preferences"),
    ("PUT", "/me/preferences"),
    ("GET", "/me/notifications"),
}
SESSION: set[Route] = {
    ("GET", "/sessions/{sid}"),
    ("GET", "/sessions/{sid}/files"),
    ("GET", "/sessions/{sid}/uploads"),
    ("POST", "/sessions/{sid}/uploads"),
    ("GET", "/sessions/{sid}/results"),
    ("POST", "/sessions/{sid}/pause"),
    ("POST", "/sessions/{sid}/resume"),
    ("POST", "/sessions/{sid}/cancel"),
    ("POST", "/sessions/{sid}/retry"),
}
ADMIN: set[Route] = {("GET", "/admin/stats"), ("POST", "/admin/dlq/redrive")}
# The routes that read a body, and the most each reads.
BODY_LIMITS: dict[Route, int] = {
    ("POST", "/sessions"): MANIFEST_MAX_BYTES,
    ("PUT", "/me/preferences"): PREFERENCES_MAX_BYTES,
}
VALID_BODIES: dict[Route, Any] = {
    ("POST", "/sessions"): {"files": [{"name": "a.txt", "size": 5}]},
    ("PUT", "/me/preferences"): {"email": ["session.completed"], "in_app": []},
}
FOREIGN = "id99999999"  # an id of the stack's clock's shape that no session has


def served(stack: Stack) -> dict[Route, Any]:
    """The routes app.py registered, but the 405 answers `answer_other_methods` adds."""
    return {
        (method, path): entry
        for path, views in stack.stack.app.app.routes.items()
        for method, entry in views.items()
        if not entry.view_name.startswith("not_allowed_")
    }


def call(
    stack: Stack, route: Route, sid: str = FOREIGN, headers: dict[str, str] | None = None,
    body: str | bytes = b"",
) -> tuple[int, Any]:  # fmt: skip
    method, path = route
    response = stack.client.http.request(
        method,
        path.replace("{sid}", sid),
        headers=headers or {},
        body=body.encode() if isinstance(body, str) else body,
    )
    try:
        parsed = json.loads(response.body) if response.body else None
    except ValueError:
        parsed = None  # the page's HTML and assets
    return response.status_code, parsed


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def finished_session(stack: Stack, user: str = "alice") -> str:
    created = stack.create([("a.txt", b"alpha")], user=user)
    sid = str(created["session_id"])
    assert stack.run_until_settled(sid)["status"] == "completed"
    return sid


# Every route: who may call it.


def test_every_route_is_known_to_these_tests(stack: Stack) -> None:
    assert set(served(stack)) == STATIC | USER | SESSION | ADMIN


@pytest.mark.parametrize("route", sorted(USER | SESSION | ADMIN))
def test_every_route_but_the_page_refuses_a_missing_expired_or_foreign_token(
    stack: Stack, route: Route
) -> None:
    now = stack.stack.services.clock.now()
    expired = issue_token(TOKEN_KEY, "alice", now - 3600, lifetime_s=3600)
    other_key = issue_token("another deployment's key", "alice", now)
    headers: list[dict[str, str]] = [{}, bearer(expired), bearer(other_key)]

    answers = [call(stack, route, headers=h) for h in headers]

    assert [(status, body["error"]["code"]) for status, body in answers] == [
        (401, "token_missing"),
        (401, "token_expired"),
        (401, "token_invalid"),
    ]


def test_in_cognito_mode_no_route_takes_a_local_token_even_an_operators(clock: FakeClock) -> None:
    with (
        InProcessStack(clock, auth_mode="cognito") as inner,
        Client(inner.app.app) as client,
    ):
        stack = Stack(inner, client)
        headers = bearer(stack.token("ops", admin=True))

        answers = {route: call(stack, route, headers=headers) for route in USER | SESSION | ADMIN}

    assert {
        route: (status, body["error"]["code"]) for route, (status, body) in answers.items()
    } == dict.fromkeys(USER | SESSION | ADMIN, (401, "claims_missing"))


@pytest.mark.parametrize("route", sorted(STATIC))
def test_the_page_and_its_assets_need_no_token(stack: Stack, route: Route) -> None:
    assert call(stack, route)[0] == 200


def test_another_users_session_is_a_404_on_every_session_route_as_if_it_did_not_exist(
    stack: Stack,
) -> None:
    sid = finished_session(stack, "alice")
    bob = bearer(stack.token("bob"))
    alice = bearer(stack.token("alice"))

    for route in sorted(SESSION):
        foreign = call(stack, route, sid, bob)
        missing = call(stack, route, FOREIGN, bob)
        assert foreign == (
            404,
            {
                "error": {
                    "code": "session_not_found",
                    "message": f"No session {sid!r}.",
                    "details": {},
                }
            },
        ), route
        assert json.dumps(missing).replace(FOREIGN, sid) == json.dumps(foreign), route
        # The route itself works for the owner (a finished session refuses the controls).
        assert call(stack, route, sid, alice)[0] in {200, 302, 409}, route

    # Nothing bob sent changed alice's session.
    status, summary = stack.get(f"/sessions/{sid}")
    assert (status, summary["status"], summary["counts"]["completed"]) == (200, "completed", 1)


def test_a_users_lists_hold_only_their_own_sessions_notifications_and_preferences(
    stack: Stack,
) -> None:
    sid = finished_session(stack, "alice")
    status, _ = call(
        stack,
        ("PUT", "/me/preferences"),
        headers=bearer(stack.token("alice")),
        body=json.dumps({"email": [], "in_app": ["session.completed"]}),
    )
    assert status == 200

    assert [s["session_id"] for s in stack.get("/sessions", "alice")[1]["items"]] == [sid]
    assert stack.get("/sessions", "bob") == (200, {"items": [], "next_cursor": None})
    assert {n["session_id"] for n in stack.get("/me/notifications", "alice")[1]["items"]} == {sid}
    assert stack.get("/me/notifications", "bob") == (200, {"items": [], "next_cursor": None})
    assert stack.get("/me/preferences", "bob")[1] != stack.get("/me/preferences", "alice")[1]


@pytest.mark.parametrize("route", sorted(ADMIN))
def test_admin_routes_are_403_admin_only_for_everyone_but_operators(
    stack: Stack, route: Route
) -> None:
    status, body = call(stack, route, headers=bearer(stack.token("alice")))
    assert (status, body["error"]["code"], body["error"]["message"]) == (
        403,
        "admin_only",
        "Only operators may do this.",
    )
    assert call(stack, route, headers=bearer(stack.token("ops", admin=True)))[0] == 200


# Bodies: a limit per route, checked before parsing.


def test_the_routes_that_read_a_body_are_exactly_those_with_a_limit(stack: Stack) -> None:
    reads_body = {
        route
        for route, entry in served(stack).items()
        if "json_body(" in inspect.getsource(inspect.unwrap(entry.view_function))
    }
    assert reads_body == set(BODY_LIMITS)


@pytest.mark.parametrize("route", sorted(BODY_LIMITS))
def test_a_body_over_its_routes_limit_is_413_and_one_at_the_limit_is_read(
    stack: Stack, route: Route
) -> None:
    limit = BODY_LIMITS[route]
    headers = bearer(stack.token("alice"))
    valid = json.dumps(VALID_BODIES[route])
    at_limit = valid + " " * (limit - len(valid))

    over = call(stack, route, headers=headers, body=at_limit + " ")

    assert over == (
        413,
        {
            "error": {
                "code": "body_too_large",
                "message": f"The body is {limit + 1:,} bytes; this route takes at most {limit:,}.",
                "details": {"size_bytes": limit + 1, "max_bytes": limit},
            }
        },
    )
    assert call(stack, route, headers=headers, body=at_limit)[0] in {200, 201}


@pytest.mark.parametrize("route", sorted(BODY_LIMITS))
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "Send a JSON body."),
        ('{"files": [', "The body is not valid JSON: Expecting value: line 1 column 12 (char 11)."),
        ("[" * 5000, "The body is nested too deeply."),
        (b"\xff\xfe{", None),
    ],
)
def test_a_missing_or_malformed_body_is_400_invalid_json(
    stack: Stack, route: Route, body: str | bytes, message: str | None
) -> None:
    status, answer = call(stack, route, headers=bearer(stack.token("alice")), body=body)

    assert (status, answer["error"]["code"]) == (400, "invalid_json")
    if message is not None:
        assert answer["error"]["message"] == message


# Presigned POSTs: S3's own checks of the policy chute signs.


def create(stack: Stack, manifest: dict[str, Any]) -> dict[str, Any]:
    status, created = call(
        stack, ("POST", "/sessions"), headers=bearer(stack.token()), body=json.dumps(manifest)
    )
    assert status == 201, created
    return dict(created)


def policy_of(ticket: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(ticket["fields"]["policy"])))


@pytest.mark.parametrize(
    ("name", "size", "content_type", "job_type"),
    [
        ("report.pdf", 64 * 1024**2, "application/pdf", "documents"),  # a document's largest
        ("archive.zip", 2 * 1024**3, "application/zip", "documents"),  # an archive's largest
        ("rows.csv", 10 * 1024**2, "text/csv", "prompts"),  # a prompts batch's largest
        ("notes.txt", 1, "text/plain", "documents"),
    ],
)
def test_each_files_policy_pins_its_key_type_exact_size_and_15_minutes(
    stack: Stack, name: str, size: int, content_type: str, job_type: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = create(
        stack,
        {
            "job_type": job_type,
            "files": [{"name": name, "size": size, "content_type": content_type}],
        },
    )
    after = datetime.now(UTC)
    (ticket,) = created["uploads"]
    policy = policy_of(ticket)
    key = f"uploads/{created['session_id']}/00000/{name}"
    fields = ticket["fields"]

    assert ticket["key"] == fields["key"] == key
    assert policy["conditions"] == [
        {"Content-Type": content_type},
        ["content-length-range", size, size],
        {"bucket": stack.stack.settings.bucket},
        {"key": key},
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": fields["x-amz-credential"]},
        {"x-amz-date": fields["x-amz-date"]},
        {"x-amz-security-token": fields["x-amz-security-token"]},
    ]
    assert sorted(fields) == sorted(
        ["Content-Type", "key", "x-amz-algorithm", "x-amz-credential", "x-amz-security-token",
         "x-amz-date", "policy", "x-amz-signature"]
    )  # fmt: skip
    expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + timedelta(seconds=900) <= expiration <= after + timedelta(seconds=900)
    assert ticket["expires_at"] == stack.stack.services.clock.now() + 900


@pytest.mark.parametrize(
    ("name", "size", "job_type"),
    [("report.pdf", 64 * 1024**2 + 1, "documents"), ("rows.csv", 10 * 1024**2 + 1, "prompts")],
)
def test_a_file_over_its_types_limit_gets_no_presigned_post_at_all(
    stack: Stack, name: str, size: int, job_type: str
) -> None:
    manifest = {"job_type": job_type, "files": [{"name": name, "size": size}]}

    status, body = call(
        stack, ("POST", "/sessions"), headers=bearer(stack.token()), body=json.dumps(manifest)
    )

    assert (status, body["error"]["code"], body["error"]["details"]["max_file_bytes"]) == (
        400,
        "file_too_large",
        size - 1,
    )


@pytest.mark.parametrize(
    ("size", "content_type", "key", "refusal"),
    [
        (5, "text/plain", None, None),
        (6, "text/plain", None, (400, "EntityTooLarge")),
        (4, "text/plain", None, (400, "EntityTooSmall")),
        (5, "text/html", None, (403, "AccessDenied")),
        (5, "text/plain", "uploads/{sid}/00001/a.txt", (403, "AccessDenied")),
        (5, "text/plain", "uploads/id99999999/00000/a.txt", (403, "AccessDenied")),
        (5, "text/plain", "results/{sid}/00000-000000.1.json", (403, "AccessDenied")),
    ],
)
def test_s3_refuses_a_post_too_large_too_small_of_another_type_or_to_another_key(
    stack: Stack, size: int, content_type: str, key: str | None, refusal: tuple[int, str] | None
) -> None:
    created = create(stack, {"files": [{"name": "a.txt", "size": 5, "content_type": "text/plain"}]})
    (ticket,) = created["uploads"]
    form = {**ticket["fields"], "Content-Type": content_type}
    if key is not None:
        form["key"] = key.format(sid=created["session_id"])
    s3 = stack.stack.app_session.client("s3")
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]

    with enforced_post_policies(secret, lambda: datetime.now(UTC)) as refusals:
        posted = requests.post(
            ticket["url"], data=form, files={"file": ("a.txt", b"x" * size)}, timeout=10
        )

    stored = s3.list_objects_v2(Bucket=stack.stack.settings.bucket, Prefix="uploads/")
    if refusal is None:
        assert (posted.status_code, refusals) == (204, [])
        assert [o["Key"] for o in stored["Contents"]] == [ticket["key"]]
    else:
        assert (posted.status_code, [r[:2] for r in refusals]) == (refusal[0], [refusal])
        assert f"<Code>{refusal[1]}</Code>" in posted.text
        assert stored["KeyCount"] == 0


def test_s3_refuses_an_expired_policy_or_one_edited_after_signing(stack: Stack) -> None:
    created = create(stack, {"files": [{"name": "a.txt", "size": 5, "content_type": "text/plain"}]})
    (ticket,) = created["uploads"]
    policy = policy_of(ticket)
    policy["conditions"][1] = ["content-length-range", 0, 10**9]
    widened = base64.b64encode(json.dumps(policy).encode()).decode()
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    later = datetime.now(UTC) + timedelta(seconds=901)

    with enforced_post_policies(secret, lambda: later) as refusals:
        late = requests.post(
            ticket["url"], data=ticket["fields"], files={"file": b"x" * 5}, timeout=10
        )
    with enforced_post_policies(secret, lambda: datetime.now(UTC)) as edited:
        forged = requests.post(
            ticket["url"],
            data={**ticket["fields"], "policy": widened},
            files={"file": b"x" * 9},
            timeout=10,
        )

    assert (late.status_code, refusals[0][2]) == (
        403,
        "Invalid according to Policy: Policy expired.",
    )
    assert (forged.status_code, edited[0][1]) == (403, "SignatureDoesNotMatch")


# Logs: no secrets, no file contents.


API_KEY = "sk-test-0123456789abcdef-SECRET"


@pytest.fixture
def keyed_stack(clock: FakeClock) -> Iterator[Stack]:
    """The in-process stack with a model API key, which the dev model receives on every row."""
    with (
        InProcessStack(
            clock, BUILT_IN.tuned(backoff_base_s=0), progress_interval_s=0, model_api_key=API_KEY
        ) as stack,
        Client(stack.app.app) as client,
    ):
        yield Stack(stack, client)


@contextmanager
def chute_log_lines() -> Iterator[io.StringIO]:
    """Every line chute's logger writes (DEBUG up, more than Lambda keeps), as Powertools writes
    it to stdout, which Lambda sends to CloudWatch."""
    named = logging.getLogger(logger.name)
    level, lines = named.level, io.StringIO()
    named.setLevel(logging.DEBUG)  # after `import app`: Chalice sets this logger's level there
    stdout = logger.registered_handler.setStream(lines)  # type: ignore[attr-defined]
    try:
        yield lines
    finally:
        logger.registered_handler.setStream(stdout)  # type: ignore[attr-defined]
        named.setLevel(level)


def test_a_sessions_logs_hold_no_token_api_key_signature_or_file_content(
    keyed_stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    stack, marker = keyed_stack, "ZEBRA-7c1e-MARKER"
    files = [
        ("plain.txt", f"the secret is {marker}\n".encode()),
        ("broken.json", f'{{"{marker}": '.encode()),  # a file that fails to parse
        ("page.html", f"<html><body><p>{marker}</p></body></html>".encode()),
    ]
    prompts = {"job_type": "prompts", "prompts": [f"say {marker}", "say hello"]}
    token = stack.token("alice")

    with chute_log_lines() as lines:
        created = stack.create(files)
        documents = stack.run_until_settled(created["session_id"])
        status, batch = call(
            stack, ("POST", "/sessions"), headers=bearer(token), body=json.dumps(prompts)
        )
        assert status == 201, batch
        answered = stack.run_until_settled(batch["session_id"])
        call(stack, ("GET", "/sessions"), headers=bearer(token + "x"))  # a refused token
    out, err = capfd.readouterr()

    assert (documents["status"], answered["status"]) == ("completed_with_errors", "completed")
    logged = lines.getvalue() + out + err
    assert '"message":"fanned out"' in logged  # the capture sees chute's lines
    assert '"message":"unit did not complete"' in logged  # and the failure's
    signatures = [t["fields"]["x-amz-signature"] for t in created["uploads"]]
    policies = [t["fields"]["policy"] for t in created["uploads"]]
    for secret in [token, API_KEY, marker, *signatures, *policies]:
        assert secret not in logged
