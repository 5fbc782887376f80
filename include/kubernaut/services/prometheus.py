"""Prometheus HTTP API v1: instant and range queries, results as plain samples/series."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from kubernaut.services.connection import endpoint_from_connection
from kubernaut.services.http import AsyncServiceClient, ServiceClient, ServiceError, excerpt


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "value": _jsonable(self.value), "timestamp": self.timestamp}


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (timestamp, value)

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.points]


def _jsonable(value: float) -> float | str:
    # NaN/Inf are not JSON; keep them readable in step outputs.
    return value if math.isfinite(value) else str(value)


def format_labels(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


class PrometheusClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    @classmethod
    def from_connection(cls, conn_id: str, *, timeout: float = 10.0) -> PrometheusClient:
        return cls(ServiceClient(endpoint_from_connection(conn_id), timeout=timeout))

    def close(self) -> None:
        self.client.close()

    def query(self, expr: str, *, at: float | None = None, deadline: float | None = None) -> list[Sample]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return instant_samples(self._call("/api/v1/query", params, deadline), self.client.endpoint.name)

    def query_range(
        self, expr: str, *, start: float, end: float, step: float, deadline: float | None = None
    ) -> list[Series]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        data = self._call("/api/v1/query_range", params, deadline)
        if data.get("resultType") != "matrix":
            raise ServiceError(
                f"{self.client.endpoint.name}: unexpected range result type {data.get('resultType')!r}"
            )
        return [
            Series(
                labels=dict(item["metric"]),
                points=[(float(ts), float(v)) for ts, v in item["values"]],
            )
            for item in data["result"]
        ]

    def _call(self, path: str, params: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        name = self.client.endpoint.name
        try:
            body = self.client.get_json(path, params=params, deadline=deadline)
        except ServiceError as exc:
            rejected = rejected_query(exc, name, params)
            if rejected is None:
                raise
            raise rejected from exc
        return response_data(body, path, name)


async def aquery(client: AsyncServiceClient, expr: str, *, deadline: float | None = None) -> list[Sample]:
    """An instant query from async code (a wait in the triggerer), read as ``query`` reads it."""
    name, params = client.endpoint.name, {"query": expr}
    try:
        body = await client.get_json("/api/v1/query", params=params, deadline=deadline)
    except ServiceError as exc:
        rejected = rejected_query(exc, name, params)
        if rejected is None:
            raise
        raise rejected from exc
    return instant_samples(response_data(body, "/api/v1/query", name), name)


def rejected_query(exc: ServiceError, name: str, params: dict[str, Any]) -> ServiceError | None:
    """400/422 carry {"errorType", "error"}: a bad query, not an outage (None for the rest)."""
    if exc.status in (400, 422):
        return ServiceError(
            f"Prometheus ({name}) rejected the query "
            f"{excerpt(str(params['query']), 200)!r}: {_api_error(exc.body)}",
            status=exc.status,
        )
    return None


def response_data(body: Any, path: str, name: str) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("status") != "success":
        raise ServiceError(f"{name}: {path} failed: {excerpt(json.dumps(body))}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise ServiceError(f"{name}: {path} returned no data")
    return data


def instant_samples(data: dict[str, Any], name: str) -> list[Sample]:
    kind, result = data.get("resultType"), data.get("result") or []
    if kind == "vector":
        return [_sample(item["metric"], item["value"]) for item in result]
    if kind in ("scalar", "string"):
        return [_sample({}, result)]
    raise ServiceError(f"{name}: unexpected instant result type {kind!r}")


def _sample(metric: dict[str, str], value: list[Any]) -> Sample:
    ts, raw = value
    return Sample(labels=dict(metric), value=float(raw), timestamp=float(ts))


def _api_error(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return excerpt(body)
    return f"{data.get('errorType', 'error')}: {data.get('error', '')}"
