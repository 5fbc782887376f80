"""Which template answers an alert when several do: learned from outcomes, pure (no I/O).

Templates are ranked in tiers of specificity (the number of label matchers that selected the
alert, as ``kubernaut.intake.routing`` counts them): a template written for narrower labels
always comes first. Within a tier, each template has a Beta posterior of "a run of it for this
alert name and target kind is effective":

    Beta(s * p + effective, s * (1 - p) + total - effective)

``p`` is the template's declared ``priority`` / 100 (clamped to 0.01..0.99) and ``s`` the
configured ``prior_strength`` (how many runs the priority is worth). The figures come from the
alert's namespace once the template has ``namespace_runs`` runs there, else from every
namespace. One sample per template (Thompson sampling) orders the tier, with a random
generator seeded by the configured seed and the alert occurrence (fingerprint and start), so
one occurrence is always ranked the same way for the same history (``kubernaut route`` is
reproducible), a new template still gets tried, and one that keeps failing sinks.

Without history at all (``evidence=None``) a tier is ordered by the prior mean, i.e. by
``priority``, then by name: deterministic.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_PRIOR_STRENGTH = 2.0
DEFAULT_NAMESPACE_RUNS = 5


@dataclass(frozen=True)
class Candidate:
    """A template that answers the alert."""

    name: str
    specificity: int
    priority: int = 50


@dataclass(frozen=True)
class Outcomes:
    """Counted runs of ``template`` for the alert name and target kind in ``namespace``: how
    many were effective (assessed ``effective``, or, with no assessment verdict, ended
    ``success``) out of ``total`` judged ones."""

    template: str
    namespace: str
    effective: int
    total: int


@dataclass(frozen=True)
class Ranked:
    name: str
    specificity: int
    priority: int
    effective: int
    total: int
    namespace: str  # "" : the figures are from every namespace
    alpha: float
    beta: float
    sample: float | None  # None: ordered by the prior mean (no history consulted)

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def figures(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        if self.total == 0:
            return f"{self.name}: no measured runs (priority {self.priority})"
        return f"{self.name}: {self.effective}/{self.total} effective{where}"


def prior(priority: int, strength: float = DEFAULT_PRIOR_STRENGTH) -> tuple[float, float]:
    """Beta parameters that a declared priority (0-100) stands for."""
    mean = min(max(priority / 100.0, 0.01), 0.99)
    return strength * mean, strength * (1.0 - mean)


def occurrence_seed(seed: int, fingerprint: str, starts_at: str, salt: str = "") -> int:
    """A stable 64-bit seed for one alert occurrence (``salt`` e.g. for a fallback's ranking)."""
    digest = hashlib.sha256(f"{seed}\0{fingerprint}\0{starts_at}\0{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def tally(
    rows: Iterable[Outcomes], namespace: str, namespace_runs: int = DEFAULT_NAMESPACE_RUNS
) -> dict[str, tuple[int, int, str]]:
    """Per template: (effective, total, namespace the figures are from or "")."""
    everywhere: dict[str, list[int]] = {}
    here: dict[str, list[int]] = {}
    for row in rows:
        for bucket in (everywhere, here) if row.namespace == namespace and namespace else (everywhere,):
            counts = bucket.setdefault(row.template, [0, 0])
            counts[0] += row.effective
            counts[1] += row.total
    out: dict[str, tuple[int, int, str]] = {}
    for name, (effective, total) in everywhere.items():
        local = here.get(name)
        if local is not None and local[1] >= namespace_runs:
            out[name] = (local[0], local[1], namespace)
        else:
            out[name] = (effective, total, "")
    return out


def rank(
    candidates: Sequence[Candidate],
    evidence: Iterable[Outcomes] | None,
    *,
    namespace: str = "",
    seed: int = 0,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    namespace_runs: int = DEFAULT_NAMESPACE_RUNS,
) -> list[Ranked]:
    """``candidates`` best first: by specificity, then (within a tier) by a Thompson sample of
    each posterior (or the prior mean when ``evidence`` is None), then priority, then name."""
    counts = tally(evidence or (), namespace, namespace_runs)
    rng = random.Random(seed)
    ranked: list[Ranked] = []
    for c in sorted(candidates, key=lambda c: c.name):  # draw order fixed: reproducible
        effective, total, where = counts.get(c.name, (0, 0, ""))
        a0, b0 = prior(c.priority, prior_strength)
        alpha, beta = a0 + effective, b0 + (total - effective)
        sample = rng.betavariate(alpha, beta) if evidence is not None else None
        ranked.append(Ranked(c.name, c.specificity, c.priority, effective, total, where, alpha, beta, sample))
    ranked.sort(
        key=lambda r: (
            -r.specificity,
            -(r.sample if r.sample is not None else r.mean),
            -r.priority,
            r.name,
        )
    )
    return ranked


def top_tier(ranked: Sequence[Ranked]) -> list[Ranked]:
    return [r for r in ranked if ranked and r.specificity == ranked[0].specificity]


def explain(ranked: Sequence[Ranked]) -> str:
    """Why the first of ``ranked`` was chosen over the others of its tier, with the figures."""
    tier = top_tier(ranked)
    if len(tier) < 2:
        return ""
    figures = "; ".join(r.figures() for r in tier)
    if tier[0].sample is None:
        return f"chosen by priority ({figures}; no history consulted)"
    samples = ", ".join(f"{r.name} {r.sample:.2f}" for r in tier if r.sample is not None)
    return f"chosen by measured effectiveness ({figures}; Thompson samples {samples})"
