"""``FakeRapidPro``: the double's HTTP server (stdlib ``ThreadingHTTPServer``) and helpers."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import reads, records, writes
from .state import UTC, DoubleState, NotFound, ParamError, RateLimiter

FIXTURES_DIR = Path(__file__).resolve().parent / "payloads"
DEFAULT_ORG: dict[str, Any] = {
    "uuid": "6a44ca78-a4c2-4862-a7d3-2932f9b3a7c3",
    "name": "Fake RapidPro workspace",
    "country": "RW",
    "languages": ["eng", "fra"],
    "primary_language": "eng",
    "timezone": "Africa/Kigali",
    "date_style": "day_first",
    "anon": False,
}
LIST_ENDPOINTS = set(reads.LISTINGS)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


class FakeRapidPro:
    """A RapidPro API v2 server double (see the package docstring)."""

    def __init__(
        self,
        seed: int | None = 1,
        contacts: int = 0,
        polls: int = 0,
        *,
        token: str = "fake-token",
        page_size: int = 250,
        host: str = "127.0.0.1",
        port: int = 0,
        drift: bool = False,
        fixtures: bool = False,
        rate_limit: int | None = None,
        rate_window: float = 60.0,
        clock: Any = None,
        org: dict[str, Any] | None = None,
    ) -> None:
        self.seed = seed
        self.token = token
        self.page_size = page_size
        self.host = host
        self.port = port
        self.drift = drift
        self.ids = records.Ids(seed)
        self.state = DoubleState(dict(org or DEFAULT_ORG), clock or _utcnow)
        self.limiter = RateLimiter(rate_limit, rate_window) if rate_limit else None
        self.responder: writes.Responder | None = None
        self.auto_process_starts = True
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.state.channel = {"uuid": self.ids(), "name": "Fake SMS channel"}
        if fixtures:
            from .fixtures import load_fixtures

            load_fixtures(self, FIXTURES_DIR)
        if contacts or polls:
            self.generate(contacts=contacts, polls=polls)

    # --- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeRapidPro is not started")
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        return f"http://{host}:{self._httpd.server_address[1]}"

    def start(self) -> str:
        """Serve in a daemon thread; returns the base URL (give it to TembaClient)."""
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="fake-rapidpro", daemon=True
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread (the CLI); returns on KeyboardInterrupt/shutdown."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> FakeRapidPro:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls ----------------------------------------------------------------

    def throttle(self, times: int = 1, retry_after: int = 1) -> None:
        self.state.throttle(times, retry_after)

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        self.state.fail_next(status, times)

    def process_starts(self, respond: writes.Responder | None = None) -> int:
        """Create the runs of pending flow starts (see ``writes.process_starts``)."""
        with self.state.lock:
            return writes.process_starts(self.state, self.ids, respond or self.responder)

    # --- arranging data ---------------------------------------------------------------

    def add_flow(
        self, name: str, questions: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return records.make_flow(self.state, self.ids, name, questions or [], **kwargs)

    def add_group(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return records.make_group(self.state, self.ids, name, **kwargs)

    def add_field(self, key: str, name: str | None = None, type: str = "text") -> dict[str, Any]:
        return records.make_field(self.state, key, name, type)

    def add_contact(
        self, name: str | None, urns: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return records.make_contact(self.state, self.ids, name, urns, **kwargs)

    def add_run(
        self,
        flow_uuid: str,
        contact_uuid: str,
        values: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return records.make_run(self.state, self.ids, flow_uuid, contact_uuid, values, **kwargs)

    def add_message(
        self, contact_uuid: str, text: str, direction: str = "in", **kwargs: Any
    ) -> dict[str, Any]:
        contact = self.state.contact(contact_uuid)
        if contact is None:
            raise KeyError(f"no contact {contact_uuid}")
        return records.make_message(
            self.state, self.ids, contact, text, direction=direction, **kwargs
        )

    def add_boundary(self, osm_id: str, name: str, level: int, **kwargs: Any) -> dict[str, Any]:
        return records.make_boundary(self.state, osm_id, name, level, **kwargs)

    def delete_contact(self, contact_uuid: str) -> None:
        with self.state.lock:
            writes.delete_contact(self.state, {"uuid": contact_uuid})

    def generate(self, contacts: int = 200, polls: int = 3, **kwargs: Any) -> dict[str, int]:
        """Seeded realistic data (see ``generator.generate``); returns counts."""
        from .generator import generate

        return generate(self, contacts=contacts, polls=polls, **kwargs)

    def warm(self, names: tuple[str, ...] = ("runs", "contacts", "messages")) -> None:
        """Build the sort indexes and per-item JSON of big collections now (e.g. before a
        benchmark) instead of during the first pass through their pages."""
        with self.state.lock:
            for name in names:
                listing = reads.LISTINGS[name]

                def encode(item: dict[str, Any], name: str = name) -> bytes:
                    return reads.dumps(reads.drifted(name, item) if self.drift else item)

                self.state.warm(name, getattr(self.state, name), listing.order, encode)

    # --- request handling -------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        params = parse_qs(query, keep_blank_values=True)
        name = path.removeprefix("/api/v2/").removesuffix(".json").strip("/")
        state = self.state
        payload: Any = None
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                return 400, {}, reads.dumps({"detail": "JSON parse error"})
        with state.lock:
            state.requests.append((method, path, payload if method == "POST" else _flat(params)))
        if not path.startswith("/api/v2/"):
            return 404, {}, reads.dumps({"detail": "Not found."})
        if headers.get("Authorization", "") != f"Token {self.token}":
            return 403, {}, reads.dumps({"detail": "Invalid token."})
        forced = state.take_forced()
        if forced is not None:
            kind, value = forced
            if kind == "throttle":
                return _throttled(value)
            return value, {}, reads.dumps({"detail": "Server error (forced by the double)."})
        if self.limiter is not None:
            wait = self.limiter.hit()
            if wait:
                return _throttled(wait)
        base_url = f"http://{headers.get('Host') or self.url.removeprefix('http://')}"
        try:
            with state.lock:
                return self._route(method, name, params, payload, base_url)
        except ParamError as exc:
            return 400, {}, reads.dumps(exc.errors)
        except NotFound:
            return 404, {}, reads.dumps({"detail": "Not found."})

    def _route(
        self, method: str, name: str, params: dict[str, list[str]], payload: Any, base_url: str
    ) -> tuple[int, dict[str, str], bytes]:
        state = self.state
        if method == "GET":
            if name == "org":
                return 200, {}, reads.get_org(state, self.drift)
            if name == "definitions":
                return 200, {}, reads.get_definitions(state, params, self.drift)
            if name in LIST_ENDPOINTS:
                if name == "runs" and self.auto_process_starts:
                    writes.process_starts(state, self.ids, self.responder)
                page = reads.get_list(
                    state,
                    name,
                    params,
                    base_url=base_url,
                    page_size=self.page_size,
                    drift=self.drift,
                )
                return 200, {}, page
            raise NotFound(name)
        query = {k: v[-1] for k, v in params.items() if k in ("uuid", "urn") and v}
        if method == "POST":
            if not isinstance(payload, dict):
                raise ParamError({"non_field_errors": ["Invalid data. Expected a dictionary."]})
            if name == "contacts":
                status, contact = writes.post_contact(state, self.ids, query, payload)
                return status, {}, reads.dumps(contact)
            if name == "flow_starts":
                return 201, {}, reads.dumps(writes.post_flow_start(state, self.ids, payload))
            if name == "broadcasts":
                return 201, {}, reads.dumps(writes.post_broadcast(state, self.ids, payload))
            return 405, {}, reads.dumps({"detail": f'Method "{method}" not allowed.'})
        if method == "DELETE":
            if name == "contacts":
                if not query:
                    raise ParamError({"non_field_errors": ["URL must contain uuid or urn."]})
                writes.delete_contact(state, query)
                return 204, {}, b""
            return 405, {}, reads.dumps({"detail": f'Method "{method}" not allowed.'})
        return 405, {}, reads.dumps({"detail": f'Method "{method}" not allowed.'})


def _flat(params: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in params.items()}


def _throttled(seconds: int) -> tuple[int, dict[str, str], bytes]:
    body = {"detail": f"Request was throttled. Expected available in {seconds} seconds."}
    return 429, {"Retry-After": str(seconds)}, reads.dumps(body)


def _handler_for(double: FakeRapidPro) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeRapidPro/1.0"

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, headers, data = double.handle(
                    method, parts.path, parts.query, self.headers, body
                )
            except Exception as exc:  # pragma: no cover - a bug in the double
                status, headers = 500, {}
                data = reads.dumps({"detail": f"double error: {exc!r}"})
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if status != 204:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            # one write for headers + body (no Nagle / delayed-ACK stalls)
            buffer: list[bytes] = getattr(self, "_headers_buffer", [])
            buffer += [b"\r\n", data]
            self.wfile.write(b"".join(buffer))
            buffer.clear()

        def setup(self) -> None:
            super().setup()
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
