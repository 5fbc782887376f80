"""`kubernaut simulate` over the shipped scenarios (CI runs every one of them here) and over
test fixtures that do not fix, that roll back cleanly and that do not, and bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kubernaut.cli import main as kubernaut_main
from kubernaut.simulate.cli import main
from tests.conftest import REPO
from tests.simulate.shipped import SHARDS, all_templates, assert_all_pass, shard
from tests.simulate.shipped import simulate as simulate_templates

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED_TEMPLATES = REPO / "templates"


def simulate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def simulate_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = simulate(capsys, *argv, "--json")
    return code, json.loads(out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{s['template']}/{s['scenario']}": s for s in report["scenarios"]}


@pytest.fixture(scope="module")
def shipped() -> tuple[int, dict[str, Any]]:
    """Shard 0 of the shipped library (tests/simulate/shipped.py), once for the module."""
    return simulate_templates(shard(0))


def test_every_shipped_scenario_passes(shipped: tuple[int, dict[str, Any]]) -> None:
    code, report = shipped
    assert_all_pass(code, report, shard(0))
    scenarios = by_name(report)
    # Read-only: checked for changing nothing, never judged FIXED.
    assert scenarios["pod-diagnostics/crashloop-read-only"]["verdict"] == "CHANGED NOTHING"
    # What the steps changed is reported step by step.
    oom = {s["name"]: s for s in scenarios["oom-resource-exhaustion/raise-memory-limit"]["steps"]}
    assert (
        "~ Deployment demo/api spec.template.spec.containers[0].resources.limits.memory: 256Mi -> 512Mi"
        in oom["raise-memory-limit"]["changes"]
    )
    assert oom["assess-pod-state"]["changes"] == []
    rollback = scenarios["oom-resource-exhaustion/fail-after-raise"]
    assert [(i["step"], i["status"]) for i in rollback["rollback"]] == [("raise-memory-limit", "applied")]
    assert rollback["residue"] == []


def test_every_shipped_template_has_scenarios() -> None:
    """The library's rule (issue 11): a template ships only with a scenario where its fault is
    fixed and one where a step fails and the cluster ends as before (docs/simulate.md); the
    three shards (each asserting that of its templates) cover every template exactly once."""
    shards = [shard(i) for i in range(SHARDS)]
    assert sorted(t for s in shards for t in s) == all_templates()
    scenario_dirs = {p.parent.name for p in (REPO / "scenarios").glob("*/*.yaml")}
    assert set(all_templates()) <= scenario_dirs, set(all_templates()) - scenario_dirs


def test_a_template_that_does_not_fix_its_fault_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = simulate(
        capsys, str(FIXTURES / "templates" / "touch-config.yaml"), "--scenario", "crashloop-not-fixed"
    )
    assert code == 1
    assert "~ ConfigMap demo/web-config data.LOG_LEVEL: info -> debug" in out
    assert "fixed: FAIL validate_deployment_ready" in out and "not reached within 2s" in out
    assert "verdict NOT FIXED (expected FIXED)  FAIL" in out
    assert "0/1 scenario(s) passed" in out


def test_fail_at_rolls_back_and_the_cluster_ends_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    # --fail-at on the command line, on a scenario written to be fixed.
    code, report = simulate_json(
        capsys,
        str(FIXTURES / "templates" / "touch-config.yaml"),
        "--scenario",
        "crashloop-not-fixed",
        "--fail-at",
        "note",
    )
    assert code == 0, report
    (s,) = report["scenarios"]
    assert (s["verdict"], s["expected"], s["passed"]) == ("ROLLED BACK CLEANLY", "ROLLED BACK CLEANLY", True)
    steps = {x["name"]: x for x in s["steps"]}
    assert steps["update-config"]["changes"] == ["~ ConfigMap demo/web-config data.LOG_LEVEL: info -> debug"]
    assert steps["note"]["status"] == "failed" and "InjectedFailure" in steps["note"]["detail"]
    assert [(i["step"], i["status"]) for i in s["rollback"]] == [("update-config", "applied")]
    assert s["rollback_changes"] == ["~ ConfigMap demo/web-config data.LOG_LEVEL: debug -> info"]
    assert s["residue"] == []


def test_a_change_left_in_place_is_not_a_clean_rollback(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = simulate(capsys, str(FIXTURES / "templates" / "touch-config-keep.yaml"))
    assert code == 1
    assert "undo update-config (kubernetes/update_configmap): skipped" in out
    assert (
        "differs from before the run:\n         ~ ConfigMap demo/web-config data.LOG_LEVEL: info -> debug"
        in out
    )
    assert "verdict ROLLBACK INCOMPLETE (expected ROLLED BACK CLEANLY)  FAIL" in out


def test_approval_gates_are_auto_approved_or_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    template = str(SHIPPED_TEMPLATES / "node-not-ready.yaml")
    code, out, _ = simulate(capsys, template, "--scenario", "cordon-and-drain")
    assert code == 0, out
    assert "simulate approves every gate automatically" in out
    assert "approve-drain-node: auto-approved (simulate)" in out
    code, report = simulate_json(capsys, template, "--scenario", "cordon-and-drain", "--reject", "drain-node")
    (s,) = report["scenarios"]
    steps = {x["name"]: x["status"] for x in s["steps"]}
    assert steps == {"cordon-node": "success", "drain-node": "rejected", "node-diagnostics": "not_run"}
    # The scenario expects FIXED: rejected, the cordon is undone and the run is not FIXED.
    assert s["verdict"] == "ROLLED BACK CLEANLY" and s["residue"] == [] and code == 1


def test_bad_scenario_files_name_file_line_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    shutil.copy(SHIPPED_TEMPLATES / "pod-diagnostics.yaml", templates)
    scenarios = tmp_path / "scenarios" / "pod-diagnostics"
    scenarios.mkdir(parents=True)
    bad = scenarios / "bad.yaml"
    bad.write_text(
        "seed: demo\n"
        "faults:\n"
        "  - {type: crashlop, namespace: demo, deployment: web}\n"
        "alert: {version: '4', status: firing, alerts: []}\n"
        "expect:\n"
        "  verdit: FIXED\n"
    )
    code, _, err = simulate(capsys, str(templates))
    assert code == 2
    assert f"{bad}:3:12: faults[0].type: unknown fault type 'crashlop'; did you mean 'crashloop'?" in err
    assert f"{bad}:6:3: expect.verdit: unknown field 'verdit'; did you mean 'verdict'?" in err
    # Well-formed, but wrong against the template and the catalogue.
    bad.write_text(
        "seed: demo\n"
        "alert:\n"
        "  version: '4'\n"
        "  status: firing\n"
        "  alerts:\n"
        "    - {status: firing, labels: {alertname: KubePodNotReady, namespace: demo, pod: '${pood}'},\n"
        "       startsAt: '${now}', fingerprint: abc}\n"
        "fail_at: reprot\n"
        "expect:\n"
        "  fixed:\n"
        "    - {action: restart_pod, parameters: {namespace: demo, pod: x}}\n"
    )
    code, report = simulate_json(capsys, str(templates))
    assert code == 2 and report["scenarios"] == []
    errors = "\n".join(report["errors"])
    assert f"{bad}:6:83: alert.alerts[0].labels.pod: ${{pood}} is not bound" in errors
    assert (
        f"{bad}:8:10: fail_at: template pod-diagnostics has no step 'reprot'; did you mean 'report'?"
        in errors
    )
    assert (
        f"{bad}:11:16: expect.fixed[0].action: restart_pod changes the cluster; a check must only read"
        in errors
    )


def test_a_template_without_scenarios_fails_and_bad_names_are_input_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    shutil.copy(SHIPPED_TEMPLATES / "pod-diagnostics.yaml", templates)
    code, out, _ = simulate(capsys, str(templates))
    assert code == 1 and "missing: pod-diagnostics: no scenario in" in out
    code, _, err = simulate(capsys, str(SHIPPED_TEMPLATES / "pod-diagnostics.yaml"), "--scenario", "nope")
    assert code == 2 and "--scenario nope: no such scenario" in err
    code, _, err = simulate(capsys, str(SHIPPED_TEMPLATES / "pod-diagnostics.yaml"), "--fail-at", "nope")
    assert code == 2 and "--fail-at nope: no selected template has that step" in err


def test_registered_as_a_kubernaut_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code = kubernaut_main(["simulate", "no-such-template"])
    _, err = capsys.readouterr()
    assert code == 2 and "no-such-template: no template of that name" in err


# --- notify sink, Prometheus, the rollout faults -------------------------------------------------


def test_notify_steps_post_to_the_sink_and_prometheus_steps_read_the_cluster_through_scrapes(
    shipped: tuple[int, dict[str, Any]],
) -> None:
    scenarios = by_name(shipped[1])
    # notify: the production path (connection, POST) to the simulator's receiver, asserted.
    hpa = scenarios["hpa-diagnostics/replicas-mismatch-notify"]
    (sent,) = hpa["notifications"]
    assert (sent["method"], sent["path"]) == ("POST", "/")
    assert sent["body"]["title"] == "KubeHpaReplicasMismatch on HPA demo/web"
    assert sent["body"]["severity"] == "warning" and sent["body"]["source"] == "kubernaut"
    assert [c["ok"] for c in hpa["notified"]] == [True] and hpa["verdict"] == "CHANGED NOTHING"
    flapping = scenarios["node-readiness-flapping/fail-at-notify"]
    assert flapping["notifications"] and flapping["verdict"] == "ROLLED BACK CLEANLY"
    # Prometheus: the capacity read from kubelet_volume_stats_* (served from the claim's status),
    # and the free-space condition that only holds once the scrape shows the expanded volume.
    pvc = scenarios["pvc-expand/expand-filling-volume"]
    steps = {s["name"]: s for s in pvc["steps"]}
    assert steps["expand"]["changes"] == [
        "~ PersistentVolumeClaim demo/data spec.resources.requests.storage: 10Gi -> 15Gi"
    ]
    assert steps["validate-free-space"]["status"] == "success"
    assert any(line.startswith("prometheus http://127.0.0.1:") for line in pvc["setup"])
    # The rollout faults: a second revision to roll back from.
    image = {s["name"]: s for s in scenarios["image-pull-rollback/rollback-bad-image"]["steps"]}
    assert (
        "~ Deployment demo/web spec.template.spec.containers[0].image: nginx:does-not-exist -> nginx:1.27"
        in image["rollback-deployment"]["changes"]
    )
    stuck = scenarios["deployment-rollout-stuck/rollback-stuck-rollout"]
    assert "fault rollout-stuck on deployment demo/web image=nginx:1.28-typo: showed after" in "\n".join(
        stuck["setup"]
    )


def _copy_scenario(tmp_path: Path, template: str, scenario: str, edit: Any) -> Path:
    """A copy of a shipped template and one of its scenarios, the scenario edited (a dict)."""
    import yaml

    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    shutil.copy(SHIPPED_TEMPLATES / f"{template}.yaml", templates)
    data = yaml.safe_load((REPO / "scenarios" / template / f"{scenario}.yaml").read_text())
    edit(data)
    target = tmp_path / "scenarios" / template
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{scenario}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return templates / f"{template}.yaml"


def test_a_notification_other_than_expected_fails_the_scenario(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["expect"]["notified"][0]["body"]["severity"] = "critical"

    template = _copy_scenario(tmp_path, "hpa-diagnostics", "replicas-mismatch-notify", edit)
    code, report = simulate_json(capsys, str(template))
    (s,) = report["scenarios"]
    assert code == 1 and not s["passed"] and s["verdict"] == "CHANGED NOTHING"
    assert [c["ok"] for c in s["notified"]] == [False]
    assert "0 matching of 1 sent" in s["notified"][0]["detail"]
    assert '"severity": "warning"' in s["notified"][0]["detail"]


def test_a_prometheus_step_reads_the_scraped_series_not_the_cluster(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # maxReplicas served as a constant 7 (the HPA says 3): the template raises 7 by half, to 11.
    def edit(data: dict[str, Any]) -> None:
        series = data["prometheus"]["series"][0]
        assert series["metric"] == "kube_horizontalpodautoscaler_spec_max_replicas"
        del series["from"]
        series["value"] = 7
        data["expect"]["fixed"][0]["within"] = "1s"

    template = _copy_scenario(tmp_path, "hpa-maxed-out", "raise-max-replicas", edit)
    code, report = simulate_json(capsys, str(template))
    (s,) = report["scenarios"]
    steps = {x["name"]: x for x in s["steps"]}
    assert steps["raise-max-replicas"]["changes"] == [
        "~ HorizontalPodAutoscaler demo/web spec.maxReplicas: 3 -> 11"
    ]
    assert code == 1 and s["verdict"] == "NOT FIXED"  # expect.fixed wants 5


def test_without_a_prometheus_binary_a_scenario_that_needs_it_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = _copy_scenario(tmp_path, "pvc-expand", "fail-after-snapshot", lambda data: None)
    monkeypatch.delenv("KUBERNAUT_PROMETHEUS_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, report = simulate_json(capsys, str(template))
    (s,) = report["scenarios"]
    assert code == 1 and s["verdict"] == "", s["problems"]
    problem = s["problems"][0]
    assert problem.startswith(
        "setup: this scenario declares `prometheus:` series: prometheus binary not found"
    )
    assert "apt-get install" in problem


def test_rollout_fault_and_series_fields_are_checked_when_read(tmp_path: Path) -> None:
    from kubernaut.simulate.scenario import load_scenario
    from kubernaut.templates.errors import TemplateLoadError

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "faults:\n"
        "  - {type: image-pull, namespace: demo, daemonset: db}\n"
        "prometheus:\n"
        "  series:\n"
        "    - {metric: up, value: 1, from: {kind: Pod, name: x, field: status.phase}}\n"
        "alert: {version: '4', status: firing, alerts: []}\n"
        "expect:\n"
        "  notified: [{body: {title: x}, cuont: 1}]\n"
    )
    with pytest.raises(TemplateLoadError) as caught:
        load_scenario(bad, "pvc-expand")
    text = "\n".join(str(e) for e in caught.value.errors)
    assert (
        "faults[0]: the image-pull fault rolls out a Deployment or StatefulSet: give `deployment` or "
        "`statefulset` only" in text
    )
    assert "prometheus.series[0]: give exactly one of `value`" in text
    assert "expect.notified[0].cuont: unknown field 'cuont'; did you mean 'count'?" in text
