"""One error tree for the whole product.

Every error a person can see carries a stable ``code`` (machine-readable, never reworded), a
``message`` a person understands and optional ``details``. Each class maps to one HTTP status.
``RetryableError`` / ``PermanentError`` are raised by unit processing and decide whether a unit is
tried again.
"""

from __future__ import annotations

from typing import Any


class ChuteError(Exception):
    http_status = 500
    default_code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(ChuteError):
    http_status = 400
    default_code = "invalid_input"


class Unauthorized(ChuteError):
    http_status = 401
    default_code = "unauthorized"


class Forbidden(ChuteError):
    http_status = 403
    default_code = "forbidden"


class NotFound(ChuteError):
    http_status = 404
    default_code = "not_found"


class MethodNotAllowed(ChuteError):
    http_status = 405
    default_code = "method_not_allowed"


class PayloadTooLarge(ChuteError):
    http_status = 413
    default_code = "body_too_large"


class Conflict(ChuteError):
    http_status = 409
    default_code = "conflict"


class RetryableError(ChuteError):
    """A unit failed for a reason that may go away (throttling, a flaky dependency)."""

    http_status = 503
    default_code = "retryable"


class PermanentError(ChuteError):
    """A unit failed for a reason that will not go away by trying again (corrupt input)."""

    http_status = 422
    default_code = "permanent"


class UnitSkipped(ChuteError):
    """No processor handles this unit (a picture in a zip of documents, a PDF without text): it
    ends `skipped` with this reason, neither completed nor failed."""

    http_status = 422
    default_code = "unsupported_type"
