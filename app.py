"""chute: routes and Lambda entry points. Wiring only; the logic lives in chalicelib/.

Every Lambda function imports this module whole, so what only some of them use is imported where
it is used: the API's cold start does not load the worker, the fan-out or the sweeper (nor the
session controls and the operator's routes until one is called), and theirs do not load the API's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice import Chalice, Rate, Response  # type: ignore[attr-defined]
from chalice.app import CloudWatchEvent, Request

from chalicelib import sessions, web
from chalicelib.bodies import MANIFEST_MAX_BYTES, PREFERENCES_MAX_BYTES, parse_body
from chalicelib.config import (
    AdminSettings,
    ApiSettings,
    ControlSettings,
    SweeperSettings,
    WorkSettings,
)
from chalicelib.http import (
    answer_other_methods,
    current_admin,
    current_principal,
    current_user,
    encode_cursor,
    handles_errors,
    json_body,
    json_response,
    query_cursor,
    query_limit,
    query_param,
)
from chalicelib.models import Preferences
from chalicelib.services import get_services

if TYPE_CHECKING:
    from chalicelib.services import Services
    from chalicelib.store.items import SessionView
from chalicelib.subscriptions import save_preferences

app = Chalice(app_name="chute")


def _request() -> Request:
    request = app.current_request
    assert request is not None, "Chalice sets current_request for every route call"
    return request


def _asset(name: str) -> Response:
    body, content_type = web.read_asset(name)
    # no-cache: the browser asks again on every load, so a new page never runs an old app.js.
    return Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})


@app.route("/", methods=["GET"])
@handles_errors
def page() -> Response:
    return _asset("index.html")


@app.route("/static/app.js", methods=["GET"])
@handles_errors
def page_script() -> Response:
    return _asset("app.js")


@app.route("/static/app.css", methods=["GET"])
@handles_errors
def page_style() -> Response:
    return _asset("app.css")


@app.route("/sessions", methods=["POST"], cors=True)
@handles_errors
def create_session() -> Response:
    services = get_services(ApiSettings)
    caller = current_principal(_request(), services)
    manifest = json_body(_request(), max_bytes=MANIFEST_MAX_BYTES)
    created = sessions.create_session(services, caller.user, manifest, email=caller.email)
    return json_response(created, 201)


@app.route("/sessions", methods=["GET"], cors=True)
@handles_errors
def list_sessions() -> Response:
    services, request = get_services(ApiSettings), _request()
    user = current_user(request, services)
    views, last = services.store.list_sessions(
        user, limit=query_limit(request, 20, 100), start=query_cursor(request)
    )
    summaries = [sessions.summarize(v, services.clock.now()).model_dump(mode="json") for v in views]
    return json_response({"items": summaries, "next_cursor": encode_cursor(last)})


@app.route("/sessions/{sid}", methods=["GET"], cors=True)
@handles_errors
def get_session(sid: str) -> Response:
    services, request = get_services(ApiSettings), _request()
    view = sessions.owned_session(services.store, sid, current_user(request, services))
    etag = f'"{view.version}"'
    if request.headers.get("if-none-match") == etag:
        return Response(body="", status_code=304, headers={"ETag": etag})
    summary = sessions.summarize(view, services.clock.now())
    return json_response(summary, headers={"ETag": etag, "Cache-Control": "no-cache"})


@app.route("/sessions/{sid}/files", methods=["GET"], cors=True)
@handles_errors
def list_files(sid: str) -> Response:
    services, request = get_services(ApiSettings), _request()
    sessions.owned_session(services.store, sid, current_user(request, services))
    units, last = services.store.list_units(
        sid,
        limit=query_limit(request),
        start=query_cursor(request),
        status=sessions.status_filter(query_param(request, "status")),
    )
    rows = [sessions.unit_row(u).model_dump(mode="json") for u in units]
    return json_response({"items": rows, "next_cursor": encode_cursor(last)})


@app.route("/sessions/{sid}/uploads", methods=["GET", "POST"], cors=True)
@handles_errors
def missing_uploads(sid: str) -> Response:
    """GET: the declared files not yet received; POST: the same, with a fresh form each."""
    services, request = get_services(ApiSettings), _request()
    view = sessions.owned_session(services.store, sid, current_user(request, services))
    presign = request.method == "POST"
    return json_response(sessions.missing_uploads(services, view, presign=presign))


@app.route("/sessions/{sid}/results", methods=["GET"], cors=True)
@handles_errors
def get_results(sid: str) -> Response:
    # Imported here: the export writers are not part of every API cold start.
    from chalicelib import export

    services, request = get_services(ApiSettings), _request()
    fmt = export.parse_format(query_param(request, "format"))
    view = sessions.owned_session(services.store, sid, current_user(request, services))
    made = export.export_results(services, view, fmt)
    if "application/json" in (request.headers.get("accept") or ""):
        # A page cannot follow a 302 to S3 with its bearer token and read it as a download: it
        # asks for the link instead.
        return json_response({"url": made.url, "format": fmt, "version": view.version})
    return Response(
        body="", status_code=302, headers={"Location": made.url, "Cache-Control": "no-store"}
    )


def _control(sid: str, act: Callable[[Services[ControlSettings], SessionView], object]) -> Response:
    """Run a control on the caller's session; the session as it is afterwards."""
    services, request = get_services(ControlSettings), _request()
    view = sessions.owned_session(services.store, sid, current_user(request, services))
    act(services, view)
    after = services.store.load_session(sid, consistent=True) or view
    return json_response(sessions.summarize(after, services.clock.now()))


@app.route("/sessions/{sid}/pause", methods=["POST"], cors=True)
@handles_errors
def pause_session(sid: str) -> Response:
    from chalicelib import control

    return _control(sid, control.pause)


@app.route("/sessions/{sid}/resume", methods=["POST"], cors=True)
@handles_errors
def resume_session(sid: str) -> Response:
    from chalicelib import control

    return _control(sid, control.resume)


@app.route("/sessions/{sid}/cancel", methods=["POST"], cors=True)
@handles_errors
def cancel_session(sid: str) -> Response:
    from chalicelib import control

    return _control(sid, control.cancel)


@app.route("/sessions/{sid}/retry", methods=["POST"], cors=True)
@handles_errors
def retry_session(sid: str) -> Response:
    from chalicelib import control

    everything = query_param(_request(), "all") in ("true", "1")
    return _control(
        sid, lambda services, view: control.retry(services, view, everything=everything)
    )


@app.route("/me/preferences", methods=["GET"], cors=True)
@handles_errors
def get_preferences() -> Response:
    services = get_services(ApiSettings)
    user = current_user(_request(), services)
    return json_response(services.store.get_preferences(user))


@app.route("/me/preferences", methods=["PUT"], cors=True)
@handles_errors
def put_preferences() -> Response:
    services, request = get_services(ApiSettings), _request()
    caller = current_principal(request, services)
    preferences = parse_body(
        Preferences,
        json_body(request, max_bytes=PREFERENCES_MAX_BYTES),
        code="invalid_preferences",
        what="The preferences",
        shape='{"email": [events], "in_app": [events]}',
    )
    save_preferences(services, caller.user, preferences, caller.email)
    return json_response(preferences)


@app.route("/me/notifications", methods=["GET"], cors=True)
@handles_errors
def list_notifications() -> Response:
    services, request = get_services(ApiSettings), _request()
    user = current_user(request, services)
    items, last = services.store.list_notifications(
        user, limit=query_limit(request, default=50, maximum=200), start=query_cursor(request)
    )
    return json_response(
        {
            "items": [
                i.model_dump(include={"session_id", "event", "subject", "message", "created_at"})
                for i in items
            ],
            "next_cursor": encode_cursor(last),
        }
    )


@app.route("/admin/stats", methods=["GET"], cors=True)
@handles_errors
def get_admin_stats() -> Response:
    """The operator's view: queues, sessions under way, throughput, failures, stuck work."""
    from chalicelib.stats import admin_stats

    services = get_services(AdminSettings)
    current_admin(_request(), services)
    return json_response(admin_stats(services))


@app.route("/admin/dlq/redrive", methods=["POST"], cors=True)
@handles_errors
def redrive_dead_letters() -> Response:
    """An operator's redrive: every unit that failed as a dead letter back to work."""
    from chalicelib.redrive import redrive

    services = get_services(ControlSettings)
    current_admin(_request(), services)
    report = redrive(services)
    return json_response(
        {"units": report.units, "sessions": report.sessions, "more_left": report.left}
    )


# After every route: the methods a path does not serve answer chute's 405.
answer_other_methods(app)


@app.lambda_function(name="on_upload")
def on_upload(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG001
    from chalicelib import fanout
    from chalicelib.queues import run_batch

    services = get_services(WorkSettings)
    return run_batch(event, lambda r: fanout.handle_upload_message(services, r.body))


@app.lambda_function(name="worker")
def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib.queues import batch_concurrency, run_batch
    from chalicelib.worker import SessionStates, process_message

    services = get_services(WorkSettings)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    concurrency = batch_concurrency(event, services.jobs, services.settings.model_concurrency)
    states = SessionStates(services)  # this invocation's reads of its sessions' states
    return run_batch(
        event,
        lambda r: process_message(services, r.body, remaining, states),
        concurrency=concurrency,
    )


@app.schedule(Rate(1, unit=Rate.MINUTES), name="sweeper")
def sweeper(event: CloudWatchEvent) -> None:
    from chalicelib.metrics import publish_after_sweep
    from chalicelib.sweeper import sweep

    services = get_services(SweeperSettings)
    remaining = getattr(event.context, "get_remaining_time_in_millis", None)
    sweep(services, remaining)
    if services.settings.operator_metrics:
        publish_after_sweep(get_services(AdminSettings), remaining)
