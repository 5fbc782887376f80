"""Templates -> Airflow DAGs: one DAG per template, one task per step.

Nothing here touches the network or the cluster: this runs at DAG-parse time for every
template. A broken template never hides the others: its errors are reported through a
placeholder DAG whose ``validate()`` fails, which Airflow records as an import error (naming
the template file, line and field) of a second entry file that defines no other DAG
(``dags/kubernaut_template_errors.py``, see ``template_errors``).

Parse time counts twice: the DAG processor reparses the entry file every interval in a fresh
process, and every task start parses it again. So a template is compiled once into a plan of
its DAG (kubernaut.dag_plan, plain data) kept in the template cache with the text it came from;
a parse of unchanged templates reads the plans back and builds the DAGs from them, importing
neither the template models nor YAML nor the checks, and the operators import what their tasks
need only when they run. A worker that parses for one task (Airflow's parsing context names its
DAG) reads only that template's plan (bench/parse.py measures all of it).
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from airflow.sdk import DAG, BaseOperator

from kubernaut.dag_plan import DURATIONS, PLAN, DagPlan, plan_of
from kubernaut.dag_plan import assessment_settings as assessment_settings  # where they are defined now
from kubernaut.dag_plan import rollback_spec as rollback_spec
from kubernaut.dag_plan import step_spec as step_spec
from kubernaut.dag_plan import upstream_closure as upstream_closure
from kubernaut.operators import operator_for
from kubernaut.operators.assess import ASSESS_TASK, ASSESSMENT_DAG_ID, KubernautAssessOperator
from kubernaut.operators.rollback import (
    FINALIZE_TASK,
    ROLLBACK_TASK,
    KubernautFinalizeOperator,
    KubernautRollbackOperator,
    rollback_on_failure,
)
from kubernaut.operators.spec import StepSpec
from kubernaut.paths import TEMPLATES_DIR_ENV as TEMPLATES_DIR_ENV  # where it is defined now
from kubernaut.paths import templates_dir
from kubernaut.templates.cache import TemplateCache, default_cache
from kubernaut.templates.names import template_files
from kubernaut.templates.names import template_name as template_name  # where it is defined now

if TYPE_CHECKING:
    from kubernaut.templates.loader import LoadReport
    from kubernaut.templates.model import Template

log = logging.getLogger(__name__)

BROKEN_DAG_ID = "kubernaut_broken_templates"


class TemplateImportError(Exception):
    """Shown in the Airflow UI as the entry file's import error."""


class BrokenTemplatesDag(DAG):
    """Never bagged: exists only so Airflow reports the template errors it carries."""

    def validate(self) -> None:
        raise TemplateImportError(self.doc_md or "broken templates")


def build_dag(template: Template) -> DAG:
    """The DAG of a valid template."""
    return build_plan(plan_of(template), template.source)


def build_plan(plan: DagPlan, source: str | Path | None = None) -> DAG:
    """The DAG of a template's plan (``source``: the template's file, for the DAG's docs).
    Consumes the plan: its dicts become the operators' arguments."""
    where = f"`{source}`" if source else "a template"
    name = plan["name"]
    dag = DAG(
        dag_id=plan["dag_id"],
        description=plan["description"] or None,
        schedule=None,
        catchup=False,
        max_active_runs=plan["max_active_runs"],
        tags=list(plan["tags"]),
        doc_md=(
            f"**{name}** — {plan['description']}\n\nBuilt from {where}. Alerts: "
            + ", ".join(plan["alertnames"])
            + '. The alert goes in `dag_run.conf` as `{"alert": {...}}`.'
        ),
    )
    with dag:
        entry: dict[str, BaseOperator] = {}
        exit_: dict[str, BaseOperator] = {}
        for step in plan["steps"]:
            kwargs = _durations(step["task"])
            kwargs["spec"] = StepSpec(**kwargs["spec"])
            task = operator_for(step["kind"])(
                parameters=plan["parameters"], on_failure_callback=rollback_on_failure, **kwargs
            )
            entry[step["name"]] = exit_[step["name"]] = task
            if step["gate"] is not None:
                from kubernaut.operators.approval import KubernautApprovalOperator

                gate = KubernautApprovalOperator(**_durations(step["gate"]))
                gate >> task
                entry[step["name"]] = gate
            if step["upstream"]:  # one call for all: Airflow's cost is per call as much as per edge
                entry[step["name"]].set_upstream([exit_[up] for up in step["upstream"]])
        # The visible rollback path: after the last steps, whatever their outcome.
        has_downstream = {up for step in plan["steps"] for up in step["upstream"]}
        leaves = [exit_[s["name"]] for s in plan["steps"] if s["name"] not in has_downstream]
        rollback = KubernautRollbackOperator(
            task_id=ROLLBACK_TASK,
            template=name,
            steps=[t.task_id for t in exit_.values()],
            gates=[g.task_id for s, g in entry.items() if g is not exit_[s]],
            trigger_rule="all_done",
            retries=2,
            retry_delay=timedelta(seconds=10),
            doc_md="Undoes every change of this run, most recent first, when any step failed.",
        )
        finalize = KubernautFinalizeOperator(
            task_id=FINALIZE_TASK,
            template=name,
            trigger_rule="all_done",
            retries=2,
            retry_delay=timedelta(seconds=5),
            doc_md="Records the outcome in the history; fails the run when a step failed; "
            f"starts the run's effectiveness assessment (a run of {ASSESSMENT_DAG_ID}).",
            assessment=plan["assessment"],
        )
        leaves >> rollback >> finalize
    return dag


def _durations(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A plan's operator arguments, its durations made ``timedelta`` (in place)."""
    out = kwargs
    for key in DURATIONS:
        if key in out:
            out[key] = timedelta(seconds=out[key])
    return out


def assessment_dag(max_active_runs: int = 1024) -> DAG:
    """The one DAG that assesses every remediation run (operators/assess.py): a run per
    remediation run, created by its ``finalize`` to start when due (``run_after``: it waits
    queued, at no cost); its one task runs in the triggerer (``max_active_runs`` is high: many
    may be due at once). Created unpaused: a paused one would leave every assessment queued."""
    dag = DAG(
        dag_id=ASSESSMENT_DAG_ID,
        description="Did it help? The delayed effectiveness assessment of each remediation run",
        schedule=None,
        catchup=False,
        max_active_runs=max_active_runs,
        max_active_tasks=max_active_runs,
        is_paused_upon_creation=False,
        tags=["kubernaut-assessment"],  # not "kubernaut": that tag lists the remediation DAGs
        doc_md=(
            "One run per remediation run, created by the remediation's `finalize` task (run id "
            "`assess__<dag_id>__<run_id>`; its note and `conf.remediation` name the remediation "
            "run). After the template's `effectiveness.after` + `window` (the run waits queued "
            "until then: its Run After), its task scores, in the triggerer, whether the alert "
            "went away and stayed away, the target's health, the declared metrics and whether the "
            "change was reverted, and stores the assessment with the remediation run in the "
            "history (`kubernaut history show <run>`)."
        ),
    )
    with dag:
        KubernautAssessOperator(
            task_id=ASSESS_TASK,
            retries=1,
            retry_delay=timedelta(seconds=10),
            doc_md="Did it help? See the DAG's documentation.",
        )
    return dag


def broken_templates_dag(report: LoadReport) -> DAG | None:
    if report.ok:
        return None
    lines = [str(error) for errors in report.errors.values() for error in errors]
    parts = [f"{len(report.errors)} template file(s) failed to load:", *lines] if lines else []
    if report.registry_problems:  # skipped action plugins: the other DAGs still load
        parts += [f"{len(report.registry_problems)} action plugin(s) skipped:", *report.registry_problems]
    message = "\n".join(parts)
    return BrokenTemplatesDag(dag_id=BROKEN_DAG_ID, schedule=None, doc_md=message)


Planned = tuple[DagPlan, Path]  # a template's plan and its file


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # an error of that file: the error file reports it


def _plan(path: Path, text: str, cache: TemplateCache | None) -> DagPlan | None:
    """The plan of this text of ``path``: from the cache, else validated and compiled (and
    cached); None when the template is invalid."""
    if cache is not None:
        cached = cache.get(path, text, PLAN, dict)
        if cached is not None:
            return cast("DagPlan", cached)
    from kubernaut.templates.loader import validated

    template = validated(path, text, cache=cache)
    if template is None:
        return None
    plan = plan_of(template)
    if cache is not None:
        cache.put(path, text, PLAN, plan)
    return plan


def _all_plans(directory: Path, cache: TemplateCache | None) -> list[Planned]:
    """The plans of the valid templates, as ``load_templates`` finds them: the first valid
    file with a name keeps it (a later one is the error file's to report)."""
    found: list[Planned] = []
    names: set[str] = set()
    for path in template_files([directory]):
        text = _read(path)
        plan = _plan(path, text, cache) if text is not None else None
        if plan is not None and plan["name"] not in names:
            names.add(plan["name"])
            found.append((plan, path))
    if cache is not None:
        cache.save()
    return found


def _plan_for_dag(directory: Path, dag_id: str, cache: TemplateCache | None) -> Planned | None:
    """The plan of ``dag_id`` from its template's own file alone, when that gives the same
    answer as loading them all: the file named after the template defines it and is valid,
    and no file before it (the first valid file keeps a name) declares that name.
    None otherwise: then the caller reads every template."""
    name = template_name(dag_id)
    if name is None:
        return None
    files = template_files([directory])
    mine = next((i for i, f in enumerate(files) if f.stem == name), None)
    if mine is None:
        return None
    mention = re.compile(rb"(?<![-\w])" + re.escape(name.encode()) + rb"(?![-\w])")
    for earlier in files[:mine]:
        try:
            text = earlier.read_bytes()
        except OSError:
            continue  # unreadable: an error of that file, not a claim on the name
        # Parsed only when the name appears in it at all (templates mention each other).
        if mention.search(text):
            from kubernaut.templates.yaml_lines import declared_name

            if declared_name(text) == name:
                return None
    path = files[mine]
    own = _read(path)
    plan = _plan(path, own, cache) if own is not None else None
    if cache is not None:
        cache.save()
    return (plan, path) if plan is not None and plan["name"] == name else None


def build_dags(
    directory: Path | None = None,
    templates: Iterable[Template] | None = None,
    *,
    dag_id: str | None = None,
    cache: TemplateCache | Literal["default"] | None = "default",
) -> dict[str, DAG]:
    """The DAGs of the valid templates in ``directory``; ``template_errors`` reports the others.

    ``cache``: where validated templates and their plans are kept between parses
    (templates/cache.py; by default ``$AIRFLOW_HOME/kubernaut-template-cache``,
    ``KUBERNAUT_TEMPLATE_CACHE=off`` disables it); None: validate every file.

    With ``dag_id`` (Airflow's parsing context when a worker parses for one task) only that
    DAG is built, from its template's file alone when it can be, and a broken template of that
    name raises ``TemplateImportError`` naming its errors, for the task's log.
    """
    with _gc_paused():
        if templates is not None:
            return {t.dag_id: build_dag(t) for t in templates if dag_id is None or t.dag_id == dag_id}
        directory = directory or templates_dir()
        store = default_cache() if cache == "default" else cache
        one = _plan_for_dag(directory, dag_id, store) if dag_id else None
        plans = [one] if one is not None else _all_plans(directory, store)
        if dag_id:
            plans = [p for p in plans if p[0]["dag_id"] == dag_id]
            if not plans:
                _raise_if_broken(directory, dag_id, store)
        # Each plan dropped once its DAG is built, and the cache before: a smaller heap (fewer
        # page faults) for the DAG processor's parse of a thousand templates.
        del store
        plans.reverse()
        dags: dict[str, DAG] = {}
        while plans:
            plan, path = plans.pop()
            dags[plan["dag_id"]] = build_plan(plan, path)
        return dags


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the DAGs are built: they are all kept, so the
    collector's passes over the growing heap (a third of the build's time at 1000 templates)
    find nothing to free. Reference counting still frees what is dropped."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _raise_if_broken(directory: Path, dag_id: str, cache: TemplateCache | None) -> None:
    """The asked-for DAG does not exist: if its template's file failed to load, say why."""
    from kubernaut.templates.loader import load_templates

    report = load_templates(directory, cache=cache, check_plugins=False)
    name = template_name(dag_id)
    errors = [str(e) for path, found in report.errors.items() if path.stem == name for e in found]
    if errors:
        raise TemplateImportError(f"DAG {dag_id}: template {name!r} failed to load:\n" + "\n".join(errors))
    log.warning("kubernaut: no template gives the DAG %s", dag_id)


def template_errors(directory: Path | None = None) -> dict[str, DAG]:
    """The error carrier (empty when every template loads), for an entry file of its own.

    Airflow 3 marks every DAG of a file that has an import error stale, and the API refuses
    to trigger them; so the errors must come from a file that defines no remediation DAG.
    """
    from kubernaut.templates.loader import load_templates

    broken = broken_templates_dag(load_templates(directory or templates_dir(), cache=default_cache()))
    return {} if broken is None else {BROKEN_DAG_ID: broken}
