"""The RapidPro API v2 client as closedloop uses it.

Wraps the real ``rapidpro-python`` :class:`TembaClient`:

- :func:`client_for` builds a client for a :class:`Connection` (decrypted token, a user
  agent naming closedloop, a request timeout);
- :func:`call` runs one request, sleeping ``Retry-After`` and retrying when RapidPro
  answers 429, and turns every Temba error into a :class:`RapidProError` whose message a
  user can act on;
- :class:`Pages` iterates a cursor query page by page with the same retries, and exposes
  the cursor so an interrupted fetch can resume;
- :func:`test_connection` checks a host and token (the "test connection" button).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import requests
from django.conf import settings
from django.utils.translation import gettext as _
from temba_client.base import CursorQuery
from temba_client.exceptions import (
    TembaBadRequestError,
    TembaConnectionError,
    TembaException,
    TembaHttpError,
    TembaNoSuchObjectError,
    TembaRateExceededError,
    TembaSerializationException,
    TembaTokenError,
)
from temba_client.utils import request as temba_request
from temba_client.v2 import TembaClient

from closedloop.core.crypto import decrypt

USER_AGENT = "closedloop"
#: seconds to wait for RapidPro to answer one request
REQUEST_TIMEOUT = 60
BATCH_SIZE = 100

T = TypeVar("T")


class RapidProError(Exception):
    """A RapidPro failure with a message meant for the user."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


class TokenRefused(RapidProError):
    """RapidPro answered 403: the token is wrong, revoked or lacks permissions."""


class RateLimited(RapidProError):
    """RapidPro kept answering 429, or asked for a longer wait than a job may sleep."""

    def __init__(self, message: str, *, retry_after: int = 0) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class ClosedloopTembaClient(TembaClient):  # type: ignore[misc]
    """The real client, with a timeout on every request (the library sets none).

    The status handling is the library's own (400 → ``TembaBadRequestError`` with the
    error dict, 403 → ``TembaTokenError``, 404, 429 → ``TembaRateExceededError``).
    """

    timeout: float = REQUEST_TIMEOUT

    def _request(
        self,
        method: str,
        url: str,
        params: Any = None,
        body: Any = None,
        retry_on_rate_exceed: bool = False,
    ) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers, "verify": self.verify_ssl}
        kwargs["timeout"] = self.timeout
        if body:
            kwargs["data"] = body
        if params:
            kwargs["params"] = params
        try:
            response = temba_request(method, url, **kwargs)
        except requests.exceptions.ConnectionError:
            raise TembaConnectionError() from None
        except requests.exceptions.Timeout:
            raise _Timeout() from None
        if response.status_code == 400:
            try:
                errors = response.json()
            except ValueError:
                errors = {"detail": [response.text[:500]]}
            raise TembaBadRequestError(errors)
        if response.status_code == 403:
            raise TembaTokenError()
        if response.status_code == 404:
            raise TembaNoSuchObjectError()
        if response.status_code == 429:
            retry_after = response.headers.get("retry-after")
            try:
                seconds = int(float(retry_after)) if retry_after else 0
            except ValueError:
                seconds = 0
            raise TembaRateExceededError(seconds)
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            raise TembaHttpError(exc) from None
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise TembaSerializationException("the answer is not JSON") from None


class _Timeout(TembaException):
    message = "RapidPro did not answer in time"


def make_client(host_url: str, token: str) -> TembaClient:
    return ClosedloopTembaClient(host_url.strip(), token.strip(), user_agent=USER_AGENT)


def client_for(connection: Any) -> TembaClient:
    """A client for a :class:`~closedloop.polls.models.Connection` (token decrypted)."""
    try:
        token = decrypt(connection.token_encrypted)
    except Exception as exc:  # SecretUnreadable: the key changed since it was stored
        raise RapidProError(str(exc)) from None
    if not token:
        raise TokenRefused(_("This connection has no API token. Enter the workspace's token."))
    client = make_client(connection.host_url, token)
    client._closedloop_host = connection.host_url
    return client


def sleep(seconds: float) -> None:
    """Waiting for Retry-After (a separate name so tests can record the waits)."""
    time.sleep(seconds)


def translate(exc: TembaException, host: str = "") -> RapidProError:
    """A Temba exception → a :class:`RapidProError` saying what to do about it."""
    if isinstance(exc, TembaTokenError):
        return TokenRefused(
            _(
                "RapidPro refused the API token. Copy the token again from the workspace "
                "settings in RapidPro (API tokens) and save it on the connection."
            ),
            status=403,
        )
    if isinstance(exc, TembaConnectionError):
        where = host or _("the RapidPro server")
        return RapidProError(
            _(
                "Could not connect to %(host)s. Check the RapidPro URL and that the "
                "server is reachable from closedloop."
            )
            % {"host": where}
        )
    if isinstance(exc, _Timeout):
        return RapidProError(
            _("RapidPro did not answer within %(seconds)s seconds. Try again later.")
            % {"seconds": REQUEST_TIMEOUT}
        )
    if isinstance(exc, TembaBadRequestError):
        return RapidProError(
            _("RapidPro rejected the request: %(errors)s") % {"errors": bad_request_text(exc)},
            status=400,
        )
    if isinstance(exc, TembaNoSuchObjectError):
        return RapidProError(
            _("RapidPro has no such object (it may have been deleted there)."), status=404
        )
    if isinstance(exc, TembaRateExceededError):
        return RateLimited(
            _("RapidPro asked to wait %(seconds)s seconds before the next request.")
            % {"seconds": exc.retry_after},
            retry_after=exc.retry_after or 0,
        )
    if isinstance(exc, TembaHttpError):
        response = getattr(exc.caused_by, "response", None)
        status = getattr(response, "status_code", None)
        return RapidProError(
            _("RapidPro answered with an error (HTTP %(status)s). Try again later.")
            % {"status": status or "?"},
            status=status,
        )
    if isinstance(exc, TembaSerializationException):
        return RapidProError(
            _("RapidPro sent an answer closedloop could not read. Is the URL a RapidPro server?")
        )
    return RapidProError(_("RapidPro request failed: %(error)s") % {"error": exc})


def bad_request_text(exc: TembaBadRequestError) -> str:
    """``{"contacts": ["Ensure this field has no more than 100 elements."]}`` → one line."""
    errors = exc.errors
    if not isinstance(errors, dict):
        return "; ".join(str(e) for e in errors) if isinstance(errors, list) else str(errors)
    parts = []
    for field, messages in errors.items():
        texts = [messages] if isinstance(messages, str) else [str(m) for m in messages or []]
        text = " ".join(texts)
        if field in ("non_field_errors", "detail", "details", "__all__"):
            parts.append(text)
        else:
            parts.append(f"{field}: {text}")
    return "; ".join(parts)


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one RapidPro request, honouring 429 ``Retry-After``.

    Retries up to ``RAPIDPRO_MAX_RETRIES`` times; a ``Retry-After`` longer than
    ``RAPIDPRO_MAX_RETRY_AFTER`` is not slept inside a job: :class:`RateLimited` is raised
    so the sync ends and backs off. Other errors become :class:`RapidProError`.
    """
    host = _host_of(fn)
    retries = 0
    while True:
        try:
            return fn(*args, **kwargs)
        except TembaRateExceededError as exc:
            wait = max(int(exc.retry_after or 0), 1)
            if retries >= settings.RAPIDPRO_MAX_RETRIES:
                raise RateLimited(
                    _(
                        "RapidPro kept refusing requests (too many requests) after "
                        "%(tries)s tries. The sync will try again later."
                    )
                    % {"tries": retries + 1},
                    retry_after=wait,
                ) from None
            if wait > settings.RAPIDPRO_MAX_RETRY_AFTER:
                raise RateLimited(
                    _(
                        "RapidPro asked to wait %(seconds)s seconds (request limit "
                        "reached). The sync will try again later."
                    )
                    % {"seconds": wait},
                    retry_after=wait,
                ) from None
            retries += 1
            sleep(wait)
        except TembaException as exc:
            raise translate(exc, host) from None


def _host_of(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    owner = getattr(owner, "client", owner)  # a cursor iterator's client
    return str(getattr(owner, "_closedloop_host", "") or "")


class Pages(Iterator[list[Any]]):
    """The pages of a cursor query, each request retried on 429 like :func:`call`.

    ``get_cursor()`` after a page gives the cursor of the next one (``None`` at the end),
    to store and pass back as ``resume_cursor`` later.
    """

    def __init__(self, query: CursorQuery, resume_cursor: str | None = None) -> None:
        self._iter = query.iterfetches(retry_on_rate_exceed=False, resume_cursor=resume_cursor)

    def __iter__(self) -> Pages:
        return self

    def __next__(self) -> list[Any]:
        return call(self._iter.__next__)

    def get_cursor(self) -> str | None:
        cursor: str | None = self._iter.get_cursor()
        return cursor


def fetch_all(query: CursorQuery) -> list[Any]:
    """Every item of a cursor query (for small listings: flows, groups, fields)."""
    items: list[Any] = []
    for page in Pages(query):
        items.extend(page)
    return items


def batches(items: Iterable[T], size: int = BATCH_SIZE) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items (RapidPro writes accept ≤ 100)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def test_connection(host_url: str, token: str) -> dict[str, Any]:
    """Whether ``host_url`` + ``token`` reach a RapidPro workspace, and which one."""
    result: dict[str, Any] = {"ok": False, "workspace": "", "timezone": "", "error": ""}
    if not host_url or not host_url.strip():
        result["error"] = _("Enter the RapidPro URL, e.g. https://rapidpro.io.")
        return result
    if not token or not token.strip():
        result["error"] = _("Enter the API token of the workspace.")
        return result
    client = make_client(host_url, token)
    client._closedloop_host = host_url
    try:
        org = call(client.get_org)
    except RapidProError as exc:
        result["error"] = exc.message
        if exc.status == 404:
            result["error"] = _(
                "No RapidPro API answers at this URL. Give the address of the RapidPro "
                "server itself, e.g. https://rapidpro.io."
            )
        return result
    except (requests.exceptions.RequestException, ValueError, AttributeError, TypeError) as exc:
        result["error"] = _("Could not reach %(host)s: %(error)s") % {
            "host": host_url,
            "error": exc,
        }
        return result
    if org is None or not getattr(org, "name", None):
        result["error"] = _("The server answered, but not like a RapidPro workspace.")
        return result
    result.update(ok=True, workspace=org.name, timezone=org.timezone or "")
    return result
