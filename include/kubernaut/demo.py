"""`kubernaut demo`: Airflow standalone (SQLite) with our DAGs, the sandbox cluster with
an injected fault, one alert sent through the Airflow REST API, and a remediation run
that ends green with the fault fixed, then its effectiveness assessment (a run of the
``kubernaut_assessment`` DAG, and the history): with Prometheus and Alertmanager on PATH the
demo starts them (``kubernaut.demo_monitoring``) and the verdict is measured; without them it
is ``unknown``, and the demo says why."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from kubernaut import demo_monitoring
from kubernaut.cli import runnable
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
# The demo's assessment delay: the default (10 min after the run, then a 30 min window) is
# for production; the demo's fault is fixed or not within seconds.
DEMO_ASSESS_AFTER, DEMO_ASSESS_WINDOW = "15s", "20s"
ASSESS_TIMEOUT = 300.0  # after + window, the assessment run's scheduling, the triggerer's turn


def say(text: str, prefix: bool = True) -> None:
    try:
        print(f"[demo] {text}" if prefix else text, flush=True)
    except OSError:  # the terminal is gone (hang-up) or the reader left: keep stopping
        pass


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
    """Poll ``predicate`` until it is truthy. A request that times out or cannot connect (a busy
    api-server) is a "not yet", not an answer: polling goes on until the deadline."""
    import httpx

    deadline = time.monotonic() + timeout
    problem = ""
    while True:
        try:
            value = predicate()
        except httpx.TransportError as exc:
            value, problem = None, f" (last: {type(exc).__name__}: {exc})"
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}{problem}")
        time.sleep(interval)


def webhook_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """One alert as Alertmanager delivers it: a version-4 webhook body."""
    return {
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


def send_alert(webhook_url: str, token: str, alert: dict[str, Any]) -> dict[str, Any]:
    """Deliver the alert as Alertmanager does: a version-4 webhook to the intake plugin."""
    response = httpx.post(
        webhook_url, json=webhook_payload(alert), headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    response.raise_for_status()
    decision: dict[str, Any] = response.json()["decisions"][0]
    return decision


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


HISTORY_URL_ENV = "KUBERNAUT_DEMO_HISTORY_URL"
HISTORY_DB_ENV = "KUBERNAUT_DEMO_HISTORY_DB"
DEFAULT_HISTORY_SERVER = "postgresql://postgres@127.0.0.1:5432"
HISTORY_DB = "kubernaut_demo_history"
DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
WEBHOOK_TOKEN_KEY = "webhook_token"


def history_db_name(value: str) -> str:
    """An argparse type: a plain PostgreSQL database name (it is dropped and recreated)."""
    if not DB_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid database name {value!r}: use lowercase letters, digits and _ (at most 63)"
        )
    return value


def prepare_history(database: str = HISTORY_DB) -> str:
    """The undo journal needs PostgreSQL: (re)create the demo's history database."""
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
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{database}"')
    conn.close()
    return f"{DEFAULT_HISTORY_SERVER}/{database}"


def migrate_history(url: str) -> None:
    """Migrate the demo's history and make it this process's (the demo's components inherit it)."""
    os.environ["AIRFLOW_CONN_KUBERNAUT_HISTORY"] = url
    migrate_history_at(url)


def migrate_history_at(url: str) -> None:
    """Migrate the history database at ``url``, leaving this process's environment alone (a
    stack started inside a test process must not point that process at its database)."""
    import psycopg2

    from kubernaut.history import History

    history = History(connect=lambda: psycopg2.connect(url))
    history.migrate()
    history.close()


class Stop(BaseException):
    """SIGTERM or SIGHUP, raised like Ctrl-C's KeyboardInterrupt so the demo stops what it
    started (a BaseException: no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stop(signum: int, _frame: Any) -> None:
    raise Stop(signum)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _ignore_stop_signals() -> None:
    """While stopping: a second Ctrl-C or SIGTERM must not cut the stop short (it is bounded)."""
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)


def say_command(command: str) -> None:
    """A command on a line of its own, to copy and paste."""
    say(f"    {command}", prefix=False)


def print_how_to_use(
    airflow: AirflowStandalone, api: httpx.Client, workdir: Path, history_url: str, run_id: str
) -> None:
    """What a person does next with the running demo: the UI, the paused DAGs, posting an
    alert, the history of the run."""
    dags = api.get("/dags", params={"tags": "kubernaut"}).json()["dags"]
    unpaused = sorted(d["dag_id"] for d in dags if not d["is_paused"])
    paused = sorted(d["dag_id"] for d in dags if d["is_paused"])
    say(f"unpaused DAGs: {', '.join(unpaused) or 'none'}")
    if paused:
        say(f"paused (Airflow's default for new DAGs; their alerts get 'paused'): {', '.join(paused)}")
        say("unpause one with its toggle in the UI, or:")
        say_command(
            f"AIRFLOW_HOME={shlex.quote(str(airflow.home))} {runnable('airflow')} dags unpause {paused[0]}"
        )
    alert_file = workdir / "alert.json"
    # A new occurrence of the demo's alert (its own startsAt): the intake decides it afresh
    # (e.g. 'cooldown' right after the demo's fix; 'duplicate' when posted again).
    alert_file.write_text(json.dumps(webhook_payload({**DEMO_ALERT, "startsAt": now_rfc3339()}), indent=2))
    python = runnable(Path(sys.executable).name)
    key = json.dumps(WEBHOOK_TOKEN_KEY)
    read_token = shlex.quote(f"import json,sys; print(json.load(open(sys.argv[1]))[{key}])")
    say(f"webhook token: key {WEBHOOK_TOKEN_KEY!r} of {airflow.secrets_file} (mode 0600)")
    say(f"post an alert ({alert_file}) to the running demo; the answer is the intake's decision:")
    say_command(
        f"curl -sS -X POST {airflow.url}/kubernaut/alerts -H 'Content-Type: application/json' "
        f'-H "Authorization: Bearer $({python} -c {read_token} {shlex.quote(str(airflow.secrets_file))})" '
        f"--data-binary @{shlex.quote(str(alert_file))} -w '\\nHTTP %{{http_code}}\\n'"
    )
    say("the run's history (steps, undo journal, assessment):")
    say_command(f"AIRFLOW_CONN_KUBERNAUT_HISTORY={history_url} {runnable()} history show {run_id}")


def write_config(workdir: Path) -> Path:
    """The demo's kubernaut configuration: the short assessment delay."""
    path = workdir / "kubernaut.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(f"effectiveness: {{after: {DEMO_ASSESS_AFTER}, window: {DEMO_ASSESS_WINDOW}}}\n")
    return path


def wait_for_assessment(history_url: str, run_id: str) -> dict[str, Any]:
    """The run's assessment once the assessment run stored it in the history."""
    import psycopg2

    from kubernaut.history import History

    history = History(connect=lambda: psycopg2.connect(history_url))
    try:
        found: dict[str, Any] = wait(
            lambda: (history.run(run_id) or {}).get("assessment"),
            ASSESS_TIMEOUT,
            "the run's effectiveness assessment",
            interval=2,
        )
        return found
    finally:
        history.close()


def say_assessment(assessment: dict[str, Any]) -> None:
    score = "-" if assessment["score"] is None else f"{assessment['score']:.2f}"
    say(
        f"assessment: {assessment['verdict']} (score {score}, after {assessment['after_s']:g}s "
        f"+ window {assessment['window_s']:g}s)"
    )
    for reason in assessment.get("reasons") or []:
        say(f"  - {reason}")
    for name, component in (assessment.get("components") or {}).items():
        part = "-" if component.get("score") is None else f"{component['score']:.2f}"
        say(f"  {name:<14} {part:>5}  {component.get('reason', '')}")


def where_it_ran(api: Any, dag_id: str, run_id: str, task_id: str) -> str:
    """In a worker (the host and process Airflow recorded) or only in the triggerer."""
    ti = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}").json()
    if ti.get("hostname") or ti.get("pid"):
        return f"in a worker ({ti.get('hostname')}, pid {ti.get('pid')})"
    return "in the triggerer only (no worker slot)"


def run_demo(workdir: Path, keep_running: bool, history_db: str = HISTORY_DB) -> int:
    # Imported here: it imports Airflow's SDK, which this process needs for nothing else.
    from kubernaut.operators.assess import ASSESS_TASK, ASSESSMENT_DAG_ID, assessment_run_id

    history_url = prepare_history(history_db)
    migrate_history(history_url)
    say(f"remediation history in {history_url}")
    # Own sessions: a terminal's Ctrl-C or hang-up reaches only the demo, which stops them
    # children first, whatever the signal.
    sandbox = SandboxProcess(workdir / "sandbox", new_session=True)
    airflow = AirflowStandalone(
        home=workdir / "airflow",
        dags_folder=REPO / "dags",
        templates_dir=REPO / "templates",
        plugins_folder=REPO / "plugins",
        new_session=True,
    )
    monitoring = demo_monitoring.DemoMonitoring(workdir / "monitoring")
    try:
        sandbox.start()
        say(f"sandbox cluster at {sandbox.url} (kubeconfig {sandbox.kubeconfig})")
        unmeasured = demo_monitoring.missing()
        if unmeasured is None:
            monitoring.start(sandbox, "demo", "web")
            say(
                f"Prometheus at {monitoring.prometheus.url} (rule {demo_monitoring.ALERT} on the sandbox's "
                f"demo/web), Alertmanager at {monitoring.alertmanager.url}: the assessment measures"
            )
        else:
            say(f"no Prometheus/Alertmanager: the assessment's verdict will be 'unknown' ({unmeasured})")
        airflow.port = free_port()
        airflow.environment()  # creates the login, which the intake plugin uses for the REST API
        token = airflow.secret(WEBHOOK_TOKEN_KEY)
        airflow.env_extra = {
            "AIRFLOW_CONN_KUBERNETES_DEFAULT": kubernetes_connection(sandbox.kubeconfig),
            "AIRFLOW_CONN_KUBERNAUT_HISTORY": history_url,
            "KUBERNAUT_WEBHOOK_TOKEN": token,
            "KUBERNAUT_AIRFLOW_USERNAME": airflow.username,
            "KUBERNAUT_AIRFLOW_PASSWORD": airflow.password,
            "KUBERNAUT_CONFIG": str(write_config(workdir)),
            **(monitoring.connection_env() if unmeasured is None else {}),
        }
        say(
            "starting Airflow (api-server, scheduler, dag-processor, triggerer) on SQLite, "
            f"parallelism {airflow.parallelism} ..."
        )
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
        say(f"unpaused {DEMO_TEMPLATE_DAG}; the other {len(dags) - 1} stay paused")
        wait(lambda: api.get(f"/dags/{ASSESSMENT_DAG_ID}").status_code == 200, 60, f"DAG {ASSESSMENT_DAG_ID}")
        api.patch(f"/dags/{ASSESSMENT_DAG_ID}", json={"is_paused": False}).raise_for_status()
        say(
            f"unpaused {ASSESSMENT_DAG_ID}: every run is assessed "
            f"{DEMO_ASSESS_AFTER} after it ends, over a {DEMO_ASSESS_WINDOW} window"
        )

        wait(lambda: deployment_health(sandbox, "demo", "web")[1] == 3, 60, "demo/web to be Ready")
        sandbox.inject_fault("crashloop", "demo", "web")
        wait(lambda: deployment_health(sandbox, "demo", "web")[2] > 0, 60, "the fault to show")
        desired, ready, crashing = deployment_health(sandbox, "demo", "web")
        say(f"fault injected: demo/web wants {desired}, {ready} Ready, {crashing} in CrashLoopBackOff")

        alert = {**DEMO_ALERT, "startsAt": now_rfc3339()}
        if unmeasured is None:  # the alert as Prometheus fired it and Alertmanager has it
            fired = monitoring.wait_firing(demo_monitoring.ALERT, {"namespace": "demo", "deployment": "web"})
            alert = demo_monitoring.webhook_alert(fired)
            say(f"{demo_monitoring.ALERT} firing in Alertmanager since {alert['startsAt']}")
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
        assess_run = assessment_run_id(DEMO_TEMPLATE_DAG, run_id)
        queued = api.get(f"/dags/{ASSESSMENT_DAG_ID}/dagRuns/{assess_run}").json()
        say(
            f"waiting for its effectiveness assessment (run {assess_run} of {ASSESSMENT_DAG_ID}, "
            f"{queued.get('state')} until {queued.get('run_after')}: the run's end + after + window) ..."
        )
        say_assessment(wait_for_assessment(history_url, run_id))

        def assessed() -> str | None:  # the run the UI shows, as its REST API says
            state = api.get(f"/dags/{ASSESSMENT_DAG_ID}/dagRuns/{assess_run}").json().get("state")
            return state if state in ("success", "failed") else None

        say(f"assessment run {assess_run}: {wait(assessed, 60, 'the assessment run to end', interval=1)}")
        say(f"its task ran {where_it_ran(api, ASSESSMENT_DAG_ID, assess_run, ASSESS_TASK)}")
        say(f"the assessment in the UI: {airflow.url}/dags/{ASSESSMENT_DAG_ID}/runs/{assess_run}")
        if keep_running and fixed:
            say(f"login {airflow.username} / {airflow.password} (saved in {airflow.secrets_file})")
            print_how_to_use(airflow, api, workdir, history_url, run_id)
            say("Airflow and the sandbox keep running; Ctrl-C (or SIGTERM) stops them.")
            while True:
                time.sleep(3600)
        say("the run's history (steps, undo journal, assessment) stays in PostgreSQL:")
        say_command(f"AIRFLOW_CONN_KUBERNAUT_HISTORY={history_url} {runnable()} history show {run_id}")
        return 0 if fixed else 1
    finally:
        _ignore_stop_signals()
        say("stopping Airflow and the sandbox ...")
        airflow.stop()
        monitoring.stop()
        sandbox.stop()
        say("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubernaut demo", description=__doc__)
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".demo", help="state directory (default .demo/)"
    )
    parser.add_argument("--exit", action="store_true", help="stop after the run instead of keeping the UI up")
    parser.add_argument(
        "--history-db",
        type=history_db_name,
        default=os.environ.get(HISTORY_DB_ENV, HISTORY_DB),
        help=f"PostgreSQL database for the history, dropped and recreated (default ${HISTORY_DB_ENV} "
        f"or {HISTORY_DB})",
    )
    args = parser.parse_args(argv)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    try:
        return run_demo(args.workdir.resolve(), keep_running=not args.exit, history_db=args.history_db)
    except RuntimeError as exc:
        say(f"failed: {exc}")
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Stop as stop:
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
