"""The history as Prometheus metrics (text exposition format 0.0.4), read at each scrape.

Counters are counts of history rows: they only grow while the history is kept (a prune of
old rows reads to Prometheus as a counter reset, which ``rate()``/``increase()`` handle).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kubernaut.ui.queries import (
    DECISIONS,
    OUTCOMES,
    RUN_BUCKETS,
    STEP_BUCKETS,
    UNDO_STATUSES,
    VERDICTS,
    Metrics,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> (type, help); the Grafana dashboard uses exactly these series.
SERIES: dict[str, tuple[str, str]] = {
    "kubernaut_remediations_total": ("counter", "Remediation runs by template and outcome (status)."),
    "kubernaut_decisions_total": ("counter", "Alert decisions of the intake by kind."),
    "kubernaut_rollback_steps_total": (
        "counter",
        "Undo journal entries by undo status (applied = rolled back).",
    ),
    "kubernaut_assessments_total": ("counter", "Effectiveness assessments by verdict."),
    "kubernaut_blocked_targets": ("gauge", "Alert/target pairs the intake currently answers blocked."),
    "kubernaut_unblocks_total": ("counter", "Blocks cleared by a person."),
    "kubernaut_step_duration_seconds": ("histogram", "Duration of finished remediation steps by action."),
    "kubernaut_run_duration_seconds": ("histogram", "Duration of finished remediation runs by template."),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs)
    return f"{{{inner}}}" if inner else ""


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _head(name: str) -> list[str]:
    kind, text = SERIES[name]
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def _counts(name: str, label: str, rows: Sequence[tuple[str, int]], always: Sequence[str]) -> list[str]:
    """One sample per value; the known values appear with 0 so that every series exists."""
    seen = dict(rows)
    for value in always:
        seen.setdefault(value, 0)
    return _head(name) + [f"{name}{_labels([(label, k)])} {n}" for k, n in sorted(seen.items())]


def _histogram(name: str, label: str, rows: Sequence[dict[str, Any]], buckets: Sequence[float]) -> list[str]:
    lines = _head(name)
    for row in rows:
        base = [(label, str(row["label"]))]
        for i, bound in enumerate(buckets):
            lines.append(f"{name}_bucket{_labels([*base, ('le', _number(bound))])} {int(row[f'le_{i}'])}")
        lines.append(f"{name}_bucket{_labels([*base, ('le', '+Inf')])} {int(row['count'])}")
        lines.append(f"{name}_sum{_labels(base)} {_number(row['sum'])}")
        lines.append(f"{name}_count{_labels(base)} {int(row['count'])}")
    return lines


def exposition(m: Metrics) -> str:
    lines = _head("kubernaut_remediations_total")
    templates = sorted({t for t, _, _ in m.remediations})
    counted = {(t, o): n for t, o, n in m.remediations}
    for template in templates:
        # Every outcome of a template that ran is a series (0 until it happens), for the dashboard.
        for outcome in sorted({*OUTCOMES, *(o for t, o in counted if t == template)}):
            n = counted.get((template, outcome), 0)
            lines.append(
                f"kubernaut_remediations_total{_labels([('template', template), ('outcome', outcome)])} {n}"
            )
    lines += _counts("kubernaut_decisions_total", "decision", m.decisions, DECISIONS)
    lines += _counts("kubernaut_rollback_steps_total", "status", m.undo, UNDO_STATUSES)
    lines += _counts("kubernaut_assessments_total", "verdict", m.verdicts, VERDICTS)
    lines += [*_head("kubernaut_blocked_targets"), f"kubernaut_blocked_targets {m.blocked_targets}"]
    lines += [*_head("kubernaut_unblocks_total"), f"kubernaut_unblocks_total {m.unblocks}"]
    lines += _histogram("kubernaut_step_duration_seconds", "action", m.step_durations, STEP_BUCKETS)
    lines += _histogram("kubernaut_run_duration_seconds", "template", m.run_durations, RUN_BUCKETS)
    return "\n".join(lines) + "\n"
