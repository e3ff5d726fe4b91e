"""``closedloop demo-data [--size small|medium] [--reset]``: the demo country and accounts."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.core.demo import DEMO_PASSWORD, DEMO_USERS, SIZES, load_demo


def login_lines(base_url: str = "") -> list[str]:
    lines = [
        f"Log in{' at ' + base_url if base_url else ''} with any of these (password: {DEMO_PASSWORD}):"
    ]
    for user in DEMO_USERS:
        scope = " (one region only)" if user.scoped_to_region else ""
        lines.append(f"  {user.email:<34} {user.role}{scope} — {user.account_slug}")
    return lines


class Command(BaseCommand):
    help = "Create the deterministic demo country, people and accounts (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--size", choices=sorted(SIZES), default="medium")
        parser.add_argument(
            "--reset", action="store_true", help="Delete the demo accounts first and rebuild them."
        )
        parser.add_argument("--seed", type=int, default=2026, help="Another seed, another country.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["size"] not in SIZES:
            raise CommandError(
                f"Unknown size {options['size']!r}; choose one of: {', '.join(sorted(SIZES))}."
            )
        started = time.monotonic()
        result = load_demo(size=options["size"], reset=options["reset"], seed=options["seed"])
        if not result.created:
            self.stdout.write(
                "The demo data is already loaded (account demo-ministry exists); "
                "nothing was changed. Use --reset to rebuild it."
            )
        else:
            for slug, counts in result.counts.items():
                parts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items())
                self.stdout.write(f"{slug}: {parts}")
            self.stdout.write(f"Demo data built in {time.monotonic() - started:.1f} s.")
        if options["verbosity"] >= 1:
            for line in login_lines():
                self.stdout.write(line)
