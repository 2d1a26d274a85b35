"""The console in a real browser: headless Debian chromium (installed by `make setup`) driven by
Playwright, against the local stack (Azurite, the simulator, the Easy Auth stand-in).

A reader and an operator sign in; the operator approves a held ending and its organizations are
ended; the reader sees no approve button and the route refuses them; a company name holding markup
shows as text. The screenshot docs/operations.md embeds is this test's (written to
docs/images/console.png with UPDATE_DOCS_SCREENSHOT=1).
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from shared.contacts.mapping import CustomerRecord, organization_fields
from shared.functions.principal import OPERATOR, READER
from shared.store import CREATE, OrganizationWrite, RunLog
from devstack.local.easyauth import LocalOperator
from devstack.local.server import LocalServer
from tests.functions.conftest import STORED_CONTACT

pytestmark = pytest.mark.slow  # a browser, two servers, a held ending approved: ~10 s

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "console.png"
MARKUP = '<img src=x id=injected><b>Evil & Sons</b>'
LOADED = "body[data-loaded='true']"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        yield launched
        launched.close()


@pytest.fixture
def estate(with_partner_center, configured, stores):
    """Organizations with real-looking names (one holding markup) and a held ending of three of them."""
    now = datetime.now(timezone.utc)
    names = ["Contoso Ltd", "Fabrikam Inc", "Northwind Traders", "Tailspin Toys", MARKUP]
    tenants = [str(uuid.uuid4()) for _ in names]
    stores.organizations.apply(configured, [
        OrganizationWrite(tenant, CREATE, now, organization_fields(
            CustomerRecord(tenant, name, name.split()[0].lower().strip("<") + ".example", "reseller"), STORED_CONTACT))
        for tenant, name in zip(tenants, names)])
    # A day of incremental runs every hour (one failed), so the chart has something to show.
    for hours_ago in range(23, 0, -1):
        at = now - timedelta(hours=hours_ago)
        log = RunLog(stores.tables, clock=lambda at=at: at)
        past = log.start(configured, "incremental")
        log.finish(past, "failed" if hours_ago == 7 else "succeeded", {}, api_calls=2 + hours_ago % 5,
                   throttled_calls=0, error="Partner Center answered 503" if hours_ago == 7 else "")
    run = stores.runs.start(configured, "full")
    stores.runs.finish(run, "succeeded", {"created": len(names)}, api_calls=12, throttled_calls=0)
    held_id = stores.held.hold(configured, run.run_id, tenants[:3], active_count=3)
    stores.failures.record_failure(configured, tenants[3], "Partner Center answered 403 for the billing profile",
                                   run.run_id)
    return held_id, tenants


def open_console(browser, server: LocalServer):
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors: list[str] = []
    # Script errors and Content-Security-Policy refusals; HTTP errors (the refusal this test asks
    # for, the favicon nobody serves) are asserted where they matter.
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.goto(f"{server.url}/api/console")  # no session yet: sent to /.auth/login/aad and back
    page.wait_for_selector(LOADED, timeout=20_000)
    return page, errors


def test_readers_look_operators_approve_and_markup_stays_text(browser, estate, configured, stores, tmp_path):
    held_id, tenants = estate
    with LocalServer(operator=LocalOperator("reader@example.com", (READER,))) as reader_server, \
            LocalServer(operator=LocalOperator("operator@example.com", (OPERATOR,))) as operator_server:
        reader, reader_errors = open_console(browser, reader_server)
        assert reader.url.endswith("/api/console")
        assert "reader@example.com" in reader.inner_text("#who")
        assert reader.get_by_text(held_id).count() >= 1  # the held ending and its organizations are shown
        # Events are not configured here: the account says so where it would count what waits.
        assert "not configured" in reader.locator(".account tr", has_text="never").inner_text()
        assert reader.locator("button", has_text="Approve").count() == 0
        assert reader.locator("button", has_text="Sync now").count() == 0
        refused = reader.evaluate("""async (path) => (await fetch(path, {method: 'POST'})).status""",
                                  f"/api/ops/accounts/{configured}/held/{held_id}/approve")
        assert refused == 403

        reader.fill("#search-text", "Evil")
        reader.click("#search button[type=submit]")
        reader.wait_for_selector("#results td")
        assert MARKUP in reader.inner_text("#results")  # shown as the characters it is
        assert reader.locator("#injected").count() == 0 and reader.locator("#results b").count() == 0
        assert not reader_errors, reader_errors

        operator, operator_errors = open_console(browser, operator_server)
        approve = operator.locator("button", has_text="Approve")
        assert approve.count() == 1
        operator.fill("#search-text", "evil")
        operator.click("#search button[type=submit]")
        operator.wait_for_selector("#results td")
        shot = tmp_path / "console.png"
        operator.screenshot(path=str(shot), full_page=True)
        approve.click()
        operator.wait_for_selector("#message:has-text('Approved by')", timeout=30_000)
        assert "operator@example.com" in operator.inner_text("#message")
        decided = operator.locator("tr", has_text=held_id)  # listed as decided, with who and when
        assert "approved" in decided.inner_text() and "operator@example.com (" in decided.inner_text()
        assert operator.locator("button", has_text="Approve").count() == 0

        operator.fill("#search-text", "evil")  # open the organization, exclude it, see who did in its history
        operator.click("#search button[type=submit]")
        operator.click("#results button:has-text('Open')")
        operator.wait_for_selector("#organization h3")
        assert operator.inner_text("#organization h3") == MARKUP + ": active"
        operator.click("#organization button:has-text('Exclude')")
        operator.wait_for_selector("#organization h3:has-text('excluded')")
        history = operator.locator("#organization tr", has_text="exclude").inner_text()
        assert "operator@example.com (" in history
        assert not operator_errors, operator_errors

    assert {stores.organizations.get(configured, t)["Status"] for t in tenants[:3]} == {"relationship_ended"}
    assert stores.organizations.get(configured, tenants[3])["Status"] == "active"
    assert stores.organizations.get(configured, tenants[4])["Status"] == "excluded"
    assert stores.held.get(configured, held_id).decided_by.startswith("operator@example.com (")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)
    assert SCREENSHOT.exists(), "docs/images/console.png: run this test with UPDATE_DOCS_SCREENSHOT=1"
