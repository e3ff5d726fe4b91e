from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from closedloop.accounts.models import User


class EmailBackend(ModelBackend):
    """Password login by email address, compared case-insensitively."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        login = (email or username or kwargs.get("email") or "").strip()
        if not login or password is None:
            return None
        user = User.objects.filter(email__iexact=login).first()
        if user is None:
            User().set_password(password)  # same time whether or not the user exists
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
