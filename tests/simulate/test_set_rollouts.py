"""The simulator's ``bad-rollout`` fault (a StatefulSet/DaemonSet rolled out to a pod template
whose pods crash), ``bind`` waiting for a controller's object with a condition, and the routing
check of an alert whose labels hold bound names (``job_name: "${job}"``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubernaut.simulate.cli import main
from tests.conftest import REPO

FIXTURES = Path(__file__).parent / "fixtures"
CRONJOB = REPO / "templates" / "cronjob-failing.yaml"


def simulate_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def test_bad_rollout_leaves_a_statefulset_and_a_daemonset_stuck(capsys: pytest.CaptureFixture[str]) -> None:
    """The fault shows once a pod of the new revision crash-loops; each rollout then stays
    stuck (OrderedReady waits on db-2; the DaemonSet's maxUnavailable is used up), and a
    change elsewhere fixes neither."""
    code, report = simulate_json(
        capsys,
        str(FIXTURES / "templates" / "touch-config.yaml"),
        "--scenarios",
        str(FIXTURES / "set-rollouts"),
    )
    (s,) = report["scenarios"]
    assert code == 0 and s["passed"], (s["problems"], s["checks"])
    assert s["verdict"] == "NOT FIXED"
    setup = "\n".join(s["setup"])
    assert "fault bad-rollout on statefulset demo/db image=postgres:16.4-broken: showed after" in setup
    assert "fault bad-rollout on daemonset demo/log-agent: showed after" in setup
    checks = {c["check"]: c for c in s["checks"]}
    assert [c["ok"] for c in s["checks"]] == [False, False, True, True, True, True], checks
    assert "StatefulSet demo/db: not rolled out" in s["checks"][0]["detail"]
    assert "DaemonSet demo/log-agent: not rolled out" in s["checks"][1]["detail"]


def test_bad_rollout_takes_a_statefulset_or_daemonset_only(tmp_path: Path) -> None:
    from kubernaut.simulate.scenario import load_scenario
    from kubernaut.templates.errors import TemplateLoadError

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "faults:\n"
        "  - {type: bad-rollout, namespace: demo, deployment: web}\n"
        "  - {type: bad-rollout, namespace: demo, daemonset: agent, memory: 1Gi}\n"
        "  - {type: bad-rolout, namespace: demo, daemonset: agent}\n"
        "alert: {version: '4', status: firing, alerts: []}\n"
    )
    with pytest.raises(TemplateLoadError) as caught:
        load_scenario(bad, "statefulset-rollout-stuck")
    text = "\n".join(str(e) for e in caught.value.errors)
    assert "faults[0]: the bad-rollout fault rolls out a StatefulSet or DaemonSet" in text
    assert "faults[1]: the bad-rollout fault takes statefulset/daemonset, image and container only" in text
    assert "faults[2].type: unknown fault type 'bad-rolout'; did you mean 'bad-rollout'?" in text


def test_a_bound_label_is_routed_once_bound(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """cronjob-failing matches job_name=~".+-[0-9]{8,}": an alert with ``job_name: "${job}"``
    loads (the matcher is checked on the bound name, at run time), and a bound name that does
    not match is refused then, as the intake would refuse it."""
    code, report = simulate_json(capsys, str(CRONJOB), "--scenario", "fail-after-suspend")
    (s,) = report["scenarios"]
    assert code == 0 and s["passed"], (report["errors"], s["problems"])
    assert any("-> template cronjob-failing (Job/demo/backup-" in line for line in s["setup"])

    # The same scenario with a Job whose name is not a CronJob's: it loads, and is refused at run time.
    text = (REPO / "scenarios" / "cronjob-failing" / "fail-after-suspend.yaml").read_text()
    text = text.replace('job_name: "${job}"\n        namespace', 'job_name: "${cm}"\n        namespace')
    text = text.replace("bind:\n", "bind:\n  cm: {kind: ConfigMap, namespace: demo}\n")
    assert "${cm}" in text
    scenarios = tmp_path / "scenarios" / "cronjob-failing"
    scenarios.mkdir(parents=True)
    (scenarios / "bare-name.yaml").write_text(text)
    code, report = simulate_json(capsys, str(CRONJOB), "--scenarios", str(tmp_path / "scenarios"))
    assert not report["errors"], report["errors"]
    (s,) = report["scenarios"]
    assert code == 1 and not s["passed"]
    assert any(
        p.startswith("setup: alert KubeJobFailed") and "does not reach template cronjob-failing" in p
        for p in s["problems"]
    ), s["problems"]

    # A literal label that cannot match is still an input error when the file is read.
    (scenarios / "bare-name.yaml").write_text(text.replace('"${cm}"', "etl"))
    code, report = simulate_json(capsys, str(CRONJOB), "--scenarios", str(tmp_path / "scenarios"))
    assert code == 2
    assert any("these labels do not reach template cronjob-failing" in e for e in report["errors"]), report
