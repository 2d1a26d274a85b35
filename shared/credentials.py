"""Tokens the app asks for with an identity: a failure to get one names its connection and credential.

A managed identity's endpoint can answer an error without a JSON body (a 500 HTML page, a proxy's
200 text): the SDKs then raise whatever their parser raised (``JSONDecodeError``), deep inside a
client call. :class:`NamedCredential` turns every such failure into one
:class:`TokenUnavailable` saying which connection (the setting prefix) and which credential
failed, so the command line prints one line and the HTTP routes answer 503; never a secret.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from azure.core.exceptions import ClientAuthenticationError

_REASON_CHARS = 200


class TokenUnavailable(ClientAuthenticationError):
    """No token could be obtained for ``connection`` with ``credential`` (e.g. a managed identity).

    A :class:`ClientAuthenticationError`, as the SDK's own credential failures are: azure-core
    does not retry it, and callers that handle those handle this one.
    """

    def __init__(self, connection: str, credential: str, reason: str) -> None:
        super().__init__(message=f"{connection}: no access token from the {credential}: {reason}")
        self.connection = connection
        self.credential = credential
        self.reason = reason


def managed_identity_name(client_id: str = "") -> str:
    """How a message names a managed identity: the user-assigned one by its client id."""
    return f"managed identity (client id {client_id})" if client_id else "system-assigned managed identity"


def failure_reason(exc: BaseException) -> str:
    """A short, secret-free account of why a token request failed."""
    if isinstance(exc, ValueError) and type(exc).__name__ == "JSONDecodeError":
        return "the token endpoint answered without a JSON body"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:_REASON_CHARS] if text else type(exc).__name__


class NamedCredential:
    """A token credential (``get_token`` and ``get_token_info``) whose failures are :class:`TokenUnavailable`."""

    def __init__(self, inner: Any, connection: str, credential: str, *,
                 on_failure: Callable[[TokenUnavailable], None] | None = None,
                 quiet_after_failure: float = 0.0) -> None:
        """``on_failure``: told of each failure, for callers that never see the exception (an
        exporter's background thread). ``quiet_after_failure``: for that many seconds after a
        failure, fail at once instead of asking the endpoint again (each ask retries for seconds)."""
        self._inner = inner
        self.connection = connection
        self.credential = credential
        self._on_failure = on_failure
        self._quiet = quiet_after_failure
        self._failed: tuple[float, TokenUnavailable] | None = None

    def get_token(self, *scopes: str, **kwargs: Any):
        return self._ask(self._inner.get_token, *scopes, **kwargs)

    def get_token_info(self, *scopes: str, options: Any = None):
        if not hasattr(self._inner, "get_token_info"):
            return self._ask(self._inner.get_token, *scopes)
        return self._ask(self._inner.get_token_info, *scopes, options=options)

    def close(self) -> None:
        """The inner credential is shared by every client of its identity: it stays open."""

    def __enter__(self) -> "NamedCredential":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ask(self, method, *args: Any, **kwargs: Any):
        failed = self._failed
        if failed is not None and time.monotonic() < failed[0]:
            raise failed[1]
        try:
            return method(*args, **kwargs)
        except TokenUnavailable:
            raise
        except Exception as exc:
            failure = TokenUnavailable(self.connection, self.credential, failure_reason(exc))
            if self._quiet:
                self._failed = (time.monotonic() + self._quiet, failure)
            if self._on_failure is not None:
                self._on_failure(failure)
            raise failure from None
