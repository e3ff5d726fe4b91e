"""``closedloop import-orgunits FILE --account SLUG --parents "A,B" --name COL …``

Runs the import as a Job in this process, printing progress and a summary. Exits with an
error when nothing was imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.models import Account
from closedloop.jobs.models import JobStatus
from closedloop.jobs.runtime import enqueue_job, execute_job
from closedloop.registry.importer import ImportOptions
from closedloop.registry.models import ValidationStatus
from closedloop.registry.tasks import IMPORT_KIND  # importing it registers the job kind


def split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Command(BaseCommand):
    help = "Import an org-unit hierarchy (one row per leaf, one column per parent level)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # our --version is the source version number, not the program's version
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV or XLSX file")
        parser.add_argument("--account", required=True, help="account slug")
        parser.add_argument("--parents", default="", help='parent columns, top first: "A,B,C"')
        parser.add_argument("--name", required=True, help="column with the unit names")
        parser.add_argument("--ref", help="column with external references")
        parser.add_argument("--code", help="column with codes")
        parser.add_argument("--lat", help="latitude column")
        parser.add_argument("--lon", help="longitude column")
        parser.add_argument("--type-names", default="", help='one type per level: "A,B,…"')
        parser.add_argument("--type-column", help="column giving each row's own type")
        parser.add_argument("--leaf-type", help="type of the units named in --name")
        parser.add_argument("--delimiter", help="CSV delimiter (detected if omitted)")
        parser.add_argument("--encoding", help="file encoding (detected if omitted)")
        parser.add_argument("--sheet", help="XLSX sheet name (first sheet if omitted)")
        parser.add_argument("--source", help="data source name (created if missing)")
        parser.add_argument("--version", type=int, help="source version number")
        parser.add_argument(
            "--only-valid", action="store_true", help="import the valid rows and skip the others"
        )
        parser.add_argument(
            "--status",
            default=ValidationStatus.NEW.value,
            choices=ValidationStatus.values,
            help="status of new units",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["file"]).expanduser().resolve()
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        account = Account.objects.filter(slug=opts["account"]).first()
        if account is None:
            raise CommandError(f"No account with slug {opts['account']!r}.")
        options = ImportOptions(
            parents=split_list(opts["parents"]),
            name=opts["name"],
            ref=opts["ref"],
            code=opts["code"],
            lat=opts["lat"],
            lon=opts["lon"],
            type_names=split_list(opts["type_names"]),
            leaf_type=opts["leaf_type"],
            delimiter=opts["delimiter"],
            encoding=opts["encoding"],
            sheet=opts["sheet"],
            source=opts["source"],
            version=opts["version"],
            only_valid=opts["only_valid"],
            status=opts["status"],
            type_column=opts["type_column"],
        )
        job = enqueue_job(
            account=account,
            kind=IMPORT_KIND,
            run_now=True,
            title=f"Import {path.name}",
            params={"file": str(path), "filename": path.name, "options": options.to_json()},
        )
        finished = execute_job(job.pk, worker="cli", echo=self.stdout.write)
        if finished is None or finished.status != JobStatus.SUCCEEDED:
            message = finished.error if finished else "the job was taken by another worker"
            raise CommandError(f"Nothing was imported: {message}")
        result = finished.result or {}
        if not result.get("rows_imported"):
            raise CommandError("Nothing was imported.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {result['total_created']} units created, job #{finished.pk}."
            )
        )
