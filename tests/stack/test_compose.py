"""docker-compose.yaml and ``kubernaut stack`` run the same configuration: the compose file's
common Airflow environment is ``kubernaut.stack.settings.SHARED`` plus the per-installation
keys, which the stack sets too; the compose file validates with Debian's docker-compose; the
Alertmanager and Prometheus configurations it mounts are valid and post to the intake."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubernaut.stack.settings import COMPOSE_ONLY, PER_INSTALLATION, SHARED
from kubernaut.stack.stack import Stack

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def common_environment() -> dict[str, str]:
    return {k: str(v) for k, v in compose()["x-airflow-common"]["environment"].items()}


def expected_block() -> str:
    return "\n".join(f'    {k}: "{v}"' for k, v in SHARED.items())


def test_compose_sets_the_shared_settings_and_only_per_installation_keys_besides() -> None:
    env = common_environment()
    shared = {k: v for k, v in env.items() if k not in PER_INSTALLATION | COMPOSE_ONLY}
    assert shared == SHARED, f"x-airflow-common environment must carry SHARED:\n{expected_block()}"
    assert set(env) - set(SHARED) == PER_INSTALLATION | COMPOSE_ONLY
    assert "PYTHONPATH" not in env and "_PIP_ADDITIONAL_REQUIREMENTS" not in env  # installed, not mounted
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        service_env = {k: str(v) for k, v in services[name]["environment"].items()}
        assert {k: service_env[k] for k in SHARED} == SHARED, name
    assert services["airflow-worker"]["command"] == "celery worker"
    assert {"postgres", "redis", "prometheus", "alertmanager"} <= set(services)


def test_airflow_reaches_the_prometheus_and_alertmanager_compose_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Monitoring steps, the still-firing check and the assessment ask them through these."""
    from kubernaut.services.connection import endpoint_from_connection

    env = common_environment()
    services = compose()["services"]
    for conn_id, service in (("prometheus_default", "prometheus"), ("alertmanager_default", "alertmanager")):
        name = f"AIRFLOW_CONN_{conn_id.upper()}"
        monkeypatch.setenv(name, env[name])
        endpoint = endpoint_from_connection(conn_id)
        port = services[service]["ports"][0].split(":")[-1]
        assert endpoint.base_url == f"http://{service}:{port}", endpoint


def test_the_stack_runs_with_the_shared_settings_and_sets_every_per_installation_key(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    stack = Stack(tmp_path / "stack", kubeconfig=kubeconfig, name="kn_stack_settings_test")
    stack.prepare()
    env = stack.environment()
    overridden = {k: env[k] for k in SHARED if env[k] != SHARED[k]}
    # Worker concurrency is the `--concurrency` option of the stack (a machine's size).
    assert set(overridden) <= {"AIRFLOW__CELERY__WORKER_CONCURRENCY"}, overridden
    assert PER_INSTALLATION <= set(env), PER_INSTALLATION - set(env)
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://127.0.0.1:6379/")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    compose_env = common_environment()
    assert compose_env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")


def test_alertmanager_posts_every_alert_to_the_intake_with_the_token_airflow_init_writes() -> None:
    services = compose()["services"]
    config = yaml.safe_load((REPO / "deploy/alertmanager/alertmanager.yml").read_text())
    assert config["route"]["receiver"] == "kubernaut" and "routes" not in config["route"]
    (receiver,) = config["receivers"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://airflow-apiserver:8080/kubernaut/alerts"
    assert hook["send_resolved"] is True
    token_file = hook["http_config"]["authorization"]["credentials_file"]
    env = common_environment()
    assert token_file == env["KUBERNAUT_WEBHOOK_TOKEN_FILE"]  # the file the intake reads
    secrets_dir = str(Path(token_file).parent)
    assert f"kubernaut-secrets:{secrets_dir}:ro" in services["alertmanager"]["volumes"]
    assert f"kubernaut-secrets:{secrets_dir}" in compose()["x-airflow-common"]["volumes"]
    assert token_file in services["airflow-init"]["command"][1]
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


@pytest.mark.skipif(not shutil.which("amtool") or not shutil.which("promtool"), reason="no amtool/promtool")
def test_alertmanager_and_prometheus_configurations_are_valid() -> None:
    for argv in (
        ["amtool", "check-config", "deploy/alertmanager/alertmanager.yml"],
        ["promtool", "check", "config", "deploy/prometheus/prometheus.yml"],
    ):
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_installs_the_package_with_the_constraints_on_this_airflow() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", dockerfile, re.M)
    assert base is not None and base.group(1) == version("apache-airflow")
    assert re.search(
        r"pip install .*-c /opt/kubernaut/constraints\.txt \"/opt/kubernaut\[celery\]\"", dockerfile
    )
    assert "PYTHONPATH" not in dockerfile


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="apt-get install -y docker-compose")
def test_docker_compose_validates_the_file(tmp_path: Path) -> None:
    ok = subprocess.run(
        ["docker-compose", "--env-file", ".env.example", "-f", "docker-compose.yaml", "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run(
        ["docker-compose", "--env-file", str(empty), "-f", "docker-compose.yaml", "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "in .env" in missing.stderr, missing.stderr
