"""The account switcher."""

from __future__ import annotations

import pytest

from closedloop.accounts.middleware import SESSION_KEY
from closedloop.accounts.models import Membership, Role
from closedloop.core.testing.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def third(world):
    account = AccountFactory(name="Zeta Health", slug="zeta")
    MembershipFactory(account=account, user=world.alice, role=Role.VIEWER)
    return account


def test_it_switches_to_another_account_of_the_user(client_for, world, third):
    client = client_for(world.alice)
    assert "Zeta Health" in client.get("/accounts/profile/").content.decode()
    response = client.post(f"/accounts/switch/{third.pk}/")
    assert response.status_code == 302
    assert client.session[SESSION_KEY] == third.pk
    response = client.get("/accounts/profile/")
    assert response.context["current_account"] == third


def test_the_menu_lists_only_the_other_accounts(client_for, world, third):
    body = client_for(world.bob).get("/accounts/profile/").content.decode()
    assert "Switch to another account" not in body
    body = client_for(world.alice).get("/accounts/profile/").content.decode()
    assert "Switch to another account" in body and "Zeta Health" in body


def test_switching_into_an_account_without_membership_is_a_404(client_for, world):
    client = client_for(world.alice)
    response = client.post(f"/accounts/switch/{world.other_account.pk}/")
    assert response.status_code == 404
    assert SESSION_KEY not in client.session


def test_switching_into_an_account_with_a_deactivated_membership_is_a_404(client_for, world, third):
    Membership.objects.filter(account=third, user=world.alice).update(is_active=False)
    assert client_for(world.alice).post(f"/accounts/switch/{third.pk}/").status_code == 404


def test_switching_into_a_missing_account_is_a_404(client_for, world):
    assert client_for(world.charlie).post("/accounts/switch/999999/").status_code == 404


def test_switching_needs_a_post(client_for, world, third):
    assert client_for(world.alice).get(f"/accounts/switch/{third.pk}/").status_code == 405


def test_switching_ignores_an_unsafe_next_url(client_for, world, third):
    response = client_for(world.alice).post(
        f"/accounts/switch/{third.pk}/", {"next": "https://evil.example.com/"}
    )
    assert response["Location"] == "/"
