// The operators' console: reads the operator routes' JSON (docs/http-api.md) and renders it.
// Every value reaches the page as text (textContent), never as markup: company names come from
// Partner Center. Buttons that would be refused are not drawn for readers.
"use strict";

const API = "/api/ops";
let me = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function say(text, isProblem) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = isProblem ? "message problem" : "message";
}

async function call(method, path) {
  const response = await fetch(API + path, { method, credentials: "same-origin",
                                             headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch (ignored) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(response.status + ": " + detail);
  }
  return body;
}

function seg(value) { return encodeURIComponent(value); }

function table(headings, rows) {
  if (!rows.length) return el("p", "none", "none");
  const t = el("table");
  const head = el("tr");
  headings.forEach((h) => head.appendChild(el("th", h)));
  t.appendChild(head);
  rows.forEach((cells) => {
    const tr = el("tr");
    cells.forEach((cell) => {
      const td = el("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "" : String(cell);
      tr.appendChild(td);
    });
    t.appendChild(tr);
  });
  return t;
}

function button(label, action, danger) {
  const b = el("button", label, danger ? "danger" : "");
  b.type = "button";
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { say(await action(), false); } catch (error) { say(error.message, true); }
    b.disabled = false;
  });
  return b;
}

function actions(...buttons) {
  const span = el("span");
  buttons.forEach((b) => span.appendChild(b));
  return span;
}

function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC") : "never"; }

function run(summary) {
  if (!summary) return el("span", "never", "none");
  return el("span", summary.outcome + ", " + when(summary.endedAt || summary.startedAt), summary.outcome);
}

// "0 */5 * * * *" (NCRONTAB, seconds first) -> 300 s; other schedules are shown as written.
function intervalSeconds(schedule) {
  const minutes = /^0 \*\/(\d+) \* \* \* \*$/.exec(schedule || "");
  return minutes ? Number(minutes[1]) * 60 : null;
}

function lag(seconds, interval) {
  if (seconds === null || seconds === undefined) return "no successful run yet";
  const text = Math.round(seconds / 60) + " min";
  return interval ? text + " (interval " + interval / 60 + " min" + (seconds > 2 * interval ? ", behind)" : ")") : text;
}

function chart(runs) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 480, height = 60, day = 24 * 3600 * 1000, now = Date.now();
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", runs.length + " runs in the last day");
  const most = Math.max(1, ...runs.map((r) => r.apiCalls || 0));
  runs.forEach((r) => {
    const x = Math.max(0, Math.min(width - 3, ((Date.parse(r.startedAt) - (now - day)) / day) * width));
    const h = 4 + ((r.apiCalls || 0) / most) * (height - 8);
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", x.toFixed(1));
    bar.setAttribute("y", (height - h).toFixed(1));
    bar.setAttribute("width", "3");
    bar.setAttribute("height", h.toFixed(1));
    bar.setAttribute("class", r.outcome === "succeeded" ? "succeeded" : r.outcome === "failed" ? "failed" : "other");
    const title = document.createElementNS(ns, "title");
    title.textContent = r.mode + " " + r.outcome + " at " + when(r.startedAt) + ": " + r.apiCalls + " calls";
    bar.appendChild(title);
    svg.appendChild(bar);
  });
  return svg;
}

async function heldEnding(account, held) {
  const box = el("div");
  const detail = await call("GET", "/accounts/" + seg(account) + "/held/" + seg(held.heldId));
  box.appendChild(el("h4", "Held ending " + detail.heldId + ": " + detail.status + ", " + detail.organizationCount +
                       " organizations, held " + when(detail.heldAt)));
  if (detail.decidedBy) box.appendChild(el("p", "Decided by " + detail.decidedBy + " at " + when(detail.decidedAt)));
  box.appendChild(table(["Company", "Tenant id", "Status"], detail.organizations.map(
    (o) => [o.companyName, o.customerTenantId, o.status])));
  if (me.operator && detail.status === "pending") {
    const base = "/accounts/" + seg(account) + "/held/" + seg(held.heldId);
    box.appendChild(actions(
      button("Approve", async () => { const r = await call("POST", base + "/approve"); await load();
                                       return "Approved by " + r.by + ": " + r.run.counts.ended + " ended"; }, true),
      button("Reject", async () => { const r = await call("POST", base + "/reject"); await load();
                                      return "Rejected by " + r.by; })));
  }
  return box;
}

// The changes waiting to be published to the Platform's topic (docs/events.md).
function events(waiting) {
  if (!waiting) return "not configured";
  if (!waiting.waiting) return "none waiting";
  return waiting.waiting + " waiting, oldest " + when(waiting.oldestWaiting);
}

async function account(status, overall) {
  const id = status.account;
  const box = el("div", null, "account");
  box.appendChild(el("h3", id));
  const last = status.last_incremental || status.last_full;
  box.appendChild(table(["Last incremental", "Last full", "Lag", "Partner Center calls (last run)", "Last sync now",
                         "Organization events"], [[
    run(status.last_incremental), run(status.last_full),
    lag(status.lag_seconds, intervalSeconds(overall.incrementalSchedule)),
    last ? last.apiCalls + " (budget " + overall.maxRequestsPerMinute + "/min)" : "",
    status.last_sync_now ? when(status.last_sync_now.at) + " by " + status.last_sync_now.by : "never",
    events(status.events)]]));
  if (me.operator) {
    box.appendChild(actions(
      button("Sync now", async () => { const r = await call("POST", "/accounts/" + seg(id) + "/sync");
                                        return "Sync of " + id + " accepted at " + when(r.acceptedAt); }),
      button("Full sync now", async () => { await call("POST", "/accounts/" + seg(id) + "/sync?mode=full");
                                             return "Full sync of " + id + " accepted"; })));
  }
  const runs = await call("GET", "/accounts/" + seg(id) + "/runs?hours=24");
  box.appendChild(el("h4", "Runs of the last day (" + runs.runs.length + ")"));
  box.appendChild(chart(runs.runs));
  const held = await call("GET", "/accounts/" + seg(id) + "/held?days=7");
  box.appendChild(el("h4", "Held endings waiting for a decision"));
  if (!held.waiting.length) box.appendChild(el("p", "none", "none"));
  for (const waiting of held.waiting) box.appendChild(await heldEnding(id, waiting));
  box.appendChild(el("h4", "Held endings decided in the last 7 days"));
  box.appendChild(table(["Held ending", "Decision", "Organizations", "Ended", "Decided by", "At"], held.decided.map(
    (h) => [h.heldId, h.status, h.organizations, h.endedCount, h.decidedBy, when(h.decidedAt)])));
  box.appendChild(el("h4", "Failing and quarantined customers"));
  box.appendChild(table(["Tenant id", "Failures", "Quarantined", "Last error"], status.failing.map(
    (f) => [f.tenantId, f.count, f.quarantined ? "yes" : "no", f.lastError])));
  box.appendChild(el("h4", "Parked units"));
  box.appendChild(table(["Unit"], (status.parked_units || []).map((u) => [JSON.stringify(u)])));
  const poisoned = (status.webhook_events && status.webhook_events.poisoned) || [];
  box.appendChild(el("h4", "Poison webhook events"));
  box.appendChild(table(["Event"], poisoned.map((e) => [JSON.stringify(e)])));
  if (status.unavailable && status.unavailable.length) {
    box.appendChild(el("p", "Could not read: " + status.unavailable.map((u) => u.part + " (" + u.reason + ")").join("; "),
                       "problem"));
  }
  return box;
}

async function organization(accountId, tenantId) {
  const box = document.getElementById("organization");
  box.replaceChildren();
  const base = "/accounts/" + seg(accountId) + "/organizations/" + seg(tenantId);
  const org = await call("GET", base);
  const p = org.properties;
  box.appendChild(el("h3", (p.CompanyName || tenantId) + ": " + org.status));
  box.appendChild(table(["Tenant id", "Domain", "Primary contact", "Email"], [[
    tenantId, p.Domain, [p.PrimaryFirstName, p.PrimaryLastName].filter(Boolean).join(" "), p.PrimaryEmail]]));
  if (me.operator) {
    const after = (text) => async () => { const r = await call("POST", base + text); await organization(accountId, tenantId);
                                          return tenantId + ": " + (r.status || "synced"); };
    box.appendChild(actions(button("Sync now", after("/sync")), button("Exclude", after("/exclude"), true),
                            button("Include", after("/include"))));
  }
  const history = await call("GET", base + "/changes");
  box.appendChild(el("h4", "Change history"));
  box.appendChild(table(["At", "Change", "By", "Fields"], history.changes.map(
    (c) => [when(c.at), c.kind, c.by || "sync", Object.keys(c.changes).join(", ")])));
}

async function search(event) {
  event.preventDefault();
  const accountId = document.getElementById("search-account").value;
  const text = document.getElementById("search-text").value;
  const results = document.getElementById("results");
  try {
    const found = await call("GET", "/accounts/" + seg(accountId) + "/organizations?q=" + encodeURIComponent(text));
    results.replaceChildren(table(["Company", "Domain", "Tenant id", "Status", ""], found.organizations.map((o) => [
      o.companyName, o.domain, o.customerTenantId, o.status,
      button("Open", async () => { await organization(accountId, o.customerTenantId); return ""; })])));
  } catch (error) { say(error.message, true); }
}

async function load() {
  const overall = await call("GET", "/status");
  document.getElementById("configuration").textContent = overall.configurationErrors.join("; ");
  const boxes = [];
  for (const status of overall.accounts) boxes.push(await account(status, overall));
  document.getElementById("accounts").replaceChildren(...boxes);
  const select = document.getElementById("search-account");
  select.replaceChildren(...overall.accounts.map((a) => { const o = el("option", a.account); o.value = a.account; return o; }));
}

async function start() {
  try {
    me = await call("GET", "/me");
    document.getElementById("who").textContent = "Signed in as " + me.name + " (" + (me.roles.join(", ") || "no role") + ")";
    document.getElementById("search").addEventListener("submit", search);
    await load();
    document.body.dataset.loaded = "true";
  } catch (error) { say(error.message, true); document.body.dataset.loaded = "failed"; }
}

document.addEventListener("DOMContentLoaded", start);
