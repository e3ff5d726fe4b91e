"""System emails about accounts: "set your password" for invited users."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from closedloop.accounts.models import User


def set_password_url(user: User) -> str:
    """An absolute link (on ``BASE_URL``) where ``user`` chooses a password."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("accounts:password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    return f"{settings.BASE_URL}{path}"


def send_set_password_email(user: User, *, account: Any = None) -> None:
    context = {
        "user": user,
        "account": account,
        "url": set_password_url(user),
        "app_title": settings.APP_TITLE,
    }
    subject = render_to_string("registration/set_password_subject.txt", context)
    body = render_to_string("registration/set_password_email.txt", context)
    send_mail(" ".join(subject.split()), body, None, [user.email])
