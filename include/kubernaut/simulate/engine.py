"""Run one scenario: a throwaway sandbox, the fault, the alert, the template's steps through the
production step runner, the rollback through the production rollback, and a verdict."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubernaut.actions.base import ActionContext, PreconditionFailed
from kubernaut.actions.registry import ActionRegistry, registry
from kubernaut.config import KubernautConfig
from kubernaut.sandbox.batch import FAULT_ANNOTATION
from kubernaut.sandbox.revisions import HASH_LABEL
from kubernaut.simulate import app_faults
from kubernaut.simulate.journal import MemoryHistory
from kubernaut.simulate.scenario import (
    AbsentCheck,
    ActionCheck,
    Check,
    Fault,
    ObjectCheck,
    PodsCheck,
    ScenarioFile,
    TargetHealthCheck,
    substitute,
)
from kubernaut.simulate.services import (
    NotifySink,
    PrometheusService,
    ServiceSetupError,
    SharedPrometheus,
    check_notified,
    connections,
    dig,
    notify_connections,
    prometheus_service,
)
from kubernaut.simulate.snapshot import Snapshot, diff, field_changes, key_text, restored, take
from kubernaut.templates.model import Template
from kubernaut.testing.services import connection_env_name

RUN_ID = 1
SETTLE_TIMEOUT = 30.0
# The webhook connection notify steps post to when the scenario's config names none.
SIMULATE_NOTIFY_CONN = "simulate_notify"
# Waits of the steps and checks poll this often (Airflow's steps start at 1 s, up to 10 s).
POLL_INTERVAL, MAX_POLL_INTERVAL = 0.1, 0.5
SIMULATE_FAILURE = "simulate"


class ScenarioSetupError(RuntimeError):
    """The scenario could not be set up (fault never showed, alert invalid ...)."""


@dataclass
class StepReport:
    name: str
    action: str
    status: str  # success | skipped | failed | not_run | rejected
    seconds: float = 0.0
    attempts: int = 0
    detail: str = ""  # skip reason, error, or gate answer
    gate: str = ""  # "auto-approved" | "rejected" | ""
    changes: list[str] = field(default_factory=list)
    wait: dict[str, Any] | None = None


@dataclass
class RollbackReportItem:
    step: str
    action: str
    status: str
    result: Any = None


@dataclass
class CheckReport:
    check: str
    ok: bool
    detail: str = ""


@dataclass
class ScenarioResult:
    template: str
    scenario: str
    file: str
    expected: str
    verdict: str = ""
    passed: bool = False
    seconds: float = 0.0
    setup: list[str] = field(default_factory=list)
    steps: list[StepReport] = field(default_factory=list)
    rollback: list[RollbackReportItem] = field(default_factory=list)
    rollback_changes: list[str] = field(default_factory=list)
    checks: list[CheckReport] = field(default_factory=list)
    unchanged: list[CheckReport] = field(default_factory=list)
    residue: list[str] = field(default_factory=list)  # what differs from before the run
    notifications: list[dict[str, Any]] = field(default_factory=list)  # what the notify sink got
    notified: list[CheckReport] = field(default_factory=list)  # expect.notified
    problems: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    alert_target: dict[str, str] = field(default_factory=dict)  # what the alert is about

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.append(f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # a log line must never break the run
            pass


def changes_anything(template: Template, actions: ActionRegistry = registry) -> bool:
    """Whether any step of the template may change something (or declares a rollback action)."""
    for step in template.steps:
        cls = actions.get(step.action.type, step.action.action)
        if cls.mutating or step.rollback not in (None, "none"):
            return True
        if step.action.action == "http_request" and str(
            step.action.parameters.get("method", "GET")
        ).upper() not in (
            "GET",
            "HEAD",
        ):
            return True
    return False


def default_verdict(sf: ScenarioFile, template: Template, fail_at: str | None) -> str:
    if fail_at is not None:
        return "ROLLED BACK CLEANLY"
    if sf.scenario.expect.verdict:
        return sf.scenario.expect.verdict
    if sf.scenario.fail_at:
        return "ROLLED BACK CLEANLY"
    return "FIXED" if changes_anything(template) else "CHANGED NOTHING"


# --- cluster preparation ----------------------------------------------------------------------


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _settled(cluster: Any) -> bool:
    for dep in cluster.list("deployments"):
        want, status = dep["spec"].get("replicas", 1), dep.get("status") or {}
        if status.get("observedGeneration", 0) < dep["metadata"].get("generation", 1):
            return False
        if want and (status.get("readyReplicas", 0) != want or status.get("updatedReplicas", 0) != want):
            return False
    for sts in cluster.list("statefulsets"):
        want = sts["spec"].get("replicas", 1)
        if want and (sts.get("status") or {}).get("readyReplicas", 0) != want:
            return False
    for ds in cluster.list("daemonsets"):
        status = ds.get("status") or {}
        if status.get("numberReady", 0) != status.get("desiredNumberScheduled", 0):
            return False
    for md in cluster.list("machinedeployments"):  # Cluster API: every machine's node Ready
        want, status = md["spec"].get("replicas", 1), md.get("status") or {}
        if status.get("replicas") != want or status.get("readyReplicas") != want:
            return False
    for cert in cluster.list("certificates"):  # cert-manager: issued once
        if not (cert.get("status") or {}).get("revision"):
            return False
    return True


def _workload_pods(cluster: Any, fault: Fault) -> list[dict[str, Any]]:
    kind, name = fault.workload
    obj = cluster.get(f"{kind}s", fault.namespace, name)
    if obj is None:
        raise ScenarioSetupError(f"fault {fault.describe()}: no {kind} {fault.namespace}/{name}")
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = cluster.list("pods", fault.namespace, labels=labels)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def _statefulset_image_pull_shows(cluster: Any, fault: Fault) -> bool:
    """image-pull on a StatefulSet: its update revision differs from the current one and the
    pod the rolling update replaced first waits on its image (the update stops there)."""
    name = fault.workload[1]
    obj = cluster.get("statefulsets", fault.namespace, name)
    if obj is None:
        raise ScenarioSetupError(f"fault {fault.describe()}: no statefulset {fault.namespace}/{name}")
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return False
    update = status.get("updateRevision")
    if not update or update == status.get("currentRevision"):
        return False
    pulling = ("ErrImagePull", "ImagePullBackOff")
    return any(
        (p["metadata"].get("labels") or {}).get(HASH_LABEL) == update
        and any(
            ((s.get("state") or {}).get("waiting") or {}).get("reason") in pulling
            for s in _container_statuses(p)
        )
        for p in _workload_pods(cluster, fault)
    )


def _rollout_shows(cluster: Any, fault: Fault) -> bool:
    """image-pull: every pod of the Deployment's new ReplicaSet waits on its image;
    rollout-stuck: the Deployment reports Progressing=False, ProgressDeadlineExceeded."""
    if fault.workload[0] == "statefulset":
        return _statefulset_image_pull_shows(cluster, fault)
    name = fault.workload[1]
    dep = cluster.get("deployments", fault.namespace, name)
    if dep is None:
        raise ScenarioSetupError(f"fault {fault.describe()}: no deployment {fault.namespace}/{name}")
    if fault.type == "rollout-stuck":
        return any(
            c.get("type") == "Progressing"
            and c.get("status") == "False"
            and c.get("reason") == "ProgressDeadlineExceeded"
            for c in (dep.get("status") or {}).get("conditions") or []
        )
    revision = (dep["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
    current = [
        rs
        for rs in cluster.list("replicasets", fault.namespace)
        if any(r.get("uid") == dep["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences") or [])
        and (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") == revision
    ]
    if not current or revision in (None, "1"):
        return False
    labels = (current[0]["spec"].get("selector") or {}).get("matchLabels") or {}
    pods = [
        p
        for p in cluster.list("pods", fault.namespace, labels=labels)
        if not p["metadata"].get("deletionTimestamp")
    ]
    pulling = ("ErrImagePull", "ImagePullBackOff")
    return bool(pods) and all(
        any(
            ((s.get("state") or {}).get("waiting") or {}).get("reason") in pulling
            for s in _container_statuses(p)
        )
        for p in pods
    )


def _newest_revision(cluster: Any, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The set's ControllerRevision with the highest ``revision`` (its current template's)."""
    uid = obj["metadata"]["uid"]
    owned = [
        r
        for r in cluster.list("controllerrevisions", obj["metadata"]["namespace"])
        if any(ref.get("uid") == uid for ref in r["metadata"].get("ownerReferences") or [])
    ]
    return max(owned, key=lambda r: int(r.get("revision") or 0), default=None)


def _bad_rollout_shows(cluster: Any, fault: Fault) -> bool:
    """bad-rollout: the set has a new revision (2 or more) and a pod of it crash-loops; the
    rollout then stays stuck (OrderedReady waits on that pod; a DaemonSet's maxUnavailable is
    used up by it)."""
    kind, name = fault.workload
    obj = cluster.get(f"{kind}s", fault.namespace, name)
    if obj is None:
        raise ScenarioSetupError(f"fault {fault.describe()}: no {kind} {fault.namespace}/{name}")
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return False
    revision = _newest_revision(cluster, obj)
    if revision is None or int(revision.get("revision") or 0) < 2:
        return False
    # A StatefulSet's pods carry the revision's name, a DaemonSet's the hash only.
    names = {revision["metadata"]["name"], (revision["metadata"].get("labels") or {}).get(HASH_LABEL)}
    return any(
        (p["metadata"].get("labels") or {}).get(HASH_LABEL) in names
        and any(
            ((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            for s in _container_statuses(p)
        )
        for p in _workload_pods(cluster, fault)
    )


def bad_rollout(cluster: Any, fault: Fault) -> None:
    """Roll the set out to a pod template whose pods crash: ``image`` (if given) in the
    template's containers (``container``: one), and the sandbox's fault marker
    (``sandbox.kubernaut.io/fault: crashloop``) in its annotations, so every pod of the new
    revision crash-loops and a rollback to an earlier template fixes it."""
    kind, name = fault.workload
    obj = cluster.get(f"{kind}s", fault.namespace, name)
    if obj is None:
        raise ScenarioSetupError(f"fault {fault.describe()}: no {kind} {fault.namespace}/{name}")
    template = obj["spec"].setdefault("template", {})
    containers = (template.get("spec") or {}).get("containers") or []
    names = [c.get("name") for c in containers]
    if fault.container and fault.container not in names:
        raise ScenarioSetupError(
            f"fault {fault.describe()}: {kind} {fault.namespace}/{name} has no container "
            f"{fault.container!r} (containers: {', '.join(map(str, names))})"
        )
    if fault.image:
        for container in containers:
            if fault.container is None or container.get("name") == fault.container:
                container["image"] = fault.image
    metadata = template.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    if annotations.get(FAULT_ANNOTATION) == "crashloop":
        raise ScenarioSetupError(
            f"fault {fault.describe()}: the pod template of {kind} {fault.namespace}/{name} already "
            f"carries {FAULT_ANNOTATION}: crashloop"
        )
    metadata["annotations"] = {**annotations, FAULT_ANNOTATION: "crashloop"}
    cluster.apply(obj)


def _shows(cluster: Any, fault: Fault) -> bool:
    if fault.type == "node-not-ready":
        return True
    if fault.type == "bad-rollout":
        return _bad_rollout_shows(cluster, fault)
    if fault.type == "bad-config":
        return app_faults.bad_config_shows(cluster, fault, _workload_pods(cluster, fault))
    if fault.type == "liveness":
        return app_faults.liveness_shows(_workload_pods(cluster, fault))
    if fault.type in ("image-pull", "rollout-stuck"):
        return _rollout_shows(cluster, fault)
    pods = _workload_pods(cluster, fault)
    if not pods:
        return False
    if fault.type == "crashloop":
        return all(
            any(
                ((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
                for s in _container_statuses(p)
            )
            for p in pods
        )
    if fault.type == "oom":
        return all(
            any(
                ((s.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled"
                or ((s.get("state") or {}).get("terminated") or {}).get("reason") == "OOMKilled"
                for s in _container_statuses(p)
            )
            for p in pods
        )
    return all((p.get("status") or {}).get("phase") == "Running" and not _ready(p) for p in pods)


NOT_READY_TAINTS = [
    {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
]


def node_not_ready(cluster: Any, name: str) -> None:
    """What the node lifecycle controller does when a kubelet stops posting its status."""
    node = cluster.get("nodes", None, name)
    if node is None:
        raise ScenarioSetupError(f"fault node-not-ready: no node {name}")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    conditions = [
        c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") not in ("Ready",)
    ]
    conditions.insert(
        0,
        {
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        },
    )
    node.setdefault("status", {})["conditions"] = conditions
    taints = list(node["spec"].get("taints") or [])
    for taint in NOT_READY_TAINTS:
        if not any(t.get("key") == taint["key"] and t.get("effect") == taint["effect"] for t in taints):
            taints.append({**taint, "timeAdded": now})
    node["spec"]["taints"] = taints
    cluster.apply(node)


def _inject(cluster: Any, fault: Fault) -> None:
    if fault.type == "node-not-ready":
        assert fault.node is not None
        node_not_ready(cluster, fault.node)
        return
    if fault.type == "bad-rollout":
        bad_rollout(cluster, fault)
        return
    if fault.type in ("bad-config", "liveness"):
        inject = app_faults.inject_bad_config if fault.type == "bad-config" else app_faults.inject_liveness
        try:
            inject(cluster, fault)
        except app_faults.AppFaultError as exc:
            raise ScenarioSetupError(f"fault {fault.describe()}: {exc}") from exc
        return
    kind, name = fault.workload
    options: dict[str, Any] = {"memory": fault.memory, "container": fault.container}
    if fault.image:
        options["image"] = fault.image
    try:
        cluster.inject_fault(
            # rollout-stuck: the same bad rollout, shown once the progress deadline passes
            "image-pull" if fault.type == "rollout-stuck" else fault.type,
            namespace=fault.namespace,
            **{kind: name},
            **options,
        )
    except (ValueError, KeyError) as exc:
        raise ScenarioSetupError(f"fault {fault.describe()}: {exc}") from exc


def _wait(what: str, predicate: Callable[[], Any], timeout: float = SETTLE_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise ScenarioSetupError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.05)


def _has_condition(obj: dict[str, Any], condition: str) -> bool:
    return any(
        c.get("type") == condition and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _bind(cluster: Any, sf: ScenarioFile, timeout: float = SETTLE_TIMEOUT) -> dict[str, str]:
    """Each bind name: the first matching object (by name). An object a controller is still
    making (a CronJob's Job, a Job reaching Failed) is waited for, up to ``timeout``."""
    names: dict[str, str] = {}
    for name, sel in sf.scenario.bind.items():

        def found(sel: Any = sel) -> list[tuple[str, str]]:
            return sorted(
                (o["metadata"]["name"], o["metadata"].get("uid", ""))
                for o in cluster.list(sel.kind, sel.namespace, labels=sel.selector)
                if not o["metadata"].get("deletionTimestamp")
                and (
                    not sel.waiting
                    or any(
                        ((c.get("state") or {}).get("waiting") or {}).get("reason") in sel.waiting
                        for c in _container_statuses(o)
                    )
                )
                and (not sel.condition or _has_condition(o, sel.condition))
            )

        try:
            matches = _wait(f"bind.{name}", found, timeout)
        except ScenarioSetupError:
            where = f" in {sel.namespace}" if sel.namespace else ""
            waiting = f" waiting with {' or '.join(sel.waiting)}" if sel.waiting else ""
            condition = f" with condition {sel.condition}=True" if sel.condition else ""
            raise ScenarioSetupError(
                f"bind.{name}: no {sel.kind}{where} matches {sel.selector or 'anything'}{waiting}{condition}"
                f" (waited {timeout:.0f}s)"
            ) from None
        names[name], names[f"{name}_uid"] = matches[0]
    return names


def _after_newest_pod_second(cluster: Any) -> None:
    """Timestamps have 1 s precision: a pod created in the second the alert is sent would
    count as created after it (as real alerts come later, this only waits out the second)."""
    stamps = [p["metadata"].get("creationTimestamp", "") for p in cluster.list("pods")]
    newest = max(stamps, default="")
    _wait("clock", lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > newest, 5.0)


# --- checks -----------------------------------------------------------------------------------


def action_class(check: ActionCheck, actions: ActionRegistry = registry) -> Any:
    kinds = [check.type] if check.type else ["monitoring", "kubernetes", "custom"]
    for kind in kinds:
        try:
            return actions.get(kind, check.action)
        except (KeyError, LookupError, ValueError):
            continue
    raise LookupError(f"no read-only action {check.action!r} in the catalogue")


def describe_check(check: Check) -> str:
    if isinstance(check, ActionCheck):
        hidden = ("wait_timeout", "pod_uid", "since")
        params = ", ".join(f"{k}: {v}" for k, v in check.parameters.items() if k not in hidden)
        return f"{check.action} {{{params}}}"
    if isinstance(check, ObjectCheck):
        fields = ", ".join(f"{k}={v!r}" for k, v in check.fields.items())
        return f"{check.object} has {fields}"
    if isinstance(check, PodsCheck):
        sel = ", ".join(f"{k}={v}" for k, v in check.pods.model_dump(exclude_none=True).items())
        return f"{check.count} pod(s) with {sel or 'any'}"
    if isinstance(check, TargetHealthCheck):
        return (
            f"target health ({'the alert target' if check.target_health == 'alert' else check.target_health})"
        )
    return f"{check.absent} absent"


def _target_health(conn_id: str, target: dict[str, str]) -> dict[str, Any]:
    """One look of the assessment's target-health probe, with the clients a wait uses."""
    import asyncio

    from kubernaut.triggers.assessment import health_evidence
    from kubernaut.waits.clients import WaitClients

    async def probe() -> dict[str, Any]:
        clients = WaitClients.in_process(conn_id)
        try:
            return dict(await health_evidence({"target": target}, clients))
        finally:
            await clients.close()

    return asyncio.run(probe())


def run_check(
    check: Check,
    cluster: Any,
    variables: dict[str, str],
    conn_id: str,
    config: KubernautConfig,
    log: logging.Logger,
    alert_target: dict[str, str] | None = None,
) -> CheckReport:
    check = type(check).model_validate(substitute(check.model_dump(), variables))
    text = describe_check(check)
    if isinstance(check, ActionCheck):
        cls = action_class(check)
        ctx = ActionContext(
            timeout=300.0,
            kube_conn_id=conn_id,
            logger=log,
            poll_interval=POLL_INTERVAL,
            max_poll_interval=MAX_POLL_INTERVAL,
            _config=config,
        )
        try:
            cls().execute(ctx, cls.Params.model_validate(check.parameters))
        except Exception as exc:
            return CheckReport(text, False, f"{type(exc).__name__}: {exc}")
        return CheckReport(text, True)

    def look() -> tuple[bool, str]:
        if isinstance(check, ObjectCheck):
            obj = cluster.get(check.object.kind, check.object.namespace, check.object.name)
            if obj is None:
                return False, f"{check.object} does not exist"
            wrong = [f"{p} is {dig(obj, p)!r}" for p, want in check.fields.items() if dig(obj, p) != want]
            return not wrong, "; ".join(wrong)
        if isinstance(check, PodsCheck):
            pods = [
                p
                for p in cluster.list("pods", check.pods.namespace, labels=check.pods.selector)
                if not p["metadata"].get("deletionTimestamp")
                and (check.pods.node is None or p["spec"].get("nodeName") == check.pods.node)
                and (
                    check.pods.created_after is None
                    or p["metadata"].get("creationTimestamp", "") >= check.pods.created_after
                )
            ]
            return len(
                pods
            ) == check.count, f"{len(pods)} pod(s): {', '.join(p['metadata']['name'] for p in pods)}"
        if isinstance(check, TargetHealthCheck):
            ref = check.target_health
            target = (
                dict(alert_target or {})
                if ref == "alert"
                else {"kind": ref.kind, "namespace": ref.namespace or "", "name": ref.name}
            )
            found = _target_health(conn_id, target)
            detail = str(found.get("error") or found.get("reason") or "")
            return found.get("healthy") is True, f"{found.get('target', '')}: {detail or 'cannot tell'}"
        assert isinstance(check, AbsentCheck)
        obj = cluster.get(check.absent.kind, check.absent.namespace, check.absent.name)
        return obj is None, f"{check.absent} still exists"

    deadline = time.monotonic() + check.within
    while True:
        ok, detail = look()
        if ok or time.monotonic() >= deadline:
            return CheckReport(text, ok, "" if ok else detail)
        time.sleep(0.1)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class RunOptions:
    fail_at: str | None = None  # from the command line: overrides the scenario's
    reject: list[str] = field(default_factory=list)
    workdir: Path = Path(".")
    # one Prometheus for the run's scenarios (else each scenario that declares series starts one)
    prometheus: SharedPrometheus | None = None
    # Called with (cluster, connection id, the alert's target) once the run (and its rollback)
    # ended, before the sandbox goes: a caller's own look at the outcome (bench/choice.py).
    after_run: Callable[[Any, str, dict[str, str]], None] | None = None


def run_scenario(template: Template, sf: ScenarioFile, options: RunOptions) -> ScenarioResult:
    """Run one scenario in a sandbox of its own; never raises for what the scenario finds."""
    from kubernaut.testing.sandbox import kube_sandbox

    started = time.monotonic()
    scenario = sf.scenario
    fail_at = options.fail_at if options.fail_at is not None else scenario.fail_at
    result = ScenarioResult(
        template=template.name,
        scenario=sf.name,
        file=str(sf.path),
        expected=default_verdict(sf, template, options.fail_at),
    )
    log = logging.getLogger(f"kubernaut.simulate.{template.name}.{sf.name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = _Collect(result.log)
    log.addHandler(handler)
    conn_id = template.configuration.kubernetes_conn_id
    config_data = dict(scenario.config)
    config_data.setdefault("notify_conn_id", SIMULATE_NOTIFY_CONN)
    sink = NotifySink().start()
    try:
        config = KubernautConfig.model_validate(config_data)
        env = {
            connection_env_name(c): sink.url
            for c in notify_connections(template, config.notify_conn_id or SIMULATE_NOTIFY_CONN)
        }
        with contextlib.ExitStack() as stack:
            prometheus = None
            if scenario.prometheus is not None:
                prometheus = stack.enter_context(
                    options.prometheus.use(scenario.prometheus)
                    if options.prometheus is not None
                    else prometheus_service(scenario.prometheus, options.workdir / f"prometheus-{sf.name}")
                )
                env[connection_env_name(config.prometheus_conn_id)] = prometheus.url
            stack.enter_context(connections(env))
            sandbox = stack.enter_context(
                kube_sandbox(
                    options.workdir,
                    conn_id=conn_id,
                    seed=scenario.seed == "demo",
                    pod_ready_delay=scenario.sandbox.pod_ready_delay,
                    crash_interval=scenario.sandbox.crash_interval,
                    crds=scenario.sandbox.crds,
                )
            )
            if prometheus is not None:
                prometheus.metrics.lookup = sandbox.cluster.get
            _run(
                template,
                sf,
                options,
                fail_at,
                sandbox.cluster,
                conn_id,
                result,
                log,
                config,
                prometheus,
                sink,
            )
            if options.after_run is not None and result.alert_target:
                options.after_run(sandbox.cluster, conn_id, result.alert_target)
    except (ScenarioSetupError, ServiceSetupError) as exc:
        result.problems.append(f"setup: {exc}")
    except Exception as exc:  # report it with the scenario, go on with the next one
        result.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        sink.stop()
        log.removeHandler(handler)
    result.seconds = round(time.monotonic() - started, 2)
    _judge_expectations(sf, result, checked_steps=options.fail_at is None)
    return result


def _judge_expectations(sf: ScenarioFile, result: ScenarioResult, *, checked_steps: bool) -> None:
    if checked_steps:
        got = {s.name: s.status for s in result.steps}
        for name, want in sf.scenario.expect.steps.items():
            if got.get(name) != want:
                result.problems.append(f"step {name}: expected {want}, got {got.get(name, 'nothing')}")
    if result.verdict and result.verdict != result.expected:
        result.problems.append(f"verdict {result.verdict}, expected {result.expected}")
    result.passed = bool(result.verdict) and not result.problems


def _run(
    template: Template,
    sf: ScenarioFile,
    options: RunOptions,
    fail_at: str | None,
    cluster: Any,
    conn_id: str,
    result: ScenarioResult,
    log: logging.Logger,
    config: KubernautConfig,
    prometheus: PrometheusService | None,
    sink: NotifySink,
) -> None:
    from kubernaut.dag_plan import rollback_spec, step_spec, upstream_closure
    from kubernaut.intake.payload import PayloadError, parse_payload
    from kubernaut.operators.recorder import HistoryRecorder
    from kubernaut.operators.runner import INJECT_KEY, StepInputError, render_context, run_step
    from kubernaut.rollback import rollback_run

    scenario = sf.scenario
    t0 = time.monotonic()
    for obj in scenario.objects:
        cluster.apply(obj)
    _wait("the seeded workloads to be Ready", lambda: _settled(cluster))
    seeded = time.monotonic() - t0
    result.setup.append(
        f"seed {scenario.seed} + {len(scenario.objects)} object(s); workloads Ready after {seeded:.1f}s"
    )
    for fault in scenario.faults:
        t1 = time.monotonic()
        _inject(cluster, fault)
        _wait(f"fault {fault.describe()} to show", lambda f=fault: _shows(cluster, f))  # type: ignore[misc]
        result.setup.append(f"fault {fault.describe()}: showed after {time.monotonic() - t1:.1f}s")
    if prometheus is not None:
        t2 = time.monotonic()
        prometheus.wait_scraped()
        declared = len(prometheus.metrics.spec.series)
        result.setup.append(
            f"prometheus {prometheus.url} scrapes {declared} declared series every 1s;"
            f" all queryable after {time.monotonic() - t2:.1f}s"
        )
    variables = _bind(cluster, sf)
    _after_newest_pod_second(cluster)
    variables["now"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    try:
        payload = parse_payload(substitute(scenario.alert, variables))
    except PayloadError as exc:
        raise ScenarioSetupError(f"alert: {exc}") from exc
    if len(payload.alerts) != 1:
        raise ScenarioSetupError(f"alert: the payload carries {len(payload.alerts)} alerts; give exactly one")
    alert = payload.alerts[0]
    if not template.matches_alert(dict(alert.labels)):
        raise ScenarioSetupError(
            f"alert {alert.alertname} {dict(alert.labels)} does not reach template {template.name} "
            "(its alert_types and matchers, as the intake routes)"
        )
    params_in = substitute(scenario.params, variables)
    params = template.resolve_params(params_in)
    conf: dict[str, Any] = {"alert": alert.to_conf(), "params": params_in}
    if fail_at:
        conf[INJECT_KEY] = {"step": fail_at}
    from kubernaut.alert import NO_TARGET, derive_target

    target = derive_target(alert.labels)
    if target == NO_TARGET and template.target is not None:  # as the intake decides (intake.targets)
        from kubernaut.intake.targets import TargetUnresolved, template_target
        from kubernaut.template_params import TemplateParameters

        try:
            target = template_target(template, alert, TemplateParameters({template.name: params_in or {}}))
        except TargetUnresolved as exc:
            raise ScenarioSetupError(f"alert: {exc}") from None
    result.alert_target = target.as_dict()
    result.setup.append(
        f"alert {alert.alertname} "
        + " ".join(
            f"{k}={v}"
            for k, v in alert.labels.items()
            if k in ("namespace", "pod", "deployment", "node", "container")
        )
        + f" -> template {template.name} ({target})"
    )
    if fail_at:
        result.setup.append(f"failure injected after step {fail_at}'s action (conf.{INJECT_KEY})")

    history = MemoryHistory()
    deps = template.effective_dependencies()
    closure = upstream_closure(deps)
    outputs: dict[str, Any] = {}
    before = take(cluster)
    last: Snapshot = before
    stopped = ""  # why the remaining steps do not run
    failed = False
    blocked: set[str] = set()  # failed steps and the steps downstream of them
    rejected_with: str | None = None  # the rejected step's on_reject
    cfg = template.configuration
    rejects = set(options.reject) | set(scenario.reject)
    for step in template.steps:
        action = f"{step.action.type}/{step.action.action}"
        report = StepReport(step.name, action, "not_run")
        result.steps.append(report)
        if stopped:
            report.detail = stopped
            continue
        broken = [u for u in deps[step.name] if u in blocked]
        if broken:  # Airflow: upstream_failed; steps on other branches still run
            report.detail = f"upstream failed ({', '.join(broken)})"
            blocked.add(step.name)
            continue
        if step.approval == "required":
            if step.name in rejects or f"approve-{step.name}" in rejects:
                report.status, report.gate = "rejected", "rejected"
                report.detail = f"approve-{step.name}: rejected (--reject); the run ends declined"
                stopped = f"run declined at approve-{step.name}"
                rejected_with = step.on_reject
                continue
            report.gate = "auto-approved"
        spec = step_spec(template, step, dry_run=cfg.dry_run, kube_conn_id=conn_id)
        recorder = HistoryRecorder(
            history, RUN_ID, step.name, action, str((spec.rollback or {}).get("mode", "undo"))
        )
        steps_ctx = {u: outputs[u] for u in closure[step.name] if u in outputs}
        retries = step.retries_for(cfg)
        t_step = time.monotonic()
        while True:
            report.attempts += 1
            try:
                outcome = run_step(
                    spec,
                    conf=conf,
                    params=params,
                    steps=steps_ctx,
                    timeout=step.timeout_for(cfg).total_seconds(),
                    logger=log,
                    recorder=recorder,
                    can_defer=False,
                    poll_interval=POLL_INTERVAL,
                    max_poll_interval=MAX_POLL_INTERVAL,
                    _config=config,
                )
            except (StepInputError, PreconditionFailed) as exc:  # Airflow fails these at once
                report.status, report.detail = "failed", f"{type(exc).__name__}: {exc}"
                break
            except Exception as exc:
                report.status, report.detail = "failed", f"{type(exc).__name__}: {exc}"
                if report.attempts <= retries:
                    log.info("kubernaut: simulate: %s failed (%s); retrying at once", step.name, exc)
                    continue
                break
            if outcome.skipped:
                report.status, report.detail = "skipped", outcome.reason
            else:
                report.status, report.detail = "success", ""
                record = outcome.record or {}
                outputs[step.name] = record.get("output", {})
                report.wait = record.get("wait")
            break
        report.seconds = round(time.monotonic() - t_step, 2)
        now = take(cluster)
        report.changes = diff(last, now).lines()
        last = now
        if report.status == "failed":
            failed = True
            blocked.add(step.name)

    rolled_back = failed or rejected_with == "rollback"
    if rolled_back:
        rollbacks = {s.name: rollback_spec(s) for s in template.steps}

        def make_context() -> ActionContext:
            return ActionContext(
                timeout=300.0,
                kube_conn_id=conn_id,
                logger=log,
                poll_interval=POLL_INTERVAL,
                max_poll_interval=MAX_POLL_INTERVAL,
                _config=config,
            )

        def contexts(step: str) -> Mapping[str, Any]:
            ups = closure.get(step, [])
            return render_context(conf, params, {u: outputs[u] for u in ups if u in outputs})

        rb = rollback_run(history, RUN_ID, rollbacks, make_context, contexts, log)
        result.rollback = [RollbackReportItem(i.step, i.action, i.status, i.result) for i in rb.items]
        now = take(cluster)
        result.rollback_changes = diff(last, now).lines()
        last = now
        after = take(cluster)
        residue = restored(before, after)
        result.residue = residue.lines()
        clean = residue.empty and not rb.failed
        result.verdict = "ROLLED BACK CLEANLY" if clean else "ROLLBACK INCOMPLETE"
        _judge_notified(sf, sink, variables, result)
        return

    after = take(cluster)
    if not changes_anything(template):
        changed = diff(before, after)
        result.residue = changed.lines()
        result.verdict = "CHANGED NOTHING" if changed.nothing else "NOT FIXED"
        if not changed.nothing:
            result.problems.append("a template without changing steps changed the cluster")
        _judge_notified(sf, sink, variables, result)
        return
    for check in scenario.expect.fixed:
        result.checks.append(run_check(check, cluster, variables, conn_id, config, log, target.as_dict()))
    final = take(cluster)
    for ref in scenario.expect.unchanged:
        result.unchanged.append(_unchanged(ref, before, final))
    ok = all(c.ok for c in result.checks) and all(c.ok for c in result.unchanged)
    if not scenario.expect.fixed:
        result.problems.append("expect.fixed lists no check: nothing shows the fault is gone")
        ok = False
    result.verdict = "FIXED" if ok else "NOT FIXED"
    _judge_notified(sf, sink, variables, result)


def _judge_notified(
    sf: ScenarioFile, sink: NotifySink, variables: dict[str, str], result: ScenarioResult
) -> None:
    """What the notify sink received, and the scenario's ``expect.notified`` against it (a
    failing one fails the scenario: the notification is part of what the template does)."""
    result.notifications = [s.to_dict() for s in sink.sent]
    for check in sf.scenario.expect.notified:
        check = type(check).model_validate(substitute(check.model_dump(), variables))
        ok, text, detail = check_notified(check, sink.sent)
        result.notified.append(CheckReport(text, ok, detail))
        if not ok:
            result.problems.append(f"{text}: {detail}")


def _unchanged(ref: Any, before: Snapshot, after: Snapshot) -> CheckReport:
    key = (ref.kind, ref.namespace or "", ref.name)
    text = key_text(key)
    if key not in before.objects:
        return CheckReport(text, False, "not in the cluster before the run (or owned by a controller)")
    if key not in after.objects:
        return CheckReport(text, False, "gone after the run")
    changes = field_changes(before.objects[key], after.objects[key])
    return CheckReport(text, not changes, "; ".join(changes))
