"""``closedloop init``: create or upgrade everything a fresh install needs. Idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


def var_folders() -> list[Path]:
    folders = [Path(settings.VAR_DIR), Path(settings.MEDIA_ROOT)]
    mail = getattr(settings, "EMAIL_FILE_PATH", None)
    if mail:
        folders.append(Path(mail))
    return folders


class Command(BaseCommand):
    help = "Create or upgrade the database, cache table and static files (safe to run twice)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-static", action="store_true", help="Skip collectstatic even when DEBUG=False."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options.get("verbosity", 1))
        for folder in var_folders():
            folder.mkdir(parents=True, exist_ok=True)
        quiet = max(0, verbosity - 1)
        call_command("migrate", interactive=False, verbosity=quiet)
        call_command("createcachetable", verbosity=quiet)
        if not settings.DEBUG and not options["no_static"]:
            call_command("collectstatic", interactive=False, verbosity=quiet)
        if verbosity:
            self.stdout.write(self.style.SUCCESS(f"closedloop is ready in {settings.VAR_DIR}."))
