"""Score and verdict from the components: pure, so it is tested without any service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kubernaut.assessment.components import (
    Component,
    alert_gone,
    drift,
    metrics,
    recurrence,
    target_health,
)

Verdict = Literal["effective", "ineffective", "unknown"]
VERDICTS: tuple[Verdict, ...] = ("effective", "ineffective", "unknown")
DEFAULT_THRESHOLD = 0.7


@dataclass
class Assessment:
    verdict: Verdict
    score: float | None
    reasons: list[str]
    components: list[Component] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "score": self.score,
            "reasons": list(self.reasons),
            "components": {c.name: c.to_dict() for c in self.components},
        }


def components_of(evidence: Mapping[str, Any]) -> list[Component]:
    """Every component from the evidence the trigger gathered (see its ``gather``)."""
    am = evidence.get("alertmanager") or {}
    prom = evidence.get("prometheus") or {}
    return [
        alert_gone(am, prom),
        recurrence(prom),
        target_health(evidence.get("health") or {}),
        metrics(evidence.get("metrics") or []),
        drift(evidence.get("drift") or []),
    ]


def unreachable(evidence: Mapping[str, Any]) -> list[str]:
    """Why the alert's state cannot be known: Prometheus or Alertmanager could not be asked."""
    found = []
    for service in ("alertmanager", "prometheus"):
        error = (evidence.get(service) or {}).get("error")
        if error:
            found.append(f"{service} unreachable: {error}")
    return found


def score(components: list[Component]) -> float | None:
    measured = [c for c in components if c.score is not None and c.weight > 0]
    total = sum(c.weight for c in measured)
    if not total:
        return None
    return round(sum(c.weight * (c.score or 0.0) for c in measured) / total, 4)


def assess(evidence: Mapping[str, Any], *, threshold: float = DEFAULT_THRESHOLD) -> Assessment:
    """The verdict: ``unknown`` when Prometheus or Alertmanager could not be reached (never a
    guess); ``ineffective`` with score 0 when a change of the run was reverted by someone
    else; otherwise ``effective`` when the alert is gone and the score reaches ``threshold``."""
    components = components_of(evidence)
    by_name = {c.name: c for c in components}
    problems = unreachable(evidence)
    if problems:
        return Assessment("unknown", None, problems, components)
    if by_name["drift"].score == 0.0 and by_name["drift"].reason.startswith("reverted"):
        return Assessment("ineffective", 0.0, [by_name["drift"].reason], components)
    total = score(components)
    reasons = [f"{c.name}: {c.reason}" for c in components if c.score is not None and c.score < 1.0]
    gone = by_name["alert_gone"].score
    if total is None or gone is None:
        return Assessment("unknown", total, ["the alert's state could not be measured", *reasons], components)
    if gone > 0.0 and total >= threshold:
        return Assessment("effective", total, reasons or ["alert resolved and stayed resolved"], components)
    if gone == 0.0:
        reasons.insert(0, "the alert did not go away")
    return Assessment("ineffective", total, reasons, components)
