"""The contact-edit validation webhook the Platform calls before it saves a contact (docs/validation.md)."""

from __future__ import annotations

import azure.functions as func

from shared.contacts.validation import ContactEdit, Decision, InvalidContactEdit, decide, parse_contact_edit
from shared import app
from shared.settings import SettingsError
from shared.store import OrganizationStore

from .problems import Problem, answers_with_problems, invalid_request, json_body, json_response

bp = func.Blueprint()


@bp.function_name("validate_contact_edit")
@bp.route(route="contacts/validate", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_with_problems
def validate_contact_edit(req: func.HttpRequest) -> func.HttpResponse:
    """May the Platform save this contact edit? 200 with the decision; 400/413 for bad input."""
    try:
        edit = parse_contact_edit(json_body(req))
    except InvalidContactEdit as exc:
        raise invalid_request(exc.errors) from None
    wired = app.current()
    settings = wired.settings
    accounts = [account.id for account in settings.accounts]
    if not accounts:
        # Answering "allowed" with no account to look in would wave through every edit.
        raise SettingsError("no Partner Center account is configured, so no edit can be checked")
    if edit.account_id and edit.account_id not in accounts:
        # A typo or a retired account: answering "allowed" would wave the edit through unchecked.
        raise Problem(404, "not-found", f"account {edit.account_id} is not configured")
    return json_response(check_contact_edit(edit, wired.stores.organizations).as_dict())


def check_contact_edit(edit: ContactEdit, organizations: OrganizationStore) -> Decision:
    """The decision for ``edit``: point reads of the customer's organizations, then the pure policy.

    With an ``accountId``, that account's organization decides. Without one, or when that account
    holds no organization for the customer, every account that stores one counts (docs/validation.md,
    "any account"), configured or not: the tenant index names them, so a customer synced by another
    account, or by one removed from the settings, is still refused, never waved through.
    """
    if edit.account_id:
        named = organizations.get(edit.account_id, edit.customer_tenant_id)
        if named is not None:
            return decide(edit, [named])
    # The index is written before every create, and while it is incomplete a miss scans
    # Organizations: it names every account there is, the configured ones included.
    account_ids = organizations.tenant_index.accounts_of(edit.customer_tenant_id)
    stored = (organizations.get(account_id, edit.customer_tenant_id) for account_id in account_ids)
    return decide(edit, [organization for organization in stored if organization is not None])
