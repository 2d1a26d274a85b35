"""HTTP answers for the function triggers: JSON bodies and RFC 9457 problem details.

Every 4xx and 5xx answer is ``application/problem+json`` with ``type``, ``title``, ``status`` and
``detail``; answers about a request body add ``errors`` (``pointer`` + ``detail`` per problem).
Triggers raise :class:`Problem` (or let a known domain error through) and
:func:`answers_with_problems` turns it into the response, so no caller input ends in a bare 500.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable, Mapping

import azure.functions as func
from azure.core.exceptions import AzureError

from shared.credentials import TokenUnavailable
from shared.settings import SettingsError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
# Problem types are URNs: stable names a client can switch on, documented in docs/http-api.md.
TYPE_PREFIX = "urn:partner-center-sync:problem:"

# Contact edits are a few hundred bytes; 64 KiB leaves room for any real edit and caps abuse.
MAX_BODY_BYTES = 64 * 1024

_TITLES = {
    "invalid-json": "The request body is not valid JSON",
    "invalid-request": "The request is not valid",
    "body-too-large": "The request body is too large",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "conflict": "The request conflicts with the current state",
    "cooling-down": "Too many requests: cooling down",
    "rate-limited": "Too many requests: the on-demand limit is reached",
    "unauthenticated": "Sign-in required",
    "forbidden": "The signed-in principal lacks the role this needs",
    "partner-center-unavailable": "Partner Center is unavailable",
    "partner-center-refused": "Partner Center refused the request",
    "storage-unavailable": "Table Storage is unavailable",
    "not-configured": "The service is not configured",
    "credential-unavailable": "A credential could not get an access token",
    "internal-error": "Internal error",
}


class Problem(Exception):
    """An HTTP problem to answer with (RFC 9457). ``kind`` is the type's last segment."""

    def __init__(self, status: int, kind: str, detail: str, *, errors: list[dict] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = errors or []
        self.headers = dict(headers or {})

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.kind,
            "title": _TITLES[self.kind],
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


def problem_response(problem: Problem) -> func.HttpResponse:
    """The problem as an ``application/problem+json`` response."""
    return func.HttpResponse(
        json.dumps(problem.as_dict(), ensure_ascii=False),
        status_code=problem.status,
        headers=problem.headers,
        mimetype=PROBLEM_JSON,
        charset="utf-8",
    )


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    """A JSON response (datetimes become ISO 8601 strings)."""
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, default=_json_default),
        status_code=status,
        headers=dict(headers or {}),
        mimetype=JSON,
        charset="utf-8",
    )


def answers_with_problems(handler: Callable[..., func.HttpResponse]) -> Callable[..., func.HttpResponse]:
    """Wrap a trigger so every failure is answered as problem+json.

    :class:`Problem` is answered as it says; a broken setting, a credential that gets no token or
    an unreachable Table Storage is the service's condition, not the caller's fault (503);
    anything else is a bug: logged, and answered 500 without internals.
    """

    @functools.wraps(handler)
    def wrapper(*args, **kwargs) -> func.HttpResponse:
        try:
            return handler(*args, **kwargs)
        except Problem as problem:
            return problem_response(problem)
        except SettingsError as exc:
            log.error("configuration problem: %s", exc)
            return problem_response(Problem(503, "not-configured", str(exc)))
        except TokenUnavailable as exc:
            log.error("%s", exc)
            return problem_response(Problem(503, "credential-unavailable", str(exc), headers={"Retry-After": "30"}))
        except AzureError as exc:
            log.warning("Table Storage failed: %s", exc)
            return problem_response(Problem(503, "storage-unavailable", "Table Storage did not answer; try again shortly",
                                            headers={"Retry-After": "5"}))
        except Exception:
            log.exception("unexpected failure in %s", handler.__name__)
            return problem_response(Problem(500, "internal-error", "an unexpected error occurred; it has been logged"))

    return wrapper


def json_body(request: func.HttpRequest, *, required: bool = True, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request body as a JSON value, strictly parsed; raises :class:`Problem`.

    Strict means: UTF-8 only, no ``NaN``/``Infinity``, no duplicate member names (which member
    would win is ambiguous), no lone surrogates. An empty body is ``None`` when not ``required``.
    """
    raw = request.get_body() or b""
    if len(raw) > max_bytes:
        raise Problem(413, "body-too-large", f"the body is {len(raw)} bytes; at most {max_bytes} are accepted")
    if not raw.strip():
        if required:
            raise Problem(400, "invalid-json", "the body is empty; a JSON object is expected")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, "invalid-json", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_members, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise Problem(400, "invalid-json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _StrictJsonError as exc:
        raise Problem(400, "invalid-json", str(exc)) from None
    except RecursionError:
        raise Problem(400, "invalid-json", "the JSON is nested too deeply") from None
    if _has_lone_surrogate(value):
        raise Problem(400, "invalid-json", "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff escape)")
    return value


def invalid_request(errors: list[tuple[str, str]]) -> Problem:
    """A 400 naming every problem found, each with its JSON pointer (RFC 6901)."""
    details = [{"pointer": pointer, "detail": detail} for pointer, detail in errors]
    summary = "; ".join(f"{pointer or '/'}: {detail}" for pointer, detail in errors)
    return Problem(400, "invalid-request", summary, errors=details)


class _StrictJsonError(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict:
    result: dict = {}
    for name, value in pairs:
        if name in result:
            raise _StrictJsonError(f"member {name!r} appears twice in one object")
        result[name] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise _StrictJsonError(f"{name} is not a JSON number")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
