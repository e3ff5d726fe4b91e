"""How one outbox message leaves: SMTP (or the in-app outbox), SMS, JSON, Canvas.

A channel is opened once per batch, sends messages one at a time (or in chunks of
``chunk_size`` for providers with a bulk call) and is closed. It raises
:class:`TemporaryError` for failures worth retrying (4xx SMTP replies, timeouts, HTTP
429/5xx) and :class:`PermanentError` for ones that will never succeed (invalid address,
5xx SMTP replies, HTTP 4xx). Messages are built as bytes directly: building Python
email objects per message would halve the throughput.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import smtplib
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from typing import Any, Protocol

import requests
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.html import strip_tags
from django.utils.translation import gettext as _

logger = logging.getLogger("closedloop.feedback.outbox")

#: SMTP servers limit messages per session; reconnect before they refuse
SMTP_MESSAGES_PER_CONNECTION = 200
HTTP_TIMEOUT = 30
RAPIDPRO_CHUNK = 100


class TemporaryError(Exception):
    """Worth trying again later."""


class PermanentError(Exception):
    """Will never succeed as it is: fail the message now."""


class ChannelDown(TemporaryError):
    """The server cannot be reached: stop this batch, try again later."""


@dataclass
class Outgoing:
    """What the outbox hands a channel: one delivery row's fields."""

    id: int
    run_id: int
    recipient: str
    subject: str
    body: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    provider_id: str = ""
    error: str = ""
    temporary: bool = False
    #: the server is unreachable: the messages after this one were not tried
    down: bool = False


class Channel(Protocol):
    #: messages per provider call (crash recovery treats them as in flight together)
    chunk_size: int

    def open(self) -> None: ...

    def send(self, messages: Sequence[Outgoing]) -> list[Outcome]: ...

    def close(self) -> None: ...


def _outcome_of(exc: Exception) -> Outcome:
    return Outcome(
        False,
        error=str(exc)[:2000],
        temporary=isinstance(exc, TemporaryError),
        down=isinstance(exc, ChannelDown),
    )


class OneByOne:
    """Base for channels that send one message per call."""

    chunk_size = 1

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send_one(self, message: Outgoing) -> str:
        raise NotImplementedError

    def send(self, messages: Sequence[Outgoing]) -> list[Outcome]:
        results = []
        for message in messages:
            try:
                results.append(Outcome(True, provider_id=self.send_one(message)))
            except (TemporaryError, PermanentError) as exc:
                results.append(_outcome_of(exc))
                if isinstance(exc, ChannelDown):
                    break
        return results


class Unavailable(OneByOne):
    """A channel that is not configured: every message fails with the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def send_one(self, message: Outgoing) -> str:
        raise PermanentError(self.reason)


# --- email ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailSettings:
    """The run-wide parts of every email: sender, copies, format, tracking."""

    from_address: str
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    html_only: bool = True
    track_read: bool = False
    reply_to: str = ""
    #: a text/plain message (SMS through an SMTP gateway)
    plain_text: bool = False


def valid_address(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return "\n" not in address and "\r" not in address


def split_addresses(text: str) -> tuple[list[str], list[str]]:
    """``"a@x b@y, c"`` → (valid addresses, invalid ones)."""
    parts = [p for p in text.replace(",", " ").replace(";", " ").split() if p]
    return [p for p in parts if valid_address(p)], [p for p in parts if not valid_address(p)]


def _header(value: str) -> str:
    value = " ".join(value.splitlines())  # no header injection through a template
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def _address_header(address: str) -> str:
    if "<" not in address and address.isascii():
        return address
    name, addr = parseaddr(address)
    return formataddr((name, addr), charset="utf-8") if name else addr


def _b64(text: str) -> bytes:
    return base64.encodebytes(text.encode("utf-8"))


TRACK_SALT = "closedloop.feedback.read-tracking"


def make_token(delivery_id: int) -> str:
    """A signed, URL-safe token naming one delivery (for the read-tracking pixel)."""
    return signing.dumps(delivery_id, salt=TRACK_SALT)


def read_token(token: str) -> int | None:
    try:
        value = signing.loads(token, salt=TRACK_SALT)
    except signing.BadSignature:
        return None
    return value if isinstance(value, int) else None


def tracking_url(delivery_id: int) -> str:
    return f"{settings.BASE_URL.rstrip('/')}/trck/{make_token(delivery_id)}/"


def build_email(message: Outgoing, conf: EmailSettings, *, domain: str) -> bytes:
    """The complete RFC 5322 message as bytes (HTML only, or text + HTML)."""
    html = message.body
    if conf.track_read:
        pixel = f'<img src="{tracking_url(message.id)}" alt="" width="1" height="1">'
        html = html.replace("</body>", pixel + "</body>") if "</body>" in html else html + pixel
    headers = [
        f"From: {_address_header(conf.from_address)}",
        "To: " + ", ".join(_address_header(a) for a in message.recipient.split()),
    ]
    if conf.cc:
        headers.append("Cc: " + ", ".join(conf.cc))
    if conf.reply_to:
        headers.append(f"Reply-To: {_address_header(conf.reply_to)}")
    headers += [
        f"Subject: {_header(message.subject)}",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: <delivery-{message.id}.{message.run_id}@{domain}>",
        "MIME-Version: 1.0",
    ]
    if conf.plain_text:
        headers += [
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: base64",
        ]
        body = _b64(str(message.extra.get("text") or message.body))
    elif conf.html_only:
        headers += [
            'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: base64",
        ]
        body = _b64(html)
    else:
        boundary = "=_cl_" + uuid.uuid4().hex
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        text = str(message.extra.get("text") or "")
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Type: text/plain; charset="utf-8"\r\n'.encode(),
                b"Content-Transfer-Encoding: base64\r\n\r\n",
                _b64(text),
                f'--{boundary}\r\nContent-Type: text/html; charset="utf-8"\r\n'.encode(),
                b"Content-Transfer-Encoding: base64\r\n\r\n",
                _b64(html),
                f"--{boundary}--\r\n".encode(),
            ]
        )
    return ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + body


def to_addresses(recipient: str, suffix: str = "") -> str:
    """The envelope/To addresses of a recipient value (several for reports), checked."""
    if suffix:
        recipient = _digits(recipient) + suffix
    good, bad = split_addresses(recipient)
    if bad or not good:
        shown = bad[0] if bad else recipient
        raise PermanentError(_("“%(address)s” is not a valid email address.") % {"address": shown})
    return " ".join(good)


def _transact(
    conn: smtplib.SMTP, sender: str, rcpts: list[str], data: bytes
) -> dict[str, tuple[int, bytes]]:
    """MAIL, RCPT…, DATA on an open connection — ``sendmail`` without re-parsing the
    addresses for every message (they were checked once). Raises smtplib's errors."""
    code, reply = conn.docmd("MAIL", f"FROM:<{sender}>")
    if code != 250:
        if code == 421:
            conn.close()
        else:
            conn.rset()
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for rcpt in rcpts:
        code, reply = conn.docmd("RCPT", f"TO:<{rcpt}>")
        if code not in (250, 251):
            refused[rcpt] = (code, reply)
        if code == 421:
            conn.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(rcpts):
        conn.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = conn.data(data)
    if code != 250:
        if code == 421:
            conn.close()
        else:
            conn.rset()
        raise smtplib.SMTPDataError(code, reply)
    return refused


def _smtp_error(code: int, text: Any) -> Exception:
    reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    message = _("The mail server refused the message: %(code)s %(reply)s") % {
        "code": code,
        "reply": reply,
    }
    return (PermanentError if 500 <= code < 600 else TemporaryError)(message)


class SmtpChannel(OneByOne):
    """One persistent SMTP connection per batch; reconnects when the server hangs up
    or after :data:`SMTP_MESSAGES_PER_CONNECTION` messages."""

    def __init__(self, conf: EmailSettings, *, address_suffix: str = "") -> None:
        self.conf = conf
        self.address_suffix = address_suffix
        self.conn: smtplib.SMTP | None = None
        self.sent_on_connection = 0
        self.domain = settings.EMAIL_HOST or "localhost"
        self.per_connection = int(
            getattr(settings, "EMAIL_MESSAGES_PER_CONNECTION", SMTP_MESSAGES_PER_CONNECTION)
        )
        self.connections = 0
        self.sender = parseaddr(conf.from_address)[1]

    def _connect(self) -> smtplib.SMTP:
        host, port = settings.EMAIL_HOST, settings.EMAIL_PORT
        try:
            if settings.EMAIL_USE_SSL:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, timeout=HTTP_TIMEOUT, context=ssl.create_default_context()
                )
            else:
                conn = smtplib.SMTP(host, port, timeout=HTTP_TIMEOUT)
                if settings.EMAIL_USE_TLS:
                    conn.starttls(context=ssl.create_default_context())
            if settings.EMAIL_HOST_USER:
                conn.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
            conn.ehlo_or_helo_if_needed()
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryError(_("The mail server refused the login: %s") % exc) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelDown(
                _("Could not connect to the mail server %(host)s:%(port)s: %(error)s")
                % {"host": host, "port": port, "error": exc}
            ) from exc
        self.connections += 1
        self.sent_on_connection = 0
        return conn

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.conn.quit()
            self.conn = None

    def _recipients(self, message: Outgoing) -> list[str]:
        message.recipient = to_addresses(message.recipient, self.address_suffix)
        return [*message.recipient.split(), *self.conf.cc, *self.conf.bcc]

    def send_one(self, message: Outgoing) -> str:
        rcpts = self._recipients(message)
        data = build_email(message, self.conf, domain=self.domain)
        sender = self.sender
        for attempt in (1, 2):
            if self.conn is None or self.sent_on_connection >= self.per_connection:
                self.close()
                self.conn = self._connect()
            try:
                refused = _transact(self.conn, sender, rcpts, data)
            except smtplib.SMTPServerDisconnected as exc:
                self.conn = None  # the server hung up (often: per-session limit); try afresh
                if attempt == 2:
                    raise TemporaryError(_("The mail server closed the connection.")) from exc
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                raise _smtp_error(code, text) from exc
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code == 421 and attempt == 1:  # "too many messages": reconnect
                    self.close()
                    continue
                self._reset()
                raise _smtp_error(exc.smtp_code, exc.smtp_error) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self.conn = None
                raise TemporaryError(_("Sending failed: %s") % exc) from exc
            self.sent_on_connection += 1
            if refused and message.recipient in refused:
                code, text = refused[message.recipient]
                raise _smtp_error(code, text)
            return f"delivery-{message.id}.{message.run_id}@{self.domain}"
        raise TemporaryError(_("The mail server closed the connection."))  # pragma: no cover

    def _reset(self) -> None:
        if self.conn is not None:
            try:
                self.conn.rset()
            except (OSError, smtplib.SMTPException):
                self.conn = None


class ConsoleOutbox(OneByOne):
    """EMAIL_OUTBOX_ONLY: the message stays in the in-app outbox and goes to the log."""

    def __init__(self, conf: EmailSettings | None = None, *, address_suffix: str = "") -> None:
        self.conf = conf
        self.address_suffix = address_suffix

    def send_one(self, message: Outgoing) -> str:
        to = to_addresses(message.recipient, self.address_suffix)
        text = str(message.extra.get("text") or strip_tags(message.body)).strip()
        logger.info("outbox (not sent): to=%s subject=%s\n%s", to, message.subject, text[:2000])
        return "outbox"


# --- SMS --------------------------------------------------------------------------------


def _digits(number: str) -> str:
    kept = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    if len(kept.lstrip("+")) < 5:
        raise PermanentError(_("“%(number)s” is not a phone number.") % {"number": number})
    return kept


class HttpSms(OneByOne):
    """POST ``{"to", "text"}`` to SMS_HTTP_URL with the bearer SMS_HTTP_TOKEN."""

    def open(self) -> None:
        if not settings.SMS_HTTP_URL:
            raise PermanentError(_("SMS_HTTP_URL is not set: no HTTP SMS gateway configured."))
        self.session = requests.Session()
        if settings.SMS_HTTP_TOKEN:
            self.session.headers["Authorization"] = f"Bearer {settings.SMS_HTTP_TOKEN}"

    def close(self) -> None:
        self.session.close()

    def send_one(self, message: Outgoing) -> str:
        payload = {
            "to": _digits(message.recipient),
            "text": message.extra.get("text") or message.body,
        }
        return post_json(self.session, settings.SMS_HTTP_URL, payload)


class RapidProSms:
    """The account's RapidPro connection, registered by the polls module in core."""

    chunk_size = RAPIDPRO_CHUNK

    def __init__(self, account: Any) -> None:
        from closedloop.core.channels import sms_senders

        self.sender = sms_senders.for_account(account)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, messages: Sequence[Outgoing]) -> list[Outcome]:
        from closedloop.core.channels import SmsMessage

        if self.sender is None:
            error = _("No RapidPro connection configured for this account.")
            return [Outcome(False, error=error) for _m in messages]
        valid: list[tuple[int, SmsMessage]] = []
        results: list[Outcome | None] = [None] * len(messages)
        for index, message in enumerate(messages):
            try:
                text = message.extra.get("text") or message.body
                valid.append((index, SmsMessage(to=_digits(message.recipient), text=text)))
            except PermanentError as exc:
                results[index] = _outcome_of(exc)
        for start in range(0, len(valid), self.sender.batch_size or RAPIDPRO_CHUNK):
            part = valid[start : start + (self.sender.batch_size or RAPIDPRO_CHUNK)]
            try:
                outcomes = self.sender.send([sms for _i, sms in part])
            except Exception as exc:  # a provider failure: retry the whole chunk later
                outcomes = [None] * len(part)  # type: ignore[list-item]
                error = _("RapidPro call failed: %s") % exc
                for (index, _sms), _o in zip(part, outcomes, strict=True):
                    results[index] = Outcome(False, error=error, temporary=True)
                continue
            for (index, _sms), out in zip(part, outcomes, strict=True):
                results[index] = Outcome(out.ok, out.provider_id, out.error, out.temporary)
        return [r or Outcome(False, error="no outcome") for r in results]


# --- JSON -------------------------------------------------------------------------------


def post_json(session: requests.Session, url: str, payload: Any) -> str:
    """POST JSON; 2xx sent, 429/5xx temporary, other 4xx permanent."""
    try:
        response = session.post(url, json=payload, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise TemporaryError(_("Could not reach %(url)s: %(error)s") % {"url": url, "error": exc})
    if 200 <= response.status_code < 300:
        return response.headers.get("X-Request-Id", "")[:255] or str(response.status_code)
    reply = response.text[:300]
    message = _("%(url)s answered %(status)s: %(reply)s") % {
        "url": url,
        "status": response.status_code,
        "reply": reply,
    }
    if response.status_code == 429 or response.status_code >= 500:
        raise TemporaryError(message)
    raise PermanentError(message)


class JsonChannel(OneByOne):
    """POST the rendered JSON to the action's target URL with its bearer token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def open(self) -> None:
        self.session = requests.Session()
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"

    def close(self) -> None:
        self.session.close()

    def send_one(self, message: Outgoing) -> str:
        try:
            payload = json.loads(message.body)
        except ValueError as exc:
            raise PermanentError(_("The rendered message is not valid JSON: %s") % exc) from exc
        if not settings.EXECUTE_ACTION_JSON_TRANSFER:
            logger.info("JSON transfer off: would POST to %s: %s", self.url, message.body[:500])
            return "not-sent"
        return post_json(self.session, self.url, payload)
