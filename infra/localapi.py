"""The local API server's gateway answers, as the deployed API Gateway is configured to give them.

Chalice's local server answers a path no route matches as API Gateway does by default: 403
"Missing Authentication Token" — or, when the request has an Authorization header, a SigV4
complaint that quotes the header, bearer token and all. Deployed, a gateway response maps that
case to chute's own 404 (issue 16's template); locally this handler does the same, so an unknown
path is `{"error": {"code": "route_not_found", …}}` with status 404 on both, and never echoes a
credential.
"""

from __future__ import annotations

import json
from typing import Any

from chalice.local import ChaliceRequestHandler, ForbiddenError, LocalGatewayException

from chalicelib.errors import NotFound


def route_not_found(method: str, path: str) -> NotFound:
    shown = path.split("?", 1)[0][:200]
    return NotFound(f"There is no {method} {shown} in chute's API.", code="route_not_found")


class ChuteRequestHandler(ChaliceRequestHandler):
    def _send_error_response(self, error: LocalGatewayException) -> None:
        if isinstance(error, ForbiddenError):
            # The only ForbiddenError the local gateway raises without an authorizer: no route.
            body: Any = route_not_found(self.command, self.path).to_body()
            headers = {"Content-Type": "application/json"}
            self._send_http_response(404, headers, json.dumps(body).encode())
            return
        super()._send_error_response(error)
