"""Imports refuse bad and hostile files with a message naming the file and the element,
and leave nothing behind: zip bombs, oversized files, unsafe member names, broken JSON,
unknown references, bad data."""

from __future__ import annotations

import copy
import io
import json
import zipfile

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.feedback import transfer
from closedloop.feedback.models import Workflow

from .test_transfer_roundtrip import build_rich_workflow, do_import, export

pytestmark = pytest.mark.django_db


@pytest.fixture
def package(world, make_workflow) -> tuple[dict, bytes]:
    workflow = build_rich_workflow(world, make_workflow)
    archive = zipfile.ZipFile(io.BytesIO(export(world, workflow)))
    return json.loads(archive.read("workflow.json")), archive.read("data.csv")


def make_zip(members: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def refused(world, data: bytes, *fragments: str, name: str = "Imported") -> str:
    with pytest.raises(transfer.TransferError) as info:
        do_import(world, data, name=name)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    with account_scope(world.account):
        assert not Workflow.objects.filter(name=name).exists()
    return message


def test_a_zip_bomb_is_refused(world, settings):
    settings.DATAOPS_MAX_UPLOAD_SIZE = 1_000_000
    bomb = make_zip({"workflow.json": "{}", "data.csv": b"0" * 20_000_000})
    assert len(bomb) < 100_000
    refused(world, bomb, "larger than the 1.0 MB allowed")


def test_a_zip_with_lying_sizes_is_stopped_while_reading(world, settings, monkeypatch):
    settings.DATAOPS_MAX_UPLOAD_SIZE = 1_000_000
    bomb = make_zip({"workflow.json": "{}", "data.csv": b"0" * 5_000_000})
    real_infolist = zipfile.ZipFile.infolist

    def lying_infolist(self):
        infos = real_infolist(self)
        for info in infos:
            info.file_size = 10  # what a forged central directory would claim
        return infos

    monkeypatch.setattr(zipfile.ZipFile, "infolist", lying_infolist)
    # zipfile stops at the claimed size and finds the checksum wrong: refused either way
    refused(world, bomb, "data.csv")


def test_an_oversized_upload_is_refused(world, settings):
    settings.DATAOPS_MAX_UPLOAD_SIZE = 1000
    refused(world, make_zip({"workflow.json": "x" * 5000}, zipfile.ZIP_STORED), "larger than")


@pytest.mark.parametrize(
    "name", ["../workflow.json", "/etc/passwd", "a/../../b", "c:\\x", "x\\..\\y"]
)
def test_unsafe_member_names_are_refused(world, package, name):
    meta, data = package
    archive = make_zip({"workflow.json": json.dumps(meta), "data.csv": data, name: "boom"})
    refused(world, archive, "unsafe file name")


def test_a_duplicated_member_is_refused(world, package):
    meta, data = package
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("workflow.json", json.dumps(meta))
        archive.writestr("workflow.json", json.dumps({**meta, "name": "Other"}))
        archive.writestr("data.csv", data)
    refused(world, buffer.getvalue(), "the same file name twice")


def test_other_files_are_refused_or_named(world):
    refused(world, b"just some text", "neither a closedloop export")
    refused(world, b"PK\x03\x04 broken", "not a valid zip file")
    refused(world, make_zip({"data.csv": "a\n1\n"}), "workflow.json: is missing")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"format": "closedloop-workflow", "version": 1, "columns": [', "is not valid JSON"),
        ("\xff\xfe not utf8", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"format": "ontask", "version": 1}', "format: is not “closedloop-workflow”"),
        ('{"format": "closedloop-workflow", "version": 99}', "version: 99 is not a version"),
    ],
)
def test_broken_json_is_refused(world, text, fragment):
    refused(world, make_zip({"workflow.json": text, "data.csv": ""}), "workflow.json", fragment)


def _with(meta: dict, change) -> dict:
    changed = copy.deepcopy(meta)
    change(changed)
    return changed


def _column(meta: dict, name: str) -> dict:
    return next(c for c in meta["columns"] if c["name"] == name)


def _action(meta: dict, name: str) -> dict:
    return next(a for a in meta["actions"] if a["name"] == name)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            lambda m: _column(m, "score").update(data_type="money"),
            ["workflow.json: columns[2] “score”.data_type:", "Input should be"],
        ),
        (
            lambda m: m["columns"].append(dict(m["columns"][1])),
            ["column “name”: the name is used twice"],
        ),
        (
            lambda m: [c.update(is_key=False) for c in m["columns"]],
            ["at least one column must be a key"],
        ),
        (
            lambda m: m["filters"][0]["formula"]["rules"][0].update(field="ghost", id="ghost"),
            ["filter “Low scores”", "ghost"],
        ),
        (
            lambda m: m["views"][0]["columns"].append("ghost"),
            ["view “Low view”: uses the unknown column “ghost”"],
        ),
        (
            lambda m: m["views"][0].update(filter="Nope"),
            ["view “Low view”: uses the unknown filter “Nope”"],
        ),
        (
            lambda m: _action(m, "Week 3 email")["conditions"][0]["formula"]["rules"][0].update(
                field="ghost"
            ),
            ["action “Week 3 email”: condition “Passed”", "ghost"],
        ),
        (
            lambda m: _action(m, "Week 3 email").update(filter="Nope"),
            ["action “Week 3 email”: uses the unknown filter “Nope”"],
        ),
        (
            lambda m: _action(m, "Check-in")["columns"][0].update(column="ghost"),
            ["action “Check-in”: uses the unknown column “ghost”"],
        ),
        (
            lambda m: _action(m, "Check-in")["columns"][0].update(condition="Nope"),
            ["action “Check-in”: uses the unknown condition “Nope”"],
        ),
        (
            lambda m: _action(m, "Rubric")["rubric_cells"][0].update(level=7),
            ["action “Rubric”: rubric level 7 of “grade” does not exist"],
        ),
        (
            lambda m: _action(m, "Rubric").update(action_type="fax"),
            ["actions[", "“Rubric”.action_type"],
        ),
        (
            lambda m: _action(m, "Week 3 email").update(text_content="{% if Nope %}x{% endif %}"),
            ["action “Week 3 email”", "Nope"],
        ),
        (
            lambda m: m["schedules"][0].update(action="Ghost action"),
            ["schedule “Nightly rounding”", "Ghost action"],
        ),
    ],
)
def test_unknown_references_are_refused_before_anything_is_written(
    world, package, change, fragments
):
    meta, data = package
    archive = make_zip({"workflow.json": json.dumps(_with(meta, change)), "data.csv": data})
    refused(world, archive, *fragments)


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda csv: csv.replace("email,name,", "mail,name,", 1), ["data.csv: email: is declared"]),
        (lambda csv: csv.replace(",comment", ",comment,extra", 1), ["data.csv: extra"]),
        (lambda csv: csv.replace(",1,true,", ",one,true,", 1), ["data.csv", "attempts", "rows 1"]),
        (
            lambda csv: csv.replace("2024-03-01T09:00:00.000000Z", "yesterday", 1),
            ["data.csv: submitted: row 1", "yesterday"],
        ),
        (lambda csv: csv.replace("ben@example.org", "ana@example.org", 1), ["data.csv", "email"]),
        (lambda csv: csv.replace("ana@example.org", "", 1), ["data.csv", "email", "empty"]),
        (lambda csv: 'email,name\n"unterminated', ["data.csv"]),
    ],
)
def test_bad_data_is_refused_with_the_row_and_column(world, package, edit, fragments):
    meta, data = package
    archive = make_zip({"workflow.json": json.dumps(meta), "data.csv": edit(data.decode())})
    refused(world, archive, *fragments)


def test_a_category_violation_in_the_data_is_refused(world, package):
    meta, data = package
    lines = data.decode().splitlines()
    lines[1] = lines[1].rsplit(",", 2)[0] + ",F,"
    archive = make_zip({"workflow.json": json.dumps(meta), "data.csv": "\n".join(lines) + "\n"})
    refused(world, archive, "grade")
