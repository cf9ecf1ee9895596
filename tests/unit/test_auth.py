"""Who is calling: local bearer tokens (signed, with an audience and an expiry) in local mode,
API Gateway's verified Cognito claims in cognito mode, never the one in the other's place."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.auth import (
    DEFAULT_TOKEN_LIFETIME_S,
    Principal,
    bearer,
    cognito_principal,
    issue_token,
    verify_principal,
    verify_token,
)
from chalicelib.clock import FakeClock
from chalicelib.config import ApiSettings
from chalicelib.errors import Unauthorized
from chalicelib.http import current_principal

NOW = 1_800_000_000.0
KEY = "key-1"


def signed(claims: dict[str, Any], key: str = KEY) -> str:
    """A token over arbitrary claims, signed as chute signs: for claims issue_token never makes."""
    payload = json.dumps(claims).encode()
    signature = hmac.new(key.encode(), payload, hashlib.sha256).digest()
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in (payload, signature))


def refused(token: str, key: str = KEY, now: float = NOW) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        verify_principal(key, token, now=now)
    assert caught.value.http_status == 401
    return caught.value


def test_a_token_verifies_to_the_user_it_was_issued_to() -> None:
    token = issue_token(KEY, "alice", NOW)

    assert verify_token(KEY, token, now=NOW) == "alice"


def test_a_token_carries_audience_issue_time_and_an_expiry_30_days_on() -> None:
    payload = issue_token(KEY, "alice", NOW + 0.7).split(".")[0]

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    assert claims == {"sub": "alice", "aud": "chute", "iat": NOW, "exp": NOW + 30 * 86400}
    assert DEFAULT_TOKEN_LIFETIME_S == 30 * 86400


def test_a_token_is_good_until_its_expiry_and_expired_from_then_on() -> None:
    clock = FakeClock(NOW)
    token = issue_token(KEY, "alice", clock.now(), lifetime_s=3600)

    clock.advance(3599)
    assert verify_token(KEY, token, now=clock.now()) == "alice"
    clock.advance(1)
    error = refused(token, now=clock.now())
    assert (error.code, error.message, error.details) == (
        "token_expired",
        "The bearer token has expired; get a new one with `chute token`.",
        {"expired_at": NOW + 3600},
    )


def test_a_token_without_an_expiry_from_before_tokens_expired_is_refused() -> None:
    error = refused(signed({"sub": "alice", "iat": 0, "aud": "chute"}))

    assert error.code == "token_expired"
    assert error.message == (
        "The bearer token has no expiry (an older kind); get a new one with `chute token`."
    )


@pytest.mark.parametrize("audience", [None, "other-app", ["chute"]])
def test_a_token_meant_for_another_audience_is_refused(audience: object) -> None:
    claims: dict[str, Any] = {"sub": "alice", "iat": NOW, "exp": NOW + 60}
    if audience is not None:
        claims["aud"] = audience

    error = refused(signed(claims))

    assert (error.code, error.message) == (
        "token_audience",
        "The bearer token is not meant for chute.",
    )


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = issue_token(KEY, "alice", NOW)

    error = refused(token, key="key-2")

    assert (error.code, error.message) == (
        "token_invalid",
        "The bearer token's signature is not valid.",
    )


def test_a_token_whose_payload_was_edited_is_refused() -> None:
    signature = issue_token(KEY, "alice", NOW).split(".")[1]
    forged = issue_token(KEY, "mallory", NOW, admin=True).split(".")[0]

    assert refused(f"{forged}.{signature}").code == "token_invalid"


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "expected two base64url parts joined by '.'"),
        ("abc", "expected two base64url parts joined by '.'"),
        ("a.b.c", "expected two base64url parts joined by '.'"),
        (".abc", "expected two base64url parts joined by '.'"),
        ("ab\u00e9.cd", "a part is not base64url"),
    ],
)
def test_malformed_tokens_are_refused_with_a_stable_code(token: str, why: str) -> None:
    error = refused(token)

    assert (error.code, error.message) == (
        "token_malformed",
        f"The bearer token is malformed: {why}.",
    )


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json", "its payload is not JSON"),
        (b"[1, 2]", "its payload is not a JSON object"),
        (b'{"aud": "chute", "exp": 1900000000}', "it names no valid user"),
        (b'{"sub": "a/b", "aud": "chute", "exp": 1900000000}', "it names no valid user"),
    ],
)
def test_a_signed_payload_that_is_not_a_token_is_malformed(payload: bytes, why: str) -> None:
    signature = hmac.new(KEY.encode(), payload, hashlib.sha256).digest()
    token = ".".join(base64.urlsafe_b64encode(p).decode() for p in (payload, signature))

    error = refused(token)

    assert (error.code, error.message) == (
        "token_malformed",
        f"The bearer token is malformed: {why}.",
    )


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "token"])
def test_a_missing_or_non_bearer_header_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized) as caught:
        bearer(header)
    assert caught.value.code == "token_missing"


def test_user_names_and_lifetimes_are_checked_when_issuing() -> None:
    with pytest.raises(ValueError, match="user names"):
        issue_token(KEY, "bad/name", NOW)
    with pytest.raises(ValueError, match="positive"):
        issue_token(KEY, "alice", NOW, lifetime_s=0)


def test_only_a_token_issued_as_an_operators_says_so() -> None:
    assert verify_principal(KEY, issue_token(KEY, "ops", NOW, admin=True), now=NOW) == Principal(
        "ops", admin=True
    )
    assert verify_principal(KEY, issue_token(KEY, "alice", NOW), now=NOW) == Principal("alice")


# Cognito: the claims API Gateway's authorizer verified.


def authorizer(claims: dict[str, Any]) -> dict[str, Any]:
    return {"authorizer": {"claims": claims}}


@pytest.mark.parametrize(
    ("groups", "admin"),
    [("admin", True), ("users,admin", True), ("[users admin]", True), (["users", "admin"], True),
     ("administrators", False), (["administrators"], False), ("", False), (None, False)],
)  # fmt: skip
def test_a_cognito_user_is_an_operator_when_in_the_admin_group(groups: object, admin: bool) -> None:
    claims = {"cognito:username": "ops", **({"cognito:groups": groups} if groups else {})}

    assert cognito_principal(authorizer(claims)) == Principal("ops", admin=admin)


def test_a_cognito_user_is_named_by_username_else_sub_and_keeps_a_verified_email() -> None:
    both = {
        "cognito:username": "alice",
        "sub": "9f1c-aa",
        "email": "alice@example.com",
        "email_verified": "true",
    }

    assert cognito_principal(authorizer(both)) == Principal("alice", email="alice@example.com")
    assert cognito_principal(authorizer({"sub": "9f1c-aa"})) == Principal("9f1c-aa")
    # An address the person has not proved is theirs is not used (chute would email it).
    for unproved in ({**both, "email_verified": "false"}, {**both, "email_verified": None}):
        assert cognito_principal(authorizer(unproved)) == Principal("alice")


@pytest.mark.parametrize(
    ("context", "code"),
    [
        ({}, "claims_missing"),
        ({"authorizer": None}, "claims_missing"),
        ({"authorizer": {"claims": {}}}, "claims_missing"),
        (authorizer({"email": "x@example.com"}), "claims_invalid"),
        (authorizer({"cognito:username": "a#b"}), "claims_invalid"),
        (authorizer({"cognito:username": 7}), "claims_invalid"),
    ],
)
def test_a_request_without_a_usable_verified_identity_is_refused(
    context: dict[str, Any], code: str
) -> None:
    with pytest.raises(Unauthorized) as caught:
        cognito_principal(context)
    assert caught.value.code == code


# One mode per deployment: current_principal never takes the other mode's credentials.


def services(mode: str) -> Any:
    settings = ApiSettings(bucket="b", token_key=KEY, auth_mode=mode)
    return SimpleNamespace(settings=settings, clock=FakeClock(NOW))


def request(token: str | None, claims: dict[str, Any] | None) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return SimpleNamespace(headers=headers, context=authorizer(claims) if claims else {})


def test_the_mode_is_local_unless_chute_auth_mode_says_cognito(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ApiSettings(bucket="b").auth_mode == "local"
    monkeypatch.setenv("CHUTE_AUTH_MODE", "cognito")
    assert ApiSettings(bucket="b").auth_mode == "cognito"


def test_local_mode_takes_the_token_and_ignores_claims_nothing_verified() -> None:
    token = issue_token(KEY, "alice", NOW)
    forged_claims = {"cognito:username": "ops", "cognito:groups": "admin"}

    assert current_principal(request(token, forged_claims), services("local")) == Principal("alice")
    with pytest.raises(Unauthorized) as caught:
        current_principal(request(None, forged_claims), services("local"))
    assert caught.value.code == "token_missing"


def test_local_mode_checks_expiry_with_the_services_clock() -> None:
    token = issue_token(KEY, "alice", NOW - DEFAULT_TOKEN_LIFETIME_S)

    with pytest.raises(Unauthorized) as caught:
        current_principal(request(token, None), services("local"))
    assert caught.value.code == "token_expired"


def test_local_mode_without_a_token_key_is_unavailable_not_open() -> None:
    bare = SimpleNamespace(settings=ApiSettings(bucket="b"), clock=FakeClock(NOW))

    with pytest.raises(Unauthorized) as caught:
        current_principal(request(issue_token(KEY, "alice", NOW), None), bare)  # type: ignore[arg-type]
    assert caught.value.code == "auth_unavailable"


def test_cognito_mode_takes_the_claims_and_never_a_local_token() -> None:
    admin_token = issue_token(KEY, "ops", NOW, admin=True)
    claims = {"cognito:username": "alice", "email": "alice@example.com", "email_verified": "true"}

    assert current_principal(request(admin_token, claims), services("cognito")) == Principal(
        "alice", email="alice@example.com"
    )
    with pytest.raises(Unauthorized) as caught:
        current_principal(request(admin_token, None), services("cognito"))
    assert caught.value.code == "claims_missing"
