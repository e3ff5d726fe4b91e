"""Every write to accounts, users, memberships and API tokens goes through these functions."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from closedloop.accounts.emails import send_set_password_email
from closedloop.accounts.middleware import SESSION_KEY
from closedloop.accounts.models import Account, ApiToken, Membership, Role, User, hash_token
from closedloop.core.audit import record_audit
from closedloop.core.models import AuditEntry
from closedloop.core.tabular import TabularError, read_table
from closedloop.core.tenancy import account_scope


class AccountsError(ValueError):
    """A change refused, with a message that says what was wrong and how to fix it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class UsersImportError(AccountsError):
    """An import refused; ``errors`` lists every problem found, with row numbers."""

    def __init__(self, errors: list[str]):
        super().__init__(" ".join(errors))
        self.errors = errors


@dataclass
class UsersImportResult:
    created: int = 0
    added: int = 0
    already_members: int = 0
    emailed: list[str] = field(default_factory=list)


# -- accounts ------------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "account"
    slug, n = base, 2
    while Account.objects.filter(slug=slug).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


def _check_time_zone(time_zone: str) -> None:
    if time_zone not in zoneinfo.available_timezones():
        raise AccountsError(
            _("“%(tz)s” is not a known time zone. Use a name such as Africa/Nairobi or UTC.")
            % {"tz": time_zone},
            "time_zone",
        )


def account_create(
    *,
    name: str,
    admin_email: str,
    admin_password: str | None,
    time_zone: str = "UTC",
    languages: list[str] | None = None,
) -> Account:
    """A new account with its first admin. An existing user keeps their password."""
    name = name.strip()
    if not name:
        raise AccountsError(_("An account needs a name."), "name")
    _check_time_zone(time_zone)
    with transaction.atomic():
        account = Account.objects.create(
            name=name, slug=_unique_slug(name), time_zone=time_zone, languages=languages or []
        )
        user = User.objects.filter(email__iexact=admin_email.strip()).first()
        if user is None:
            user = user_create(email=admin_email, password=admin_password)
        membership_add(account=account, actor=None, user=user, role=Role.ADMIN)
    return account


# -- users ---------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise AccountsError(
            _("“%(email)s” is not a valid email address.") % {"email": email}, "email"
        ) from None
    return email


def user_create(*, email: str, password: str | None = None, full_name: str = "") -> User:
    """A new user; without a password the user sets one through the emailed link."""
    email = normalise_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise AccountsError(
            _("A user with the email %(email)s already exists.") % {"email": email}, "email"
        )
    with transaction.atomic():
        return User.objects.create_user(email, password or None, full_name=full_name.strip())


def user_update_profile(*, user: User, full_name: str, language: str) -> User:
    user.full_name = full_name.strip()
    user.language = language
    user.save(update_fields=["full_name", "language"])
    return user


# -- memberships ---------------------------------------------------------------------


def _membership_state(membership: Membership, scope_ids: Iterable[int]) -> dict[str, Any]:
    """Audited values; the scope by unit name, as people read the trail."""
    from closedloop.registry.models import OrgUnit

    ids = list(scope_ids)
    names: list[str] = []
    if ids:
        with account_scope(membership.account_id):
            names = sorted(OrgUnit.objects.filter(pk__in=ids).values_list("name", flat=True))
    return {
        "user": membership.user.email,
        "role": membership.role,
        "is_active": membership.is_active,
        "scope": names,
    }


def _scope_unit_ids(account: Account, units: Iterable[Any]) -> list[int]:
    """Ids of ``units`` (units or ids), refusing any that are not units of ``account``."""
    from closedloop.registry.models import OrgUnit

    wanted: set[int] = set()
    for unit in units:
        try:
            wanted.add(int(getattr(unit, "pk", unit)))
        except (TypeError, ValueError):
            raise AccountsError(
                _("“%(value)s” is not an org-unit id.") % {"value": unit}, "scope"
            ) from None
    if not wanted:
        return []
    with account_scope(account):
        found = set(OrgUnit.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    missing = sorted(wanted - found)
    if missing:
        raise AccountsError(
            _("These org units do not exist in this account: %(ids)s.")
            % {"ids": ", ".join(map(str, missing))},
            "scope",
        )
    return sorted(found)


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise AccountsError(
            _("“%(role)s” is not a role. Choose one of: %(roles)s.")
            % {"role": role, "roles": ", ".join(Role.values)},
            "role",
        )
    return role


def _check_supervisor_scope(role: str, scope_ids: list[int]) -> None:
    if role == Role.SUPERVISOR and not scope_ids:
        raise AccountsError(
            _(
                "A supervisor needs at least one org unit in their scope; otherwise they see nothing."
            ),
            "scope",
        )


def membership_add(
    *, account: Account, actor: Any, user: User, role: str, scope_units: Iterable[Any] = ()
) -> Membership:
    role = _check_role(role)
    scope_ids = _scope_unit_ids(account, scope_units)
    _check_supervisor_scope(role, scope_ids)
    if Membership.objects.filter(account=account, user=user).exists():
        raise AccountsError(
            _("%(email)s is already a member of this account.") % {"email": user.email}, "email"
        )
    with transaction.atomic(), account_scope(account):
        membership = Membership.objects.create(account=account, user=user, role=role)
        membership.scope.set(scope_ids)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.CREATE,
            obj=membership,
            after=_membership_state(membership, scope_ids),
        )
    return membership


def _other_active_admins(membership: Membership) -> bool:
    return (
        Membership.objects.filter(account_id=membership.account_id, role=Role.ADMIN, is_active=True)
        .exclude(pk=membership.pk)
        .exists()
    )


def membership_update(
    *,
    account: Account,
    actor: Any,
    membership: Membership,
    role: str | None = None,
    scope_units: Iterable[Any] | None = None,
    is_active: bool | None = None,
) -> Membership:
    if membership.account_id != account.pk:
        raise Http404
    with account_scope(account):
        old_scope = list(membership.scope.values_list("pk", flat=True))
    before = _membership_state(membership, old_scope)
    new_role = _check_role(role) if role is not None else membership.role
    new_scope = _scope_unit_ids(account, scope_units) if scope_units is not None else old_scope
    new_active = membership.is_active if is_active is None else is_active
    if new_active:
        _check_supervisor_scope(new_role, new_scope)
    stays_admin = new_role == Role.ADMIN and new_active
    losing_admin = membership.is_admin and membership.is_active and not stays_admin
    if losing_admin and not _other_active_admins(membership):
        raise AccountsError(
            _(
                "This is the last administrator of the account. Make someone else an "
                "administrator first."
            ),
            "role",
        )
    with transaction.atomic(), account_scope(account):
        membership.role, membership.is_active = new_role, new_active
        membership.save(update_fields=["role", "is_active", "updated_at"])
        if set(new_scope) != set(old_scope):
            membership.scope.set(new_scope)
        record_audit(
            account=account,
            actor=actor,
            action=AuditEntry.Action.UPDATE,
            obj=membership,
            before=before,
            after=_membership_state(membership, new_scope),
        )
    return membership


def membership_deactivate(*, account: Account, actor: Any, membership: Membership) -> Membership:
    return membership_update(account=account, actor=actor, membership=membership, is_active=False)


def membership_reactivate(*, account: Account, actor: Any, membership: Membership) -> Membership:
    return membership_update(account=account, actor=actor, membership=membership, is_active=True)


def member_invite(
    *,
    account: Account,
    actor: Any,
    email: str,
    role: str,
    full_name: str = "",
    scope_units: Iterable[Any] = (),
    password: str | None = None,
) -> tuple[Membership, bool]:
    """Add ``email`` to the account, creating the user if needed.

    Returns (membership, created). A new user without a password is emailed a link
    to set one, once the change is saved.
    """
    email = normalise_email(email)
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).first()
        created = user is None
        if user is None:
            user = user_create(email=email, password=password, full_name=full_name)
        membership = membership_add(
            account=account, actor=actor, user=user, role=role, scope_units=scope_units
        )
    if created and not user.has_usable_password():
        send_set_password_email(user, account=account)
    return membership, created


# -- bulk import ---------------------------------------------------------------------


@dataclass
class _ImportRow:
    row: int
    email: str
    full_name: str


def _read_import_rows(
    path_or_bytes: str | Path | bytes, email_column: str, name_column: str | None
) -> list[_ImportRow]:
    try:
        table = read_table(path_or_bytes)
        table.column_index(email_column)
        if name_column:
            table.column_index(name_column)
    except TabularError as exc:
        raise UsersImportError([str(exc)]) from None
    rows: list[_ImportRow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, record in table.records():
        email = (record.get(email_column) or "").strip().lower()
        if not email:
            errors.append(_("Row %(row)d: the email is missing.") % {"row": number})
            continue
        try:
            validate_email(email)
        except ValidationError:
            errors.append(
                _("Row %(row)d: “%(email)s” is not a valid email address.")
                % {"row": number, "email": email}
            )
            continue
        if email in seen:
            errors.append(
                _("Row %(row)d: %(email)s is already on row %(first)d.")
                % {"row": number, "email": email, "first": seen[email]}
            )
            continue
        seen[email] = number
        name = (record.get(name_column) or "").strip() if name_column else ""
        rows.append(_ImportRow(number, email, name))
    if errors:
        raise UsersImportError(errors)
    if not rows:
        raise UsersImportError([_("The file has no rows below the header.")])
    return rows


def users_import_csv(
    *,
    account: Account,
    actor: Any,
    path_or_bytes: str | Path | bytes,
    email_column: str = "email",
    role: str = Role.INSTRUCTOR,
    name_column: str | None = None,
) -> UsersImportResult:
    """Create users and memberships from a table; every row is checked before anything is
    written, so a bad file changes nothing."""
    _check_role(role)
    _check_supervisor_scope(role, [])
    rows = _read_import_rows(path_or_bytes, email_column, name_column)
    emails = [r.email for r in rows]
    result = UsersImportResult()
    new_users: list[User] = []
    with transaction.atomic():
        existing = {u.email.lower(): u for u in User.objects.filter(email__in=emails)}
        members = set(
            Membership.objects.filter(account=account, user__in=existing.values()).values_list(
                "user__email", flat=True
            )
        )
        for row in rows:
            user = existing.get(row.email)
            if user is None:
                user = user_create(email=row.email, full_name=row.full_name)
                new_users.append(user)
                result.created += 1
            elif user.email in members:
                result.already_members += 1
                continue
            else:
                result.added += 1
            membership_add(account=account, actor=actor, user=user, role=role)
    for user in new_users:
        send_set_password_email(user, account=account)
        result.emailed.append(user.email)
    return result


# -- API tokens ----------------------------------------------------------------------


def token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token; the raw value is returned once and only its hash is kept."""
    name = name.strip()
    if not name:
        raise AccountsError(_("Give the token a name, so you can recognise it later."), "name")
    raw = ApiToken.generate()
    token = ApiToken.objects.create(
        user=user, name=name[:100], key_hash=hash_token(raw), hint=raw[:8]
    )
    return token, raw


def token_revoke(*, user: User, token: ApiToken) -> ApiToken:
    if token.user_id != user.pk:
        raise Http404
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db(fields=["revoked_at"])
    return token


# -- account switcher ----------------------------------------------------------------


def account_switch(request: HttpRequest, account_id: Any) -> Membership:
    """Make ``account_id`` the current account, if the user has an active membership there."""
    try:
        account_id = int(account_id)
    except (TypeError, ValueError):
        raise Http404 from None
    membership = (
        Membership.objects.filter(
            Q(user=request.user), account_id=account_id, is_active=True, account__is_active=True
        )
        .select_related("account")
        .first()
    )
    if membership is None:
        raise Http404
    request.session[SESSION_KEY] = membership.account_id
    return membership
