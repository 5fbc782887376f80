"""`kubernaut demo`: Airflow standalone (SQLite) with our DAGs, the sandbox cluster with
an injected fault, one alert sent through the Airflow REST API, and a remediation run
that ends green with the fault fixed."""

from __future__ import annotations

import argparse
import datetime
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from kubernaut.local_stack import AirflowStandalone, SandboxProcess, free_port, kubernetes_connection

REPO = Path(__file__).resolve().parents[2]
DEMO_TEMPLATE_DAG = "kubernaut_deployment_replica_mismatch"
DEMO_ALERT: dict[str, Any] = {
    "status": "firing",
    "labels": {
        "alertname": "KubeDeploymentReplicasMismatch",
        "namespace": "demo",
        "deployment": "web",
        "severity": "warning",
    },
    "annotations": {"summary": "Deployment demo/web has not matched the expected number of replicas."},
    "fingerprint": "d3m0f1n6e5p21n7",
}


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def deployment_health(sandbox: SandboxProcess, namespace: str, name: str) -> tuple[int, int, int]:
    """(desired, ready pods, crash-looping pods) read from the sandbox over its k8s API."""
    dep = sandbox.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    labels = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
    pods = sandbox.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector={labels}")["items"]
    ready = crashing = 0
    for pod in pods:
        conditions = pod.get("status", {}).get("conditions", [])
        ready += any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        statuses = pod.get("status", {}).get("containerStatuses", [])
        crashing += any(
            (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff" for s in statuses
        )
    return int(dep["spec"].get("replicas", 1)), ready, crashing


def wait(predicate: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def send_alert(webhook_url: str, token: str, alert: dict[str, Any]) -> dict[str, Any]:
    """Deliver the alert as Alertmanager does: a version-4 webhook to the intake plugin."""
    payload = {
        "version": "4",
        "receiver": "kubernaut",
        "status": "firing",
        "groupKey": f'{{}}:{{alertname="{alert["labels"]["alertname"]}"}}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": alert["labels"]["alertname"]},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.demo.invalid",
        "alerts": [{**alert, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""}],
    }
    response = httpx.post(webhook_url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    response.raise_for_status()
    decision: dict[str, Any] = response.json()["decisions"][0]
    return decision


HISTORY_URL_ENV = "KUBERNAUT_DEMO_HISTORY_URL"
DEFAULT_HISTORY_SERVER = "postgresql://postgres@127.0.0.1:5432"
HISTORY_DB = "kubernaut_demo_history"


def prepare_history() -> str:
    """The undo journal needs PostgreSQL: (re)create the demo's history database."""
    import os

    import psycopg2

    url = os.environ.get(HISTORY_URL_ENV)
    if url:
        return url
    try:
        conn = psycopg2.connect(f"{DEFAULT_HISTORY_SERVER}/postgres", connect_timeout=5)
    except psycopg2.Error as exc:
        raise RuntimeError(
            f"the demo keeps its remediation history in PostgreSQL at {DEFAULT_HISTORY_SERVER} "
            f"(trust auth, user postgres) and could not connect: {exc}; "
            f"or set {HISTORY_URL_ENV}=postgresql://USER:PASSWORD@HOST:PORT/DB"
        ) from exc
    conn.autocommit = True
    # A fresh history per demo: the sandbox cluster is new each time, and an old run of the
    # same alert would (rightly) put the new one in cooldown.
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{HISTORY_DB}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{HISTORY_DB}"')
    conn.close()
    return f"{DEFAULT_HISTORY_SERVER}/{HISTORY_DB}"


def migrate_history(url: str) -> None:
    import os

    from kubernaut.history import History

    os.environ["AIRFLOW_CONN_KUBERNAUT_HISTORY"] = url
    history = History()
    history.migrate()
    history.close()


def run_demo(workdir: Path, keep_running: bool) -> int:
    history_url = prepare_history()
    migrate_history(history_url)
    say(f"remediation history in {history_url}")
    sandbox = SandboxProcess(workdir / "sandbox").start()
    say(f"sandbox cluster at {sandbox.url} (kubeconfig {sandbox.kubeconfig})")
    airflow = AirflowStandalone(
        home=workdir / "airflow",
        dags_folder=REPO / "dags",
        templates_dir=REPO / "templates",
        plugins_folder=REPO / "plugins",
    )
    airflow.home.mkdir(parents=True, exist_ok=True)
    airflow.port = free_port()
    airflow.environment()  # creates the login, which the intake plugin uses for the REST API
    token = secrets.token_urlsafe(32)
    airflow.env_extra = {
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": kubernetes_connection(sandbox.kubeconfig),
        "AIRFLOW_CONN_KUBERNAUT_HISTORY": history_url,
        "KUBERNAUT_WEBHOOK_TOKEN": token,
        "KUBERNAUT_AIRFLOW_USERNAME": airflow.username,
        "KUBERNAUT_AIRFLOW_PASSWORD": airflow.password,
    }
    try:
        say("starting Airflow (api-server, scheduler, dag-processor, triggerer) on SQLite ...")
        airflow.start()
        say(f"Airflow UI: {airflow.url}  login: {airflow.username} / {airflow.password}")
        api = airflow.client()
        wait(lambda: api.get(f"/dags/{DEMO_TEMPLATE_DAG}").status_code == 200, 180, "DAGs to be parsed")
        dags = api.get("/dags", params={"tags": "kubernaut"}).json()["dags"]
        say(f"{len(dags)} remediation DAGs loaded: {', '.join(sorted(d['dag_id'] for d in dags))}")
        errors = api.get("/importErrors").json()
        if errors.get("total_entries"):
            say(f"import errors: {errors['import_errors']}")
        api.patch(f"/dags/{DEMO_TEMPLATE_DAG}", json={"is_paused": False}).raise_for_status()

        wait(lambda: deployment_health(sandbox, "demo", "web")[1] == 3, 60, "demo/web to be Ready")
        sandbox.inject_fault("crashloop", "demo", "web")
        wait(lambda: deployment_health(sandbox, "demo", "web")[2] > 0, 60, "the fault to show")
        desired, ready, crashing = deployment_health(sandbox, "demo", "web")
        say(f"fault injected: demo/web wants {desired}, {ready} Ready, {crashing} in CrashLoopBackOff")

        starts = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        alert = {**DEMO_ALERT, "startsAt": starts}
        webhook = f"{airflow.url}/kubernaut/alerts"
        decision = send_alert(webhook, token, alert)
        say(f"alert {alert['labels']['alertname']} posted to {webhook}")
        say(f"intake decision: {decision['decision']} ({decision['reason']})")
        if decision["decision"] != "triggered":
            raise RuntimeError(f"the intake did not launch a run: {decision}")
        run_id = decision["dag_run_id"]
        say(f"run {DEMO_TEMPLATE_DAG} / {run_id}")

        def finished() -> str | None:
            state = api.get(f"/dags/{DEMO_TEMPLATE_DAG}/dagRuns/{run_id}").json().get("state")
            return state if state in ("success", "failed") else None

        state = wait(finished, 300, "the remediation run", interval=2)
        tis = api.get(f"/dags/{DEMO_TEMPLATE_DAG}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
        for ti in sorted(tis, key=lambda t: t.get("start_date") or ""):
            say(f"  step {ti['task_id']:<20} {ti['state']}")
        desired, ready, crashing = deployment_health(sandbox, "demo", "web")
        fixed = state == "success" and ready == desired and crashing == 0
        say(
            f"run {state}; demo/web now {ready}/{desired} Ready, {crashing} crashing -> "
            + ("FAULT FIXED" if fixed else "NOT FIXED")
        )
        say(f"see it in the UI: {airflow.url}/dags/{DEMO_TEMPLATE_DAG}/runs/{run_id}")
        say(f"history: AIRFLOW_CONN_KUBERNAUT_HISTORY={history_url} kubernaut history show {run_id}")
        if keep_running and fixed:
            say("Airflow and the sandbox keep running; press Ctrl-C to stop.")
            while True:
                time.sleep(3600)
        return 0 if fixed else 1
    finally:
        say("stopping ...")
        airflow.stop()
        sandbox.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubernaut demo", description=__doc__)
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".demo", help="state directory (default .demo/)"
    )
    parser.add_argument("--exit", action="store_true", help="stop after the run instead of keeping the UI up")
    args = parser.parse_args(argv)
    # SIGTERM becomes SystemExit so the `finally` that stops Airflow and the sandbox runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run_demo(args.workdir.resolve(), keep_running=not args.exit)
    except RuntimeError as exc:
        say(f"failed: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
