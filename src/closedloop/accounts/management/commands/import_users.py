from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.management.commands._common import account_by_slug, check_role
from closedloop.accounts.services import UsersImportError, users_import_csv
from closedloop.core.tenancy import account_scope


class Command(BaseCommand):
    help = (
        "Create users from a CSV or XLSX file and give them a role in an account. "
        "Every row is checked first: a bad file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--account", required=True, metavar="SLUG")
        parser.add_argument("--email-column", default="email")
        parser.add_argument("--role", default="instructor")
        parser.add_argument("--name-column", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        account = account_by_slug(options["account"])
        role = check_role(options["role"])
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"The file {path} does not exist.")
        try:
            with account_scope(account):
                result = users_import_csv(
                    account=account,
                    actor=None,
                    path_or_bytes=path,
                    email_column=options["email_column"],
                    role=role,
                    name_column=options["name_column"],
                )
        except UsersImportError as exc:
            raise CommandError("Nothing was imported:\n  " + "\n  ".join(exc.errors)) from None
        self.stdout.write(
            f"{result.created} users created, {result.added} existing users added, "
            f"{result.already_members} already members; "
            f"{len(result.emailed)} emailed a link to set a password."
        )
