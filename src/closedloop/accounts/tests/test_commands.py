"""The create-account, create-user, import-users and create-token commands."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from closedloop.accounts.models import Account, ApiToken, Membership, Role, User, hash_token
from closedloop.core.tenancy import account_scope

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_account_prints_only_the_slug(db):
    out = run(
        "create_account",
        "Health Ministry",
        "--admin",
        "Boss@x.org",
        "--password",
        "s3cret pw",
        "--time-zone",
        "Africa/Dakar",
    )
    assert out == "health-ministry\n"
    account = Account.objects.get(slug="health-ministry")
    assert account.time_zone == "Africa/Dakar"
    boss = User.objects.get(email="boss@x.org")
    assert boss.check_password("s3cret pw")
    assert Membership.objects.get(user=boss).role == Role.ADMIN
    assert (
        run("create_account", "Health Ministry", "--admin", "boss@x.org") == "health-ministry-2\n"
    )


def test_create_account_refuses_a_bad_time_zone(db):
    with pytest.raises(CommandError, match="not a known time zone"):
        run(
            "create_account", "X", "--admin", "a@x.org", "--password", "p", "--time-zone", "Nowhere"
        )
    assert not Account.objects.exists()


def test_create_user_with_password_and_scope(world):
    out = run(
        "create_user",
        "Sup@Example.org",
        "--account",
        "ministry-a",
        "--role",
        "supervisor",
        "--password",
        "pw 12345 long",
        "--name",
        "Sue Pervisor",
        "--scope",
        str(world.region_south.pk),
        str(world.district_n1.pk),
    )
    assert "Created sup@example.org in ministry-a as supervisor" in out
    user = User.objects.get(email="sup@example.org")
    assert user.check_password("pw 12345 long") and user.full_name == "Sue Pervisor"
    membership = Membership.objects.get(user=user)
    with account_scope(world.account):
        assert set(membership.scope.all()) == {world.region_south, world.district_n1}
    assert mail.outbox == []


def test_create_user_without_password_emails_a_link(world):
    out = run("create_user", "new@example.org", "--account", "ministry-a", "--role", "viewer")
    assert "emailed a link" in out
    assert mail.outbox[0].to == ["new@example.org"]


def test_create_user_adds_an_existing_user_to_another_account(world):
    out = run("create_user", "charlie@example.org", "--account", "ministry-a", "--role", "viewer")
    assert "Added existing user charlie@example.org" in out
    assert Membership.objects.filter(user=world.charlie, account=world.account).exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["x@example.org", "--account", "nope", "--role", "viewer"],
            "No account has the slug “nope”",
        ),
        (["x@example.org", "--account", "ministry-a", "--role", "king"], "“king” is not a role"),
        (["bob@example.org", "--account", "ministry-a", "--role", "viewer"], "already a member"),
        (["bad-email", "--account", "ministry-a", "--role", "viewer"], "not a valid email"),
        (
            ["x@example.org", "--account", "ministry-a", "--role", "supervisor"],
            "at least one org unit",
        ),
    ],
)
def test_create_user_errors(world, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_user", *args)
    assert not User.objects.filter(email="x@example.org").exists()


def test_create_user_refuses_scope_units_of_another_account(world):
    with pytest.raises(CommandError, match=f"do not exist in this account: {world.other_root.pk}"):
        run(
            "create_user",
            "x@example.org",
            "--account",
            "ministry-a",
            "--role",
            "supervisor",
            "--scope",
            str(world.other_root.pk),
        )
    assert not User.objects.filter(email="x@example.org").exists()


def test_import_users_prints_a_summary(world, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text(
        "Mail;Name\na1@example.org;A One\nbob@example.org;Bob\nCharlie@example.org;C\n",
        encoding="utf-8",
    )
    out = run(
        "import_users",
        str(path),
        "--account",
        "ministry-a",
        "--email-column",
        "Mail",
        "--name-column",
        "Name",
        "--role",
        "collector",
    )
    assert out == (
        "1 users created, 1 existing users added, 1 already members; "
        "1 emailed a link to set a password.\n"
    )
    assert Membership.objects.get(user__email="a1@example.org").role == Role.COLLECTOR


def test_import_users_lists_bad_rows_with_numbers_and_imports_nothing(world, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("email\ngood@example.org\nbroken\ngood@example.org\n", encoding="utf-8")
    with pytest.raises(CommandError) as info:
        run("import_users", str(path), "--account", "ministry-a")
    text = str(info.value)
    assert "Nothing was imported" in text
    assert "Row 3: “broken” is not a valid email address." in text
    assert "Row 4: good@example.org is already on row 2." in text
    assert not User.objects.filter(email="good@example.org").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--account", "nope"], "No account has the slug"),
        (["--account", "ministry-a", "--role", "tsar"], "not a role"),
        (["--account", "ministry-a", "--email-column", "mail"], "Column “mail” is not in the file"),
    ],
)
def test_import_users_errors(world, tmp_path, args, message):
    path = tmp_path / "users.csv"
    path.write_text("email\nz@example.org\n", encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        run("import_users", str(path), *args)


def test_import_users_missing_file(world, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("import_users", str(tmp_path / "nope.csv"), "--account", "ministry-a")


def test_create_token_prints_only_the_raw_token(world):
    out = run("create_token", "BOB@example.org", "--name", "etl")
    raw = out.strip()
    assert out == raw + "\n" and raw.startswith("cl_")
    token = ApiToken.objects.get(user=world.bob)
    assert token.key_hash == hash_token(raw) and token.name == "etl"


def test_create_token_for_an_unknown_or_deactivated_user(world):
    with pytest.raises(CommandError, match="No user has the email address"):
        run("create_token", "ghost@example.org")
    User.objects.filter(pk=world.bob.pk).update(is_active=False)
    with pytest.raises(CommandError, match="deactivated"):
        run("create_token", "bob@example.org")
    assert not ApiToken.objects.exists()


def test_the_cli_maps_hyphens_to_the_commands(db, capsys, settings):
    from closedloop.cli import main

    assert main(["create-account", "Via CLI", "--admin", "cli@x.org", "--password", "pw"]) == 0
    assert capsys.readouterr().out == "via-cli\n"
