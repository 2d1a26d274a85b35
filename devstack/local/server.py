"""Serve the registered HTTP functions locally, without Azure Functions Core Tools (and, in
``serve``, the queue triggers beside them: ``devstack/local/queues.py``).

A small WSGI app (run by werkzeug on a real socket) that does what the Functions host does for
HTTP triggers: match the route under host.json's ``routePrefix`` (``{name}`` and
``{name:constraint}`` route parameters), check the method, build a real
:class:`azure.functions.HttpRequest`, and call the very function object the worker indexed.
Unknown routes answer 404 and wrong methods 405, both as problem+json.

Keys are not checked: like ``func start``, local serving accepts every request whatever the
function's auth level, so curl works without ``?code=``. Sign-in is: with a
:class:`~devstack.local.easyauth.LocalOperator`, the server stands in for App Service
Authentication (``devstack/local/easyauth.py``) and signs that operator in.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import azure.functions as func
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from shared import telemetry
from shared.functions.problems import PROBLEM_JSON, Problem
from devstack.local.easyauth import EasyAuth, LocalOperator
from devstack.local.host import function_index, start_telemetry

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Well above the functions' own caps, so they get to answer 413 themselves; beyond this the
# server refuses before reading the body.
MAX_REQUEST_BYTES = 1024 * 1024
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\?)?(?::[^}]*)?\}")


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP function as the host routes it."""

    function_name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    pattern: re.Pattern

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return {k: v for k, v in found.groupdict().items() if v is not None} if found else None


def route_prefix(host_json: Path = PROJECT_ROOT / "host.json") -> str:
    """host.json's ``extensions.http.routePrefix`` (the host's default is ``api``)."""
    try:
        config = json.loads(host_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "api"
    return str(config.get("extensions", {}).get("http", {}).get("routePrefix", "api")).strip("/")


def http_routes(prefix: str | None = None) -> list[HttpRoute]:
    """Every registered HTTP function, literal routes before parameterised ones (as the host orders them)."""
    prefix = route_prefix() if prefix is None else prefix
    routes = []
    for name, function in function_index().items():
        trigger = function.get_trigger()
        if trigger.get_binding_name() != "httpTrigger":
            continue
        spec = trigger.get_dict_repr()
        route = (spec.get("route") or name).strip("/")
        methods = tuple(str(getattr(m, "value", m)).upper() for m in spec.get("methods") or
                        ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"))
        auth = str(getattr(spec.get("authLevel"), "value", spec.get("authLevel") or "function")).lower()
        full = f"{prefix}/{route}" if prefix else route
        routes.append(HttpRoute(name, route, methods, auth, _compile(full)))
    return sorted(routes, key=lambda r: (r.route.count("{"), -len(r.route)))


def _compile(template: str) -> re.Pattern:
    parts, last = [], 0
    for found in _PARAMETER.finditer(template):
        parts.append(re.escape(template[last:found.start()]))
        parts.append(f"(?P<{found.group(1)}>[^/]+){'?' if found.group(2) else ''}")
        last = found.end()
    parts.append(re.escape(template[last:]))
    return re.compile("/?" + "".join(parts) + "/?", re.IGNORECASE)


class FunctionsApp:
    """The WSGI app: dispatches requests to the registered HTTP functions."""

    def __init__(self, routes: list[HttpRoute] | None = None) -> None:
        self.routes = routes if routes is not None else http_routes()

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        matches = [(route, params) for route in self.routes if (params := route.match(path)) is not None]
        if not matches:
            return _problem(Problem(404, "not-found", f"no function serves {path}"))
        for route, params in matches:
            if request.method.upper() in route.methods:
                return self._invoke(route, params, request)
        allowed = sorted({m for route, _ in matches for m in route.methods})
        return _problem(Problem(405, "method-not-allowed", f"{path} answers {', '.join(allowed)}",
                                headers={"Allow": ", ".join(allowed)}))

    def _invoke(self, route: HttpRoute, params: dict[str, str], request: Request) -> Response:
        length = request.content_length
        if length is not None and length > MAX_REQUEST_BYTES:
            return _problem(Problem(413, "body-too-large", f"the body is {length} bytes; at most {MAX_REQUEST_BYTES}"))
        body = request.stream.read(MAX_REQUEST_BYTES + 1)
        if len(body) > MAX_REQUEST_BYTES:
            return _problem(Problem(413, "body-too-large", f"the body is over {MAX_REQUEST_BYTES} bytes"))
        http_request = func.HttpRequest(
            method=request.method.upper(),
            url=request.url,
            headers=dict(request.headers.items()),
            params=dict(request.args.items()),
            route_params=params,
            body=body,
        )
        # The Functions host's request span: the caller's traceparent is its parent.
        with telemetry.tracer().start_as_current_span(
                f"{request.method.upper()} /{route_prefix()}/{route.route}", kind=SpanKind.SERVER,
                context=propagate.extract(dict(request.headers.items())),
                attributes={"faas.trigger": "http", "faas.name": route.function_name,
                            "http.request.method": request.method.upper(),
                            "http.route": f"/{route_prefix()}/{route.route}"}) as span:
            try:
                answer = function_index()[route.function_name].get_user_function()(http_request)
            except Exception:  # the functions answer their own failures; this is the host's last resort
                log.exception("function %s raised", route.function_name)
                return _problem(Problem(500, "internal-error", f"function {route.function_name} raised; see the log"))
            span.set_attribute("http.response.status_code", answer.status_code)
            return _response(answer)


def _response(answer: func.HttpResponse) -> Response:
    headers = [(k, v) for k, v in answer.headers.items() if k.lower() != "content-type"]
    content_type = answer.headers.get("Content-Type") or answer.mimetype
    if answer.charset and "charset" not in content_type:
        content_type = f"{content_type}; charset={answer.charset}"
    return Response(answer.get_body(), status=answer.status_code, headers=headers, content_type=content_type)


def _problem(problem: Problem) -> Response:
    return Response(json.dumps(problem.as_dict()), status=problem.status, headers=problem.headers,
                    content_type=f"{PROBLEM_JSON}; charset=utf-8")


def signing_in(operator: LocalOperator | None):
    """The functions' WSGI app, behind the Easy Auth stand-in when an operator signs in.

    The caller sets ``WEBSITE_AUTH_ENABLED=True`` with it, as App Service does when it is on."""
    return EasyAuth(FunctionsApp(), operator) if operator is not None else FunctionsApp()


class LocalServer:
    """The functions served on ``host:port`` in a background thread (port 0 picks a free one),
    signing ``operator`` in when one is given."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, operator: LocalOperator | None = None) -> None:
        self.operator = operator
        self._server: BaseWSGIServer = make_server(host, port, signing_in(operator), threaded=True)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="functions-local", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 7071, operator: LocalOperator | None = None) -> None:
    """Serve the HTTP functions on ``host:port`` behind the Easy Auth stand-in, signing ``operator``
    in, with every queue trigger listening on its queue, until interrupted (``python -m devstack serve``)."""
    import os

    from devstack.local.queues import QueueListeners

    operator = operator or LocalOperator()
    os.environ["WEBSITE_AUTH_ENABLED"] = "True"  # as App Service announces Authentication to the app
    start_telemetry()
    server = make_server(host, port, signing_in(operator), threaded=True)
    base = f"http://{host}:{server.server_address[1]}"
    print(f"serving the HTTP functions on {base}/{route_prefix()}/ (function keys are not checked locally)",
          flush=True)
    print(f"console: {base}/{route_prefix()}/console, signed in as {operator.describe()}", flush=True)
    for route in http_routes():
        print(f"  {'/'.join(route.methods):>6} /{route_prefix()}/{route.route}  [{route.function_name}, {route.auth_level}]",
              flush=True)
    # Like the host, the queue triggers listen beside the HTTP routes: "sync now" and webhook
    # events are processed from their queues, not after the answer.
    listeners = QueueListeners().start()
    for listener in listeners.listeners:
        print(f"  queue  {listener.runner.queue.queue_name}  [{listener.function_name}]", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        listeners.stop()
        telemetry.flush()
