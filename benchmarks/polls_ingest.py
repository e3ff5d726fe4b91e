"""Benchmark ``polls_ingest``: fetch + ingest of runs from the RapidPro double.

The double (in this process, serving from a thread) holds ``runs`` runs of 10 questions
each (numeric, categorical and open, as the generator mixes them) over 8 weekly poll
runs per poll. The connection's polls and questions are set up from the double's flows
(rules read from the spec-13 routers) and its contacts are already known, as after a
metadata and contact sync. Then ``ingest.fetch_runs`` reads every page over HTTP with the
real ``TembaClient`` and ingests it.

The double's own serving time (building each page, measured inside its request handler)
is subtracted: the figure is closedloop's time — HTTP client, JSON decoding, parsing,
lookups, bulk writes, the SQL recomputes and the word-count refresh.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Context, Measurement

SIZES = {
    "ci": {"runs": 2_000, "contacts": 500, "polls": 2},
    "full": {"runs": 100_000, "contacts": 5_000, "polls": 10},
}
QUESTIONS = 10
TARGET_RATE = 5_000  # runs per second


def _setup_polls(server: Any, connection: Any) -> None:
    """Poll + Question rows for every flow of the double (what the flow sync makes)."""
    from closedloop.polls import rules
    from closedloop.polls.models import Poll, Question

    for flow in server.state.flows:
        poll = Poll.objects.create(
            account_id=connection.account_id,
            connection=connection,
            flow_uuid=flow["uuid"],
            rapidpro_name=flow["name"],
            is_active=True,
        )
        routers: dict[str, dict[str, Any]] = {}
        definition = server.state.definitions[flow["uuid"]]
        for node in definition.get("nodes", []):
            router = node.get("router") or {}
            if router.get("result_name"):
                routers[node["uuid"]] = router
        questions = []
        for order, result in enumerate(flow.get("results", [])):
            router = next((routers[n] for n in result.get("node_uuids", []) if n in routers), {})
            found = rules.rules_from_router(router)
            questions.append(
                Question(
                    account_id=connection.account_id,
                    poll=poll,
                    result_key=result["key"],
                    rapidpro_name=result["name"],
                    node_uuids=result.get("node_uuids", []),
                    categories=result.get("categories", []),
                    rules=found,
                    type=rules.guess_type(result.get("categories", []), found, router.get("cases")),
                    order=order,
                )
            )
        Question.objects.bulk_create(questions)


def _setup_contacts(server: Any, connection: Any) -> None:
    from closedloop.people.models import Person
    from closedloop.polls.models import Contact

    remotes = server.state.contacts
    people = [
        Person(account_id=connection.account_id, name=c.get("name") or "", language="eng")
        for c in remotes
    ]
    Person.objects.bulk_create(people, batch_size=2_000)
    Contact.objects.bulk_create(
        [
            Contact(
                account_id=connection.account_id,
                connection=connection,
                person=person,
                uuid=c["uuid"],
                name=c.get("name") or "",
                language=c.get("language") or "",
            )
            for person, c in zip(people, remotes, strict=True)
        ],
        batch_size=2_000,
    )


def _object_cost(server: Any, sample: int = 2_000) -> float:
    """Seconds per run to turn API dicts into temba ``Run`` objects (information)."""
    from temba_client.v2.types import Run

    runs = server.state.runs[:sample]
    start = time.perf_counter()
    Run.deserialize_list(runs)
    return (time.perf_counter() - start) / max(len(runs), 1)


def _time_the_double(server: Any) -> list[float]:
    """Accumulate the double's time per request: its whole request handler (reading the
    request, building the page, writing the response) when reachable, else ``handle``."""
    served = [0.0]
    handler = getattr(getattr(server, "_httpd", None), "RequestHandlerClass", None)
    if handler is not None and hasattr(handler, "_serve"):
        serve = handler._serve

        def timed_serve(self: Any, method: str) -> None:
            start = time.perf_counter()
            try:
                serve(self, method)
            finally:
                served[0] += time.perf_counter() - start

        handler._serve = timed_serve
        return served
    handle = server.handle

    def timed_handle(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return handle(*args, **kwargs)
        finally:
            served[0] += time.perf_counter() - start

    server.handle = timed_handle
    return served


def bench_ingest(ctx: Context) -> list[Measurement]:
    from django.db import connection as db

    from closedloop.core.tenancy import account_scope
    from closedloop.polls import ingest
    from closedloop.polls import testing as t
    from closedloop.polls.models import Answer, Response, WordCount
    from closedloop.polls.rapidpro_double import FakeRapidPro

    size = SIZES[ctx.size]
    name = "polls.ingest_runs_from_double"
    target = f"≥ {TARGET_RATE:,} runs/s (10 values each), the double's time excluded"
    server = FakeRapidPro(seed=11, page_size=250)
    generated = server.generate(
        contacts=size["contacts"],
        polls=size["polls"],
        runs_per_poll=size["runs"] // size["polls"],
        questions=QUESTIONS,
        days=56,
        messages=False,
    )
    server.start()
    served = _time_the_double(server)
    try:
        with account_scope(ctx.account):
            connection = t.make_connection(ctx.account, host_url=server.url, token=server.token)
            _setup_polls(server, connection)
            _setup_contacts(server, connection)
            if db.vendor == "postgresql":
                with db.cursor() as cursor:
                    cursor.execute("ANALYZE")
            cpu = time.process_time()
            start = time.perf_counter()
            result = ingest.fetch_runs(connection)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
            responses = Response.objects.count()
            answers = Answer.objects.count()
            words = WordCount.objects.count()
            # a second fetch finds nothing new (the newest run again, unchanged)
            again_start = time.perf_counter()
            again = ingest.fetch_runs(connection)
            again_seconds = time.perf_counter() - again_start
    finally:
        server.stop()
    runs = result["runs"]
    ours = max(wall - served[0], 1e-9)
    return [
        ctx.measure(
            name,
            ours,
            runs / TARGET_RATE,
            target,
            runs=runs,
            generated_runs=generated.get("runs"),
            responses=responses,
            answers=answers,
            word_count_rows=words,
            pages=result["pages"],
            rate_runs_per_s=round(runs / ours),
            rate_answers_per_s=round(answers / ours),
            wall_seconds=round(wall, 3),
            double_serving_seconds=round(served[0], 3),
            process_cpu_seconds=round(cpu, 3),
            refetch_seconds=round(again_seconds, 3),
            refetch_created=again["created"],
            temba_run_objects_seconds_per_100k_runs=round(_object_cost(server) * 100_000, 2),
        )
    ]


BENCHMARKS = {"polls_ingest": bench_ingest}
