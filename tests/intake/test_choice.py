"""The learned template choice: the pure ranking (kubernaut.intake.choice), its convergence
(bench/choice.py with a fixed seed), and the intake deciding over HTTP with the real history
in PostgreSQL, where the figures come from runs and their assessments."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg2
import pytest

from kubernaut.config import parse_config
from kubernaut.intake.choice import Candidate, Outcomes, explain, occurrence_seed, prior, rank, tally
from kubernaut.intake.decisions import Decider
from kubernaut.intake.history_checks import IntakeHistory
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.templates import load_templates
from tests.conftest import REPO
from tests.intake.intake_server import IntakeServer, history_database, intake_server, webhook_alert

STARTS = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TWO = [Candidate("pod-crash-recovery", 1), Candidate("restart-only", 1)]


def chosen(
    candidates: list[Candidate], evidence: list[Outcomes] | None, seeds: range, **kw: Any
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for seed in seeds:
        name = rank(candidates, evidence, seed=seed, **kw)[0].name
        counts[name] = counts.get(name, 0) + 1
    return counts


# -- the pure ranking ---------------------------------------------------------------------------
def test_priority_is_the_prior_mean_and_orders_without_history() -> None:
    assert prior(50) == (1.0, 1.0)  # uniform
    a, b = prior(90)
    assert a / (a + b) == pytest.approx(0.9) and a + b == pytest.approx(2.0)
    assert prior(0)[0] > 0 and prior(100)[1] > 0  # never a degenerate Beta
    ranked = rank([Candidate("b", 1, 40), Candidate("a", 1, 40), Candidate("c", 1, 80)], None)
    assert [r.name for r in ranked] == ["c", "a", "b"]  # priority, then name
    assert all(r.sample is None for r in ranked)


def test_more_specific_templates_always_come_first() -> None:
    evidence = [Outcomes("generic", "demo", 50, 50), Outcomes("narrow", "demo", 0, 50)]
    for seed in range(50):
        ranked = rank([Candidate("generic", 0, 100), Candidate("narrow", 2, 0)], evidence, seed=seed)
        assert [r.name for r in ranked] == ["narrow", "generic"]


def test_the_effective_template_wins_and_a_failing_one_sinks() -> None:
    evidence = [Outcomes("pod-crash-recovery", "demo", 14, 16), Outcomes("restart-only", "demo", 1, 5)]
    counts = chosen(TWO, evidence, range(1000))
    assert counts["pod-crash-recovery"] >= 970, counts
    assert counts.get("restart-only", 0) > 0  # still explored now and then
    # Equal evidence and priority: about half each (the sampling is not biased by name).
    even = [Outcomes("pod-crash-recovery", "demo", 3, 6), Outcomes("restart-only", "demo", 3, 6)]
    assert 400 < chosen(TWO, even, range(1000))["restart-only"] < 600


def test_a_new_template_still_gets_tried() -> None:
    """A template with no runs competes from its priority against a mediocre incumbent."""
    evidence = [Outcomes("restart-only", "demo", 6, 10)]
    new = chosen(TWO, evidence, range(1000))["pod-crash-recovery"]
    assert 250 < new < 700, new
    # With a low priority it is tried less, but still tried.
    low = [Candidate("pod-crash-recovery", 1, 10), Candidate("restart-only", 1)]
    assert 0 < chosen(low, evidence, range(1000)).get("pod-crash-recovery", 0) < new


def test_namespace_figures_only_with_enough_runs_there() -> None:
    rows = [
        Outcomes("a", "prod", 1, 4),  # 4 < 5 runs in prod: the all-namespaces figures count
        Outcomes("a", "dev", 9, 10),
        Outcomes("b", "prod", 5, 5),  # 5 runs in prod: prod's own figures
        Outcomes("b", "dev", 0, 10),
    ]
    assert tally(rows, "prod", 5) == {"a": (10, 14, ""), "b": (5, 5, "prod")}
    assert tally(rows, "prod", 4) == {"a": (1, 4, "prod"), "b": (5, 5, "prod")}
    ranked = rank([Candidate("a", 1), Candidate("b", 1)], rows, namespace="prod", seed=3)
    assert {r.name: r.figures() for r in ranked} == {
        "a": "a: 10/14 effective",
        "b": "b: 5/5 effective in prod",
    }


def test_same_seed_same_ranking_and_the_reason_names_the_figures() -> None:
    evidence = [Outcomes("pod-crash-recovery", "demo", 14, 16), Outcomes("restart-only", "demo", 1, 5)]
    seed = occurrence_seed(0, "0a1b2c3d4e5f6a7b", "2024-05-01T12:00:00Z")
    assert seed == occurrence_seed(0, "0a1b2c3d4e5f6a7b", "2024-05-01T12:00:00Z")
    assert seed != occurrence_seed(1, "0a1b2c3d4e5f6a7b", "2024-05-01T12:00:00Z")
    first, again = rank(TWO, evidence, seed=seed), rank(TWO, evidence, seed=seed)
    assert first == again
    why = explain(first)
    assert "pod-crash-recovery: 14/16 effective" in why and "restart-only: 1/5 effective" in why
    assert why.startswith("chosen by measured effectiveness")


# -- convergence (bench/choice.py) --------------------------------------------------------------
def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_choice", REPO / "bench" / "choice.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_effective_template_is_chosen_at_least_90_percent_after_k_runs() -> None:
    rates, fixed, _ = _bench().simulate(trials=150, runs=20, good=0.9, bad=0.1, seed=1)
    assert 0.35 <= rates[0] <= 0.65  # no evidence yet: a coin toss
    assert min(rates[14:]) >= 0.9, rates  # K = 15 and later
    assert sum(fixed[14:]) / 6 > 0.8


def test_the_sandbox_bench_feeds_real_run_outcomes_back_into_the_choice() -> None:
    """A short run of the default mode: each chosen template really runs against the crash-loop
    fault in a sandbox, the target-health probe judges it, and the next choice reads it back
    from the history. pod-diagnostics' prior (90) is above pod-crash-recovery's (50)."""
    bench = _bench()
    rounds = bench.sandbox_bench(rounds=4, trials=1, seed=1, quiet=True, bad_priority=90)
    assert [r.k for r in rounds] == [1, 2, 3, 4]
    for r in rounds:  # measured in the sandbox: only the restart fixes the crash loop
        assert r.effective == (r.template == bench.SANDBOX_GOOD), r
        assert r.verdict == ("FIXED" if r.effective else "CHANGED NOTHING"), r
    assert "unhealthy" in next(r.reason for r in rounds if not r.effective)
    for before, after in itertools.pairwise(rounds):  # each outcome is evidence next time
        runs = sum(r.template == before.template for r in rounds[: before.k])
        wins = sum(r.effective for r in rounds[: before.k] if r.template == before.template)
        assert f"{before.template}: {wins}/{runs} effective" in after.chosen_because, after.chosen_because
    assert rounds[0].template == bench.SANDBOX_BAD  # the higher prior is tried first (seeded)
    assert rounds[-1].template == bench.SANDBOX_GOOD
    windows = bench.windows(rounds, 4, 2)
    assert [(first, last) for first, last, _ in windows] == [(1, 2), (3, 4)]


# -- through the intake's HTTP path with the real history ---------------------------------------
def probe(name: str, priority: int = 50) -> str:
    return f"""\
name: {name}
description: answers ChoiceProbe; no cooldown
alert_types: [ChoiceProbe]
matchers: ['namespace!~"kube-system"']
priority: {priority}
configuration: {{cooldown: 0s}}
steps:
  - name: look
    action: {{type: kubernetes, action: get_pod_status,
             parameters: {{namespace: "{{{{ alert.namespace }}}}", pod: "{{{{ alert.resource }}}}"}}}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeServer]:
    templates = Path(tmp_path_factory.mktemp("templates"))
    for name in ("pod-crash-recovery", "restart-only"):
        (templates / f"{name}.yaml").write_text(probe(name))
    config = parse_config(
        {"blocking": {"backoff": {"base": "0s"}}, "suppression": {"enabled": False}}, "test"
    )
    with history_database("kn_choice") as uri, intake_server(uri, templates, config) as srv:
        yield srv


def add_runs(
    server: IntakeServer,
    template: str,
    statuses: list[str],
    verdicts: Sequence[str | None] | None = None,
    batch: str = "a",
) -> None:
    """Finished runs of ``template`` for ChoiceProbe on pods of demo (other pods than the
    alert's, so no block applies), as the runs' tasks and assessments record them."""
    history = server.history()
    try:
        for i, status in enumerate(statuses):
            alert = {
                "name": "ChoiceProbe",
                "kind": "Pod",
                "namespace": "demo",
                "resource": f"old-{template}-{i}",
            }
            dag_id = "kubernaut_" + template.replace("-", "_")
            run_id = history.ensure_run(dag_id, f"old__{batch}__{template}__{i}", template, alert, False)
            history.finish_run(run_id, status)
            verdict = (verdicts or [None] * len(statuses))[i]
            if verdict is not None:
                history.record_assessment(
                    run_id,
                    verdict=verdict,
                    score=1.0 if verdict == "effective" else 0.1,
                    outcome=status,
                    reasons=[],
                    components={},
                    after_s=0,
                    window_s=0,
                )
    finally:
        history.close()


def test_the_intake_chooses_the_better_template_and_names_the_figures(server: IntakeServer) -> None:
    # pod-crash-recovery: 14 of 16 effective (12 by assessment, 2 unassessed successes; 2 rolled back).
    add_runs(
        server,
        "pod-crash-recovery",
        ["success"] * 14 + ["rolled_back"] * 2,
        ["effective"] * 12 + [None] * 4,
    )
    # restart-only: every run "succeeded", but the assessments say only 1 of 5 fixed anything.
    add_runs(server, "restart-only", ["success"] * 5, ["effective"] + ["ineffective"] * 4)
    # Fixed fingerprint and start: the Thompson samples of this test are the same on every run.
    alert = webhook_alert("ChoiceProbe", {"namespace": "demo", "pod": "web-1"}, starts_at=STARTS)
    alert["fingerprint"] = "c401ce0000000001"
    d = server.post(alert)["decisions"][0]
    assert d["decision"] == "triggered", d
    assert d["template"] == "pod-crash-recovery" and d["dag_id"] == "kubernaut_pod_crash_recovery"
    assert "pod-crash-recovery: 14/16 effective" in d["reason"], d["reason"]
    assert "restart-only: 1/5 effective" in d["reason"], d["reason"]
    assert server.airflow.run_ids("kubernaut_pod_crash_recovery") == [d["dag_run_id"]]
    [(reason,)] = server.rows(
        "SELECT reason FROM kubernaut_alert_decisions WHERE dag_run_id = %s AND decision = 'triggered'",
        (d["dag_run_id"],),
    )
    assert "14/16 effective" in reason  # the history keeps the figures with the decision

    # `kubernaut route`'s preview (Decider.decide with the history) is reproducible and agrees.
    history = IntakeHistory(connect=lambda: psycopg2.connect(server.history_uri))
    try:
        decider = Decider(
            Router(load_templates(server.service.settings.templates_dir).templates),
            parse_config({}, "t").policy,
            history=history,
        )
        parsed = Alert.model_validate(alert)
        previews = {decider.decide(parsed).template for _ in range(3)}
    finally:
        history.close()
    assert previews == {"pod-crash-recovery"}

    # The figures change (restart-only now looks perfect); a re-delivery of the same occurrence
    # still answers with the run launched for it, never a second run with the other template.
    add_runs(server, "restart-only", ["success"] * 40, ["effective"] * 40, batch="b")
    add_runs(server, "pod-crash-recovery", ["rolled_back"] * 30, batch="b")
    again = server.post(alert)["decisions"][0]
    assert again["decision"] == "duplicate" and again["template"] == "pod-crash-recovery", again
    assert server.airflow.run_ids("kubernaut_restart_only") == []
    # A new occurrence now goes to restart-only, with the new figures named.
    second = webhook_alert("ChoiceProbe", {"namespace": "demo", "pod": "web-2"}, starts_at=STARTS)
    second["fingerprint"] = "c401ce0000000002"
    other = server.post(second)["decisions"][0]
    assert other["template"] == "restart-only" and "restart-only: 41/45 effective" in other["reason"], other
    assert "pod-crash-recovery: 14/46 effective" in other["reason"]
