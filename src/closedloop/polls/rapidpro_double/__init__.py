"""A RapidPro API v2 test double, served over HTTP on localhost.

The real RapidPro needs Go services (mailroom) for every write and a search engine for
contact queries, so closedloop's tests, benchmarks and demo talk to this double instead.
The real client (``temba_client.v2.TembaClient``) is pointed at it unchanged::

    from closedloop.polls.rapidpro_double import FakeRapidPro
    from temba_client.v2 import TembaClient

    server = FakeRapidPro(seed=1)              # empty workspace (just the org)
    server.start()                             # http://127.0.0.1:<free port>, daemon thread
    flow = server.add_flow("Health check", [
        {"name": "Children", "type": "numeric", "cases": [
            {"type": "has_number_between", "arguments": ["0", "2"], "category": "Few"},
            {"type": "has_number_between", "arguments": ["3", "10"], "category": "Many"}]},
        {"name": "Color", "type": "categorical", "categories": ["Red", "Blue"]},
        {"name": "Comment", "type": "open"},
    ])
    panel = server.add_group("North panel")
    ana = server.add_contact("Ana", ["tel:+250788000001"], groups=[panel])
    server.add_run(flow["uuid"], ana["uuid"], {"children": "3 kids", "color": "red"})
    client = TembaClient(server.url, server.token)
    client.get_runs(reverse=True).all()
    server.stop()

In tests use the ``fake_rapidpro`` fixture (``polls/tests/conftest.py``); from a shell,
``closedloop fake-rapidpro --port 8765 --contacts 200 --polls 3`` serves generated data and
prints the URL and token.

Construction
    ``FakeRapidPro(seed=1, contacts=0, polls=0, *, token="fake-token", page_size=250,
    host="127.0.0.1", port=0, drift=False, fixtures=False, rate_limit=None, rate_window=60,
    clock=None, org=None)``. The default workspace is empty apart from the org; ``contacts``
    / ``polls`` run :meth:`FakeRapidPro.generate` at once; ``fixtures=True`` preloads the
    real sample payloads of ``payloads/*.json`` (from rapidpro-python, BSD-3; timestamps
    normalised, broadcast text turned into a ``{lang: text}`` map, spec-13 definitions built
    for the sample flows). ``clock`` is a callable returning an aware datetime (default:
    now); ids come from ``seed`` so runs are reproducible. ``page_size`` may be changed
    while serving.

State (``server.state``, a :class:`DoubleState`)
    ``org`` (dict) and lists of API-v2-shaped dicts: ``flows``, ``groups``, ``fields``,
    ``contacts``, ``deleted_contacts``, ``boundaries``, ``runs``, ``messages``,
    ``broadcasts``, ``flow_starts``, ``labels``; ``definitions`` maps flow uuid → spec-13
    flow. ``requests`` logs ``(method, path, params-or-body)`` of every request. Arrange
    data with the ``add_*`` helpers (``add_flow``, ``add_group``, ``add_field``,
    ``add_contact``, ``add_run``, ``add_message``, ``add_boundary``, ``delete_contact``) or
    by appending dicts; after editing a dict in place in a collection of 5,000+ items call
    ``state.touch()`` (big collections cache their sort index and per-item JSON).

Endpoints (``/api/v2/<name>.json``; ``Authorization: Token <token>`` or 403)
    GET ``org``, ``definitions`` (``flow`` repeatable; ``{"version": "13", "flows": [...]}``),
    ``flows`` (uuid, type, archived), ``groups`` (uuid, name; ``count`` computed),
    ``fields`` (key), ``contacts`` (uuid, urn, group by uuid or name, ``deleted=true`` lists
    deleted contacts with only uuid and timestamps filled), ``runs`` (uuid, flow, contact,
    responded), ``messages`` (uuid, contact, ``folder`` = inbox | flows | archived |
    incoming | outbox | sent | failed), ``broadcasts``, ``flow_starts`` (uuid),
    ``boundaries`` (geometry only with ``geometry=true``, as on a real server), ``labels``.
    POST ``contacts`` (create → 201; update with ``?uuid=`` or ``?urn=`` → 200, 404 when
    missing; fields merge, groups/urns replace; invalid/taken URN, unknown group or field,
    bad language → 400), DELETE ``contacts?uuid=|urn=`` (204, 404 when missing; the contact
    moves to ``deleted_contacts``), POST ``flow_starts`` (one FlowStart, ``status`` pending;
    its runs are created — each with ``start: {uuid}`` — on the next GET ``runs`` or by
    :meth:`FakeRapidPro.process_starts`, for active contacts of ``contacts``, ``groups`` and
    ``urns``, unknown URNs becoming new contacts; ``restart_participants``/
    ``exclude_active`` honoured), POST ``broadcasts`` (text string or ``{lang: text}``;
    answered with text as a ``{lang: text}`` map; one outgoing message per reached contact,
    in the contact's language when translated). ``contacts``/``groups``/``urns`` of writes
    are limited to 100 items: 400 ``{"contacts": ["Ensure this field has no more than 100
    elements."]}``. Every 400 body is ``{field: [messages]}`` (``non_field_errors`` for
    general ones).

Paging
    ``{"next", "previous", "results"}``, ``page_size`` items per page, keyset cursors
    (``cursor=`` in the ``next``/``previous`` URLs, which keep the other filters): a saved
    cursor stays valid while new items arrive. Contacts, runs and flow starts are ordered by
    ``modified_on``, flows, messages and broadcasts by ``created_on``, newest first;
    ``reverse=true`` gives oldest first; ``before``/``after`` are inclusive. Groups, fields,
    boundaries and labels come in insertion order. Timestamps are ISO-8601 with microseconds
    and ``+00:00``.

Runs and categories
    Flows are spec-13 (``flows.py``): one node per question with a ``send_msg`` action and a
    ``switch`` router on ``@input.text`` — numeric questions ``has_number_*`` cases,
    categorical ones ``has_any_word`` cases (both with an "Other" default), open ones a
    single "All Responses" category. ``flows.results[].node_uuids`` name those nodes. Run
    values are ``{key: {name, value, category, node, time, input}}`` categorised like
    goflow: the first passing case wins (its matched number/words become the value), else
    "Other" with the raw input.

Failure modes
    ``server.throttle(times=1, retry_after=1)``: the next requests answer 429 with
    ``Retry-After``; ``rate_limit=N`` does so automatically after N requests per
    ``rate_window`` seconds; ``server.fail_next(status=500, times=1)`` forces errors;
    ``drift=True`` adds an unknown ``new_field`` to every object (and run value) and drops
    optional fields a newer server might omit (never the list fields the client requires).

Generated data (``server.generate(contacts=200, polls=3, runs_per_poll=None,
questions=None, days=56, messages=True, end=None, seed=None)``, see ``generator.py``)
    Deterministic for a seed and ``end``: boundaries at levels 0–2, one panel group per
    district plus cohorts, fields gender/age/facility_code/registered_on, contacts with
    statuses, polls of 3–10 questions of the three kinds, weekly runs over ``days`` (complete,
    partial, empty, a few same-day repeats) and messages. 100,000 runs × 10 values take a
    couple of seconds. Serving encodes each run once (≈15 µs) and then reuses its JSON, so
    a page of 250 such runs costs a few milliseconds; ``server.warm()`` pays the encoding
    up front (benchmarks).
"""

from .server import FakeRapidPro
from .state import DoubleState

__all__ = ["DoubleState", "FakeRapidPro"]
