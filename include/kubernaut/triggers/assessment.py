"""The effectiveness assessment in the triggerer: the wait, the reads, and (usually) the whole task.

``AssessmentRunTrigger`` does the assessment task's work: it reads the remediation run as the
task would (``kubernaut.assessment.run``; blocking calls in a thread), sleeps until the
assessment is due (the run's end + ``after`` + ``window``, an absolute time from the run's conf,
so a triggerer restart neither restarts nor shortens the wait), gathers the evidence with async
calls, scores it and stores the verdict. Started by the scheduler (the operator's
``start_from_trigger``, ``end=True``), it also ends the task (``TaskSuccessEvent``, the summary
as its XCom): no worker process at all. It resumes the task in a worker only for what needs
one: an ineffective run's hand-on to the next remedy (``STORED``), or when the triggerer had no
run to read (``START_IN_WORKER``: ``execute`` defers here again, with the conf). Run again, it
reads the same run, waits for the same time, gathers the same evidence (every read names its
time: Prometheus is asked *at* the run's start, the end of the delay, the window) and stores
the same verdict (the store replaces it; its outcome is recorded once).

``AssessmentTrigger`` (the wait and reads only, for a request the task computed) is what tasks
deferred before ``AssessmentRunTrigger`` existed still wait in; ``execute_complete`` finishes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from kubernaut.assessment.names import FAILED, RUN_TRIGGER, START_IN_WORKER, STORED
from kubernaut.triggers import SETTLE_SECONDS

CLASSPATH = "kubernaut.triggers.assessment.AssessmentTrigger"
READ_ATTEMPTS = 3  # a service that fails this many times in a row is unreachable
READ_PAUSE = 2.0
MAX_POINTS = 600  # of the ALERTS range query


class AssessmentTrigger(BaseTrigger):
    """``request``: ``alert_labels``, ``target`` (kind, namespace, name), ``started`` (epoch:
    the run's start), ``ended`` (the run's end), ``after_at`` (end of the delay), ``due``
    (end of the window), ``metrics`` ([{query, better}]), ``probes`` (drift probes, see
    ``kubernaut.assessment.probes``), ``prometheus_conn_id``, ``alertmanager_conn_id``,
    ``kube_conn_id``. Fires ``{"status": "done", "evidence": {...}, "request": request}``
    (the request handed back: what the task needs to finish, kept with the trigger)."""

    def __init__(self, request: dict[str, Any], settle: float | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        for key in ("alert_labels", "ended", "after_at", "due"):
            if key not in request:
                raise ValueError(f"assessment request without {key!r}")
        self.request = request
        self.settle = settle

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"request": self.request, "settle": self.settle}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Never sooner than the settle (kubernaut.triggers.SETTLE_SECONDS); otherwise at `due`.
        settle = SETTLE_SECONDS if self.settle is None else self.settle
        evidence = await wait_and_gather(self.request, settle, self.log)
        yield TriggerEvent({"status": "done", "evidence": evidence, "request": self.request})  # type: ignore[no-untyped-call]


async def wait_and_gather(request: Mapping[str, Any], settle: float, log: Any) -> dict[str, Any]:
    """Sleep until the request is due (at least ``settle``), then gather its evidence."""
    await asyncio.sleep(max(settle, float(request["due"]) - time.time()))
    from kubernaut.waits.clients import WaitClients

    clients = WaitClients.in_triggerer(str(request.get("kube_conn_id") or "kubernetes_default"))
    try:
        evidence = await gather(request, clients)
    finally:
        await clients.close()
    log.info("kubernaut: assessment evidence gathered for %s", request.get("target"))
    return evidence


class AssessmentRunTrigger(BaseTrigger):
    """The assessment task's work, in the triggerer (see the module docstring). ``conf``: the
    assessment run's conf, given by a task that deferred from a worker; None when the scheduler
    started the task here (the triggerer hands the trigger the task's run). ``end``: end the
    task here when nothing is left for a worker (the scheduler's start); otherwise every end
    is an event for ``execute_complete``."""

    def __init__(
        self, conf: dict[str, Any] | None = None, end: bool = False, settle: float | None = None
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.conf = conf
        self.end = end
        self.settle = settle

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return RUN_TRIGGER, {"conf": self.conf, "end": self.end, "settle": self.settle}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from kubernaut.assessment.run import (
            AssessmentInputError,
            build_request,
            known_now,
            remediation_of,
            store,
        )

        conf = self.conf if self.conf is not None else run_conf(getattr(self, "task_instance", None))
        if conf is None:
            reason = "the triggerer has no run context for this task: the assessment starts in a worker"
            yield TriggerEvent({"status": START_IN_WORKER, "reason": reason})  # type: ignore[no-untyped-call]
            return
        # Only a task that deferred from a worker can race that worker's end (SETTLE_SECONDS).
        settle = self.settle if self.settle is not None else (0.0 if self.end else SETTLE_SECONDS)
        # The same reads as the task's (the configuration Variable, the history row, the
        # connections): blocking, so in a thread, off the triggerer's event loop.
        try:
            run = await asyncio.to_thread(remediation_of, conf)
        except AssessmentInputError as exc:  # will not get better by retrying
            self.log.error("kubernaut: %s", exc)
            if self.end:
                yield TaskFailedEvent()
            else:
                yield TriggerEvent({"status": FAILED, "error": str(exc)})  # type: ignore[no-untyped-call]
            return
        request = await asyncio.to_thread(build_request, conf, run)
        rem = conf["remediation"]
        self.log.info(
            "kubernaut: assessing remediation run %s of %s (%s)",
            rem["run_id"],
            rem["dag_id"],
            rem.get("template", "?"),
        )
        now = await asyncio.to_thread(known_now, request)
        if now is not None:
            evidence, skip = now
            await asyncio.sleep(settle)
        else:
            self.log.info(
                "kubernaut: assessing in %.0fs (after %.0fs, then a %.0fs window)",
                max(0.0, float(request["due"]) - time.time()),
                request["after"],
                request["window"],
            )
            evidence, skip = await wait_and_gather(request, settle, self.log), ""
        summary, hand_on = await asyncio.to_thread(store, conf, run, request, evidence, skip, self.log)
        if self.end and not hand_on:
            yield TaskSuccessEvent(xcoms={"return_value": summary})
            return
        yield TriggerEvent({"status": STORED, "summary": summary, "hand_on": hand_on})  # type: ignore[no-untyped-call]


def run_conf(task_instance: Any) -> dict[str, Any] | None:
    """The conf of the run of the task this trigger was started for, as the triggerer gives it
    (Airflow builds the task's runtime instance for a task started in the triggerer); None when
    it gives none."""
    get_context = getattr(task_instance, "get_template_context", None)
    if get_context is None:
        return None
    try:
        dag_run = get_context().get("dag_run")
    except Exception:  # no serialized DAG, no run data: the worker will read the run
        return None
    conf = getattr(dag_run, "conf", None)
    return dict(conf) if isinstance(conf, Mapping) else None


async def _attempts(read: Any) -> Any:
    last: Exception | None = None
    for attempt in range(READ_ATTEMPTS):
        try:
            return await read()
        except Exception as exc:  # unreachable, 5xx, a connection not defined ...
            last = exc
            if getattr(exc, "status", None) in (400, 401, 403, 404, 422):
                break  # will not change by asking again
            if attempt + 1 < READ_ATTEMPTS:
                await asyncio.sleep(READ_PAUSE)
    assert last is not None
    raise last


def _error(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


async def gather(request: Mapping[str, Any], clients: Any) -> dict[str, Any]:
    """Every piece of evidence; a part that cannot be read carries its ``error`` instead."""
    am, prom, metrics, health, drift = await asyncio.gather(
        alertmanager_evidence(request, clients),
        prometheus_evidence(request, clients),
        metrics_evidence(request, clients),
        health_evidence(request, clients),
        drift_evidence(request, clients),
    )
    return {
        "alertmanager": am,
        "prometheus": prom,
        "metrics": metrics,
        "health": health,
        "drift": drift,
        "gathered_at": time.time(),
    }


async def alertmanager_evidence(request: Mapping[str, Any], clients: Any) -> dict[str, Any]:
    """Active alerts with all the original alert's labels as matchers (none: resolved)."""
    from kubernaut.services.alertmanager import aalerts, matchers_from

    matchers = matchers_from({k: str(v) for k, v in request["alert_labels"].items()})
    found: dict[str, Any] = {"matchers": [m.to_filter() for m in matchers]}
    conn_id = str(request.get("alertmanager_conn_id") or "alertmanager_default")

    async def read() -> list[dict[str, Any]]:
        return await aalerts(await clients.http(conn_id), matchers)

    try:
        active = await _attempts(read)
    except Exception as exc:
        return {**found, "error": _error(exc)}
    keep = ("labels", "startsAt", "status", "fingerprint")
    return {**found, "active": [{k: a.get(k) for k in keep} for a in active]}


async def _prom_get(clients: Any, conn_id: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    from kubernaut.services.http import ServiceError
    from kubernaut.services.prometheus import rejected_query, response_data

    client = await clients.http(conn_id)
    try:
        body = await client.get_json(path, params=params)
    except ServiceError as exc:
        rejected = rejected_query(exc, client.endpoint.name, params)
        if rejected is None:
            raise
        raise rejected from exc
    return response_data(body, path, client.endpoint.name)


async def prometheus_evidence(request: Mapping[str, Any], clients: Any) -> dict[str, Any]:
    """When ``ALERTS{alertname, target labels, alertstate="firing"}`` existed, from the run's
    end to the end of the window (a range query: the timestamps it was firing at)."""
    from kubernaut.assessment.probes import alerts_selector

    query = alerts_selector({k: str(v) for k, v in request["alert_labels"].items()})
    start, end = float(request["ended"]), float(request["due"])
    step = max(1.0, round((end - start) / MAX_POINTS, 3))
    found: dict[str, Any] = {"query": query, "start": start, "after": float(request["after_at"]), "end": end}
    found["step"] = step
    conn_id = str(request.get("prometheus_conn_id") or "prometheus_default")
    params = {"query": query, "start": start, "end": end, "step": step}

    async def read() -> dict[str, Any]:
        return await _prom_get(clients, conn_id, "/api/v1/query_range", params)

    try:
        data = await _attempts(read)
    except Exception as exc:
        return {**found, "error": _error(exc)}
    firing = sorted(
        {
            float(ts)
            for item in data.get("result") or []
            for ts, value in item.get("values") or []
            if float(value) > 0
        }
    )
    return {**found, "firing": firing}


async def metrics_evidence(request: Mapping[str, Any], clients: Any) -> list[dict[str, Any]]:
    """Each declared PromQL evaluated at the run's start and at the end of the delay."""
    from kubernaut.services.prometheus import instant_samples

    conn_id = str(request.get("prometheus_conn_id") or "prometheus_default")
    rows = []
    for metric in request.get("metrics") or []:
        row: dict[str, Any] = {"query": metric["query"], "better": metric["better"]}
        try:
            for label, at in (
                ("before", request.get("started") or request["ended"]),
                ("after", request["after_at"]),
            ):
                params = {"query": metric["query"], "time": float(at)}

                async def read(params: dict[str, Any] = params) -> dict[str, Any]:
                    return await _prom_get(clients, conn_id, "/api/v1/query", params)

                samples = instant_samples(await _attempts(read), conn_id)
                if len(samples) > 1:
                    raise ValueError(f"returns {len(samples)} series; aggregate it to one (e.g. sum(...))")
                row[label] = samples[0].value if samples else None
        except Exception as exc:
            row["error"] = _error(exc)
        rows.append(row)
    return rows


async def health_evidence(request: Mapping[str, Any], clients: Any) -> dict[str, Any]:
    """The target as fits its kind: a workload rolled out and not crash-looping; a pod Ready
    and not crash-looping (its replacement when the run replaced it); a node Ready."""
    target = request.get("target") or {}
    kind, namespace, name = target.get("kind", ""), target.get("namespace") or None, target.get("name", "")
    found: dict[str, Any] = {"target": f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"}
    if not kind or not name:
        return {**found, "healthy": None, "reason": "the alert names no target"}
    try:
        return {**found, **await _health(clients, kind, namespace, name)}
    except Exception as exc:
        return {**found, "error": _error(exc)}


async def _health(clients: Any, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
    from kubernaut.kube.errors import NotFound
    from kubernaut.kube.pods import guess_replicaset_name, is_ready
    from kubernaut.kube.rollout import _crashing
    from kubernaut.waits.kube import find, list_pods
    from kubernaut.waits.rollout import WORKLOAD_KINDS, workload_status

    if kind in WORKLOAD_KINDS:
        try:
            status, _ = await workload_status(clients, kind, namespace or "default", name)
        except NotFound:
            return {"healthy": False, "reason": "it no longer exists"}
        reason = "" if status["complete"] else f"not rolled out: {status}"
        return {"healthy": bool(status["complete"]), "reason": reason, "status": status}
    if kind == "Node":
        node = await find(clients, "Node", None, name)
        if node is None:
            return {"healthy": False, "reason": "the node no longer exists"}
        ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "Unknown")
        return {
            "healthy": ready == "True",
            "reason": f"Ready={ready}",
            "unschedulable": bool(node.spec.unschedulable),
        }
    if kind == "Pod":
        ns = namespace or "default"
        pod = await find(clients, "Pod", ns, name)
        pods = [pod] if pod is not None and pod.metadata.deletion_timestamp is None else []
        replaced = False
        if not pods:
            owner = guess_replicaset_name(name)
            if owner:
                listed = await list_pods(clients, ns, what=f"pods in {ns}")
                pods = [
                    p
                    for p in listed
                    if p.metadata.deletion_timestamp is None
                    and any(r.name == owner for r in p.metadata.owner_references or [])
                ]
                replaced = True
        if not pods:
            return {"healthy": False, "reason": "the pod is gone and no replacement was found"}
        crashing, not_ready = _crashing(pods), [p.metadata.name for p in pods if not is_ready(p)]
        names = [p.metadata.name for p in pods]
        reason = "; ".join(
            x
            for x in (
                f"crash-looping: {crashing}" if crashing else "",
                f"not Ready: {not_ready}" if not_ready else "",
            )
            if x
        )
        return {
            "healthy": not crashing and not not_ready,
            "reason": reason,
            "pods": names,
            "replaced": replaced,
        }
    return {"healthy": None, "reason": f"no health check for kind {kind}"}


async def drift_evidence(request: Mapping[str, Any], clients: Any) -> list[dict[str, Any]]:
    """Each journaled change read back from the live object."""
    from kubernaut.assessment.probes import normalise, read_path
    from kubernaut.kube.errors import NotFound
    from kubernaut.waits.kube import KINDS, read_dict

    rows = []
    for probe in request.get("probes") or []:
        row = dict(probe)
        if probe["kind"] not in KINDS:
            row["error"] = f"cannot read kind {probe['kind']}"
            rows.append(row)
            continue
        try:
            obj = await read_dict(clients, probe["kind"], probe.get("namespace"), probe["name"])
        except NotFound:
            row["missing"] = True
        except Exception as exc:
            row["error"] = _error(exc)
        else:
            row["live"] = normalise(probe, read_path(obj, probe["path"]))
            row["written"] = normalise(probe, probe.get("written"))
            row["prior"] = normalise(probe, probe.get("prior"))
        rows.append(row)
    return rows
