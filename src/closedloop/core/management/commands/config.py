"""``closedloop config``: every configuration variable, its value, default and effect."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from closedloop.config import REGISTRY, Variable

SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "CREDENTIALS", "KEY")
MASK = "********"


def is_secret(name: str) -> bool:
    return any(word in name for word in SECRET_WORDS)


def mask_url_password(value: str) -> str:
    """postgres://user:pw@host/db → postgres://user:********@host/db"""
    scheme, sep, rest = value.partition("://")
    if not sep or "@" not in rest:
        return value
    credentials, at, host = rest.rpartition("@")
    if ":" not in credentials:
        return value
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:{MASK}{at}{host}"


def current_value(variable: Variable) -> str:
    value = getattr(settings, variable.name, variable.default)
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    if is_secret(variable.name):
        return MASK if text else ""
    return mask_url_password(text)


def rows() -> list[tuple[str, str, str, str, str]]:
    return [
        (
            v.name,
            current_value(v),
            v.default,
            "yes" if v.restart else "no",
            v.description,
        )
        for v in sorted(REGISTRY.values(), key=lambda v: v.name)
    ]


def markdown_table() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|") if text else ""

    lines = [
        "| Variable | Default | Restart needed | Description |",
        "|---|---|---|---|",
    ]
    for name, _value, default, restart, description in rows():
        default_cell = f"`{cell(default)}`" if default else "(empty)"
        lines.append(f"| `{name}` | {default_cell} | {restart} | {cell(description)} |")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "List every configuration variable with its current value (secrets masked)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--markdown", action="store_true", help="Print the table for docs/configuration.md."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["markdown"]:
            self.stdout.write(markdown_table())
            return
        for name, value, default, restart, description in rows():
            self.stdout.write(self.style.MIGRATE_LABEL(name) + f" = {value}")
            self.stdout.write(f"    default: {default or '(empty)'}; restart needed: {restart}")
            if description:
                self.stdout.write(f"    {description}")
