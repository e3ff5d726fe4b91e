"""The ``people.import_people`` job: a CSV/XLSX file of people, validated then written.

params: ``{"file": absolute path, "filename": shown name, "options": ImportOptions}``.
The job's creator (``created_by``) is held to his role and org-unit scope; a job
without a creator (the CLI) may import anywhere in the account.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from closedloop.accounts.models import Membership
from closedloop.core.tabular import TabularError, read_table
from closedloop.jobs.runtime import JobContext, JobError, register_job
from closedloop.people.importer import ImportOptions, ImportOptionsError, import_people

JOB_KIND = "people.import_people"
MAX_LOGGED_PROBLEMS = 100


def _creator_membership(ctx: JobContext) -> Membership | None:
    user_id = ctx.job.created_by_id
    if user_id is None:
        return None
    membership = Membership.objects.filter(
        account_id=ctx.account_id, user_id=user_id, is_active=True
    ).first()
    if membership is None or not membership.can_edit:
        raise JobError(_("You are not allowed to import people into this account."))
    return membership


@register_job(JOB_KIND)
def run_people_import(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    filename = params.get("filename") or params.get("file", "")
    try:
        options = ImportOptions.from_dict(params.get("options"))
        table = read_table(
            params["file"],
            filename=filename,
            encoding=options.encoding or None,
            delimiter=options.delimiter or None,
            sheet=options.sheet or None,
        )
    except (TabularError, ImportOptionsError) as exc:
        raise JobError(str(exc)) from None
    except KeyError:
        raise JobError(_("The job has no file to import.")) from None
    membership = _creator_membership(ctx)
    ctx.progress(0, len(table.rows), _("Checking %(count)d rows…") % {"count": len(table.rows)})
    try:
        plan, result = import_people(
            table,
            options,
            account=ctx.account_id,
            actor=ctx.job.created_by_id,
            membership=membership,
            progress=lambda d, t, m: ctx.progress(d, t, m),
            before_write=ctx.check_cancelled,
        )
    except ImportOptionsError as exc:
        raise JobError(str(exc)) from None
    for problem in plan.problems[:MAX_LOGGED_PROBLEMS]:
        ctx.log(str(problem), "error" if result is None else "warning")
    if len(plan.problems) > MAX_LOGGED_PROBLEMS:
        ctx.log(
            _("… and %(count)d more problems.")
            % {"count": len(plan.problems) - MAX_LOGGED_PROBLEMS},
            "error" if result is None else "warning",
        )
    if result is None:
        raise JobError(
            _(
                "%(count)d problems found in %(file)s (%(rows)d rows); nothing was imported. "
                "Fix them and import again, or choose to import only the valid rows. "
                "First problem: %(first)s"
            )
            % {
                "count": len(plan.problems),
                "file": filename,
                "rows": plan.invalid_row_count,
                "first": plan.problems[0],
            }
        )
    summary = _("%(created)d people created, %(updated)d updated, %(skipped)d rows skipped.") % {
        "created": result.created,
        "updated": result.updated,
        "skipped": result.skipped,
    }
    if result.ignored_columns:
        ctx.log(_("Columns not imported: %(cols)s.") % {"cols": ", ".join(result.ignored_columns)})
    ctx.log(summary)
    ctx.progress(len(table.rows), len(table.rows), summary, force=True)
    return result.as_json()
