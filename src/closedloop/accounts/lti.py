"""LTI 1.1 launches: an LMS (Moodle, Canvas, Blackboard...) signs a form POST with OAuth1
HMAC-SHA1; closedloop verifies it, finds or creates the user by email, logs them in and
sends them on.

- Consumers: ``LTI_OAUTH_CREDENTIALS=key=secret,key2=secret2``.
- Roles in ``LTI_INSTRUCTOR_GROUP_ROLES`` (short names such as ``Instructor`` or full
  URNs such as ``urn:lti:role:ims/lis/Instructor``) make the user an instructor of the
  account named by the launch parameter ``custom_account`` (an account slug), else of
  their only account. ``LTI_CONSUMER_ACCOUNTS=key=slug|slug2`` limits the accounts a
  consumer may name. An existing higher role (admin, manager, supervisor) is kept.
- ``custom_action=<public id>`` opens a served action; otherwise instructors land on the
  home page and learners on a page listing the actions served to them.

Every refusal (unknown key, bad signature, stale timestamp, replayed nonce, missing
email) is logged and answered with a 403 page that says which check failed.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from oauthlib.oauth1 import RequestValidator, SignatureOnlyEndpoint
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA1

from closedloop.accounts.backends import clean_email, find_or_create_user
from closedloop.accounts.models import Account, Membership, Role, User
from closedloop.core.tenancy import account_scope, scopes_disabled

logger = logging.getLogger(__name__)

#: seconds a launch timestamp may differ from the server clock
TIMESTAMP_WINDOW = 300
#: session key: the account of the last learner launch (for the learner page)
SESSION_ACCOUNT = "lti_account_id"
LOGIN_BACKEND = "closedloop.accounts.backends.EmailBackend"
#: roles above instructor, never lowered by a launch
_RANK = {
    Role.VIEWER: 0,
    Role.COLLECTOR: 0,
    Role.INSTRUCTOR: 1,
    Role.SUPERVISOR: 2,
    Role.MANAGER: 2,
    Role.ADMIN: 3,
}


class LaunchError(Exception):
    """A refused launch. ``code`` names the failed check; ``message`` is for the user."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Launch:
    consumer_key: str
    params: dict[str, str]
    email: str
    full_name: str
    is_instructor: bool


# -- configuration -------------------------------------------------------------------


def _pairs(values: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, _sep, value = item.partition("=")
        if key.strip() and value.strip():
            pairs[key.strip()] = value.strip()
    return pairs


def consumer_secrets() -> dict[str, str]:
    return _pairs(list(settings.LTI_OAUTH_CREDENTIALS))


def consumer_accounts(key: str) -> list[str] | None:
    """Account slugs ``key`` may grant roles in; None when it is not restricted."""
    mapping = _pairs(list(getattr(settings, "LTI_CONSUMER_ACCOUNTS", [])))
    if key not in mapping:
        return None
    return [slug.strip() for slug in mapping[key].split("|") if slug.strip()]


def _role_names(role: str) -> set[str]:
    """``urn:lti:role:ims/lis/TeachingAssistant/Grader`` -> the URN, ``teachingassistant``
    and ``grader``: a configured role matches its short name or its full URN."""
    role = role.strip().lower()
    if not role:
        return set()
    names = {role}
    if ":" in role or "/" in role:
        tail = role.rsplit(":", 1)[-1]
        parts = [p for p in tail.split("/") if p]
        if parts and parts[0] == "ims" and len(parts) > 1:
            parts = parts[1:]
        if parts and parts[0] == "lis" and len(parts) > 1:
            parts = parts[1:]
        names.update(parts[:1])
    return names


def is_instructor(roles: str) -> bool:
    wanted: set[str] = set()
    for configured in settings.LTI_INSTRUCTOR_GROUP_ROLES:
        wanted |= _role_names(configured)
    given: set[str] = set()
    for role in roles.split(","):
        given |= _role_names(role)
    return bool(wanted & given)


# -- signature -----------------------------------------------------------------------


class _Validator(RequestValidator):
    """Secrets from settings; nonce and timestamp are checked by ``verify_launch``."""

    enforce_ssl = False
    allowed_signature_methods = (SIGNATURE_HMAC_SHA1,)
    timestamp_lifetime = TIMESTAMP_WINDOW
    dummy_client = "closedloop-dummy-client"

    def __init__(self, secrets: dict[str, str]):
        super().__init__()
        self.secrets = secrets

    def check_client_key(self, client_key: str) -> bool:
        return 0 < len(client_key) <= 255

    def check_nonce(self, nonce: str) -> bool:
        return 0 < len(nonce) <= 255

    def validate_client_key(self, client_key: str, request: Any) -> bool:
        return client_key in self.secrets

    def get_client_secret(self, client_key: str, request: Any) -> str:
        return self.secrets.get(client_key, "closedloop-dummy-secret")

    def validate_timestamp_and_nonce(self, *args: Any, **kwargs: Any) -> bool:
        return True


def launch_urls(request: HttpRequest) -> list[str]:
    """The URLs the consumer may have signed: the public BASE_URL, and the address the
    request arrived at with the scheme a proxy reports in X-Forwarded-Proto."""
    path = request.get_full_path()
    urls: list[str] = []
    base = urlsplit(settings.BASE_URL or "")
    if base.scheme and base.netloc:
        urls.append(f"{base.scheme}://{base.netloc}{path}")
    absolute = request.build_absolute_uri(path)
    proto = request.META.get("HTTP_X_FORWARDED_PROTO", "").split(",")[0].strip().lower()
    if proto in {"http", "https"}:
        absolute = proto + absolute[absolute.index(":") :]
    if absolute not in urls:
        urls.append(absolute)
    return urls


def _nonce_key(consumer_key: str, nonce: str) -> str:
    import hashlib

    return "lti-nonce:" + hashlib.sha256(f"{consumer_key}\0{nonce}".encode()).hexdigest()


def verify_launch(request: HttpRequest) -> dict[str, str]:
    """The launch parameters, once the signature, timestamp and nonce are checked."""
    body = request.body.decode("utf-8", "replace")
    params = {key: request.POST.get(key, "") for key in request.POST}
    secrets = consumer_secrets()
    key = params.get("oauth_consumer_key", "")
    if not key or key not in secrets:
        raise LaunchError(
            "unknown_key",
            _("The consumer key of this launch is not configured here (LTI_OAUTH_CREDENTIALS)."),
        )
    if params.get("oauth_signature_method") != SIGNATURE_HMAC_SHA1:
        raise LaunchError(
            "bad_signature",
            _("This launch is not signed with HMAC-SHA1, the only method accepted."),
        )
    try:
        stamp = int(params.get("oauth_timestamp", ""))
    except ValueError:
        stamp = 0
    if abs(time.time() - stamp) > TIMESTAMP_WINDOW:
        raise LaunchError(
            "stale_timestamp",
            _(
                "The launch timestamp is more than %(seconds)s seconds away from the server "
                "clock. Launch again from your course; if it keeps failing, a clock is wrong."
            )
            % {"seconds": TIMESTAMP_WINDOW},
        )
    nonce = params.get("oauth_nonce", "")
    if not nonce:
        raise LaunchError("bad_signature", _("The launch has no nonce."))
    nonce_key = _nonce_key(key, nonce)
    if cache.get(nonce_key):
        raise LaunchError("replayed_nonce", _("This launch was already used. Launch again."))
    endpoint = SignatureOnlyEndpoint(_Validator(secrets))
    headers = {"Content-Type": request.content_type or "application/x-www-form-urlencoded"}
    if request.META.get("HTTP_AUTHORIZATION"):
        headers["Authorization"] = request.META["HTTP_AUTHORIZATION"]
    valid = any(
        endpoint.validate_request(url, "POST", body, headers)[0] for url in launch_urls(request)
    )
    if not valid:
        raise LaunchError(
            "bad_signature",
            _("The launch signature is not valid: the consumer secret or launch URL differs."),
        )
    # recorded only once the signature holds, atomically: a second use is a replay
    if not cache.add(nonce_key, 1, timeout=2 * TIMESTAMP_WINDOW + 60):
        raise LaunchError("replayed_nonce", _("This launch was already used. Launch again."))
    return params


def parse_launch(request: HttpRequest) -> Launch:
    params = verify_launch(request)
    raw_email = params.get("lis_person_contact_email_primary", "")
    if not raw_email.strip():
        raise LaunchError(
            "missing_email",
            _(
                "The launch carries no email address (lis_person_contact_email_primary). "
                "Ask the course administrator to share the user's email with this tool."
            ),
        )
    email = clean_email(raw_email)
    if email is None:
        raise LaunchError(
            "missing_email", _("“%(email)s” is not a valid email address.") % {"email": raw_email}
        )
    return Launch(
        consumer_key=params["oauth_consumer_key"],
        params=params,
        email=email,
        full_name=params.get("lis_person_name_full", "").strip(),
        is_instructor=is_instructor(params.get("roles", "")),
    )


# -- users and roles -----------------------------------------------------------------


def _launch_account(launch: Launch, user: User) -> Account | None:
    slug = launch.params.get("custom_account", "").strip()
    allowed = consumer_accounts(launch.consumer_key)
    if not slug and allowed and len(allowed) == 1:
        slug = allowed[0]
    if slug:
        if allowed is not None and slug not in allowed:
            raise LaunchError(
                "account_not_allowed",
                _("This consumer may not open the account “%(slug)s”.") % {"slug": slug},
            )
        account = Account.objects.filter(slug=slug, is_active=True).first()
        if account is None:
            raise LaunchError(
                "unknown_account", _("There is no active account “%(slug)s”.") % {"slug": slug}
            )
        return account
    memberships = list(
        Membership.objects.filter(
            user=user, is_active=True, account__is_active=True
        ).select_related("account")[:2]
    )
    return memberships[0].account if len(memberships) == 1 else None


def grant_instructor(user: User, account: Account) -> Membership | None:
    """Make ``user`` an instructor of ``account``; a higher role or an inactive membership
    (an administrator's decision) is left as it is."""
    from closedloop.accounts import services

    membership = Membership.objects.filter(account=account, user=user).first()
    if membership is None:
        return services.membership_add(account=account, actor=None, user=user, role=Role.INSTRUCTOR)
    if not membership.is_active:
        logger.info("LTI: %s has an inactive membership of %s; left inactive", user, account)
        return None
    if _RANK.get(Role(membership.role), 0) < _RANK[Role.INSTRUCTOR]:
        return services.membership_update(
            account=account, actor=None, membership=membership, role=Role.INSTRUCTOR
        )
    return membership


def _served_action(public_id: str) -> Any | None:
    try:
        value = uuid.UUID(public_id)
    except ValueError:
        return None
    from closedloop.feedback.models import Action

    with scopes_disabled():
        return Action.objects.filter(public_id=value, serve_enabled=True).first()


def _serve_url(public_id: Any) -> str:
    try:
        return reverse("feedback:serve", args=[public_id])
    except NoReverseMatch:
        return f"/feedback/serve/{public_id}/"


def error_page(request: HttpRequest, error: LaunchError) -> HttpResponse:
    logger.warning(
        "LTI launch refused (%s): %s [key=%r, address=%s]",
        error.code,
        error.message,
        request.POST.get("oauth_consumer_key", ""),
        request.META.get("REMOTE_ADDR", ""),
    )
    return render(
        request,
        "accounts/lti_error.html",
        {"code": error.code, "message": error.message},
        status=403,
    )


@csrf_exempt
@require_POST
def launch(request: HttpRequest) -> HttpResponse:
    try:
        data = parse_launch(request)
        with transaction.atomic():
            user, created = find_or_create_user(data.email, data.full_name)
            if not user.is_active:
                raise LaunchError("inactive_user", _("This user account is deactivated."))
            account = _launch_account(data, user)
            if data.is_instructor and account is not None:
                grant_instructor(user, account)
    except LaunchError as error:
        return error_page(request, error)
    login(request, user, backend=LOGIN_BACKEND)
    logger.info(
        "LTI launch: %s (%s) key=%s created=%s",
        user.email,
        "instructor" if data.is_instructor else "learner",
        data.consumer_key,
        created,
    )
    action = _served_action(data.params.get("custom_action", ""))
    if action is not None:
        request.session[SESSION_ACCOUNT] = action.account_id
        return redirect(_serve_url(action.public_id))
    if account is not None:
        request.session[SESSION_ACCOUNT] = account.pk
        if data.is_instructor:
            from closedloop.accounts.middleware import SESSION_KEY

            request.session[SESSION_KEY] = account.pk
    if data.is_instructor:
        return redirect("web:home")
    return redirect("lti:learner")


# -- the learner page ----------------------------------------------------------------


def served_actions_for(user: User, account_id: int | None, limit: int = 50) -> list[Any]:
    """Actions served to learners in ``account_id`` that are open now."""
    if not account_id:
        return []
    from django.db.models import Q

    from closedloop.feedback.models import Action

    now = timezone.now()
    with account_scope(account_id):
        return list(
            Action.objects.filter(serve_enabled=True, account_id=account_id)
            .filter(Q(active_from__isnull=True) | Q(active_from__lte=now))
            .filter(Q(active_to__isnull=True) | Q(active_to__gte=now))
            .select_related("workflow")
            .order_by("workflow__name", "name")[:limit]
        )


@login_required
@require_GET
def learner(request: HttpRequest) -> HttpResponse:
    actions = served_actions_for(request.user, request.session.get(SESSION_ACCOUNT))  # type: ignore[arg-type]
    items = [{"action": a, "url": _serve_url(a.public_id)} for a in actions]
    return render(request, "accounts/lti_learner.html", {"items": items})
