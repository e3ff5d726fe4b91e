"""LTI 1.1 launches signed for real with oauthlib, and every way a launch is refused."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from oauthlib.oauth1 import SIGNATURE_TYPE_BODY, Client

from closedloop.accounts.lti import is_instructor
from closedloop.accounts.models import Membership, Role, User
from closedloop.core.tenancy import scopes_disabled

pytestmark = pytest.mark.django_db

LAUNCH = "/lti/launch/"
KEY, SECRET = "moodle-key", "s3cret-value"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def _lti_settings(settings):
    settings.LTI_OAUTH_CREDENTIALS = [f"{KEY}={SECRET}", "other=another-secret"]
    settings.LTI_INSTRUCTOR_GROUP_ROLES = ["Instructor", "urn:lti:role:ims/lis/ContentDeveloper"]
    settings.LTI_CONSUMER_ACCOUNTS = []
    settings.BASE_URL = "https://feedback.example.edu"
    cache.clear()


def launch_params(**extra: str) -> dict[str, str]:
    params = {
        "lti_message_type": "basic-lti-launch-request",
        "lti_version": "LTI-1p0",
        "resource_link_id": "course-42-link-1",
        "user_id": "u-1001",
        "roles": "Learner",
        "lis_person_contact_email_primary": "Learner.One@Example.edu",
        "lis_person_name_full": "Learner One",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def sign(
    params: dict[str, str],
    *,
    key: str = KEY,
    secret: str = SECRET,
    url: str = "https://feedback.example.edu/lti/launch/",
    timestamp: str | None = None,
    nonce: str | None = None,
) -> str:
    client = Client(
        key,
        client_secret=secret,
        signature_type=SIGNATURE_TYPE_BODY,
        timestamp=timestamp,
        nonce=nonce,
    )
    _uri, _headers, body = client.sign(
        url, http_method="POST", body=urlencode(params), headers={"Content-Type": FORM}
    )
    return body


def post(client, body: str, **extra):
    return client.post(LAUNCH, data=body, content_type=FORM, **extra)


def test_a_learner_launch_creates_the_user_and_logs_them_in(client, world):
    response = post(client, sign(launch_params()))
    assert response.status_code == 302
    assert response["Location"] == "/lti/home/"
    user = User.objects.get(email="learner.one@example.edu")
    assert user.full_name == "Learner One"
    assert not user.has_usable_password()
    assert client.session["_auth_user_id"] == str(user.pk)
    assert not Membership.objects.filter(user=user).exists()
    page = client.get("/lti/home/")
    assert page.status_code == 200
    assert b'data-testid="lti-nothing"' in page.content


def test_an_existing_user_is_found_case_insensitively(client, world):
    body = sign(launch_params(lis_person_contact_email_primary="ALICE@example.ORG"))
    response = post(client, body)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(world.alice.pk)
    assert User.objects.filter(email__iexact="alice@example.org").count() == 1


def test_an_instructor_launch_grants_the_instructor_role_in_the_named_account(client, world):
    body = sign(
        launch_params(
            roles="urn:lti:role:ims/lis/Instructor,urn:lti:instrole:ims/lis/Faculty",
            lis_person_contact_email_primary="teacher@example.edu",
            custom_account="ministry-a",
        )
    )
    response = post(client, body)
    assert response.status_code == 302
    assert response["Location"] == "/"
    teacher = User.objects.get(email="teacher@example.edu")
    membership = Membership.objects.get(user=teacher)
    assert membership.account == world.account
    assert membership.role == Role.INSTRUCTOR
    assert client.get("/").status_code == 200


def test_an_instructor_launch_never_downgrades_an_admin(client, world):
    body = sign(
        launch_params(
            roles="Instructor",
            lis_person_contact_email_primary="alice@example.org",
            custom_account="ministry-a",
        )
    )
    assert post(client, body).status_code == 302
    world.alice_membership.refresh_from_db()
    assert world.alice_membership.role == Role.ADMIN


def test_an_instructor_launch_raises_a_viewer_and_uses_their_only_account(client, world):
    body = sign(
        launch_params(roles="Instructor", lis_person_contact_email_primary="bob@example.org")
    )
    assert post(client, body).status_code == 302
    world.bob_membership.refresh_from_db()
    assert world.bob_membership.role == Role.INSTRUCTOR


def test_an_inactive_membership_is_left_inactive(client, world):
    Membership.objects.filter(pk=world.bob_membership.pk).update(is_active=False)
    body = sign(
        launch_params(
            roles="Instructor",
            lis_person_contact_email_primary="bob@example.org",
            custom_account="ministry-a",
        )
    )
    assert post(client, body).status_code == 302
    world.bob_membership.refresh_from_db()
    assert not world.bob_membership.is_active
    assert world.bob_membership.role == Role.VIEWER


def test_a_learner_role_gives_no_membership_even_with_an_account(client, world):
    body = sign(launch_params(custom_account="ministry-a"))
    assert post(client, body).status_code == 302
    assert not Membership.objects.filter(user__email="learner.one@example.edu").exists()


def test_role_names_match_short_names_and_urns():
    assert is_instructor("Instructor")
    assert is_instructor("urn:lti:role:ims/lis/Instructor")
    assert is_instructor("Learner, urn:lti:role:ims/lis/ContentDeveloper")
    assert is_instructor("instructor")
    assert not is_instructor("Learner,urn:lti:role:ims/lis/Learner")
    assert not is_instructor("urn:lti:role:ims/lis/TeachingAssistant")
    assert not is_instructor("")


def test_the_consumer_account_mapping_limits_the_accounts(client, world, settings):
    settings.LTI_CONSUMER_ACCOUNTS = [f"{KEY}=ministry-a"]
    body = sign(
        launch_params(
            roles="Instructor",
            lis_person_contact_email_primary="t2@example.edu",
            custom_account="ministry-b",
        )
    )
    response = post(client, body)
    assert response.status_code == 403
    assert b"account_not_allowed" in response.content
    assert not User.objects.filter(email="t2@example.edu").exists()
    # without custom_account the single mapped account is used
    body = sign(
        launch_params(roles="Instructor", lis_person_contact_email_primary="t2@example.edu")
    )
    assert post(client, body).status_code == 302
    assert Membership.objects.get(user__email="t2@example.edu").account == world.account


def test_an_unknown_account_is_refused(client, world):
    body = sign(launch_params(roles="Instructor", custom_account="nope"))
    response = post(client, body)
    assert response.status_code == 403
    assert b"unknown_account" in response.content


def test_custom_action_redirects_to_the_served_action(client, world):
    from closedloop.feedback.models import Action, Workflow

    with scopes_disabled():
        workflow = Workflow.objects.create(account=world.account, owner=world.alice, name="W")
        action = Action.objects.create(
            account=world.account,
            workflow=workflow,
            name="Week 3 feedback",
            action_type="personalized_text",
            serve_enabled=True,
        )
        Action.objects.create(
            account=world.account, workflow=workflow, name="Hidden", action_type="email"
        )
    response = post(client, sign(launch_params(custom_action=str(action.public_id))))
    assert response.status_code == 302
    assert response["Location"].endswith(f"/serve/{action.public_id}/")
    page = client.get("/lti/home/")
    assert b"Week 3 feedback" in page.content
    assert b"Hidden" not in page.content


def test_the_signature_may_use_the_forwarded_scheme(client, world, settings):
    settings.BASE_URL = ""
    body = sign(launch_params(), url="https://testserver/lti/launch/")
    assert post(client, body).status_code == 403  # plain http without the proxy header
    body = sign(launch_params(), url="https://testserver/lti/launch/")
    assert post(client, body, HTTP_X_FORWARDED_PROTO="https").status_code == 302


# -- refusals ------------------------------------------------------------------------


def _refused(response, code: str) -> None:
    assert response.status_code == 403
    assert f'data-testid="lti-error-code">{code}<'.encode() in response.content


def test_a_wrong_secret_is_refused_and_logged(client, world, caplog):
    with caplog.at_level(logging.WARNING, logger="closedloop.accounts.lti"):
        response = post(client, sign(launch_params(), secret="wrong"))
    _refused(response, "bad_signature")
    assert "LTI launch refused (bad_signature)" in caplog.text
    assert not User.objects.filter(email="learner.one@example.edu").exists()
    assert "_auth_user_id" not in client.session


def test_a_tampered_parameter_is_refused(client, world):
    body = sign(launch_params())
    body = body.replace("roles=Learner", "roles=Instructor")
    _refused(post(client, body), "bad_signature")


def test_a_launch_signed_for_another_url_is_refused(client, world):
    body = sign(launch_params(), url="https://evil.example.com/lti/launch/")
    _refused(post(client, body), "bad_signature")


def test_an_unknown_key_is_refused(client, world):
    _refused(post(client, sign(launch_params(), key="nobody", secret="x")), "unknown_key")


def test_no_credentials_configured_refuses_every_launch(client, world, settings):
    settings.LTI_OAUTH_CREDENTIALS = []
    _refused(post(client, sign(launch_params())), "unknown_key")


def test_an_unsigned_post_is_refused(client, world):
    _refused(post(client, urlencode(launch_params())), "unknown_key")


def test_a_stale_timestamp_is_refused(client, world):
    old = str(int(time.time()) - 3600)
    _refused(post(client, sign(launch_params(), timestamp=old)), "stale_timestamp")
    future = str(int(time.time()) + 3600)
    _refused(post(client, sign(launch_params(), timestamp=future)), "stale_timestamp")


def test_a_replayed_nonce_is_refused(client, world):
    body = sign(launch_params(), nonce="n0nce-used-once-1234567890")
    assert post(client, body).status_code == 302
    client.logout()
    _refused(post(client, body), "replayed_nonce")


def test_a_refused_signature_does_not_burn_the_nonce(client, world):
    nonce = "n0nce-xyz-1234567890abcdef"
    _refused(post(client, sign(launch_params(), secret="wrong", nonce=nonce)), "bad_signature")
    assert post(client, sign(launch_params(), nonce=nonce)).status_code == 302


def test_a_missing_email_is_refused(client, world):
    params = launch_params()
    del params["lis_person_contact_email_primary"]
    _refused(post(client, sign(params)), "missing_email")


def test_an_invalid_email_is_refused(client, world):
    body = sign(launch_params(lis_person_contact_email_primary="not an email"))
    _refused(post(client, body), "missing_email")


def test_an_inactive_user_is_refused(client, world):
    User.objects.filter(pk=world.bob.pk).update(is_active=False)
    body = sign(launch_params(lis_person_contact_email_primary="bob@example.org"))
    _refused(post(client, body), "inactive_user")


def test_get_is_not_a_launch(client, world):
    assert client.get(LAUNCH).status_code == 405


def test_the_learner_page_needs_a_login(client, world):
    response = client.get("/lti/home/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
