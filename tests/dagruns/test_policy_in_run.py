"""The safety policy in real runs (dag.test, the sandbox cluster, the history DB).

A policy violation fails the step before changing anything, and the violation (rule, object,
detail) is recorded in the step's result. The configuration fails closed: an Airflow Variable
``kubernaut_config`` that exists but cannot be read or parsed fails the step (no retry) with a
message naming the Variable and the problem, and nothing changes; only no configuration at all
means the defaults."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubernaut.config import CONFIG_VARIABLE
from kubernaut.history import History
from kubernaut.sandbox import SandboxCluster
from tests.conftest import REPO

# One change (demo/api has 2 replicas), so the configuration in force alone decides it.
TEMPLATE = """\
name: config-check
description: one change, decided by the configuration in force
alert_types: [ConfigCheck]
configuration: {retries: 1, retry_delay: 1s}
steps:
  - name: scale-out
    action: {type: kubernetes, action: scale_deployment,
             parameters: {namespace: demo, deployment: api, replicas: 3}}
"""
CONF = {"alert": {"labels": {"alertname": "ConfigCheck", "namespace": "demo", "deployment": "api"}}}


@pytest.fixture
def config_check_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "config-check.yaml").write_text(TEMPLATE)
    monkeypatch.setenv("KUBERNAUT_TEMPLATES_DIR", str(templates))
    monkeypatch.delenv("KUBERNAUT_CONFIG", raising=False)
    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["kubernaut_config_check"]


@pytest.fixture
def config_variable(airflow_db: str) -> Iterator[Callable[[str], None]]:
    """Sets the Airflow Variable kubernaut_config in the metadata DB (as the UI or CLI would)."""
    from airflow.models.variable import Variable

    yield lambda value: Variable.set(CONFIG_VARIABLE, value)
    Variable.delete(CONFIG_VARIABLE)


def api_replicas(cluster: SandboxCluster) -> int:
    return int(cluster.get("deployments", "demo", "api")["spec"]["replicas"])


def settled(cluster: SandboxCluster) -> None:
    cluster.wait_until(lambda: len(cluster.list("pods", "demo", labels={"app": "api"})) == 2)


def refused_by_max_replicas(cluster: SandboxCluster, dr: Any) -> None:
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states["scale-out"] == "failed" and str(dr.state) == "failed"
    assert api_replicas(cluster) == 2
    run = History().run(dr.run_id)
    assert run is not None
    step = {s["step"]: s for s in run["steps"]}["scale-out"]
    assert step["result"]["policy_violation"]["rule"] == "max_replicas"
    assert "max_replicas" in step["error"]
    assert run["undo"] == []  # refused before anything was journaled or changed


def test_replica_bound_refuses_the_scale_and_is_recorded(
    config_check_dag: Any, cluster: SandboxCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled(cluster)
    config = tmp_path / "kubernaut.yaml"
    config.write_text("policy: {max_replicas: 2}\n")
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    refused_by_max_replicas(cluster, config_check_dag.test(run_conf=CONF))


def test_config_variable_is_applied_and_absent_means_defaults(
    config_check_dag: Any, config_variable: Callable[[str], None], cluster: SandboxCluster
) -> None:
    from airflow.models.variable import Variable

    settled(cluster)
    config_variable("policy: {max_replicas: 2}")  # read by the task through the Execution API
    refused_by_max_replicas(cluster, config_check_dag.test(run_conf=CONF))
    Variable.delete(CONFIG_VARIABLE)  # no configuration at all: the defaults (max_replicas 50)
    assert str(config_check_dag.test(run_conf=CONF).state) == "success"
    assert api_replicas(cluster) == 3


def assert_step_failed_on_config(dr: Any, output: str, problem: str) -> None:
    """The step failed for good (a retry cannot fix the configuration), with a message naming
    the Variable and the problem, in its own log (the first task failure of the run)."""
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert str(tis["scale-out"].state) == "failed" and str(dr.state) == "failed"
    assert tis["scale-out"].try_number == 1
    failures = output.split("Task failed with exception")
    assert len(failures) > 1, "no task failed"
    first = failures[1]
    assert "kubernaut/operators/step.py" in first  # the step, not the rollback task after it
    message = "AirflowFailException: kubernaut configuration: Airflow Variable kubernaut_config"
    assert message in first and problem in first, first
    assert "refusing to run with the default policy" in first


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "policy: {require_label: kubernaut.io/managed=true",
            "(from ExecutionAPISecretsBackend): not valid YAML/JSON: expected ',' or '}'",
        ),
        (
            '{"policy": {"require_labels": "kubernaut.io/managed=true"}}',
            "(from ExecutionAPISecretsBackend): invalid kubernaut configuration: policy.require_labels: "
            "Extra inputs are not permitted",
        ),
    ],
)
def test_unusable_config_variable_fails_the_step_and_changes_nothing(
    value: str,
    problem: str,
    config_check_dag: Any,
    config_variable: Callable[[str], None],
    cluster: SandboxCluster,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settled(cluster)
    config_variable(value)
    dr = config_check_dag.test(run_conf=CONF)
    assert api_replicas(cluster) == 2
    assert_step_failed_on_config(dr, capfd.readouterr().out, problem)


def test_undecryptable_config_variable_fails_the_step_and_changes_nothing(
    config_check_dag: Any,
    cluster: SandboxCluster,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A Variable stored under another Fernet key (a botched key rotation): Airflow itself
    answers "not found" for it, which used to mean the defaults, without require_label."""
    from airflow.models.crypto import get_fernet
    from airflow.models.variable import Variable
    from cryptography.fernet import Fernet

    settled(cluster)
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    get_fernet.cache_clear()
    try:
        Variable.set(CONFIG_VARIABLE, "policy: {require_label: kubernaut.io/managed=true}")
        monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
        get_fernet.cache_clear()
        dr = config_check_dag.test(run_conf=CONF)
    finally:
        Variable.delete(CONFIG_VARIABLE)
        monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY")
        get_fernet.cache_clear()
    assert api_replicas(cluster) == 2
    assert_step_failed_on_config(
        dr, capfd.readouterr().out, "exists in the metadata DB but its value cannot be read"
    )
