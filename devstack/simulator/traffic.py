"""What the simulator observes and imposes on traffic: counters, the request log, the per-partner
request budget (sliding 60 s window) and injected faults. Each class is thread-safe."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

# Endpoint names, used by counters, the request log and fault injection.
ENTRA_ENDPOINTS = ("token", "openid_configuration", "jwks")
API_ENDPOINTS = (
    "list_customers", "get_customer", "billing_profile", "customer_relationships",
    "partner_relationships", "audit_records",
    "webhook_registration", "webhook_events", "webhook_validation_events",
)
CUSTOMER_ENDPOINTS = ("get_customer", "billing_profile", "customer_relationships")
OUTCOMES = ("throttled", "faults", "unauthorized")
# Served beside the API: the webhook signing certificate (a receiver's certificate cache saves these).
OTHER_ENDPOINTS = ("signing_certificate",)
FAULT_KINDS = ("status", "drop", "malformed", "body", "no_content", "null_items")
# How a 429 states its Retry-After: whole seconds, an HTTP date, or not at all.
RETRY_AFTER_FORMS = ("seconds", "http-date", "none")
RATE_WINDOW_SECONDS = 60.0


class TrafficLog:
    """Counters per endpoint and outcome, and the log of API requests with their statuses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(ENTRA_ENDPOINTS + API_ENDPOINTS + OTHER_ENDPOINTS + OUTCOMES, 0)
        self._requests: list[tuple[float, str | None, str, int]] = []
        self._tracing: list[tuple[str, int, str, str]] = []

    def count(self, name: str) -> None:
        """One more request to an endpoint, or one more outcome (throttled, faults, unauthorized)."""
        with self._lock:
            self._counters[name] += 1

    def record(self, at: float, partner_tenant_id: str | None, endpoint: str, status: int,
               request_id: str = "", correlation_id: str = "") -> None:
        """Log an API request: when it arrived (monotonic), whose it was, what it got, and the
        MS-RequestId / MS-CorrelationId the client sent ("" when absent)."""
        with self._lock:
            self._requests.append((at, partner_tenant_id, endpoint, status))
            self._tracing.append((endpoint, status, request_id, correlation_id))

    def tracing(self) -> list[tuple[str, int, str, str]]:
        """(endpoint, status, MS-RequestId, MS-CorrelationId) of every API request, oldest first."""
        with self._lock:
            return list(self._tracing)

    def counters(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counters)

    def requests(self) -> list[tuple[float, str | None, str, int]]:
        """A copy of the request log."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Zero the counters and clear the request log."""
        with self._lock:
            self._counters = dict.fromkeys(self._counters, 0)
            self._requests.clear()
            self._tracing.clear()

    def peak(self, window_seconds: float, partner_tenant_id: str) -> int:
        """The most requests of this partner admitted (not answered 429) within any window."""
        times = sorted(
            at for at, partner, _, status in self.requests() if partner == partner_tenant_id and status != 429
        )
        peak, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= window_seconds:
                first += 1
            peak = max(peak, last - first + 1)
        return peak


class RequestBudget:
    """A partner tenant's API limit: at most `limit` admitted requests in any sliding 60 s window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()

    def admit(self, now: float, limit: int | None) -> float:
        """0.0 when the request is admitted, else the seconds until a slot frees."""
        with self._lock:
            while self._admitted and self._admitted[0] <= now - RATE_WINDOW_SECONDS:
                self._admitted.popleft()
            if limit is not None and len(self._admitted) >= limit:
                return max(self._admitted[0] + RATE_WINDOW_SECONDS - now, 0.001)
            self._admitted.append(now)
            return 0.0


@dataclass
class Fault:
    """An injected fault waiting for its next `remaining` matching requests."""

    endpoint: str
    kind: str
    remaining: int
    status: int
    retry_after: float | None
    body: Any
    tenant_id: str | None
    partner_tenant_id: str
    retry_after_form: str = "seconds"

    def matches(self, endpoint: str, partner_tenant_id: str | None, tenant_id: str | None) -> bool:
        return (
            self.endpoint in ("*", endpoint)
            and self.partner_tenant_id == partner_tenant_id
            and (self.tenant_id is None or self.tenant_id == tenant_id)
        )


class FaultPlan:
    """Injected faults, served first-in first-out to the requests they match."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault."""
        if fault.endpoint != "*" and fault.endpoint not in ENTRA_ENDPOINTS + API_ENDPOINTS:
            raise ValueError(f"unknown endpoint {fault.endpoint!r}")
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        if fault.tenant_id is not None and fault.endpoint not in ("*",) + CUSTOMER_ENDPOINTS:
            raise ValueError(f"{fault.endpoint} has no customer in its URL: a tenant_id would never match")
        if fault.retry_after_form not in RETRY_AFTER_FORMS:
            raise ValueError(f"retry_after_form must be one of {', '.join(RETRY_AFTER_FORMS)}")
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError(f"a status fault needs an error status (400-599), not {fault.status}")
        with self._lock:
            self._faults.append(fault)

    def take(self, endpoint: str, partner_tenant_id: str | None, tenant_id: str | None) -> Fault | None:
        """The fault this request gets, if any; it is used up after its `times` requests."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(endpoint, partner_tenant_id, tenant_id):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()
