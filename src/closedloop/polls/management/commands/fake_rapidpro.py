"""``closedloop fake-rapidpro --port N --contacts N --polls N [--seed N]``: a local RapidPro.

Serves the RapidPro API v2 double (``closedloop.polls.rapidpro_double``) with seeded data so
that a newcomer can connect closedloop to it and try a sync end to end without a RapidPro
account. Prints the URL and the API token, then serves until interrupted (Ctrl-C).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from closedloop.polls.rapidpro_double import FakeRapidPro


class Command(BaseCommand):
    help = "Serve a fake RapidPro (API v2) with generated contacts, polls and runs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8765, help="0 picks a free port.")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--contacts", type=int, default=200)
        parser.add_argument("--polls", type=int, default=3)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--token", default="fake-token")
        parser.add_argument("--days", type=int, default=56, help="Weeks of runs to generate.")
        parser.add_argument(
            "--fixtures", action="store_true", help="Also load the real sample payloads."
        )
        parser.add_argument(
            "--drift",
            action="store_true",
            help="Add unknown fields / drop optional ones, like a newer server.",
        )
        parser.add_argument("--rate-limit", type=int, default=0, help="Requests per minute.")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Serve the demo's workspace (what `closedloop demo-data` synced; needs it loaded).",
        )
        parser.add_argument(
            "--serve-seconds",
            type=float,
            default=0,
            help="Stop after this many seconds (0: until interrupted).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["contacts"] < 0 or options["polls"] < 0 or options["days"] < 1:
            raise CommandError("--contacts and --polls must be ≥ 0 and --days ≥ 1.")
        started = time.monotonic()
        if options["demo"]:
            from closedloop.polls.demo import served_demo_double

            try:
                server = served_demo_double(host=options["host"], port=options["port"])
            except LookupError as exc:
                raise CommandError(str(exc)) from None
            counts = {
                name: len(getattr(server.state, name))
                for name in ("groups", "contacts", "flows", "runs", "messages")
            }
            self._serve(server, counts, started, options)
            return
        server = FakeRapidPro(
            seed=options["seed"],
            token=options["token"],
            host=options["host"],
            port=options["port"],
            drift=options["drift"],
            fixtures=options["fixtures"],
            rate_limit=options["rate_limit"] or None,
        )
        counts = server.generate(
            contacts=options["contacts"], polls=options["polls"], days=options["days"]
        )
        self._serve(server, counts, started, options)

    def _serve(
        self, server: FakeRapidPro, counts: dict[str, int], started: float, options: Any
    ) -> None:
        try:
            url = server.start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on {options['host']}:{options['port']}: {exc}")
        summary = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items())
        self.stdout.write(f"Fake RapidPro ready in {time.monotonic() - started:.1f} s: {summary}.")
        self.stdout.write(f"URL:   {url}")
        self.stdout.write(f"Token: {server.token}")
        self.stdout.write("Add a RapidPro connection with this URL and token. Ctrl-C stops it.")
        self.stdout.flush()
        try:
            if options["serve_seconds"]:
                time.sleep(options["serve_seconds"])
            else:
                server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
        finally:
            server.stop()
