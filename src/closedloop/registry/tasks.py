"""Job handlers of the registry: org-unit import and export.

Both run through :mod:`closedloop.jobs.runtime` (in a Celery worker, or in-process from
the CLI), inside the job's account scope.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404
from django.utils.translation import gettext as _

from closedloop.accounts.models import Membership
from closedloop.jobs.runtime import JobContext, JobError, register_job
from closedloop.registry.exporter import FORMATS, filter_units, write_export
from closedloop.registry.importer import ImportFailed, ImportOptions, import_orgunits
from closedloop.registry.models import OrgUnit
from closedloop.registry.selectors import get_unit, visible_units

IMPORT_KIND = "registry.import_orgunits"
EXPORT_KIND = "registry.export_orgunits"
ERRORS_IN_LOG = 50


@register_job(IMPORT_KIND)
def run_import(ctx: JobContext) -> dict[str, Any]:
    """params: ``{"file": absolute path, "filename": str, "options": ImportOptions.to_json()}``."""
    params = ctx.params
    try:
        options = ImportOptions.from_json(params.get("options") or {})
    except (TypeError, ValueError) as exc:
        raise JobError(_("The import options are invalid: %(err)s") % {"err": exc}) from None
    path = Path(params.get("file") or "")
    if not path.is_absolute() or not path.is_file():
        raise JobError(_("The uploaded file is missing; upload it again."))
    try:
        result = import_orgunits(
            account=ctx.account_id,
            actor=ctx.job.created_by_id,
            path_or_bytes=path,
            options=options,
            progress=lambda done, total, msg: ctx.progress(done, total, msg),
            check_cancelled=ctx.check_cancelled,
            filename=params.get("filename") or path.name,
        )
    except ImportFailed as exc:
        _log_problems(ctx, exc)
        raise JobError(str(exc)) from None
    for line in summary_lines(result.to_json()):
        ctx.log(line)
    return result.to_json()


def _log_problems(ctx: JobContext, exc: ImportFailed) -> None:
    problems = exc.report.problems
    if exc.report.fatal and len(problems) == 1:
        return  # the job's error message says it already
    for problem in problems[:ERRORS_IN_LOG]:
        where = _("Row %(row)d") % {"row": problem.row} if problem.row else _("File")
        column = f" [{problem.column}]" if problem.column else ""
        ctx.log(f"{where}{column}: {problem.message}", "error")
    if len(problems) > ERRORS_IN_LOG:
        ctx.log(_("… and %(n)d more problems.") % {"n": len(problems) - ERRORS_IN_LOG}, "error")


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A human summary of an import result (the job log and the CLI print it)."""
    lines = [
        _("%(imported)d of %(read)d rows imported into %(version)s; %(skipped)d skipped.")
        % {
            "imported": result["rows_imported"],
            "read": result["rows_read"],
            "version": result["version"],
            "skipped": result["rows_skipped"],
        }
    ]
    for type_name, count in sorted(result["units_created"].items()):
        lines.append(
            _("Created %(n)d unit(s) of type %(type)s.")
            % {"n": count, "type": type_name or _("(none)")}
        )
    if not result["units_created"]:
        lines.append(_("No new units were needed."))
    lines.append(_("Reused %(n)d existing unit(s).") % {"n": result["units_reused"]})
    for error in result["errors"][:ERRORS_IN_LOG]:
        lines.append(_("Skipped row %(row)d [%(column)s]: %(message)s") % error)
    return lines


def _export_membership(ctx: JobContext) -> Membership | None:
    """Whose view of the tree to export; None (the whole tree) when no user started it (CLI)."""
    if ctx.job.created_by_id is None:
        return None
    membership = Membership.objects.filter(
        account_id=ctx.account_id, user_id=ctx.job.created_by_id, is_active=True
    ).first()
    if membership is None:
        raise JobError(_("You are no longer a member of this account."))
    return membership


def visible_units_for(membership: Membership | None) -> Any:
    return OrgUnit.objects.all() if membership is None else visible_units(membership)


@register_job(EXPORT_KIND)
def run_export(ctx: JobContext) -> dict[str, Any]:
    """params: ``{"root": id|None, "format": "csv"|"xlsx", "filters": {type, status, search}}``."""
    params = ctx.params
    fmt = params.get("format") or "csv"
    if fmt not in FORMATS:
        raise JobError(_("Unknown export format “%(f)s”.") % {"f": fmt})
    membership = _export_membership(ctx)
    root = None
    if params.get("root") not in (None, ""):
        try:
            root = get_unit(membership, params["root"]) if membership else _unit(params["root"])
        except Http404:
            raise JobError(_("The unit to export was not found.")) from None
    filters = params.get("filters") or {}
    units = filter_units(
        visible_units_for(membership),
        root=root,
        type_id=filters.get("type"),
        status=filters.get("status"),
        search=filters.get("search"),
    )
    total = units.count()
    ctx.progress(0, total, _("Exporting %(n)d units.") % {"n": total}, force=True)
    relative = Path("exports") / f"orgunits-{ctx.job.pk}-{uuid.uuid4().hex[:8]}.{fmt}"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = write_export(units, fmt, target, progress=lambda n: ctx.progress(n, total))
    ctx.progress(rows, total, _("Exported %(n)d units.") % {"n": rows}, force=True)
    return {"file": relative.as_posix(), "rows": rows}


def _unit(pk: Any) -> OrgUnit:
    try:
        unit = OrgUnit.objects.filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        unit = None
    if unit is None:
        raise Http404
    return unit
