"""Prometheus-backed checks: an instant query against a threshold, a range check over a
window, and a bounded metrics snapshot for the run record."""

from __future__ import annotations

import datetime as dt
import re
import statistics
import time
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kubernaut.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ActionParams,
    ActionResult,
    VerificationFailed,
    wait_error,
)
from kubernaut.actions.monitoring_common import (
    MAX_QUERY_LENGTH,
    Condition,
    bounded_wait,
    deadline,
    prometheus,
    wait_within,
)
from kubernaut.actions.registry import register
from kubernaut.durations import Duration
from kubernaut.errors import KubernautError
from kubernaut.services.prometheus import Series, format_labels
from kubernaut.waits.spec import WaitOutcome

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_POINTS = 11_000  # Prometheus refuses range queries with more points per series


def _query(value: str) -> str:
    if not value.strip():
        raise ValueError("query must not be empty")
    if len(value) > MAX_QUERY_LENGTH:
        raise ValueError(f"query longer than {MAX_QUERY_LENGTH} characters")
    return value


class PrometheusQueryParams(ActionParams):
    query: str = Field(description="PromQL instant query")
    condition: Condition | None = Field(default=None, description="Every sample must satisfy it")
    expect: Literal["empty", "non_empty"] | None = Field(
        default=None, description="Require no samples / at least one (a condition implies non_empty)"
    )
    wait_timeout: Duration | None = Field(
        default=None, description="Poll until the check holds, up to this long (default: check once)"
    )
    max_samples: int = Field(default=50, ge=1, le=1000, description="Samples kept in the step output")

    _q = field_validator("query")(_query)

    _wait = field_validator("wait_timeout")(bounded_wait)

    @model_validator(mode="after")
    def _consistent(self) -> PrometheusQueryParams:
        if self.expect == "empty" and self.condition is not None:
            raise ValueError("expect: empty cannot be combined with a condition")
        return self


@register
class PrometheusQuery(Action[PrometheusQueryParams]):
    kind = "monitoring"
    name = "prometheus_query"
    Params = PrometheusQueryParams
    summary = "Run a PromQL instant query and check every sample against a threshold (optionally polling)."

    def run(self, ctx: ActionContext, params: PrometheusQueryParams) -> ActionResult:
        # The check itself is kubernaut.waits.prometheus: once, or polled up to wait_timeout.
        args = {
            "conn_id": ctx.config.prometheus_conn_id,
            "query": params.query,
            "condition": params.condition.model_dump() if params.condition else None,
            "expect": params.expect,
            "max_samples": params.max_samples,
        }
        what = f"Prometheus check on {params.query!r}"
        within = wait_within(ctx, params.wait_timeout)
        return ActionResult(wait=ctx.wait("prometheus", args, what=what, within=within, wording="holds"))

    def after_wait(
        self, ctx: ActionContext, params: PrometheusQueryParams, result: ActionResult, outcome: WaitOutcome
    ) -> ActionResult:
        if not outcome.done:
            raise wait_error(outcome)
        return ActionResult(output=dict(outcome.detail))


Aggregate = Literal["all", "any", "avg", "max", "min"]


class PrometheusRangeParams(ActionParams):
    query: str = Field(description="PromQL expression evaluated over the window")
    condition: Condition = Field(description="Threshold applied as `check` says")
    check: Aggregate = Field(
        default="all", description="all/any point, or the avg/max/min of each series, must satisfy it"
    )
    window: Duration = Field(default=timedelta(minutes=10), description="How far back from now")
    step: Duration = Field(default=timedelta(seconds=30), description="Resolution of the range query")
    allow_empty: bool = Field(default=False, description="Pass when the query returns no series")
    max_series: int = Field(default=50, ge=1, le=500, description="Series kept in the step output")

    _q = field_validator("query")(_query)

    @model_validator(mode="after")
    def _sane_window(self) -> PrometheusRangeParams:
        if self.window.total_seconds() <= 0 or self.step.total_seconds() <= 0:
            raise ValueError("window and step must be positive")
        if self.window > timedelta(days=31):
            raise ValueError("window must be at most 31d")
        if self.window / self.step > MAX_POINTS:
            raise ValueError(f"window/step gives more than {MAX_POINTS} points; use a larger step")
        return self


def aggregate(series: Series, check: Aggregate, condition: Condition) -> tuple[bool, float | None]:
    """(passes, the value compared): ``all``/``any`` report the worst/best point."""
    values = series.values
    if not values:
        return False, None
    if check == "all":
        failing = [v for v in values if not condition.holds(v)]
        return not failing, failing[0] if failing else values[-1]
    if check == "any":
        passing = [v for v in values if condition.holds(v)]
        return bool(passing), passing[0] if passing else values[-1]
    value = statistics.fmean(values) if check == "avg" else max(values) if check == "max" else min(values)
    return condition.holds(value), value


@register
class PrometheusRangeCheck(Action[PrometheusRangeParams]):
    kind = "monitoring"
    name = "prometheus_range_check"
    Params = PrometheusRangeParams
    summary = (
        "Range-query a window and check all/any points, or each series' avg/max/min, against a threshold."
    )

    def run(self, ctx: ActionContext, params: PrometheusRangeParams) -> ActionResult:
        end = time.time()
        client = prometheus(ctx)
        try:
            series = client.query_range(
                params.query,
                start=end - params.window.total_seconds(),
                end=end,
                step=params.step.total_seconds(),
                deadline=deadline(ctx),
            )
        finally:
            client.close()
        rows: list[dict[str, Any]] = []
        for s in series:
            ok, value = aggregate(s, params.check, params.condition)
            rows.append({"labels": s.labels, "points": len(s.points), "value": value, "ok": ok})
        what = f"range check {params.check} {params.condition} on {params.query!r} over {params.window}"
        if not series and not params.allow_empty:
            raise VerificationFailed(f"{what}: the query returned no series (is a metric or label misspelt?)")
        failing = [r for r in rows if not r["ok"]]
        if failing:
            shown = ", ".join(f"{format_labels(r['labels'])} = {r['value']}" for r in failing[:5])
            raise VerificationFailed(f"{what}: {len(failing)} of {len(rows)} series fail: {shown}")
        return ActionResult(
            output={
                "query": params.query,
                "series_count": len(rows),
                "series": rows[: params.max_series],
                "truncated": len(rows) > params.max_series,
            }
        )


class CollectMetricsParams(ActionParams):
    queries: dict[str, str] = Field(
        min_length=1, max_length=20, description="Name -> PromQL instant query to snapshot"
    )
    max_series: int = Field(default=20, ge=1, le=100, description="Samples kept per query")
    strict: bool = Field(default=False, description="Fail the step when a query fails (default: record it)")

    @field_validator("queries")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if not _NAME.match(name):
                raise ValueError(f"metric name {name!r}: use letters, digits, '_', '-', '.' (max 64)")
            _query(query)
        return value


@register
class CollectMetrics(Action[CollectMetricsParams]):
    kind = "monitoring"
    name = "collect_metrics"
    Params = CollectMetricsParams
    summary = "Snapshot chosen PromQL queries into the step output (bounded), e.g. before and after a fix."

    def run(self, ctx: ActionContext, params: CollectMetricsParams) -> ActionResult:
        metrics: dict[str, Any] = {}
        client = prometheus(ctx)
        try:
            for name, query in params.queries.items():
                try:
                    samples = client.query(query, deadline=deadline(ctx))
                except KubernautError as exc:  # a refused or failed query (a ServiceError)
                    if params.strict:
                        raise
                    ctx.logger.warning("collect_metrics: %s: %s", name, exc)
                    metrics[name] = {"query": query, "error": str(exc)}
                    continue
                metrics[name] = {
                    "query": query,
                    "total": len(samples),
                    "samples": [s.to_dict() for s in samples[: params.max_series]],
                    "truncated": len(samples) > params.max_series,
                }
        finally:
            client.close()
        if all("error" in m for m in metrics.values()):
            raise ActionError(
                f"collect_metrics: every query failed; first: {next(iter(metrics.values()))['error']}"
            )
        collected = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return ActionResult(output={"collected_at": collected, "metrics": metrics})
