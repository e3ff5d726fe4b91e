from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.services import AccountsError, account_create


class Command(BaseCommand):
    help = "Create an account with its first administrator; prints only the new slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The account's name, e.g. “Ministry of Education”.")
        parser.add_argument("--admin", required=True, metavar="EMAIL", help="First admin's email.")
        parser.add_argument(
            "--password",
            metavar="PW",
            help="The admin's password (new users only; an existing user keeps theirs).",
        )
        parser.add_argument("--time-zone", default="UTC", metavar="TZ", help="e.g. Africa/Dakar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            account = account_create(
                name=options["name"],
                admin_email=options["admin"],
                admin_password=options["password"],
                time_zone=options["time_zone"],
            )
        except AccountsError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(account.slug)
