"""API: RapidPro connections (admins and managers; anyone else gets 404).

The API token is write-only: it is accepted on create and update, tested with RapidPro
before anything is saved, stored encrypted, and never returned (``has_token`` says
whether one is stored).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import Http404, HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from closedloop.accounts.models import Membership
from closedloop.api.auth import membership_of
from closedloop.api.errors import ApiError, field_error
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS, WRITE_ERRORS
from closedloop.jobs.api import JobOut, _job
from closedloop.polls import selectors, services
from closedloop.polls.models import Connection
from closedloop.polls.services import SetupError
from closedloop.polls.views_setup import connection_health, running_jobs

router = Router(tags=["polls"])


class ConnectionOut(Schema):
    id: int
    name: str
    host_url: str
    has_token: bool
    workspace_name: str
    workspace_timezone: str
    is_active: bool
    sync_interval_minutes: int
    last_success_at: dt.datetime | None
    last_error_at: dt.datetime | None
    consecutive_failures: int
    next_sync_at: dt.datetime | None
    created_at: dt.datetime


class ConnectionIn(Schema):
    name: str = Field(..., max_length=100)
    host_url: str = Field(..., max_length=255, description="e.g. https://rapidpro.io")
    token: str = Field(..., max_length=200, description="Write-only; never returned.")
    sync_interval_minutes: int | None = Field(
        None, ge=services.MIN_INTERVAL, le=services.MAX_INTERVAL
    )


class ConnectionPatch(Schema):
    """Only the keys sent change; an empty token keeps the stored one."""

    name: str | None = Field(None, max_length=100)
    host_url: str | None = Field(None, max_length=255)
    token: str | None = Field(None, max_length=200, description="Write-only; never returned.")
    sync_interval_minutes: int | None = Field(
        None, ge=services.MIN_INTERVAL, le=services.MAX_INTERVAL
    )
    is_active: bool | None = None


class TestOut(Schema):
    ok: bool
    workspace: str
    timezone: str
    error: str


class HealthJobOut(Schema):
    id: int
    kind: str
    status: str
    percent: int
    message: str


class HealthOut(Schema):
    state: str = Field(description="never | ok | failing | running | paused")
    last_success_at: dt.datetime | None
    last_error_at: dt.datetime | None
    last_error: str
    consecutive_failures: int
    next_sync_at: dt.datetime | None
    backoff: str
    last_counts: dict[str, Any]
    job: HealthJobOut | None


def _setup_member(request: HttpRequest) -> Membership:
    membership = membership_of(request)
    if not selectors.can_setup(membership):
        raise Http404
    return membership


def _out(connection: Connection) -> dict[str, Any]:
    fields = (
        "name",
        "host_url",
        "workspace_name",
        "workspace_timezone",
        "is_active",
        "sync_interval_minutes",
        "last_success_at",
        "last_error_at",
        "consecutive_failures",
        "next_sync_at",
        "created_at",
    )
    return {
        "id": connection.pk,
        "has_token": bool(connection.token_encrypted),
        **{name: getattr(connection, name) for name in fields},
    }


def _api_error(exc: SetupError) -> ApiError:
    if exc.field:
        return field_error(exc.field, exc.message)
    return ApiError(400, exc.message)


@router.get(
    "/polls/connections",
    response={200: Page[ConnectionOut], **ERRORS},
    summary="RapidPro connections",
)
def list_connections(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    _setup_member(request)
    return paginate(Connection.objects.order_by("name", "pk"), page, _out)


@router.post(
    "/polls/connections",
    response={201: ConnectionOut, **WRITE_ERRORS},
    summary="Connect a RapidPro workspace (tested first)",
)
def create_connection(request: HttpRequest, payload: ConnectionIn) -> Status[dict[str, Any]]:
    membership = _setup_member(request)
    try:
        connection = services.connection_create(
            account=membership.account, user=membership.user, **payload.dict()
        )
    except SetupError as exc:
        raise _api_error(exc) from None
    return Status(201, _out(connection))


@router.get(
    "/polls/connections/{connection_id}",
    response={200: ConnectionOut, **ERRORS},
    summary="One RapidPro connection",
)
def get_connection(request: HttpRequest, connection_id: int) -> dict[str, Any]:
    return _out(selectors.get_connection(membership_of(request), connection_id))


@router.patch(
    "/polls/connections/{connection_id}",
    response={200: ConnectionOut, **WRITE_ERRORS},
    summary="Change a RapidPro connection",
)
def update_connection(
    request: HttpRequest, connection_id: int, payload: ConnectionPatch
) -> dict[str, Any]:
    membership = membership_of(request)
    connection = selectors.get_connection(membership, connection_id)
    try:
        connection = services.connection_update(
            connection=connection, user=membership.user, **payload.dict(exclude_unset=True)
        )
    except SetupError as exc:
        raise _api_error(exc) from None
    return _out(connection)


@router.delete(
    "/polls/connections/{connection_id}",
    response={204: None, **WRITE_ERRORS},
    summary="Delete a connection and all its polls data",
)
def delete_connection(request: HttpRequest, connection_id: int) -> Status[None]:
    membership = membership_of(request)
    connection = selectors.get_connection(membership, connection_id)
    services.connection_delete(connection=connection, user=membership.user)
    return Status(204, None)


@router.post(
    "/polls/connections/{connection_id}/test",
    response={200: TestOut, **ERRORS},
    summary="Test the stored address and token with RapidPro",
)
def test_connection(request: HttpRequest, connection_id: int) -> dict[str, Any]:
    connection = selectors.get_connection(membership_of(request), connection_id)
    return dict(
        services.check_connection(connection.host_url, services.connection_token(connection))
    )


@router.post(
    "/polls/connections/{connection_id}/sync",
    response={202: JobOut, **WRITE_ERRORS},
    summary="Sync now (returns the queued job)",
)
def sync_connection(request: HttpRequest, connection_id: int) -> Status[dict[str, Any]]:
    membership = membership_of(request)
    connection = selectors.get_connection(membership, connection_id)
    try:
        job = services.request_sync(connection=connection, user=membership.user)
    except SetupError as exc:
        raise _api_error(exc) from None
    return Status(202, _job(job))


@router.get(
    "/polls/connections/{connection_id}/health",
    response={200: HealthOut, **ERRORS},
    summary="Sync health: last success and error, back-off, counts, running job",
)
def connection_health_api(request: HttpRequest, connection_id: int) -> dict[str, Any]:
    connection = selectors.get_connection(membership_of(request), connection_id)
    job = running_jobs([connection]).get(connection.pk)
    return connection_health(connection, job).as_dict()
