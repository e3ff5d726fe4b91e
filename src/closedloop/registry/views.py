"""Registry pages: tree, search, detail, forms, subtree map, import wizard and export.

Every read starts from :mod:`closedloop.registry.selectors`, so a supervisor sees only
his subtrees and anything else is the same 404 as a missing unit.
"""

from __future__ import annotations

import io
import shutil
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.text import get_valid_filename
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from closedloop.accounts.models import Membership
from closedloop.core.models import AuditEntry
from closedloop.core.tabular import TabularError, preview, read_table
from closedloop.jobs.runtime import enqueue_job
from closedloop.registry import services
from closedloop.registry.forms import (
    IMPORT_LEVELS,
    MappingForm,
    MoveForm,
    OrgUnitForm,
    SearchForm,
    UploadForm,
)
from closedloop.registry.geometry import GeometryError
from closedloop.registry.models import OrgUnit
from closedloop.registry.paths import ids_in_path
from closedloop.registry.selectors import (
    descendants,
    get_unit,
    roots_for,
    scope_paths,
    unit_types,
    visible_units,
)

PAGE_SIZE = 50
CHILDREN_PAGE_SIZE = 25
TREE_CHILDREN_LIMIT = 200
MAP_MAX_FEATURES = 20_000
DIRECT_EXPORT_LIMIT = 10_000
IMPORT_KIND = "registry.import_orgunits"
EXPORT_KIND = "registry.export_orgunits"
IMPORT_SESSION_PREFIX = "registry-import-"
TYPE_COLOURS = (
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#666666",
)


# ---------------------------------------------------------------- helpers


def _membership(request: HttpRequest) -> Membership:
    membership = getattr(request, "membership", None)
    if membership is None:
        raise Http404
    return membership  # type: ignore[no-any-return]


def _editor(request: HttpRequest) -> Membership:
    membership = _membership(request)
    if not membership.can_edit:
        raise PermissionDenied(_("Your role can only read the registry."))
    return membership


def _with_child_counts(qs: QuerySet[OrgUnit]) -> QuerySet[OrgUnit]:
    return qs.select_related("type").annotate(n_children=Count("children"))


def _visible_names(membership: Membership, paths: list[str]) -> dict[int, str]:
    """Names of every visible unit on these paths, in one query."""
    ids = {pk for path in paths for pk in ids_in_path(path)}
    if not ids:
        return {}
    rows = visible_units(membership).filter(pk__in=ids).values_list("pk", "name")
    return dict(rows)


def _breadcrumbs(membership: Membership, unit: OrgUnit) -> list[tuple[int, str]]:
    names = _visible_names(membership, [unit.path])
    return [(pk, names[pk]) for pk in ids_in_path(unit.path)[:-1] if pk in names]


def _url_or_none(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _job_url(job_id: int) -> str:
    try:
        return reverse("jobs:detail", args=[job_id])
    except NoReverseMatch:
        return f"/jobs/{job_id}/"


def _posted(request: HttpRequest) -> Any:
    """The POST data for binding a form; an empty POST still binds (and fails validation)."""
    return request.POST if request.method == "POST" else None


def _bound(request: HttpRequest) -> tuple[Any, Any]:
    return (request.POST, request.FILES) if request.method == "POST" else (None, None)


def _form_error(form: Any, exc: Exception, field: str | None = None) -> None:
    form.add_error(field if field in form.fields else None, str(exc))


# ---------------------------------------------------------------- tree and search


@login_required
@require_GET
def tree(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    roots = _with_child_counts(roots_for(membership)).order_by("name")[:TREE_CHILDREN_LIMIT]
    return render(
        request,
        "registry/tree.html",
        {
            "roots": roots,
            "can_edit": membership.can_edit,
            "can_create_root": membership.can_edit and scope_paths(membership) is None,
        },
    )


@login_required
@require_GET
def children(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    unit = get_unit(membership, pk)
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("registry:detail", pk=unit.pk)
    nodes = list(
        _with_child_counts(unit.children.all()).order_by("name")[: TREE_CHILDREN_LIMIT + 1]
    )
    more = len(nodes) > TREE_CHILDREN_LIMIT
    return render(
        request,
        "registry/_tree_nodes.html",
        {"nodes": nodes[:TREE_CHILDREN_LIMIT], "parent": unit, "more": more},
    )


def _search_results(membership: Membership, form: SearchForm) -> QuerySet[OrgUnit] | None:
    data = form.cleaned_data if form.is_valid() else {}
    q = (data.get("q") or "").strip()
    if not (q or data.get("type") or data.get("status")):
        return None
    qs = visible_units(membership).select_related("type")
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(code__icontains=q) | Q(ref__icontains=q))
    if data.get("type"):
        qs = qs.filter(type=data["type"])
    if data.get("status"):
        qs = qs.filter(validation_status=data["status"])
    return qs.order_by("name", "pk")


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    form = SearchForm(request.GET)
    results = _search_results(membership, form)
    page = None
    if results is not None:
        page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
        names = _visible_names(membership, [u.path for u in page.object_list])
        for unit in page.object_list:
            unit.trail = [names[i] for i in ids_in_path(unit.path)[:-1] if i in names]
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "can_edit": membership.can_edit,
        "export_filters": {
            k: request.GET[k] for k in ("q", "type", "status") if request.GET.get(k)
        },
    }
    template = "registry/search.html"
    if request.htmx and request.htmx.target == "search-results":  # type: ignore[attr-defined]
        template += "#results"
    return render(request, template, context)


@login_required
@require_GET
def parent_options(request: HttpRequest) -> HttpResponse:
    """Search-select for the move form: up to 20 visible units matching ``q``."""
    membership = _membership(request)
    q = (request.GET.get("q") or "").strip()
    units: list[OrgUnit] = []
    if q:
        qs = visible_units(membership).select_related("type")
        qs = qs.filter(Q(name__icontains=q) | Q(code__icontains=q) | Q(ref__icontains=q))
        exclude = request.GET.get("exclude", "")
        if exclude.isdigit():
            moving = visible_units(membership).filter(pk=int(exclude)).first()
            if moving is not None:
                qs = qs.exclude(path__gte=moving.path, path__lt=moving.path_upper)
        units = list(qs.order_by("name", "pk")[:20])
        names = _visible_names(membership, [u.path for u in units])
        for unit in units:
            unit.trail = [names[i] for i in ids_in_path(unit.path)[:-1] if i in names]
    return render(request, "registry/_parent_options.html", {"units": units, "q": q})


# ---------------------------------------------------------------- detail


def _people(unit: OrgUnit) -> tuple[int | None, str | None]:
    manager = getattr(unit, "people", None)
    if manager is None:
        return None, None
    url = _url_or_none("people:list")
    return manager.count(), (f"{url}?org_unit={unit.pk}" if url else None)


def _unit_feature(unit: OrgUnit) -> dict[str, Any] | None:
    if unit.simplified_geometry:
        geometry = unit.simplified_geometry
    elif unit.has_point:
        geometry = {"type": "Point", "coordinates": [unit.longitude, unit.latitude]}
    else:
        return None
    properties = {"id": unit.pk, "name": unit.name, "type": unit.type.name if unit.type else ""}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _map_config(**extra: Any) -> dict[str, Any]:
    return {
        "tile_url": settings.MAP_TILE_URL,
        "attribution": settings.MAP_TILE_ATTRIBUTION,
        "capped_text": _(
            "Only the first %(n)s units are shown; open a smaller subtree to see all."
        ),
        "empty_text": _("No unit of this subtree has coordinates or a shape yet."),
        **extra,
    }


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    unit = get_unit(membership, pk)
    child_qs = _with_child_counts(unit.children.all()).order_by("name")
    type_counts = (
        descendants(unit)
        .values("type__name")
        .annotate(n=Count("pk"))
        .order_by("type__depth", "type__name")
    )
    people_count, people_url = _people(unit)
    history = AuditEntry.objects.filter(
        object_type=OrgUnit._meta.label_lower, object_id=str(unit.pk)
    ).select_related("actor")[:20]
    feature = _unit_feature(unit)
    return render(
        request,
        "registry/detail.html",
        {
            "unit": unit,
            "breadcrumbs": _breadcrumbs(membership, unit),
            "children_page": Paginator(child_qs, CHILDREN_PAGE_SIZE).get_page(
                request.GET.get("page")
            ),
            "type_counts": type_counts,
            "people_count": people_count,
            "people_url": people_url,
            "history": history,
            "map_config": _map_config(features={"type": "FeatureCollection", "features": [feature]})
            if feature
            else None,
            "can_edit": membership.can_edit,
        },
    )


# ---------------------------------------------------------------- create / edit / move / delete


def _parent_for_create(request: HttpRequest, membership: Membership) -> OrgUnit | None:
    parent_id = request.GET.get("parent") or request.POST.get("parent")
    if parent_id:
        return get_unit(membership, parent_id)
    if scope_paths(membership) is not None:
        raise PermissionDenied(_("You can only add units inside your own area."))
    return None


@login_required
def create(request: HttpRequest) -> HttpResponse:
    membership = _editor(request)
    parent = _parent_for_create(request, membership)
    form = OrgUnitForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            unit = services.orgunit_create(
                account=request.account,  # type: ignore[attr-defined]
                actor=request.user,
                name=data["name"],
                parent=parent,
                type=data["type"],
                **form.service_fields(),
            )
        except services.RegistryError as exc:
            _form_error(form, exc, exc.field)
        except GeometryError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, _("“%(name)s” was created.") % {"name": unit.name})
            return redirect("registry:detail", pk=unit.pk)
    crumbs = _breadcrumbs(membership, parent) + [(parent.pk, parent.name)] if parent else []
    return render(
        request,
        "registry/form.html",
        {"form": form, "parent": parent, "unit": None, "breadcrumbs": crumbs},
    )


@login_required
def edit(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    unit = get_unit(membership, pk)
    _editor(request)
    form = OrgUnitForm(_posted(request), initial=OrgUnitForm.initial_for(unit))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.orgunit_update(
                account=request.account,  # type: ignore[attr-defined]
                actor=request.user,
                unit=unit,
                name=data["name"],
                type=data["type"],
                **form.service_fields(),
            )
        except services.RegistryError as exc:
            _form_error(form, exc, exc.field)
        except GeometryError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, _("“%(name)s” was saved.") % {"name": unit.name})
            return redirect("registry:detail", pk=unit.pk)
    return render(
        request,
        "registry/form.html",
        {
            "form": form,
            "parent": unit.parent,
            "unit": unit,
            "breadcrumbs": _breadcrumbs(membership, unit) + [(unit.pk, unit.name)],
        },
    )


def _new_parent(form: MoveForm, membership: Membership) -> tuple[bool, OrgUnit | None]:
    """(ok, parent). Adds a form error when the choice is not allowed."""
    data = form.cleaned_data
    if data.get("new_parent"):
        try:
            return True, get_unit(membership, data["new_parent"])
        except Http404:
            form.add_error(None, _("The chosen parent does not exist or is outside your area."))
            return False, None
    if scope_paths(membership) is not None:
        form.add_error(None, _("You can only move units inside your own area."))
        return False, None
    return True, None


@login_required
def move(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    unit = get_unit(membership, pk)
    _editor(request)
    if scope_paths(membership) is not None and unit.path in (scope_paths(membership) or []):
        raise PermissionDenied(
            _("The top unit of your area can only be moved by an administrator.")
        )
    form = MoveForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        ok, parent = _new_parent(form, membership)
        if ok:
            try:
                services.orgunit_move(
                    account=request.account,  # type: ignore[attr-defined]
                    actor=request.user,
                    unit=unit,
                    new_parent=parent,
                )
            except services.RegistryError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("“%(name)s” was moved.") % {"name": unit.name})
                return redirect("registry:detail", pk=unit.pk)
    return render(
        request,
        "registry/move.html",
        {
            "form": form,
            "unit": unit,
            "breadcrumbs": _breadcrumbs(membership, unit),
            "can_make_root": scope_paths(membership) is None,
        },
    )


@login_required
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    unit = get_unit(membership, pk)
    _editor(request)
    error = None
    if request.method == "POST":
        parent_id = unit.parent_id
        try:
            services.orgunit_delete(
                account=request.account,
                actor=request.user,
                unit=unit,  # type: ignore[attr-defined]
            )
        except services.RegistryError as exc:
            error = str(exc)
        else:
            messages.success(request, _("“%(name)s” was deleted.") % {"name": unit.name})
            if parent_id and visible_units(membership).filter(pk=parent_id).exists():
                return redirect("registry:detail", pk=parent_id)
            return redirect("registry:tree")
    return render(
        request,
        "registry/delete.html",
        {
            "unit": unit,
            "blockers": services.deletion_blockers(unit),
            "error": error,
            "breadcrumbs": _breadcrumbs(membership, unit),
        },
        status=400 if error else 200,
    )


# ---------------------------------------------------------------- map


@login_required
@require_GET
def subtree_map(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    root_id = request.GET.get("root")
    root = get_unit(membership, root_id) if root_id else None
    data_url = reverse("registry:map_data") + (f"?root={root.pk}" if root else "")
    return render(
        request,
        "registry/map.html",
        {
            "root": root,
            "breadcrumbs": (_breadcrumbs(membership, root) + [(root.pk, root.name)])
            if root
            else [],
            "map_config": _map_config(data_url=data_url, limit=MAP_MAX_FEATURES),
        },
    )


def _parse_bbox(text: str) -> tuple[float, float, float, float] | None:
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError
    min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    if min_lon > max_lon or min_lat > max_lat:
        raise ValueError
    return min_lon, min_lat, max_lon, max_lat


def _in_bbox(qs: QuerySet[OrgUnit], bbox: tuple[float, float, float, float]) -> QuerySet[OrgUnit]:
    min_lon, min_lat, max_lon, max_lat = bbox
    points = Q(
        latitude__gte=min_lat,
        latitude__lte=max_lat,
        longitude__gte=min_lon,
        longitude__lte=max_lon,
    )
    shapes = Q(
        bbox_max_lon__gte=min_lon,
        bbox_min_lon__lte=max_lon,
        bbox_max_lat__gte=min_lat,
        bbox_min_lat__lte=max_lat,
    )
    return qs.filter(points | shapes)


def _map_feature(row: dict[str, Any], types: dict[int, dict[str, Any]]) -> dict[str, Any]:
    if row["simplified_geometry"]:
        geometry = row["simplified_geometry"]
    else:
        geometry = {"type": "Point", "coordinates": [row["longitude"], row["latitude"]]}
    unit_type = types.get(row["type_id"]) or {"name": "", "color": TYPE_COLOURS[-1]}
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "id": row["pk"],
            "name": row["name"],
            "type": unit_type["name"],
            "color": unit_type["color"],
            "url": reverse("registry:detail", args=[row["pk"]]),
        },
    }


@login_required
@require_GET
def map_data(request: HttpRequest) -> JsonResponse:
    """GeoJSON of the visible units under ``root`` that have a point or a shape."""
    membership = _membership(request)
    qs = visible_units(membership)
    if request.GET.get("root"):
        root = get_unit(membership, request.GET["root"])
        qs = qs.filter(path__gte=root.path, path__lt=root.path_upper)
    qs = qs.filter(
        Q(latitude__isnull=False, longitude__isnull=False) | Q(bbox_min_lon__isnull=False)
    )
    if request.GET.get("bbox"):
        try:
            qs = _in_bbox(qs, _parse_bbox(request.GET["bbox"]))  # type: ignore[arg-type]
        except ValueError:
            return JsonResponse(
                {"error": _("bbox must be four numbers: west,south,east,north.")}, status=400
            )
    rows = list(
        qs.order_by("path").values(
            "pk", "name", "type_id", "latitude", "longitude", "simplified_geometry"
        )[: MAP_MAX_FEATURES + 1]
    )
    types = {
        t.pk: {"id": t.pk, "name": t.name, "color": TYPE_COLOURS[i % len(TYPE_COLOURS)]}
        for i, t in enumerate(unit_types())
    }
    capped = len(rows) > MAP_MAX_FEATURES
    rows = rows[:MAP_MAX_FEATURES]
    used = {row["type_id"] for row in rows}
    return JsonResponse(
        {
            "type": "FeatureCollection",
            "features": [_map_feature(row, types) for row in rows],
            "capped": capped,
            "limit": MAP_MAX_FEATURES,
            "types": [t for pk, t in types.items() if pk in used],
        }
    )


# ---------------------------------------------------------------- export


def _export_root(params: Any, membership: Membership) -> OrgUnit | None:
    root_id = params.get("root")
    if root_id:
        return get_unit(membership, root_id)
    if scope_paths(membership) is None:
        return None
    roots = list(roots_for(membership)[:2])
    if len(roots) != 1:
        raise Http404
    return roots[0]


def _export_request(
    params: Any, membership: Membership
) -> tuple[OrgUnit | None, str, dict[str, str]]:
    """(root, format, filters) of an export request; 404 for what may not be seen."""
    root = _export_root(params, membership)
    file_format = params.get("format") or "csv"
    if file_format not in {"csv", "xlsx"}:
        raise Http404
    filters = {
        name: params[key]
        for key, name in (("q", "search"), ("type", "type"), ("status", "status"))
        if params.get(key)
    }
    return root, file_format, filters


@login_required
def export(request: HttpRequest) -> HttpResponse:
    """POST: enqueue an export of a (filtered) subtree. GET: download a small one at once."""
    membership = _membership(request)
    if request.method == "GET":
        return _export_download(request, membership)
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    root, file_format, filters = _export_request(request.POST, membership)
    try:
        job = enqueue_job(
            account=request.account,  # type: ignore[attr-defined]
            kind=EXPORT_KIND,
            params={"root": root.pk if root else None, "format": file_format, "filters": filters},
            title=_("Export of %(name)s") % {"name": root.name if root else _("the registry")},
            created_by=request.user,
        )
    except KeyError:
        messages.error(request, _("Exports are not available on this server yet."))
        return redirect("registry:detail", pk=root.pk) if root else redirect("registry:tree")
    return redirect(_job_url(job.pk))


def _export_download(request: HttpRequest, membership: Membership) -> HttpResponse:
    from closedloop.registry.exporter import filter_units, write_export

    root, file_format, filters = _export_request(request.GET, membership)
    units = filter_units(
        visible_units(membership),
        root=root,
        type_id=filters.get("type"),
        status=filters.get("status"),
        search=filters.get("search"),
    )
    if units.count() > DIRECT_EXPORT_LIMIT:
        messages.warning(
            request,
            _("This subtree has more than %(n)d units; use the Export button to prepare the file.")
            % {"n": DIRECT_EXPORT_LIMIT},
        )
        return redirect("registry:detail", pk=root.pk) if root else redirect("registry:tree")
    buffer = io.BytesIO()
    write_export(units, file_format, buffer)
    content_type = (
        "text/csv; charset=utf-8"
        if file_format == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    name = get_valid_filename(root.name if root else "registry") or "registry"
    response = HttpResponse(buffer.getvalue(), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="orgunits-{name}.{file_format}"'
    return response


# ---------------------------------------------------------------- import wizard


def _importer(request: HttpRequest) -> Membership:
    """Imports match and create units anywhere in the tree, so scoped members may not run them."""
    membership = _editor(request)
    if scope_paths(membership) is not None:
        raise PermissionDenied(_("Only members who see the whole registry can import."))
    return membership


def _upload_dir(account_id: int, token: uuid.UUID) -> Path:
    return Path(settings.MEDIA_ROOT) / "uploads" / str(account_id) / str(token)


def _store_upload(account_id: int, upload: Any) -> tuple[uuid.UUID, Path]:
    token = uuid.uuid4()
    folder = _upload_dir(account_id, token)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (get_valid_filename(Path(upload.name).name) or "upload")
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return token, path


@login_required
def import_upload(request: HttpRequest) -> HttpResponse:
    """Step 1: upload a CSV or XLSX file; it must be readable before step 2."""
    membership = _importer(request)
    form = UploadForm(*_bound(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        token, path = _store_upload(membership.account_id, data["file"])
        try:
            table = read_table(
                path,
                filename=data["file"].name,
                delimiter=data["delimiter"] or None,
                encoding=data["encoding"] or None,
                sheet=data["sheet"] or None,
                max_bytes=settings.DATAOPS_MAX_UPLOAD_SIZE,
            )
        except TabularError as exc:
            shutil.rmtree(path.parent, ignore_errors=True)
            form.add_error("file", str(exc))
        else:
            request.session[IMPORT_SESSION_PREFIX + str(token)] = {
                "file": str(path),
                "filename": data["file"].name,
                "delimiter": table.delimiter,
                "encoding": table.encoding,
                "sheet": table.sheet,
            }
            return redirect("registry:import_mapping", token=token)
    return render(request, "registry/import_upload.html", {"form": form})


def _guess_mapping(columns: list[str]) -> dict[str, str]:
    """Pre-fill the mapping: usual column names, and columns named after known types."""
    wanted = {
        "name": ("name", "nom", "unit", "school", "facility"),
        "ref": ("ref", "id", "external_id", "uid"),
        "code": ("code",),
        "lat": ("lat", "latitude", "y"),
        "lon": ("lon", "lng", "long", "longitude", "x"),
    }
    lower = {c.lower(): c for c in columns}
    guess: dict[str, str] = {}
    for key, names in wanted.items():
        found = next((lower[n] for n in names if n in lower), None)
        if found:
            guess[key] = found
    type_names = {t.name.lower(): t.name for t in unit_types()}
    if guess.get("name", "").lower() in type_names:
        guess["leaf_type"] = type_names[guess["name"].lower()]
    levels = [c for c in columns if c.lower() in type_names and c != guess.get("name")]
    for level, column in enumerate(levels[:IMPORT_LEVELS], start=1):
        guess[f"parent_{level}"] = column
        guess[f"type_{level}"] = type_names[column.lower()]
    return guess


def _import_options(data: dict[str, Any], upload: dict[str, str]) -> dict[str, Any]:
    values = {
        "parents": data["parents"],
        "name": data["name"],
        "ref": data.get("ref") or None,
        "code": data.get("code") or None,
        "lat": data.get("lat") or None,
        "lon": data.get("lon") or None,
        "type_names": data["type_names"],
        "leaf_type": (data.get("leaf_type") or "").strip() or None,
        "delimiter": upload.get("delimiter") or None,
        "encoding": upload.get("encoding") or None,
        "sheet": upload.get("sheet") or None,
        "source": (data.get("source") or "").strip() or None,
        "version": data.get("version"),
        "only_valid": bool(data.get("only_valid")),
        "status": data["status"],
    }
    try:
        from closedloop.registry.importer import ImportOptions
    except ImportError:
        return values
    return ImportOptions(**values).to_json()  # type: ignore[no-any-return]


@login_required
def import_mapping(request: HttpRequest, token: uuid.UUID) -> HttpResponse:
    """Step 2: map columns, see the first rows, and start the import job."""
    _importer(request)
    key = IMPORT_SESSION_PREFIX + str(token)
    upload = request.session.get(key)
    if not upload:
        raise Http404
    try:
        table = read_table(
            upload["file"],
            filename=upload["filename"],
            delimiter=upload["delimiter"] or None,
            encoding=upload["encoding"] or None,
            sheet=upload["sheet"] or None,
        )
    except TabularError as exc:
        messages.error(request, str(exc))
        return redirect("registry:import")
    form = MappingForm(
        _posted(request), columns=table.columns, initial=_guess_mapping(table.columns)
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = enqueue_job(
                account=request.account,  # type: ignore[attr-defined]
                kind=IMPORT_KIND,
                params={
                    "file": upload["file"],
                    "filename": upload["filename"],
                    "options": _import_options(form.cleaned_data, upload),
                },
                title=_("Import of %(file)s") % {"file": upload["filename"]},
                created_by=request.user,
            )
        except KeyError:
            form.add_error(None, _("Imports are not available on this server yet."))
        else:
            del request.session[key]
            return redirect(_job_url(job.pk))
    return render(
        request,
        "registry/import_mapping.html",
        {"form": form, "preview": preview(table), "filename": upload["filename"]},
    )
