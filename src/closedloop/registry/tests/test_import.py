"""The org-unit hierarchy import: reading, validation, atomic writes, jobs and the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from closedloop.core.models import AuditEntry
from closedloop.core.tabular import read_table
from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.jobs.models import Job, JobStatus
from closedloop.jobs.runtime import enqueue_job, execute_job
from closedloop.registry.importer import (
    ImportFailed,
    ImportOptions,
    import_orgunits,
    validate_import,
)
from closedloop.registry.models import DataSource, OrgUnit, OrgUnitType, SourceVersion
from closedloop.registry.paths import child_path
from closedloop.registry.tasks import IMPORT_KIND

FIXTURES = Path(__file__).parent / "fixtures"
SCHOOLS = (
    "Region,District,School,Code,Ref,Lat,Lon\n"
    "North,Central,Hilltop Primary,S001,MIN-001,1.5,30.1\n"
    "North,Central,Riverside Primary,S002,MIN-002,1.6,30.2\n"
    "North,Lakeside,Lakeside Secondary,S003,MIN-003,,\n"
    "South,Central,Harbour School,S004,MIN-004,-1.1,29.9\n"
)


def options(**changes: object) -> ImportOptions:
    base = ImportOptions(
        parents=["Region", "District"],
        name="School",
        code="Code",
        ref="Ref",
        lat="Lat",
        lon="Lon",
        type_names=["Province", "Area", "Facility"],
        source="Ministry list",
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def run(world, data: str | bytes, opts: ImportOptions | None = None, **kwargs):
    raw = data.encode() if isinstance(data, str) else data
    with account_scope(world.account):
        return import_orgunits(
            account=world.account,
            actor=world.alice,
            path_or_bytes=raw,
            options=opts or options(),
            **kwargs,
        )


def registry_state(world) -> list[tuple[str, str, int]]:
    with account_scope(world.account):
        return list(OrgUnit.objects.order_by("path").values_list("path", "name", "depth"))


def units(world, **filters) -> list[OrgUnit]:
    with account_scope(world.account):
        return list(
            OrgUnit.objects.filter(version__source__name="Ministry list", **filters)
            .select_related("type", "parent")
            .order_by("path")
        )


def by_name(world, name: str) -> OrgUnit:
    [unit] = units(world, name=name)
    return unit


def failure(world, data: str | bytes, opts: ImportOptions | None = None) -> ImportFailed:
    with pytest.raises(ImportFailed) as caught:
        run(world, data, opts)
    return caught.value


def problems(exc: ImportFailed) -> list[tuple[int, str]]:
    return [(p.row, p.column) for p in exc.report.problems]


def test_it_imports_a_three_level_hierarchy_with_types_codes_and_coordinates(world):
    result = run(world, SCHOOLS)

    assert result.units_created == {"Province": 2, "Area": 3, "Facility": 4}
    assert (result.rows_read, result.rows_imported, result.rows_skipped) == (4, 4, 0)
    assert result.encoding == "utf-8" and result.delimiter == ","
    hilltop = by_name(world, "Hilltop Primary")
    assert (hilltop.code, hilltop.ref, hilltop.latitude, hilltop.longitude) == (
        "S001",
        "MIN-001",
        1.5,
        30.1,
    )
    assert hilltop.type.name == "Facility" and hilltop.depth == 3
    assert hilltop.parent.name == "Central" and hilltop.parent.parent.name == "North"
    assert hilltop.path == child_path(hilltop.parent.path, hilltop.pk)
    assert by_name(world, "Lakeside Secondary").latitude is None
    with account_scope(world.account):
        assert OrgUnitType.objects.get(name="Area").depth == 2
        assert SourceVersion.objects.get(source__name="Ministry list").number == 1


def test_it_imports_five_levels_and_every_path_is_its_parents_plus_its_id(world):
    data = "A,B,C,D,E\n" + "".join(
        f"Country,R{r},D{r}{d},Z{r}{d}{z},Site {r}{d}{z}{s}\n"
        for r in range(2)
        for d in range(2)
        for z in range(2)
        for s in range(2)
    )
    opts = ImportOptions(parents=["A", "B", "C", "D"], name="E", source="Ministry list")

    result = run(world, data, opts)

    assert result.total_created == 1 + 2 + 4 + 8 + 16
    for unit in units(world):
        expected = child_path(unit.parent.path if unit.parent else "", unit.pk)
        assert unit.path == expected
        assert unit.depth == expected.count(".")
    assert max(u.depth for u in units(world)) == 5


def test_it_reads_utf8_with_a_byte_order_mark(world):
    result = run(world, b"\xef\xbb\xbf" + SCHOOLS.replace("Hilltop", "Hilltöp").encode())
    assert result.encoding == "utf-8-sig"
    assert by_name(world, "Hilltöp Primary").ref == "MIN-001"


def test_it_reads_latin1_files(world):
    data = SCHOOLS.replace("Harbour School", "École de Bouaké").encode("latin-1")
    result = run(world, data)
    assert result.encoding in {"cp1252", "latin-1"}
    assert by_name(world, "École de Bouaké").code == "S004"


def test_it_detects_a_semicolon_delimiter_and_decimal_commas(world):
    data = "Region;District;School;Code;Ref;Lat;Lon\nNorth;Central;Hilltop;S1;R1;1,5;30,25\n"
    result = run(world, data)
    assert result.delimiter == ";"
    assert by_name(world, "Hilltop").longitude == 30.25


def test_it_reads_quoted_multiline_cells_and_collapses_whitespace(world):
    data = (
        'Region,District,School\n"North","Central","Hilltop\n  Primary"\n" north ",central,Other\n'
    )
    run(
        world,
        data,
        ImportOptions(parents=["Region", "District"], name="School", source="Ministry list"),
    )
    assert by_name(world, "Hilltop Primary").parent.name == "Central"
    assert len(units(world, name__iexact="north")) == 1
    assert len(units(world, name="Central")) == 1


def test_empty_parent_cells_hang_the_unit_under_the_nearest_ancestor(world):
    data = "Region,District,School\nNorth,,Hilltop\nNorth,Central,Valley\n"
    run(
        world,
        data,
        ImportOptions(parents=["Region", "District"], name="School", source="Ministry list"),
    )
    assert by_name(world, "Hilltop").parent.name == "North"
    assert by_name(world, "Valley").parent.parent.name == "North"


def test_same_district_name_under_two_regions_gives_two_units(world):
    run(world, SCHOOLS)
    centrals = units(world, name="Central")
    assert sorted(c.parent.name for c in centrals) == ["North", "South"]
    assert by_name(world, "Harbour School").parent.parent.name == "South"


def test_duplicate_leaves_become_one_unit(world):
    data = SCHOOLS + "north,CENTRAL,hilltop   primary,S001,MIN-001,1.5,30.1\n"
    result = run(world, data)
    assert result.rows_imported == 5
    assert result.units_created["Facility"] == 4
    assert len(units(world, name__iexact="hilltop primary")) == 1


def test_a_reference_used_by_two_units_is_an_error_naming_both_rows(world):
    exc = failure(world, SCHOOLS + "South,Bayview,Bay School,S009,MIN-002,,\n")
    [problem] = exc.report.problems
    assert (problem.row, problem.column) == (6, "Ref")
    assert "rows 3 and 6" in problem.message and "MIN-002" in problem.message


def test_a_reference_already_owned_by_another_unit_is_an_error(world):
    run(world, SCHOOLS)
    header = SCHOOLS.splitlines()[0]
    exc = failure(world, header + "\nSouth,Bayview,Bay School,S009,MIN-004,,\n")
    assert problems(exc) == [(2, "Ref")]
    assert "already belongs" in exc.report.problems[0].message


@pytest.mark.parametrize(
    ("lat", "lon", "column", "fragment"),
    [
        ("1.5", "", "Lon", "both or neither"),
        ("", "30", "Lat", "both or neither"),
        ("95", "30", "Lat", "95 is outside -90..90"),
        ("1", "-181", "Lon", "-181 is outside -180..180"),
        ("north", "30", "Lat", "“north” is not a number"),
        ("1", "3O.5", "Lon", "“3O.5” is not a number"),
    ],
)
def test_bad_coordinates_are_reported_with_row_and_column(world, lat, lon, column, fragment):
    data = SCHOOLS + f"South,Bayview,Bay School,S009,MIN-009,{lat},{lon}\n"
    exc = failure(world, data)
    [problem] = exc.report.problems
    assert (problem.row, problem.column) == (6, column)
    assert fragment in problem.message


def test_every_problem_of_every_row_is_reported_at_once(world):
    data = SCHOOLS + "South,Bayview,,S9,R9,1,\nSouth,Bayview,X,S10,R10,abc,1\n"
    exc = failure(world, data)
    assert problems(exc) == [(6, "School"), (6, "Lon"), (7, "Lat")]
    assert exc.report.invalid_rows == 2 and exc.report.valid_rows == 4
    assert "2 row(s) have problems" in str(exc)


def test_a_missing_column_is_reported_before_any_row(world):
    exc = failure(world, SCHOOLS, options(parents=["Region", "Zone"], lat="Latitude"))
    assert exc.report.fatal
    assert problems(exc) == [(1, "Zone"), (1, "Latitude")]
    assert "Columns found: Region, District" in exc.report.problems[0].message


def test_a_wrong_number_of_type_names_is_refused(world):
    exc = failure(world, SCHOOLS, options(type_names=["A", "B", "C", "D"]))
    assert "one type name per level (3" in exc.report.problems[0].message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (bytes(range(256)) * 20, "binary"),
        (b"PK\x03\x04 not really a zip", "not a readable Excel"),
    ],
)
def test_unreadable_files_fail_with_a_clear_message(world, data, fragment):
    exc = failure(world, data)
    assert exc.report.fatal
    assert fragment in str(exc)


def test_it_imports_an_xlsx_sheet(world):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.title = "Ignored"
    sheet = workbook.create_sheet("Schools")
    sheet.append(["Region", "District", "School", "Code", "Ref", "Lat", "Lon"])
    sheet.append(["North", "Central", "Hilltop", "S1", 1001, 1.5, 30.0])
    buffer = io.BytesIO()
    workbook.save(buffer)

    result = run(world, buffer.getvalue(), options(sheet="Schools"))

    assert result.sheet == "Schools" and result.rows_imported == 1
    hilltop = by_name(world, "Hilltop")
    assert (hilltop.ref, hilltop.latitude) == ("1001", 1.5)


def test_only_valid_imports_the_good_rows_and_says_how_many_were_skipped(world):
    data = SCHOOLS + "South,Bayview,Bay School,S9,R9,95,30\nSouth,Cove,,S10,R10,,\n"
    result = run(world, data, options(only_valid=True))
    assert (result.rows_imported, result.rows_skipped, result.error_count) == (4, 2, 2)
    assert [e["row"] for e in result.errors] == [6, 7]
    assert units(world, name="Bay School") == [] and units(world, name="Cove") == []
    assert by_name(world, "Harbour School")


def test_only_valid_with_no_valid_row_imports_nothing(world):
    before = registry_state(world)
    with pytest.raises(ImportFailed):
        run(
            world,
            "Region,District,School\nNorth,Central,\n",
            options(only_valid=True, ref=None, code=None, lat=None, lon=None),
        )
    assert registry_state(world) == before


def test_importing_the_same_file_twice_creates_nothing_new(world):
    run(world, SCHOOLS)
    before = registry_state(world)

    again = run(world, SCHOOLS)

    assert again.units_created == {} and again.total_created == 0
    assert again.units_reused == 2 + 3 + 4
    assert again.rows_imported == 4
    assert registry_state(world) == before


def test_it_reuses_existing_units_of_the_default_version(world):
    data = "Country,Region,District,School\natlantis, NORTH ,Northvale,New School\n"
    result = run(
        world,
        data,
        ImportOptions(parents=["Country", "Region", "District"], name="School", leaf_type="School"),
    )
    assert result.units_created == {"School": 1} and result.units_reused == 3
    with account_scope(world.account):
        school = OrgUnit.objects.get(name="New School")
    assert school.parent_id == world.district_n1.pk
    assert school.path == child_path(world.district_n1.path, school.pk)
    assert school.type.name == "School"


def test_a_failed_import_leaves_the_registry_exactly_as_it_was(world):
    run(world, SCHOOLS)
    before = registry_state(world)
    with account_scope(world.account):
        types_before = OrgUnitType.objects.count()

    failure(
        world,
        SCHOOLS + "West,Far,New School,S9,R9,1,\n",
        options(type_names=["Zone", "Area", "Facility"]),
    )

    assert registry_state(world) == before
    with account_scope(world.account):
        assert OrgUnitType.objects.count() == types_before


def test_a_cancelled_import_writes_nothing(world):
    before = registry_state(world)

    def cancel() -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        run(world, SCHOOLS, check_cancelled=cancel)
    assert registry_state(world) == before
    with account_scope(world.account):
        assert not DataSource.objects.filter(name="Ministry list").exists()


def test_it_reports_progress_while_writing(world):
    seen: list[tuple[int, int]] = []
    run(world, SCHOOLS, progress=lambda done, total, message: seen.append((done, total)))
    assert seen[-1] == (9, 9)


def test_it_records_one_summary_audit_entry(world):
    with account_scope(world.account):
        before = AuditEntry.objects.count()
    run(world, SCHOOLS)
    with account_scope(world.account):
        assert AuditEntry.objects.count() == before + 1
        entry = AuditEntry.objects.first()
    assert entry.object_type == "registry.sourceversion"
    assert entry.changes["imported_units"] == [None, 9]
    assert entry.actor_id == world.alice.pk


def test_it_writes_into_a_named_source_version_and_status(world):
    run(world, SCHOOLS, options(version=3, status="valid"))
    hilltop = by_name(world, "Hilltop Primary")
    assert hilltop.version.number == 3
    assert hilltop.validation_status == "valid"


@pytest.mark.parametrize("number", [1, 2])
def test_a_version_number_alone_targets_the_default_source(db, number):
    from closedloop.accounts.models import Account

    fresh = Account.objects.create(name="Fresh", slug="fresh")
    with account_scope(fresh):
        import_orgunits(
            account=fresh,
            actor=None,
            path_or_bytes=SCHOOLS.encode(),
            options=options(source=None, version=number),
        )
        again = import_orgunits(
            account=fresh,
            actor=None,
            path_or_bytes=SCHOOLS.encode(),
            options=options(source=None, version=number),
        )
        unit = OrgUnit.objects.get(name="Hilltop Primary")
    assert again.total_created == 0
    assert (unit.version.source.name, unit.version.number) == ("Default", number)


def test_it_never_touches_another_account(world):
    with account_scope(world.other_account):
        import_orgunits(
            account=world.other_account,
            actor=world.charlie,
            path_or_bytes=SCHOOLS.encode(),
            options=options(),
        )
    with scopes_disabled():
        assert OrgUnit.objects.filter(account=world.account, name="Hilltop Primary").count() == 0
        assert (
            OrgUnit.objects.filter(account=world.other_account, name="Hilltop Primary").count() == 1
        )


def test_validate_import_reports_problems_and_writes_nothing(world):
    before = registry_state(world)
    table = read_table((SCHOOLS + "X,Y,Z,S9,R9,1,\n").encode())
    with account_scope(world.account):
        report = validate_import(world.account, table, options())
        assert not DataSource.objects.filter(name="Ministry list").exists()
    assert [(p.row, p.column) for p in report.problems] == [(6, "Lon")]
    assert report.valid_rows == 4 and not report.ok
    assert registry_state(world) == before


def test_options_survive_a_json_round_trip():
    opts = options(only_valid=True, version=2, delimiter=";")
    assert ImportOptions.from_json(opts.to_json()) == opts
    assert (
        ImportOptions.from_json(
            {"parents": ["A"], "name": "B", "version": "4", "unknown": 1}
        ).version
        == 4
    )


def test_the_fixture_file_imports(world):
    result = run(world, (FIXTURES / "schools.csv").read_bytes())
    assert result.rows_imported == 5 and result.units_created["Facility"] == 5


# --- the job ------------------------------------------------------------------------------


def import_job(world, tmp_path, data: str, opts: ImportOptions | None = None) -> Job:
    upload = tmp_path / "upload.csv"
    upload.write_text(data)
    job = enqueue_job(
        account=world.account,
        kind=IMPORT_KIND,
        run_now=True,
        created_by=world.alice,
        params={
            "file": str(upload),
            "filename": "schools.csv",
            "options": (opts or options()).to_json(),
        },
    )
    return job


def test_the_job_stores_the_result_and_logs_a_summary(world, tmp_path):
    job = execute_job(import_job(world, tmp_path, SCHOOLS).pk)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result["units_created"] == {"Province": 2, "Area": 3, "Facility": 4}
    assert job.result["rows_imported"] == 4
    texts = [entry["text"] for entry in job.log]
    assert "Created 4 unit(s) of type Facility." in texts


def test_the_job_fails_on_invalid_rows_with_the_count_and_the_first_errors(world, tmp_path):
    data = SCHOOLS + "South,Bayview,Bay School,S9,R9,95,30\n"
    job = execute_job(import_job(world, tmp_path, data).pk)
    assert job.status == JobStatus.FAILED
    assert job.error == "1 row(s) have problems; nothing was imported."
    assert any(e["text"].startswith("Row 6 [Lat]: 95") for e in job.log)
    assert units(world) == []


def test_a_cancelled_job_writes_nothing(world, tmp_path):
    before = registry_state(world)
    job = import_job(world, tmp_path, SCHOOLS)
    with scopes_disabled():
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    job = execute_job(job.pk)
    assert job.status == JobStatus.CANCELLED
    assert registry_state(world) == before


def test_the_job_fails_cleanly_when_the_upload_is_gone(world, tmp_path):
    job = import_job(world, tmp_path, SCHOOLS)
    (tmp_path / "upload.csv").unlink()
    job = execute_job(job.pk)
    assert job.status == JobStatus.FAILED
    assert "upload it again" in job.error


# --- the CLI ------------------------------------------------------------------------------


def cli(*args: str) -> str:
    out = io.StringIO()
    call_command("import_orgunits", *args, stdout=out)
    return out.getvalue()


def test_the_cli_imports_and_prints_a_summary(world, tmp_path):
    upload = tmp_path / "schools.csv"
    upload.write_text(SCHOOLS)
    output = cli(
        str(upload),
        "--account",
        "ministry-a",
        "--parents",
        "Region, District",
        "--name",
        "School",
        "--ref",
        "Ref",
        "--lat",
        "Lat",
        "--lon",
        "Lon",
        "--type-names",
        "Province,Area,Facility",
        "--source",
        "Ministry list",
    )
    assert "Created 4 unit(s) of type Facility." in output
    assert "4 of 4 rows imported" in output
    assert "Done: 9 units created" in output
    assert by_name(world, "Hilltop Primary").latitude == 1.5


def test_the_cli_fails_and_lists_the_rejected_rows(world, tmp_path, capsys):
    upload = tmp_path / "schools.csv"
    upload.write_text(SCHOOLS + "South,Bayview,Bay School,S9,R9,95,30\n")
    out = io.StringIO()
    with pytest.raises(CommandError, match="Nothing was imported: 1 row"):
        call_command(
            "import_orgunits",
            str(upload),
            "--account",
            "ministry-a",
            "--parents",
            "Region,District",
            "--name",
            "School",
            "--lat",
            "Lat",
            "--lon",
            "Lon",
            stdout=out,
        )
    assert "Row 6 [Lat]: 95 is outside -90..90." in out.getvalue()


def test_the_cli_with_only_valid_reports_skipped_rows(world, tmp_path):
    upload = tmp_path / "schools.csv"
    upload.write_text(SCHOOLS + "South,Bayview,Bay School,S9,R9,95,30\n")
    output = cli(
        str(upload),
        "--account",
        "ministry-a",
        "--parents",
        "Region,District",
        "--name",
        "School",
        "--lat",
        "Lat",
        "--lon",
        "Lon",
        "--only-valid",
    )
    assert "4 of 5 rows imported" in output and "1 skipped" in output
    assert "Skipped row 6 [Lat]" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "nope"], "No account"),
        (["--account", "ministry-a", "--parents", "Zone"], "Zone"),
    ],
)
def test_the_cli_refuses_bad_arguments(world, tmp_path, args, message):
    upload = tmp_path / "schools.csv"
    upload.write_text(SCHOOLS)
    with pytest.raises(CommandError, match=message):
        cli(str(upload), "--name", "School", *args)


def test_the_cli_refuses_a_missing_file(world, tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        cli(str(tmp_path / "nope.csv"), "--account", "ministry-a", "--name", "School")


def test_the_number_of_queries_does_not_grow_with_the_rows(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(rows: int, source: str) -> int:
        data = "Region,District,School\n" + "".join(
            f"R{i % 7},D{i % 31},School {i}\n" for i in range(rows)
        )
        opts = ImportOptions(
            parents=["Region", "District"],
            name="School",
            type_names=["Region", "District", "School"],
            source=source,
        )
        with CaptureQueriesContext(connection) as ctx:
            run(world, data, opts)
        return len(ctx.captured_queries)

    assert queries_for(40, "small") == queries_for(400, "large")
