"""Preload the real sample payloads (``payloads/*.json``) into a double.

Records are kept as the samples give them (so optional fields some objects lack stay
missing), except: timestamps are normalised to microseconds + ``+00:00`` (the samples mix
precisions), broadcast ``text`` becomes a ``{lang: text}`` map like current servers return,
and each sample flow gets a spec-13 definition built from its ``results``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .flows import definition_from_results
from .state import norm_time

if TYPE_CHECKING:  # pragma: no cover
    from .server import FakeRapidPro

TIME_KEYS = ("created_on", "modified_on", "exited_on", "sent_on", "last_seen_on", "time")
COLLECTIONS = (
    "flows",
    "groups",
    "fields",
    "contacts",
    "runs",
    "messages",
    "broadcasts",
    "flow_starts",
    "boundaries",
    "labels",
)


def _normalise(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in TIME_KEYS and isinstance(value, str):
                out[key] = norm_time(value)
            else:
                out[key] = _normalise(value)
        return out
    if isinstance(obj, list):
        return [_normalise(item) for item in obj]
    return obj


def sample(directory: Path, name: str) -> Any:
    """One sample payload file, parsed."""
    return json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))


def load_fixtures(double: FakeRapidPro, directory: Path) -> None:
    state = double.state
    org = sample(directory, "org")
    state.org.update(org)
    for name in COLLECTIONS:
        records = _normalise(sample(directory, name)["results"])
        if name == "broadcasts":
            base = state.org.get("primary_language") or "eng"
            for record in records:
                if isinstance(record.get("text"), str):
                    record["text"] = {base: record["text"]}
        getattr(state, name).extend(records)
    for flow in state.flows:
        state.definitions.setdefault(flow["uuid"], definition_from_results(flow, double.ids))
    state.reindex()
