"""``closedloop export-orgunits --account SLUG [--root ID] [--format csv|xlsx] -o FILE``"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.models import Account
from closedloop.core.tenancy import account_scope
from closedloop.registry.exporter import FORMATS, filter_units, write_export
from closedloop.registry.models import OrgUnit


class Command(BaseCommand):
    help = "Export org units (a subtree, or the whole tree) to CSV or XLSX."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="account slug")
        parser.add_argument("--root", type=int, help="id of the subtree's top unit")
        parser.add_argument("--format", choices=FORMATS, help="csv or xlsx (default: from -o)")
        parser.add_argument("--type", type=int, help="only units of this type id")
        parser.add_argument("--status", help="only units with this validation status")
        parser.add_argument("--search", help="only units whose name contains this text")
        parser.add_argument("-o", "--output", required=True, help="file to write")

    def handle(self, *args: Any, **opts: Any) -> None:
        account = Account.objects.filter(slug=opts["account"]).first()
        if account is None:
            raise CommandError(f"No account with slug {opts['account']!r}.")
        output = Path(opts["output"]).expanduser()
        fmt = opts["format"] or ("xlsx" if output.suffix.lower() == ".xlsx" else "csv")
        with account_scope(account):
            root = None
            if opts["root"] is not None:
                root = OrgUnit.objects.filter(pk=opts["root"]).first()
                if root is None:
                    raise CommandError(f"No org unit {opts['root']} in this account.")
            units = filter_units(
                OrgUnit.objects.all(),
                root=root,
                type_id=opts["type"],
                status=opts["status"],
                search=opts["search"],
            )
            rows = write_export(units, fmt, output)
        self.stdout.write(self.style.SUCCESS(f"Wrote {rows} units to {output}."))
