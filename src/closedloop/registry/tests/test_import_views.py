"""The import wizard: upload, column mapping with preview, job creation."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import Job, JobStatus
from closedloop.registry.models import OrgUnit

pytestmark = pytest.mark.django_db

CSV_TEXT = (
    "Region,District,School,Code,Lat,Lon\n"
    "North,Northvale,Hill School,HS1,1.6,30.2\n"
    "North,Northvale,Lake School,LS1,1.7,30.3\n"
    "East,Eastwood,Wood School,WS1,0.5,31.0\n"
)
CSV = CSV_TEXT.encode()


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def eager(monkeypatch):
    """Run the job in this process when the transaction commits, as a worker would."""
    from closedloop.celery_app import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


def upload(client, content=None, name="units.csv", **extra):
    file = SimpleUploadedFile(name, CSV if content is None else content, content_type="text/csv")
    return client.post(reverse("registry:import"), {"file": file, **extra})


def mapping_url(response):
    assert response.status_code == 302, response.content.decode()[:2000]
    return response["Location"]


MAPPING = {
    "parent_1": "Region",
    "type_1": "Region",
    "parent_2": "District",
    "type_2": "District",
    "name": "School",
    "leaf_type": "School",
    "code": "Code",
    "lat": "Lat",
    "lon": "Lon",
    "status": "new",
}


def test_the_upload_page_has_the_file_input(world, client_for):
    response = client_for(world.alice).get(reverse("registry:import"))
    assert response.status_code == 200
    assert 'data-testid="import-file"' in response.content.decode()


def test_an_upload_is_stored_under_the_account_and_leads_to_the_mapping(world, client_for, media):
    location = mapping_url(upload(client_for(world.alice)))
    token = location.rstrip("/").rsplit("/", 1)[1]
    stored = media / "uploads" / str(world.account.pk) / token / "units.csv"
    assert stored.read_bytes() == CSV


def test_the_mapping_page_previews_the_first_rows_and_guesses_columns(world, client_for):
    client = client_for(world.alice)
    body = "Region,Name\n" + "".join(f"North,School {i:02d}\n" for i in range(15))
    html = client.get(mapping_url(upload(client, body.encode()))).content.decode()
    assert 'data-testid="import-preview"' in html
    assert "School 09" in html
    assert "School 10" not in html
    assert "15 rows" in html
    assert '<option value="Name" selected>' in html
    assert 'data-testid="map-parent-1"' in html


def test_submitting_the_mapping_starts_the_import_job(
    world, client_for, eager, django_capture_on_commit_callbacks
):
    client = client_for(world.alice)
    location = mapping_url(upload(client))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(location, MAPPING)
    with account_scope(world.account):
        job = Job.objects.get(kind="registry.import_orgunits")
    assert response.status_code == 302
    assert response["Location"].endswith(f"/jobs/{job.pk}/")
    assert Path(job.params["file"]).is_absolute()
    assert job.params["filename"] == "units.csv"
    options = job.params["options"]
    assert options["parents"] == ["Region", "District"]
    assert options["type_names"] == ["Region", "District"]
    assert options["name"] == "School"
    assert (options["lat"], options["lon"], options["ref"]) == ("Lat", "Lon", None)
    assert options["delimiter"] == ","
    assert job.created_by_id == world.alice.pk
    # Celery is eager in tests: the real importer ran
    assert job.status == JobStatus.SUCCEEDED, job.error
    with account_scope(world.account):
        assert OrgUnit.objects.filter(name="Wood School", code="WS1").exists()
    # the wizard's session entry is gone: the same token cannot start a second job
    assert client.get(location).status_code == 404


def test_mapping_errors_are_shown_and_start_nothing(world, client_for):
    client = client_for(world.alice)
    location = mapping_url(upload(client))
    cases = [
        ({**MAPPING, "parent_1": "", "type_1": ""}, "Fill the levels in order"),
        ({**MAPPING, "parent_2": "School"}, "A column is used twice"),
        ({**MAPPING, "lon": ""}, "both the latitude and the longitude"),
        ({**MAPPING, "name": "Nope"}, "Select a valid choice"),
    ]
    for data, message in cases:
        response = client.post(location, data)
        assert response.status_code == 200
        assert message in response.content.decode()
    with account_scope(world.account):
        assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"\x00\x01\x02binary", "units.csv", "binary data"),
        (b"PK\x03\x04broken", "units.xlsx", "not a readable Excel"),
        (b"a,b\n1,2,3\n", "units.csv", "Row 2 has 3 cells"),
        (b"name,name\nx,y\n", "units.csv", "twice"),
    ],
)
def test_an_unreadable_file_is_refused_with_the_reason_and_nothing_is_kept(
    world, client_for, media, content, name, message
):
    response = upload(client_for(world.alice), content, name)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not any((media / "uploads").rglob("*.*"))


def test_a_wrong_sheet_name_is_reported(world, client_for):
    from io import BytesIO

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["Region", "Name"])
    book.active.append(["North", "X"])
    data = BytesIO()
    book.save(data)
    response = upload(client_for(world.alice), data.getvalue(), "units.xlsx", sheet="Missing")
    assert "is not in the workbook" in response.content.decode()


def test_a_file_over_the_size_limit_is_refused(world, client_for, settings, media):
    settings.DATAOPS_MAX_UPLOAD_SIZE = 10
    response = upload(client_for(world.alice))
    assert response.status_code == 200
    assert "the largest accepted is 10 bytes" in response.content.decode()
    assert not (media / "uploads").exists()


def test_an_empty_upload_is_refused(world, client_for):
    response = client_for(world.alice).post(reverse("registry:import"), {})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()


def test_a_viewer_cannot_import(world, client_for):
    client = client_for(world.bob)
    assert client.get(reverse("registry:import")).status_code == 403
    assert upload(client).status_code == 403


def test_a_supervisor_cannot_import_because_imports_reach_the_whole_tree(world, client_for):
    assert client_for(world.sam).get(reverse("registry:import")).status_code == 403


def test_an_outsider_cannot_use_someone_elses_upload(world, client_for, client):
    location = mapping_url(upload(client_for(world.alice)))
    client.logout()
    charlie = client_for(world.charlie)
    assert charlie.get(location).status_code == 404
    assert charlie.post(location, MAPPING).status_code == 404


def test_an_unknown_token_is_404(world, client_for):
    url = reverse("registry:import_mapping", args=["6f1c1f0e-8a53-4e0a-9d59-0b9b3b0e4b11"])
    assert client_for(world.alice).get(url).status_code == 404


def test_columns_named_after_known_types_are_proposed_as_parent_levels(world, client_for):
    client = client_for(world.alice)
    html = client.get(mapping_url(upload(client))).content.decode()
    assert 'data-testid="map-parent-1"' in html
    level_1 = html.split('name="parent_1"', 1)[1].split("</select>", 1)[0]
    level_2 = html.split('name="parent_2"', 1)[1].split("</select>", 1)[0]
    assert '<option value="Region" selected>' in level_1
    assert '<option value="District" selected>' in level_2
    assert 'name="leaf_type" value="School"' in html
