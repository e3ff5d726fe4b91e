"""One error shape for every 4xx the API returns.

``{"detail": "...", "errors": [{"field": "...", "message": "..."}]}`` — for
validation errors, missing objects, refused permissions and conflicts alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from closedloop.feedback.values import ConflictError, FeedbackError, RowNotFound
from closedloop.people.services import PeopleError
from closedloop.registry.geometry import GeometryError
from closedloop.registry.services import RegistryError

#: Parameter sources ninja puts first in a validation error's location.
_SOURCES = {"body", "query", "path", "header", "cookie", "form", "file"}


class ApiError(HttpError):
    """An HTTP error with optional field-level messages, rendered in the one error shape."""

    def __init__(
        self, status_code: int, detail: str, errors: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(status_code, str(detail))
        self.errors = [{"field": field, "message": str(msg)} for field, msg in errors]


def field_error(field: str, message: str, status_code: int = 400) -> ApiError:
    """A 400 about one input field, e.g. a referenced id that does not exist."""
    return ApiError(status_code, str(message), [(field, str(message))])


def forbidden(message: str | None = None) -> ApiError:
    return ApiError(403, message or _("You do not have permission to do this."))


def error_body(detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"detail": str(detail), "errors": errors or []}


def field_name(loc: Sequence[Any], body_params: int = 1) -> str:
    """``("body", "payload", "name")`` → ``"name"``; ``("query", "limit")`` → ``"limit"``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _SOURCES:
        source = parts.pop(0)
        if source == "body" and len(parts) > 1 and body_params == 1:
            parts.pop(0)  # the handler's parameter name, not part of the client's document
    return ".".join(parts)


def _message(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", ""))
    # pydantic prefixes messages from custom validators; the client needs only the reason
    return msg.removeprefix("Value error, ")


def _validation_error(request: HttpRequest, exc: ValidationError, api: NinjaAPI) -> HttpResponse:
    errors = [
        {"field": field_name(err.get("loc", ())), "message": _message(err)} for err in exc.errors
    ]
    detail = _("The request has invalid values; see errors for each field.")
    return api.create_response(request, error_body(detail, errors), status=422)


def _http_error(request: HttpRequest, exc: HttpError, api: NinjaAPI) -> HttpResponse:
    errors = getattr(exc, "errors", [])
    detail = exc.message
    if isinstance(exc, AuthenticationError) and detail == "Unauthorized":
        detail = _("Authentication required: send a valid API token or log in.")
    elif exc.status_code == 403 and detail == "CSRF check Failed":
        detail = _("CSRF check failed: send the X-CSRFToken header with a session request.")
    elif exc.status_code == 400 and detail.startswith("Cannot parse request body"):
        detail = _("The request body is not valid JSON.")
    return api.create_response(request, error_body(detail, errors), status=exc.status_code)


def _not_found(request: HttpRequest, exc: Exception, api: NinjaAPI) -> HttpResponse:
    return api.create_response(request, error_body(_("Not found.")), status=404)


def _permission_denied(request: HttpRequest, exc: Exception, api: NinjaAPI) -> HttpResponse:
    detail = str(exc) or _("You do not have permission to do this.")
    return api.create_response(request, error_body(detail), status=403)


def _registry_error(request: HttpRequest, exc: RegistryError, api: NinjaAPI) -> HttpResponse:
    errors = [{"field": exc.field, "message": str(exc)}] if exc.field else []
    return api.create_response(request, error_body(str(exc), errors), status=400)


def _people_error(request: HttpRequest, exc: PeopleError, api: NinjaAPI) -> HttpResponse:
    field = (exc.field or "").replace("field:", "fields.")
    errors = [{"field": field, "message": exc.message}] if field else []
    return api.create_response(request, error_body(exc.message, errors), status=400)


def _geometry_error(request: HttpRequest, exc: GeometryError, api: NinjaAPI) -> HttpResponse:
    reason = str(exc)
    field = "latitude" if "latitude" in reason or "longitude" in reason else "geometry"
    detail = _("The location is not valid: %(reason)s.") % {"reason": reason}
    return api.create_response(
        request, error_body(detail, [{"field": field, "message": reason}]), status=400
    )


def feedback_api_error(exc: FeedbackError) -> ApiError:
    """A refused feedback change in the one error shape: 400 naming the row and column,
    409 for a conflicting edit, 404 for a row that does not exist."""
    if isinstance(exc, RowNotFound):
        return ApiError(404, _("Not found."))
    errors = []
    for item in exc.errors:
        field = exc.field or item.get("column")
        if not field:
            continue
        message = str(item.get("message") or exc.message)
        if item.get("row") is not None:
            message = _("Row %(row)s: %(message)s") % {"row": item["row"], "message": message}
        errors.append((str(field), message))
    return ApiError(409 if isinstance(exc, ConflictError) else 400, exc.message, errors)


def _feedback_error(request: HttpRequest, exc: FeedbackError, api: NinjaAPI) -> HttpResponse:
    return _http_error(request, feedback_api_error(exc), api)


def install_error_handlers(api: NinjaAPI) -> None:
    """Replace ninja's default 4xx handlers so every error uses the one shape."""
    handlers: list[tuple[type[Exception], Any]] = [
        (ValidationError, _validation_error),
        (HttpError, _http_error),
        (Http404, _not_found),
        (PermissionDenied, _permission_denied),
        (RegistryError, _registry_error),
        (GeometryError, _geometry_error),
        (PeopleError, _people_error),
        (FeedbackError, _feedback_error),
    ]
    for exc_class, handler in handlers:
        api.add_exception_handler(exc_class, _bound(handler, api))


def _bound(handler: Any, api: NinjaAPI) -> Any:
    def handle(request: HttpRequest, exc: Exception) -> HttpResponse:
        return handler(request, exc, api)  # type: ignore[no-any-return]

    return handle
