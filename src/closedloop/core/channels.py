"""Message channels one module offers to others.

The polls module knows an account's RapidPro connection; feedback needs it to send
personalized SMS. Modules never import each other, so the polls module registers an
:class:`SmsSender` factory here and feedback looks it up by account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class SmsMessage:
    to: str  # phone number in international form, e.g. +250788123456
    text: str


@dataclass(frozen=True)
class SmsOutcome:
    ok: bool
    provider_id: str = ""
    error: str = ""
    #: a failure worth retrying later (rate limit, server error)
    temporary: bool = False


class SmsSender(Protocol):
    """Sends a batch (at most :attr:`batch_size` messages) and returns one outcome each."""

    batch_size: int

    def send(self, messages: Sequence[SmsMessage]) -> list[SmsOutcome]: ...


#: ``factory(account) -> SmsSender | None`` (None: the account has no connection)
SenderFactory = Callable[[Any], "SmsSender | None"]


@dataclass
class _SenderRegistry:
    factories: dict[str, SenderFactory] = field(default_factory=dict)

    def register(self, key: str, factory: SenderFactory) -> SenderFactory:
        if key in self.factories:
            raise ValueError(f"SMS sender {key!r} registered twice")
        self.factories[key] = factory
        return factory

    def unregister(self, key: str) -> None:
        self.factories.pop(key, None)

    def for_account(self, account: Any) -> SmsSender | None:
        """The first registered sender that has a connection for ``account``."""
        for key in sorted(self.factories):
            sender = self.factories[key](account)
            if sender is not None:
                return sender
        return None


sms_senders = _SenderRegistry()
