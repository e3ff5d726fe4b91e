"""Account, user, membership and bulk-import services."""

from __future__ import annotations

import pytest
from django.core import mail

from closedloop.accounts import services
from closedloop.accounts.models import Account, Membership, Role, User
from closedloop.core.models import AuditEntry
from closedloop.core.tenancy import account_scope

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_account_create_makes_a_unique_slug_and_an_admin(db):
    first = services.account_create(
        name="Ministry of Health", admin_email="a@x.org", admin_password="pw"
    )
    second = services.account_create(
        name="Ministry of Health", admin_email="b@x.org", admin_password="pw"
    )
    third = services.account_create(
        name="Ministry  of  Health!", admin_email="a@x.org", admin_password=None
    )
    assert [first.slug, second.slug, third.slug] == [
        "ministry-of-health",
        "ministry-of-health-2",
        "ministry-of-health-3",
    ]
    admin = User.objects.get(email="a@x.org")
    assert admin.check_password("pw")  # an existing user keeps their password
    roles = set(Membership.objects.filter(user=admin).values_list("account__slug", "role"))
    assert roles == {("ministry-of-health", "admin"), ("ministry-of-health-3", "admin")}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "  "}, "needs a name"),
        ({"time_zone": "Mars/Olympus"}, "not a known time zone"),
        ({"admin_email": "nope"}, "not a valid email"),
    ],
)
def test_account_create_refuses_bad_input_and_leaves_nothing(db, kwargs, message):
    args = {"name": "X", "admin_email": "a@x.org", "admin_password": "pw"} | kwargs
    with pytest.raises(services.AccountsError, match=message):
        services.account_create(**args)
    assert not Account.objects.exists()
    assert not User.objects.exists()


def test_user_create_normalises_the_email_and_refuses_duplicates(db):
    user = services.user_create(email="  Mixed.Case@Example.ORG ", password="pw", full_name=" M ")
    assert (user.email, user.full_name) == ("mixed.case@example.org", "M")
    with pytest.raises(services.AccountsError, match="already exists"):
        services.user_create(email="MIXED.case@example.org")


def test_user_create_without_password_makes_an_unusable_one(db):
    assert not services.user_create(email="x@example.org").has_usable_password()


def test_membership_update_records_before_and_after(world):
    services.membership_update(
        account=world.account,
        actor=world.alice,
        membership=world.sam_membership,
        role=Role.MANAGER,
        scope_units=[],
    )
    with account_scope(world.account):
        entry = AuditEntry.objects.filter(object_type="accounts.membership").latest("id")
    assert entry.changes == {
        "role": ["supervisor", "manager"],
        "scope": [["North"], []],
    }


def test_membership_update_of_another_account_is_refused(world):
    from django.http import Http404

    with pytest.raises(Http404):
        services.membership_update(
            account=world.account,
            actor=world.alice,
            membership=world.charlie_membership,
            role=Role.VIEWER,
        )


def test_membership_deactivate_of_the_only_admin_is_refused(world):
    with pytest.raises(services.AccountsError, match="last administrator"):
        services.membership_deactivate(
            account=world.other_account, actor=world.charlie, membership=world.charlie_membership
        )


CSV = b"email,name\nNew.One@example.org,New One\nbob@example.org,Bob\ncharlie@example.org,C\n"


def test_users_import_creates_adds_and_counts_members(world):
    with account_scope(world.account):
        result = services.users_import_csv(
            account=world.account, actor=world.alice, path_or_bytes=CSV, name_column="name"
        )
    assert (result.created, result.added, result.already_members) == (1, 1, 1)
    assert result.emailed == ["new.one@example.org"]
    new = User.objects.get(email="new.one@example.org")
    assert new.full_name == "New One" and not new.has_usable_password()
    assert Membership.objects.get(user=new).role == Role.INSTRUCTOR
    assert Membership.objects.filter(user=world.charlie, account=world.account).exists()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.one@example.org"]


def test_users_import_reports_every_bad_row_and_writes_nothing(world):
    data = b"email\nok@example.org\n\nnot-an-email\nOK@example.org\n,\n"
    with pytest.raises(services.UsersImportError) as info:
        services.users_import_csv(account=world.account, actor=None, path_or_bytes=data)
    errors = info.value.errors
    assert errors == [
        "Row 3: the email is missing.",
        "Row 4: “not-an-email” is not a valid email address.",
        "Row 5: ok@example.org is already on row 2.",
    ]
    assert not User.objects.filter(email="ok@example.org").exists()
    assert mail.outbox == []


def test_users_import_names_a_missing_column(world):
    with pytest.raises(services.UsersImportError, match="Column “mail” is not in the file"):
        services.users_import_csv(
            account=world.account, actor=None, path_or_bytes=CSV, email_column="mail"
        )


def test_users_import_refuses_an_empty_file_and_a_bad_role(world):
    with pytest.raises(services.UsersImportError, match="no rows"):
        services.users_import_csv(account=world.account, actor=None, path_or_bytes=b"email\n")
    with pytest.raises(services.AccountsError, match="not a role"):
        services.users_import_csv(account=world.account, actor=None, path_or_bytes=CSV, role="pope")


def test_users_import_rolls_back_if_a_later_step_fails(world, monkeypatch):
    calls = {"n": 0}
    real = services.membership_add

    def failing(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(services, "membership_add", failing)
    with pytest.raises(RuntimeError):
        services.users_import_csv(account=world.account, actor=None, path_or_bytes=CSV)
    assert not User.objects.filter(email="new.one@example.org").exists()
    assert mail.outbox == []
