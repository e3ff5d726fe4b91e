"""Reading configuration: environment variable, else the env file, else a default.

Every reader raises :class:`ConfigError` naming the variable when a value cannot be
understood, so a typo stops start-up instead of being silently ignored.
A variable ``NAME_FILE`` pointing at a file supplies ``NAME`` (for secrets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


class ConfigError(Exception):
    """A configuration variable has a value closedloop cannot use."""


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    description: str
    restart: bool = True


#: Every variable closedloop reads, for ``docs/configuration.md`` and ``closedloop config``.
REGISTRY: dict[str, Variable] = {}


def parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        if "=" not in line:
            raise ConfigError(f"{path}, line {number}: expected NAME=value, got {raw!r}")
        name, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


class Env:
    def __init__(self, environ: dict[str, str] | None = None, env_file: Path | None = None):
        self.environ = dict(os.environ if environ is None else environ)
        path = env_file or Path(self.environ.get("CLOSEDLOOP_ENV_FILE", "closedloop.env"))
        self.file_values = parse_env_file(path)

    def raw(self, name: str, default: str, description: str = "", restart: bool = True) -> str:
        REGISTRY.setdefault(name, Variable(name, default, description, restart))
        if name in self.environ:
            return self.environ[name]
        file_var = self.environ.get(f"{name}_FILE") or self.file_values.get(f"{name}_FILE")
        if file_var:
            try:
                return Path(file_var).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE: cannot read {file_var}: {exc}") from exc
        return self.file_values.get(name, default)

    def is_set(self, name: str) -> bool:
        return (
            name in self.environ
            or name in self.file_values
            or f"{name}_FILE" in self.environ
            or f"{name}_FILE" in self.file_values
        )

    def str(self, name: str, default: str = "", description: str = "", restart: bool = True) -> str:
        return self.raw(name, default, description, restart)

    def bool(self, name: str, default: bool, description: str = "", restart: bool = True) -> bool:
        value = self.raw(name, "True" if default else "False", description, restart)
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ConfigError(f"{name}: expected True or False, got {value!r}")

    def int(self, name: str, default: int, description: str = "", restart: bool = True) -> int:
        value = self.raw(name, str(default), description, restart)
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None

    def float(
        self, name: str, default: float, description: str = "", restart: bool = True
    ) -> float:
        value = self.raw(name, str(default), description, restart)
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None

    def list(
        self, name: str, default: str = "", description: str = "", restart: bool = True
    ) -> list[str]:
        value = self.raw(name, default, description, restart)
        return [item.strip() for item in value.split(",") if item.strip()]

    def choice(
        self, name: str, default: str, choices: tuple[str, ...], description: str = ""
    ) -> str:
        value = self.raw(name, default, description)
        if value not in choices:
            raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value
