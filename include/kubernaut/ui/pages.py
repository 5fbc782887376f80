# ruff: noqa: E501, RUF001
"""Server-rendered pages (Jinja2, autoescaped): no build step, no JavaScript needed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import DictLoader, Environment, select_autoescape

from kubernaut.secrets import REDACTED, SEALED
from kubernaut.ui.queries import verdict_of

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Kubernaut</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1a202c;background:#fff}
header{background:#017cee;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:500}header a.on{text-decoration:underline}
header .user{margin-left:auto;opacity:.85}
main{padding:12px 16px}h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e2e8f0;
vertical-align:top}th{background:#f7fafc;font-weight:600;white-space:nowrap}
tr:hover td{background:#f7fafc}code,pre{font:12px/1.35 ui-monospace,Menlo,Consolas,monospace}
pre{background:#f7fafc;padding:6px;margin:0;white-space:pre-wrap;word-break:break-word;max-height:320px;overflow:auto}
.o{padding:1px 6px;border-radius:8px;font-size:12px;white-space:nowrap}
.o-success,.o-not_needed,.o-effective,.o-applied,.o-triggered{background:#c6f6d5}
.o-rolled_back,.o-declined,.o-skipped,.o-duplicate,.o-cooldown,.o-busy,.o-resolved,.o-paused,.o-backoff,.o-unknown{background:#fefcbf}
.o-partially_rolled_back,.o-rollback_failed,.o-failed,.o-blocked,.o-ineffective,.o-launch_failed{background:#fed7d7}
.o-running,.o-triggering,.o-pending{background:#bee3f8}
form.f{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:10px}
form.f label{display:flex;flex-direction:column;font-size:12px;color:#4a5568}
input,select,button{font:inherit;padding:3px 6px}button{cursor:pointer}
.muted{color:#718096}.pager{margin-top:10px;display:flex;gap:14px}dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px}
dt{color:#4a5568}dd{margin:0}.bar{display:inline-block;background:#017cee;width:6px;margin-right:1px;vertical-align:bottom}
</style></head><body>
<header><strong>Kubernaut</strong>
<a href="{{ root }}/ui/remediations" class="{{ 'on' if nav == 'remediations' }}">Remediations</a>
<a href="{{ root }}/ui/decisions" class="{{ 'on' if nav == 'decisions' }}">Decisions</a>
<a href="{{ root }}/ui/templates" class="{{ 'on' if nav == 'templates' }}">Templates</a>
<span class="user">{{ user }}</span></header>
<main>{% block main %}{% endblock %}</main></body></html>
"""

REMEDIATIONS = """{% extends "base" %}{% block main %}
<h1>Remediations</h1>
<form class="f" method="get">
<label>Alert<input name="alert" value="{{ f.alert }}" list="alerts"></label>
<datalist id="alerts">{% for a in choices.alert %}<option value="{{ a }}">{% endfor %}</datalist>
<label>Namespace<input name="namespace" value="{{ f.namespace }}"></label>
<label>Template<select name="template"><option value="">any</option>
{% for t in choices.template %}<option {{ 'selected' if t == f.template }}>{{ t }}</option>{% endfor %}</select></label>
<label>Outcome<select name="outcome"><option value="">any</option>
{% for o in outcomes %}<option {{ 'selected' if o == f.outcome }}>{{ o }}</option>{% endfor %}</select></label>
<label>Since<input name="since" type="datetime-local" value="{{ since }}"></label>
<label>Until<input name="until" type="datetime-local" value="{{ until }}"></label>
<button type="submit">Filter</button> <a href="?">clear</a></form>
<table id="remediations"><thead><tr><th>When</th><th>Alert</th><th>Target</th><th>Template</th><th>Outcome</th>
<th>Effectiveness</th><th>Duration</th><th>DAG run</th></tr></thead><tbody>
{% for r in page.rows %}<tr>
<td><a href="{{ root }}/ui/remediations/{{ r.id }}">{{ r.started_at | when }}</a></td>
<td>{{ r.alert_name }}</td>
<td>{{ r | target }}</td>
<td>{{ r.template }}{% if r.dry_run %} <span class="muted">(dry run)</span>{% endif %}</td>
<td><span class="o o-{{ r.status }}">{{ r.status }}</span></td>
<td>{% set v = r.assessment | verdict %}{% if v[0] %}<span class="o o-{{ v[0] }}">{{ v[0] }}</span>
{% if v[1] is not none %} {{ v[1] }}{% endif %}{% else %}<span class="muted">–</span>{% endif %}</td>
<td>{{ r.duration_s | duration }}</td>
<td><a target="_top" href="{{ r | run_link }}">{{ r.dag_run_id }}</a></td>
</tr>{% else %}<tr><td colspan="8" class="muted">No remediations match.</td></tr>{% endfor %}
</tbody></table>
<div class="pager">{% if after %}<a href="?{{ query }}">newest</a>{% endif %}
{% if next %}<a id="older" href="?{{ query }}{{ '&' if query }}after={{ next | urlencode }}">older →</a>{% endif %}</div>
{% endblock %}"""

REMEDIATION = """{% extends "base" %}{% block main %}
<h1>Remediation {{ r.id }}: {{ r.template }} <span class="o o-{{ r.status }}">{{ r.status }}</span></h1>
<dl>
<dt>Alert</dt><dd>{{ r.alert_name }} <code>{{ r.alert_fingerprint }}</code></dd>
<dt>Target</dt><dd>{{ r | target }}</dd>
<dt>Started</dt><dd>{{ r.started_at | when }}</dd><dt>Finished</dt><dd>{{ r.finished_at | when }}</dd>
<dt>Duration</dt><dd>{{ r.duration_s | duration }}</dd>
<dt>Result</dt><dd>{{ r.detail or '–' }}</dd>
<dt>DAG run</dt><dd><a target="_top" href="{{ r | run_link }}">{{ r.dag_id }} / {{ r.dag_run_id }}</a></dd>
{% if r.finished_at %}<dt>Assessment run</dt><dd><a id="assessment-run" target="_top" href="{{ r | assessment_link }}">kubernaut_assessment</a></dd>{% endif %}
{% set v = r.assessment | verdict %}<dt>Effectiveness</dt><dd>{% if v[0] %}<span class="o o-{{ v[0] }}">{{ v[0] }}</span>
{% if v[1] is not none %} score {{ v[1] }}{% endif %}{% else %}<span class="muted">not assessed</span>{% endif %}</dd>
</dl>
<h2>Alert as received</h2>
{% if alert %}<pre id="alert">{{ alert | pretty }}</pre>{% else %}<p class="muted">Not recorded.</p>{% endif %}
<h2>Decision</h2>
{% if d %}<p><span class="o o-{{ d.decision }}">{{ d.decision }}</span> at {{ d.received_at | when }}: {{ d.reason }}</p>
{% else %}<p class="muted">No intake decision recorded (run started by hand or by the API).</p>{% endif %}
<h2>Steps</h2>
<table id="steps"><thead><tr><th>Step</th><th>Action</th><th>Status</th><th>Parameters</th><th>Result</th>
<th>Attempts</th><th>Duration</th></tr></thead><tbody>
{% for s in r.steps %}<tr><td>{{ s.step }}</td><td>{{ s.action }}</td><td><span class="o o-{{ s.status }}">{{ s.status }}</span></td>
<td><pre>{{ s.parameters | shown }}</pre></td>
<td>{% if s.error %}<pre>{{ s.error }}</pre>{% endif %}{% if s.result is not none %}<pre>{{ s.result | shown }}</pre>{% endif %}</td>
<td>{{ s.attempts }}</td><td>{{ (s.duration_ms / 1000) | duration if s.duration_ms is not none else '–' }}</td></tr>
{% else %}<tr><td colspan="7" class="muted">No steps recorded.</td></tr>{% endfor %}</tbody></table>
<h2>Undo journal (in the order undone)</h2>
<table id="undo"><thead><tr><th>#</th><th>Step</th><th>Action</th><th>Mode</th><th>Undo</th><th>Undone at</th>
<th>Prior state</th><th>Undo result</th></tr></thead><tbody>
{% for u in r.undo %}<tr><td>{{ loop.index }}</td><td>{{ u.step }}</td><td>{{ u.action }}</td><td>{{ u.rollback_mode }}</td>
<td><span class="o o-{{ u.undo_status }}">{{ u.undo_status }}</span></td><td>{{ u.undone_at | when }}</td>
<td><pre>{{ u.prior_state | shown }}</pre></td><td>{% if u.undo_result is not none %}<pre>{{ u.undo_result | shown }}</pre>{% endif %}</td></tr>
{% else %}<tr><td colspan="8" class="muted">Nothing journaled: no step changed anything.</td></tr>{% endfor %}</tbody></table>
{% if r.outcomes %}<h2>Outcomes</h2><table><tbody>{% for o in r.outcomes %}<tr><td>{{ o.kind }}</td>
<td><span class="o o-{{ o.outcome }}">{{ o.outcome }}</span></td><td><pre>{{ o.detail | shown }}</pre></td>
<td>{{ o.recorded_at | when }}</td></tr>{% endfor %}</tbody></table>{% endif %}
{% if r.assessment %}<h2>Assessment</h2>
<p id="assessment-verdict"><span class="o o-{{ r.assessment.verdict }}">{{ r.assessment.verdict }}</span>
{% if r.assessment.score is not none %} score {{ r.assessment.score }}{% endif %}
{% if r.assessment.assessed_at %} · assessed {{ r.assessment.assessed_at }}{% endif %}</p>
{% if r.assessment.reasons %}<ul>{% for why in r.assessment.reasons %}<li>{{ why }}</li>{% endfor %}</ul>{% endif %}
<table id="assessment"><thead><tr><th>Component</th><th>Score</th><th>Weight</th><th>Why</th><th>Evidence</th></tr></thead><tbody>
{% for name, c in (r.assessment.components or {}).items() %}<tr><td>{{ name }}</td>
<td>{{ c.score if c.score is not none else '–' }}</td><td>{{ c.weight }}</td><td>{{ c.reason }}</td>
<td><pre>{{ c.evidence | shown }}</pre></td></tr>{% else %}<tr><td colspan="5" class="muted">No components recorded.</td></tr>{% endfor %}
</tbody></table>{% endif %}
{% endblock %}"""

DECISIONS = """{% extends "base" %}{% block main %}
<h1>Decisions</h1>
<h2>Blocked targets</h2>
{% if message %}<p id="message" class="o o-applied">{{ message }}</p>{% endif %}
<table id="blocks"><thead><tr><th>Alert</th><th>Target</th><th>Blocked since</th><th>Why</th><th></th></tr></thead><tbody>
{% for b in blocks %}<tr><td>{{ b.alert_name }}</td><td>{{ b | target }}</td><td>{{ b.received_at | when }}</td><td>{{ b.reason }}</td>
<td>{% if can_clear %}<form method="post" action="{{ root }}/ui/blocks/clear">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="alert_name" value="{{ b.alert_name }}">
<input type="hidden" name="kind" value="{{ b.target_kind }}"><input type="hidden" name="namespace" value="{{ b.target_namespace }}">
<input type="hidden" name="name" value="{{ b.target_name }}"><input name="reason" placeholder="reason (optional)" size="18">
<button type="submit">Clear block</button></form>{% else %}<span class="muted">needs DAG run edit permission</span>{% endif %}</td></tr>
{% else %}<tr><td colspan="5" class="muted">No target is blocked.</td></tr>{% endfor %}</tbody></table>
{% if unblocks %}<h2>Cleared blocks</h2><table id="unblocks"><thead><tr><th>When</th><th>Who</th><th>Alert</th><th>Target</th>
<th>Reason</th></tr></thead><tbody>{% for u in unblocks %}<tr><td>{{ u.unblocked_at | when }}</td><td>{{ u.unblocked_by }}</td>
<td>{{ u.alert_name or 'all' }}</td><td>{{ u | target }}</td><td>{{ u.reason }}</td></tr>{% endfor %}</tbody></table>{% endif %}
<h2>Every alert the intake saw</h2>
<form class="f" method="get">
<label>Alert<input name="alert" value="{{ f.alert }}"></label>
<label>Namespace<input name="namespace" value="{{ f.namespace }}"></label>
<label>Decision<select name="decision"><option value="">any</option>
{% for o in kinds %}<option {{ 'selected' if o == f.decision }}>{{ o }}</option>{% endfor %}</select></label>
<label>Since<input name="since" type="datetime-local" value="{{ since }}"></label>
<label>Until<input name="until" type="datetime-local" value="{{ until }}"></label>
<button type="submit">Filter</button> <a href="?">clear</a></form>
<table id="decisions"><thead><tr><th>Received</th><th>Alert</th><th>Status</th><th>Target</th><th>Decision</th><th>Why</th>
<th>Template</th><th>Run</th></tr></thead><tbody>
{% for d in page.rows %}<tr><td>{{ d.received_at | when }}</td><td>{{ d.alert_name }} <code class="muted">{{ d.fingerprint[:12] }}</code></td>
<td>{{ d.alert_status }}</td><td>{{ d | target }}</td><td><span class="o o-{{ d.decision }}">{{ d.decision }}</span></td>
<td>{{ d.reason }}</td><td>{{ d.template }}</td>
<td>{% if d.dag_run_id and d.decision in launched %}<a target="_top" href="{{ d | run_link }}">{{ d.dag_run_id }}</a>{% endif %}</td></tr>
{% else %}<tr><td colspan="8" class="muted">No decisions match.</td></tr>{% endfor %}</tbody></table>
<div class="pager">{% if after %}<a href="?{{ query }}">newest</a>{% endif %}
{% if next %}<a id="older" href="?{{ query }}{{ '&' if query }}after={{ next | urlencode }}">older →</a>{% endif %}</div>
{% endblock %}"""

TEMPLATES = """{% extends "base" %}{% block main %}
<h1>Templates</h1>
<table id="templates"><thead><tr><th>Template</th><th>Alert names</th><th>Runs</th><th>Success rate</th>
<th>Effective rate</th><th>Last 14 days</th><th>Last failure</th></tr></thead><tbody>
{% for t in rows %}<tr><td><a href="{{ root }}/ui/remediations?template={{ t.template | urlencode }}">{{ t.template }}</a>
{% if t.source %}<br><a class="muted" target="_blank" href="{{ t.source }}">YAML</a>{% endif %}</td>
<td>{{ t.alert_names | join(', ') }}</td><td>{{ t.runs }}</td><td>{{ t.success_rate | pct }}</td>
<td>{{ t.effective_rate | pct }}</td>
<td title="runs per day">{% for d in t.trend %}<span class="bar" title="{{ d.day | when }}: {{ d.runs }} runs, {{ d.green }} green"
style="height:{{ 2 + (18 * d.runs / t.trend_max) | int }}px"></span>{% endfor %}</td>
<td>{% if t.last_failure %}<a href="{{ root }}/ui/remediations/{{ t.last_failure.id }}">{{ t.last_failure.started_at | when }}</a>
<span class="o o-{{ t.last_failure.status }}">{{ t.last_failure.status }}</span> {{ t.last_failure.detail }}
{% else %}<span class="muted">none</span>{% endif %}</td></tr>
{% else %}<tr><td colspan="7" class="muted">No runs yet.</td></tr>{% endfor %}</tbody></table>
{% endblock %}"""


def when(value: Any) -> str:
    if not isinstance(value, datetime):
        return "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: Any) -> str:
    if seconds is None:
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.0f} %"


def _field(row: Any, name: str) -> Any:
    return row.get(name, "") if isinstance(row, dict) else getattr(row, name, "")


def target(row: Any) -> str:
    kind, ns, name = _field(row, "target_kind"), _field(row, "target_namespace"), _field(row, "target_name")
    if not name:
        return "–"
    text = f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
    cluster = _field(row, "cluster") or ""
    return f"{cluster}: {text}" if cluster else text


def shown(value: Any) -> str:
    """A history value as JSON; a sealed record (ciphertext) is never shown, only that it is sealed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    if isinstance(value, dict) and set(value) == {SEALED}:
        return f"(sealed: holds sensitive values, encrypted; shown {REDACTED})"
    return str(json.dumps(value, indent=1, sort_keys=True, default=str))


def run_link(row: Any) -> str:
    """The run in Airflow's UI (the page may sit in the UI's frame: links open at the top)."""
    return f"/dags/{quote(_field(row, 'dag_id'), safe='')}/runs/{quote(_field(row, 'dag_run_id'), safe='')}"


def assessment_link(row: Any) -> str:
    """The run of ``kubernaut_assessment`` that judges this remediation (created by its finalize)."""
    from kubernaut.operators.assess import ASSESSMENT_DAG_ID, assessment_run_id

    run_id = assessment_run_id(_field(row, "dag_id"), _field(row, "dag_run_id"))
    return f"/dags/{ASSESSMENT_DAG_ID}/runs/{quote(run_id, safe='')}"


def pretty(value: Any) -> str:
    return str(json.dumps(value, indent=1, sort_keys=True, default=str))


def environment() -> Environment:
    env = Environment(
        loader=DictLoader(
            {
                "base": BASE,
                "remediations": REMEDIATIONS,
                "remediation": REMEDIATION,
                "decisions": DECISIONS,
                "templates": TEMPLATES,
            }
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.globals["launched"] = ("triggered", "duplicate", "triggering", "unconfirmed")
    env.filters.update(
        when=when,
        duration=duration,
        pct=pct,
        target=target,
        shown=shown,
        pretty=pretty,
        verdict=verdict_of,
        run_link=run_link,
        assessment_link=assessment_link,
    )
    return env
