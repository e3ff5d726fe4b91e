"""Seeded, deterministic realistic data for the double (``FakeRapidPro.generate``).

A small country "Fakeland": boundaries at levels 0–2 (country, 4 regions, 2–3 districts
each, small square polygons), one panel group per district (same names as the boundaries),
three cohorts, contact fields (gender, age, facility_code, registered_on), contacts with
phone URNs, and poll flows of 3–10 questions of the three kinds. Each poll runs weekly (one
universal poll run per week on the poll's weekday) over the past ``days``: most contacts
answer everything, some partly, some not at all, a few answer twice the same day. Incoming
and outgoing messages complete the picture.

Fast on purpose: 100,000 runs × 10 values take a couple of seconds (values come from
pre-categorised pools, not from evaluating the router cases per value).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING, Any

from .flows import categorizers
from .records import (
    Ids,
    contact_ref,
    make_boundary,
    make_contact,
    make_field,
    make_flow,
    make_group,
    make_message,
    ref,
)
from .state import UTC, iso

if TYPE_CHECKING:  # pragma: no cover
    from .server import FakeRapidPro

REGIONS = {
    "North": ["Kibali", "Nyamata", "Rulindo"],
    "South": ["Huye", "Gisagara", "Nyanza"],
    "East": ["Kayonza", "Ngoma"],
    "West": ["Rubavu", "Karongi", "Rusizi"],
}
COHORTS = ["Teachers", "Parents", "Health workers"]
FIRST = [
    "Aline",
    "Jean",
    "Marie",
    "Eric",
    "Grace",
    "Patrick",
    "Claudine",
    "Emmanuel",
    "Diane",
    "Olivier",
    "Alice",
    "Samuel",
]
LAST = [
    "Uwase",
    "Mugisha",
    "Habimana",
    "Ingabire",
    "Niyonzima",
    "Mukamana",
    "Nkurunziza",
    "Uwimana",
    "Bizimana",
]
NUMERIC = [
    ("How many children under 5 came to the clinic today?", [0, 12]),
    ("How many mosquito nets were distributed?", [0, 40]),
    ("How many pupils attended class?", [10, 60]),
    ("How many households did you visit?", [0, 15]),
    ("How many doses of vaccine are left?", [0, 100]),
]
CATEGORICAL = [
    ("Is the water point working?", ["Yes", "No"]),
    ("How is the quality of service?", ["Good", "Fair", "Poor"]),
    ("Were medicines in stock?", ["Yes", "No"]),
    ("Which day suits the meeting?", ["Monday", "Wednesday", "Friday"]),
]
OPEN = [
    "Any other comments?",
    "What was the biggest problem this week?",
    "What should we improve?",
]
WORDS = [
    "water",
    "clinic",
    "school",
    "road",
    "medicine",
    "nurse",
    "teacher",
    "rain",
    "harvest",
    "market",
    "children",
    "queue",
    "clean",
    "dirty",
    "broken",
    "late",
    "staff",
    "books",
    "money",
    "transport",
    "food",
    "good",
    "bad",
]
POLL_NAMES = ["Weekly health check", "School attendance", "Water point survey", "Community pulse"]


def _square(lon: float, lat: float, size: float) -> dict[str, Any]:
    ring = [
        [lon, lat],
        [lon + size, lat],
        [lon + size, lat + size],
        [lon, lat + size],
        [lon, lat],
    ]
    return {"type": "MultiPolygon", "coordinates": [[ring]]}


def _questions(rng: random.Random, count: int) -> list[dict[str, Any]]:
    kinds = ["numeric", "categorical", "open"] + [
        rng.choice(["numeric", "numeric", "categorical", "open"]) for _ in range(max(0, count - 3))
    ]
    kinds = kinds[:count]
    rng.shuffle(kinds)
    out, used = [], set()
    for index, kind in enumerate(kinds):
        if kind == "numeric":
            text, (lo, hi) = NUMERIC[index % len(NUMERIC)]
            mid = (lo + hi) // 2
            cases = [
                {"type": "has_number_between", "arguments": [lo, mid], "category": f"{lo} - {mid}"},
                {
                    "type": "has_number_between",
                    "arguments": [mid + 1, hi],
                    "category": f"{mid + 1} - {hi}",
                },
            ]
            question = {"name": text, "type": "numeric", "cases": cases, "range": (lo, hi)}
        elif kind == "categorical":
            text, cats = CATEGORICAL[index % len(CATEGORICAL)]
            question = {"name": text, "type": "categorical", "categories": cats}
        else:
            text = OPEN[index % len(OPEN)]
            question = {"name": text, "type": "open"}
        name = question["name"]
        if name in used:
            question["name"] = f"{name} ({index + 1})"
        used.add(question["name"])
        out.append(question)
    return out


def _pool(rng: random.Random, question: dict[str, Any], categorize: Any) -> list[tuple]:
    """Pre-categorised ``(input, value, category)`` answers for a question."""
    inputs: list[str] = []
    if question["type"] == "numeric":
        lo, hi = question["range"]
        for _ in range(40):
            number = rng.randint(lo, hi)
            inputs.append(rng.choice([str(number), f"{number}", f"we had {number}"]))
        inputs += ["none", "I don't know"]
    elif question["type"] == "categorical":
        for category in question["categories"]:
            word = category.lower()
            inputs += [word, category, f"{word} I think", f"{category}!"] * 3
        inputs += ["maybe", "not sure"]
    else:
        for _ in range(40):
            inputs.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))))
    return [(text, *categorize(text)) for text in inputs]


def generate(
    double: FakeRapidPro,
    *,
    contacts: int = 200,
    polls: int = 3,
    runs_per_poll: int | None = None,
    questions: int | None = None,
    days: int = 56,
    messages: bool = True,
    end: dt.datetime | None = None,
    seed: int | None = None,
    regions: dict[str, list[str]] | None = None,
) -> dict[str, int]:
    """Add seeded data to ``double`` (see the module docstring); returns counts added.

    ``regions`` (region name → district names) replaces the built-in geography, e.g. to
    name the panel groups after the org units of a registry (the demo does).
    """
    regions = regions or REGIONS
    state = double.state
    base_seed = double.seed if seed is None else seed
    salt = (base_seed or 0) * 1_000_003 + len(state.flows) * 7919 + len(state.contacts)
    rng = random.Random(salt)
    ids = Ids(salt + 1)
    if end is None:
        end = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start_day = end - dt.timedelta(days=days)
    counts = {"groups": 0, "fields": 0, "boundaries": 0, "contacts": 0, "flows": 0}
    counts.update({"runs": 0, "messages": 0})

    with state.lock:
        panels = [g for g in state.groups if g.get("name") in _district_names(regions)]
        cohorts = [g for g in state.groups if g.get("name") in COHORTS]
        if not panels:
            country = make_boundary(state, "R1000", "Fakeland", 0, geometry=_square(29, -3, 2))
            counts["boundaries"] += 1
            for r_index, (region, districts) in enumerate(regions.items()):
                lon, lat = 29 + (r_index % 2), -3 + (r_index // 2)
                parent = make_boundary(
                    state,
                    f"R{1100 + r_index}",
                    region,
                    1,
                    parent=country,
                    geometry=_square(lon, lat, 1),
                )
                counts["boundaries"] += 1
                for d_index, district in enumerate(districts):
                    make_boundary(
                        state,
                        f"R{1200 + r_index * 10 + d_index}",
                        district,
                        2,
                        parent=parent,
                        aliases=[district.upper()],
                        geometry=_square(lon + d_index * 0.3, lat + 0.1, 0.25),
                    )
                    counts["boundaries"] += 1
                    panels.append(make_group(state, ids, district))
                    counts["groups"] += 1
            for name in COHORTS:
                cohorts.append(make_group(state, ids, name))
                counts["groups"] += 1
        known = {f["key"] for f in state.fields}
        for key, kind in (
            ("gender", "text"),
            ("age", "number"),
            ("facility_code", "text"),
            ("registered_on", "datetime"),
        ):
            if key not in known:
                make_field(state, key, type=kind)
                counts["fields"] += 1

        new_contacts = []
        phone_base = 250780000000 + len(state.contacts) + len(state.deleted_contacts)
        for index in range(contacts):
            created = start_day - dt.timedelta(
                days=rng.randint(1, 90), seconds=rng.randint(0, 86399)
            )
            roll = rng.random()
            status = (
                "blocked" if roll < 0.02 else "stopped" if roll < 0.04 else
                "archived" if roll < 0.05 else "active"
            )  # fmt: skip
            groups = [panels[index % len(panels)]]
            if rng.random() < 0.6:
                groups.append(rng.choice(cohorts))
            urns = [f"tel:+{phone_base + index}"]
            if rng.random() < 0.1:
                urns.append(f"whatsapp:{phone_base + index}")
            contact = make_contact(
                state,
                ids,
                f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                urns,
                groups=groups,
                fields={
                    "gender": rng.choice(["female", "male"]),
                    "age": rng.randint(18, 70),
                    "facility_code": f"F{rng.randint(100, 999)}",
                    "registered_on": iso(created),
                },
                language="fra" if rng.random() < 0.2 else "eng",
                status=status,
                created_on=created,
                modified_on=created + dt.timedelta(seconds=rng.randint(1, 3600)),
            )
            new_contacts.append(contact)
        counts["contacts"] = len(new_contacts)

        active = [c for c in state.contacts if c.get("status") == "active"]
        for poll_index in range(polls):
            qcount = questions or rng.randint(3, 10)
            qs = _questions(rng, qcount)
            name = POLL_NAMES[poll_index % len(POLL_NAMES)]
            if len(state.flows) >= len(POLL_NAMES) or poll_index >= len(POLL_NAMES):
                name = f"{name} {len(state.flows) + 1}"
            flow = make_flow(
                state,
                ids,
                name,
                [{k: v for k, v in q.items() if k != "range"} for q in qs],
                created_on=start_day - dt.timedelta(days=7),
            )
            counts["flows"] += 1
            cats = categorizers(state.definitions[flow["uuid"]])
            keys = [r["key"] for r in flow["results"]]
            pools = [_pool(rng, q, cats[key]) for q, key in zip(qs, keys, strict=True)]
            nodes = [cats[key].node_uuid for key in keys]
            names = [cats[key].name for key in keys]
            counts["runs"] += _runs(
                state, ids, rng, flow, active, keys, names, nodes, pools,
                weekday=poll_index % 5, start_day=start_day, days=days,
                runs_per_poll=runs_per_poll,
            )  # fmt: skip

        if messages and active:
            for _ in range(len(active) * 2):
                contact = rng.choice(active)
                when = start_day + dt.timedelta(seconds=rng.randint(0, days * 86400 - 1))
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9)))
                make_message(state, ids, contact, text, direction="in", created_on=when)
                counts["messages"] += 1
                if rng.random() < 0.4:
                    reply = when + dt.timedelta(minutes=rng.randint(5, 600))
                    make_message(
                        state, ids, contact, "Thank you, we are looking into it.",
                        direction="out", created_on=reply,
                    )  # fmt: skip
                    counts["messages"] += 1
        state.reindex()
    return counts


def _district_names(regions: dict[str, list[str]] = REGIONS) -> set[str]:
    return {d for districts in regions.values() for d in districts}


def _runs(
    state: Any,
    ids: Ids,
    rng: random.Random,
    flow: dict[str, Any],
    active: list[dict[str, Any]],
    keys: list[str],
    names: list[str],
    nodes: list[str],
    pools: list[list[tuple]],
    *,
    weekday: int,
    start_day: dt.datetime,
    days: int,
    runs_per_poll: int | None,
) -> int:
    if not active:
        return 0
    first = start_day + dt.timedelta(days=(weekday - start_day.weekday()) % 7)
    weeks = [first + dt.timedelta(weeks=w) for w in range(days // 7 + 1)]
    weeks = [w for w in weeks if w < start_day + dt.timedelta(days=days)] or [first]
    per_week = (
        [runs_per_poll // len(weeks)] * len(weeks)
        if runs_per_poll is not None
        else [int(len(active) * rng.uniform(0.55, 0.8)) for _ in weeks]
    )
    if runs_per_poll is not None:
        per_week[-1] += runs_per_poll - sum(per_week)
    flow_ref = ref(flow)
    refs = [contact_ref(c) for c in active]
    runs = state.runs
    counters = flow["runs"]
    total = 0
    nq = len(keys)
    rand = rng.random
    stamp = _Stamper()
    pool_sizes = [len(p) for p in pools]
    exits = ["expired", "interrupted", None]
    for day, wanted in zip(weeks, per_week, strict=True):
        order = list(range(len(refs)))
        rng.shuffle(order)
        picks = [order[i % len(order)] for i in range(wanted)]
        # a few same-day repeats when every contact already answered once
        for slot in range(min(len(picks), max(1, wanted // 40))):
            if wanted < len(order):
                picks[slot] = picks[-1 - slot]
        day_us = int(day.timestamp()) * 1_000_000
        for contact_index in picks:
            created = day_us + int((6 + 14 * rand()) * 3600 * 1_000_000)
            roll = rand()
            if roll < 0.72:
                answered = nq
            elif roll < 0.85:
                answered = 0
            else:
                answered = 1 + int(rand() * max(1, nq - 1))
            values = {}
            path = []
            moment = created
            for q in range(answered):
                moment += int(20_000_000 + 70_000_000 * rand())
                when = stamp(moment)
                pick = int(rand() * pool_sizes[q])
                text, value, category = pools[q][pick]
                values[keys[q]] = {
                    "name": names[q],
                    "value": value,
                    "category": category,
                    "node": nodes[q],
                    "time": when,
                    "input": text,
                }
                path.append({"node": nodes[q], "time": when})
            if answered < nq:
                when = stamp(moment + 1_000_000)
                path.append({"node": nodes[answered], "time": when})
            exit_type = "completed" if answered == nq else exits[int(rand() * 3)]
            modified = stamp(moment + 5_000_000)
            created_on = stamp(created)
            uuid = ids()
            runs.append(
                {
                    "uuid": uuid,
                    "flow": flow_ref,
                    "contact": refs[contact_index],
                    "start": None,
                    "responded": answered > 0,
                    "path": path,
                    "values": values,
                    "created_on": created_on,
                    "modified_on": modified,
                    "exited_on": modified if exit_type else None,
                    "exit_type": exit_type,
                }
            )
            counters[exit_type or "active"] = counters.get(exit_type or "active", 0) + 1
            total += 1
    return total


class _Stamper:
    """Fast RapidPro timestamps from epoch microseconds (minute prefixes cached)."""

    def __init__(self) -> None:
        self.minutes: dict[int, str] = {}

    def __call__(self, micros: int) -> str:
        minute, rest = divmod(micros, 60_000_000)
        prefix = self.minutes.get(minute)
        if prefix is None:
            moment = dt.datetime.fromtimestamp(minute * 60, UTC)
            prefix = moment.strftime("%Y-%m-%dT%H:%M:")
            self.minutes[minute] = prefix
        seconds, micro = divmod(rest, 1_000_000)
        return f"{prefix}{seconds:02d}.{micro:06d}+00:00"
