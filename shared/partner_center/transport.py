"""Partner Center over HTTP: tokens, the request budget, retries with back-off, typed errors, paging.

What every call goes through, whatever it asks; :mod:`.client` says what is asked.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from .auth import TokenProvider
from .budget import RequestBudget
from .errors import (
    MFA_REQUIRED_CODES,
    RELATIONSHIP_ENDED_CODE,
    RETIRED_AUDIENCE_CODE,
    AuthenticationError,
    BadRequestError,
    ContinuationExpiredError,
    CustomerNotFoundError,
    ForbiddenError,
    IncompleteListError,
    MalformedResponseError,
    MfaRequiredError,
    NotFoundError,
    PartnerCenterError,
    RelationshipEndedError,
    ThrottledError,
    TransientError,
    WrongTokenAudienceError,
    error_body,
    retry_after_of,
)
from .models import (
    NextLink,
    items_of,
    parse_next_link,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults follow Microsoft's SDK: 3 retries for 5xx and network errors."""

    transient_attempts: int = 4
    throttled_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    retry_after_cap: float = 60.0
    throttle_default_wait: float = 1.0  # a 429 without Retry-After
    throttle_backoff_initial: float = 2.0  # the second 429 in a row waits about this long (or Retry-After)
    throttle_backoff_max: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


class RequestStats:
    """Thread-safe counts of what a run asked of Partner Center."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_endpoint: Counter[str] = Counter()
        self.throttled = 0
        self.retried = 0

    @property
    def calls(self) -> int:
        return sum(self.by_endpoint.values())

    def count(self, endpoint: str) -> None:
        with self._lock:
            self.by_endpoint[endpoint] += 1

    def count_throttled(self) -> None:
        with self._lock:
            self.throttled += 1

    def count_retry(self) -> None:
        with self._lock:
            self.retried += 1


class Transport:
    """One Partner Center account's HTTP calls: tokens, the request budget, retries, typed errors and
    paging. :class:`~shared.partner_center.client.PartnerCenterClient` adds the API's operations.

    Safe to share between the threads of one run. ``deadline`` (a ``time.monotonic()`` value) bounds
    every wait it would make.
    """

    def __init__(
        self,
        api_url: str,
        token_provider: TokenProvider,
        budget: RequestBudget,
        *,
        policy: RetryPolicy = RetryPolicy(),
        correlation_id: str | None = None,
        deadline: float | None = None,
        pool_size: int = 16,
        session: requests.Session | None = None,
        application_name: str = "pc-organization-sync",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._host = urlsplit(self.api_url).netloc.lower()
        self.tokens = token_provider
        self.budget = budget
        self.policy = policy
        self.correlation_id = correlation_id or str(uuid.uuid4())
        self.deadline = deadline
        self.stats = RequestStats()
        self._refused: AuthenticationError | None = None  # MFA or audience refusal: stop asking
        self._application_name = application_name
        self._sleep = sleep
        self._session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    @contextmanager
    def first_in_line(self) -> Iterator[None]:
        """Meanwhile, calls go before the process's other calls on the same budget lane: someone is
        waiting on them (a customer who just accepted), while a walk has hours."""
        previous, self.budget = self.budget, self.budget.first_in_line()
        try:
            yield
        finally:
            self.budget = previous

    def request_json(self, method: str, path: str, *, endpoint: str, what: str, body: Any = None,
                     params: dict | None = None) -> Any:
        """One call to ``path`` (relative to the base URL) with the same budget, retries and typed
        errors as every read; returns the parsed JSON answer (None for an empty answer).

        A write is retried only after an error that carries no answer or a transient status, with
        the same ``MS-RequestId`` when no answer came (Partner Center's idempotency key).
        """
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise ValueError(f"unsupported method {method}")
        url = f"{self.api_url}/{path.lstrip('/')}"
        return self._call(method, endpoint, url, params=params, body=body, what=what)

    # -- plumbing ------------------------------------------------------------------------

    def _pages(self, endpoint: str, url: str, params: dict | None, headers: dict,
               where: Callable[[int], str], *, tolerate_missing: bool = False
               ) -> Iterator[tuple[int, list, NextLink | None]]:
        """Every page of a collection: (page number, items, next link), following ``links.next``
        with the headers it names (``MS-ContinuationToken``) until there is none.

        A page without items (204, an empty body, ``items: null``) raises `IncompleteListError`
        after the retries, never passes for an empty page; ``tolerate_missing`` reads it as
        "nothing" instead (endpoints that answer null for none).
        """
        number = 1
        seen_links: set[NextLink] = set()
        while True:
            page = where(number)
            check = None if tolerate_missing else _complete_page(page)
            body = self._call("GET", endpoint, url, params=params, headers=headers, what=page, check=check)
            if tolerate_missing and (body is None or (isinstance(body, dict) and body.get("items") is None)):
                return
            items = items_of(body, page)
            next_link = parse_next_link(body, page)
            if next_link is not None and next_link in seen_links:
                raise MalformedResponseError(f"{page}: links.next repeats an earlier page (a paging loop)")
            yield number, items, next_link
            if next_link is None:
                return
            seen_links.add(next_link)
            params, url, headers = None, self._resolve(next_link.uri), dict(next_link.headers)
            number += 1

    def _resolve(self, uri: str) -> str:
        """A next-link uri as an absolute URL; older responses omit the ``/v1`` prefix."""
        parts = urlsplit(uri)
        if parts.scheme or parts.netloc:
            if parts.netloc.lower() != self._host:
                # The bearer token must never be sent to another host.
                raise MalformedResponseError(f"next link points to another host: {parts.netloc}")
            return uri
        path = uri if uri.startswith("/") else "/" + uri
        if not (path == "/v1" or path.startswith("/v1/")):
            path = "/v1" + path
        return self.api_url + path

    def _get(self, endpoint: str, url: str, *, params=None, headers=None, what: str) -> Any:
        return self._call("GET", endpoint, url, params=params, headers=headers, what=what)

    def _call(self, method: str, endpoint: str, url: str, *, params=None, headers=None, body: Any = None,
              what: str, check: Callable[[Any], None] | None = None) -> Any:
        """One logical call with its retries. ``check`` may reject a 2xx body (raising a
        TransientError subclass makes it retried like any transient failure)."""
        # MS-RequestId is the idempotency key: the same value only when a retry follows a timeout
        # or a dropped connection (no answer); after any answer the next attempt gets a new one.
        request = {"id": str(uuid.uuid4()), "answered": False, "throttled_in_a_row": 0}

        def attempt() -> Any:
            if request["answered"]:
                request["id"], request["answered"] = str(uuid.uuid4()), False
            try:
                answer = self._send(method, endpoint, url, params, headers or {}, body, request, what)
            except ThrottledError:
                request["throttled_in_a_row"] += 1
                raise
            except TransientError:
                request["throttled_in_a_row"] = 0
                raise
            if check is not None:
                check(answer)
            return answer

        retrying = Retrying(
            retry=retry_if_exception_type((TransientError, ThrottledError)),
            wait=lambda state: self._wait(state, request["throttled_in_a_row"]),
            stop=self._stop,
            before_sleep=lambda state: self.stats.count_retry(),
            reraise=True,
            sleep=self._sleep,
        )
        return retrying(attempt)

    def _wait(self, state: RetryCallState, throttled_in_a_row: int) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ThrottledError):
            wait = self._throttle_wait(error.retry_after, throttled_in_a_row)
            self.budget.pause(wait)
            return wait
        backoff = min(self.policy.backoff_max, self.policy.backoff_initial * 2 ** (state.attempt_number - 1))
        return backoff * (0.5 + random.random() / 2)  # "equal jitter" keeps retries of many threads apart

    def _throttle_wait(self, retry_after: float | None, in_a_row: int) -> float:
        """Microsoft's guidance: wait Retry-After; when this call is throttled again in a row, back
        off exponentially (with jitter), never sooner than Retry-After. Counted per call: eight
        threads throttled at the same moment are one throttling, not eight in a row."""
        policy = self.policy
        floor = min(retry_after if retry_after is not None else policy.throttle_default_wait, policy.retry_after_cap)
        if in_a_row < 2:
            return floor
        backoff = min(policy.throttle_backoff_max, policy.throttle_backoff_initial * 2 ** (in_a_row - 2))
        return max(floor, backoff * (0.5 + random.random() / 2))

    def _stop(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        limit = self.policy.throttled_attempts if isinstance(error, ThrottledError) else self.policy.transient_attempts
        if state.attempt_number >= limit:
            return True
        if self.deadline is not None and time.monotonic() + (state.upcoming_sleep or 0) > self.deadline:
            return True
        return False

    def _send(self, method, endpoint, url, params, extra_headers, body, request, what) -> Any:
        if self._refused is not None:
            raise self._refused  # a person has to act first; asking again would only repeat it
        self.budget.acquire(self.deadline)
        headers = {
            "Accept": "application/json",
            "MS-RequestId": request["id"],
            "MS-CorrelationId": self.correlation_id,
            "MS-PartnerCenter-Application": self._application_name,
            **extra_headers,
        }
        token = self.tokens.token()
        headers["Authorization"] = f"Bearer {token}"
        self.stats.count(endpoint)
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        try:
            response = self._session.request(method, url, params=params, headers=headers, json=body, timeout=timeout)
            content = response.content  # reading the body here turns a dropped connection into a retry
            if response.status_code == 401:
                request["answered"] = True
                code, _ = error_body(content)
                if code not in MFA_REQUIRED_CODES and code != RETIRED_AUDIENCE_CODE and not request.get("refreshed"):
                    # A token can expire or be revoked mid-run: refresh once, then give up.
                    request["refreshed"] = True
                    request["id"], request["answered"] = str(uuid.uuid4()), False  # a new request after an answer
                    headers["MS-RequestId"] = request["id"]
                    headers["Authorization"] = f"Bearer {self.tokens.token(rejected=token)}"
                    self.budget.acquire(self.deadline)
                    self.stats.count(endpoint)
                    response = self._session.request(method, url, params=params, headers=headers, json=body,
                                                      timeout=timeout)
                    content = response.content
        except requests.RequestException as exc:
            raise TransientError(
                f"{what}: {type(exc).__name__} talking to Partner Center",
                request_id=request["id"], correlation_id=self.correlation_id,
            ) from exc
        request["answered"] = True
        if 200 <= response.status_code < 300:
            if response.status_code == 204 or not content.strip():
                return None
            try:
                return json.loads(content)
            except ValueError:
                raise MalformedResponseError(
                    f"{what}: response is not valid JSON", status=response.status_code,
                    request_id=request["id"], correlation_id=self.correlation_id,
                ) from None
        error = self._error(response, content, what, request["id"],
                            continuation="MS-ContinuationToken" in extra_headers)
        if isinstance(error, (MfaRequiredError, WrongTokenAudienceError)):
            self._refused = error
        raise error

    def _error(self, response: requests.Response, content: bytes, what: str, request_id: str,
               *, continuation: bool = False) -> PartnerCenterError:
        status = response.status_code
        code, description = error_body(content)
        context = dict(
            status=status, code=code, description=description, request_id=request_id,
            correlation_id=response.headers.get("MS-CorrelationId", self.correlation_id), resource=what,
        )
        message = f"{what}: {description or response.reason or 'Partner Center error'}"
        if status == 429:
            self.stats.count_throttled()
            return ThrottledError(message, retry_after=retry_after_of(response), **context)
        if status == 408 or status >= 500:
            return TransientError(message, **context)
        if status == 401 and code in MFA_REQUIRED_CODES:
            return MfaRequiredError(
                f"sign in again with MFA: Partner Center refused the app+user token of tenant "
                f"{getattr(self.tokens, 'tenant_id', '?')} because its sign-in used no multi-factor "
                "authentication (required for app+user calls since 2026-04-01). An admin of the partner "
                "tenant must sign in with MFA and store the new refresh token in the account's refresh-token "
                f"setting ({what})", **context)
        if status == 401 and code == RETIRED_AUDIENCE_CODE:
            return WrongTokenAudienceError(
                f"wrong token audience: Partner Center refused a token issued for the retired "
                f"https://graph.windows.net audience; tokens must be requested for "
                f"{getattr(self.tokens, 'cloud', None) and self.tokens.cloud.audience or 'the Partner Center API'} "
                f"(check PARTNER_CENTER_CLOUD and the app's API permissions) ({what})", **context)
        if status == 401:
            return AuthenticationError(message, **context)
        if status == 403 and code == RELATIONSHIP_ENDED_CODE:
            return RelationshipEndedError(message, **context)
        if status == 403:
            return ForbiddenError(message, **context)
        if status == 404:
            return CustomerNotFoundError(message, **context) if "customer" in what else NotFoundError(message, **context)
        if status == 400 and continuation:
            return ContinuationExpiredError(
                f"{what}: Partner Center no longer accepts the continuation token; start the walk again "
                f"({description or 'bad request'})", **context)
        return BadRequestError(message, **context)


def _complete_page(where: str) -> Callable[[Any], None]:
    """A check that a collection page holds its items: 204, an empty body or ``items: null``
    mid-walk is an incomplete list, retried like a transient error."""

    def check(body: Any) -> None:
        if body is None:
            raise IncompleteListError(f"{where}: Partner Center answered without a body (204 or empty)")
        if isinstance(body, dict) and body.get("items", []) is None:
            raise IncompleteListError(f"{where}: Partner Center answered items: null")

    return check
