from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.models import User
from closedloop.accounts.services import AccountsError, token_create


class Command(BaseCommand):
    help = "Create a personal API token for a user; prints only the token (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="command line", help="What the token is for.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["email"].strip()).first()
        if user is None:
            raise CommandError(f"No user has the email address {options['email']}.")
        if not user.is_active:
            raise CommandError(f"The user {user.email} is deactivated.")
        try:
            _token, raw = token_create(user=user, name=options["name"])
        except AccountsError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(raw)
