"""The routing corpus (tests/routing_corpus/) through the real intake decisions.

The figures are a ratchet: raise ROUTED / CAN_FIX when a change routes more alerts to a
template that handles them; never lower them. Must-leave-alone alerts are never triggered.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from kubernaut.intake.cli import route_main
from kubernaut.intake.decisions import Decision
from kubernaut.templates import load_templates
from tests.conftest import REPO

# Measured with bench/routing.py; see docs/routing.md. Raise, never lower.
ROUTED = 133  # actionable alerts routed to their expected template, acting on the expected object
CAN_FIX = 73  # of those, templates that fix or mitigate (not diagnose/notify-only)
MIN_PAYLOADS = 120
CORPUS = REPO / "tests" / "routing_corpus"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_routing", REPO / "bench" / "routing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture(scope="module")
def templates() -> list[Any]:
    report = load_templates(REPO / "templates")
    assert not report.all_errors()
    return list(report.templates)


@pytest.fixture(scope="module")
def cases() -> list[Any]:
    return list(bench.load_corpus(CORPUS))


@pytest.fixture(scope="module")
def results(cases: list[Any], templates: list[Any]) -> list[Any]:
    # The corpus's installation: the node group cluster-wide capacity alerts grow is configured.
    return list(bench.evaluate(cases, templates, bench.load_config()))


def test_corpus_is_large_and_sourced(cases: list[Any]) -> None:
    payloads = {(c.file, c.payload_id) for c in cases}
    assert len(payloads) >= MIN_PAYLOADS
    for path in CORPUS.glob("*.yaml"):
        for entry in yaml.safe_load(path.read_text())["payloads"]:
            source = entry["source"]
            assert source["repo"] and source["file"] and source["group"], f"{path.name}:{entry['id']}"
    outcomes = Counter(c.outcome for c in cases)
    assert outcomes["leave_alone"] >= 40 and outcomes["fix"] >= 40
    kinds = {c.expect["why"] for c in cases if c.outcome == "leave_alone"}
    assert {"Watchdog", "InfoInhibitor", "resolved", "protected namespace", "monitoring component"} <= kinds
    assert sum(c.index == 1 for c in cases) >= 5  # grouped payloads (several alerts per notification)
    assert sum(c.alert.status == "resolved" for c in cases) >= 5


def test_every_expected_template_exists(cases: list[Any], templates: list[Any]) -> None:
    names = {t.name for t in templates}
    wanted = {c.expect["template"] for c in cases if c.expect.get("template")}
    assert wanted - names == set()


def test_must_leave_alone_is_left_alone(results: list[Any]) -> None:
    wrong = [f"{r.case.id}: {r.why}" for r in results if r.case.outcome == "leave_alone" and not r.ok]
    assert wrong == []
    assert sum(r.case.outcome == "leave_alone" for r in results) >= 40


def test_routed_fraction_does_not_fall(results: list[Any]) -> None:
    figures = bench.figures(results)
    misses = "\n".join(f"{r.case.id}: {r.why}" for r in results if not r.ok and r.case.outcome != "none")
    assert figures["routed"] >= ROUTED, misses
    assert figures["can_fix"] >= CAN_FIX, misses


def test_kubernaut_route_explains_a_grouped_payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI operators use gives the same decisions, with the reason, for a real grouped payload."""
    doc = yaml.safe_load((CORPUS / "general-and-monitoring.yaml").read_text())
    entry = next(e for e in doc["payloads"] if e["id"] == "grouped-monitoring-namespace")
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(entry["payload"]))
    monkeypatch.delenv("KUBERNAUT_CONFIG", raising=False)
    out = io.StringIO()
    with redirect_stdout(out):
        code = route_main(["--alerts", str(path), "--templates", str(REPO / "templates"), "--history", "off"])
    assert code == 0
    decisions = json.loads(out.getvalue())
    assert [d["decision"] for d in decisions] == [
        Decision.NO_TEMPLATE,
        Decision.TRIGGERED,
        Decision.NO_TEMPLATE,
    ]
    node = decisions[1]
    assert node["template"] == "node-health-notify"
    assert node["target"] == {"kind": "Node", "namespace": "", "name": "worker-2"}
    assert "no template answers alert 'PrometheusRuleFailures'" in decisions[0]["reason"]
