"""``closedloop fetch-runs --account SLUG --connection NAME [--days N]``: fetch a connection's
runs from RapidPro now (the ``polls.fetch_runs`` job, run in this process)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.models import Account
from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import JobStatus
from closedloop.jobs.runtime import enqueue_job, execute_job
from closedloop.polls.ingest_jobs import FETCH_RUNS_JOB, MAX_DAYS, summary
from closedloop.polls.models import Connection


class Command(BaseCommand):
    help = (
        "Fetch runs from a RapidPro connection and ingest them (runs as a Job, in this "
        "process). Without --days: the runs changed since the last fetch; with --days N: "
        "back-fill the runs changed in the last N days."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="slug of the account")
        parser.add_argument("--connection", required=True, help="name of the RapidPro connection")
        parser.add_argument(
            "--days", type=int, default=0, help=f"back-fill this many days (1–{MAX_DAYS})"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        account = Account.objects.filter(slug=opts["account"]).first()
        if account is None:
            raise CommandError(f"No account has the slug “{opts['account']}”.")
        days = opts["days"]
        if days < 0 or days > MAX_DAYS:
            raise CommandError(f"--days must be between 0 and {MAX_DAYS}, not {days}.")
        with account_scope(account):
            connection = Connection.objects.filter(name=opts["connection"]).first()
            if connection is None:
                names = ", ".join(Connection.objects.values_list("name", flat=True)[:20])
                raise CommandError(
                    f"Account “{account.slug}” has no RapidPro connection named "
                    f"“{opts['connection']}”. Its connections: {names or 'none'}."
                )
        job = enqueue_job(
            account=account,
            kind=FETCH_RUNS_JOB,
            title=f"Fetch runs from {connection.name}",
            params={"connection_id": connection.pk, "days": days},
            run_now=True,
        )
        finished = execute_job(job.pk, worker="cli", echo=self.stdout.write)
        if finished is None:
            raise CommandError(f"Job {job.pk} was taken by another worker.")
        if finished.status != JobStatus.SUCCEEDED:
            raise CommandError(finished.error or finished.message)
        self.stdout.write(
            self.style.SUCCESS(f"Job {finished.pk}: {summary(finished.result or {})}")
        )
