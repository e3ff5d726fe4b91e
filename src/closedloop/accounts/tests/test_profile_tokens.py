"""Profile page, personal API tokens and ``user_for_token``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from closedloop.accounts.models import ApiToken, hash_token
from closedloop.accounts.services import token_create, token_revoke
from closedloop.accounts.tokens import user_for_token

pytestmark = pytest.mark.django_db


def test_it_shows_the_profile(client_for, world):
    response = client_for(world.alice).get("/accounts/profile/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "alice@example.org" in body
    assert "You have no API tokens" in body


def test_it_saves_name_and_language(client_for, world, settings):
    client = client_for(world.alice)
    response = client.post("/accounts/profile/", {"full_name": "Alice A.", "language": "ar"})
    assert response.status_code == 302
    world.alice.refresh_from_db()
    assert (world.alice.full_name, world.alice.language) == ("Alice A.", "ar")
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ar"


def test_it_rejects_an_unknown_language(client_for, world):
    response = client_for(world.alice).post(
        "/accounts/profile/", {"full_name": "Alice", "language": "xx"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["language"]
    world.alice.refresh_from_db()
    assert world.alice.language == ""


def test_it_creates_a_token_and_shows_the_raw_value_once(client_for, world):
    client = client_for(world.alice)
    response = client.post("/accounts/tokens/", {"name": "reporting script"})
    assert response.status_code == 200
    raw = response.context["raw_token"]
    assert raw.startswith("cl_") and raw in response.content.decode()
    token = ApiToken.objects.get(user=world.alice)
    assert token.key_hash == hash_token(raw)
    assert raw not in {token.key_hash, token.hint, token.name}
    assert token.hint == raw[:8]
    again = client.get("/accounts/profile/").content.decode()
    assert raw not in again
    assert "reporting script" in again


def test_the_raw_token_is_not_kept_in_the_session(client_for, world):
    from django.contrib.sessions.models import Session

    client = client_for(world.alice)
    raw = client.post("/accounts/tokens/", {"name": "x"}).context["raw_token"]
    for session in Session.objects.all():
        assert raw not in str(session.get_decoded())


def test_a_token_needs_a_name(client_for, world):
    response = client_for(world.alice).post("/accounts/tokens/", {"name": "  "})
    assert response.status_code == 200
    assert response.context["token_form"].errors["name"]
    assert not ApiToken.objects.exists()


def test_it_revokes_a_token(client_for, world):
    token, raw = token_create(user=world.alice, name="old")
    response = client_for(world.alice).post(f"/accounts/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert user_for_token(raw) is None


def test_someone_elses_token_is_a_404(client_for, world):
    token, raw = token_create(user=world.alice, name="alice's")
    for user in (world.charlie, world.bob):
        response = client_for(user).post(f"/accounts/tokens/{token.pk}/revoke/")
        assert response.status_code == 404
    assert user_for_token(raw) == world.alice


def test_revoking_needs_a_post(client_for, world):
    token, _raw = token_create(user=world.alice, name="t")
    assert client_for(world.alice).get(f"/accounts/tokens/{token.pk}/revoke/").status_code == 405


def test_token_revoke_refuses_another_users_token(world):
    from django.http import Http404

    token, _raw = token_create(user=world.alice, name="t")
    with pytest.raises(Http404):
        token_revoke(user=world.bob, token=token)


def test_user_for_token_finds_the_owner_and_records_the_use(world):
    token, raw = token_create(user=world.bob, name="t")
    assert user_for_token(raw) == world.bob
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_user_for_token_writes_last_used_at_at_most_once_a_minute(world, django_assert_num_queries):
    token, raw = token_create(user=world.bob, name="t")
    recent = timezone.now() - timedelta(seconds=10)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=recent)
    with django_assert_num_queries(1):
        assert user_for_token(raw) == world.bob
    token.refresh_from_db()
    assert token.last_used_at == recent
    old = timezone.now() - timedelta(minutes=5)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=old)
    with django_assert_num_queries(2):
        user_for_token(raw)
    token.refresh_from_db()
    assert token.last_used_at > old


@pytest.mark.parametrize("raw", ["", "cl_nope", "x" * 500])
def test_user_for_token_refuses_unknown_values(world, raw):
    token_create(user=world.bob, name="t")
    assert user_for_token(raw) is None


def test_user_for_token_refuses_deactivated_users(world):
    _token, raw = token_create(user=world.bob, name="t")
    world.bob.is_active = False
    world.bob.save()
    assert user_for_token(raw) is None


def test_the_profile_lists_only_my_tokens(client_for, world, django_assert_max_num_queries):
    for n in range(5):
        token_create(user=world.alice, name=f"alice {n}")
    token_create(user=world.charlie, name="charlie's secret")
    client = client_for(world.alice)
    with django_assert_max_num_queries(8):
        body = client.get("/accounts/profile/").content.decode()
    assert "alice 4" in body
    assert "charlie&#x27;s secret" not in body and "charlie's secret" not in body
