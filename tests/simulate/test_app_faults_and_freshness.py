"""The scenario faults of the application's own rules (bad-config, liveness: their fields are
checked when the file is read) and the simulator's wait for a fresh Prometheus scrape (a
scenario's series are read only once Prometheus scraped them, not the previous scenario's)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kubernaut.simulate.scenario import PrometheusSpec, load_scenario
from kubernaut.simulate.services import SharedPrometheus
from kubernaut.templates.errors import TemplateLoadError

ALERT = "alert: {version: '4', status: firing, alerts: []}\n"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            "{type: bad-config, namespace: demo, deployment: web, key: LOG_LEVEL, value: x}",
            "the bad-config fault needs `deployment` and one of `configmap`/`secret`",
        ),
        (
            "{type: bad-config, namespace: demo, deployment: web, configmap: c}",
            "the bad-config fault needs `key` and `value`",
        ),
        ("{type: liveness, namespace: demo, deployment: web}", "the liveness fault needs one of"),
        (
            "{type: liveness, namespace: demo, deployment: web, startup: 60s, key: a}",
            "the liveness fault takes the workload and startup only",
        ),
        (
            "{type: crashloop, namespace: demo, deployment: web, startup: 60s}",
            "`startup` apply to the bad-config/liveness faults only, not 'crashloop'",
        ),
    ],
)
def test_app_fault_fields_are_checked_when_read(tmp_path: Path, fault: str, message: str) -> None:
    path = tmp_path / "x" / "bad.yaml"
    path.parent.mkdir()
    path.write_text(f"seed: demo\nfaults:\n  - {fault}\n{ALERT}")
    with pytest.raises(TemplateLoadError) as info:
        load_scenario(path, "x")
    assert f"{path}:3:" in str(info.value) and message in str(info.value)


def test_app_faults_load_with_their_fields(tmp_path: Path) -> None:
    path = tmp_path / "x" / "ok.yaml"
    path.parent.mkdir()
    path.write_text(
        "seed: demo\nfaults:\n"
        "  - {type: bad-config, namespace: demo, deployment: web, secret: creds, key: TOKEN, value: ''}\n"
        "  - {type: liveness, namespace: demo, deployment: api, startup: 1m}\n" + ALERT
    )
    faults = load_scenario(path, "x").scenario.faults
    assert faults[0].describe() == "bad-config on deployment demo/web secret=creds key=TOKEN"
    assert faults[1].startup == 60 and faults[1].describe() == "liveness on deployment demo/api startup=60s"


def _value(shared: SharedPrometheus) -> float:
    service = shared._service
    assert service is not None
    result = service._query('sum(deployment:http_requests:rate5m{deployment="web"})')
    return float(result[0]["value"][1])


def test_a_scenario_reads_its_own_series_not_the_previous_scenarios(tmp_path: Path) -> None:
    """Two scenarios in one run serve the same series with different values: once
    wait_scraped returns, Prometheus answers with the second scenario's value (it used to
    answer at once, with the first one's: `timestamp(up == 1)` is the evaluation time)."""
    pytest.importorskip("httpx")
    from kubernaut.testing.services import ServiceStartError, find_binary

    try:
        find_binary("prometheus")
    except ServiceStartError:
        pytest.skip("prometheus binary not installed")

    def spec(value: float) -> PrometheusSpec:
        return PrometheusSpec.model_validate(
            {
                "series": [
                    {
                        "metric": "deployment:http_requests:rate5m",
                        "labels": {"deployment": "web"},
                        "value": value,
                    }
                ]
            }
        )

    shared = SharedPrometheus(tmp_path)
    try:
        with shared.use(spec(200)) as service:
            service.wait_scraped()
            assert _value(shared) == 200
        with shared.use(spec(450)) as service:
            started = time.monotonic()
            service.wait_scraped()
            assert _value(shared) == 450
            assert time.monotonic() - started < 10
    finally:
        shared.close()
