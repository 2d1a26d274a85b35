"""Operators' HTTP routes (docs/http-api.md), all under ``/api/ops``.

No function key opens them (``AuthLevel.ANONYMOUS`` to the host): each trigger first asks
:mod:`.principal` for the signed-in principal and the role its action needs (``Sync.Reader`` to
read, ``Sync.Operator`` to act), then reads its route and query, hands off to
:mod:`shared.operations.actions`, and answers JSON; refusals become problem+json (401/403 sign-in
and role, 404 unknown, 409 conflict, 429 cooling down or over the on-demand limit, 502/503 when
Partner Center or Table Storage fails).
"""

from __future__ import annotations

import functools
from typing import Callable

import azure.functions as func

from shared import app
from shared.keys import InvalidKey, account_key, tenant_key, token_key
from shared.operations import actions as operations
from shared.operations.units import UNIT_QUEUE, SyncUnit
from shared.partner_center import AuthenticationError

from .principal import OPERATOR, READER, SIGNED_IN, Principal, require
from .problems import Problem, answers_with_problems, json_response

bp = func.Blueprint()


def _refusals(handler: Callable[[func.HttpRequest], func.HttpResponse]) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Answer the operations' typed refusals with the matching problem."""

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except InvalidKey as exc:
            raise Problem(400, "invalid-request", str(exc)) from None
        except (operations.UnknownAccount, operations.UnknownOrganization, operations.UnknownCustomer,
                operations.UnknownHeldEnding) as exc:
            raise Problem(404, "not-found", str(exc)) from None
        except operations.ActionConflict as exc:
            raise Problem(409, "conflict", str(exc)) from None
        except operations.CoolingDown as exc:
            raise Problem(429, "cooling-down", str(exc),
                          headers={"Retry-After": str(exc.retry_after_seconds)}) from None
        except operations.OnDemandLimited as exc:
            raise Problem(429, "rate-limited", str(exc),
                          headers={"Retry-After": str(exc.retry_after_seconds)}) from None
        except operations.PartnerCenterUnavailable as exc:
            if exc.temporary:
                raise Problem(503, "partner-center-unavailable", str(exc), headers={"Retry-After": "30"}) from None
            raise Problem(502, "partner-center-refused", str(exc)) from None
        except AuthenticationError as exc:
            # Raised before any call when the account's secret setting is empty: configuration.
            raise Problem(503, "not-configured", str(exc)) from None
        except operations.RunFailed as exc:
            raise Problem(503, "storage-unavailable", str(exc), headers={"Retry-After": "30"}) from None

    return wrapper


@bp.function_name("sync_status_all")
@bp.route(route="ops/status", methods=["GET"], auth_level=SIGNED_IN)
@answers_with_problems
def sync_status_all(req: func.HttpRequest) -> func.HttpResponse:
    """Sync status of every configured account, plus configuration problems."""
    wired = app.current()
    require(req, wired.settings, READER)
    status = wired.status  # builds the clients: a wrong storage setting is a 503 even with no account
    return json_response({
        "accounts": status.accounts([account.id for account in wired.settings.accounts]),
        "configurationErrors": list(wired.settings.account_errors),
        # What the console sets lag and calls against.
        "incrementalSchedule": wired.settings.incremental_schedule,
        "maxRequestsPerMinute": wired.settings.max_requests_per_minute,
    })


@bp.function_name("sync_status")
@bp.route(route="ops/accounts/{accountId}/status", methods=["GET"], auth_level=SIGNED_IN)
@answers_with_problems
@_refusals
def sync_status(req: func.HttpRequest) -> func.HttpResponse:
    """One account's status: last runs, lag, failing and quarantined customers, held deletions."""
    wired, account_id, _ = _account(req, READER)
    return json_response(wired.status.account(account_id))


@bp.function_name("sync_now")
@bp.route(route="ops/accounts/{accountId}/sync", methods=["POST"], auth_level=SIGNED_IN)
@answers_with_problems
@_refusals
def sync_now(req: func.HttpRequest) -> func.HttpResponse:
    """Start a sync of one account now (``?mode=incremental|full``); 202 at once, 429 while cooling down."""
    wired, account_id, who = _account(req, OPERATOR)
    mode = req.params.get("mode", "incremental")
    if mode not in operations.SYNC_NOW_MODES:
        raise Problem(400, "invalid-request", f"mode must be one of {', '.join(operations.SYNC_NOW_MODES)}, got {mode!r}")
    def start(now) -> str:
        # The unit runs in a queue-trigger invocation: nothing is left running after this answer.
        return wired.unit_queue.send(SyncUnit(account_id, mode, now))

    accepted, message_id = operations.request_sync_now(wired.stores, account_id,
                                                       operations.sync_now_cooldown(wired.settings), start,
                                                       by=who.signature)
    status_url = f"/api/ops/accounts/{account_id}/status"
    return json_response(
        {"account": account_id, "mode": mode, "acceptedAt": accepted, "status": status_url,
         "queue": UNIT_QUEUE, "messageId": message_id, "by": who.signature},
        status=202, headers={"Location": status_url},
    )


@bp.function_name("get_organization")
@bp.route(route="ops/accounts/{accountId}/organizations/{customerTenantId}", methods=["GET"],
          auth_level=SIGNED_IN)
@answers_with_problems
@_refusals
def get_organization(req: func.HttpRequest) -> func.HttpResponse:
    """One stored organization, as the Platform reads it."""
    wired, account_id, _ = _account(req, READER)
    tenant_id = tenant_key(req.route_params.get("customerTenantId"))
    stored = wired.read_stores.organizations.get(account_id, tenant_id)  # a person waits: seconds, not minutes
    if stored is None:
        raise operations.UnknownOrganization(f"account {account_id!r} has no organization for customer {tenant_id}")
    return _organization_response(account_id, stored)


@bp.function_name("sync_customer")
@bp.route(route="ops/accounts/{accountId}/organizations/{customerTenantId}/sync", methods=["POST"],
          auth_level=SIGNED_IN)
@answers_with_problems
@_refusals
def sync_customer(req: func.HttpRequest) -> func.HttpResponse:
    """Sync one customer from Partner Center now and answer with its organization (429 beyond the
    account's on-demand limit, ``SYNC_CUSTOMER_LIMIT_PER_MINUTE``)."""
    wired, account_id, _ = _account(req, OPERATOR)
    tenant_id = tenant_key(req.route_params.get("customerTenantId"))
    operations.take_on_demand_sync(wired.stores, account_id, wired.settings.sync_customer_limit_per_minute)
    sync = wired.account_sync(account_id, app.INTERACTIVE)  # someone waits for the answer: never behind a reconciliation
    result, stored = operations.sync_customer(sync, tenant_id)
    return _organization_response(account_id, stored, run=result.as_dict())


@bp.function_name("exclude_organization")
@bp.route(route="ops/accounts/{accountId}/organizations/{customerTenantId}/exclude", methods=["POST"],
          auth_level=SIGNED_IN)
@answers_with_problems
@_refusals
def exclude_organization(req: func.HttpRequest) -> func.HttpResponse:
    """Take an organization out of sync: kept as it is, never overwritten (docs/http-api.md)."""
    wired, account_id, who = _account(req, OPERATOR)
    tenant_id = tenant_key(req.route_params.get("customerTenantId"))
    stored, changed = operations.exclude_organization(wired.stores, account_id, tenant_id, by=who.signature)
    return _organization_response(account_id, stored, changed=changed)


@bp.function_name("include_organization")
@bp.route(route="ops/accounts/{accountId}/organizations/{customerTenantId}/include", methods=["POST"],
          auth_level=SIGNED_IN)
@answers_with_problems
@_refusals
def include_organization(req: func.HttpRequest) -> func.HttpResponse:
    """Put an excluded organization back in sync; the next reconciliation refreshes it."""
    wired, account_id, who = _account(req, OPERATOR)
    tenant_id = tenant_key(req.route_params.get("customerTenantId"))
    stored, changed = operations.include_organization(wired.stores, account_id, tenant_id, by=who.signature)
    return _organization_response(account_id, stored, changed=changed)


@bp.function_name("approve_held_deletion")
@bp.route(route="ops/accounts/{accountId}/held/{heldId}/approve", methods=["POST"], auth_level=SIGNED_IN)
@answers_with_problems
@_refusals
def approve_held_deletion(req: func.HttpRequest) -> func.HttpResponse:
    """Approve a held ending: its organizations still active are marked ended now."""
    wired, account_id, who = _account(req, OPERATOR)
    held_id = token_key(req.route_params.get("heldId"), "held id")
    result = operations.approve_held_ending(wired.stores, lambda: wired.account_sync(account_id), account_id, held_id,
                                            by=who.signature)
    return json_response({"heldId": held_id, "decision": "approved", "by": who.signature, "run": result.as_dict()})


@bp.function_name("reject_held_deletion")
@bp.route(route="ops/accounts/{accountId}/held/{heldId}/reject", methods=["POST"], auth_level=SIGNED_IN)
@answers_with_problems
@_refusals
def reject_held_deletion(req: func.HttpRequest) -> func.HttpResponse:
    """Reject a held ending: the organizations stay as they are."""
    wired, account_id, who = _account(req, OPERATOR)
    held_id = token_key(req.route_params.get("heldId"), "held id")
    operations.reject_held_ending(wired.stores, account_id, held_id, by=who.signature)
    return json_response({"heldId": held_id, "decision": "rejected", "by": who.signature})


def _account(req: func.HttpRequest, role: str) -> tuple[app.App, str, Principal]:
    """The app, the configured account and the principal, once it is known to hold ``role``: who
    may ask is settled before anything about the account is revealed."""
    wired = app.current()
    principal = require(req, wired.settings, role)
    account_id = account_key(req.route_params.get("accountId"))
    return wired, operations.configured_account(wired.settings, account_id).id, principal


def _organization_response(account_id: str, stored: dict, **extra) -> func.HttpResponse:
    properties = {name: value for name, value in stored.items() if name not in ("PartitionKey", "RowKey")}
    body = {"accountId": account_id, "customerTenantId": stored["RowKey"], "status": stored.get("Status"),
            "properties": properties, **extra}
    etag = (getattr(stored, "metadata", None) or {}).get("etag")
    return json_response(body, headers={"ETag": etag} if etag else None)
