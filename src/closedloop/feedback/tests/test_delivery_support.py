"""Fixtures for the delivery tests: a real SMTP server (aiosmtpd) and a local HTTP server.

Other delivery test modules import the fixtures from here.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler that records messages and can misbehave on purpose."""

    received: list[Received] = field(default_factory=list)
    #: replies to give to DATA before accepting (e.g. ["451 4.3.0 Try later"])
    data_replies: list[str] = field(default_factory=list)
    #: recipients refused at RCPT with 550
    reject: set[str] = field(default_factory=set)
    #: hang up with 421 once a session has carried this many messages
    per_session_limit: int | None = None
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:  # noqa: N802
        session.host_name = hostname
        return "250 closedloop-test"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:  # noqa: N802
        session.host_name = hostname
        if not getattr(session, "counted", False):
            session.counted = True
            with self.lock:
                self.sessions += 1
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:  # noqa: N802
        if (
            self.per_session_limit is not None
            and getattr(session, "carried", 0) >= self.per_session_limit
        ):
            server.transport.close()
            return "421 4.7.0 Too many messages in this session"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:  # noqa: N802
        if address in self.reject:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content or envelope.content),
                )
            )
        session.carried = getattr(session, "carried", 0) + 1
        return "250 Message accepted for delivery"

    def to(self) -> list[str]:
        return [r.rcpt_tos[0] for r in self.received]


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[SmtpRecorder]:
    """A real SMTP server on a free port; settings point the outbox at it."""
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_OUTBOX_ONLY = False
    settings.EMAIL_BURST = 0
    settings.EMAIL_OVERRIDE_FROM = ""
    try:
        yield recorder
    finally:
        controller.stop()


@dataclass
class HttpRecorder:
    """A local HTTP server: records requests; replies from a script, else ``default``."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    replies: list[tuple[int, Any]] = field(default_factory=list)
    default: tuple[int, Any] = (200, {"ok": True})
    #: path -> callable(request dict) -> (status, body) overriding the script
    routes: dict[str, Callable[[dict[str, Any]], tuple[int, Any]]] = field(default_factory=dict)


@pytest.fixture
def http_server() -> Iterator[HttpRecorder]:
    recorder = HttpRecorder()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": raw.decode("utf-8", "replace"),
            }
            recorder.requests.append(request)
            path = self.path.split("?")[0]
            if path in recorder.routes:
                status, body = recorder.routes[path](request)
            elif recorder.replies:
                status, body = recorder.replies.pop(0)
            else:
                status, body = recorder.default
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_PUT = _reply  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
