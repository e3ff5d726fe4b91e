"""The RapidPro SMS sender other modules use through ``core.channels.sms_senders``.

Feedback actions send personalized texts, so one broadcast carries one text; identical
texts in a batch are grouped into one broadcast to all their URNs (at most 100). Rate
limits (429 after the client's retries), server errors and unreachable hosts are temporary
failures the caller retries later; a refused request (400) is permanent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.utils.translation import gettext as _
from temba_client.exceptions import (
    TembaBadRequestError,
    TembaConnectionError,
    TembaHttpError,
    TembaRateExceededError,
    TembaTokenError,
)

from closedloop.core.channels import SmsMessage, SmsOutcome
from closedloop.core.tenancy import account_scope
from closedloop.polls.client import RapidProError
from closedloop.polls.models import Connection
from closedloop.polls.outbound import BATCH, _call, rapidpro_error_text

KEY = "rapidpro"
TEL_RE = re.compile(r"^tel:\+\d{6,15}$")


def _is_temporary(exc: BaseException) -> bool:
    """Rate limits, server errors and unreachable hosts are worth retrying; refusals are not."""
    if isinstance(exc, (TembaRateExceededError, TembaConnectionError)):
        return True
    if isinstance(exc, (TembaBadRequestError, TembaTokenError)):
        return False
    if isinstance(exc, TembaHttpError):
        response = getattr(exc.caused_by, "response", None)
        exc = RapidProError("", status=getattr(response, "status_code", None))
    if isinstance(exc, RapidProError):
        status = exc.status
        return status is None or status == 429 or status >= 500
    return isinstance(exc, OSError)


def _urn(number: str) -> str:
    number = number.strip()
    if number.startswith("tel:"):
        return number
    return "tel:" + (number if number.startswith("+") else "+" + number)


class RapidProSmsSender:
    """Sends SMS as RapidPro broadcasts through one connection."""

    batch_size = BATCH

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def send(self, messages: Sequence[SmsMessage]) -> list[SmsOutcome]:
        outcomes: list[SmsOutcome | None] = [None] * len(messages)
        by_text: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            if not message.to.strip() or not message.text.strip():
                outcomes[index] = SmsOutcome(False, error=_("No phone number or no text."))
                continue
            if not TEL_RE.match(_urn(message.to)):
                error = _("“%(number)s” is not a phone number in international form.")
                outcomes[index] = SmsOutcome(False, error=error % {"number": message.to})
                continue
            by_text.setdefault(message.text, []).append(index)
        with account_scope(self.connection.account_id):
            for text, indexes in by_text.items():
                for start in range(0, len(indexes), self.batch_size):
                    part = indexes[start : start + self.batch_size]
                    urns = list(dict.fromkeys(_urn(messages[i].to) for i in part))
                    try:
                        result = _call(self.connection, "create_broadcast", text, urns=urns)
                    except Exception as exc:
                        failure = SmsOutcome(
                            False, error=rapidpro_error_text(exc), temporary=_is_temporary(exc)
                        )
                        for i in part:
                            outcomes[i] = failure
                        continue
                    ok = SmsOutcome(True, provider_id=str(result.uuid or ""))
                    for i in part:
                        outcomes[i] = ok
        return [o or SmsOutcome(False, error="no outcome") for o in outcomes]


def sender_for_account(account: Any) -> RapidProSmsSender | None:
    """The account's first active RapidPro connection as an SMS sender (None: no connection)."""
    account_id = getattr(account, "pk", account)
    if account_id is None:
        return None
    with account_scope(account_id):
        connection = (
            Connection.objects.filter(account_id=account_id, is_active=True).order_by("pk").first()
        )
    return RapidProSmsSender(connection) if connection is not None else None
