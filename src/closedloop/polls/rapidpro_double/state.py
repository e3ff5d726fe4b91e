"""The double's data (plain API-v2-shaped dicts) and its cursor paging engine."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

UTC = dt.UTC
MAX_KEY = "\uffff"


def iso(value: dt.datetime) -> str:
    """RapidPro's timestamp format: UTC, microseconds, ``+00:00``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(value: str) -> dt.datetime:
    """Parse an ISO-8601 timestamp (``Z`` or offset; naive means UTC)."""
    text = value.strip().replace(" ", "+") if "T" in value else value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def norm_time(value: str | None) -> str:
    """Normalise a timestamp string so that string order is time order."""
    if not value:
        return ""
    if len(value) == 32 and value.endswith("+00:00"):
        return value
    return iso(parse_time(value))


class ParamError(Exception):
    """A 400 answer: ``errors`` is RapidPro's ``{field: [messages]}``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class NotFound(Exception):
    """A 404 answer."""


@dataclass(frozen=True)
class Listing:
    """How one endpoint's collection is ordered: by a timestamp (newest first unless
    ``reverse``) or, when ``order`` is None, by position in the list (oldest first)."""

    attr: str
    order: str | None


LISTINGS: dict[str, Listing] = {
    "flows": Listing("flows", "created_on"),
    "groups": Listing("groups", None),
    "fields": Listing("fields", None),
    "contacts": Listing("contacts", "modified_on"),
    "runs": Listing("runs", "modified_on"),
    "messages": Listing("messages", "created_on"),
    "broadcasts": Listing("broadcasts", "created_on"),
    "flow_starts": Listing("flow_starts", "modified_on"),
    "boundaries": Listing("boundaries", None),
    "labels": Listing("labels", None),
}

# collections at least this big keep a cache of each item's JSON (see ``touch``)
CACHE_MIN_ITEMS = 5000


class _Index:
    __slots__ = ("keys", "items", "stamp", "blobs")

    def __init__(self, keys: list[tuple[str, str]], items: list[dict], stamp: tuple) -> None:
        self.keys = keys
        self.items = items
        self.stamp = stamp
        self.blobs: dict[int, bytes] | None = {} if len(items) >= CACHE_MIN_ITEMS else None


class DoubleState:
    """Everything the double serves. Collections are lists of API-shaped dicts: arrange
    test data by appending to them (or through ``FakeRapidPro.add_*``) and inspect them
    after calls. After changing a dict *in place* in a collection of 5,000 items or more,
    call :meth:`touch` (the double caches sorted indexes and per-item JSON for big ones).
    """

    def __init__(self, org: dict[str, Any], clock: Callable[[], dt.datetime]) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.org: dict[str, Any] = org
        self.flows: list[dict[str, Any]] = []
        self.definitions: dict[str, dict[str, Any]] = {}
        self.groups: list[dict[str, Any]] = []
        self.fields: list[dict[str, Any]] = []
        self.contacts: list[dict[str, Any]] = []
        self.deleted_contacts: list[dict[str, Any]] = []
        self.boundaries: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.broadcasts: list[dict[str, Any]] = []
        self.flow_starts: list[dict[str, Any]] = []
        self.labels: list[dict[str, Any]] = []
        self.channel: dict[str, Any] | None = None
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.generation = 0
        # flow uuid → (id of its definition, result key → categoriser), see records.py
        self.categorizer_cache: dict[str, tuple[int, dict[str, Any]]] = {}
        self._indexes: dict[str, _Index] = {}
        self._throttles: list[int] = []  # retry_after of each forced 429
        self._failures: list[int] = []  # status of each forced failure
        self._last_time = ""

    # --- test controls ----------------------------------------------------------------

    def touch(self) -> None:
        """Drop cached indexes and JSON (call after editing records in place)."""
        with self.lock:
            self.reindex()

    def reindex(self) -> None:
        """Drop the cached sort indexes (records were re-ordered or moved)."""
        with self.lock:
            self.generation += 1
            self._indexes.clear()

    def throttle(self, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` requests with 429 and ``Retry-After: retry_after``."""
        with self.lock:
            self._throttles.extend([retry_after] * times)

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (e.g. 500, 502, 503)."""
        with self.lock:
            self._failures.extend([status] * times)

    def take_forced(self) -> tuple[str, int] | None:
        with self.lock:
            if self._throttles:
                return "throttle", self._throttles.pop(0)
            if self._failures:
                return "fail", self._failures.pop(0)
        return None

    def now(self) -> str:
        """The clock as a RapidPro timestamp, strictly increasing between calls."""
        with self.lock:
            stamp = iso(self.clock())
            if stamp <= self._last_time:
                stamp = iso(parse_time(self._last_time) + dt.timedelta(microseconds=1))
            self._last_time = stamp
            return stamp

    # --- lookups ----------------------------------------------------------------------

    def flow(self, uuid: str) -> dict[str, Any] | None:
        return next((f for f in self.flows if f["uuid"] == uuid), None)

    def contact(self, uuid: str) -> dict[str, Any] | None:
        return next((c for c in self.contacts if c["uuid"] == uuid), None)

    def contact_by_urn(self, urn: str) -> dict[str, Any] | None:
        return next((c for c in self.contacts if urn in c.get("urns", [])), None)

    def group(self, ref: str) -> dict[str, Any] | None:
        """A group by uuid or (case-insensitive) name."""
        low = ref.lower()
        for group in self.groups:
            if group["uuid"] == ref or group["name"].lower() == low:
                return group
        return None

    # --- paging -----------------------------------------------------------------------

    def _index(self, name: str, items: list[dict[str, Any]], order: str | None) -> _Index:
        stamp = (id(items), len(items), self.generation)
        cached = self._indexes.get(name)
        if cached is not None and cached.stamp == stamp:
            return cached
        if order is None:
            keyed = [((f"{i:012d}", ""), item) for i, item in enumerate(items)]
        else:
            keyed = [
                ((norm_time(item.get(order)), str(item.get("uuid", i))), item)
                for i, item in enumerate(items)
            ]
            keyed.sort(key=lambda pair: pair[0])
        index = _Index([k for k, _ in keyed], [item for _, item in keyed], stamp)
        self._indexes[name] = index
        return index

    def page(
        self,
        name: str,
        items: list[dict[str, Any]],
        order: str | None,
        *,
        predicate: Callable[[dict[str, Any]], bool] | None,
        reverse: bool,
        before: str | None,
        after: str | None,
        cursor: str | None,
        page_size: int,
    ) -> tuple[list[tuple[dict[str, Any], int]], str | None, str | None]:
        """One page: ``([(item, position)], next_cursor, previous_cursor)``.

        Keyset paging on ``(timestamp, uuid)`` (or list position): cursors stay valid when
        items are added meanwhile. ``before``/``after`` are inclusive.
        """
        index = self._index(name, items, order)
        keys = index.keys
        lo, hi = 0, len(keys)
        if order is not None:
            if after:
                lo = bisect_left(keys, (after, ""))
            if before:
                hi = bisect_right(keys, (before, MAX_KEY))
        ascending = order is None or reverse
        backwards = False
        if cursor:
            direction, key = decode_cursor(cursor)
            backwards = direction == "p"
            forward = ascending != backwards
            if forward:
                lo = max(lo, bisect_right(keys, key))
            else:
                hi = min(hi, bisect_left(keys, key))
        step_up = ascending != backwards
        found: list[int] = []
        more = False
        position = lo if step_up else hi - 1
        while lo <= position < hi:
            item = index.items[position]
            if predicate is None or predicate(item):
                if len(found) == page_size:
                    more = True
                    break
                found.append(position)
            position += 1 if step_up else -1
        if backwards:
            found.reverse()
        page = [(index.items[p], p) for p in found]
        next_cursor = prev_cursor = None
        if found:
            if (more and not backwards) or (backwards and cursor):
                next_cursor = encode_cursor("n", keys[found[-1]])
            if (cursor and not backwards) or (backwards and more):
                prev_cursor = encode_cursor("p", keys[found[0]])
        return page, next_cursor, prev_cursor

    def warm(
        self,
        name: str,
        items: list[dict[str, Any]],
        order: str | None,
        encode: Callable[[dict[str, Any]], bytes],
    ) -> None:
        """Fill the JSON cache of a big collection (no-op for small ones)."""
        index = self._index(name, items, order)
        if index.blobs is not None:
            for position, item in enumerate(index.items):
                if position not in index.blobs:
                    index.blobs[position] = encode(item)

    def blob(self, name: str, item: dict[str, Any], position: int) -> bytes | None:
        """Cached JSON of an item of a big collection (None when not cached)."""
        index = self._indexes.get(name)
        if index is None or index.blobs is None:
            return None
        return index.blobs.get(position)

    def keep_blob(self, name: str, position: int, data: bytes) -> None:
        index = self._indexes.get(name)
        if index is not None and index.blobs is not None:
            index.blobs[position] = data


def encode_cursor(direction: str, key: tuple[str, str]) -> str:
    raw = json.dumps([direction, key[0], key[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        direction, key, tie = json.loads(raw)
        if direction not in ("n", "p"):
            raise ValueError(direction)
        return direction, (str(key), str(tie))
    except (ValueError, TypeError) as exc:
        raise NotFound("Invalid cursor") from exc


class RateLimiter:
    """At most ``limit`` requests per ``window`` seconds; returns seconds to wait or 0."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self.started = time.monotonic()
        self.count = 0
        self.lock = threading.Lock()

    def hit(self) -> int:
        with self.lock:
            now = time.monotonic()
            if now - self.started >= self.window:
                self.started, self.count = now, 0
            if self.count >= self.limit:
                return max(1, int(self.window - (now - self.started) + 0.999))
            self.count += 1
            return 0
