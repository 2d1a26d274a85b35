"""Typed Partner Center errors: business logic sees these, never raw status codes."""

from __future__ import annotations


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


class RelationshipEndedError(PartnerCenterError):
    """403 with code 20002: the customer no longer has a relationship with the partner."""


class CustomerNotFoundError(PartnerCenterError):
    """404 for a customer resource (codes 1000, 60003)."""


class ForbiddenError(PartnerCenterError):
    """403 for any other reason (for example an app-only token on an app+user endpoint)."""


class BadRequestError(PartnerCenterError):
    """400 and the other 4xx a retry cannot fix."""


class MalformedResponseError(PartnerCenterError):
    """Partner Center answered 2xx with a body the client cannot use; the message names where."""


class DeadlineExceeded(PartnerCenterError):
    """Waiting for the next call (budget or Retry-After) would run past the caller's time budget."""


RELATIONSHIP_ENDED_CODE = "20002"
