"""Canvas inbox messages: OAuth2 per user and Canvas instance, then the Conversations API.

Instances come from ``CANVAS_INFO_DICT`` (OnTask's variable)::

    {"Canvas U": {"domain_port": "canvas.example.edu", "client_id": "...",
                  "client_secret": "...", "authorize_url": "https://.../login/oauth2/auth",
                  "access_token_url": "https://.../login/oauth2/token",
                  "conversation_url": "https://.../api/v1/conversations",
                  "aux_params": {}}}

Tokens are stored encrypted (:class:`OAuthToken`) and refreshed with the refresh token
before sending when they expire within ``CANVAS_TOKEN_EXPIRY_SLACK`` seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from closedloop.core.crypto import SecretUnreadable, decrypt, encrypt
from closedloop.feedback import channels as ch
from closedloop.feedback.models import ActionRun, OAuthToken

STATE_SALT = "closedloop.feedback.canvas-oauth"
STATE_MAX_AGE = 900


class CanvasError(Exception):
    """Canvas is not configured, or the user has no usable token (message for the user)."""


def instances() -> dict[str, dict[str, Any]]:
    raw = settings.CANVAS_INFO_DICT
    if not raw:
        return {}
    data = json.loads(raw) if isinstance(raw, str) else raw
    return {str(k): dict(v) for k, v in data.items()}


def instance_info(name: str) -> dict[str, Any]:
    info = instances().get(name)
    if info is None:
        raise CanvasError(_("There is no Canvas instance named “%(name)s”.") % {"name": name})
    return info


def redirect_uri() -> str:
    return settings.BASE_URL.rstrip("/") + reverse("feedback:canvas_callback")


def _save_token(*, user: Any, account_id: int, instance: str, data: dict[str, Any]) -> OAuthToken:
    expires_in = int(data.get("expires_in") or 3600)
    token, _created = OAuthToken.objects.update_or_create(
        account_id=account_id,
        user=user,
        instance_name=instance,
        defaults={
            "access_token_encrypted": encrypt(str(data["access_token"])),
            "expires_at": timezone.now() + timedelta(seconds=expires_in),
        },
    )
    if data.get("refresh_token"):
        token.refresh_token_encrypted = encrypt(str(data["refresh_token"]))
        token.save(update_fields=["refresh_token_encrypted"])
    return token


def _token_request(info: dict[str, Any], **fields: str) -> dict[str, Any]:
    payload = {"client_id": info["client_id"], "client_secret": info["client_secret"], **fields}
    try:
        response = requests.post(info["access_token_url"], data=payload, timeout=ch.HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise ch.TemporaryError(_("Could not reach Canvas: %s") % exc) from exc
    if response.status_code != 200:
        raise CanvasError(
            _("Canvas refused the token request (%(status)s): %(reply)s")
            % {"status": response.status_code, "reply": response.text[:200]}
        )
    data: dict[str, Any] = response.json()
    if "access_token" not in data:
        raise CanvasError(_("Canvas answered without an access token."))
    return data


def access_token(*, user: Any, account_id: int, instance: str, force_refresh: bool = False) -> str:
    """A valid access token, refreshed first if it expires within the slack."""
    token = OAuthToken.objects.filter(
        account_id=account_id, user=user, instance_name=instance
    ).first()
    if token is None:
        raise CanvasError(
            _("%(user)s has not authorized closedloop with Canvas “%(instance)s” yet.")
            % {"user": getattr(user, "email", user), "instance": instance}
        )
    slack = timedelta(seconds=int(settings.CANVAS_TOKEN_EXPIRY_SLACK))
    try:
        if force_refresh or token.expires_at - slack <= timezone.now():
            refresh = decrypt(token.refresh_token_encrypted)
            if not refresh:
                raise CanvasError(_("The Canvas token expired; authorize again."))
            data = _token_request(
                instance_info(instance), grant_type="refresh_token", refresh_token=refresh
            )
            token = _save_token(user=user, account_id=account_id, instance=instance, data=data)
        return decrypt(token.access_token_encrypted)
    except SecretUnreadable as exc:
        raise CanvasError(_("The stored Canvas token cannot be read; authorize again.")) from exc


class CanvasChannel(ch.OneByOne):
    """POST /api/v1/conversations for each message, as the user who started the run."""

    def __init__(self, run: ActionRun) -> None:
        self.run = run
        self.instance = str((run.options or {}).get("canvas_instance") or "")
        self.token = ""

    def open(self) -> None:
        self.session = requests.Session()
        self.error = ""
        try:
            self.info = instance_info(self.instance)
            self.token = self._token()
        except CanvasError as exc:
            self.error = str(exc)

    def _token(self, force: bool = False) -> str:
        return access_token(
            user=self.run.started_by,
            account_id=self.run.account_id,
            instance=self.instance,
            force_refresh=force,
        )

    def close(self) -> None:
        self.session.close()

    def send(self, messages: Sequence[ch.Outgoing]) -> list[ch.Outcome]:
        if self.error:
            return [ch.Outcome(False, error=self.error) for _m in messages]
        return super().send(messages)

    def send_one(self, message: ch.Outgoing) -> str:
        recipient = message.recipient.strip()
        if not recipient:
            raise ch.PermanentError(_("No Canvas user id for this row."))
        payload = {
            "recipients[]": [recipient],
            "subject": message.subject,
            "body": message.extra.get("text") or message.body,
            "force_new": "true",
            "group_conversation": "false",
        }
        response = self._post(payload)
        if response.status_code == 401:  # revoked or expired early: refresh once
            try:
                self.token = self._token(force=True)
            except CanvasError as exc:
                raise ch.PermanentError(str(exc)) from exc
            response = self._post(payload)
        if response.status_code in (200, 201):
            body = response.json()
            first = body[0] if isinstance(body, list) and body else body
            return str(first.get("id", "")) if isinstance(first, dict) else ""
        error = _("Canvas answered %(status)s: %(reply)s") % {
            "status": response.status_code,
            "reply": response.text[:300],
        }
        if response.status_code == 429 or response.status_code >= 500:
            raise ch.TemporaryError(error)
        raise ch.PermanentError(error)

    def _post(self, payload: dict[str, Any]) -> requests.Response:
        try:
            return self.session.post(
                self.info["conversation_url"],
                data=payload,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=ch.HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise ch.TemporaryError(_("Could not reach Canvas: %s") % exc) from exc


# --- the OAuth2 pages ---------------------------------------------------------------------


@login_required
def canvas_authorize(request: HttpRequest, instance: str) -> HttpResponse:
    """Send the user to Canvas to authorize closedloop; Canvas comes back to the callback."""
    if getattr(request, "membership", None) is None:
        raise Http404
    try:
        info = instance_info(instance)
    except CanvasError:
        raise Http404 from None
    back = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    state = signing.dumps(
        {"instance": instance, "next": back, "user": request.user.pk}, salt=STATE_SALT
    )
    query = {
        "client_id": info["client_id"],
        "response_type": "code",
        "redirect_uri": redirect_uri(),
        "state": state,
        **(info.get("aux_params") or {}),
    }
    return redirect(f"{info['authorize_url']}?{urlencode(query)}")


@login_required
def canvas_callback(request: HttpRequest) -> HttpResponse:
    try:
        state = signing.loads(request.GET.get("state", ""), salt=STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.BadSignature:
        raise Http404 from None
    membership = getattr(request, "membership", None)
    if membership is None or state.get("user") != request.user.pk:
        raise Http404
    target = state.get("next") or reverse("feedback:workflow_list")
    if request.GET.get("error") or not request.GET.get("code"):
        messages.error(request, _("Canvas did not authorize closedloop."))
        return redirect(target)
    try:
        info = instance_info(state["instance"])
        data = _token_request(
            info,
            grant_type="authorization_code",
            redirect_uri=redirect_uri(),
            code=request.GET["code"],
        )
    except (CanvasError, ch.TemporaryError) as exc:
        messages.error(request, str(exc))
        return redirect(target)
    _save_token(
        user=request.user, account_id=membership.account_id, instance=state["instance"], data=data
    )
    messages.success(request, _("Canvas “%(name)s” is connected.") % {"name": state["instance"]})
    return redirect(target)
