"""The RapidPro client wrapper against the double: retries, errors users can act on, paging."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.polls import client as rp
from closedloop.polls import testing as t

pytestmark = pytest.mark.django_db


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records every Retry-After wait instead of sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(rp, "sleep", recorded.append)
    return recorded


def _client(fake: Any, token: str | None = None) -> Any:
    return rp.make_client(fake.url, token or fake.token)


def test_client_for_decrypts_the_token_and_names_closedloop(world: Any, fake_rapidpro: Any) -> None:
    with account_scope(world.account):
        conn = t.make_connection(
            world.account, host_url=fake_rapidpro.url, token=fake_rapidpro.token
        )
        client = rp.client_for(conn)
    assert client.headers["Authorization"] == f"Token {fake_rapidpro.token}"
    assert client.headers["User-Agent"].startswith("closedloop ")
    org = rp.call(client.get_org)
    assert org.name == "Fake RapidPro workspace"


def test_call_sleeps_retry_after_and_retries(fake_rapidpro: Any, waits: list[float]) -> None:
    fake_rapidpro.throttle(times=2, retry_after=3)
    org = rp.call(_client(fake_rapidpro).get_org)
    assert org.timezone == "Africa/Kigali"
    assert waits == [3, 3]
    assert len([r for r in fake_rapidpro.state.requests if r[1].endswith("org.json")]) == 3


def test_call_gives_up_after_the_configured_retries(
    fake_rapidpro: Any, waits: list[float], settings: Any
) -> None:
    settings.RAPIDPRO_MAX_RETRIES = 2
    fake_rapidpro.throttle(times=5, retry_after=1)
    with pytest.raises(rp.RateLimited) as info:
        rp.call(_client(fake_rapidpro).get_org)
    assert waits == [1, 1]
    assert "3 tries" in str(info.value)


def test_a_retry_after_longer_than_allowed_is_not_slept(
    fake_rapidpro: Any, waits: list[float], settings: Any
) -> None:
    settings.RAPIDPRO_MAX_RETRY_AFTER = 60
    fake_rapidpro.throttle(times=1, retry_after=600)
    with pytest.raises(rp.RateLimited) as info:
        rp.call(_client(fake_rapidpro).get_org)
    assert waits == []
    assert info.value.retry_after == 600
    assert "600 seconds" in str(info.value)


def test_a_bad_token_says_so(fake_rapidpro: Any) -> None:
    with pytest.raises(rp.TokenRefused) as info:
        rp.call(_client(fake_rapidpro, token="wrong").get_org)
    assert "RapidPro refused the API token" in str(info.value)


def test_connection_refused_names_the_host() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    host = f"http://127.0.0.1:{port}"
    client = rp.make_client(host, "x")
    client._closedloop_host = host
    with pytest.raises(rp.RapidProError) as info:
        rp.call(client.get_org)
    assert f"Could not connect to {host}" in str(info.value)


def test_a_400_error_dict_becomes_one_readable_line(fake_rapidpro: Any) -> None:
    flow = fake_rapidpro.add_flow("Survey", [{"key": "q", "type": "open"}])
    client = _client(fake_rapidpro)
    urns = [f"tel:+2507880{i:05d}" for i in range(101)]
    with pytest.raises(rp.RapidProError) as info:
        rp.call(client.create_flow_start, flow=flow["uuid"], urns=urns)
    assert info.value.status == 400
    message = str(info.value)
    assert message.startswith("RapidPro rejected the request: urns:")
    assert "100" in message


def test_server_errors_are_reported_with_their_status(fake_rapidpro: Any) -> None:
    fake_rapidpro.fail_next(status=502)
    with pytest.raises(rp.RapidProError) as info:
        rp.call(_client(fake_rapidpro).get_org)
    assert info.value.status == 502
    assert "HTTP 502" in str(info.value)


def test_pages_retry_each_page_and_expose_the_cursor(
    fake_rapidpro: Any, waits: list[float]
) -> None:
    fake_rapidpro.page_size = 2
    for i in range(5):
        fake_rapidpro.add_group(f"Group {i}")
    client = _client(fake_rapidpro)
    pages = rp.Pages(client.get_groups())
    first = next(pages)
    cursor = pages.get_cursor()
    assert len(first) == 2
    assert cursor
    fake_rapidpro.throttle(times=1, retry_after=2)
    second = next(pages)
    assert waits == [2]
    assert len(second) == 2
    # resuming from the saved cursor gives the same second page
    resumed = next(rp.Pages(client.get_groups(), resume_cursor=cursor))
    assert [g.uuid for g in resumed] == [g.uuid for g in second]
    rest = list(pages)
    assert sum(len(p) for p in rest) == 1
    assert pages.get_cursor() is None
    assert len(rp.fetch_all(client.get_groups())) == 5


def test_batches_split_at_one_hundred() -> None:
    sizes = [len(b) for b in rp.batches(range(250))]
    assert sizes == [100, 100, 50]
    assert list(rp.batches([])) == []
    assert [len(b) for b in rp.batches(range(5), size=2)] == [2, 2, 1]


def test_test_connection_reports_the_workspace(fake_rapidpro: Any) -> None:
    ok = rp.test_connection(fake_rapidpro.url, fake_rapidpro.token)
    assert ok == {
        "ok": True,
        "workspace": "Fake RapidPro workspace",
        "timezone": "Africa/Kigali",
        "error": "",
    }
    bad = rp.test_connection(fake_rapidpro.url, "nope")
    assert bad["ok"] is False and "refused the API token" in bad["error"]
    empty = rp.test_connection(fake_rapidpro.url, "  ")
    assert empty["ok"] is False and "token" in empty["error"]
    no_url = rp.test_connection("", "x")
    assert no_url["ok"] is False and "URL" in no_url["error"]


def test_test_connection_to_something_that_is_not_rapidpro(live_server: Any) -> None:
    result = rp.test_connection(live_server.url + "/nothing-here", "x")
    assert result["ok"] is False
    assert "No RapidPro API answers at this URL" in result["error"]
