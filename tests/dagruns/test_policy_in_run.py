"""A policy violation in a real run: the step fails before changing anything, and the
violation (rule, object, detail) is recorded in the step's result in the history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubernaut.history import History
from kubernaut.sandbox import SandboxCluster
from tests.dagruns.test_templates_run import SCENARIOS


def test_replica_bound_refuses_the_scale_and_is_recorded(
    dagbag: Any, cluster: SandboxCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kubernaut.yaml"
    config.write_text("policy: {max_replicas: 2}\n")
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(config))
    conf = SCENARIOS["oom-resource-exhaustion"][0](cluster)
    dr = dagbag.dags["kubernaut_oom_resource_exhaustion"].test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states["scale-out"] == "failed" and str(dr.state) == "failed"
    assert cluster.get("deployments", "demo", "api")["spec"]["replicas"] == 2
    run = History().run(dr.run_id)
    assert run is not None
    step = {s["step"]: s for s in run["steps"]}["scale-out"]
    violation = step["result"]["policy_violation"]
    assert violation["rule"] == "max_replicas"
    assert "max_replicas" in step["error"]
    assert run["undo"] == []  # refused before anything was journaled or changed
