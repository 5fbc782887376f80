"""prometheus_query, prometheus_range_check and collect_metrics against a real Prometheus
scraping a real Pushgateway."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kubernaut.actions import ActionContext, ActionError, VerificationFailed, registry
from kubernaut.testing import ParamsInvalid, run_action
from kubernaut.testing.services import MonitoringStack, push_metrics, wait_for_query

Ctx = Callable[..., ActionContext]
query_action = registry.get("monitoring", "prometheus_query")
range_action = registry.get("monitoring", "prometheus_range_check")
collect_action = registry.get("monitoring", "collect_metrics")


def push(stack: MonitoringStack, job: str, values: dict[str, float]) -> None:
    """kt_error_ratio{job, instance} per instance, and wait until Prometheus has scraped it."""
    for instance, value in values.items():
        push_metrics(stack.pushgateway.url, job, {"kt_error_ratio": value}, grouping={"instance": instance})
    for instance, value in values.items():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = wait_for_query(
                stack.prometheus.url, f'kt_error_ratio{{job="{job}",instance="{instance}"}}'
            )
            if float(found[0]["value"][1]) == value:
                break
            time.sleep(0.2)


def q(job: str) -> str:
    return f'kt_error_ratio{{job="{job}"}}'


def test_query_passes_when_every_sample_meets_the_threshold(
    services: MonitoringStack, ctx: Ctx, job: str
) -> None:
    push(services, job, {"a": 0.1, "b": 0.2})
    result = run_action(query_action, {"query": q(job), "condition": {"op": "<", "value": 0.5}}, ctx=ctx())
    assert result.output["sample_count"] == 2 and not result.output["truncated"]
    assert sorted(s["value"] for s in result.output["samples"]) == [0.1, 0.2]
    assert {s["labels"]["instance"] for s in result.output["samples"]} == {"a", "b"}


def test_query_fails_naming_the_offending_series(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    push(services, job, {"a": 0.1, "b": 0.9})
    with pytest.raises(
        VerificationFailed, match=r'1 of 2 samples not < 0.5: kt_error_ratio\{.*instance="b".*= 0.9'
    ):
        run_action(query_action, {"query": q(job), "condition": {"op": "<", "value": 0.5}}, ctx=ctx())


def test_empty_result_never_passes_a_threshold(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    params = {"query": q(job), "condition": {"op": "<", "value": 0.5}}
    with pytest.raises(VerificationFailed, match="returned no samples"):
        run_action(query_action, params, ctx=ctx())
    assert (
        run_action(query_action, {"query": q(job), "expect": "empty"}, ctx=ctx()).output["sample_count"] == 0
    )
    with pytest.raises(VerificationFailed, match="returned no samples"):
        run_action(query_action, {"query": q(job), "expect": "non_empty"}, ctx=ctx())


def test_expect_empty_fails_when_samples_exist(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    push(services, job, {"a": 1.0})
    with pytest.raises(VerificationFailed, match="expected no samples, got 1"):
        run_action(query_action, {"query": q(job), "expect": "empty"}, ctx=ctx())


def test_query_polls_until_the_condition_holds(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    push(services, job, {"a": 0.9})
    timer = threading.Timer(
        1.0,
        push_metrics,
        (services.pushgateway.url, job, {"kt_error_ratio": 0.1}),
        {"grouping": {"instance": "a"}},
    )
    timer.start()
    started = time.monotonic()
    params = {"query": q(job), "condition": {"op": "<", "value": 0.5}, "wait_timeout": "20s"}
    result = run_action(query_action, params, ctx=ctx(poll_interval=0.2))
    timer.join()
    assert result.output["samples"][0]["value"] == 0.1 and time.monotonic() - started >= 1.0


def test_query_wait_times_out_with_the_last_values(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    push(services, job, {"a": 0.9})
    started = time.monotonic()
    params = {"query": q(job), "condition": {"op": "<", "value": 0.5}, "wait_timeout": "1s"}
    with pytest.raises(VerificationFailed, match=r"does not hold within 1s: 1 of 1 samples not < 0.5"):
        run_action(query_action, params, ctx=ctx(poll_interval=0.2))
    assert 1.0 <= time.monotonic() - started < 5


def test_step_timeout_bounds_the_wait(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    started = time.monotonic()
    params = {"query": q(job), "expect": "non_empty", "wait_timeout": "1h"}
    with pytest.raises(VerificationFailed):
        run_action(query_action, params, ctx=ctx(timeout=1.0, poll_interval=0.2))
    assert time.monotonic() - started < 5


def test_output_is_bounded(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    push(services, job, {str(i): 0.0 for i in range(5)})
    result = run_action(query_action, {"query": q(job), "max_samples": 2}, ctx=ctx())
    assert (
        result.output["sample_count"] == 5
        and len(result.output["samples"]) == 2
        and result.output["truncated"]
    )


def test_bad_promql_is_reported_as_a_rejected_query(services: MonitoringStack, ctx: Ctx) -> None:
    with pytest.raises(ActionError, match=r"rejected the query 'sum\(\(': bad_data"):
        run_action(query_action, {"query": "sum(("}, ctx=ctx())


def test_missing_connection_is_named(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_PROMETHEUS_DEFAULT")
    with pytest.raises(ActionError, match="connection 'prometheus_default' is not available"):
        run_action(query_action, {"query": "up"}, ctx=ctx())


def test_unreachable_prometheus_names_the_connection(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PROMETHEUS_DEFAULT", "http://127.0.0.1:9")
    with pytest.raises(
        ActionError, match=r"connection 'prometheus_default': GET /api/v1/query: request failed"
    ):
        run_action(query_action, {"query": "up"}, ctx=ctx())


def test_query_params_are_checked() -> None:
    with pytest.raises(ParamsInvalid, match="cannot be combined"):
        run_action(query_action, {"query": "up", "expect": "empty", "condition": {"op": "<", "value": 1}})
    with pytest.raises(ParamsInvalid, match="query must not be empty"):
        run_action(query_action, {"query": " "})
    with pytest.raises(ParamsInvalid, match=r"condition.op"):
        run_action(query_action, {"query": "up", "condition": {"op": "~", "value": 1}})


@pytest.mark.parametrize(
    ("check", "condition", "passes"),
    [
        ("all", {"op": "<", "value": 1.0}, True),
        ("all", {"op": "<", "value": 0.5}, False),
        ("any", {"op": ">", "value": 0.5}, True),
        ("max", {"op": "<=", "value": 0.8}, True),
        ("avg", {"op": ">", "value": 0.9}, False),
        ("min", {"op": ">=", "value": 0.8}, True),
    ],
)
def test_range_check(
    services: MonitoringStack, ctx: Ctx, job: str, check: str, condition: dict[str, Any], passes: bool
) -> None:
    push(services, job, {"a": 0.8})
    params = {"query": q(job), "check": check, "condition": condition, "window": "30s", "step": "1s"}
    if passes:
        result = run_action(range_action, params, ctx=ctx())
        assert result.output["series_count"] == 1 and result.output["series"][0]["value"] == 0.8
    else:
        with pytest.raises(
            VerificationFailed, match=rf"1 of 1 series fail: kt_error_ratio\{{.*job=\"{job}\".*= 0.8"
        ):
            run_action(range_action, params, ctx=ctx())


def test_range_check_without_series(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    params: dict[str, Any] = {"query": q(job), "condition": {"op": "<", "value": 1}, "window": "1m"}
    with pytest.raises(VerificationFailed, match="returned no series"):
        run_action(range_action, params, ctx=ctx())
    assert run_action(range_action, {**params, "allow_empty": True}, ctx=ctx()).output["series_count"] == 0


def test_range_check_refuses_too_many_points() -> None:
    with pytest.raises(ParamsInvalid, match="more than 11000 points"):
        run_action(
            range_action, {"query": "up", "condition": {"op": "<", "value": 1}, "window": "1d", "step": "1s"}
        )


def test_collect_metrics_snapshot_records_failures(services: MonitoringStack, ctx: Ctx, job: str) -> None:
    push(services, job, {"a": 0.1, "b": 0.2, "c": 0.3})
    params = {"queries": {"errors": q(job), "broken": "rate(("}, "max_series": 2}
    result = run_action(collect_action, params, ctx=ctx())
    errors = result.output["metrics"]["errors"]
    assert errors["total"] == 3 and len(errors["samples"]) == 2 and errors["truncated"]
    assert "rejected the query" in result.output["metrics"]["broken"]["error"]
    with pytest.raises(ActionError, match="rejected the query"):
        run_action(collect_action, {**params, "strict": True}, ctx=ctx())
    with pytest.raises(ActionError, match="every query failed"):
        run_action(collect_action, {"queries": {"broken": "rate(("}}, ctx=ctx())


def test_collect_metrics_names_are_checked() -> None:
    with pytest.raises(ParamsInvalid, match="metric name"):
        run_action(collect_action, {"queries": {"a b": "up"}})
