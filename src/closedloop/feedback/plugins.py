"""Transformation and model plugins (OnTask's plugins, done safer).

A plugin is a Python module (``name.py``) or package (``name/__init__.py``) in the folder
``settings.DATAOPS_PLUGIN_DIRECTORY``; the examples in ``feedback/plugin_examples/`` are
always offered. The module names its class with ``class_name = "..."`` (or
``plugin_class = Cls``); the class declares ``name``, ``description``,
``input_column_names`` (empty: the user picks), ``output_column_names`` (empty: one
output per input, same name), ``output_suffix``, ``parameters`` (tuples ``(name, type,
allowed values, default, help)``) and ``run(frame, parameters) -> DataFrame``.
See ``docs/plugins.md``.

Trust and isolation
-------------------
Plugins are code the server operator installs. Discovery imports the module in the web
process to read its declaration. An account admin enables each plugin; the SHA-256 of
its files is stored with the decision, and a plugin whose files changed since must be
verified again before it runs. Running happens in a separate Python process
(``plugin_runner.py``, run as a script so neither Django nor closedloop's settings are
imported) started with an empty environment (no settings, database URL or
secrets), a CPU-time limit and a wall-clock timeout; it gets the input frame as Arrow
IPC and returns one. That keeps the database connection and Django out of the plugin's
reach and a crash or hang from taking the worker down; it is not a sandbox against
hostile code, which could still read files the worker's user may read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from closedloop.core.audit import record_audit
from closedloop.core.models import AuditEntry
from closedloop.feedback.models import COLUMN_NAME_MAX, Column, PluginSetting, Workflow
from closedloop.feedback.values import FeedbackError

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent / "plugin_examples"
RUNNER = Path(__file__).resolve().parent / "plugin_runner.py"
PARAMETER_TYPES = ("string", "integer", "double", "boolean")
JOB_KIND = "feedback.run_plugin"


def plugin_timeout() -> int:
    return int(getattr(settings, "DATAOPS_PLUGIN_TIMEOUT", 300))


class PluginError(FeedbackError):
    """A plugin cannot be (or could not be) run; the message is for the user."""


# -- declarations ---------------------------------------------------------------------


@dataclass
class PluginParameter:
    name: str
    type: str
    allowed: list[Any]
    default: Any
    help: str


@dataclass
class PluginInfo:
    key: str
    path: Path
    is_package: bool
    builtin: bool
    sha256: str
    class_name: str = ""
    name: str = ""
    description: str = ""
    input_column_names: list[str] = field(default_factory=list)
    output_column_names: list[str] = field(default_factory=list)
    output_suffix: str = ""
    parameters: list[PluginParameter] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def parameter(self, name: str) -> PluginParameter | None:
        return next((p for p in self.parameters if p.name == name), None)


_CACHE: dict[tuple[str, str], PluginInfo] = {}


def file_hash(path: Path) -> str:
    """SHA-256 over the plugin's files (every file of a package, by relative path)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if "__pycache__" in file.parts or file.suffix == ".pyc":
            continue
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _candidates(folder: Path) -> list[tuple[str, Path, bool]]:
    found: list[tuple[str, Path, bool]] = []
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_file() and entry.suffix == ".py":
            found.append((entry.stem, entry, False))
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            found.append((entry.name, entry, True))
    return found


def _check_parameter(raw: Any, index: int) -> tuple[PluginParameter | None, str | None]:
    if not isinstance(raw, list | tuple) or len(raw) != 5:
        return None, f"parameters[{index}] must be (name, type, allowed values, default, help)"
    name, kind, allowed, default, help_text = raw
    if not isinstance(name, str) or not name:
        return None, f"parameters[{index}]: the name must be a non-empty string"
    if kind not in PARAMETER_TYPES:
        return None, f"parameter {name!r}: type must be one of {', '.join(PARAMETER_TYPES)}"
    if not isinstance(allowed, list | tuple):
        return None, f"parameter {name!r}: allowed values must be a list"
    param = PluginParameter(name, kind, list(allowed), default, str(help_text or ""))
    try:
        coerced = coerce_parameter(param, default) if default not in (None, "") else default
    except PluginError as exc:
        return None, f"parameter {name!r}: default {default!r}: {exc}"
    if param.allowed and default not in (None, "") and coerced not in param.allowed:
        return None, f"parameter {name!r}: the default is not among the allowed values"
    param.default = coerced
    return param, None


def _read_declaration(info: PluginInfo) -> None:
    """Import the module and check the class it names; problems go to ``info.errors``."""
    module_name = f"closedloop_plugin_{info.key}_{info.sha256[:12]}"
    location = info.path / "__init__.py" if info.is_package else info.path
    try:
        spec = importlib.util.spec_from_file_location(
            module_name,
            location,
            submodule_search_locations=[str(info.path)] if info.is_package else None,
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        info.errors.append(f"cannot be imported: {type(exc).__name__}: {exc}")
        return
    cls = getattr(module, "plugin_class", None)
    class_name = getattr(module, "class_name", None)
    if cls is None and isinstance(class_name, str):
        cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        info.errors.append("defines no plugin class (set class_name = 'ClassName')")
        return
    info.class_name = cls.__name__
    _check_class(info, cls)


def _check_class(info: PluginInfo, cls: type) -> None:
    errors = info.errors
    for attr in ("name", "description"):
        value = getattr(cls, attr, None)
        if not isinstance(value, str) or (attr == "name" and not value.strip()):
            errors.append(f"{attr} must be a non-empty string" if attr == "name" else
                          f"{attr} must be a string")  # fmt: skip
    info.name = str(getattr(cls, "name", "") or info.key)
    info.description = str(getattr(cls, "description", "") or "")
    for attr in ("input_column_names", "output_column_names"):
        value = getattr(cls, attr, None)
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, str) and v.strip() for v in value
        ):
            errors.append(f"{attr} must be a list of column names")
            value = []
        if len(set(value)) != len(value):
            errors.append(f"{attr} names a column twice")
        setattr(info, attr, list(value))
    suffix = getattr(cls, "output_suffix", "")
    if not isinstance(suffix, str):
        errors.append("output_suffix must be a string")
        suffix = ""
    info.output_suffix = suffix
    if not info.output_column_names and info.input_column_names and not suffix:
        errors.append("without output_column_names, an output_suffix is needed")
    if not callable(getattr(cls, "run", None)):
        errors.append("has no run(frame, parameters) method")
    raw_parameters = getattr(cls, "parameters", [])
    if not isinstance(raw_parameters, list | tuple):
        errors.append("parameters must be a list")
        raw_parameters = []
    for index, raw in enumerate(raw_parameters):
        param, error = _check_parameter(raw, index)
        if error:
            errors.append(error)
        elif param is not None:
            if info.parameter(param.name):
                errors.append(f"parameter {param.name!r} is declared twice")
            info.parameters.append(param)


def discover() -> list[PluginInfo]:
    """Every plugin: the shipped examples, then the folder's (a clash is an error)."""
    folders: list[tuple[Path, bool]] = [(BUILTIN_DIR, True)]
    directory = getattr(settings, "DATAOPS_PLUGIN_DIRECTORY", "")
    if directory:
        folders.append((Path(directory).expanduser().resolve(), False))
    found: dict[str, PluginInfo] = {}
    plugins: list[PluginInfo] = []
    for folder, builtin in folders:
        for key, path, is_package in _candidates(folder):
            sha = file_hash(path)
            cached = _CACHE.get((str(path), sha))
            if cached is None:
                cached = PluginInfo(key, path, is_package, builtin, sha)
                if len(key) > 100:
                    cached.errors.append("the file name is longer than 100 characters")
                else:
                    _read_declaration(cached)
                _CACHE[(str(path), sha)] = cached
            info = cached
            if key in found:
                info = PluginInfo(key, path, is_package, builtin, sha, name=key)
                info.errors.append(
                    _("a plugin named “%(key)s” already exists (%(path)s); rename this one")
                    % {"key": key, "path": found[key].path}
                )
                plugins.append(info)
                continue
            found[key] = info
            plugins.append(info)
    return plugins


def get_plugin(key: str) -> PluginInfo:
    """The first plugin named ``key`` (a later one with the same name is an error entry)."""
    for info in discover():
        if info.key == key:
            return info
    raise PluginError(_("There is no plugin “%(key)s”.") % {"key": key})


# -- enabling ------------------------------------------------------------------------


def settings_by_key(account: Any) -> dict[str, PluginSetting]:
    return {s.plugin_key: s for s in PluginSetting.objects.filter(account=account)}


def plugin_status(info: PluginInfo, setting: PluginSetting | None) -> str:
    """``invalid``, ``disabled``, ``changed`` (files differ from the verified ones) or
    ``enabled``."""
    if not info.valid:
        return "invalid"
    if setting is None or not setting.enabled:
        return "disabled"
    if setting.verified_hash != info.sha256:
        return "changed"
    return "enabled"


def _setting_state(setting: PluginSetting) -> dict[str, Any]:
    return {"enabled": setting.enabled, "verified_hash": setting.verified_hash}


def plugin_enable(*, account: Any, actor: Any, key: str) -> PluginSetting:
    """Enable ``key`` for the account, verifying its files as they are now."""
    info = get_plugin(key)
    if not info.valid:
        raise PluginError(
            _("The plugin “%(key)s” has errors and cannot be enabled: %(errors)s")
            % {"key": key, "errors": "; ".join(info.errors)}
        )
    with transaction.atomic():
        setting, _created = PluginSetting.objects.get_or_create(account=account, plugin_key=key)
        before = _setting_state(setting)
        setting.enabled, setting.verified_hash = True, info.sha256
        setting.save(update_fields=["enabled", "verified_hash"])
        record_audit(
            account=account, actor=actor, action=AuditEntry.Action.UPDATE, obj=setting,
            before=before, after=_setting_state(setting),
        )  # fmt: skip
    return setting


def plugin_disable(*, account: Any, actor: Any, key: str) -> PluginSetting:
    with transaction.atomic():
        setting, _created = PluginSetting.objects.get_or_create(account=account, plugin_key=key)
        before = _setting_state(setting)
        setting.enabled = False
        setting.save(update_fields=["enabled"])
        record_audit(
            account=account, actor=actor, action=AuditEntry.Action.UPDATE, obj=setting,
            before=before, after=_setting_state(setting),
        )  # fmt: skip
    return setting


def runnable_plugins(account: Any) -> list[PluginInfo]:
    chosen = settings_by_key(account)
    return [i for i in discover() if plugin_status(i, chosen.get(i.key)) == "enabled"]


def check_runnable(account: Any, key: str) -> PluginInfo:
    info = get_plugin(key)
    setting = PluginSetting.objects.filter(account=account, plugin_key=key).first()
    status = plugin_status(info, setting)
    if status == "invalid":
        raise PluginError(
            _("The plugin “%(name)s” has errors: %(errors)s")
            % {"name": info.name, "errors": "; ".join(info.errors)}
        )
    if status == "disabled":
        raise PluginError(
            _("The plugin “%(name)s” is not enabled in this account.") % {"name": info.name}
        )
    if status == "changed":
        raise PluginError(
            _(
                "The files of the plugin “%(name)s” changed since an administrator enabled "
                "it. An administrator must verify it again before it runs."
            )
            % {"name": info.name}
        )
    return info


# -- run preparation -----------------------------------------------------------------


def coerce_parameter(param: PluginParameter, raw: Any) -> Any:
    if raw is None or raw == "":
        return param.default
    try:
        if param.type == "integer":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            value: Any = int(str(raw).strip()) if not isinstance(raw, int | float) else int(raw)
        elif param.type == "double":
            if isinstance(raw, bool):
                raise ValueError
            value = float(str(raw).strip()) if not isinstance(raw, int | float) else float(raw)
        elif param.type == "boolean":
            if isinstance(raw, bool):
                value = raw
            elif str(raw).strip().lower() in {"true", "1", "yes", "on"}:
                value = True
            elif str(raw).strip().lower() in {"false", "0", "no", "off"}:
                value = False
            else:
                raise ValueError
        else:
            value = str(raw)
    except (TypeError, ValueError):
        raise PluginError(
            _("“%(value)s” is not a valid %(type)s.") % {"value": raw, "type": param.type}
        ) from None
    if param.allowed and value not in param.allowed:
        raise PluginError(
            _("“%(value)s” is not one of %(allowed)s.")
            % {"value": value, "allowed": ", ".join(map(str, param.allowed))}
        )
    return value


@dataclass
class RunSpec:
    info: PluginInfo
    key: Column
    inputs: list[Column]
    parameters: dict[str, Any]
    suffix: str
    #: (name in the plugin's output, new column name in the table)
    outputs: list[tuple[str, str]]

    def as_params(self) -> dict[str, Any]:
        return {
            "input_columns": [c.name for c in self.inputs],
            "key": self.key.name,
            "parameters": self.parameters,
            "suffix": self.suffix,
        }


def prepare_run(workflow: Workflow, info: PluginInfo, params: dict[str, Any]) -> RunSpec:
    """Check the run form / API / schedule payload against the workflow's columns."""
    columns = {c.name: c for c in Column.objects.filter(workflow=workflow)}
    key_name = str(params.get("key") or "")
    key = columns.get(key_name)
    if key is None or not key.is_key:
        raise PluginError(
            _("“%(name)s” is not a key column of this workflow.") % {"name": key_name}
        )
    wanted = list(info.input_column_names) or [str(n) for n in params.get("input_columns") or []]
    if not wanted:
        raise PluginError(_("Choose at least one input column."))
    missing = [n for n in wanted if n not in columns]
    if missing:
        raise PluginError(
            _("These input columns are not in the workflow: %(names)s.")
            % {"names": ", ".join(missing)}
        )
    if len(set(wanted)) != len(wanted):
        raise PluginError(_("An input column is chosen twice."))
    raw_parameters = params.get("parameters") or {}
    unknown = sorted(set(raw_parameters) - {p.name for p in info.parameters})
    if unknown:
        raise PluginError(
            _("Unknown parameters: %(names)s.") % {"names": ", ".join(map(str, unknown))}
        )
    values: dict[str, Any] = {}
    for param in info.parameters:
        try:
            values[param.name] = coerce_parameter(param, raw_parameters.get(param.name))
        except PluginError as exc:
            raise PluginError(
                _("Parameter “%(name)s”: %(error)s") % {"name": param.name, "error": exc}
            ) from None
    suffix = params.get("suffix")
    suffix = info.output_suffix if suffix is None else str(suffix)
    produced = info.output_column_names or wanted
    outputs = [(name, f"{name}{suffix}") for name in produced]
    for _out, new in outputs:
        if len(new) > COLUMN_NAME_MAX or not new.strip():
            raise PluginError(
                _("The output column name “%(name)s” is empty or too long.") % {"name": new}
            )
        if new == key.name or (new in wanted and new not in produced):
            raise PluginError(
                _(
                    "The output column “%(name)s” would overwrite an input or the key; choose "
                    "another suffix."
                )
                % {"name": new}  # fmt: skip
            )
        if not info.output_column_names and new in wanted:
            raise PluginError(
                _("The output column “%(name)s” would overwrite its input; choose a suffix.")
                % {"name": new}
            )
    return RunSpec(
        info=info,
        key=key,
        inputs=[columns[n] for n in wanted],
        parameters=values,
        suffix=suffix,
        outputs=outputs,
    )


def run_plugin(*, workflow: Workflow, actor: Any, plugin_key: str, params: dict[str, Any]) -> Any:
    """Check everything, then queue the run as a Job (``feedback.run_plugin``)."""
    from closedloop.jobs.runtime import enqueue_job

    info = check_runnable(workflow.account, plugin_key)
    spec = prepare_run(workflow, info, params)
    return enqueue_job(
        account=workflow.account_id,
        kind=JOB_KIND,
        params={
            "workflow_id": workflow.pk,
            "plugin_key": plugin_key,
            "actor_id": getattr(actor, "pk", None),
            **spec.as_params(),
        },
        title=_("Plugin “%(name)s” on %(workflow)s") % {"name": info.name, "workflow": workflow},
        created_by=actor,
    )


# -- running -------------------------------------------------------------------------


def _child_env(home: str) -> dict[str, str]:
    paths = [p for p in sys.path if p and Path(p).exists()]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "POLARS_MAX_THREADS": "2",
    }


def _limit_cpu(seconds: int) -> Any:
    def apply() -> None:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
        except (ImportError, ValueError, OSError):
            pass

    return apply


def run_isolated(info: PluginInfo, frame: pl.DataFrame, parameters: dict[str, Any]) -> pl.DataFrame:
    """``run()`` in a separate process with no Django, settings or database."""
    timeout = plugin_timeout()
    with tempfile.TemporaryDirectory(prefix="closedloop-plugin-") as tmp:
        folder = Path(tmp)
        frame.write_ipc(folder / "input.arrow")
        (folder / "spec.json").write_text(
            json.dumps(
                {
                    "path": str(info.path),
                    "is_package": info.is_package,
                    "class_name": info.class_name,
                    "parameters": parameters,
                }
            )
        )
        try:
            done = subprocess.run(
                # the runner by path (-P: without its folder on sys.path): importing the
                # closedloop package would load Django and its settings
                [sys.executable, "-P", str(RUNNER), str(folder)],
                cwd=tmp, env=_child_env(tmp), capture_output=True, timeout=timeout, check=False,
                preexec_fn=_limit_cpu(timeout + 5) if os.name == "posix" else None,  # noqa: PLW1509
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise PluginError(
                _("The plugin did not finish within %(seconds)s seconds and was stopped.")
                % {"seconds": timeout}
            ) from None
        error_file = folder / "error.json"
        if error_file.exists():
            details = json.loads(error_file.read_text())
            logger.info("plugin %s failed: %s", info.key, details.get("traceback", ""))
            raise PluginError(_("The plugin failed: %(error)s") % {"error": details["error"]})
        output = folder / "output.arrow"
        if done.returncode != 0 or not output.exists():
            tail = done.stderr.decode("utf-8", "replace")[-800:]
            raise PluginError(
                _("The plugin process ended abnormally (exit code %(code)s). %(tail)s")
                % {"code": done.returncode, "tail": tail}
            )
        return pl.read_ipc(io.BytesIO(output.read_bytes()))


def _data_type(dtype: pl.DataType) -> str | None:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float() or dtype.is_decimal():
        return "double"
    if dtype in (pl.String, pl.Categorical, pl.Enum) or isinstance(dtype, pl.Categorical | pl.Enum):
        return "string"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.Date:
        return "datetime"
    if dtype == pl.Null:
        return "double"
    return None


def check_output(
    spec: RunSpec, source: pl.DataFrame, result: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, str]]:
    """The plugin's result as a frame to merge (key + renamed outputs) and its types."""
    if result.height != source.height:
        raise PluginError(
            _(
                "The plugin returned %(got)s rows for %(expected)s input rows; it must return "
                "one row per input row, in the same order."
            )  # fmt: skip
            % {"got": result.height, "expected": source.height}
        )
    missing = [name for name, _new in spec.outputs if name not in result.columns]
    if missing:
        raise PluginError(
            _("The plugin did not return the declared output columns: %(names)s.")
            % {"names": ", ".join(missing)}
        )
    types: dict[str, str] = {spec.key.name: spec.key.data_type}
    exprs: list[pl.Expr] = []
    for name, new in spec.outputs:
        data_type = _data_type(result.schema[name])
        if data_type is None:
            raise PluginError(
                _(
                    "The output column “%(name)s” has the type %(dtype)s, which a table column "
                    "cannot hold."
                )
                % {"name": name, "dtype": result.schema[name]}  # fmt: skip
            )
        types[new] = data_type
        expr = pl.col(name)
        if data_type == "double":
            expr = expr.cast(pl.Float64).fill_nan(None)
        elif data_type == "integer":
            expr = expr.cast(pl.Int64)
        elif data_type == "string":
            expr = expr.cast(pl.String)
        elif data_type == "datetime":
            expr = expr.cast(pl.Datetime("us"))
            dtype = result.schema[name]
            tz = getattr(dtype, "time_zone", None)
            expr = (expr.dt.replace_time_zone("UTC") if tz is None
                    else pl.col(name).dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC")))  # fmt: skip
        exprs.append(expr.alias(new))
    merged = result.select(exprs).with_columns(
        source.get_column(spec.key.name).alias(spec.key.name)
    )
    return merged.select([spec.key.name, *[new for _n, new in spec.outputs]]), types


def execute_plugin(
    *,
    workflow: Workflow,
    actor: Any,
    plugin_key: str,
    params: dict[str, Any],
    progress: Any = None,
) -> dict[str, Any]:
    """Run a plugin now and merge its outputs on the key (one transaction)."""
    from closedloop.feedback import table
    from closedloop.feedback.dataops.merge import merge_frame
    from closedloop.feedback.logs import log_event

    def report(done: int, message: str) -> None:
        if progress is not None:
            progress(done, 4, message)

    info = check_runnable(workflow.account, plugin_key)
    spec = prepare_run(workflow, info, params)
    report(0, _("Reading %(n)s columns") % {"n": len(spec.inputs) + 1})
    columns = [spec.key, *[c for c in spec.inputs if c.pk != spec.key.pk]]
    source = table.read_frame(workflow, columns)
    plugin_input = source.select([c.name for c in spec.inputs])
    report(1, _("Running %(name)s") % {"name": info.name})
    result = run_isolated(info, plugin_input, spec.parameters)
    report(2, _("Checking the result"))
    frame, types = check_output(spec, source, result)
    report(3, _("Merging %(n)s columns") % {"n": len(spec.outputs)})
    outcome = merge_frame(
        workflow=workflow, actor=actor, frame=frame, types=types, how="left",
        left_on=spec.key.name, right_on=spec.key.name, clear_with_empty=True,
        label=f"plugin {info.name}",
    )  # fmt: skip
    summary = {
        "plugin": info.key,
        "name": info.name,
        "sha256": info.sha256,
        "inputs": [c.name for c in spec.inputs],
        "key": spec.key.name,
        "parameters": spec.parameters,
        "outputs": [new for _n, new in spec.outputs],
        "rows": frame.height,
        "updated": getattr(outcome, "updated", None),
    }
    log_event(workflow, actor, "plugin_execute", summary)
    report(4, _("Done"))
    return summary
