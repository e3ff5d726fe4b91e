"""``closedloop sync-polls --account SLUG [--connection NAME]``: sync RapidPro now, in-process."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.accounts.models import Account
from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import JobStatus
from closedloop.jobs.runtime import execute_job
from closedloop.polls import scheduler
from closedloop.polls.models import Connection
from closedloop.polls.sync import ALL_STEPS


class Command(BaseCommand):
    help = "Sync an account's RapidPro connections now (each as a Job, in this process)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="slug of the account")
        parser.add_argument(
            "--connection", default="", help="name of the connection (default: every active one)"
        )
        parser.add_argument(
            "--steps",
            default="",
            help=f"comma-separated steps among {','.join(ALL_STEPS)} (default: all)",
        )
        parser.add_argument(
            "--full", action="store_true", help="re-read every contact, not only the changes"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        account = Account.objects.filter(slug=opts["account"]).first()
        if account is None:
            raise CommandError(f"No account has the slug {opts['account']!r}.")
        steps = [s.strip() for s in opts["steps"].split(",") if s.strip()]
        unknown = [s for s in steps if s not in ALL_STEPS]
        if unknown:
            raise CommandError(
                f"Unknown steps: {', '.join(unknown)}. Choose among: {', '.join(ALL_STEPS)}."
            )
        with account_scope(account):
            connections = Connection.objects.order_by("name")
            if opts["connection"]:
                connections = connections.filter(name=opts["connection"])
                if not connections.exists():
                    known = ", ".join(Connection.objects.values_list("name", flat=True))
                    raise CommandError(
                        f"No connection named {opts['connection']!r} in {account.slug}. "
                        f"Known: {known or 'none'}."
                    )
            else:
                connections = connections.filter(is_active=True)
            chosen = list(connections)
        if not chosen:
            raise CommandError(f"The account {account.slug} has no active RapidPro connection.")
        failed = []
        for connection in chosen:
            job = scheduler.enqueue_sync(connection, steps=steps, full=opts["full"], run_now=True)
            if job is None:
                failed.append(connection.name)
                self.stderr.write(f"{connection.name}: another sync is running; skipped.")
                continue
            finished = execute_job(job.pk, worker="cli", echo=self.stdout.write)
            if finished is None or finished.status != JobStatus.SUCCEEDED:
                failed.append(connection.name)
                error = finished.error or finished.message if finished else "not run"
                self.stderr.write(f"{connection.name}: {error}")
                continue
            summary = ", ".join(f"{k} {v}" for k, v in sorted((finished.result or {}).items()))
            self.stdout.write(self.style.SUCCESS(f"{connection.name}: {summary}"))
        if failed:
            raise CommandError(f"Sync failed for: {', '.join(failed)}.")
