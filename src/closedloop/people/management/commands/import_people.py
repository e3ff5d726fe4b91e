"""``closedloop import-people FILE --account SLUG [options]``: the people import as a Job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.models import Account
from closedloop.jobs.models import JobStatus
from closedloop.jobs.runtime import enqueue_job, execute_job
from closedloop.people.importer import UNIT_MATCHES
from closedloop.people.tasks import JOB_KIND


class Command(BaseCommand):
    help = "Import people from a CSV or XLSX file into an account (runs as a Job, in this process)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV or XLSX file, header in the first row")
        parser.add_argument("--account", required=True, help="slug of the account")
        parser.add_argument("--name-column", default="name")
        parser.add_argument("--email-column", default="", help="default: a column named email")
        parser.add_argument("--phone-column", default="", help="default: a column named phone")
        parser.add_argument("--external-column", default="")
        parser.add_argument("--external-system", default="", help="e.g. moodle")
        parser.add_argument("--unit-column", default="")
        parser.add_argument("--unit-match", default="code", choices=UNIT_MATCHES)
        parser.add_argument("--cohorts-column", default="")
        parser.add_argument("--language-column", default="")
        parser.add_argument(
            "--field",
            action="append",
            default=[],
            metavar="COLUMN=KEY",
            help="import COLUMN into the custom field KEY (repeatable)",
        )
        parser.add_argument("--encoding", default="")
        parser.add_argument("--delimiter", default="")
        parser.add_argument(
            "--only-valid",
            action="store_true",
            help="import the valid rows even if others have problems",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["file"]).expanduser().resolve()
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        account = Account.objects.filter(slug=opts["account"]).first()
        if account is None:
            raise CommandError(f"No account with the slug {opts['account']!r}.")
        job = enqueue_job(
            account=account,
            kind=JOB_KIND,
            title=f"Import people from {path.name}",
            params={"file": str(path), "filename": path.name, "options": self._options(opts)},
            run_now=True,
        )
        finished = execute_job(job.pk, worker="cli", echo=self.stdout.write)
        if finished is None:
            raise CommandError(f"Job {job.pk} was taken by another worker.")
        if finished.status != JobStatus.SUCCEEDED:
            raise CommandError(finished.error or finished.message)
        result = finished.result or {}
        self.stdout.write(
            self.style.SUCCESS(
                f"Job {finished.pk}: {result.get('created', 0)} created, "
                f"{result.get('updated', 0)} updated, {result.get('skipped', 0)} rows skipped."
            )
        )
        if not result.get("created") and not result.get("updated"):
            raise CommandError("Nothing was imported.")

    @staticmethod
    def _options(opts: dict[str, Any]) -> dict[str, Any]:
        fields = {}
        for item in opts["field"]:
            column, sep, key = item.partition("=")
            if not sep or not column or not key:
                raise CommandError(f"--field expects COLUMN=KEY, not {item!r}.")
            fields[column] = key
        return {
            "name_column": opts["name_column"],
            "email_column": opts["email_column"],
            "phone_column": opts["phone_column"],
            "external_column": opts["external_column"],
            "external_system": opts["external_system"],
            "unit_column": opts["unit_column"],
            "unit_match": opts["unit_match"],
            "cohorts_column": opts["cohorts_column"],
            "language_column": opts["language_column"],
            "field_columns": fields,
            "encoding": opts["encoding"],
            "delimiter": opts["delimiter"],
            "only_valid": opts["only_valid"],
        }
