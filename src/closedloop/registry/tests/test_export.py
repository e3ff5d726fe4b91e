"""Exporting org units: columns, filters, scope, XLSX, the job and the CLI, and round trips."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from closedloop.accounts.models import Account
from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import JobStatus
from closedloop.jobs.runtime import enqueue_job, execute_job
from closedloop.registry.exporter import filter_units, reimport_options, write_export
from closedloop.registry.importer import import_orgunits
from closedloop.registry.models import OrgUnit
from closedloop.registry.selectors import visible_units
from closedloop.registry.tasks import EXPORT_KIND


def export_csv(world, membership=None, **filters) -> list[dict[str, str]]:
    buffer = io.BytesIO()
    with account_scope(world.account):
        units = visible_units(membership) if membership else OrgUnit.objects.all()
        write_export(filter_units(units, **filters), "csv", buffer)
    text = buffer.getvalue().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_it_writes_one_column_per_parent_level_named_after_the_types(world):
    rows = export_csv(world)
    assert list(rows[0]) == [
        "Country",
        "Region",
        "District",
        "name",
        "type",
        "code",
        "ref",
        "latitude",
        "longitude",
        "status",
        "id",
    ]
    school = next(r for r in rows if r["name"] == "Northvale Primary")
    assert (school["Country"], school["Region"], school["District"]) == (
        "Atlantis",
        "North",
        "Northvale",
    )
    assert (school["type"], school["code"], school["latitude"], school["longitude"]) == (
        "School",
        "NP1",
        "1.5",
        "30.1",
    )
    assert school["id"] == str(world.school_n1.pk)
    country = rows[0]
    assert (country["name"], country["Country"], country["latitude"]) == ("Atlantis", "", "")


def test_rows_come_in_tree_order(world):
    names = [r["name"] for r in export_csv(world)]
    assert names == [
        "Atlantis",
        "North",
        "Northvale",
        "Northvale Primary",
        "South",
        "Southport",
        "Southport Clinic",
    ]


def test_filters_keep_the_ancestors_names(world):
    rows = export_csv(world, type_id=world.school_s1.type_id, search="clinic")
    assert [(r["name"], r["Region"], r["District"]) for r in rows] == [
        ("Southport Clinic", "South", "Southport")
    ]
    assert export_csv(world, status="valid") == []
    assert export_csv(world, type_id="not-a-number") == []
    assert len(export_csv(world, type_id=str(world.school_s1.type_id))) == 2


def test_a_subtree_export_holds_only_that_subtree(world):
    rows = export_csv(world, root=world.region_south)
    assert [r["name"] for r in rows] == ["South", "Southport", "Southport Clinic"]


def test_a_supervisor_exports_only_his_subtree(world):
    rows = export_csv(world, membership=world.sam_membership)
    assert [r["name"] for r in rows] == ["North", "Northvale", "Northvale Primary"]
    assert rows[0]["Country"] == "Atlantis"


def test_the_export_reads_in_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    with account_scope(world.account), django_assert_max_num_queries(6):
        write_export(OrgUnit.objects.all(), "csv", io.BytesIO())


def test_an_xlsx_export_has_the_same_rows(world):
    from openpyxl import load_workbook

    buffer = io.BytesIO()
    with account_scope(world.account):
        count = write_export(OrgUnit.objects.all(), "xlsx", buffer)
    sheet = load_workbook(io.BytesIO(buffer.getvalue()), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert count == 7 and len(values) == 8
    assert values[0][:4] == ("Country", "Region", "District", "name")
    assert values[4][3] == "Northvale Primary" and values[4][7] == 1.5


def test_an_unknown_format_is_refused(world):
    with account_scope(world.account), pytest.raises(ValueError):
        write_export(OrgUnit.objects.all(), "pdf", io.BytesIO())


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_imports_back_into_a_fresh_account(world, fmt):
    buffer = io.BytesIO()
    with account_scope(world.account):
        write_export(OrgUnit.objects.all(), fmt, buffer)
        source = {
            tuple(u.name for u in [*_ancestors(u), u]): (
                u.latitude,
                u.longitude,
                u.type.name,
                u.code,
                u.depth,
            )
            for u in OrgUnit.objects.select_related("type")
        }
    fresh = Account.objects.create(name="Fresh", slug="fresh")
    data = buffer.getvalue()
    with account_scope(fresh):
        from closedloop.core.tabular import read_table

        columns = read_table(data, filename=f"x.{fmt}").columns
        result = import_orgunits(
            account=fresh,
            actor=None,
            path_or_bytes=data,
            options=reimport_options(columns),
            filename=f"x.{fmt}",
        )
        copied = {
            tuple(u.name for u in [*_ancestors(u), u]): (
                u.latitude,
                u.longitude,
                u.type.name,
                u.code,
                u.depth,
            )
            for u in OrgUnit.objects.select_related("type")
        }
    assert result.total_created == 7
    assert copied == source


def _ancestors(unit: OrgUnit) -> list[OrgUnit]:
    chain = []
    while unit.parent_id:
        unit = OrgUnit.objects.get(pk=unit.parent_id)
        chain.insert(0, unit)
    return chain


# --- the job ------------------------------------------------------------------------------


def export_job(world, user, **params):
    job = enqueue_job(
        account=user_account(world, user),
        kind=EXPORT_KIND,
        run_now=True,
        created_by=user,
        params={"format": "csv", **params},
    )
    return execute_job(job.pk)


def user_account(world, user):
    return world.other_account if user == world.charlie else world.account


def read_job_file(job, settings) -> list[dict[str, str]]:
    text = (settings.MEDIA_ROOT / job.result["file"]).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


def test_the_export_job_writes_a_file_under_media_exports(world, media):
    job = export_job(world, world.alice, root=world.region_south.pk)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result["rows"] == 3 and job.result["file"].startswith("exports/")
    assert [r["name"] for r in read_job_file(job, media)][0] == "South"


def test_the_export_job_of_a_supervisor_is_limited_to_his_subtree(world, media):
    job = export_job(world, world.sam, filters={"search": "o"})
    assert job.status == JobStatus.SUCCEEDED
    names = {r["name"] for r in read_job_file(job, media)}
    assert names == {"North", "Northvale", "Northvale Primary"}


def test_a_supervisor_cannot_export_outside_his_subtree(world, media):
    job = export_job(world, world.sam, root=world.region_south.pk)
    assert job.status == JobStatus.FAILED
    assert job.error == "The unit to export was not found."


def test_an_outsider_cannot_export_another_accounts_subtree(world, media):
    job = export_job(world, world.charlie, root=world.country.pk)
    assert job.status == JobStatus.FAILED
    assert job.error == "The unit to export was not found."


def test_the_export_job_refuses_an_unknown_format(world, media):
    job = export_job(world, world.alice, format="pdf")
    assert job.status == JobStatus.FAILED and "pdf" in job.error


# --- the CLI ------------------------------------------------------------------------------


def test_the_cli_exports_a_subtree_to_xlsx(world, tmp_path):
    target = tmp_path / "north.xlsx"
    out = io.StringIO()
    call_command(
        "export_orgunits",
        "--account",
        "ministry-a",
        "--root",
        str(world.region_north.pk),
        "-o",
        str(target),
        stdout=out,
    )
    assert "Wrote 3 units" in out.getvalue()
    assert target.read_bytes()[:2] == b"PK"


def test_the_cli_refuses_a_root_of_another_account(world, tmp_path):
    with pytest.raises(CommandError, match="No org unit"):
        call_command(
            "export_orgunits",
            "--account",
            "ministry-a",
            "--root",
            str(world.other_root.pk),
            "-o",
            str(tmp_path / "x.csv"),
        )
