"""The contact-edit validation webhook the Platform calls before it saves a contact (docs/validation.md)."""

from __future__ import annotations

import azure.functions as func

from shared.contacts.validation import ContactEdit, Decision, InvalidContactEdit, decide, parse_contact_edit
from shared import app
from shared.settings import SettingsError
from shared.store import OrganizationStore

from .problems import answers_with_problems, invalid_request, json_body, json_response

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
    accounts = [edit.account_id] if edit.account_id else [account.id for account in settings.accounts]
    if not accounts:
        # Answering "allowed" with no account to look in would wave through every edit.
        raise SettingsError("no Partner Center account is configured, so no edit can be checked")
    return json_response(check_contact_edit(edit, wired.stores.organizations, accounts).as_dict())


def check_contact_edit(edit: ContactEdit, organizations: OrganizationStore, account_ids: list[str]) -> Decision:
    """The decision for ``edit``: one point read per account, then the pure policy.

    Without an ``accountId`` every account that stores an organization for the customer counts
    (docs/validation.md, "any account"), configured or not: the tenant index names them, so a customer
    synced by an account removed from the settings is still refused, never waved through.
    """
    if not edit.account_id:
        # The index is written before every create, and while it is incomplete a miss scans
        # Organizations: it names every account there is, the configured ones included.
        account_ids = organizations.tenant_index.accounts_of(edit.customer_tenant_id)
    stored = (organizations.get(account_id, edit.customer_tenant_id) for account_id in account_ids)
    return decide(edit, [organization for organization in stored if organization is not None])
