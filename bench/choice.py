"""Convergence of the learned template choice (kubernaut.intake.choice, docs/choice.md).

Default mode, ``--mode sandbox``: two real templates answer KubePodCrashLooping with the same
matchers and priority: ``pod-crash-recovery`` (templates/, restarts the pod so its ReplicaSet
replaces it) and ``pod-diagnostics`` (templates/, read-only, made to answer the same alert).
Each round is one alert occurrence: the intake's own code picks the template
(``Decider.classify`` + ``Decider.choose``: the Thompson sample seeded by the occurrence, the
figures read by ``template_outcomes`` from a real history in PostgreSQL); the chosen template
runs with the production step runner against a fresh sandbox cluster with the crash-loop fault
of scenarios/pod-crash-recovery/crashloop-restart.yaml (``kubernaut.simulate``); once it (and
any rollback) ended, the assessment's target-health probe (``health_evidence``, scored by
``assessment.components.target_health``) judges the alert's target: healthy = effective. The
run and that assessment are written to the history, which the next round's choice reads.
The alert-gone / recurrence components need Prometheus and Alertmanager watching a real
alert; this bench has neither, so its verdict is the target-health component alone.
Printed: the share of rounds choosing the effective template per window of rounds, and K,
the round from which every later window chose it at least 90 %% of the time.

    .venv/bin/python bench/choice.py [--rounds 40] [--window 10] [--trials 1] [--seed 1]

``--mode table``: two templates answer one alert with the same matchers and the same priority: ``fix-config``
fixes the fault, ``restart-only`` does not (it restarts the pod, which crash-loops again).
Each trial is one history starting empty; alert occurrence k (a new fingerprint each) is
decided by the intake's own code (``Decider.classify`` + ``Decider.choose``: routing, the
history's figures, the Thompson sample seeded by the occurrence), the chosen template's run is
judged effective or not, and that outcome is added to the history the next decision reads.

Where outcomes come from (printed with the results): an effectiveness table, i.e. each run of
a template is effective with its table probability (defaults: fix-config 0.9, restart-only
0.1), drawn from a seeded generator. The runs are NOT executed against the sandbox here.

Beside it, from the same table: the choice before this change (most specific, then by name:
always the same template, right or wrong) and a uniform random choice.

    .venv/bin/python bench/choice.py --mode table [--trials 400] [--runs 30] [--good 0.9] [--bad 0.1]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernaut.config import PolicyConfig
from kubernaut.intake.choice import Outcomes
from kubernaut.intake.decisions import Decider
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.templates import Template

GOOD, BAD = "fix-config", "restart-only"
ALERT = "KubePodCrashLooping"
REPO = Path(__file__).resolve().parents[1]
SANDBOX_GOOD, SANDBOX_BAD = "pod-crash-recovery", "pod-diagnostics"
SCENARIO = REPO / "scenarios" / "pod-crash-recovery" / "crashloop-restart.yaml"


def template(name: str) -> Template:
    return Template.model_validate(
        {
            "name": name,
            "alert_types": [ALERT],
            "matchers": ['namespace!~"kube-system"'],
            "steps": [
                {
                    "name": "look",
                    "action": {
                        "type": "kubernetes",
                        "action": "get_pod_status",
                        "parameters": {"namespace": "{{ alert.namespace }}", "pod": "{{ alert.resource }}"},
                    },
                }
            ],
        }
    )


@dataclass
class Tallies:
    """The history's figures as the intake reads them (``template_outcomes``)."""

    counts: dict[str, list[int]] = field(default_factory=dict)

    def template_outcomes(
        self, alert_name: str, kind: str, templates: list[str], since: datetime
    ) -> list[Outcomes]:
        return [Outcomes(t, "demo", *self.counts[t]) for t in templates if t in self.counts]

    def add(self, name: str, effective: bool) -> None:
        counts = self.counts.setdefault(name, [0, 0])
        counts[0] += int(effective)
        counts[1] += 1


def occurrence(rng: random.Random, k: int) -> Alert:
    starts = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=k)
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": ALERT, "namespace": "demo", "pod": f"web-{rng.randrange(10**6)}"},
            "startsAt": starts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fingerprint": f"{rng.getrandbits(64):016x}",
        }
    )


def simulate(
    trials: int, runs: int, good: float, bad: float, seed: int
) -> tuple[list[float], list[float], float]:
    """Per run index k (1-based): share of trials whose k-th decision chose the effective
    template, and the mean effective rate of the runs up to k; and the decisions per second."""
    router = Router([template(GOOD), template(BAD)])
    chose_good = [0] * runs
    fixed = [0] * runs
    decisions = 0
    started = time.perf_counter()
    for trial in range(trials):
        rng = random.Random(seed * 1_000_003 + trial)
        history = Tallies()
        decider = Decider(router, PolicyConfig(), history=None)
        decider.choice = decider.choice.model_copy(update={"seed": seed})
        for k in range(runs):
            alert = occurrence(rng, k)
            d, route = decider.classify(alert)
            assert route is not None and d.decision == "triggered", d.reason
            route = decider.choose(history, alert, route, d)
            decisions += 1
            effective = rng.random() < (good if route.template.name == GOOD else bad)
            history.add(route.template.name, effective)
            chose_good[k] += route.template.name == GOOD
            fixed[k] += effective
    elapsed = time.perf_counter() - started
    return [c / trials for c in chose_good], [f / trials for f in fixed], decisions / elapsed


# --- sandbox mode: each chosen template really runs against the fault ---------------------------


@dataclass
class Round:
    trial: int
    k: int  # 1-based round of the trial
    template: str
    effective: bool
    reason: str  # the target-health component's reason
    verdict: str  # the simulate run's own verdict (FIXED, CHANGED NOTHING ...)
    seconds: float
    chosen_because: str


def sandbox_templates(bad_priority: int | None = None) -> tuple[Template, Template]:
    """pod-crash-recovery as shipped; pod-diagnostics made to answer the same alert with the
    same matchers and priority (a tie only the measured outcomes can break), or with
    ``bad_priority`` (higher: a prior that favours the template that does not fix)."""
    from kubernaut.templates import load_template

    good = load_template(REPO / "templates" / f"{SANDBOX_GOOD}.yaml")
    diagnostics = load_template(REPO / "templates" / f"{SANDBOX_BAD}.yaml")
    bad = Template.model_validate(
        {
            **diagnostics.model_dump(mode="json", exclude_defaults=True),
            "alert_types": [ALERT],
            "matchers": list(good.matchers),
            "priority": good.priority if bad_priority is None else bad_priority,
        }
    )
    return good, bad


@contextmanager
def history_database() -> Iterator[Any]:
    """A throwaway history database (migrated) on the local PostgreSQL."""
    import psycopg2

    from kubernaut.history import History
    from kubernaut.live_stack import create_database, drop_database

    name = f"kn_bench_choice_{secrets.token_hex(4)}"
    uri = create_database(name)
    history = History(connect=lambda: psycopg2.connect(uri))
    try:
        history.migrate()
        yield history
    finally:
        history.close()
        drop_database(name)


def judge_target(conn_id: str, target: dict[str, str]) -> tuple[bool, str, dict[str, Any]]:
    """The assessment's target-health component on the alert's target, in the sandbox."""
    from kubernaut.assessment.components import target_health
    from kubernaut.simulate.engine import _target_health

    component = target_health(_target_health(conn_id, target))
    return component.score == 1.0, component.reason, component.to_dict()


def sandbox_round(
    history: Any,
    decider: Decider,
    templates: dict[str, Template],
    rng: random.Random,
    trial: int,
    k: int,
    workdir: Path,
) -> Round:
    from kubernaut.simulate.engine import RunOptions, run_scenario
    from kubernaut.simulate.scenario import load_scenario

    alert = occurrence(rng, k)
    d, route = decider.classify(alert)
    assert route is not None and d.decision == "triggered", d.reason
    route = decider.choose(history, alert, route, d)
    template = templates[route.template.name]
    judged: dict[str, Any] = {}

    def after_run(cluster: Any, conn_id: str, target: dict[str, str]) -> None:
        judged["target"] = target
        judged["effective"], judged["reason"], judged["component"] = judge_target(conn_id, target)

    sf = load_scenario(SCENARIO, template.name)
    # The scenario's parameters are pod-crash-recovery's; the other template gets those it declares.
    params = {k: v for k, v in sf.scenario.params.items() if k in template.parameters}
    sf = dataclasses.replace(sf, scenario=sf.scenario.model_copy(update={"params": params}))
    result = run_scenario(template, sf, RunOptions(workdir=workdir, after_run=after_run))
    if "effective" not in judged:
        raise RuntimeError(f"round {k}: {template.name} did not run: {'; '.join(result.problems)}")
    failed = any(step.status == "failed" for step in result.steps)
    status = ("rolled_back" if result.rollback else "failed") if failed else "success"
    target = judged["target"]
    run_id = history.ensure_run(
        template.dag_id,
        f"alert__{alert.fingerprint}__{k:04d}",
        template.name,
        {
            "name": ALERT,
            "fingerprint": alert.fingerprint,
            "kind": target["kind"],
            "namespace": target["namespace"],
            "resource": target["name"],
        },
        False,
    )
    history.finish_run(run_id, status)
    effective = bool(judged["effective"])
    history.record_assessment(
        run_id,
        verdict="effective" if effective else "ineffective",
        score=1.0 if effective else 0.0,
        outcome=status,
        reasons=[judged["reason"]],
        components={"target_health": judged["component"]},
        after_s=0.0,
        window_s=0.0,
    )
    return Round(
        trial, k, template.name, effective, judged["reason"], result.verdict, result.seconds, d.reason
    )


def sandbox_bench(
    rounds: int, trials: int, seed: int, quiet: bool = False, bad_priority: int | None = None
) -> list[Round]:
    good, bad = sandbox_templates(bad_priority)
    router = Router([good, bad])
    templates = {good.name: good, bad.name: bad}
    done: list[Round] = []
    for noisy in ("kubernaut", "kmock", "aiohttp.access", "kubernetes", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # as `kubernaut simulate` does
    for trial in range(trials):
        rng = random.Random(seed * 1_000_003 + trial)
        decider = Decider(router, PolicyConfig(), history=None)
        decider.choice = decider.choice.model_copy(update={"seed": seed + trial})
        with history_database() as history, tempfile.TemporaryDirectory(prefix="bench-choice-") as tmp:
            for k in range(1, rounds + 1):
                r = sandbox_round(history, decider, templates, rng, trial, k, Path(tmp))
                done.append(r)
                if not quiet:
                    mark = "effective" if r.effective else "ineffective"
                    print(
                        f"  trial {trial + 1} round {k:>3}: {r.template:<19} {mark:<11} ({r.reason}; "
                        f"simulate: {r.verdict}, {r.seconds:.1f}s)",
                        flush=True,
                    )
    return done


def windows(done: list[Round], rounds: int, window: int) -> list[tuple[int, int, float]]:
    """(first round, last round, share choosing the effective template) per window, over trials."""
    found = []
    for start in range(1, rounds + 1, window):
        inside = [r for r in done if start <= r.k < start + window]
        if inside:
            share = sum(r.template == SANDBOX_GOOD for r in inside) / len(inside)
            found.append((start, min(start + window - 1, rounds), share))
    return found


def converged_at(done: list[Round], rounds: int, window: int, level: float = 0.9) -> int | None:
    """K: the first round from which every sliding window of ``window`` rounds (all trials)
    chose the effective template at least ``level`` of the time (None: never)."""
    by_round = [[r for r in done if r.k == k] for k in range(1, rounds + 1)]
    ok = []
    for end in range(window, rounds + 1):
        inside = [r for rs in by_round[end - window : end] for r in rs]
        ok.append(sum(r.template == SANDBOX_GOOD for r in inside) / len(inside) >= level)
    for i in range(len(ok)):
        if all(ok[i:]):
            return i + 1  # the window starting at round i + 1
    return None


def sandbox_main(args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"outcomes: sandbox runs (fault: crash-looping pod, {SCENARIO.relative_to(REPO)}); "
        f"{SANDBOX_GOOD} vs {SANDBOX_BAD}, same matchers; {args.trials} trial(s) x "
        f"{args.rounds} rounds; priorities {SANDBOX_GOOD} 50, {SANDBOX_BAD} "
        f"{50 if args.bad_priority is None else args.bad_priority}; chosen by Decider.classify + Decider.choose from a PostgreSQL history; "
        "judged by the assessment's target-health component",
        flush=True,
    )
    started = time.perf_counter()
    done = sandbox_bench(
        args.rounds, args.trials, args.seed, quiet=args.quiet, bad_priority=args.bad_priority
    )
    elapsed = time.perf_counter() - started
    print(f"\n{'rounds':>9}  {'chose ' + SANDBOX_GOOD:>25}  {'effective':>9}")
    for first, last, share in windows(done, args.rounds, args.window):
        inside = [r for r in done if first <= r.k <= last]
        fixed = sum(r.effective for r in inside) / len(inside)
        print(f"{first:>4}-{last:<4}  {share:>25.0%}  {fixed:>9.0%}")
    for name in (SANDBOX_GOOD, SANDBOX_BAD):
        runs = [r for r in done if r.template == name]
        print(
            f"{name}: chosen {len(runs)}/{len(done)}, effective {sum(r.effective for r in runs)}/{len(runs)}"
        )
    k = converged_at(done, args.rounds, args.window)
    print(
        f"choice of {SANDBOX_GOOD} >= 90% in every {args.window}-round window from round K = {k} on"
        if k
        else f"did not reach 90% in every {args.window}-round window"
    )
    print(f"{len(done)} sandbox runs in {elapsed:.0f}s ({elapsed / max(len(done), 1):.1f}s per round)")
    return {
        "rounds": [r.__dict__ for r in done],
        "windows": windows(done, args.rounds, args.window),
        "converged_at": k,
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("sandbox", "table"), default="sandbox")
    parser.add_argument("--rounds", type=int, default=30, help="sandbox: alert occurrences per trial")
    parser.add_argument("--window", type=int, default=10, help="sandbox: rounds per window of the curve")
    parser.add_argument("--quiet", action="store_true", help="sandbox: no line per round")
    parser.add_argument(
        "--bad-priority",
        type=int,
        default=None,
        help="sandbox: pod-diagnostics' priority (default: the same)",
    )
    parser.add_argument("--trials", type=int, default=None, help="sandbox: 1; table: 400")
    parser.add_argument("--runs", type=int, default=30, help="table: alerts per trial")
    parser.add_argument("--good", type=float, default=0.9, help="table: effective rate of fix-config")
    parser.add_argument("--bad", type=float, default=0.1, help="table: effective rate of restart-only")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode == "sandbox":
        args.trials = args.trials or 1
        return sandbox_main(args)
    args.trials = args.trials or 400
    rates, fixed, per_second = simulate(args.trials, args.runs, args.good, args.bad, args.seed)
    # Before: the most specific template, then by name: always the same one, whichever sorts
    # first; its fixed rate is that template's table rate (the other's with the names swapped).
    first = sorted([GOOD, BAD])[0]
    by_name = args.good if first == GOOD else args.bad
    print(
        f"outcomes: effectiveness table (each run effective with probability {GOOD} {args.good}, "
        f"{BAD} {args.bad}; seeded draws, no sandbox runs); {args.trials} trials x {args.runs} alerts; "
        f"decided by Decider.classify + Decider.choose ({per_second:,.0f} decisions/s)"
    )
    print(
        f"baselines (same table): by name, as before, always {first!r}: fixed {by_name:.0%} "
        f"({args.bad if first == GOOD else args.good:.0%} had the names sorted the other way); "
        f"uniform random: fixed {(args.good + args.bad) / 2:.0%}"
    )
    print(f"{'K':>3}  {'chose ' + GOOD:>17}  {'fixed':>6}")
    for k, (rate, fix) in enumerate(zip(rates, fixed, strict=True), start=1):
        print(f"{k:>3}  {rate:>17.1%}  {fix:>6.1%}")
    converged = next((k for k in range(1, len(rates) + 1) if min(rates[k - 1 :]) >= 0.9), None)
    print(f"choice rate >= 90% from K = {converged} on" if converged else "did not reach 90%")
    return {"rates": rates, "fixed": fixed, "converged_at": converged}


if __name__ == "__main__":
    main()
