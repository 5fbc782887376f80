"""Alert storm on the live stack (plugin inside ``airflow standalone``, LocalExecutor,
PostgreSQL): webhook latency p50/p99 for N distinct alerts about one pod posted at once,
then for M posts of one identical payload; beside them the latency of the plugin's own
``/kubernaut/healthz`` and of Airflow's ``/api/v2/monitor/health``, sampled during the same
storm, and a quiet baseline of both before it. Also prints the decisions, HTTP statuses,
runs created and the state of an unrelated run started just before the storm. A warm-up
run goes first: Airflow's execution API initializes itself on its first request (~10 s in
which the api-server answers nothing), a one-off that is not the intake's.

    .venv/bin/python bench/storm.py [--distinct 50] [--identical 300] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

from kubernaut.live_stack import LiveStack, StormReport, run_storm


def show(report: StormReport) -> None:
    print(f"{'':58} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for label, xs in report.latency_rows():
        if xs:
            print(f"{label:58} {len(xs):5} {xs.p50:9.1f} {xs.p99:9.1f} {xs.max:9.1f}")
    print(
        f"distinct alerts: HTTP {dict(Counter(report.distinct_status))}, decisions {report.distinct_decisions}"
    )
    print(
        f"identical posts: HTTP {dict(Counter(report.identical_status))}, decisions {report.identical_decisions}"
    )
    print(
        f"runs for the storm's pod: {report.storm_runs}; triggered decisions recorded: {report.triggered_rows}"
    )
    print(f"unrelated run started just before the storm: {report.bystander_state}")
    d, i = report.distinct_latency, report.identical_latency
    ok_d = report.storm_runs == 1 and report.distinct_decisions.get("busy") == len(d) - 1 and d.p99 < 500
    ok_i = i.p99 < 200
    print(
        f"targets: 1 run + {len(d) - 1} busy, p99 < 500 ms: {'met' if ok_d else 'NOT met'}; "
        f"identical p99 < 200 ms: {'met' if ok_i else 'NOT met'}; "
        f"unrelated run success: {'met' if report.bystander_state == 'success' else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--distinct", type=int, default=50)
    parser.add_argument("--identical", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10, help="identical posts in flight at once")
    parser.add_argument("--timeout", type=float, default=600.0, help="per request, seconds")
    args = parser.parse_args()
    # Stopped with SIGTERM (or SIGINT from a background job, where it is ignored): still stop the stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="kubernaut-storm-") as tmp:
        stack = LiveStack(Path(tmp)).start()
        try:
            report = run_storm(
                stack,
                distinct=args.distinct,
                identical=args.identical,
                concurrency=args.concurrency,
                timeout=args.timeout,
            )
        finally:
            stack.stop()
    show(report)


if __name__ == "__main__":
    main()
