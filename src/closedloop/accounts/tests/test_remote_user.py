"""REMOTE_USER sign-in (the web server did SAML / Shibboleth): email only, users created."""

from __future__ import annotations

import logging

import pytest

from closedloop.accounts.models import User

pytestmark = pytest.mark.django_db

BACKEND = "closedloop.accounts.backends.RemoteEmailBackend"
MIDDLEWARE = "closedloop.accounts.backends.RemoteEmailMiddleware"


@pytest.fixture(autouse=True)
def _remote_user(settings):
    settings.USE_REMOTE_USER = True
    settings.AUTHENTICATION_BACKENDS = [BACKEND, *settings.AUTHENTICATION_BACKENDS]
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(
        middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        MIDDLEWARE,
    )
    settings.MIDDLEWARE = middleware


def test_the_settings_module_wires_the_middleware_and_backend(monkeypatch):
    import importlib

    import closedloop.settings as module

    monkeypatch.setenv("USE_REMOTE_USER", "True")
    try:
        fresh = importlib.reload(module)
        assert fresh.AUTHENTICATION_BACKENDS[0] == BACKEND
        index = fresh.MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware")
        assert fresh.MIDDLEWARE[index + 1] == MIDDLEWARE
    finally:
        monkeypatch.delenv("USE_REMOTE_USER")
        importlib.reload(module)


def test_a_known_email_logs_the_user_in_case_insensitively(client, world):
    response = client.get("/", REMOTE_USER="Alice@Example.ORG")
    assert response.status_code == 200
    assert client.session["_auth_user_id"] == str(world.alice.pk)
    # the session persists on the next request, with or without the variable
    assert client.get("/", REMOTE_USER="alice@example.org").status_code == 200
    assert client.get("/").status_code == 200
    assert client.session["_auth_user_id"] == str(world.alice.pk)


def test_an_unknown_email_creates_a_user_without_a_password(client, world):
    response = client.get("/", REMOTE_USER="new.person@example.org")
    assert response.status_code == 403  # signed in, but a member of no account yet
    assert b"not a member of any active account" in response.content
    user = User.objects.get(email="new.person@example.org")
    assert not user.has_usable_password()
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_value_that_is_not_an_email_is_ignored_and_logged(client, world, caplog):
    with caplog.at_level(logging.WARNING, logger="closedloop.accounts.backends"):
        response = client.get("/", REMOTE_USER="jdoe")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    assert "is not an email address" in caplog.text
    assert not User.objects.filter(email__icontains="jdoe").exists()


def test_a_different_remote_user_replaces_the_session_user(client, world):
    client.get("/", REMOTE_USER="alice@example.org")
    client.get("/", REMOTE_USER="bob@example.org")
    assert client.session["_auth_user_id"] == str(world.bob.pk)


def test_an_inactive_user_is_not_logged_in(client, world):
    User.objects.filter(pk=world.bob.pk).update(is_active=False)
    response = client.get("/", REMOTE_USER="bob@example.org")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_the_tracking_url_works_without_remote_user(client, world):
    response = client.get("/trck/not-a-real-token/")
    # whatever the tracking view answers, it is not the login redirect
    assert not (response.status_code == 302 and "/accounts/login/" in response.get("Location", ""))
    response = client.get("/trck/not-a-real-token/", REMOTE_USER="alice@example.org")
    assert "_auth_user_id" not in client.session


def test_password_login_still_works(client, world):
    response = client.post(
        "/accounts/login/", {"username": "bob@example.org", "password": world.password}
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(world.bob.pk)
