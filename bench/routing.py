"""Routing corpus figures: real alert payloads through the real intake decisions.

Every payload of ``tests/routing_corpus/`` (Alertmanager webhooks built from the public
kube-prometheus / kubernetes-mixin / node-mixin rules and one community OOM rule, with the
labels each rule really keeps when it fires) goes through ``parse_payload`` and
``Decider.classify`` (what the webhook decides before any I/O; ``kubernaut route`` shows the
same decisions) with the templates of ``--templates`` and the configuration of ``--config``
(default ``tests/routing_corpus/config/kubernaut.yaml``: the default policy, plus the node
group a cluster-wide capacity alert grows, which no alert label can name). Printed:

- routed: actionable alerts that reach their expected template and act on the expected object;
- can fix: the part of those whose template fixes (or mitigates) the cause, not only notifies;
- left alone: must-leave-alone alerts (Watchdog, InfoInhibitor, informational, monitoring
  components, protected namespaces, resolved) that trigger nothing;
- every miss, with the decision's reason.

"The object acted on" is the object of the template's first changing step (rendered from the
alert; a step naming ``steps['…'].deployment`` acts on the pod's Deployment, which the corpus
records as ``owner`` since the run reads it from the cluster); for a template that changes
nothing, the decision's target. A step conditioned on an owner the pod does not have (the
Deployment step of a template that also handles StatefulSets) is skipped, as the run skips it.

    .venv/bin/python bench/routing.py [--templates DIR] [--corpus DIR] [--config FILE] [--misses] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubernaut.actions.registry import registry
from kubernaut.alert import NO_TARGET, Target, alert_context, derive_target
from kubernaut.config import KubernautConfig, parse_text
from kubernaut.intake.decisions import AlertDecision, Decider, Decision
from kubernaut.intake.payload import Alert, parse_payload
from kubernaut.intake.routing import Router
from kubernaut.rendering import render_value
from kubernaut.template_params import TemplateParameters
from kubernaut.templates import Template, load_templates

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "routing_corpus"
CONFIG = CORPUS / "config" / "kubernaut.yaml"
OUTCOMES = ("fix", "mitigate", "notify", "none", "leave_alone")
FIXING = frozenset({"fix", "mitigate"})
ROUTED = FIXING | {"notify"}
# Step parameters naming the object a step changes, and its kind.
OBJECT_PARAMS: tuple[tuple[str, str], ...] = (
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("pod", "Pod"),
    ("pvc", "PersistentVolumeClaim"),
    ("hpa", "HorizontalPodAutoscaler"),
    ("node", "Node"),
    ("quota", "ResourceQuota"),
    ("cronjob", "CronJob"),
    ("job", "Job"),
    ("machine_deployment", "MachineDeployment"),
)
# Actions that change the owner of the object their parameter names (suspend_cronjob given a
# Job suspends its CronJob): the corpus's `owner` names it, as the run reads it from the cluster.
OWNER_ACTIONS = {"suspend_cronjob": "CronJob"}
CLUSTER_SCOPED = frozenset({"Node"})


@dataclass(frozen=True)
class Case:
    file: str
    payload_id: str
    index: int
    alert: Alert
    expect: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}:{self.payload_id}[{self.index}]"

    @property
    def outcome(self) -> str:
        return str(self.expect["outcome"])

    @property
    def expected_target(self) -> Target | None:
        t = self.expect.get("target")
        return Target(t["kind"], t.get("namespace", ""), t["name"]) if t else None


@dataclass(frozen=True)
class Result:
    case: Case
    decision: AlertDecision
    acted_on: Target | None
    ok: bool
    why: str


class CorpusError(ValueError):
    pass


def load_corpus(directory: Path = CORPUS) -> list[Case]:
    """Every alert of every payload, with its expectation; errors name the file and payload."""
    cases: list[Case] = []
    for path in sorted(directory.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for entry in doc.get("payloads", []):
            where = f"{path.name}:{entry.get('id', '?')}"
            try:
                payload = parse_payload(entry["payload"])
            except (KeyError, ValueError) as exc:
                raise CorpusError(f"{where}: invalid payload: {exc}") from None
            expects = entry.get("expect") or []
            if len(expects) != len(payload.alerts):
                raise CorpusError(f"{where}: {len(payload.alerts)} alerts but {len(expects)} expectations")
            for i, (alert, expect) in enumerate(zip(payload.alerts, expects, strict=True)):
                if expect.get("outcome") not in OUTCOMES:
                    raise CorpusError(f"{where}: expect[{i}].outcome must be one of {OUTCOMES}")
                if expect["outcome"] in ROUTED and not (expect.get("template") and expect.get("target")):
                    raise CorpusError(f"{where}: expect[{i}] ({expect['outcome']}) needs template and target")
                if expect.get("rule") != alert.alertname:
                    raise CorpusError(
                        f"{where}: expect[{i}].rule {expect.get('rule')!r} is not {alert.alertname!r}"
                    )
                cases.append(Case(path.name, str(entry["id"]), i, alert, expect))
    return cases


def load_config(path: Path | None = CONFIG) -> KubernautConfig:
    """The installation's configuration the corpus is decided with (None: the defaults)."""
    return parse_text(path.read_text(), str(path)) if path is not None else KubernautConfig()


def acted_on(
    template: Template, case: Case, decision: AlertDecision, parameters: TemplateParameters | None = None
) -> Target | None:
    """The object the template's first changing step changes (see the module doc)."""
    configured = (parameters or TemplateParameters()).configured(template.name, decision.cluster)
    context = {
        "alert": alert_context(case.alert.to_conf()),
        "params": {name: p.default for name, p in template.parameters.items()} | configured,
        "steps": {},
    }
    changes = False  # a changing step that the run would skip: then nothing is acted on
    for step in template.steps:
        if not registry.get(step.action.type, step.action.action).mutating:
            continue
        changes = True
        params = step.action.parameters
        kind, expr = "", ""
        if isinstance(params.get("kind"), str) and "name" in params:
            kind, expr = str(render_value(params["kind"], context)), str(params["name"])
        else:
            for key, k in OBJECT_PARAMS:
                if key in params:
                    kind, expr = k, str(params[key])
                    break
        if not kind:
            return None
        namespace = "" if kind in CLUSTER_SCOPED else str(render_value(params.get("namespace", ""), context))
        owner_kind = OWNER_ACTIONS.get(step.action.action)
        if owner_kind and owner_kind != kind:
            owner = case.expect.get("owner") or {}
            return Target(owner_kind, namespace, owner["name"]) if owner.get("kind") == owner_kind else None
        if "steps[" in expr:
            owner = case.expect.get("owner") or {}
            if ".deployment" in expr and owner.get("kind") == "Deployment":
                return Target(kind, namespace, owner["name"])
            if ".owner.name" in expr and owner.get("kind") == kind:
                return Target(kind, namespace, owner["name"])
            continue  # the run finds no such owner: the step is skipped, a later one may act
        return Target(kind, namespace, str(render_value(expr, context)))
    return None if changes else decision.target


def evaluate(
    cases: list[Case], templates: list[Template], config: KubernautConfig | None = None
) -> list[Result]:
    config = config or KubernautConfig()
    decider = Decider(Router(templates), config.policy)
    decider.parameters = TemplateParameters.from_config(config)
    by_name = {t.name: t for t in templates}
    results = []
    for case in cases:
        d, route = decider.classify(case.alert)
        triggered = d.decision is Decision.TRIGGERED
        target = acted_on(by_name[d.template], case, d, decider.parameters) if triggered and route else None
        want, outcome = case.expect.get("template"), case.outcome
        if outcome == "leave_alone":
            ok, why = (
                not triggered,
                f"must be left alone ({case.expect.get('why')}) but routed to {d.template}",
            )
        elif outcome == "none":
            ok = False
            why = f"no template yet: {case.expect.get('why', '')}"
            if triggered:
                why += f" (routed to {d.template} acting on {target})"
        elif not triggered:
            ok, why = False, f"expected {want}; decision {d.decision}: {d.reason}"
        elif d.template != want:
            ok, why = False, f"expected {want}, routed to {d.template}"
        elif target != case.expected_target:
            ok, why = False, f"{want} acts on {target}, expected {case.expected_target}"
        else:
            ok, why = True, ""
        results.append(Result(case, d, target, ok, "" if ok else why))
    return results


def figures(results: list[Result]) -> dict[str, Any]:
    actionable = [r for r in results if r.case.outcome != "leave_alone"]
    alone = [r for r in results if r.case.outcome == "leave_alone"]
    routed = [r for r in actionable if r.ok]
    fixing = [r for r in routed if r.case.outcome in FIXING]
    payloads = {(r.case.file, r.case.payload_id) for r in results}

    def pct(n: int, total: int) -> float:
        return round(100.0 * n / total, 1) if total else 100.0

    named = [r for r in actionable if derive_target(r.case.alert.labels) != NO_TARGET]
    return {
        "payloads": len(payloads),
        "naming_an_object": len(named),
        "routed_naming_an_object_pct": pct(sum(r.ok for r in named), len(named)),
        "alerts": len(results),
        "actionable": len(actionable),
        "routed": len(routed),
        "routed_pct": pct(len(routed), len(actionable)),
        "can_fix": len(fixing),
        "can_fix_pct": pct(len(fixing), len(actionable)),
        "must_leave_alone": len(alone),
        "left_alone": sum(r.ok for r in alone),
        "left_alone_pct": pct(sum(r.ok for r in alone), len(alone)),
        "expected": dict(Counter(r.case.outcome for r in results)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=Path, default=REPO / "templates")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--config", type=Path, default=CONFIG, help="kubernaut configuration (YAML)")
    parser.add_argument("--misses", action="store_true", help="list every miss (default: first 40)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = load_templates(args.templates)
    for error in report.all_errors():
        print(f"template skipped: {error}", file=sys.stderr)
    cases = load_corpus(args.corpus)
    start = time.perf_counter()
    results = evaluate(cases, report.templates, load_config(args.config))
    elapsed = time.perf_counter() - start
    figs = figures(results)
    misses = [r for r in results if not r.ok]
    if args.json:
        rows = [{"case": r.case.id, "alertname": r.case.alert.alertname, "why": r.why} for r in misses]
        print(json.dumps({**figs, "templates": len(report.templates), "misses": rows}, indent=2))
        return 0
    print(
        f"corpus: {figs['payloads']} payloads, {figs['alerts']} alerts; {len(report.templates)} templates "
        f"from {args.templates}; decided in {elapsed * 1000:.1f} ms"
    )
    print(f"expected outcomes: {figs['expected']}")
    print(
        f"routed to the expected template and object: {figs['routed']}/{figs['actionable']} "
        f"actionable = {figs['routed_pct']} %"
    )
    print(
        f"  of which can fix (fix/mitigate, not notify-only): {figs['can_fix']}/{figs['actionable']} "
        f"= {figs['can_fix_pct']} %"
    )
    print(
        f"  among the {figs['naming_an_object']} actionable alerts whose labels name an object: "
        f"{figs['routed_naming_an_object_pct']} % routed (the others are cluster-wide: no object to act on)"
    )
    print(
        f"must-leave-alone left alone: {figs['left_alone']}/{figs['must_leave_alone']} = {figs['left_alone_pct']} %"
    )
    shown = misses if args.misses else misses[:40]
    if shown:
        print(f"misses ({len(misses)}):")
        for r in shown:
            print(f"  {r.case.id} {r.case.alert.alertname}: {r.why}")
        if len(shown) < len(misses):
            print(f"  ... {len(misses) - len(shown)} more (--misses)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
