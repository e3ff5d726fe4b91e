"""One benchmark in its own process (the runner gives it a fresh database)."""

from __future__ import annotations

import argparse
import importlib
import json
import traceback

from benchmarks.harness import Context, create_account, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("suite")
    parser.add_argument("benchmark")
    parser.add_argument("--size", default="ci")
    parser.add_argument("--db", default="sqlite")
    args = parser.parse_args()
    setup_django()
    suite = importlib.import_module(f"benchmarks.{args.suite}")
    ctx = Context(size=args.size, db=args.db, account=create_account())
    try:
        results = [m.to_json() for m in suite.BENCHMARKS[args.benchmark](ctx)]
    except Exception as exc:
        traceback.print_exc()
        results = [ctx.failed(f"{args.suite}.{args.benchmark}", "", f"{exc}").to_json()]
    print("BENCHMARK-RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
