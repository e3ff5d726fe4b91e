"""Secrets stored in the database (connection passwords, API and OAuth tokens).

Encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from SECRET_KEY, so a
database dump alone does not reveal them. Rotating SECRET_KEY makes stored secrets
unreadable: :func:`decrypt` then raises :class:`SecretUnreadable` and the user re-enters
the secret.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored value was encrypted under another SECRET_KEY or is corrupt."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"closedloop-secrets:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(value: str) -> str:
    """Encrypt ``value``; the empty string stays empty (meaning: no secret stored)."""
    if not value:
        return ""
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted (was SECRET_KEY changed?). Enter it again."
        ) from None
