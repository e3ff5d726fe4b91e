"""API test helpers: tokens for the world's users and a JSON client that uses them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client


class ApiClient:
    """Calls /api/v1/ with a bearer token (or a given session client)."""

    def __init__(self, client: Client, token: str | None = None, account: str | None = None):
        self.client = client
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if account:
            self.headers["X-Account"] = account

    def _url(self, path: str) -> str:
        return "/api/v1" + path

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(self._url(path), params, headers=self.headers)

    def _send(self, method: str, path: str, body: Any) -> Any:
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        send = getattr(self.client, method)
        return send(self._url(path), data, content_type="application/json", headers=self.headers)

    def post(self, path: str, body: Any = None) -> Any:
        return self._send("post", path, {} if body is None else body)

    def patch(self, path: str, body: Any) -> Any:
        return self._send("patch", path, body)

    def delete(self, path: str) -> Any:
        return self.client.delete(self._url(path), headers=self.headers)


@pytest.fixture
def token_for(world: Any) -> Callable[[Any], str]:
    from closedloop.accounts.services import token_create

    def make(user: Any) -> str:
        _token, raw = token_create(user=user, name="test")
        return raw

    return make


@pytest.fixture
def api_as(token_for: Callable[[Any], str]) -> Callable[..., ApiClient]:
    """``api_as(user)``: a token-authenticated API client (fresh Django client each)."""

    def make(user: Any, account: str | None = None) -> ApiClient:
        return ApiClient(Client(), token_for(user), account)

    return make


def assert_error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The response has the one error shape (and names ``field`` if given)."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "errors"}
    assert isinstance(body["detail"], str) and body["detail"]
    for err in body["errors"]:
        assert set(err) == {"field", "message"}
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body
