from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.management.commands._common import account_by_slug, check_role
from closedloop.accounts.services import AccountsError, member_invite
from closedloop.core.tenancy import account_scope


class Command(BaseCommand):
    help = (
        "Create a user and give them a role in an account (an existing user just gets the "
        "role). Without --password, a new user is emailed a link to set one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--account", required=True, metavar="SLUG")
        parser.add_argument("--role", required=True, help="admin, manager, supervisor, …")
        parser.add_argument("--password", metavar="PW")
        parser.add_argument("--name", default="", help="The user's full name.")
        parser.add_argument(
            "--scope",
            nargs="+",
            type=int,
            default=[],
            metavar="ORGUNIT_ID",
            help="Org units the user is limited to (required for supervisors).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = account_by_slug(options["account"])
        role = check_role(options["role"])
        try:
            with account_scope(account):
                membership, created = member_invite(
                    account=account,
                    actor=None,
                    email=options["email"],
                    role=role,
                    full_name=options["name"],
                    scope_units=options["scope"],
                    password=options["password"],
                )
        except AccountsError as exc:
            raise CommandError(str(exc)) from None
        user = membership.user
        if not created:
            self.stdout.write(f"Added existing user {user.email} to {account.slug} as {role}.")
        elif user.has_usable_password():
            self.stdout.write(f"Created {user.email} in {account.slug} as {role}.")
        else:
            self.stdout.write(
                f"Created {user.email} in {account.slug} as {role}; "
                "emailed a link to set a password."
            )
