"""The operators' console (docs/operations.md#the-console): one page and its two assets, served
from ``shared/console/``; the page reads the operator routes' JSON like any script.

``GET /api/console`` needs the same sign-in as the routes: a browser without a session is sent to
App Service's ``/.auth/login/aad`` and comes back here. The assets hold no data and need none. A
strict Content-Security-Policy allows only these same-origin files: no inline script or style.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import azure.functions as func

from shared import app

from .principal import READER, SIGNED_IN, principal_of, require
from .problems import Problem, answers_with_problems

bp = func.Blueprint()

CONSOLE_PATH = "/api/console"
LOGIN_PATH = "/.auth/login/aad"
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
FOLDER = Path(__file__).resolve().parents[1] / "console"
ASSETS = {"console.css": "text/css", "console.js": "text/javascript"}
_SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                     "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


@bp.function_name("console")
@bp.route(route="console", methods=["GET"], auth_level=SIGNED_IN)
@answers_with_problems
def console(req: func.HttpRequest) -> func.HttpResponse:
    """The console page for a signed-in reader or operator; without a session, to the sign-in."""
    settings = app.current().settings
    if principal_of(req, settings) is None:
        return func.HttpResponse(status_code=302, headers={
            "Location": f"{LOGIN_PATH}?post_login_redirect_uri={quote(CONSOLE_PATH, safe='')}", **_SECURITY_HEADERS})
    require(req, settings, READER)
    return _asset("index.html", "text/html")


@bp.function_name("console_asset")
@bp.route(route="console/{asset}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_with_problems
def console_asset(req: func.HttpRequest) -> func.HttpResponse:
    """The console's stylesheet and script (static files, no data)."""
    name = req.route_params.get("asset") or ""
    if name not in ASSETS:
        raise Problem(404, "not-found", f"the console has no asset {name[:80]!r}")
    return _asset(name, ASSETS[name])


def _asset(name: str, mimetype: str) -> func.HttpResponse:
    body = (FOLDER / name).read_bytes()
    return func.HttpResponse(body, status_code=200, mimetype=mimetype, charset="utf-8", headers=dict(_SECURITY_HEADERS))
