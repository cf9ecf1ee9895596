"""Local bearer tokens: ``base64url(payload) "." base64url(HMAC-SHA256(key, payload))``.

On AWS a Cognito authorizer does this job; locally `chute token NAME` issues these. Tokens carry the
user name and the issue time and do not expire: they are a development convenience, not a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from chalicelib.errors import Unauthorized

_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, and whether they may use the operator's routes (/admin/…)."""

    user: str
    admin: bool = False


def issue_token(key: str, user: str, issued_at: float, *, admin: bool = False) -> str:
    if not _USER.match(user):
        raise ValueError("user names are 1–64 letters, digits, '_', '.', '@' or '-'")
    claims: dict[str, object] = {"sub": user, "iat": int(issued_at)}
    if admin:
        claims["adm"] = True
    payload = json.dumps(claims, separators=(",", ":")).encode()
    signature = hmac.new(key.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def verify_token(key: str, token: str) -> str:
    """The user a token was issued to; Unauthorized if it is malformed or not signed with key."""
    return verify_principal(key, token).user


def verify_principal(key: str, token: str) -> Principal:
    """Who a token was issued to; Unauthorized if it is malformed or not signed with key."""
    parts = token.split(".")
    if len(parts) != 2:
        raise Unauthorized("The bearer token is malformed.", code="token_malformed")
    try:
        payload = _unb64(parts[0])
        signature = _unb64(parts[1])
    except (ValueError, UnicodeEncodeError) as exc:
        raise Unauthorized("The bearer token is malformed.", code="token_malformed") from exc
    expected = hmac.new(key.encode(), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise Unauthorized("The bearer token signature is not valid.", code="token_invalid")
    try:
        claims = json.loads(payload)
        user = claims["sub"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthorized("The bearer token is malformed.", code="token_malformed") from exc
    if not isinstance(user, str) or not _USER.match(user):
        raise Unauthorized("The bearer token names no valid user.", code="token_malformed")
    return Principal(user, admin=claims.get("adm") is True)


def bearer(header: str | None) -> str:
    """The token from an ``Authorization: Bearer …`` header."""
    if not header:
        raise Unauthorized("Send an Authorization: Bearer <token> header.", code="token_missing")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an Authorization: Bearer <token> header.", code="token_missing")
    return token.strip()
