"""Who is calling: one `Principal`, from one of two sources chosen by the deployment.

- **local** (the embedded stack): chute's own bearer tokens,
  ``base64url(payload) "." base64url(HMAC-SHA256(key, payload))`` with the claims ``sub`` (the
  user), ``iat``, ``exp``, ``aud`` (``chute``) and ``adm`` (an operator). `chute token NAME` and
  `make run`'s banner issue them; they expire (30 days unless asked otherwise).
- **cognito** (AWS): API Gateway's Cognito authorizer has verified the JWT before the Lambda runs;
  chute reads the claims it passes in the request context and never looks at a token itself.

A deployment runs one mode: a local token is never accepted in cognito mode and authorizer
claims are never trusted in local mode (locally nothing verified them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import Unauthorized

_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Cognito user names may hold any printable character; chute keys data by them, so it takes
# printable ones only, without the separator its keys use.
_COGNITO_USER = re.compile(r"^[^\x00-\x20\x7f#]{1,128}$")
AUDIENCE = "chute"
DEFAULT_TOKEN_LIFETIME_S = 30 * 24 * 3600
ADMIN_GROUP = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, whether they may use the operator's routes (/admin/…), and their
    email when the identity provider knows it."""

    user: str
    admin: bool = False
    email: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: str, payload: bytes) -> bytes:
    return hmac.new(key.encode(), payload, hashlib.sha256).digest()


def issue_token(
    key: str,
    user: str,
    issued_at: float,
    *,
    admin: bool = False,
    lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
) -> str:
    """A local bearer token for `user`, valid from `issued_at` for `lifetime_s` seconds."""
    if not _USER.match(user):
        raise ValueError("user names are 1–64 letters, digits, '_', '.', '@' or '-'")
    if lifetime_s <= 0:
        raise ValueError("a token's lifetime is a positive number of seconds")
    claims: dict[str, object] = {
        "sub": user,
        "aud": AUDIENCE,
        "iat": int(issued_at),
        "exp": int(issued_at) + lifetime_s,
    }
    if admin:
        claims["adm"] = True
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_sign(key, payload))}"


def _malformed(why: str) -> Unauthorized:
    return Unauthorized(f"The bearer token is malformed: {why}.", code="token_malformed")


def verify_principal(key: str, token: str, *, now: float) -> Principal:
    """Who a local token was issued to. Unauthorized (401) with a stable code when it is
    malformed (`token_malformed`), not signed with `key` (`token_invalid`), meant for another
    audience (`token_audience`) or expired at `now`, or from before tokens expired
    (`token_expired`)."""
    parts = token.split(".")
    if len(parts) != 2 or not all(parts):
        raise _malformed("expected two base64url parts joined by '.'")
    try:
        payload, signature = _unb64(parts[0]), _unb64(parts[1])
    except (ValueError, UnicodeEncodeError) as exc:
        raise _malformed("a part is not base64url") from exc
    # The signature first: nothing in an unsigned payload is looked at.
    if not hmac.compare_digest(_sign(key, payload), signature):
        raise Unauthorized("The bearer token's signature is not valid.", code="token_invalid")
    try:
        claims = json.loads(payload)
    except ValueError as exc:
        raise _malformed("its payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise _malformed("its payload is not a JSON object")
    return _principal_of(claims, now)


def _principal_of(claims: dict[str, Any], now: float) -> Principal:
    user = claims.get("sub")
    if not isinstance(user, str) or not _USER.match(user):
        raise _malformed("it names no valid user")
    if claims.get("aud") != AUDIENCE:
        raise Unauthorized(
            f"The bearer token is not meant for {AUDIENCE}.",
            code="token_audience",
            details={"expected": AUDIENCE},
        )
    expires = claims.get("exp")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise Unauthorized(
            "The bearer token has no expiry (an older kind); get a new one with `chute token`.",
            code="token_expired",
        )
    if now >= expires:
        raise Unauthorized(
            "The bearer token has expired; get a new one with `chute token`.",
            code="token_expired",
            details={"expired_at": expires},
        )
    return Principal(user, admin=claims.get("adm") is True)


def verify_token(key: str, token: str, *, now: float) -> str:
    """The user a local token was issued to (see `verify_principal`)."""
    return verify_principal(key, token, now=now).user


def bearer(header: str | None) -> str:
    """The token from an ``Authorization: Bearer …`` header."""
    if not header:
        raise Unauthorized("Send an Authorization: Bearer <token> header.", code="token_missing")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an Authorization: Bearer <token> header.", code="token_missing")
    return token.strip()


def _groups(value: object) -> set[str]:
    """Cognito groups as API Gateway passes them: a list, or one string ("admin,users" or
    "[admin users]")."""
    if isinstance(value, list | tuple):
        return {str(g) for g in value}
    return set(re.split(r"[^\w-]+", str(value or ""))) - {""}


def cognito_principal(context: Mapping[str, Any] | None) -> Principal:
    """The caller API Gateway's Cognito authorizer verified, from the request context's
    ``authorizer.claims``: the user is ``cognito:username`` (else ``sub``), an operator is in the
    `admin` group, and ``email`` is kept when ``email_verified``. 401 when the context holds no
    usable identity (a route deployed without the authorizer)."""
    authorizer = (context or {}).get("authorizer") or {}
    claims = authorizer.get("claims") if isinstance(authorizer, Mapping) else None
    if not isinstance(claims, Mapping) or not claims:
        raise Unauthorized(
            "This request carries no verified Cognito identity; sign in and send the ID token.",
            code="claims_missing",
        )
    user = claims.get("cognito:username") or claims.get("sub")
    if not isinstance(user, str) or not _COGNITO_USER.match(user):
        raise Unauthorized("The verified identity names no usable user.", code="claims_invalid")
    email = claims.get("email")
    verified = str(claims.get("email_verified", "")).lower() == "true"
    return Principal(
        user,
        admin=ADMIN_GROUP in _groups(claims.get("cognito:groups")),
        # Only an address the person proved is theirs: Cognito lets a user set any address,
        # and chute subscribes the address it is given to their emails.
        email=email if isinstance(email, str) and email and verified else None,
    )
