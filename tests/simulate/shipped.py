"""The shipped library's scenarios, split in three shards (this module's one fixture each in
test_simulate.py, test_library_b.py, test_library_c.py) so the test workers run them side by
side: every template is in exactly one shard."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from kubernaut.simulate.cli import main
from tests.conftest import REPO

SHIPPED_TEMPLATES = REPO / "templates"
SHARDS = 3
# test_simulate.py looks into these templates' scenarios: they run in its shard (0)
DETAILED = frozenset(
    {
        "deployment-rollout-stuck",
        "hpa-diagnostics",
        "image-pull-rollback",
        "node-readiness-flapping",
        "oom-resource-exhaustion",
        "pod-diagnostics",
        "pvc-expand",
    }
)


def all_templates() -> list[str]:
    return sorted(p.stem for p in SHIPPED_TEMPLATES.glob("*.yaml"))


def shard(index: int) -> list[str]:
    """The templates of shard ``index``: the detailed ones in 0, the rest dealt round-robin."""
    rest = [t for t in all_templates() if t not in DETAILED]
    mine = [t for i, t in enumerate(rest) if i % SHARDS == index]
    return sorted([*DETAILED, *mine]) if index == 0 else mine


def simulate(templates: list[str]) -> tuple[int, dict[str, Any]]:
    """`kubernaut simulate templates/<name>.yaml --json` for each, as one merged report."""
    merged: dict[str, Any] = {"scenarios": [], "errors": [], "missing": [], "seconds": 0.0, "ok": True}
    worst = 0
    for name in templates:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([str(SHIPPED_TEMPLATES / f"{name}.yaml"), "--json"])
        report: dict[str, Any] = json.loads(out.getvalue())
        worst = max(worst, code)
        for key in ("scenarios", "errors", "missing"):
            merged[key] += report.get(key) or []
        merged["seconds"] += report["seconds"]
        merged["ok"] = merged["ok"] and bool(report["ok"])
    print(f"\n{len(merged['scenarios'])} shipped scenarios in {merged['seconds']:.1f}s:")
    for s in merged["scenarios"]:
        print(f"  {s['template']}/{s['scenario']}: {s['verdict']} {s['seconds']:.1f}s")
    return worst, merged


def assert_all_pass(code: int, report: dict[str, Any], templates: list[str]) -> None:
    """Every scenario passes, and each template has one where its fault is fixed (or, read-only,
    nothing changed) and one where a step fails and the cluster ends exactly as before."""
    failed = {
        f"{s['template']}/{s['scenario']}": (
            s["verdict"],
            s["problems"],
            [c for c in s["checks"] if not c["ok"]],
        )
        for s in report["scenarios"]
        if not s["passed"]
    }
    assert not failed and not report["errors"] and not report["missing"], (
        failed,
        report["errors"],
        report["missing"],
    )
    assert code == 0 and report["ok"]
    per_template: dict[str, set[str]] = {}
    for s in report["scenarios"]:
        per_template.setdefault(s["template"], set()).add(s["verdict"])
        assert s["seconds"] > 0
    assert set(per_template) == set(templates)
    for name, verdicts in per_template.items():
        assert verdicts & {"FIXED", "CHANGED NOTHING"}, (name, verdicts)
        assert "ROLLED BACK CLEANLY" in verdicts, (name, verdicts)
