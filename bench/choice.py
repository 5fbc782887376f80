"""Convergence of the learned template choice (kubernaut.intake.choice, docs/choice.md).

Two templates answer one alert with the same matchers and the same priority: ``fix-config``
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

    .venv/bin/python bench/choice.py [--trials 400] [--runs 30] [--good 0.9] [--bad 0.1] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernaut.config import PolicyConfig
from kubernaut.intake.choice import Outcomes
from kubernaut.intake.decisions import Decider
from kubernaut.intake.payload import Alert
from kubernaut.intake.routing import Router
from kubernaut.templates import Template

GOOD, BAD = "fix-config", "restart-only"
ALERT = "KubePodCrashLooping"


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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--good", type=float, default=0.9, help="effective rate of fix-config")
    parser.add_argument("--bad", type=float, default=0.1, help="effective rate of restart-only")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
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
