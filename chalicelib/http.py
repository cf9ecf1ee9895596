"""HTTP plumbing shared by every route: errors as JSON, the caller's identity, query parameters."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec

from chalice import Response  # type: ignore[attr-defined]
from chalice.app import Request
from pydantic import BaseModel

from chalicelib.auth import Principal, bearer, cognito_principal, verify_principal
from chalicelib.config import ApiSettings
from chalicelib.errors import (
    ChuteError,
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    PayloadTooLarge,
    Unauthorized,
)
from chalicelib.log import logger
from chalicelib.services import Services
from chalicelib.store import StartKey
from chalicelib.store.codec import deserialize, serialize

P = ParamSpec("P")
JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return Response(body=payload, status_code=status, headers={**JSON_HEADERS, **(headers or {})})


def error_response(error: ChuteError) -> Response:
    return json_response(error.to_body(), error.http_status)


def handles_errors(view: Callable[P, Response]) -> Callable[P, Response]:
    """Every error leaves as {"error": {code, message, details}}; nothing escapes as a bare 500."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return view(*args, **kwargs)
        except ChuteError as error:
            return error_response(error)
        except Exception:
            logger.exception("unhandled error in a route")
            return error_response(ChuteError("Something went wrong on our side; try again."))

    return wrapper


def json_body(request: Request, *, max_bytes: int) -> Any:
    """The request's JSON body: 413 `body_too_large` above `max_bytes` (before any parsing),
    400 `invalid_json` when it is missing or not JSON."""
    raw = request.raw_body
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"The body is {len(raw):,} bytes; this route takes at most {max_bytes:,}.",
            details={"size_bytes": len(raw), "max_bytes": max_bytes},
        )
    if not raw:
        raise InvalidInput("Send a JSON body.", code="invalid_json")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}.", code="invalid_json") from exc
    except RecursionError as exc:  # "[[[[…" nested deeper than the parser recurses
        raise InvalidInput("The body is nested too deeply.", code="invalid_json") from exc


def current_principal(request: Request, services: Services[ApiSettings]) -> Principal:
    """The caller, vouched for as the deployment's `auth_mode` says: in `cognito` mode by the
    claims API Gateway's authorizer verified (a bearer token is not looked at), in `local` mode by
    a chute token (authorizer claims, which nothing verified locally, are not looked at)."""
    settings = services.settings
    if settings.auth_mode == "cognito":
        return cognito_principal(request.context)
    if settings.token_key is None:
        raise Unauthorized("This deployment has no token key configured.", code="auth_unavailable")
    return verify_principal(
        settings.token_key.get_secret_value(),
        bearer(request.headers.get("authorization")),
        now=services.clock.now(),
    )


def current_user(request: Request, services: Services[ApiSettings]) -> str:
    return current_principal(request, services).user


def current_admin(request: Request, services: Services[ApiSettings]) -> str:
    """The caller, who must be an operator; Forbidden (403) for everyone else."""
    principal = current_principal(request, services)
    if not principal.admin:
        raise Forbidden("Only operators may do this.", code="admin_only")
    return principal.user


def query_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) if request.query_params else None
    return str(value) if value is not None else None


def query_limit(request: Request, default: int = 100, maximum: int = 1000) -> int:
    raw = query_param(request, "limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidInput(
            f"limit must be a whole number from 1 to {maximum}.", code="invalid_limit"
        )
    return int(raw)


def encode_cursor(key: StartKey | None) -> str | None:
    """A page's continuation as an opaque string for the next request."""
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(deserialize(key)).encode()).decode()


def query_cursor(request: Request) -> StartKey | None:
    """The `cursor` parameter back as the key to continue from; 400 when it is not one of ours."""
    cursor = query_param(request, "cursor")
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise ValueError("cursor keys must be strings")
        return serialize(raw)
    except ValueError as exc:
        raise InvalidInput(
            "The cursor is not one this API gave out.", code="invalid_cursor"
        ) from exc


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def answer_other_methods(app: Any) -> None:
    """Give every path a view for the methods it does not serve: chute's 405 with an Allow
    header, rather than Chalice's own error shape (or, deployed, API Gateway's 403 for a
    method a resource lacks). Call once every route is registered."""
    for path, views in list(app.routes.items()):
        allowed = ", ".join(sorted(views))

        def not_allowed(allowed: str = allowed, **_params: str) -> Response:
            method = app.current_request.method
            error = MethodNotAllowed(
                f"{method} is not allowed here; use {allowed}.",
                code="method_not_allowed",
                details={"allowed": allowed.split(", ")},
            )
            return json_response(error.to_body(), error.http_status, {"Allow": allowed})

        missing = [m for m in METHODS if m not in views]
        if missing:
            name = "not_allowed_" + "".join(c if c.isalnum() else "_" for c in path)
            # Chalice wants every view of a path to share its CORS configuration.
            cors = next(iter(views.values())).cors
            app.route(path, methods=missing, name=name, cors=cors)(not_allowed)
