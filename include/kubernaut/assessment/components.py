"""The components of an assessment, each a pure function of the evidence gathered for it.

Evidence is plain JSON (it travels in a trigger event), gathered by
``kubernaut.triggers.assessment``; nothing here does I/O. A component's ``score`` is 0..1,
or None when it could not be measured or does not apply (then it does not count).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Better = Literal["lower", "higher"]

# How much each component weighs in the score (renormalised over those measured).
WEIGHTS: dict[str, float] = {
    "alert_gone": 0.35,
    "recurrence": 0.2,
    "target_health": 0.2,
    "metrics": 0.15,
    "drift": 0.1,
}


@dataclass
class Component:
    name: str
    score: float | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _component(name: str, score: float | None, reason: str, evidence: Mapping[str, Any]) -> Component:
    return Component(name, None if score is None else round(score, 4), reason, dict(evidence), WEIGHTS[name])


def episodes(timestamps: Sequence[float], step: float) -> list[tuple[float, float]]:
    """Firing episodes (first, last timestamp) from the timestamps a range query found the
    alert firing at, ``step`` apart: a gap of more than one step starts a new episode."""
    found: list[tuple[float, float]] = []
    for ts in sorted(set(timestamps)):
        if found and ts - found[-1][1] <= step * 1.5:
            found[-1] = (found[-1][0], ts)
        else:
            found.append((ts, ts))
    return found


def alert_gone(alertmanager: Mapping[str, Any], prometheus: Mapping[str, Any]) -> Component:
    """Resolved in Alertmanager at the end (no active alert with the original labels) and not
    firing in Prometheus (``ALERTS``) from the end of the delay to the end of the window; the
    share of that time it fired again counts against it."""
    evidence: dict[str, Any] = {
        "alertmanager_active": len(alertmanager.get("active") or []),
        "alertmanager_matchers": alertmanager.get("matchers"),
        "prometheus_query": prometheus.get("query"),
    }
    if alertmanager.get("error") or prometheus.get("error"):
        errors = [str(e) for e in (alertmanager.get("error"), prometheus.get("error")) if e]
        return _component("alert_gone", None, "cannot tell: " + "; ".join(errors), evidence)
    active = alertmanager.get("active") or []
    if active:
        return _component(
            "alert_gone", 0.0, f"still firing in Alertmanager ({len(active)} active alert(s))", evidence
        )
    start, end, step = (float(prometheus[k]) for k in ("after", "end", "step"))
    firing = [t for t in prometheus.get("firing") or [] if start <= t <= end]
    points = max(1, math.floor((end - start) / step) + 1)
    share = min(1.0, len(set(firing)) / points)
    evidence.update({"firing_points": len(set(firing)), "points": points})
    if firing and max(firing) >= end - step * 1.5:
        return _component("alert_gone", 0.0, "firing in Prometheus at the end of the window", evidence)
    if not firing:
        return _component("alert_gone", 1.0, "resolved, and did not fire again in the window", evidence)
    return _component(
        "alert_gone", 1.0 - share, f"resolved, but fired again for {share:.0%} of the window", evidence
    )


def recurrence(prometheus: Mapping[str, Any]) -> Component:
    """The same alert for the same target firing again after it had stopped, from the run's
    end to the end of the window: once lowers the score, twice or more (flapping) zeroes it."""
    if prometheus.get("error"):
        return _component("recurrence", None, f"cannot tell: {prometheus['error']}", {})
    start, end, step = (float(prometheus[k]) for k in ("start", "end", "step"))
    found = episodes([t for t in prometheus.get("firing") or [] if start <= t <= end], step)
    # An episode going on when the run ended is the original firing, not a recurrence.
    again = [e for e in found if e[0] > start + step * 1.5]
    evidence = {"episodes": [[round(a, 3), round(b, 3)] for a, b in found], "fired_again": len(again)}
    if not again:
        return _component("recurrence", 1.0, "did not fire again", evidence)
    if len(again) == 1:
        return _component("recurrence", 0.3, "fired again once within the window", evidence)
    return _component(
        "recurrence", 0.0, f"flapping: fired again {len(again)} times within the window", evidence
    )


def target_health(health: Mapping[str, Any]) -> Component:
    evidence = {k: v for k, v in health.items() if k != "healthy"}
    if health.get("error"):
        return _component("target_health", None, f"cannot tell: {health['error']}", evidence)
    healthy = health.get("healthy")
    what = health.get("target") or "the target"
    if healthy is None:
        return _component("target_health", None, str(health.get("reason") or "not checked"), evidence)
    if healthy:
        return _component("target_health", 1.0, f"{what} healthy", evidence)
    return _component(
        "target_health", 0.0, f"{what} unhealthy: {health.get('reason', '')}".rstrip(": "), evidence
    )


def metric_change(before: float | None, after: float | None, better: Better) -> float | None:
    """1 when the value moved the better way, 0.5 when it did not move, 0 when it got worse."""
    if before is None or after is None or not (math.isfinite(before) and math.isfinite(after)):
        return None
    if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-12):
        return 0.5
    improved = after < before if better == "lower" else after > before
    return 1.0 if improved else 0.0


def metrics(measured: Sequence[Mapping[str, Any]]) -> Component:
    if not measured:
        return _component("metrics", None, "no metrics declared", {})
    rows, scores, reasons = [], [], []
    for m in measured:
        score = metric_change(m.get("before"), m.get("after"), m.get("better", "lower"))
        rows.append({**dict(m), "score": score})
        query = str(m.get("query", ""))
        if score is None:
            reasons.append(f"{query}: {m.get('error') or 'no value before and after'}")
            continue
        scores.append(score)
        word = {1.0: "better", 0.5: "unchanged", 0.0: "worse"}[score]
        reasons.append(f"{query}: {m['before']:g} -> {m['after']:g} ({word}, {m.get('better')} is better)")
    score = sum(scores) / len(scores) if scores else None
    return _component("metrics", score, "; ".join(reasons), {"metrics": rows})


def drift(probes: Sequence[Mapping[str, Any]]) -> Component:
    """Each change the run made (its undo journal): still as written, changed back to the
    value before the run (``reverted``), changed to something else (``drifted``)."""
    if not probes:
        return _component("drift", None, "no change of this run to check", {})
    rows, reasons = [], []
    for p in probes:
        status = probe_status(p)
        rows.append({**dict(p), "status": status})
        if status != "kept":
            reasons.append(f"{p.get('what', p.get('step'))}: {status}")
    statuses = {r["status"] for r in rows}
    evidence = {"changes": rows}
    if "reverted" in statuses:
        return _component("drift", 0.0, "reverted: " + "; ".join(reasons), evidence)
    if "drifted" in statuses or "gone" in statuses:
        return _component("drift", 0.0, "; ".join(reasons), evidence)
    if statuses <= {"kept"}:
        return _component("drift", 1.0, "every change still in place", evidence)
    checked = statuses & {"kept"}
    return _component("drift", 1.0 if checked else None, "; ".join(reasons), evidence)


def probe_status(probe: Mapping[str, Any]) -> str:
    """``kept`` / ``reverted`` / ``drifted`` / ``gone`` (the object no longer exists) /
    ``unchecked`` (it could not be read)."""
    if probe.get("error"):
        return "unchecked"
    if probe.get("missing"):
        return "gone"
    live, written, prior = probe.get("live"), probe.get("written"), probe.get("prior")
    if live == written:
        return "kept"
    if live == prior:
        return "reverted"
    return "drifted"
