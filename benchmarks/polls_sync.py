"""Benchmark ``polls_sync``: the contact and metadata sync against the RapidPro double.

The double serves ``contacts`` contacts spread over 200 panel groups (each linked to a
district of the registry) and two cohort groups, with two URNs and three fields each.
Measured through the real client over HTTP:

- ``polls.sync_contacts_first``: the first contact sync (every contact → Contact + Person +
  identifiers + cohorts) at ≥ 500 contacts/s of closedloop's own time (the double's
  request handling is subtracted and reported);
- ``polls.sync_contacts_incremental``: the next sync after 1 % of the contacts changed
  ≤ 2 s (it lists only the changes, then reconciles placement for everyone);
- ``polls.sync_contacts_unchanged``: a full re-read that changes nothing ≤ its first time.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Context, Measurement

SIZES = {
    "ci": {"contacts": 1_000, "panels": 50},
    "full": {"contacts": 5_000, "panels": 200},
}
FIRST_RATE = 500  # contacts per second, closedloop's own time (RapidPro itself serves ~250/s)
INCREMENTAL_LIMIT = 2.0


def _timed_double(server: Any) -> list[float]:
    spent = [0.0]
    handle = server.handle

    def timed_handle(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return handle(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - begin

    server.handle = timed_handle
    return spent


def _arrange(ctx: Context, server: Any, size: dict[str, int]) -> Any:
    from closedloop.core.tenancy import account_scope
    from closedloop.people.models import Cohort
    from closedloop.polls import sync
    from closedloop.polls import testing as t
    from closedloop.polls.models import ContactGroup, GroupRole
    from closedloop.registry.services import orgunit_create

    panels = [server.add_group(f"District {i} panel") for i in range(size["panels"])]
    cohorts = [server.add_group("Teachers"), server.add_group("Parents")]
    for key, kind in (("district", "text"), ("age", "number"), ("joined", "datetime")):
        server.add_field(key, key.title(), kind)
    for i in range(size["contacts"]):
        groups = [panels[i % len(panels)]["uuid"], cohorts[i % 2]["uuid"]]
        server.add_contact(
            f"Contact {i}",
            [f"tel:+2507{i:08d}", f"whatsapp:2507{i:08d}"],
            groups=groups,
            fields={"district": f"D{i % 30}", "age": 20 + i % 40, "joined": None},
        )
    server.state.touch()
    with account_scope(ctx.account):
        conn = t.make_connection(ctx.account, host_url=server.url, token=server.token)
        country = orgunit_create(account=ctx.account, actor=None, name="Country")
        units = [
            orgunit_create(account=ctx.account, actor=None, name=f"District {i}", parent=country)
            for i in range(size["panels"])
        ]
        sync.sync_groups(conn)
        sync.sync_fields(conn)
        rows = {g.name: g for g in ContactGroup.objects.filter(connection=conn)}
        for i, unit in enumerate(units):
            row = rows[f"District {i} panel"]
            row.role, row.org_unit = GroupRole.PANEL, unit
            row.save()
        for name in ("Teachers", "Parents"):
            row = rows[name]
            row.role = GroupRole.COHORT
            row.cohort = Cohort.objects.create(account=ctx.account, name=name)
            row.save()
    return conn


def bench_sync_contacts(ctx: Context) -> list[Measurement]:
    from closedloop.core.tenancy import account_scope
    from closedloop.polls import sync
    from closedloop.polls.models import Connection, Contact
    from closedloop.polls.rapidpro_double import FakeRapidPro

    size = SIZES[ctx.size]
    server = FakeRapidPro(seed=5)
    server.start()
    try:
        conn = _arrange(ctx, server, size)
        spent = _timed_double(server)
        with account_scope(ctx.account):
            start = time.perf_counter()
            first = sync.sync_contacts(conn)
            first_wall = time.perf_counter() - start
            first_double = spent[0]
            stored = Contact.objects.filter(connection=conn, is_active=True).count()
        if stored != size["contacts"]:
            raise RuntimeError(f"{stored} contacts stored, {size['contacts']} expected")
        own = first_wall - first_double
        # 1 % of the contacts change in RapidPro
        changed = max(1, size["contacts"] // 100)
        for contact in server.state.contacts[:changed]:
            contact["name"] += " (moved)"
            contact["modified_on"] = server.state.now()
        server.state.touch()
        spent[0] = 0.0
        with account_scope(ctx.account):
            conn = Connection.objects.get(pk=conn.pk)
            start = time.perf_counter()
            incremental = sync.sync_contacts(conn)
            inc_wall = time.perf_counter() - start
        if incremental["contacts_updated"] != changed:
            raise RuntimeError(f"{incremental['contacts_updated']} updated, {changed} expected")
        inc_double = spent[0]
        spent[0] = 0.0
        with account_scope(ctx.account):
            start = time.perf_counter()
            unchanged = sync.sync_contacts(conn, full=True)
            full_wall = time.perf_counter() - start
        if unchanged["contacts_updated"] or unchanged["contacts_created"]:
            raise RuntimeError("a full re-read of unchanged contacts wrote rows")
        full_double = spent[0]
    finally:
        server.stop()
    rate = size["contacts"] / own if own > 0 else float("inf")
    first_m = ctx.measure(
        "polls.sync_contacts_first",
        own,
        size["contacts"] / FIRST_RATE,
        f">= {FIRST_RATE} contacts/s (closedloop's time, double excluded)",
        contacts=size["contacts"],
        panels=size["panels"],
        contacts_per_second=round(rate),
        wall_seconds=round(first_wall, 3),
        double_seconds=round(first_double, 3),
        contacts_read=first["contacts_read"],
    )
    first_m.rate, first_m.unit = round(rate), "contacts/s"
    return [
        first_m,
        ctx.measure(
            "polls.sync_contacts_incremental",
            inc_wall,
            INCREMENTAL_LIMIT,
            f"<= {INCREMENTAL_LIMIT} s with 1 % of the contacts changed",
            changed=changed,
            double_seconds=round(inc_double, 3),
        ),
        ctx.measure(
            "polls.sync_contacts_unchanged",
            full_wall - full_double,
            max(own, 0.001) * 1.5,
            "full re-read of unchanged contacts <= 1.5 x the first sync (double excluded)",
            wall_seconds=round(full_wall, 3),
            double_seconds=round(full_double, 3),
        ),
    ]


BENCHMARKS = {"sync_contacts": bench_sync_contacts}
