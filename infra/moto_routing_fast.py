"""Make the moto server's choice of backend for a request a dictionary lookup.

Why (moto 5.2.5, moto/moto_server/werkzeug_app.py): for every request
`DomainDispatcherApplication.get_application` calls `get_backend_for_host(host)`, which tests
`host in backends.list_of_moto_modules()`, a generator that lists moto's package directory and
stats each of its ~200 entries, and then tries every service's URL regex. That is about 2 ms of
system calls and regex matching per request (a quarter of moto's time per request), spent under
the application's one lock, so concurrent requests queue behind it. The answer depends on the
host alone and neither input changes while the server runs: it is cached per host.
"""

from __future__ import annotations

from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from infra.patching import Patches

_original_get_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backends: dict[str | None, Any] = {}


def _get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    # Called under the application's lock. The answer does not depend on the instance either:
    # every application reads the same URL patterns from moto's backend index.
    if host not in _backends:
        _backends[host] = _original_get_backend_for_host(self, host)
    return _backends[host]


_PATCHES = Patches((DomainDispatcherApplication, "get_backend_for_host", _get_backend_for_host))


def install() -> None:
    _PATCHES.apply()


def uninstall() -> None:
    _PATCHES.revert()
    _backends.clear()


def status() -> dict[str, Any]:
    return {"installed": _PATCHES.applied}
