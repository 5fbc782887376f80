"""``kubernaut simulate TEMPLATE|DIR [--scenario NAME] [--fail-at STEP] [--reject STEP] [--json]``.

Exit codes: 0 every scenario passed; 1 a scenario failed or a template has no scenario;
2 bad input (a file that does not load, an unknown template, a name that matches nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kubernaut.templates.errors import TemplateError, TemplateLoadError
from kubernaut.templates.model import Template

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
APPROVAL_NOTE = "approval gates: simulate approves every gate automatically (--reject STEP to decline one)"


@dataclass
class Plan:
    runs: list[tuple[Template, Any]] = field(default_factory=list)  # (template, ScenarioFile)
    errors: list[str] = field(default_factory=list)  # bad input: exit 2
    missing: list[str] = field(default_factory=list)  # templates without a scenario: exit 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubernaut simulate",
        description="Run templates' scenarios against a throwaway sandbox cluster, with the step runner "
        "Airflow uses; print what each step changed and a verdict (docs/simulate.md).",
    )
    parser.add_argument(
        "target", help="a template file, a template name (in ./templates), or a directory of templates"
    )
    parser.add_argument(
        "--scenario", action="append", default=[], metavar="NAME", help="only this scenario (repeatable)"
    )
    parser.add_argument(
        "--scenarios",
        type=Path,
        metavar="DIR",
        help="scenario directory (default: scenarios/ beside the templates)",
    )
    parser.add_argument(
        "--fail-at",
        metavar="STEP",
        help="fail this step after its action ran; the cluster must end as before",
    )
    parser.add_argument(
        "--reject",
        action="append",
        default=[],
        metavar="STEP",
        help="answer Reject at this step's approval gate",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the step runner's log too")
    return parser


def _templates(target: str) -> tuple[list[Template], Path, list[str]]:
    """The templates to simulate, the templates directory, and load errors."""
    from kubernaut.paths import templates_dir
    from kubernaut.templates.loader import load_template, load_templates

    path = Path(target)
    if path.is_dir():
        report = load_templates(path)
        errors = [str(e) for e in report.all_errors()] + list(report.registry_problems)
        return report.templates, path, errors
    if path.is_file():
        try:
            return [load_template(path)], path.parent, []
        except TemplateLoadError as exc:
            return [], path.parent, [str(e) for e in exc.errors]
    directory = templates_dir()
    if not directory.is_dir():
        return [], directory, [f"{target}: no such template file or directory (and no {directory}/)"]
    report = load_templates(directory)
    found = [t for t in report.templates if t.name == target]
    if found:
        return found, directory, []
    broken = [str(e) for p, errs in report.errors.items() if p.stem == target for e in errs]
    if broken:
        return [], directory, broken
    from kubernaut.templates.checks import did_you_mean

    names = sorted(t.name for t in report.templates)
    return [], directory, [f"{target}: no template of that name in {directory}{did_you_mean(target, names)}"]


def routes_before_binding(template: Template, labels: dict[str, str], raw_labels: Any) -> bool:
    """Whether the alert's labels reach the template, as far as can be told before the run: a
    label whose value names a bound variable (``job_name: "${job}"``) is known only once the
    fault shows, so the matchers on it are left to the run (which checks the bound alert)."""
    from kubernaut.simulate.scenario import VARIABLE

    deferred = {str(k) for k, v in (raw_labels or {}).items() if isinstance(v, str) and VARIABLE.search(v)}

    def holds(matchers: Any) -> bool:
        return all(m.name in deferred or m.matches(labels) for m in matchers)

    return any(
        "alertname" in deferred or labels.get("alertname") == a.alertname
        for a in template.alert_types
        if holds(a.matchers)
    ) and holds(template.matchers)


def _validate(template: Template, sf: Any, fail_at: str | None, reject: list[str]) -> list[TemplateError]:
    """Cross-checks of a scenario against its template and the action catalogue."""
    from pydantic import ValidationError

    from kubernaut.config import KubernautConfig
    from kubernaut.intake.payload import PayloadError, parse_payload
    from kubernaut.simulate.engine import action_class
    from kubernaut.simulate.scenario import ActionCheck, substitute, variable_places
    from kubernaut.templates.checks import did_you_mean

    scenario = sf.scenario
    names = [s.name for s in template.steps]
    errors: list[TemplateError] = []
    if scenario.template and scenario.template != template.name:
        errors.append(sf.error(("template",), f"names template {scenario.template!r}, not {template.name!r}"))
    for name in scenario.expect.steps:
        if name not in names:
            errors.append(
                sf.error(
                    ("expect", "steps", name),
                    f"template {template.name} has no step {name!r}{did_you_mean(name, names)}",
                )
            )
    if scenario.fail_at and scenario.fail_at not in names:
        errors.append(
            sf.error(
                ("fail_at",),
                f"template {template.name} has no step {scenario.fail_at!r}"
                + did_you_mean(scenario.fail_at, names),
            )
        )
    gated = [s.name for s in template.steps if s.approval == "required"]
    for i, name in enumerate(scenario.reject):
        if name.removeprefix("approve-") not in gated:
            errors.append(
                sf.error(
                    ("reject", i),
                    f"{name!r} is no approval gate of {template.name} "
                    f"(gated steps: {', '.join(gated) or 'none'})",
                )
            )
    try:
        KubernautConfig.model_validate(scenario.config)
    except (ValidationError, ValueError) as exc:
        errors.append(sf.error(("config",), f"not a valid kubernaut configuration: {exc}".splitlines()[0]))
    try:
        template.resolve_params(scenario.params)
    except ValueError as exc:
        errors.append(sf.error(("params",), str(exc)))
    known = {"now", *scenario.bind, *(f"{n}_uid" for n in scenario.bind)}
    raw = sf.positions.data if sf.positions is not None else {}
    for section in ("alert", "params", "expect"):
        for where, var in variable_places(raw.get(section), (section,)):
            if var not in known:
                errors.append(
                    sf.error(
                        where,
                        f"${{{var}}} is not bound (bind: NAME gives ${{NAME}} and ${{NAME_uid}}; ${{now}})",
                    )
                )
    dummy = {"now": "2026-01-01T00:00:00Z", **{n: "x" for n in known - {"now"}}}
    try:
        payload = parse_payload(substitute(scenario.alert, dummy))
        if len(payload.alerts) != 1:
            errors.append(sf.error(("alert", "alerts"), f"give exactly one alert, got {len(payload.alerts)}"))
        else:
            raw_alerts = (
                (raw.get("alert") or {}).get("alerts") if isinstance(raw.get("alert"), dict) else None
            )
            raw_labels = (
                raw_alerts[0].get("labels")
                if isinstance(raw_alerts, list) and raw_alerts and isinstance(raw_alerts[0], dict)
                else None
            )
            if not routes_before_binding(template, dict(payload.alerts[0].labels), raw_labels):
                errors.append(
                    sf.error(
                        ("alert", "alerts", 0, "labels"),
                        f"these labels do not reach template {template.name} (alert_types, matchers)",
                    )
                )
    except PayloadError as exc:
        for problem in exc.problems:
            errors.append(sf.error(("alert",), f"not an Alertmanager webhook payload: {problem}"))
    for i, check in enumerate(scenario.expect.fixed):
        if isinstance(check, ActionCheck):
            try:
                cls = action_class(check)
            except LookupError as exc:
                errors.append(sf.error(("expect", "fixed", i, "action"), str(exc)))
                continue
            if cls.mutating:
                errors.append(
                    sf.error(
                        ("expect", "fixed", i, "action"),
                        f"{check.action} changes the cluster; a check must only read",
                    )
                )
    return sorted(errors, key=lambda e: (e.line, e.column))


def plan(args: argparse.Namespace) -> tuple[Plan, list[Template]]:
    from kubernaut.simulate.scenario import load_scenario, scenario_files

    result = Plan()
    templates, directory, errors = _templates(args.target)
    result.errors += errors
    scenarios_dir: Path = args.scenarios or (directory.parent / "scenarios")
    wanted = set(args.scenario)
    seen: set[str] = set()
    for template in templates:
        files = scenario_files(scenarios_dir / template.name)
        if not files and not wanted:
            result.missing.append(
                f"{template.name}: no scenario in {scenarios_dir / template.name}/ (every template needs one "
                "that fixes its fault and one that fails and rolls back; docs/simulate.md)"
            )
        for path in files:
            if wanted and path.stem not in wanted:
                continue
            seen.add(path.stem)
            try:
                sf = load_scenario(path, template.name)
            except TemplateLoadError as exc:
                result.errors += [str(e) for e in exc.errors]
                continue
            problems = _validate(template, sf, args.fail_at, args.reject)
            if problems:
                result.errors += [str(e) for e in problems]
                continue
            result.runs.append((template, sf))
    for name in sorted(wanted - seen):
        result.errors.append(
            f"--scenario {name}: no such scenario of {', '.join(t.name for t in templates) or 'any template'}"
        )
    if args.fail_at:
        having = [t for t, _ in result.runs if args.fail_at in [s.name for s in t.steps]]
        if not having and result.runs:
            result.errors.append(f"--fail-at {args.fail_at}: no selected template has that step")
        result.runs = [(t, sf) for t, sf in result.runs if args.fail_at in [s.name for s in t.steps]]
    for name in args.reject:
        if not any(
            name.removeprefix("approve-") in [s.name for s in t.steps if s.approval == "required"]
            for t, _ in result.runs
        ):
            result.errors.append(f"--reject {name}: no selected template has that approval gate")
    return result, templates


# --- text output ----------------------------------------------------------------------------------


def _text(result: Any, out: TextIO, verbose: bool) -> None:
    w = out.write
    w(f"== {result.template} / {result.scenario}  ({result.file})\n")
    for line in result.setup:
        w(f"   {line}\n")
    width = max((len(s.name) for s in result.steps), default=0)
    awidth = max((len(s.action) for s in result.steps), default=0)
    for i, step in enumerate(result.steps, 1):
        if step.gate:
            answer = "auto-approved (simulate)" if step.gate == "auto-approved" else "REJECTED (--reject)"
            w(f"   [{i}] approve-{step.name}: {answer}\n")
        tail = ""
        if step.status in ("success", "failed"):
            tail = f"{step.seconds:.1f}s" + (f" ({step.attempts} attempts)" if step.attempts > 1 else "")
            if step.status == "success" and not step.changes:
                tail += "  no change"
        w(
            f"   [{i}] {step.name:<{width}}  {step.action:<{awidth}}  {step.status:<8} {tail}\n".rstrip()
            + "\n"
        )
        if step.detail and step.status != "success":
            w(f"         {step.detail}\n")
        for line in step.changes:
            w(f"         {line}\n")
    if (
        result.rollback
        or result.rollback_changes
        or result.verdict in ("ROLLED BACK CLEANLY", "ROLLBACK INCOMPLETE")
    ):
        w("   rollback (kubernaut.rollback.rollback_run, most recent change first):\n")
        if not result.rollback:
            w("         nothing journaled: no step had changed anything\n")
        for item in result.rollback:
            detail = ""
            if isinstance(item.result, dict) and item.status != "applied":
                detail = ": " + str(item.result.get("reason") or item.result.get("error") or "")
            w(f"         undo {item.step} ({item.action}): {item.status}{detail}\n")
        for line in result.rollback_changes:
            w(f"         {line}\n")
        if result.residue:
            w("   differs from before the run:\n")
            for line in result.residue:
                w(f"         {line}\n")
        elif result.verdict:
            w("   the cluster is as before the run (spec, data, labels, annotations)\n")
    if result.verdict == "CHANGED NOTHING":
        w("   read-only template: the cluster is exactly as before the run\n")
    for c in result.checks:
        w(f"   fixed: {'ok  ' if c.ok else 'FAIL'} {c.check}{'' if c.ok else ': ' + c.detail}\n")
    for c in result.unchanged:
        w(f"   unchanged: {'ok  ' if c.ok else 'FAIL'} {c.check}{'' if c.ok else ': ' + c.detail}\n")
    for sent in result.notifications:
        body = sent["body"] if isinstance(sent["body"], dict) else {}
        shown = (
            ", ".join(f"{k}={body[k]!r}" for k in ("title", "severity") if body.get(k))
            or str(sent["body"])[:120]
        )
        w(f"   notify sink got: {sent['method']} {sent['path']} {shown}\n")
    for c in result.notified:
        w(f"   notified: {'ok  ' if c.ok else 'FAIL'} {c.check}{'' if c.ok else ': ' + c.detail}\n")
    for p in result.problems:
        w(f"   problem: {p}\n")
    if verbose:
        for line in result.log:
            w(f"   | {line}\n")
    status = "PASS" if result.passed else "FAIL"
    w(
        f"   verdict {result.verdict or '(none)'} (expected {result.expected})"
        f"  {status}  {result.seconds:.1f}s\n\n"
    )
    out.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = sys.stdout
    the_plan, _ = plan(args)
    if the_plan.errors:
        if args.json:
            json.dump(
                {"ok": False, "errors": the_plan.errors, "missing": the_plan.missing, "scenarios": []},
                out,
                indent=2,
            )
            out.write("\n")
        else:
            for error in the_plan.errors:
                print(error, file=sys.stderr)
        return EXIT_INPUT
    from kubernaut.simulate.engine import RunOptions, run_scenario

    if not args.json:
        print(APPROVAL_NOTE, file=out)
        if args.fail_at:
            print(f"--fail-at {args.fail_at}: every scenario must end exactly as before the run\n", file=out)
        else:
            print(file=out)
    started = time.monotonic()
    results = []
    from kubernaut.simulate.services import SharedPrometheus

    with _quiet_libraries(), tempfile.TemporaryDirectory(prefix="kubernaut-simulate-") as tmp:
        prometheus = SharedPrometheus(Path(tmp) / "prometheus")  # started by the first scenario needing it
        try:
            for template, sf in the_plan.runs:
                options = RunOptions(
                    fail_at=args.fail_at, reject=list(args.reject), workdir=Path(tmp), prometheus=prometheus
                )
                result = run_scenario(template, sf, options)
                results.append(result)
                if not args.json:
                    _text(result, out, args.verbose)
        finally:
            prometheus.close()
    total = time.monotonic() - started
    passed = sum(r.passed for r in results)
    ok = passed == len(results) and not the_plan.missing
    if args.json:
        json.dump(
            {
                "ok": ok,
                "passed": passed,
                "failed": len(results) - passed,
                "seconds": round(total, 2),
                "missing": the_plan.missing,
                "errors": [],
                "scenarios": [r.to_dict() for r in results],
            },
            out,
            indent=2,
            default=str,
        )
        out.write("\n")
    else:
        for line in the_plan.missing:
            print(f"missing: {line}", file=out)
        per = f", {total / len(results):.1f}s per scenario" if results else ""
        print(f"{passed}/{len(results)} scenario(s) passed in {total:.1f}s{per}", file=out)
    return EXIT_OK if ok else EXIT_FAILED


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """The kubernetes client and the sandbox log every request: keep the report readable
    (levels restored afterwards)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("kmock", "aiohttp.access", "kubernetes", "urllib3", "httpx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


if __name__ == "__main__":
    raise SystemExit(main())
