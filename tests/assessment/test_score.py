"""The scoring is pure: components, score and verdict from evidence as the trigger gathers it."""

from __future__ import annotations

from typing import Any

import pytest

from kubernaut.assessment import assess
from kubernaut.assessment.components import episodes, metric_change, probe_status
from kubernaut.assessment.probes import alerts_selector, drift_probes, read_path, target_labels
from kubernaut.history.store import effectiveness_summary

LABELS = {"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": "web-1", "severity": "warning"}


def evidence(
    *,
    active: int = 0,
    firing: list[float] | None = None,
    healthy: bool | None = True,
    metrics: list[dict[str, Any]] | None = None,
    drift: list[dict[str, Any]] | None = None,
    am_error: str | None = None,
    prom_error: str | None = None,
) -> dict[str, Any]:
    prom: dict[str, Any] = {"start": 0.0, "after": 10.0, "end": 40.0, "step": 1.0, "firing": firing or []}
    if prom_error:
        prom["error"] = prom_error
    am: dict[str, Any] = {"active": [{"labels": LABELS}] * active}
    if am_error:
        am["error"] = am_error
    return {
        "alertmanager": am,
        "prometheus": prom,
        "health": {
            "healthy": healthy,
            "target": "Pod demo/web-1",
            "reason": "" if healthy else "crash-looping",
        },
        "metrics": metrics or [],
        "drift": drift or [],
    }


def test_resolved_alert_healthy_target_is_effective() -> None:
    result = assess(evidence(firing=[0.0, 1.0, 2.0]))  # the original firing, over 2 s after the run
    assert result.verdict == "effective" and result.score == 1.0
    parts = result.to_dict()["components"]
    assert parts["alert_gone"]["score"] == 1.0 and parts["recurrence"]["score"] == 1.0
    assert parts["metrics"]["score"] is None and parts["drift"]["score"] is None  # not counted


def test_alert_still_active_is_ineffective() -> None:
    result = assess(evidence(active=1, firing=[float(t) for t in range(41)], healthy=False))
    assert result.verdict == "ineffective"
    assert result.score is not None and result.score < 0.3
    assert result.reasons[0] == "the alert did not go away"
    assert (
        "still firing in Alertmanager (1 active alert(s))"
        in result.to_dict()["components"]["alert_gone"]["reason"]
    )


def test_refire_in_the_window_counts_against() -> None:
    once = assess(evidence(firing=[0.0, 1.0, 20.0, 21.0, 22.0]))
    assert once.to_dict()["components"]["recurrence"]["reason"] == "fired again once within the window"
    flapping = assess(evidence(firing=[0.0, 15.0, 16.0, 25.0, 30.0]))
    parts = flapping.to_dict()["components"]
    assert parts["recurrence"]["score"] == 0.0 and "flapping" in parts["recurrence"]["reason"]
    assert once.score is not None and flapping.score is not None and flapping.score < once.score < 1.0
    assert flapping.verdict == "ineffective"


def test_firing_at_the_end_of_the_window_is_not_gone() -> None:
    result = assess(evidence(firing=[0.0, 38.0, 39.0, 40.0]))
    assert result.to_dict()["components"]["alert_gone"]["score"] == 0.0
    assert result.verdict == "ineffective"


@pytest.mark.parametrize("which", ["alertmanager", "prometheus"])
def test_unreachable_service_is_unknown_never_a_guess(which: str) -> None:
    gathered = evidence()
    gathered[which]["error"] = "connection refused"
    result = assess(gathered)
    assert result.verdict == "unknown" and result.score is None
    assert "unreachable: connection refused" in result.reasons[0]


def test_reverted_change_scores_zero() -> None:
    probe = {
        "step": "scale",
        "what": "deployment demo/api spec.replicas",
        "written": 4,
        "prior": 2,
        "live": 2,
    }
    result = assess(evidence(drift=[probe]))
    assert result.verdict == "ineffective" and result.score == 0.0
    assert result.reasons == ["reverted: deployment demo/api spec.replicas: reverted"]


def test_metrics_direction() -> None:
    assert metric_change(10.0, 2.0, "lower") == 1.0
    assert metric_change(10.0, 2.0, "higher") == 0.0
    assert metric_change(3.0, 3.0, "lower") == 0.5
    assert metric_change(None, 3.0, "lower") is None
    rows = [
        {"query": "errors", "better": "lower", "before": 5.0, "after": 1.0},
        {"query": "ok", "better": "higher", "before": 5.0, "after": 1.0},
    ]
    part = assess(evidence(metrics=rows)).to_dict()["components"]["metrics"]
    assert part["score"] == 0.5
    assert "errors: 5 -> 1 (better, lower is better)" in part["reason"]
    assert "ok: 5 -> 1 (worse, higher is better)" in part["reason"]


def test_probe_status_and_paths() -> None:
    assert probe_status({"written": 3, "prior": 1, "live": 3}) == "kept"
    assert probe_status({"written": 3, "prior": 1, "live": 1}) == "reverted"
    assert probe_status({"written": 3, "prior": 1, "live": 7}) == "drifted"
    assert probe_status({"missing": True}) == "gone"
    assert probe_status({"error": "403"}) == "unchecked"
    obj = {
        "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"x": 1}}]}}}
    }
    assert read_path(obj, ["spec", "template", "spec", "containers", {"name": "b"}, "resources"]) == {"x": 1}
    assert read_path(obj, ["spec", "nope", "x"]) is None


def test_drift_probes_from_the_journal() -> None:
    scale = "kubernetes/scale_deployment"
    journal = [
        {"step": "scale", "action": scale, "undo_status": "pending",
         "parameters": {"namespace": "demo", "deployment": "api", "replicas": 4},
         "prior_state": {"replicas": 2}},
        {"step": "undone", "action": scale, "undo_status": "done",
         "parameters": {"namespace": "demo", "deployment": "x", "replicas": 4},
         "prior_state": {"replicas": 2}},
        {"step": "restart", "action": "kubernetes/rollout_restart_deployment", "undo_status": "pending",
         "parameters": {"namespace": "demo", "deployment": "web"}, "prior_state": {"restartedAt": None}},
        {"step": "cm", "action": "kubernetes/update_configmap", "undo_status": "pending",
         "parameters": {}, "prior_state": {"data": {}}},
        {"step": "sealed", "action": scale, "undo_status": "pending",
         "parameters": {"namespace": "demo", "deployment": "api", "replicas": 4},
         "prior_state": {"kubernaut_sealed": "gAAAA..."}},
    ]  # fmt: skip
    probes = drift_probes(journal, {"restart": {"restartedAt": "2026-01-01T00:00:00Z"}})
    assert [(p["step"], p["written"], p["prior"]) for p in probes] == [
        ("scale", 4, 2),
        ("restart", "2026-01-01T00:00:00Z", None),
    ]


def test_alerts_selector_escapes_label_values() -> None:
    labels = {**LABELS, "pod": 'evil"} or vector(1) or ALERTS{x="'}
    selector = alerts_selector(labels)
    assert selector.startswith(
        'ALERTS{alertname="KubePodCrashLooping", alertstate="firing", namespace="demo", '
    )
    assert 'pod="evil\\"} or vector(1) or ALERTS{x=\\""' in selector
    assert target_labels(LABELS) == {"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": "web-1"}


def test_episodes() -> None:
    assert episodes([1.0, 2.0, 3.0, 7.0, 8.0], 1.0) == [(1.0, 3.0), (7.0, 8.0)]


def test_effectiveness_summary() -> None:
    def row(verdict: str | None, status: str = "success", score: float | None = None) -> dict[str, Any]:
        return {
            "template": "t",
            "alert": "A",
            "alert_name": "A",
            "status": status,
            "verdict": verdict,
            "score": score,
        }

    rows = [
        row("ineffective", "rolled_back", 0.2),
        row("ineffective", score=0.3),
        row("effective", score=0.9),
        row("effective", score=1.0),
        row("unknown"),
        row(None, "running"),
    ]
    (summary,) = effectiveness_summary(rows)
    assert summary["runs"] == 6 and summary["success_rate"] == 0.8  # 4 of 5 finished
    assert summary["assessed"] == 4 and summary["effective_rate"] == 0.5 and summary["unknown"] == 1
    assert summary["mean_score"] == 0.6 and summary["trend"] == "improving"
    assert summary["recent"] == ["ineffective", "ineffective", "effective", "effective", "unknown"]
