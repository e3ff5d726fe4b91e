from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from closedloop.accounts import throttle
from closedloop.accounts.models import Role, User
from closedloop.core.models import AuditEntry


def locked_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed logins for this email address. Try again in %(n)d minute.",
        "Too many failed logins for this email address. Try again in %(n)d minutes.",
        minutes,
    ) % {"n": minutes}


class ThrottledAuthenticationForm(AuthenticationForm):
    """Email + password login that refuses attempts after repeated failures."""

    def clean(self) -> dict[str, Any]:
        email = (self.cleaned_data.get("username") or "").strip().lower()
        address = throttle.client_address(self.request)
        wait = throttle.seconds_locked(email, address)
        if wait:
            raise ValidationError(locked_message(wait), code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:
            wait = throttle.record_failure(email, address)
            if wait:
                raise ValidationError(locked_message(wait), code="throttled") from None
            raise
        throttle.reset(email, address)
        return cleaned


class EmailPasswordResetForm(PasswordResetForm):
    """Also reaches invited users who never set a password, so they can ask for a new link."""

    def get_users(self, email: str) -> Iterator[User]:
        yield from User.objects.filter(email__iexact=email.strip(), is_active=True)


class ProfileForm(forms.ModelForm):
    language = forms.ChoiceField(
        label=_("Language"),
        required=False,
        choices=[("", _("Same as my browser"))] + [(c, n) for c, n in settings.LANGUAGES],
    )

    class Meta:
        model = User
        fields = ["full_name", "language"]


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Token name"),
        max_length=100,
        help_text=_("Say what uses it, e.g. “reporting script”."),
    )


class IdListField(forms.Field):
    """Several ids posted under one name (checkboxes); the service checks they exist."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        try:
            return sorted({int(v) for v in value})
        except (TypeError, ValueError):
            raise ValidationError(_("Pick org units from the search results."), code="invalid")


class MemberForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.VIEWER)
    scope = IdListField(label=_("Limit to these org units"), required=False)


class MemberInviteForm(MemberForm):
    email = forms.EmailField(label=_("Email address"))
    full_name = forms.CharField(label=_("Full name"), max_length=150, required=False)

    field_order = ["email", "full_name", "role", "scope"]


class AuditFilterForm(forms.Form):
    object_type = forms.ChoiceField(label=_("Object type"), required=False)
    action = forms.ChoiceField(
        label=_("Action"),
        required=False,
        choices=[("", _("Any action"))] + list(AuditEntry.Action.choices),
    )
    actor = forms.TypedChoiceField(label=_("By"), required=False, coerce=int, empty_value=None)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(
        self, *args: Any, object_types: list[str], actors: list[tuple[int, str]], **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        object_type = self.fields["object_type"]
        actor = self.fields["actor"]
        assert isinstance(object_type, forms.ChoiceField) and isinstance(actor, forms.ChoiceField)
        object_type.choices = [("", _("Any type"))] + [(t, t) for t in object_types]
        actor.choices = [("", _("Anyone")), *actors]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise ValidationError(_("The “From” date is after the “To” date."))
        return cleaned
