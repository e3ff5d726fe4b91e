"""What every polls service module shares: the refusal with a message for the user."""

from __future__ import annotations

from typing import Any


class SetupError(ValueError):
    """A change refused, with a message for the user and the field it concerns."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def _id(value: Any) -> Any:
    return getattr(value, "pk", value)
