"""Operators' read routes beside status (docs/http-api.md): who is signed in, organization search,
an organization's change history, an account's recent runs, held endings waiting and decided, one
held ending with its organizations.

Everything the console shows comes from these and :mod:`.ops`, so scripts can read it too. Each
route needs ``Sync.Reader`` (``ops/me`` only a sign-in: it says which roles one lacks).
"""

from __future__ import annotations

import azure.functions as func

from shared import app
from shared.keys import InvalidKey, account_key, tenant_key, token_key
from shared.operations import actions, lookups

from .principal import READER, SIGNED_IN, principal_of, require
from .problems import Problem, answers_with_problems, json_response

bp = func.Blueprint()
MAX_QUERY_CHARS = 200


@bp.function_name("whoami")
@bp.route(route="ops/me", methods=["GET"], auth_level=SIGNED_IN)
@answers_with_problems
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    """The signed-in principal: name, object id, roles (401 without a sign-in)."""
    principal = principal_of(req, app.current().settings)
    if principal is None:
        raise Problem(401, "unauthenticated", "sign in first (/.auth/login/aad)")
    return json_response(principal.as_dict())


@bp.function_name("search_organizations")
@bp.route(route="ops/accounts/{accountId}/organizations", methods=["GET"], auth_level=SIGNED_IN)
@answers_with_problems
def search_organizations(req: func.HttpRequest) -> func.HttpResponse:
    """Organizations by tenant id or a part of their company name or domain (``?q=``)."""
    wired, account_id = _account(req)
    text = (req.params.get("q") or "").strip()
    if not text or len(text) > MAX_QUERY_CHARS:
        raise Problem(400, "invalid-request", f"q must be a tenant id or 1-{MAX_QUERY_CHARS} characters of a name")
    found = lookups.search_organizations(wired.read_stores, account_id, text)
    return json_response({"account": account_id, "q": text, "organizations": found,
                          "limit": lookups.SEARCH_LIMIT})


@bp.function_name("organization_changes")
@bp.route(route="ops/accounts/{accountId}/organizations/{customerTenantId}/changes", methods=["GET"],
          auth_level=SIGNED_IN)
@answers_with_problems
def organization_changes(req: func.HttpRequest) -> func.HttpResponse:
    """An organization's change history, newest first, with who decided each operator change."""
    wired, account_id = _account(req)
    tenant_id = _key(tenant_key, req.route_params.get("customerTenantId"))
    return json_response({"account": account_id, "customerTenantId": tenant_id,
                          "changes": lookups.organization_history(wired.read_stores, account_id, tenant_id)})


@bp.function_name("recent_runs")
@bp.route(route="ops/accounts/{accountId}/runs", methods=["GET"], auth_level=SIGNED_IN)
@answers_with_problems
def recent_runs(req: func.HttpRequest) -> func.HttpResponse:
    """The account's runs of the last ``?hours=`` (default 24, at most a week), newest first."""
    wired, account_id = _account(req)
    raw = req.params.get("hours", "24")
    if not raw.isdigit() or not 1 <= int(raw) <= lookups.RUNS_MAX_HOURS:
        raise Problem(400, "invalid-request", f"hours must be a whole number from 1 to {lookups.RUNS_MAX_HOURS}, "
                                              f"got {raw!r}")
    return json_response({"account": account_id, "hours": int(raw),
                          "runs": lookups.recent_runs(wired.read_stores, account_id, int(raw))})


@bp.function_name("list_held_endings")
@bp.route(route="ops/accounts/{accountId}/held", methods=["GET"], auth_level=SIGNED_IN)
@answers_with_problems
def list_held_endings(req: func.HttpRequest) -> func.HttpResponse:
    """Held endings waiting for a decision, and those decided in the last ``?days=`` (default 7)."""
    wired, account_id = _account(req)
    raw = req.params.get("days", "7")
    if not raw.isdigit() or not 1 <= int(raw) <= lookups.HELD_MAX_DAYS:
        raise Problem(400, "invalid-request", f"days must be a whole number from 1 to {lookups.HELD_MAX_DAYS}, "
                                              f"got {raw!r}")
    return json_response({"account": account_id, "days": int(raw),
                          **lookups.held_endings(wired.read_stores, account_id, int(raw))})


@bp.function_name("get_held_ending")
@bp.route(route="ops/accounts/{accountId}/held/{heldId}", methods=["GET"], auth_level=SIGNED_IN)
@answers_with_problems
def get_held_ending(req: func.HttpRequest) -> func.HttpResponse:
    """A held ending with the organizations it would end and who decided it, when."""
    wired, account_id = _account(req)
    held_id = _key(lambda value: token_key(value, "held id"), req.route_params.get("heldId"))
    held = lookups.held_ending(wired.read_stores, account_id, held_id)
    if held is None:
        raise Problem(404, "not-found", f"no held ending {held_id!r} for account {account_id!r}")
    return json_response({"account": account_id, **held})


def _account(req: func.HttpRequest) -> tuple[app.App, str]:
    wired = app.current()
    require(req, wired.settings, READER)
    account_id = _key(account_key, req.route_params.get("accountId"))
    try:
        return wired, actions.configured_account(wired.settings, account_id).id
    except actions.UnknownAccount as exc:
        raise Problem(404, "not-found", str(exc)) from None


def _key(parse, value):
    try:
        return parse(value)
    except InvalidKey as exc:
        raise Problem(400, "invalid-request", str(exc)) from None
