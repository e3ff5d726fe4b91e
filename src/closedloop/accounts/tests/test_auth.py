"""Login, throttling, logout, password reset and password change."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from closedloop.accounts.models import User

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def _locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.BASE_URL = "https://closedloop.example.net"


def _login(client, email, password, **extra):
    return client.post(LOGIN, {"username": email, "password": password}, **extra)


def test_it_logs_in_with_email_and_password(client, world):
    response = _login(client, "alice@example.org", world.password)
    assert response.status_code == 302
    assert response["Location"] == reverse("web:home")
    assert client.session["_auth_user_id"] == str(world.alice.pk)


def test_it_compares_the_email_case_insensitively(client, world):
    response = _login(client, "  ALICE@Example.ORG ", world.password)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(world.alice.pk)


def test_it_refuses_a_wrong_password(client, world):
    response = _login(client, "alice@example.org", "wrong password")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert response.context["form"].non_field_errors()
    assert "Too many failed logins" not in response.content.decode()


def test_it_refuses_a_deactivated_user(client, world):
    User.objects.filter(pk=world.bob.pk).update(is_active=False)
    response = _login(client, "bob@example.org", world.password)
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_sets_the_language_cookie_from_the_users_preference(client, world, settings):
    User.objects.filter(pk=world.alice.pk).update(language="fr")
    response = _login(client, "alice@example.org", world.password)
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"


def test_throttling_refuses_even_the_right_password_after_too_many_failures(
    client, world, settings
):
    settings.LOGIN_THROTTLE_ATTEMPTS = 3
    settings.LOGIN_THROTTLE_SECONDS = 600
    for _ in range(2):
        response = _login(client, "alice@example.org", "nope")
        assert "Too many failed logins" not in response.content.decode()
    response = _login(client, "alice@example.org", "nope")
    assert "Too many failed logins for this email address. Try again in 10 minutes." in (
        response.content.decode()
    )
    response = _login(client, "ALICE@example.org", world.password)
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "Try again in 10 minutes" in response.content.decode()


def test_throttling_counts_per_address(client, world, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 2
    for _ in range(2):
        _login(client, "alice@example.org", "nope", REMOTE_ADDR="10.0.0.1")
    response = _login(client, "alice@example.org", world.password, REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 302


def test_throttling_lets_people_in_again_after_the_pause(client, world, settings, monkeypatch):
    import time

    settings.LOGIN_THROTTLE_ATTEMPTS = 2
    settings.LOGIN_THROTTLE_SECONDS = 60
    for _ in range(2):
        _login(client, "alice@example.org", "nope")
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    response = _login(client, "alice@example.org", world.password)
    assert response.status_code == 302


def test_a_successful_login_resets_the_failure_count(client, world, settings):
    settings.LOGIN_THROTTLE_ATTEMPTS = 2
    _login(client, "alice@example.org", "nope")
    assert _login(client, "alice@example.org", world.password).status_code == 302
    client.logout()
    _login(client, "alice@example.org", "nope")
    assert _login(client, "alice@example.org", world.password).status_code == 302


def test_logout_needs_a_post(client_for, world):
    client = client_for(world.alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def _reset_link(message) -> str:
    match = re.search(
        r"https://closedloop\.example\.net(/accounts/password/reset/\S+/)", message.body
    )
    assert match, message.body
    return match.group(1)


def test_password_reset_emails_a_link_on_base_url_that_sets_a_new_password(client, world):
    response = client.post("/accounts/password/reset/", {"email": "ALICE@example.org"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.org"]
    link = _reset_link(mail.outbox[0])
    response = client.get(link, follow=True)
    assert response.status_code == 200
    assert response.context["validlink"]
    form_url = response.redirect_chain[-1][0]
    new = "a much better passphrase 42"
    response = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password_reset_complete")
    world.alice.refresh_from_db()
    assert world.alice.check_password(new)


def test_password_reset_for_an_unknown_email_sends_nothing_but_looks_the_same(client, world):
    response = client.post("/accounts/password/reset/", {"email": "nobody@example.org"})
    assert response.status_code == 302
    assert mail.outbox == []


def test_a_used_reset_link_no_longer_works(client, world):
    client.post("/accounts/password/reset/", {"email": "alice@example.org"})
    link = _reset_link(mail.outbox[0])
    response = client.get(link, follow=True)
    form_url = response.redirect_chain[-1][0]
    new = "a much better passphrase 42"
    client.post(form_url, {"new_password1": new, "new_password2": new})
    response = client.get(link, follow=True)
    assert response.context["validlink"] is False
    assert "This link no longer works" in response.content.decode()


def test_password_change_needs_the_old_password(client_for, world):
    client = client_for(world.alice)
    new = "another long passphrase 7"
    response = client.post(
        "/accounts/password/change/",
        {"old_password": "wrong", "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 200
    response = client.post(
        "/accounts/password/change/",
        {"old_password": world.password, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    world.alice.refresh_from_db()
    assert world.alice.check_password(new)


def test_password_change_rejects_a_weak_password(client_for, world):
    client = client_for(world.alice)
    response = client.post(
        "/accounts/password/change/",
        {"old_password": world.password, "new_password1": "123", "new_password2": "123"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["new_password2"]


def test_anonymous_users_are_sent_to_the_login_page(client, world):
    response = client.get("/accounts/profile/")
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
