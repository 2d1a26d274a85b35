"""Typed Partner Center errors: business logic sees these, never raw status codes; and how an
error answer is read (its body, its Retry-After)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests


class PartnerCenterError(Exception):
    """A Partner Center call failed.

    Carries what an operator needs to trace it with Microsoft: the HTTP status, Partner Center's
    error code (a number in real responses, a string in the docs: kept as a string), and the
    request and correlation ids.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        description: str = "",
        request_id: str = "",
        correlation_id: str = "",
        retry_after: float | None = None,
        resource: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.description = description
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.resource = resource

    def __str__(self) -> str:
        parts = [self.args[0] if self.args else type(self).__name__]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"MS-RequestId={self.request_id}")
        if self.correlation_id:
            parts.append(f"MS-CorrelationId={self.correlation_id}")
        return " ".join(parts)


class TransientError(PartnerCenterError):
    """5xx, 408 or a network failure: worth retrying with back-off."""


class ThrottledError(PartnerCenterError):
    """429: wait ``retry_after`` seconds before the next call."""


class AuthenticationError(PartnerCenterError):
    """The account's credentials were refused, or a token stayed invalid after a refresh."""


class MfaRequiredError(AuthenticationError):
    """401 code 900421: the app+user token carries no MFA claim. Only a person can fix it (a new
    sign-in with MFA and a new refresh token), so the client never redeems the token again for it."""


class WrongTokenAudienceError(AuthenticationError):
    """401 code 900420: the token was issued for an audience Partner Center refuses (the retired
    https://graph.windows.net, or another cloud's): the configuration is wrong, retrying cannot help."""


class RelationshipEndedError(PartnerCenterError):
    """403 with code 20002: the customer no longer has a relationship with the partner."""


class NotFoundError(PartnerCenterError):
    """404: the resource does not exist (for example no webhook registration yet)."""


class CustomerNotFoundError(NotFoundError):
    """404 for a customer resource (codes 1000, 60003)."""


class ForbiddenError(PartnerCenterError):
    """403 for any other reason (for example an app-only token on an app+user endpoint)."""


class BadRequestError(PartnerCenterError):
    """400 and the other 4xx a retry cannot fix."""


class ContinuationExpiredError(BadRequestError):
    """400 for a next-page request: Partner Center no longer accepts the continuation token
    (it expired, or its paging state is gone). The walk has to start again from the first page."""


class MalformedResponseError(PartnerCenterError):
    """Partner Center answered 2xx with a body the client cannot use; the message names where."""


class IncompleteListError(TransientError):
    """A collection page came back without its items (204 No Content, an empty body or
    ``items: null``) in the middle of a walk. Retried like a transient error; if it persists the
    walk is incomplete and nothing may be concluded from it (never take it for an empty page)."""


class DeadlineExceeded(PartnerCenterError):
    """The invocation's deadline leaves no room for the next step: a call (its request budget or
    Retry-After would wait past it) or a piece of work. The run checkpoints and stops."""


RELATIONSHIP_ENDED_CODE = "20002"
# 401 codes that no token refresh can fix. 10001 ("Authentication failed. MFA required.") is the
# older form of the MFA refusal, still reported by integrators.
MFA_REQUIRED_CODES = frozenset({"900421", "10001"})
RETIRED_AUDIENCE_CODE = "900420"


def error_body(content: bytes) -> tuple[str | None, str]:
    """Partner Center's ``{code, description}`` or the throttle's ``{statusCode, message}``."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        return None, content[:200].decode(errors="replace").strip()
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code", body.get("errorCode"))
    description = body.get("description") or body.get("message") or ""
    return (str(code) if code is not None else None), str(description)


def retry_after_of(response: requests.Response) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP date (RFC 9110); None when absent
    or unreadable."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
