"""Templates -> Airflow DAGs: one DAG per template, one task per step.

Nothing here touches the network or the cluster: this runs at DAG-parse time for every
template. A broken template never hides the others: its errors are reported through a
placeholder DAG whose ``validate()`` fails, which Airflow records as an import error (naming
the template file, line and field) of a second entry file that defines no other DAG
(``dags/kubernaut_template_errors.py``, see ``template_errors``).

Parse time counts twice: the DAG processor reparses the entry file every interval in a fresh
process, and every task start parses it again. So a worker that parses for one task (Airflow's
parsing context names its DAG) loads only that template (and the action modules it uses), and
nothing here loads the kubernetes client: the actions import it when a task runs.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from airflow.sdk import DAG, BaseOperator

from kubernaut.operators import operator_for
from kubernaut.operators.approval import KubernautApprovalOperator
from kubernaut.operators.assess import ASSESS_TASK, ASSESSMENT_DAG_ID, KubernautAssessOperator
from kubernaut.operators.rollback import (
    FINALIZE_TASK,
    ROLLBACK_TASK,
    KubernautFinalizeOperator,
    KubernautRollbackOperator,
    rollback_on_failure,
)
from kubernaut.operators.runner import StepSpec
from kubernaut.paths import TEMPLATES_DIR_ENV as TEMPLATES_DIR_ENV  # where it is defined now
from kubernaut.paths import templates_dir
from kubernaut.templates.cache import TemplateCache, default_cache
from kubernaut.templates.errors import TemplateLoadError
from kubernaut.templates.loader import (
    LoadReport,
    declared_name,
    load_template,
    load_templates,
    template_files,
)
from kubernaut.templates.model import DAG_ID_PREFIX, NAME_PATTERN, Rollback, Step, Template

log = logging.getLogger(__name__)

BROKEN_DAG_ID = "kubernaut_broken_templates"
NONE_FAILED = "none_failed"  # a step skipped by its condition must not skip its dependents


class TemplateImportError(Exception):
    """Shown in the Airflow UI as the entry file's import error."""


class BrokenTemplatesDag(DAG):
    """Never bagged: exists only so Airflow reports the template errors it carries."""

    def validate(self) -> None:
        raise TemplateImportError(self.doc_md or "broken templates")


def upstream_closure(deps: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every step a step transitively depends on, in step order (what it may read)."""
    order = list(deps)
    closure: dict[str, set[str]] = {}
    for name in order:  # effective_dependencies only points backwards in the list
        seen: set[str] = set()
        for up in deps[name]:
            seen |= {up, *closure.get(up, set())}
        closure[name] = seen
    return {name: [s for s in order if s in closure[name]] for name in order}


def rollback_spec(step: Step) -> dict[str, Any]:
    """How this step is undone, recorded with its result: own undo, an action, or none."""
    if step.rollback == "none":
        return {"mode": "none"}
    if isinstance(step.rollback, Rollback):
        return {"mode": "action", **step.rollback.model_dump(exclude_none=True)}
    return {"mode": "undo"}


def step_spec(template: Template, step: Step, *, dry_run: bool, kube_conn_id: str) -> StepSpec:
    """What the step runner is given for one step of a template (an Airflow task or a simulated step)."""
    return StepSpec(
        template=template.name,
        name=step.name,
        action_type=step.action.type,
        action_name=step.action.action,
        parameters=dict(step.action.parameters),
        conditions=list(step.conditions),
        rollback=rollback_spec(step),
        dry_run=dry_run,
        kube_conn_id=kube_conn_id,
    )


def _step_task(template: Template, step: Step, upstream: list[str], has_upstream: bool) -> BaseOperator:
    config = template.configuration
    spec = step_spec(template, step, dry_run=config.dry_run, kube_conn_id=config.kubernetes_conn_id)
    kwargs: dict[str, Any] = {
        "task_id": step.name,
        "spec": spec,
        "resolve_params": template.resolve_params,
        "upstream_steps": upstream,
        "execution_timeout": step.timeout_for(config),
        "retries": step.retries_for(config),
        "retry_delay": step.retry_delay_for(config),
        "max_retry_delay": step.max_retry_delay_for(config),
        "doc_md": step.description or None,
    }
    if step.retry_exponential_backoff_for(config):
        kwargs["retry_exponential_backoff"] = 2.0
    if has_upstream:
        kwargs["trigger_rule"] = NONE_FAILED
    return operator_for(step.action.type)(on_failure_callback=rollback_on_failure, **kwargs)


def build_dag(template: Template) -> DAG:
    config = template.configuration
    source = f"`{template.source}`" if template.source else "a template"
    dag = DAG(
        dag_id=template.dag_id,
        description=template.description or None,
        schedule=None,
        catchup=False,
        max_active_runs=config.max_active_runs,
        tags=["kubernaut", f"template:{template.name}", *template.tags],
        doc_md=(
            f"**{template.name}** — {template.description}\n\nBuilt from {source}. Alerts: "
            + ", ".join(a.alertname for a in template.alert_types)
            + '. The alert goes in `dag_run.conf` as `{"alert": {...}}`.'
        ),
    )
    deps = template.effective_dependencies()
    closure = upstream_closure(deps)
    with dag:
        entry: dict[str, BaseOperator] = {}
        exit_: dict[str, BaseOperator] = {}
        for step in template.steps:
            task = _step_task(template, step, closure[step.name], bool(deps[step.name]))
            entry[step.name] = exit_[step.name] = task
            if step.approval == "required":
                on_reject = (
                    "the changes made before it are kept"
                    if step.on_reject == "keep"
                    else "the changes made before it are rolled back"
                )
                gate = KubernautApprovalOperator(
                    task_id=f"approve-{step.name}",
                    template=template.name,
                    step=step.name,
                    on_reject=step.on_reject,
                    subject=f"Approve step '{step.name}' of remediation '{template.name}'?",
                    body=(
                        f"{step.action.type}/{step.action.action}: {step.description}\n\n"
                        f"Reject ends the run as declined; {on_reject}."
                    ),
                    response_timeout=step.approval_timeout_for(config),
                    # Only to survive Airflow's stale-executor-event race: a retry reuses the
                    # answer already given, never asks again (see operators/approval.py).
                    retries=2,
                    retry_delay=timedelta(seconds=3),
                    trigger_rule=NONE_FAILED if deps[step.name] else "all_success",
                )
                gate >> task
                entry[step.name] = gate
            for up in deps[step.name]:
                exit_[up] >> entry[step.name]
        # The visible rollback path: after the last steps, whatever their outcome.
        has_downstream = {up for ups in deps.values() for up in ups}
        leaves = [exit_[s.name] for s in template.steps if s.name not in has_downstream]
        rollback = KubernautRollbackOperator(
            task_id=ROLLBACK_TASK,
            template=template.name,
            trigger_rule="all_done",
            retries=2,
            retry_delay=timedelta(seconds=10),
            doc_md="Undoes every change of this run, most recent first, when any step failed.",
        )
        finalize = KubernautFinalizeOperator(
            task_id=FINALIZE_TASK,
            template=template.name,
            trigger_rule="all_done",
            retries=2,
            retry_delay=timedelta(seconds=5),
            doc_md="Records the outcome in the history; fails the run when a step failed; "
            f"starts the run's effectiveness assessment (a run of {ASSESSMENT_DAG_ID}).",
            assessment=assessment_settings(template),
        )
        leaves >> rollback >> finalize
    return dag


def assessment_settings(template: Template) -> dict[str, Any]:
    """The template's ``effectiveness`` for its runs' assessment (None: the configuration's)."""
    eff = template.effectiveness
    return {
        "after": eff.after.total_seconds() if eff.after is not None else None,
        "window": eff.window.total_seconds() if eff.window is not None else None,
        "metrics": [m.model_dump() for m in eff.metrics],
    }


def assessment_dag(max_active_runs: int = 1024) -> DAG:
    """The one DAG that assesses every remediation run (operators/assess.py): a run per
    remediation run, created by its ``finalize``; its one task waits deferred in the
    triggerer, so many runs at once cost no worker slot (hence the high ``max_active_runs``).
    Created unpaused: a paused one would leave every assessment queued."""
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
            "run). After the template's `effectiveness.after` + `window` (waiting deferred, in the "
            "triggerer), scores whether the alert went away and stayed away, the target's health, "
            "the declared metrics and whether the change was reverted, and stores the assessment "
            "with the remediation run in the history (`kubernaut history show <run>`)."
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


def template_name(dag_id: str) -> str | None:
    """The name of the template whose DAG id this is (``Template.dag_id`` backwards), or None
    when no template name gives this id."""
    if not dag_id.startswith(DAG_ID_PREFIX):
        return None
    name = dag_id[len(DAG_ID_PREFIX) :].replace("_", "-")  # names have '-', never '_'
    return name if len(name) <= 63 and re.match(NAME_PATTERN, name) else None


def _template_for(directory: Path, dag_id: str, cache: TemplateCache | None = None) -> Template | None:
    """The template of ``dag_id`` loaded from its own file alone, when that gives the same
    answer as loading them all: the file named after the template defines it and is valid,
    and no file before it (the first valid file keeps a name) declares that name.
    None otherwise: then the caller loads every template."""
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
        if mention.search(text) and declared_name(text) == name:
            return None
    try:
        template = load_template(files[mine], cache=cache)
    except TemplateLoadError:
        return None  # the full load reports it (or finds the name in a later file)
    return template if template.name == name else None


def build_dags(
    directory: Path | None = None,
    templates: Iterable[Template] | None = None,
    *,
    dag_id: str | None = None,
    cache: TemplateCache | Literal["default"] | None = "default",
) -> dict[str, DAG]:
    """The DAGs of the valid templates in ``directory``; ``template_errors`` reports the others.

    ``cache``: where validated templates are kept between parses (templates/cache.py; by
    default ``$AIRFLOW_HOME/kubernaut-template-cache``, ``KUBERNAUT_TEMPLATE_CACHE=off``
    disables it); None: validate every file.

    With ``dag_id`` (Airflow's parsing context when a worker parses for one task) only that
    DAG is built, from its template's file alone when it can be, and a broken template of that
    name raises ``TemplateImportError`` naming its errors, for the task's log.
    """
    with _gc_paused():
        if templates is None:
            directory = directory or templates_dir()
            store = default_cache() if cache == "default" else cache
            one = _template_for(directory, dag_id, store) if dag_id else None
            if one is not None:
                templates = [one]
            else:
                # The action plugins' problems are reported by the error file, not here.
                report = load_templates(directory, cache=store, check_plugins=False)
                templates = report.templates
                if dag_id:
                    templates = [t for t in templates if t.dag_id == dag_id]
                    if not templates:
                        _raise_if_broken(report, dag_id)
        elif dag_id:
            templates = [t for t in templates if t.dag_id == dag_id]
        return {template.dag_id: build_dag(template) for template in templates}


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


def _raise_if_broken(report: LoadReport, dag_id: str) -> None:
    """The asked-for DAG does not exist: if its template's file failed to load, say why."""
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
    broken = broken_templates_dag(load_templates(directory or templates_dir(), cache=default_cache()))
    return {} if broken is None else {BROKEN_DAG_ID: broken}
