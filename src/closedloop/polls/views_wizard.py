"""The per-connection setup wizard (admins and managers; anyone else gets 404): panels
(RapidPro groups → org units, linked or created under a parent), cohorts (→ people
cohorts), flows (→ polls), visible fields, then sync (the health panel)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from closedloop.accounts.models import Membership
from closedloop.people.models import Cohort
from closedloop.polls import selectors, services
from closedloop.polls.forms import FetchRunsForm
from closedloop.polls.models import Connection, ContactGroup, DataField, GroupRole, Poll
from closedloop.polls.services import SetupError
from closedloop.polls.views_setup import _back, _health_for, membership_of, setup_required
from closedloop.registry.models import OrgUnit
from closedloop.registry.paths import ids_in_path
from closedloop.registry.selectors import scope_paths, visible_units

#: registries up to this size get a plain select per panel row; larger ones a search box
UNIT_SELECT_LIMIT = 300
#: ... as long as the page stays light (rows × options)
SELECT_OPTIONS_LIMIT = 20_000
STEPS = ("panels", "cohorts", "flows", "fields", "sync")


# --- the wizard -------------------------------------------------------------------------


@setup_required
@require_POST
def connection_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Read flows, groups and fields from RapidPro now (small metadata, done inline)."""
    connection = selectors.get_connection(membership_of(request), pk)
    try:
        from closedloop.polls import sync

        sync.sync_flows(connection)
        sync.sync_groups(connection)
        sync.sync_fields(connection)
    except Exception as exc:  # noqa: BLE001 - RapidPro trouble is shown, not raised
        messages.error(
            request,
            _("RapidPro could not be read: %(error)s") % {"error": str(exc) or type(exc).__name__},
        )
    else:
        messages.success(request, _("Flows, groups and fields were read from RapidPro."))
    return redirect(_back(request, connection))


def _wizard_context(connection: Connection, step: str) -> dict[str, Any]:
    groups = ContactGroup.objects.filter(connection=connection)
    return {
        "connection": connection,
        "step": step,
        "steps": [
            ("panels", _("Panels"), groups.filter(role=GroupRole.PANEL).count()),
            ("cohorts", _("Cohorts"), groups.filter(role=GroupRole.COHORT).count()),
            (
                "flows",
                _("Polls"),
                Poll.objects.filter(connection=connection, is_active=True).count(),
            ),
            (
                "fields",
                _("Fields"),
                DataField.objects.filter(connection=connection, is_visible=True).count(),
            ),
            ("sync", _("Sync"), None),
        ],
    }


@setup_required
def connection_setup(request: HttpRequest, pk: int) -> HttpResponse:
    selectors.get_connection(membership_of(request), pk)
    return redirect("polls:connection_step", pk=pk, step="panels")


@setup_required
def connection_step(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    membership = membership_of(request)
    connection = selectors.get_connection(membership, pk)
    if step not in STEPS:
        raise Http404
    handler = {
        "panels": _step_panels,
        "cohorts": _step_cohorts,
        "flows": _step_flows,
        "fields": _step_fields,
        "sync": _step_sync,
    }[step]
    return handler(request, membership, connection)


def _next_step(connection: Connection, step: str) -> HttpResponse:
    following = STEPS[min(STEPS.index(step) + 1, len(STEPS) - 1)]
    return redirect("polls:connection_step", pk=connection.pk, step=following)


def _unit_labels(units: list[OrgUnit]) -> dict[int, str]:
    """ "Region › District › Unit" labels, reading each ancestor once."""
    ancestor_ids = {i for u in units for i in ids_in_path(u.path)[:-1]}
    names = dict(OrgUnit.objects.filter(pk__in=ancestor_ids).values_list("pk", "name"))
    return {
        u.pk: " › ".join([*(names[i] for i in ids_in_path(u.path)[:-1] if i in names), u.name])
        for u in units
    }


def _int(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _panel_roles(
    request: HttpRequest, membership: Membership, rows: list[ContactGroup]
) -> tuple[dict[int, services.RoleChoice], dict[str, str]]:
    """The submitted panel choices, with every visible-unit problem named on its row."""
    post = request.POST
    roles: dict[int, services.RoleChoice] = {}
    errors: dict[str, str] = {}
    raw_ids: dict[int, str] = {}
    for group in rows:
        if not post.get(f"panel_{group.pk}"):
            roles[group.pk] = ("", None)
            continue
        raw = post.get(f"unit_{group.pk}", "").strip()
        raw_ids[group.pk] = raw
        unit_id = _int(raw)
        create = post.get(f"mode_{group.pk}") == "create"
        if raw and unit_id is None:
            errors[f"group_{group.pk}"] = _("“%(value)s” is not an org unit id.") % {"value": raw}
        elif unit_id is None and not (create and scope_paths(membership) is None):
            errors[f"group_{group.pk}"] = (
                _("Choose the parent org unit for the new panel unit.")
                if create
                else _("Choose the org unit this panel stands for.")
            )
        roles[group.pk] = ("panel_new" if create else "panel", unit_id)
    wanted = {v for _r, v in roles.values() if v is not None}
    visible = set(visible_units(membership).filter(pk__in=wanted).values_list("pk", flat=True))
    for group_id, (_role, value) in roles.items():
        if value is not None and value not in visible:
            errors.setdefault(
                f"group_{group_id}",
                _("There is no org unit with id %(id)s.") % {"id": raw_ids.get(group_id, value)},
            )
    return roles, errors


def _step_panels(
    request: HttpRequest, membership: Membership, connection: Connection
) -> HttpResponse:
    rows = list(
        ContactGroup.objects.filter(connection=connection)
        .exclude(role=GroupRole.COHORT)
        .select_related("org_unit")
        .order_by("name")
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        roles, errors = _panel_roles(request, membership, rows)
        if not errors:
            try:
                services.set_group_roles(connection=connection, roles=roles, user=request.user)
            except SetupError as exc:
                errors[exc.field or "__all__"] = exc.message
            else:
                messages.success(request, _("The panels were saved."))
                return _next_step(connection, "panels")
    units_qs = visible_units(membership)
    unit_count = units_qs.count()
    use_select = unit_count <= UNIT_SELECT_LIMIT and unit_count * len(rows) <= SELECT_OPTIONS_LIMIT
    linked = [g.org_unit for g in rows if g.org_unit is not None]
    unit_options = list(units_qs.order_by("path")) if use_select else []
    labels = _unit_labels(unit_options or linked)
    context = _wizard_context(connection, "panels") | {
        "rows": [
            {
                "group": g,
                "error": errors.get(f"group_{g.pk}", ""),
                "checked": request.POST.get(f"panel_{g.pk}")
                if request.method == "POST"
                else g.role == GroupRole.PANEL,
                "unit_id": _int(request.POST.get(f"unit_{g.pk}"))
                if request.method == "POST"
                else g.org_unit_id,
                "unit_label": labels.get(g.org_unit_id or 0, g.org_unit.name if g.org_unit else ""),
                "mode": request.POST.get(f"mode_{g.pk}", "link"),
            }
            for g in rows
        ],
        "form_error": errors.get("__all__", ""),
        "has_errors": bool(errors),
        "use_select": use_select,
        "unit_options": [(u.pk, labels.get(u.pk, u.name), u.depth) for u in unit_options],
        "can_create_root": scope_paths(membership) is None,
    }
    return render(request, "polls/setup/step_panels.html", context, status=400 if errors else 200)


@setup_required
@require_GET
def unit_options(request: HttpRequest, pk: int) -> HttpResponse:
    """Type-ahead for a panel row: up to 20 visible units matching ``q``."""
    membership = membership_of(request)
    connection = selectors.get_connection(membership, pk)
    group = ContactGroup.objects.filter(
        connection=connection, pk=_int(request.GET.get("group"))
    ).first()
    if group is None:
        raise Http404
    q = (request.GET.get("q") or "").strip()
    units: list[OrgUnit] = []
    if q:
        units = list(
            visible_units(membership)
            .filter(Q(name__icontains=q) | Q(code__icontains=q))
            .order_by("name", "pk")[:20]
        )
    labels = _unit_labels(units)
    return render(
        request,
        "polls/setup/_unit_options.html",
        {"group": group, "units": [(u.pk, labels[u.pk]) for u in units], "q": q},
    )


def _step_cohorts(
    request: HttpRequest, membership: Membership, connection: Connection
) -> HttpResponse:
    rows = list(
        ContactGroup.objects.filter(connection=connection)
        .exclude(role=GroupRole.PANEL)
        .select_related("cohort")
        .order_by("name")
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        roles: dict[int, services.RoleChoice] = {}
        for group in rows:
            if not request.POST.get(f"cohort_{group.pk}"):
                roles[group.pk] = ("", None)
                continue
            raw = request.POST.get(f"cohort_id_{group.pk}", "")
            cohort_id = _int(raw)
            if raw not in ("", "new") and cohort_id is None:
                errors[f"group_{group.pk}"] = _("“%(value)s” is not a cohort id.") % {"value": raw}
            roles[group.pk] = ("cohort", cohort_id)
        if not errors:
            try:
                services.set_group_roles(connection=connection, roles=roles, user=request.user)
            except SetupError as exc:
                errors[exc.field or "__all__"] = exc.message
            else:
                messages.success(request, _("The cohorts were saved."))
                return _next_step(connection, "cohorts")
    posted = request.method == "POST"
    context = _wizard_context(connection, "cohorts") | {
        "rows": [
            {
                "group": g,
                "error": errors.get(f"group_{g.pk}", ""),
                "checked": request.POST.get(f"cohort_{g.pk}")
                if posted
                else g.role == GroupRole.COHORT,
                "cohort_id": _int(request.POST.get(f"cohort_id_{g.pk}")) if posted else g.cohort_id,
            }
            for g in rows
        ],
        "cohorts": list(Cohort.objects.order_by("name")),
        "form_error": errors.get("__all__", ""),
        "has_errors": bool(errors),
    }
    return render(request, "polls/setup/step_cohorts.html", context, status=400 if errors else 200)


def _step_flows(
    request: HttpRequest, membership: Membership, connection: Connection
) -> HttpResponse:
    error = ""
    if request.method == "POST":
        chosen = request.POST.getlist("flow")
        try:
            result = services.set_poll_selection(
                connection=connection, flow_uuids=chosen, user=request.user
            )
        except SetupError as exc:
            error = exc.message
        else:
            messages.success(
                request, _("%(count)s flows are used as polls.") % {"count": result["selected"]}
            )
            if chosen:
                try:
                    services.request_sync(connection=connection, user=request.user, steps=["flows"])
                except SetupError as exc:
                    messages.warning(request, exc.message)
            return _next_step(connection, "flows")
    polls = (
        Poll.objects.filter(connection=connection)
        .annotate(question_count=Count("questions", filter=Q(questions__is_present=True)))
        .order_by("-is_present", "rapidpro_name")
    )
    context = _wizard_context(connection, "flows") | {"polls": polls, "form_error": error}
    return render(request, "polls/setup/step_flows.html", context, status=400 if error else 200)


def _step_fields(
    request: HttpRequest, membership: Membership, connection: Connection
) -> HttpResponse:
    error = ""
    if request.method == "POST":
        try:
            services.set_visible_fields(
                connection=connection, keys=request.POST.getlist("field"), user=request.user
            )
        except SetupError as exc:
            error = exc.message
        else:
            messages.success(request, _("The visible fields were saved."))
            return _next_step(connection, "fields")
    context = _wizard_context(connection, "fields") | {
        "fields": DataField.objects.filter(connection=connection).order_by("label"),
        "form_error": error,
    }
    return render(request, "polls/setup/step_fields.html", context, status=400 if error else 200)


def _step_sync(
    request: HttpRequest, membership: Membership, connection: Connection
) -> HttpResponse:
    context = _wizard_context(connection, "sync") | {
        "health": _health_for(connection),
        "fetch_form": FetchRunsForm(),
        "next": request.path,
    }
    return render(request, "polls/setup/step_sync.html", context)
