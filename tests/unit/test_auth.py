"""Local bearer tokens: signed with the deployment's key, naming one user."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chalicelib.auth import Principal, bearer, issue_token, verify_principal, verify_token
from chalicelib.errors import Unauthorized
from chalicelib.http import current_principal


def test_a_token_verifies_to_the_user_it_was_issued_to() -> None:
    token = issue_token("key-1", "alice", 1000.0)

    assert verify_token("key-1", token) == "alice"


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = issue_token("key-1", "alice", 1000.0)

    with pytest.raises(Unauthorized) as caught:
        verify_token("key-2", token)
    assert caught.value.code == "token_invalid"


def test_a_token_whose_payload_was_edited_is_refused() -> None:
    payload, signature = issue_token("key-1", "alice", 1000.0).split(".")
    forged = issue_token("key-1", "mallory", 1000.0).split(".")[0]

    with pytest.raises(Unauthorized):
        verify_token("key-1", f"{forged}.{signature}")
    assert payload != forged


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", "e30.e30"])
def test_malformed_tokens_are_refused_with_a_stable_code(token: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        verify_token("key-1", token)
    assert caught.value.code in {"token_malformed", "token_invalid"}


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "token"])
def test_a_missing_or_non_bearer_header_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized) as caught:
        bearer(header)
    assert caught.value.code == "token_missing"


def test_user_names_are_restricted_to_a_safe_alphabet() -> None:
    with pytest.raises(ValueError, match="user names"):
        issue_token("key-1", "bad/name", 1000.0)


def test_only_a_token_issued_as_an_operators_says_so() -> None:
    assert verify_principal("key", issue_token("key", "ops", 0, admin=True)) == Principal(
        "ops", admin=True
    )
    assert verify_principal("key", issue_token("key", "alice", 0)) == Principal("alice")


@pytest.mark.parametrize(
    ("groups", "admin"),
    [("admin", True), ("users,admin", True), ("[users admin]", True), ("administrators", False),
     (None, False)],
)  # fmt: skip
def test_a_cognito_user_is_an_operator_when_in_the_admin_group(
    groups: str | None, admin: bool
) -> None:
    claims = {"cognito:username": "ops", **({"cognito:groups": groups} if groups else {})}
    request = SimpleNamespace(context={"authorizer": {"claims": claims}}, headers={})

    principal = current_principal(request, services=None)  # type: ignore[arg-type]

    assert principal == Principal("ops", admin=admin)
