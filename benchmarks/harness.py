"""What every benchmark process shares: Django on a fresh database, timing, measurements."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

SIZES = ("ci", "full")


@dataclass
class Measurement:
    name: str
    size: str
    db: str
    target: str
    meets_target: bool
    seconds: float | None = None
    rate: float | None = None
    unit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data = {key: value for key, value in data.items() if value is not None}
        # other work on the machine skews wall-clock figures: say how busy it was
        return {**data, **extra, "load_average_1m": round(os.getloadavg()[0], 2)}


@dataclass
class Context:
    size: str
    db: str
    account: Any = None

    def measure(
        self, name: str, seconds: float, limit: float, target: str, **extra: Any
    ) -> Measurement:
        return Measurement(
            name=name,
            size=self.size,
            db=self.db,
            seconds=round(seconds, 4),
            target=target,
            meets_target=seconds <= limit,
            extra=extra,
        )

    def failed(self, name: str, target: str, error: str) -> Measurement:
        return Measurement(
            name=name, size=self.size, db=self.db, target=target, meets_target=False, error=error
        )


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def median_of(runs: int, func: Callable[[], Any]) -> float:
    return statistics.median(timed(func)[0] for _ in range(runs))


def setup_django() -> None:
    """Configure Django for the DATABASE_URL the runner set, migrate, quietly."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closedloop.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def create_account(slug: str = "bench") -> Any:
    from closedloop.accounts.models import Account

    return Account.objects.create(name="Benchmark", slug=slug)
