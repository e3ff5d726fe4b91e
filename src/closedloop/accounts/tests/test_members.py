"""User management for account admins: list, add/invite, edit role and scope, deactivate."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from closedloop.accounts.models import Membership, Role, User
from closedloop.core.models import AuditEntry
from closedloop.core.tenancy import account_scope
from closedloop.core.testing.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

MEMBERS = "/accounts/members/"


@pytest.fixture(autouse=True)
def _locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.BASE_URL = "https://cl.example.net"


def _scope_ids(membership):
    with account_scope(membership.account):
        return sorted(membership.scope.values_list("pk", flat=True))


def test_alice_sees_the_members_with_role_scope_and_status(client_for, world):
    response = client_for(world.alice).get(MEMBERS)
    assert response.status_code == 200
    body = response.content.decode()
    for text in ("alice@example.org", "bob@example.org", "Supervisor", "North"):
        assert text in body
    assert "charlie@example.org" not in body


def test_the_members_list_has_a_fixed_number_of_queries(
    client_for, world, django_assert_max_num_queries
):
    with account_scope(world.account):
        for _n in range(30):
            m = MembershipFactory(account=world.account, user=UserFactory(), role=Role.SUPERVISOR)
            m.scope.set([world.region_north, world.region_south])
    client = client_for(world.alice)
    with django_assert_max_num_queries(10):
        response = client.get(MEMBERS)
    assert len(response.context["page"].object_list) == 33


def test_the_members_list_searches_by_name_or_email(client_for, world):
    response = client_for(world.alice).get(MEMBERS, {"q": "bob"})
    members = list(response.context["page"].object_list)
    assert [m.user.email for m in members] == ["bob@example.org"]
    response = client_for(world.alice).get(MEMBERS, {"q": "nobody-like-this"})
    assert "No user matches" in response.content.decode()


@pytest.mark.parametrize("who", ["bob", "sam", "charlie"])
def test_non_admins_and_outsiders_get_404_on_every_members_page(client_for, world, who):
    client = client_for(getattr(world, who))
    bob_m = world.bob_membership.pk
    if who == "charlie":  # admin of B: his own list, without anyone of A
        body = client.get(MEMBERS).content.decode()
        assert "charlie@example.org" in body and "bob@example.org" not in body
    else:
        assert client.get(MEMBERS).status_code == 404
    assert client.get(f"{MEMBERS}{bob_m}/").status_code == 404
    assert client.post(f"{MEMBERS}{bob_m}/deactivate/").status_code == 404
    world.bob_membership.refresh_from_db()
    assert world.bob_membership.is_active
    if who != "charlie":
        add = client.post(f"{MEMBERS}add/", {"email": "x@example.org", "role": "viewer"})
        assert add.status_code == 404
        assert client.get(f"{MEMBERS}units/", {"unit_q": "North"}).status_code == 404
        assert not User.objects.filter(email="x@example.org").exists()


def test_charlie_adding_someone_adds_them_to_b_not_a(client_for, world):
    client_for(world.charlie).post(f"{MEMBERS}add/", {"email": "bob@example.org", "role": "viewer"})
    accounts = set(Membership.objects.filter(user=world.bob).values_list("account", flat=True))
    assert accounts == {world.account.pk, world.other_account.pk}
    body = client_for(world.charlie).get(f"{MEMBERS}units/", {"unit_q": "North"}).content.decode()
    assert "No org unit matches" in body


def test_charlie_as_admin_of_b_gets_404_for_memberships_of_a(client_for, world):
    client = client_for(world.charlie)
    bob_m = world.bob_membership.pk
    assert client.get(f"{MEMBERS}{bob_m}/").status_code == 404
    assert client.post(f"{MEMBERS}{bob_m}/", {"role": "admin"}).status_code == 404
    assert client.post(f"{MEMBERS}{bob_m}/deactivate/").status_code == 404
    world.bob_membership.refresh_from_db()
    assert world.bob_membership.role == Role.VIEWER and world.bob_membership.is_active


def test_alice_gets_404_for_a_membership_of_account_b(client_for, world):
    client = client_for(world.alice)
    charlie_m = world.charlie_membership.pk
    assert client.get(f"{MEMBERS}{charlie_m}/").status_code == 404
    assert client.post(f"{MEMBERS}{charlie_m}/deactivate/").status_code == 404


def test_adding_a_new_user_creates_them_without_password_and_emails_a_link(client_for, world):
    response = client_for(world.alice).post(
        f"{MEMBERS}add/",
        {"email": "New.Person@Example.org", "full_name": "New Person", "role": "manager"},
    )
    assert response.status_code == 302
    user = User.objects.get(email="new.person@example.org")
    assert not user.has_usable_password()
    membership = Membership.objects.get(user=user)
    assert (membership.account, membership.role) == (world.account, Role.MANAGER)
    assert len(mail.outbox) == 1
    assert "Ministry A" in mail.outbox[0].subject
    link = re.search(
        r"https://cl\.example\.net(/accounts/password/reset/\S+/)", mail.outbox[0].body
    )
    assert link
    response = client_for(world.bob).get(link.group(1), follow=True)
    assert response.context["validlink"]
    with account_scope(world.account):
        entry = AuditEntry.objects.get(object_type="accounts.membership", object_id=membership.pk)
    assert entry.actor == world.alice
    assert entry.changes["role"] == [None, "manager"]


def test_the_invited_user_sets_a_password_through_the_link_and_logs_in(client, world):
    client.force_login(world.alice)
    client.post(f"{MEMBERS}add/", {"email": "newbie@example.org", "role": "viewer"})
    client.logout()
    path = re.search(r"https?://\S+?(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_url = client.get(path, follow=True).redirect_chain[-1][0]
    pw = "a fresh long passphrase 9"
    assert client.post(form_url, {"new_password1": pw, "new_password2": pw}).status_code == 302
    response = client.post("/accounts/login/", {"username": "newbie@example.org", "password": pw})
    assert response.status_code == 302


def test_adding_an_existing_user_only_adds_a_membership(client_for, world):
    response = client_for(world.alice).post(
        f"{MEMBERS}add/", {"email": "CHARLIE@example.org", "role": "viewer"}
    )
    assert response.status_code == 302
    assert Membership.objects.filter(account=world.account, user=world.charlie).exists()
    assert mail.outbox == []
    world.charlie.refresh_from_db()
    assert world.charlie.check_password(world.password)


def test_adding_someone_already_a_member_says_so(client_for, world):
    response = client_for(world.alice).post(
        f"{MEMBERS}add/", {"email": "bob@example.org", "role": "admin"}
    )
    assert response.status_code == 400
    assert "already a member" in response.content.decode()
    world.bob_membership.refresh_from_db()
    assert world.bob_membership.role == Role.VIEWER


@pytest.mark.parametrize(
    "data, field",
    [
        ({"email": "not-an-email", "role": "viewer"}, "email"),
        ({"email": "ok@example.org", "role": "emperor"}, "role"),
        ({"email": "ok@example.org", "role": "viewer", "scope": "abc"}, "scope"),
    ],
)
def test_adding_with_bad_input_shows_the_error_and_changes_nothing(client_for, world, data, field):
    response = client_for(world.alice).post(f"{MEMBERS}add/", data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not User.objects.filter(email="ok@example.org").exists()


def test_a_supervisor_needs_a_scope(client_for, world):
    response = client_for(world.alice).post(
        f"{MEMBERS}add/", {"email": "sup@example.org", "role": "supervisor"}
    )
    assert response.status_code == 400
    assert "at least one org unit" in response.content.decode()
    assert not User.objects.filter(email="sup@example.org").exists()


def test_scope_units_of_another_account_are_rejected(client_for, world):
    response = client_for(world.alice).post(
        f"{MEMBERS}add/",
        {"email": "sup@example.org", "role": "supervisor", "scope": [world.other_root.pk]},
    )
    assert response.status_code == 400
    assert "do not exist in this account" in response.content.decode()
    assert not User.objects.filter(email="sup@example.org").exists()
    response = client_for(world.alice).post(
        f"{MEMBERS}{world.sam_membership.pk}/",
        {"role": "supervisor", "scope": [world.region_south.pk, world.other_root.pk]},
    )
    assert response.status_code == 400
    assert _scope_ids(world.sam_membership) == [world.region_north.pk]


def test_alice_changes_role_and_scope(client_for, world):
    client = client_for(world.alice)
    response = client.get(f"{MEMBERS}{world.bob_membership.pk}/")
    assert response.status_code == 200
    response = client.post(
        f"{MEMBERS}{world.bob_membership.pk}/",
        {"role": "supervisor", "scope": [world.region_south.pk, world.district_n1.pk]},
    )
    assert response.status_code == 302
    world.bob_membership.refresh_from_db()
    assert world.bob_membership.role == Role.SUPERVISOR
    assert _scope_ids(world.bob_membership) == sorted([world.region_south.pk, world.district_n1.pk])
    with account_scope(world.account):
        entry = AuditEntry.objects.filter(object_id=world.bob_membership.pk).latest("id")
    assert entry.changes["role"] == ["viewer", "supervisor"]
    assert entry.changes["scope"] == [[], ["Northvale", "South"]]


def test_the_last_admin_cannot_be_demoted_or_deactivated(client_for, world):
    client = client_for(world.alice)
    response = client.post(f"{MEMBERS}{world.alice_membership.pk}/", {"role": "viewer"})
    assert response.status_code == 400
    assert "last administrator" in response.content.decode()
    response = client.post(f"{MEMBERS}{world.alice_membership.pk}/deactivate/", follow=True)
    assert "last administrator" in response.content.decode()
    world.alice_membership.refresh_from_db()
    assert world.alice_membership.is_active and world.alice_membership.role == Role.ADMIN


def test_alice_deactivates_and_reactivates_bob(client_for, world):
    client = client_for(world.alice)
    assert client.post(f"{MEMBERS}{world.bob_membership.pk}/deactivate/").status_code == 302
    world.bob_membership.refresh_from_db()
    assert not world.bob_membership.is_active
    bob = client_for(world.bob)
    assert bob.get("/accounts/profile/").context["current_account"] is None
    client = client_for(world.alice)
    assert client.post(f"{MEMBERS}{world.bob_membership.pk}/reactivate/").status_code == 302
    world.bob_membership.refresh_from_db()
    assert world.bob_membership.is_active


def test_unit_search_finds_units_of_this_account_only(client_for, world):
    client = client_for(world.alice)
    body = client.get(f"{MEMBERS}units/", {"unit_q": "north"}).content.decode()
    assert f'value="{world.region_north.pk}"' in body
    assert f'value="{world.district_n1.pk}"' in body
    assert "Southport" not in body
    body = client.get(f"{MEMBERS}units/", {"unit_q": "Elsewhere"}).content.decode()
    assert "No org unit matches" in body
    body = client.get(f"{MEMBERS}units/", {"unit_q": "n"}).content.decode()
    assert "at least two letters" in body


def test_the_users_and_audit_links_show_for_admins_only(client_for, world):
    alice = client_for(world.alice).get("/accounts/profile/").content.decode()
    assert 'href="/accounts/members/"' in alice and 'href="/accounts/audit/"' in alice
    bob = client_for(world.bob).get("/accounts/profile/").content.decode()
    assert 'href="/accounts/members/"' not in bob and 'href="/accounts/audit/"' not in bob
