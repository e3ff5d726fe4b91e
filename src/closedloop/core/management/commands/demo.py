"""``closedloop demo [--port 8000]``: set up, load the demo data once, and serve."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandParser

from closedloop.core.demo import demo_exists
from closedloop.core.management.commands.demo_data import login_lines


class Command(BaseCommand):
    help = "Create the database, load the demo data if missing, then run web + worker + beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--size", choices=["small", "medium"], default="medium")

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"]
        if "init" in get_commands():
            call_command("init")
        else:  # before the init command exists: the database is what matters
            call_command("migrate", interactive=False, verbosity=0)
            call_command("createcachetable", verbosity=0)
        if demo_exists():
            self.stdout.write("Demo data already loaded.")
        else:
            self.stdout.write("Loading the demo data (once)…")
            call_command("demo_data", size=options["size"], verbosity=0, stdout=self.stdout._out)
        url = f"http://127.0.0.1:{port}/"
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"closedloop demo: open {url}"))
        for line in login_lines():
            self.stdout.write(line)
        self.stdout.write("Press Ctrl-C to stop.")
        self.stdout.flush()
        if "serve" in get_commands():
            from django.conf import settings

            rapidpro = settings.DEMO_RAPIDPRO_PORT
            self.stdout.write(f"The demo's fake RapidPro is served at http://127.0.0.1:{rapidpro}/")
            self.stdout.flush()
            call_command("serve", port=port, fake_rapidpro=rapidpro)
        else:  # web only, until the serve command (web + worker + beat) exists
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
