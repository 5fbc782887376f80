"""`kubernaut history`: migrate the schema, list recent runs, show one run in detail, prune."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kubernaut.history.store import DEFAULT_CONN_ID, History, HistoryUnavailable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubernaut history", description=__doc__)
    parser.add_argument("--conn-id", default=DEFAULT_CONN_ID, help="Airflow connection of the history DB")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the history tables")
    runs = sub.add_parser("list", help="recent runs, newest first")
    runs.add_argument("--alert", help="alert name")
    runs.add_argument("--namespace", help="target namespace")
    runs.add_argument("--target", help="target name")
    runs.add_argument("--cluster", help="cluster name (multi-cluster configurations)")
    runs.add_argument("--template", help="template name")
    runs.add_argument("--status", help="running, success, failed, rolled_back, rollback_failed")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one run: steps, undo journal, outcomes")
    show.add_argument("run", help="history id or Airflow dag_run_id")
    show.add_argument("--json", action="store_true")
    eff = sub.add_parser(
        "effectiveness", help="per template and alert: runs, success rate, effective rate, mean score, trend"
    )
    eff.add_argument("--since", default="7d", help="runs started this recently (e.g. 7d, 12h; default 7d)")
    eff.add_argument("--alert", help="alert name")
    eff.add_argument("--template", help="template name")
    eff.add_argument("--json", action="store_true")
    prune = sub.add_parser(
        "prune", help="delete what is older than the configuration's retention (per table, in batches)"
    )
    prune.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    prune.add_argument("--batch-size", type=int, help="rows per transaction (default: retention.batch_size)")
    prune.add_argument("--json", action="store_true")
    return parser


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _print_runs(rows: list[dict[str, Any]]) -> None:
    print(f"{'id':>5}  {'started':19}  {'status':15}  {'template':28}  {'alert':30}  target")
    for r in rows:
        target = f"{r['target_namespace']}/{r['target_name']}"
        if r.get("cluster"):
            target = f"{r['cluster']}:{target}"
        dry = " (dry run)" if r["dry_run"] else ""
        print(
            f"{r['id']:>5}  {_time(r['started_at'])}  {r['status']:15}  {r['template']:28}  "
            f"{r['alert_name']:30}  {target}{dry}"
        )


def _print_run(run: dict[str, Any]) -> None:
    print(f"run {run['id']}: {run['dag_id']} / {run['dag_run_id']}")
    print(f"  template {run['template']}, alert {run['alert_name']} ({run['alert_fingerprint']})")
    print(f"  target {run['target_kind']} {run['target_namespace']}/{run['target_name']}")
    if run.get("cluster") or run.get("kube_conn_id"):
        name, conn_id = run.get("cluster") or "(single-cluster)", run.get("kube_conn_id") or "-"
        print(f"  cluster {name} (connection {conn_id})")
    print(
        f"  status {run['status']} {run['detail']}  {_time(run['started_at'])} -> {_time(run['finished_at'])}"
    )
    print("  steps:")
    for s in run["steps"]:
        took = f"{s['duration_ms']} ms" if s["duration_ms"] is not None else "-"
        error = f"  error: {s['error']}" if s["error"] else ""
        print(f"    {s['step']:28} {s['action']:40} {s['status']:8} attempts={s['attempts']} {took}{error}")
    print("  undo journal (in the order undone):")
    for u in run["undo"]:
        print(
            f"    {u['step']:28} {u['undo_status']:8} attempts={u['undo_attempts']} "
            f"prior={json.dumps(u['prior_state'], default=str)[:80]}  at {_time(u['undone_at'])}"
        )
    for o in run["outcomes"]:
        linked = (o.get("detail") or {}).get("run_id")  # the assessment or fallback run it created
        print(f"  outcome {o['kind']}: {o['outcome']}" + (f" (run {linked})" if linked else ""))
    _print_assessment(run.get("assessment"))


def _print_assessment(a: dict[str, Any] | None) -> None:
    if a is None:
        print("  assessment: none yet")
        return
    score = "-" if a["score"] is None else f"{a['score']:.2f}"
    print(
        f"  assessment: {a['verdict']} (score {score}) at {_time(a['assessed_at'])}, "
        f"after {a['after_s']:g}s + window {a['window_s']:g}s; run outcome {a['outcome'] or '-'}"
    )
    for reason in a["reasons"] or []:
        print(f"    - {reason}")
    for name, c in (a["components"] or {}).items():
        part = "-" if c.get("score") is None else f"{c['score']:.2f}"
        print(f"    {name:14} {part:>5}  {c.get('reason', '')}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _print_effectiveness(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'template':28}  {'alert':30}  {'runs':>4}  {'success':>7}  {'assessed':>8}  "
        f"{'effective':>9}  {'score':>5}  trend (recent verdicts, oldest first)"
    )
    letters = {"effective": "E", "ineffective": "I", "unknown": "?"}
    for r in rows:
        score = "-" if r["mean_score"] is None else f"{r['mean_score']:.2f}"
        recent = "".join(letters.get(v, "?") for v in r["recent"])
        print(
            f"{r['template']:28}  {r['alert']:30}  {r['runs']:>4}  {_pct(r['success_rate']):>7}  "
            f"{r['assessed']:>8}  {_pct(r['effective_rate']):>9}  {score:>5}  {r['trend']} {recent}"
        )


def _prune(history: History, args: argparse.Namespace) -> int:
    from kubernaut.config import ConfigError, load_config
    from kubernaut.history.retention import prune

    try:
        retention = load_config().retention
    except ConfigError as exc:
        print(f"kubernaut history prune: {exc}", file=sys.stderr)
        return 2
    if args.batch_size is not None and args.batch_size < 1:
        print("kubernaut history prune: --batch-size must be at least 1", file=sys.stderr)
        return 2
    report = prune(history, retention, dry_run=args.dry_run, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    verb = "would delete" if report.dry_run else "deleted"
    for table, rows in report.deleted.items():
        print(f"{table:28} {verb} {rows}")
    kept = [k for k, at in report.cutoffs.items() if at is None]
    tail = f"; kept for ever: {', '.join(kept)}" if kept else ""
    print(f"total {verb} {sum(report.deleted.values())} in {report.seconds:.2f}s{tail}")
    return 0


UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table


def _not_configured(exc: HistoryUnavailable) -> bool:
    """No connection by that id (neither ``AIRFLOW_CONN_<ID>`` nor a stored Airflow
    connection), as opposed to one that is configured but cannot be reached."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    return isinstance(exc.__cause__, AirflowNotFoundException)


def _missing_tables(exc: Exception) -> bool:
    return UNDEFINED_TABLE in (getattr(exc, "sqlstate", None), getattr(exc, "pgcode", None))


def main(argv: list[str] | None = None) -> int:
    from kubernaut.cli import runnable

    args = _parser().parse_args(argv)
    history = History(args.conn_id)
    env_var = f"AIRFLOW_CONN_{args.conn_id.upper()}"
    conn_option = f" --conn-id {args.conn_id}" if args.conn_id != DEFAULT_CONN_ID else ""
    try:
        if args.command == "migrate":
            applied = history.migrate()
            print(f"history schema at version {history.version()} (applied: {applied or 'none'})")
            return 0
        if args.command == "list":
            rows = history.runs(
                limit=args.limit,
                alert=args.alert,
                namespace=args.namespace,
                target=args.target,
                template=args.template,
                status=args.status,
                cluster=args.cluster,
            )
            print(json.dumps(rows, default=str, indent=2)) if args.json else _print_runs(rows)
            return 0
        if args.command == "prune":
            return _prune(history, args)
        if args.command == "effectiveness":
            from kubernaut.durations import parse_duration

            try:
                since = parse_duration(args.since).total_seconds()
            except ValueError as exc:
                print(f"kubernaut history effectiveness: --since: {exc}", file=sys.stderr)
                return 2
            rows = history.effectiveness(since_seconds=since, alert=args.alert, template=args.template)
            print(json.dumps(rows, default=str, indent=2)) if args.json else _print_effectiveness(rows)
            return 0
        run = history.run(args.run)
        if run is None:
            print(f"no run {args.run!r} in the history", file=sys.stderr)
            return 1
        print(json.dumps(run, default=str, indent=2)) if args.json else _print_run(run)
        return 0
    except HistoryUnavailable as exc:
        if _not_configured(exc):
            print(
                f"kubernaut history: no history database configured: set "
                f"{env_var}=postgresql://USER[:PASSWORD]@HOST:5432/DATABASE "
                f"(or create the Airflow connection {args.conn_id!r})",
                file=sys.stderr,
            )
        else:
            print(f"kubernaut history: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not _missing_tables(exc):
            raise
        print(
            f"kubernaut history: the history database ({args.conn_id}) has no history tables yet; "
            f"create them: {runnable()} history{conn_option} migrate",
            file=sys.stderr,
        )
        return 2
    finally:
        history.close()
