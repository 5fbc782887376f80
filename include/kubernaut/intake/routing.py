"""Which template answers an alert, and which object the alert is about.

Routing is pure and in-memory: an index by alert name, then the label matchers. When
several templates match, the most specific wins (most matchers, then name), so the
choice never depends on file order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubernaut.templates import Template

# Alerts that only inform (kube-prometheus: `info`; Watchdog/InfoInhibitor: `none`). They are
# left alone unless a template opts in by matching `severity` itself (fail closed).
INFORMATIONAL_SEVERITIES = frozenset({"info", "none"})


def informational(labels: Mapping[str, str]) -> bool:
    return labels.get("severity", "").lower() in INFORMATIONAL_SEVERITIES


def _names_severity(template: Template, labels: Mapping[str, str]) -> bool:
    """True when the template's matchers (or those of the alert type that matched) name `severity`."""
    plain = dict(labels)
    if any(m.name == "severity" for m in template.matchers):
        return True
    return any(
        a.matches(plain) and any(m.name == "severity" for m in a.matchers) for a in template.alert_types
    )


@dataclass(frozen=True)
class Route:
    template: Template
    specificity: int
    reason: str
    # Every template that answers the alert, (specificity, template), most specific first (the
    # chosen one included): kubernaut.intake.choice ranks the equally specific ones.
    alternatives: tuple[tuple[int, Template], ...] = ()

    def tied(self) -> list[Template]:
        """The templates as specific as the chosen one (the learned choice picks among them)."""
        return [t for s, t in self.alternatives if s == self.specificity]


def _specificity(template: Template, labels: Mapping[str, str]) -> int | None:
    """Number of matchers that selected the alert, or None when the template does not match."""
    plain = dict(labels)
    if not all(m.matches(plain) for m in template.matchers):
        return None
    best: int | None = None
    for alert_type in template.alert_types:
        if alert_type.matches(plain):
            best = max(best or 0, len(alert_type.matchers))
    return None if best is None else best + len(template.matchers)


class Router:
    """Templates indexed by the alert names they answer."""

    def __init__(self, templates: Iterable[Template]) -> None:
        self.templates = sorted(templates, key=lambda t: t.name)
        self._by_name: dict[str, list[Template]] = {}
        for template in self.templates:
            for name in dict.fromkeys(a.alertname for a in template.alert_types):
                self._by_name.setdefault(name, []).append(template)

    def route(self, labels: Mapping[str, str]) -> Route | None:
        alertname = labels.get("alertname", "")
        scored = [
            (score, t)
            for t in self._by_name.get(alertname, [])
            if (score := _specificity(t, labels)) is not None
            and (not informational(labels) or _names_severity(t, labels))
        ]
        if not scored:
            return None
        scored.sort(key=lambda st: (-st[0], st[1].name))
        score, chosen = scored[0]
        reason = f"template {chosen.name!r} answers {alertname}"
        if len(scored) > 1:
            others = ", ".join(f"{t.name!r} ({s} matchers)" for s, t in scored[1:])
            reason += f"; chosen as most specific ({score} matchers, then by name) over {others}"
        return Route(chosen, score, reason, tuple(scored))

    def candidates(self, alertname: str) -> list[str]:
        return [t.name for t in self._by_name.get(alertname, [])]

    def template(self, name: str) -> Template | None:
        return next((t for t in self.templates if t.name == name), None)
