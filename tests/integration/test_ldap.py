"""LDAP sign-in against a real slapd: the login form and ``authenticate()`` bind with the
directory password, users are matched or created by email, wrong passwords fail."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import authenticate

from .slapd import LdapUser, Slapd, find_binary

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

LOGIN = "/accounts/login/"
LENA = LdapUser(uid="lena", mail="Lena.Ldap@Example.org", password="ldap-pass-123", cn="Lena Ldap")
BOB = LdapUser(uid="bob", mail="bob@example.org", password="bob-ldap-pw", cn="Bob Directory")


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    if find_binary("slapd") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                "slapd is not installed; CI must run the LDAP tests (apt-get install slapd)."
            )
        pytest.skip("slapd is not installed (apt-get install slapd ldap-utils).")
    pytest.importorskip("django_auth_ldap")
    server = Slapd(root=tmp_path / "ldap", users=[LENA, BOB]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ldap_settings(slapd: Slapd, settings, monkeypatch):
    """The settings module's own LDAP wiring, built from the environment variables."""
    import closedloop.settings as module

    env = {
        "AUTH_LDAP_SERVER_URI": slapd.uri,
        "AUTH_LDAP_BIND_DN": slapd.admin_dn,
        "AUTH_LDAP_BIND_PASSWORD": slapd.admin_password,
        "AUTH_LDAP_USER_SEARCH_BASE": slapd.people_dn,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        fresh = importlib.reload(module)
        for name in dir(fresh):
            if name.startswith("AUTH_LDAP_"):
                setattr(settings, name, getattr(fresh, name))
        settings.AUTHENTICATION_BACKENDS = fresh.AUTHENTICATION_BACKENDS
    finally:
        for key in env:
            monkeypatch.delenv(key)
        importlib.reload(module)
    assert settings.AUTHENTICATION_BACKENDS[-1] == "closedloop.accounts.backends.EmailLDAPBackend"
    return settings


def test_the_login_form_signs_in_with_the_ldap_password(client, world, ldap_settings):
    from closedloop.accounts.models import User

    response = client.post(LOGIN, {"username": "lena.ldap@example.org", "password": LENA.password})
    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(email="lena.ldap@example.org")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert user.full_name == "Lena Ldap"
    assert not user.has_usable_password()


def test_a_wrong_ldap_password_fails(client, world, ldap_settings):
    from closedloop.accounts.models import User

    response = client.post(LOGIN, {"username": "lena.ldap@example.org", "password": "nope"})
    assert response.status_code == 200
    assert b'data-testid="login-error"' in response.content
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(email__iexact="lena.ldap@example.org").exists()
    assert authenticate(username="nobody@example.org", password="x") is None


def test_authenticate_matches_an_existing_user_by_email(world, ldap_settings):
    from closedloop.accounts.models import User

    user = authenticate(username="BOB@example.org", password=BOB.password)
    assert user is not None and user.pk == world.bob.pk
    assert User.objects.filter(email__iexact="bob@example.org").count() == 1
    # the local password still works too
    assert authenticate(username="bob@example.org", password=world.password) == world.bob


def test_an_unreachable_server_fails_closed(world, ldap_settings, slapd):
    slapd.stop()
    assert authenticate(username="lena.ldap@example.org", password=LENA.password) is None
