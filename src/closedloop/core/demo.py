"""The demo country: a deterministic, fictional registry with people, for trying closedloop.

:func:`plan_country` builds everything in memory from a seed (no database), so the
same seed always gives the same names, codes, polygons and coordinates.
:func:`load_demo` writes the plans for the two demo accounts with bulk inserts and
creates the demo users. Only the management commands ``demo-data`` and ``demo`` use it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely import contains_xy
from shapely.geometry import MultiPolygon, Point, Polygon, mapping
from shapely.geometry.base import BaseGeometry
from shapely.ops import voronoi_diagram

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - documented demo login
DEMO_SLUG = "demo-ministry"
PARTNER_SLUG = "partner-ngo"
BATCH = 2000
FIXED_DAY = dt.date(2026, 1, 15)


@dataclass(frozen=True)
class Size:
    regions: int
    districts: int
    units: int  # every unit, the country included
    people: int


SIZES = {
    "small": Size(regions=2, districts=10, units=300, people=2000),
    "medium": Size(regions=8, districts=60, units=3000, people=30000),
}
PARTNER_SIZE = Size(regions=1, districts=2, units=15, people=60)


@dataclass(frozen=True)
class DemoUser:
    email: str
    full_name: str
    role: str
    account_slug: str
    scoped_to_region: bool = False


DEMO_USERS = (
    DemoUser("admin@demo.closedloop.org", "Amina Admin", "admin", DEMO_SLUG),
    DemoUser("supervisor@demo.closedloop.org", "Samuel Supervisor", "supervisor", DEMO_SLUG, True),
    DemoUser("instructor@demo.closedloop.org", "Irene Instructor", "instructor", DEMO_SLUG),
    DemoUser("viewer@demo.closedloop.org", "Victor Viewer", "viewer", DEMO_SLUG),
    DemoUser("ngo@demo.closedloop.org", "Nadia NGO", "admin", PARTNER_SLUG),
)

# --- names -------------------------------------------------------------------------

ONSETS = ["b", "d", "g", "k", "l", "m", "n", "r", "s", "t", "v", "w", "z", "ka", "ny", "sh", "ki"]
VOWELS = ["a", "e", "i", "o", "u", "a", "o"]
ENDINGS = ["", "", "", "n", "ra", "la", "ndo", "mbe", "ga", "ssa", "wi"]
GIVEN_NAMES = [
    "Amina",
    "Jean",
    "Fatima",
    "Grace",
    "Samuel",
    "Aisha",
    "Pierre",
    "Moses",
    "Esther",
    "Youssef",
    "Claire",
    "David",
    "Mariam",
    "Joseph",
    "Nadia",
    "Patrick",
    "Leila",
    "Emmanuel",
    "Sara",
    "Omar",
    "Ruth",
    "Daniel",
    "Chantal",
    "Ibrahim",
    "Agnes",
    "Karim",
    "Beatrice",
    "Hassan",
    "Josephine",
    "Eric",
    "Salma",
    "Olivier",
    "Zainab",
    "Paul",
    "Hawa",
    "Yves",
]
SCHOOL_KINDS = ["Primary School", "Primary School", "Secondary School"]
CLINIC_KINDS = ["Health Centre", "Dispensary", "Health Post"]
LANGUAGES = ["en", "en", "fr", "fr", "ar"]


def place_name(rng: random.Random) -> str:
    syllables = [rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 3))]
    return ("".join(syllables) + rng.choice(ENDINGS)).capitalize()


def unique_name(rng: random.Random, taken: set[str], suffix: str = "") -> str:
    for _ in range(50):
        name = f"{place_name(rng)}{suffix}"
        if name not in taken:
            taken.add(name)
            return name
    raise RuntimeError("could not find a free name")  # pragma: no cover - 17^3 names


# --- geometry ----------------------------------------------------------------------


def country_shape(rng: random.Random, center: tuple[float, float], radius: float) -> Polygon:
    """A smooth, irregular blob that reads as a country on a map."""
    waves = [
        (k, rng.uniform(0.04, 0.16) / k**0.5, rng.uniform(0, 2 * math.pi)) for k in range(2, 7)
    ]
    points = []
    for i in range(96):
        angle = 2 * math.pi * i / 96
        r = radius * (1 + sum(a * math.sin(k * angle + p) for k, a, p in waves))
        points.append(
            (
                round(center[0] + 1.25 * r * math.cos(angle), 5),
                round(center[1] + r * math.sin(angle), 5),
            )
        )
    return Polygon(points).buffer(0)


def sample_points(rng: random.Random, area: BaseGeometry, count: int) -> list[tuple[float, float]]:
    """``count`` points strictly inside ``area`` (rounded to 5 decimals, ~1 m)."""
    inner = area.buffer(-0.002)
    if inner.is_empty:
        inner = area
    min_x, min_y, max_x, max_y = inner.bounds
    found: list[tuple[float, float]] = []
    while len(found) < count:
        xs = np.array([round(rng.uniform(min_x, max_x), 5) for _ in range(count * 3)])
        ys = np.array([round(rng.uniform(min_y, max_y), 5) for _ in range(count * 3)])
        inside = contains_xy(inner, xs, ys)
        found += [(float(x), float(y)) for x, y, ok in zip(xs, ys, inside, strict=True) if ok]
    return found[:count]


def partition(rng: random.Random, area: BaseGeometry, parts: int) -> list[BaseGeometry]:
    """Split ``area`` into ``parts`` compact cells (Voronoi of relaxed seeds, clipped)."""
    if parts == 1:
        return [area]
    cloud = np.array(sample_points(rng, area, 60 * parts))
    seeds = cloud[:parts].copy()
    for _ in range(6):  # Lloyd relaxation: seeds move to the middle of their points
        nearest = np.argmin(((cloud[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2), axis=1)
        seeds = np.array([cloud[nearest == i].mean(axis=0) for i in range(parts)])
    diagram = voronoi_diagram(_multipoint(seeds), envelope=area.envelope.buffer(1))
    cells = list(diagram.geoms)
    ordered = []
    for x, y in seeds:
        cell = next(c for c in cells if c.contains(Point(x, y)))
        ordered.append(_polygonal(cell.intersection(area)))
    return ordered


def _multipoint(seeds: np.ndarray) -> BaseGeometry:
    from shapely.geometry import MultiPoint

    return MultiPoint([(float(x), float(y)) for x, y in seeds])


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep the polygon parts of an intersection (drop stray lines and points)."""
    if geom.geom_type in {"Polygon", "MultiPolygon"}:
        return geom
    polygons = [g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon"]
    return MultiPolygon(polygons) if len(polygons) > 1 else polygons[0]


# --- the plan ----------------------------------------------------------------------


@dataclass
class UnitPlan:
    key: int  # position in the plan; parents come before children
    name: str
    type_name: str
    code: str
    parent_key: int | None
    geometry: BaseGeometry | None = None
    point: tuple[float, float] | None = None  # (lon, lat)
    opening_date: dt.date | None = None


@dataclass
class PersonPlan:
    name: str
    unit_key: int
    role: str  # teacher / student / health_worker
    language: str
    cohorts: tuple[str, ...]
    fields: dict[str, Any]
    email: str = ""
    phone: str = ""


@dataclass
class CountryPlan:
    name: str
    units: list[UnitPlan] = field(default_factory=list)
    people: list[PersonPlan] = field(default_factory=list)

    def regions(self) -> list[UnitPlan]:
        return [u for u in self.units if u.type_name == "Region"]

    def digest(self) -> str:
        """A fingerprint of everything generated (names, codes, coordinates, people)."""
        h = hashlib.sha256()
        for u in self.units:
            geo = json.dumps(mapping(u.geometry), sort_keys=True) if u.geometry else ""
            h.update(f"{u.name}|{u.code}|{u.parent_key}|{u.point}|{geo}\n".encode())
        for p in self.people:
            h.update(f"{p.name}|{p.unit_key}|{p.email}|{p.phone}|{p.cohorts}\n".encode())
        return h.hexdigest()


UNIT_TYPES = (("Country", 1), ("Region", 2), ("District", 3), ("School", 4), ("Health facility", 4))
COHORTS = ("Teachers", "Students", "Health workers", "Grade 4 2026", "Grade 5 2026", "Grade 6 2026")


def plan_country(
    seed: int, size: Size, center: tuple[float, float] = (29.9, -1.9), code: str = "KV"
) -> CountryPlan:
    rng = random.Random(seed)
    taken: set[str] = set()
    country_name = unique_name(rng, taken)
    plan = CountryPlan(name=country_name)
    outline = country_shape(rng, center, radius=2.2 if size.units >= 1000 else 1.2)
    plan.units.append(UnitPlan(0, country_name, "Country", code, None, geometry=outline))
    regions = partition(rng, outline, size.regions)
    per_region = _spread(size.districts, size.regions)
    districts: list[UnitPlan] = []
    for r, (region_geom, n_districts) in enumerate(zip(regions, per_region, strict=True), 1):
        region = _add(plan, unique_name(rng, taken), "Region", f"{code}-R{r:02d}", 0, region_geom)
        for d_geom in partition(rng, region_geom, n_districts):
            number = len(districts) + 1
            districts.append(
                _add(
                    plan,
                    unique_name(rng, taken),
                    "District",
                    f"{code}-D{number:03d}",
                    region.key,
                    d_geom,
                )
            )
    facilities = size.units - len(plan.units)
    for district, count in zip(districts, _spread(facilities, len(districts)), strict=True):
        _add_facilities(rng, plan, district, count, code)
    _add_people(rng, plan, size.people)
    return plan


def _spread(total: int, buckets: int) -> list[int]:
    base, extra = divmod(total, buckets)
    return [base + (1 if i < extra else 0) for i in range(buckets)]


def _add(
    plan: CountryPlan, name: str, type_name: str, code: str, parent: int, geom: BaseGeometry
) -> UnitPlan:
    unit = UnitPlan(len(plan.units), name, type_name, code, parent, geometry=geom)
    plan.units.append(unit)
    return unit


def _add_facilities(
    rng: random.Random, plan: CountryPlan, district: UnitPlan, count: int, code: str
) -> None:
    assert district.geometry is not None
    taken: set[str] = set()
    for lon, lat in sample_points(rng, district.geometry, count):
        is_school = rng.random() < 0.7
        kind = rng.choice(SCHOOL_KINDS if is_school else CLINIC_KINDS)
        name = f"{unique_name(rng, taken)} {kind}"
        letter = "S" if is_school else "H"
        plan.units.append(
            UnitPlan(
                len(plan.units),
                name,
                "School" if is_school else "Health facility",
                f"{code}-{letter}{len(plan.units):05d}",
                district.key,
                point=(lon, lat),
                opening_date=FIXED_DAY - dt.timedelta(days=rng.randint(365, 365 * 60)),
            )
        )


def _add_people(rng: random.Random, plan: CountryPlan, total: int) -> None:
    schools = [u for u in plan.units if u.type_name == "School"]
    clinics = [u for u in plan.units if u.type_name == "Health facility"]
    staff: list[tuple[UnitPlan, str]] = [(c, "health_worker") for c in clinics for _ in range(3)]
    staff += [(s, "teacher") for s in schools for _ in range(rng.randint(3, 5))]
    staff = staff[: total // 2]
    students = (
        [(rng.choice(schools), "student") for _ in range(total - len(staff))] if schools else []
    )
    phones: set[str] = set()
    for number, (unit, role) in enumerate(staff + students, 1):
        plan.people.append(_person(rng, unit, role, number, phones))


def _person(
    rng: random.Random, unit: UnitPlan, role: str, number: int, phones: set[str]
) -> PersonPlan:
    given = rng.choice(GIVEN_NAMES)
    family = place_name(rng)
    phone = ""
    while not phone or phone in phones:
        phone = f"tel:+2507{rng.randint(20000000, 99999999)}"
    phones.add(phone)
    if role == "student":
        grade = rng.choice((4, 5, 6))
        cohorts: tuple[str, ...] = ("Students", f"Grade {grade} 2026")
        fields: dict[str, Any] = {
            "grade": grade,
            "birth_year": 2026 - 5 - grade - rng.randint(0, 2),
        }
        email = ""
    else:
        cohorts = ("Teachers",) if role == "teacher" else ("Health workers",)
        fields = {"birth_year": rng.randint(1965, 2000)}
        email = f"{given}.{family}{number}@people.demo.closedloop.org".lower()
    fields["role"] = role
    fields["gender"] = rng.choice(("F", "M"))
    return PersonPlan(
        name=f"{given} {family}",
        unit_key=unit.key,
        role=role,
        language=rng.choice(LANGUAGES),
        cohorts=cohorts,
        fields=fields,
        email=email,
        phone=phone,
    )


def batched(items: list[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- writing -----------------------------------------------------------------------


@dataclass
class LoadResult:
    created: bool
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


#: (name, build(account, users, result), purge(account) or None) registered by capability
#: apps in ``AppConfig.ready()``: ``build`` adds the app's demo content to the main demo
#: account (inside the account scope); ``purge`` removes what a raw delete cannot (e.g.
#: per-workflow tables).
DemoBuild = Callable[[Any, dict[str, Any], "LoadResult"], None]
DemoPurge = Callable[[Any], None]
DEMO_EXTENSIONS: dict[str, tuple[DemoBuild, DemoPurge | None]] = {}


def register_demo_extension(name: str, build: DemoBuild, purge: DemoPurge | None = None) -> None:
    DEMO_EXTENSIONS[name] = (build, purge)


def demo_exists() -> bool:
    from closedloop.accounts.models import Account

    return Account.objects.filter(slug=DEMO_SLUG).exists()


def load_demo(size: str = "medium", reset: bool = False, seed: int = 2026) -> LoadResult:
    """Create both demo accounts; with ``reset`` delete them first. Idempotent."""
    from django.db import transaction

    if reset:
        delete_demo()
    elif demo_exists():
        return LoadResult(created=False)
    result = LoadResult(created=True)
    with transaction.atomic():
        users = _create_users()
        main = _write_account(
            "Demo Ministry", DEMO_SLUG, plan_country(seed, SIZES[size]), users, result
        )
        partner_plan = plan_country(seed + 1, PARTNER_SIZE, center=(33.2, 1.2), code="PN")
        _write_account("Partner NGO", PARTNER_SLUG, partner_plan, users, result)
        _create_finished_job(main, users["admin@demo.closedloop.org"], result)
        _build_extensions(main, users, result)
    return result


def _build_extensions(account: Any, users: dict[str, Any], result: LoadResult) -> None:
    from closedloop.core.tenancy import account_scope

    for build, _purge in DEMO_EXTENSIONS.values():
        with account_scope(account):
            build(account, users, result)


def _create_users() -> dict[str, Any]:
    from closedloop.accounts.models import User

    users = {}
    for spec in DEMO_USERS:
        user = User.objects.filter(email=spec.email).first()
        if user is None:
            user = User.objects.create_user(spec.email, DEMO_PASSWORD, full_name=spec.full_name)
        users[spec.email] = user
    return users


def _write_account(
    name: str, slug: str, plan: CountryPlan, users: dict[str, Any], result: LoadResult
) -> Any:
    from closedloop.accounts.models import Account, Membership
    from closedloop.core.tenancy import account_scope

    account = Account.objects.create(
        name=name, slug=slug, languages=["en", "fr", "ar"], time_zone="Africa/Kigali"
    )
    with account_scope(account):
        unit_ids = _write_units(account, plan)
        people = _write_people(account, plan, unit_ids)
        region_key = plan.regions()[0].key
        for spec in DEMO_USERS:
            if spec.account_slug != slug:
                continue
            membership = Membership.objects.create(
                account=account, user=users[spec.email], role=spec.role
            )
            if spec.scoped_to_region:
                membership.scope.set([unit_ids[region_key]])
    result.counts[slug] = {"org_units": len(plan.units), "people": people}
    return account


def _write_units(account: Any, plan: CountryPlan) -> dict[int, int]:
    """Insert the plan's units with explicit ids and paths; returns plan key -> id."""
    from django.db.models import Max

    from closedloop.core.tenancy import scopes_disabled
    from closedloop.registry.models import OrgUnit, OrgUnitType
    from closedloop.registry.paths import child_path
    from closedloop.registry.services import default_version

    types = {
        name: OrgUnitType.objects.create(account=account, name=name, depth=depth)
        for name, depth in UNIT_TYPES
    }
    types["Country"].sub_types.set([types["Region"]])
    types["Region"].sub_types.set([types["District"]])
    types["District"].sub_types.set([types["School"], types["Health facility"]])
    version = default_version(account)
    with scopes_disabled():
        next_id = (OrgUnit.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    ids: dict[int, int] = {}
    rows: list[OrgUnit] = []
    paths: dict[int, str] = {}
    for unit in plan.units:
        pk = ids[unit.key] = next_id + unit.key
        parent_path = paths[unit.parent_key] if unit.parent_key is not None else ""
        paths[unit.key] = child_path(parent_path, pk)
        rows.append(_unit_row(account, version, types, unit, pk, ids, paths[unit.key]))
    for batch in batched(rows):
        OrgUnit.objects.bulk_create(batch)
    _reset_sequences(OrgUnit)
    return ids


def _unit_row(
    account: Any,
    version: Any,
    types: dict[str, Any],
    unit: UnitPlan,
    pk: int,
    ids: dict[int, int],
    path: str,
) -> Any:
    from closedloop.registry.geometry import prepare_geometry
    from closedloop.registry.models import OrgUnit, ValidationStatus

    row = OrgUnit(
        id=pk,
        account=account,
        version=version,
        name=unit.name,
        type=types[unit.type_name],
        parent_id=ids[unit.parent_key] if unit.parent_key is not None else None,
        path=path,
        depth=path.count("."),
        code=unit.code,
        ref=unit.code,
        validation_status=ValidationStatus.VALID,
        opening_date=unit.opening_date,
    )
    if unit.point:
        row.longitude, row.latitude = unit.point
    prepared = prepare_geometry(dict(mapping(unit.geometry))) if unit.geometry else None
    if prepared:
        row.geometry = json.loads(json.dumps(prepared.geojson))  # tuples -> lists
        row.simplified_geometry = json.loads(json.dumps(prepared.simplified))
        row.bbox_min_lon, row.bbox_min_lat, row.bbox_max_lon, row.bbox_max_lat = prepared.bbox
    return row


def _write_people(account: Any, plan: CountryPlan, unit_ids: dict[int, int]) -> int:
    from django.db.models import Max

    from closedloop.core.tenancy import scopes_disabled
    from closedloop.people.models import Cohort, Identifier, Person

    cohorts = {name: Cohort.objects.create(account=account, name=name) for name in COHORTS}
    with scopes_disabled():
        next_id = (Person.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    people, identifiers, links = [], [], []
    through = Person.cohorts.through
    for number, p in enumerate(plan.people):
        pk = next_id + number
        people.append(
            Person(
                id=pk,
                account=account,
                name=p.name,
                org_unit_id=unit_ids[p.unit_key],
                language=p.language,
                fields=p.fields,
            )
        )
        links += [through(person_id=pk, cohort_id=cohorts[c].pk) for c in p.cohorts]
        identifiers.append(Identifier(account=account, person_id=pk, kind="phone", value=p.phone))
        if p.email:
            identifiers.append(
                Identifier(account=account, person_id=pk, kind="email", value=p.email)
            )
    for model, rows in ((Person, people), (through, links), (Identifier, identifiers)):
        for batch in batched(rows):
            model.objects.bulk_create(batch)
    _reset_sequences(Person)
    return len(people)


def _reset_sequences(*models: Any) -> None:
    """After inserting explicit ids, PostgreSQL's sequences must move past them."""
    from django.core.management.color import no_style
    from django.db import connection

    statements = connection.ops.sequence_reset_sql(no_style(), list(models))
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def _create_finished_job(account: Any, admin: Any, result: LoadResult) -> None:
    from django.utils import timezone

    from closedloop.core.tenancy import account_scope
    from closedloop.jobs.models import Job, JobStatus

    units = result.counts[DEMO_SLUG]["org_units"]
    now = timezone.now()
    with account_scope(account):
        Job.objects.create(
            account=account,
            kind="registry.import_orgunits",
            title="Import of the demo registry",
            status=JobStatus.SUCCEEDED,
            progress_done=units,
            progress_total=units,
            message=f"Imported {units} org units.",
            created_by=admin,
            params={"source": "demo-data"},
            result={"created": units, "updated": 0},
            log=[
                {
                    "at": now.isoformat(timespec="seconds"),
                    "level": "info",
                    "text": f"Imported {units} org units.",
                }
            ],
            started_at=now - dt.timedelta(seconds=12),
            finished_at=now,
        )


def delete_demo() -> None:
    """Remove both demo accounts and everything they own, quickly (no per-row signals)."""
    from django.db import transaction

    from closedloop.accounts.models import Account, User

    accounts = list(Account.objects.filter(slug__in=[DEMO_SLUG, PARTNER_SLUG]))
    if accounts:
        with transaction.atomic():
            for account in accounts:
                _purge_account(account)
    User.objects.filter(email__in=[u.email for u in DEMO_USERS]).delete()


def _purge_account(account: Any) -> None:
    from django.apps import apps
    from django.db import connection

    from closedloop.accounts.models import Account
    from closedloop.core.tenancy import scopes_disabled

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA defer_foreign_keys = ON")  # until the transaction ends
    for _build, purge in DEMO_EXTENSIONS.values():
        if purge is not None:
            purge(account)
    with scopes_disabled():
        owned = [m for m in apps.get_models() if _account_field(m)]
        for through, fk, account_field in _through_models_pointing_at(owned):
            through.objects.filter(**{f"{fk}__{account_field}": account})._raw_delete("default")
        for model in owned:
            model._base_manager.filter(**{_account_field(model): account})._raw_delete("default")
        Account.objects.filter(pk=account.pk)._raw_delete("default")


def _account_field(model: Any) -> str:
    from closedloop.accounts.models import Account

    for f in model._meta.concrete_fields:
        if f.is_relation and f.many_to_one and f.related_model is Account:
            return str(f.name)
    return ""


def _through_models_pointing_at(owned: list[Any]) -> list[tuple[Any, str, str]]:
    """Auto-created many-to-many tables with a key to an account-owned model."""
    from django.apps import apps

    found = []
    for model in apps.get_models(include_auto_created=True):
        if not model._meta.auto_created:
            continue
        for f in model._meta.concrete_fields:
            if f.is_relation and f.related_model in owned:
                found.append((model, f.name, _account_field(f.related_model)))
    return found
