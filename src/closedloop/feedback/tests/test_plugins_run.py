"""Plugins: discovery and validation, enabling with a verified hash, runs as Jobs in a
separate process, output checks, and merging the outputs back on the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from closedloop.core.tenancy import account_scope
from closedloop.feedback import plugins, table
from closedloop.feedback.models import Column, PluginSetting
from closedloop.jobs.models import Job

pytestmark = pytest.mark.django_db

GOOD = """
import polars as pl

class_name = "Doubler"


class Doubler:
    name = "Doubler"
    description = "Doubles a number."
    input_column_names = ["score"]
    output_column_names = ["doubled"]
    output_suffix = ""
    parameters = [("factor", "double", [], 2.0, "Multiplier")]

    def run(self, frame, parameters):
        return frame.select((pl.col("score") * parameters["factor"]).alias("doubled"))
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, settings) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    settings.DATAOPS_PLUGIN_DIRECTORY = str(folder)
    return folder


def write_plugin(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def enable(world, key: str):
    with account_scope(world.account):
        return plugins.plugin_enable(account=world.account, actor=world.alice, key=key)


def run(world, workflow, key: str, params: dict, django_capture_on_commit_callbacks) -> Job:
    with account_scope(world.account), django_capture_on_commit_callbacks(execute=True):
        job = plugins.run_plugin(
            workflow=workflow, actor=world.alice, plugin_key=key, params=params
        )
    job.refresh_from_db()
    return job


def frame_of(world, workflow) -> pl.DataFrame:
    with account_scope(world.account):
        return table.read_frame(workflow)


def column_names(world, workflow) -> list[str]:
    with account_scope(world.account):
        return list(Column.objects.filter(workflow=workflow).values_list("name", flat=True))


# -- discovery -----------------------------------------------------------------------


def test_the_shipped_examples_are_always_discovered(settings):
    settings.DATAOPS_PLUGIN_DIRECTORY = ""
    found = {p.key: p for p in plugins.discover()}
    assert {"rounding", "linear_model"} <= set(found)
    assert found["rounding"].valid and found["linear_model"].valid
    assert found["linear_model"].output_column_names == ["prediction", "residual"]
    assert [p.name for p in found["rounding"].parameters] == ["decimals", "mode"]


def test_declaration_errors_are_reported(plugin_dir):
    write_plugin(plugin_dir, "broken", "raise RuntimeError('boom')\n")
    write_plugin(plugin_dir, "noclass", "x = 1\n")
    write_plugin(
        plugin_dir,
        "badparams",
        """
        class_name = "P"
        class P:
            name = ""
            description = "d"
            input_column_names = "score"
            output_column_names = ["a", "a"]
            output_suffix = 3
            parameters = [("n", "complex", [], 1, ""), ("m", "integer", [1, 2], 5, ""), "x"]
        """,
    )
    write_plugin(plugin_dir, "rounding", GOOD)  # clashes with the shipped one
    found = {(p.key, p.builtin): p for p in plugins.discover()}
    assert "cannot be imported: RuntimeError: boom" in found[("broken", False)].errors[0]
    assert "defines no plugin class" in found[("noclass", False)].errors[0]
    errors = " | ".join(found[("badparams", False)].errors)
    for fragment in (
        "name must be a non-empty string",
        "input_column_names must be a list",
        "output_column_names names a column twice",
        "output_suffix must be a string",
        "has no run(frame, parameters) method",
        "parameter 'n': type must be one of",
        "parameter 'm': default 5: “5” is not one of 1, 2",
        "parameters[2] must be (name, type, allowed values, default, help)",
    ):
        assert fragment in errors
    assert "already exists" in found[("rounding", False)].errors[0]
    assert found[("rounding", True)].valid


def test_an_invalid_plugin_cannot_be_enabled(world, plugin_dir):
    write_plugin(plugin_dir, "noclass", "x = 1\n")
    with pytest.raises(plugins.PluginError, match="has errors"):
        enable(world, "noclass")


# -- enabling and refusals -----------------------------------------------------------


def test_a_disabled_plugin_is_refused(world, make_workflow, plugin_dir):
    write_plugin(plugin_dir, "doubler", GOOD)
    workflow = make_workflow()
    with account_scope(world.account), pytest.raises(plugins.PluginError, match="not enabled"):
        plugins.run_plugin(
            workflow=workflow, actor=world.alice, plugin_key="doubler", params={"key": "email"}
        )
    enable(world, "doubler")
    with account_scope(world.account):
        plugins.plugin_disable(account=world.account, actor=world.alice, key="doubler")
        with pytest.raises(plugins.PluginError, match="not enabled"):
            plugins.check_runnable(world.account, "doubler")


def test_a_changed_plugin_must_be_verified_again(
    world, make_workflow, plugin_dir, django_capture_on_commit_callbacks
):
    path = write_plugin(plugin_dir, "doubler", GOOD)
    workflow = make_workflow()
    setting = enable(world, "doubler")
    assert setting.verified_hash == plugins.file_hash(path)
    path.write_text(GOOD.replace("Doubles a number.", "Doubles a number, now different."))
    with account_scope(world.account), pytest.raises(plugins.PluginError, match="changed"):
        plugins.run_plugin(
            workflow=workflow, actor=world.alice, plugin_key="doubler", params={"key": "email"}
        )
    enable(world, "doubler")  # an admin verifies it again
    job = run(world, workflow, "doubler", {"key": "email"}, django_capture_on_commit_callbacks)
    assert job.status == "succeeded", job.error


def test_the_plugin_is_enabled_per_account(world, make_workflow, plugin_dir):
    write_plugin(plugin_dir, "doubler", GOOD)
    enable(world, "doubler")
    with account_scope(world.other_account):
        assert not PluginSetting.objects.filter(plugin_key="doubler").exists()
        with pytest.raises(plugins.PluginError, match="not enabled"):
            plugins.check_runnable(world.other_account, "doubler")


def test_bad_run_parameters_are_refused(world, make_workflow, plugin_dir):
    write_plugin(plugin_dir, "doubler", GOOD)
    enable(world, "doubler")
    workflow = make_workflow()
    cases = [
        ({"key": "name"}, "not a key column"),
        ({"key": "email", "parameters": {"factor": "many"}}, "Parameter “factor”"),
        ({"key": "email", "parameters": {"nope": 1}}, "Unknown parameters: nope"),
    ]
    with account_scope(world.account):
        for params, message in cases:
            with pytest.raises(plugins.PluginError, match=message):
                plugins.run_plugin(
                    workflow=workflow, actor=world.alice, plugin_key="doubler", params=params
                )
        enable(world, "rounding")
        with pytest.raises(plugins.PluginError, match="not in the workflow: ghost"):
            plugins.run_plugin(
                workflow=workflow,
                actor=world.alice,
                plugin_key="rounding",
                params={"key": "email", "input_columns": ["ghost"]},
            )
        with pytest.raises(plugins.PluginError, match="at least one input"):
            plugins.run_plugin(
                workflow=workflow, actor=world.alice, plugin_key="rounding", params={"key": "email"}
            )
        with pytest.raises(plugins.PluginError, match="would overwrite its input"):
            plugins.run_plugin(
                workflow=workflow,
                actor=world.alice,
                plugin_key="rounding",
                params={"key": "email", "input_columns": ["score"], "suffix": ""},
            )
    with account_scope(world.account):
        assert not Job.objects.filter(kind=plugins.JOB_KIND).exists()


# -- runs ----------------------------------------------------------------------------


def test_rounding_adds_rounded_columns(world, make_workflow, django_capture_on_commit_callbacks):
    enable(world, "rounding")
    workflow = make_workflow()
    params = {"key": "email", "input_columns": ["score", "attempts"], "parameters": {"decimals": 0}}
    job = run(world, workflow, "rounding", params, django_capture_on_commit_callbacks)
    assert job.status == "succeeded", job.error
    assert job.result["outputs"] == ["score_rounded", "attempts_rounded"]
    frame = frame_of(world, workflow)
    assert frame["score_rounded"].to_list() == [92.0, 48.0, 75.0, None, 62.0, 31.0]
    assert frame["attempts_rounded"].to_list() == [1.0, 3.0, 2.0, 0.0, 2.0, 4.0]
    assert frame["score"].to_list() == [91.5, 48.0, 75.25, None, 62.0, 30.5]
    with account_scope(world.account):
        from closedloop.feedback.models import WorkflowLog

        assert WorkflowLog.objects.filter(workflow=workflow, name="plugin_execute").exists()


def test_rounding_again_replaces_the_outputs(
    world, make_workflow, django_capture_on_commit_callbacks
):
    enable(world, "rounding")
    workflow = make_workflow()
    params = {"key": "email", "input_columns": ["score"], "parameters": {"decimals": 1}}
    assert run(world, workflow, "rounding", params, django_capture_on_commit_callbacks).status == (
        "succeeded"
    )
    params["parameters"] = {"decimals": 0, "mode": "half_to_even"}
    assert run(world, workflow, "rounding", params, django_capture_on_commit_callbacks).status == (
        "succeeded"
    )
    frame = frame_of(world, workflow)
    assert frame["score_rounded"].to_list() == [92.0, 48.0, 75.0, None, 62.0, 30.0]
    assert column_names(world, workflow).count("score_rounded") == 1


def test_linear_model_predicts_and_gives_residuals(
    world, make_workflow, django_capture_on_commit_callbacks
):
    enable(world, "linear_model")
    data = {
        "id": ["a", "b", "c", "d", "e", "f"],
        "x1": [1.0, 2.0, 3.0, 4.0, 5.0, None],
        "x2": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2],
        "y": [3.1, 4.9, 7.6, 9.0, 11.4, None],
    }
    workflow = make_workflow(data=data, keys=("id",))
    params = {"key": "id", "input_columns": ["x1", "x2", "y"], "parameters": {"target": "y"}}
    job = run(world, workflow, "linear_model", params, django_capture_on_commit_callbacks)
    assert job.status == "succeeded", job.error
    frame = frame_of(world, workflow)
    x = np.column_stack([np.ones(5), data["x1"][:5], data["x2"][:5]])
    beta, *_ = np.linalg.lstsq(x, np.array(data["y"][:5]), rcond=None)
    expected = x @ beta
    got = frame["prediction_lm"].to_list()
    assert got[5] is None  # a predictor is empty
    assert np.allclose(got[:5], expected)
    assert np.allclose(frame["residual_lm"].to_list()[:5], np.array(data["y"][:5]) - expected)


def _table_unchanged(world, workflow, before: pl.DataFrame, names: list[str]) -> None:
    assert column_names(world, workflow) == names
    assert frame_of(world, workflow).equals(before)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("raise ValueError('no way')", "The plugin failed: ValueError: no way"),
        ("return frame.head(2).select(pl.col('score').alias('doubled'))", "returned 2 rows for 6"),
        ("return frame.select(pl.col('score').alias('other'))", "declared output columns: doubled"),
        ("return 42", "not a polars DataFrame"),
        (
            "return frame.select(pl.col('score').map_elements(lambda v: [v], return_dtype="
            "pl.List(pl.Float64)).alias('doubled'))",
            "cannot hold",
        ),
        ("import os; os._exit(3)", "ended abnormally (exit code 3)"),
    ],
)
def test_a_failing_plugin_fails_the_job_and_leaves_the_table_unchanged(
    world, make_workflow, plugin_dir, django_capture_on_commit_callbacks, body, message
):
    write_plugin(
        plugin_dir,
        "bad",
        GOOD.replace(
            'return frame.select((pl.col("score") * parameters["factor"]).alias("doubled"))', body
        ),
    )
    enable(world, "bad")
    workflow = make_workflow()
    before, names = frame_of(world, workflow), column_names(world, workflow)
    job = run(world, workflow, "bad", {"key": "email"}, django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert message in job.error
    _table_unchanged(world, workflow, before, names)


def test_a_slow_plugin_is_stopped(
    world, make_workflow, plugin_dir, settings, django_capture_on_commit_callbacks
):
    settings.DATAOPS_PLUGIN_TIMEOUT = 2
    write_plugin(
        plugin_dir,
        "slow",
        GOOD.replace("return frame.select(", "import time; time.sleep(30); return frame.select("),
    )
    enable(world, "slow")
    workflow = make_workflow()
    job = run(world, workflow, "slow", {"key": "email"}, django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert "did not finish within 2 seconds" in job.error


def test_the_plugin_process_has_no_django_settings_or_secrets(
    world, make_workflow, plugin_dir, django_capture_on_commit_callbacks
):
    probe = GOOD.replace(
        'return frame.select((pl.col("score") * parameters["factor"]).alias("doubled"))',
        "import os, sys\n"
        "        leaked = [k for k in os.environ if k.startswith(('DJANGO', 'DATABASE', 'SECRET',"
        " 'CLOSEDLOOP', 'AUTH_LDAP', 'EMAIL'))]\n"
        "        state = ','.join(leaked) + ('|django' if 'django' in sys.modules else '')\n"
        "        return frame.select(pl.repeat(state or 'clean', frame.height).alias('doubled'))",
    )
    write_plugin(plugin_dir, "probe", probe)
    enable(world, "probe")
    workflow = make_workflow()
    job = run(world, workflow, "probe", {"key": "email"}, django_capture_on_commit_callbacks)
    assert job.status == "succeeded", job.error
    assert set(frame_of(world, workflow)["doubled"].to_list()) == {"clean"}


def test_a_package_plugin_runs(
    world, make_workflow, plugin_dir, django_capture_on_commit_callbacks
):
    package = plugin_dir / "pkg_doubler"
    package.mkdir()
    (package / "helper.py").write_text("FACTOR = 3\n")
    (package / "__init__.py").write_text(
        GOOD.replace('parameters["factor"]', "FACTOR").replace(
            "import polars as pl", "import polars as pl\nfrom .helper import FACTOR"
        )
    )
    enable(world, "pkg_doubler")
    workflow = make_workflow()
    job = run(world, workflow, "pkg_doubler", {"key": "email"}, django_capture_on_commit_callbacks)
    assert job.status == "succeeded", job.error
    assert frame_of(world, workflow)["doubled"].to_list()[0] == pytest.approx(274.5)
