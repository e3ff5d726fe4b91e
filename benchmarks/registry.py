"""Suite ``registry``: import speed, subtree counts and the org-unit API at scale."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import Context, Measurement, median_of, timed

SIZES = {
    # units imported, units in the big tree
    "ci": {"import": 5_000, "tree": 50_000},
    "full": {"import": 100_000, "tree": 1_000_000},
}
# parent levels of the generated hierarchies: counts per level, top first
IMPORT_LEVELS = {"ci": [1, 5, 25, 125], "full": [1, 10, 100, 1_000]}
TREE_LEVELS = {"ci": [1, 5, 50, 500], "full": [1, 10, 200, 5_000]}
WORDS = ["Hill", "River", "Lake", "Valley", "Market", "Church", "Station", "Forest", "Bay"]


def level_names(level: int, count: int) -> list[str]:
    label = ["Country", "Region", "District", "Zone"][level]
    return [f"{label} {i}" for i in range(count)]


def leaf_name(i: int) -> str:
    return f"{WORDS[i % len(WORDS)]} School {i}"


def hierarchy_rows(total: int, levels: list[int]) -> Iterator[list[str]]:
    """Leaf rows of a hierarchy of ``total`` units with ``levels`` parent counts."""
    leaves = total - sum(levels)
    names = [level_names(depth, count) for depth, count in enumerate(levels)]
    rng = random.Random(7)
    for i in range(leaves):
        zone = i % levels[-1]
        chain = [zone]
        for depth in range(len(levels) - 2, -1, -1):
            chain.insert(0, chain[0] * levels[depth] // levels[depth + 1])
        parents = [names[d][chain[d]] for d in range(len(levels))]
        # parents are unique per level, so their names never repeat under another parent
        lat, lon = rng.uniform(-10, 10), rng.uniform(20, 40)
        yield [*parents, leaf_name(i), f"C{i}", f"{lat:.5f}", f"{lon:.5f}"]


def write_hierarchy_csv(path: Path, total: int, levels: list[int]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Country", "Region", "District", "Zone", "School", "Code", "Lat", "Lon"])
        writer.writerows(hierarchy_rows(total, levels))


def bench_import(ctx: Context) -> list[Measurement]:
    from closedloop.core.tenancy import account_scope
    from closedloop.registry.importer import ImportOptions, import_orgunits

    total = SIZES[ctx.size]["import"]
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    path = folder / "hierarchy.csv"
    write_hierarchy_csv(path, total, IMPORT_LEVELS[ctx.size])
    options = ImportOptions(
        parents=["Country", "Region", "District", "Zone"],
        name="School",
        code="Code",
        lat="Lat",
        lon="Lon",
        type_names=["Country", "Region", "District", "Zone", "School"],
    )
    cpu_before = time.process_time()
    with account_scope(ctx.account):
        seconds, result = timed(
            lambda: import_orgunits(
                account=ctx.account, actor=None, path_or_bytes=path, options=options
            )
        )
    path.unlink()
    return [
        ctx.measure(
            "registry.import_5_level_csv",
            seconds,
            10.0,
            "≤ 10 s for 100,000 units",
            units=result.total_created,
            rate_units_per_s=round(result.total_created / seconds),
            cpu_seconds=round(time.process_time() - cpu_before, 3),
        )
    ]


def build_tree(ctx: Context) -> tuple[float, list[int]]:
    """A big 5-level tree written with bulk inserts; returns (seconds, ids of the regions)."""
    from django.db import connection, transaction

    from closedloop.registry.bulk import (
        UnitRow,
        allocate_unit_ids,
        analyze_units,
        bulk_insert_units,
    )
    from closedloop.registry.paths import child_path
    from closedloop.registry.services import default_version

    total = SIZES[ctx.size]["tree"]
    levels = TREE_LEVELS[ctx.size]

    def load() -> list[int]:
        with transaction.atomic():
            version = default_version(ctx.account)
            ids = iter(allocate_unit_ids(total))
            rows: list[UnitRow] = []
            previous: list[UnitRow] = []
            for depth, count in enumerate([*levels, total - sum(levels)]):
                current = []
                for i in range(count):
                    parent = previous[i * len(previous) // count] if previous else None
                    pk = next(ids)
                    name = leaf_name(i) if depth == len(levels) else f"L{depth} {i}"
                    current.append(
                        UnitRow(
                            id=pk,
                            version_id=version.pk,
                            name=name,
                            path=child_path(parent.path if parent else "", pk),
                            depth=depth + 1,
                            parent_id=parent.id if parent else None,
                        )
                    )
                rows += current
                previous = current
            bulk_insert_units(ctx.account.pk, rows)
        return [row.id for row in rows[1 : 1 + levels[1]]]

    from closedloop.core.tenancy import account_scope

    with account_scope(ctx.account):
        seconds, regions = timed(load)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE registry_orgunit")
    else:
        analyze_units()
    return seconds, regions


def bench_descendants(ctx: Context) -> list[Measurement]:
    from closedloop.core.tenancy import account_scope
    from closedloop.registry.models import OrgUnit
    from closedloop.registry.selectors import count_descendants

    build_seconds, regions = build_tree(ctx)
    total = SIZES[ctx.size]["tree"]
    with account_scope(ctx.account):
        region = OrgUnit.objects.get(pk=regions[len(regions) // 2])
        count = count_descendants(region)
        seconds = median_of(20, lambda: count_descendants(region))
    return [
        ctx.measure(
            "registry.bulk_load_tree",
            build_seconds,
            float("inf"),
            "information only",
            units=total,
            rate_units_per_s=round(total / build_seconds),
        ),
        ctx.measure(
            "registry.count_descendants_of_a_region",
            seconds,
            0.020,
            "≤ 20 ms median of 20 at 1,000,000 units",
            descendants=count,
            units=total,
        ),
    ]


def bench_api_list(ctx: Context) -> list[Measurement]:
    from django.test import Client

    from closedloop.core.tenancy import account_scope
    from closedloop.registry.models import OrgUnit

    name = "registry.api_orgunit_list_search_parent"
    target = "≤ 30 ms median, 50 items, search + parent at 1,000,000 units"
    _seconds, regions = build_tree(ctx)
    with account_scope(ctx.account):
        parent = OrgUnit.objects.filter(depth=4).order_by("path")[len(regions)].pk
    raw = api_token(ctx)
    client = Client(headers={"authorization": f"Bearer {raw}", "x-account": ctx.account.slug})
    url = f"/api/v1/orgunits?search=river&parent={parent}&limit=50"
    try:
        response = client.get(url)
    except Exception as exc:  # the endpoint may not exist yet: report, do not crash
        return [ctx.failed(name, target, f"{type(exc).__name__}: {exc}")]
    if response.status_code != 200:
        return [
            ctx.failed(
                name,
                target,
                f"GET {url} answered {response.status_code}: {response.content[:200]!r}",
            )
        ]
    items = len(response.json().get("items", []))
    seconds = median_of(20, lambda: client.get(url))
    return [ctx.measure(name, seconds, 0.030, target, items=items, units=SIZES[ctx.size]["tree"])]


def api_token(ctx: Context) -> str:
    from closedloop.accounts.models import ApiToken, Membership, Role, User, hash_token

    user = User.objects.create_user("bench@example.org", "bench-password")
    Membership.objects.create(account=ctx.account, user=user, role=Role.ADMIN)
    try:
        from closedloop.accounts.services import token_create
    except ImportError:
        raw = ApiToken.generate()
        ApiToken.objects.create(user=user, name="bench", key_hash=hash_token(raw), hint=raw[:8])
        return raw
    return token_create(user=user, name="bench")[1]


BENCHMARKS = {
    "import": bench_import,
    "descendants": bench_descendants,
    "api_list": bench_api_list,
}
