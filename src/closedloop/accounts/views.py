from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from closedloop.accounts import selectors, services
from closedloop.accounts.forms import (
    AuditFilterForm,
    EmailPasswordResetForm,
    MemberForm,
    MemberInviteForm,
    ProfileForm,
    ThrottledAuthenticationForm,
    TokenCreateForm,
)
from closedloop.accounts.models import Membership

MEMBERS_PER_PAGE = 50
AUDIT_PER_PAGE = 50


# -- authentication ------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        language = form.get_user().language
        if language:
            response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, samesite="Lax")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    form_class = EmailPasswordResetForm
    template_name = "accounts/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        # read at request time: links in emails point at the public BASE_URL
        self.extra_email_context = {"base_url": settings.BASE_URL, "app_title": settings.APP_TITLE}
        return super().form_valid(form)


password_reset = PasswordResetView.as_view()
password_reset_done = auth_views.PasswordResetDoneView.as_view(
    template_name="accounts/password_reset_done.html"
)
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="accounts/password_reset_confirm.html",
    success_url=reverse_lazy("accounts:password_reset_complete"),
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="accounts/password_reset_complete.html"
)
password_change = auth_views.PasswordChangeView.as_view(
    template_name="accounts/password_change.html",
    success_url=reverse_lazy("accounts:password_change_done"),
)
password_change_done = auth_views.PasswordChangeDoneView.as_view(
    template_name="accounts/password_change_done.html"
)


# -- profile and tokens --------------------------------------------------------------


def _profile_page(request: HttpRequest, **context: Any) -> HttpResponse:
    context.setdefault("form", ProfileForm(instance=request.user))
    context.setdefault("token_form", TokenCreateForm())
    context["tokens"] = selectors.tokens_for(request.user)
    return render(request, "accounts/profile.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _profile_page(request)
    form = ProfileForm(request.POST, instance=request.user)
    if not form.is_valid():
        return _profile_page(request, form=form)
    user = services.user_update_profile(
        user=request.user,  # type: ignore[arg-type]
        full_name=form.cleaned_data["full_name"],
        language=form.cleaned_data["language"],
    )
    messages.success(request, _("Your profile is saved."))
    response = redirect("accounts:profile")
    if user.language:
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, user.language, samesite="Lax")
    return response


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _profile_page(request, token_form=form)
    token, raw = services.token_create(user=request.user, name=form.cleaned_data["name"])  # type: ignore[arg-type]
    # Shown in this response only: the raw value is never stored, not even in the session.
    return _profile_page(request, new_token=token, raw_token=raw)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.token_for(request.user, token_id)
    services.token_revoke(user=request.user, token=token)  # type: ignore[arg-type]
    messages.success(request, _("The token “%(name)s” is revoked.") % {"name": token.name})
    return redirect("accounts:profile")


# -- account switcher ----------------------------------------------------------------


@login_required
@require_POST
def switch(request: HttpRequest, account_id: int) -> HttpResponse:
    membership = services.account_switch(request, account_id)
    messages.success(
        request, _("You are now working in %(account)s.") % {"account": membership.account.name}
    )
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = ""
    return redirect(target or "web:home")


# -- members -------------------------------------------------------------------------


@login_required
@require_GET
def members(request: HttpRequest) -> HttpResponse:
    selectors.require_admin(request)
    return _members_page(request, MemberInviteForm())


def _members_page(request: HttpRequest, form: MemberInviteForm, status: int = 200) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    qs = selectors.members_of(request.account, search)  # type: ignore[attr-defined]
    page = Paginator(qs, MEMBERS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "search": search, "form": form, "chosen_units": []}
    return render(request, "accounts/members.html", context, status=status)


@login_required
@require_POST
def member_add(request: HttpRequest) -> HttpResponse:
    admin = selectors.require_admin(request)
    form = MemberInviteForm(request.POST)
    if not form.is_valid():
        return _members_page(request, form, status=400)
    data = form.cleaned_data
    try:
        membership, created = services.member_invite(
            account=admin.account,
            actor=request.user,
            email=data["email"],
            role=data["role"],
            full_name=data["full_name"],
            scope_units=data["scope"],
        )
    except services.AccountsError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _members_page(request, form, status=400)
    if created:
        text = _("%(email)s is added and has been emailed a link to set a password.")
    else:
        text = _("%(email)s is added to this account.")
    messages.success(request, text % {"email": membership.user.email})
    return redirect("accounts:members")


@login_required
@require_http_methods(["GET", "POST"])
def member_edit(request: HttpRequest, membership_id: int) -> HttpResponse:
    admin = selectors.require_admin(request)
    membership = selectors.member_for(admin.account, membership_id)
    chosen = list(membership.scope.all())
    if request.method != "POST":
        form = MemberForm(initial={"role": membership.role})
        return _member_edit_page(request, membership, form, chosen)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            services.membership_update(
                account=admin.account,
                actor=request.user,
                membership=membership,
                role=form.cleaned_data["role"],
                scope_units=form.cleaned_data["scope"],
            )
        except services.AccountsError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, _("%(email)s is updated.") % {"email": membership.user.email})
            return redirect("accounts:members")
    return _member_edit_page(request, membership, form, chosen, status=400)


def _member_edit_page(
    request: HttpRequest,
    membership: Membership,
    form: MemberForm,
    chosen: list[Any],
    status: int = 200,
) -> HttpResponse:
    context = {"membership": membership, "form": form, "chosen_units": chosen}
    return render(request, "accounts/member_edit.html", context, status=status)


def _set_member_active(request: HttpRequest, membership_id: int, active: bool) -> HttpResponse:
    admin = selectors.require_admin(request)
    membership = selectors.member_for(admin.account, membership_id)
    try:
        services.membership_update(
            account=admin.account, actor=request.user, membership=membership, is_active=active
        )
    except services.AccountsError as exc:
        messages.error(request, str(exc))
        return redirect("accounts:members")
    if active:
        text = _("%(email)s can use this account again.")
    else:
        text = _("%(email)s can no longer use this account.")
    messages.success(request, text % {"email": membership.user.email})
    return redirect("accounts:members")


@login_required
@require_POST
def member_deactivate(request: HttpRequest, membership_id: int) -> HttpResponse:
    return _set_member_active(request, membership_id, active=False)


@login_required
@require_POST
def member_reactivate(request: HttpRequest, membership_id: int) -> HttpResponse:
    return _set_member_active(request, membership_id, active=True)


@login_required
@require_GET
def unit_search(request: HttpRequest) -> HttpResponse:
    selectors.require_admin(request)
    search = request.GET.get("unit_q", "")
    units = selectors.scope_unit_candidates(search)
    return render(
        request, "accounts/_unit_results.html", {"units": units, "search": search.strip()}
    )


# -- audit trail ---------------------------------------------------------------------


def _audit_filters(request: HttpRequest) -> tuple[AuditFilterForm, selectors.AuditFilters]:
    form = AuditFilterForm(
        request.GET or None,
        object_types=selectors.audit_object_types(),
        actors=selectors.audit_actor_choices(request.account),  # type: ignore[attr-defined]
    )
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        filters = selectors.AuditFilters(
            object_type=data["object_type"],
            action=data["action"],
            actor=data["actor"],
            date_from=data["date_from"],
            date_to=data["date_to"],
        )
    else:
        filters = selectors.AuditFilters()
    return form, filters


@login_required
@require_GET
def audit(request: HttpRequest) -> HttpResponse:
    selectors.require_admin(request)
    form, filters = _audit_filters(request)
    if form.is_bound and not form.is_valid():
        entries = selectors.audit_entries(filters).none()
    else:
        entries = selectors.audit_entries(filters)
    page = Paginator(entries, AUDIT_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    return render(request, "accounts/audit.html", context)


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # keep spreadsheets from running a cell as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _audit_rows(entries: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(
        ["time", "actor", "action", "object_type", "object_id", "object", "changes"]
    )
    for entry in entries.iterator(chunk_size=2000):
        yield writer.writerow(
            _csv_cell(v)
            for v in (
                entry.created_at.isoformat(),
                entry.actor.email if entry.actor else "",
                entry.action,
                entry.object_type,
                entry.object_id,
                entry.object_repr,
                json.dumps(entry.changes, ensure_ascii=False, sort_keys=True),
            )
        )


@login_required
@require_GET
def audit_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    selectors.require_admin(request)
    form, filters = _audit_filters(request)
    if form.is_bound and not form.is_valid():
        return audit(request)
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(
        _audit_rows(selectors.audit_entries(filters)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
