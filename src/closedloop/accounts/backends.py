"""Authentication backends: password by email, REMOTE_USER (SAML, Shibboleth) and LDAP.

Every backend finds users by email address, compared case-insensitively, so one person
has one account whichever way they sign in. LTI launches log users in directly (see
``accounts/lti.py``) after verifying the launch signature.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.backends import ModelBackend, RemoteUserBackend
from django.contrib.auth.middleware import PersistentRemoteUserMiddleware
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from closedloop.accounts.models import User

logger = logging.getLogger(__name__)

#: paths reached without a REMOTE_USER login (tracking pixels, LTI, health checks)
REMOTE_USER_EXEMPT_PREFIXES = ("/trck/", "/lti/", "/health/")


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


def clean_email(value: str | None) -> str | None:
    """``value`` as a lower-case email address, or None when it is not one."""
    email = (value or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        return None
    return email


def find_or_create_user(email: str, full_name: str = "") -> tuple[User, bool]:
    """The user with ``email`` (case-insensitive), created with an unusable password if new.

    Two first requests at once cannot create the user twice: the unique index on the
    lower-cased email refuses the second insert, which then reads the first one's row.
    """
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        if full_name and not user.full_name:
            user.full_name = full_name[:150]
            user.save(update_fields=["full_name"])
        return user, False
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, None, full_name=full_name[:150])
    except IntegrityError:
        return User.objects.get(email__iexact=email), False
    return user, True


class RemoteEmailBackend(RemoteUserBackend):
    """Trusts the REMOTE_USER the web server sets after SAML / Shibboleth sign-in.

    The value must be an email address; anything else is refused (logged) and the
    request stays anonymous. Unknown addresses get a new user with an unusable password.
    """

    create_unknown_user = True

    def clean_username(self, username: str) -> str:
        return (username or "").strip().lower()

    def authenticate(  # type: ignore[override]
        self, request: HttpRequest | None, remote_user: str | None = None, **kwargs: Any
    ) -> User | None:
        if not remote_user:
            return None
        email = clean_email(remote_user)
        if email is None:
            logger.warning(
                "REMOTE_USER %r is not an email address; request left anonymous", remote_user
            )
            return None
        user, created = find_or_create_user(email)
        if created:
            logger.info("REMOTE_USER created user %s", email)
        return user if self.user_can_authenticate(user) else None


class RemoteEmailMiddleware(PersistentRemoteUserMiddleware):
    """REMOTE_USER sign-in that keeps the session when the variable is absent, and leaves
    the tracking pixel, LTI launches and health checks alone."""

    def process_request(self, request: HttpRequest) -> None:
        if request.path.startswith(REMOTE_USER_EXEMPT_PREFIXES):
            return
        super().process_request(request)

    async def aprocess_request(self, request: HttpRequest) -> None:
        if request.path.startswith(REMOTE_USER_EXEMPT_PREFIXES):
            return
        await super().aprocess_request(request)


def _ldap_backend_class() -> type:
    from django_auth_ldap.backend import LDAPBackend

    class EmailLDAPBackend(LDAPBackend):
        """LDAP bind with the email as login; the Django user is matched by email.

        The directory entry is found with ``AUTH_LDAP_USER_SEARCH`` (``(mail=%(user)s)``);
        django-auth-ldap then looks the Django user up by ``USERNAME_FIELD`` (the email,
        case-insensitively), so a password user signing in through LDAP keeps their
        account, and a new one is created with an unusable password.
        """

        def ldap_to_django_username(self, username: str) -> str:
            return (username or "").strip().lower()

        def django_to_ldap_username(self, username: str) -> str:
            return (username or "").strip().lower()

        def authenticate(  # type: ignore[override]
            self,
            request: HttpRequest | None,
            username: str | None = None,
            password: str | None = None,
            **kwargs: Any,
        ) -> User | None:
            email = clean_email(username or kwargs.get("email"))
            if email is None or not password:
                return None
            return super().authenticate(request, username=email, password=password, **kwargs)

    return EmailLDAPBackend


def __getattr__(name: str) -> Any:
    # LDAP is optional: django_auth_ldap is imported only when the backend is asked for
    if name == "EmailLDAPBackend":
        cls = _ldap_backend_class()
        cls.__qualname__ = cls.__name__
        globals()[name] = cls
        return cls
    raise AttributeError(name)
