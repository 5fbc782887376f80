"""``kubernaut unblock TARGET``: a person clears the blocks of a target (an ineffective chain,
or consecutive failures), audited in the history (``kubernaut_unblocks``: who, when, why).

Runs before the unblock no longer count towards ``blocked``; backoff and cooldown are not
lifted (they end by themselves). ``kubernaut unblock --list`` shows the audit trail.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from kubernaut.history.store import DEFAULT_CONN_ID, HistoryUnavailable

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def parse_target(text: str) -> tuple[str, str, str]:
    """``namespace/name``, ``Kind/namespace/name`` or a cluster-scoped ``name`` / ``Node/name``."""
    parts = [p.strip() for p in text.split("/")]
    if not all(parts) or len(parts) > 3:
        raise ValueError(f"invalid target {text!r}: expected NAMESPACE/NAME, KIND/NAMESPACE/NAME or NODE")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        if parts[0] in ("Node", "PersistentVolume"):
            return parts[0], "", parts[1]
        return "", parts[0], parts[1]
    return "Node", "", parts[0]


def who() -> str:
    """The person: the login (and the sudo caller behind it, if any)."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {user})" if sudo and sudo != user else user


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubernaut unblock",
        description="Clear the blocks (ineffective chain, consecutive failures) of a target, audited.",
    )
    parser.add_argument("target", nargs="?", help="NAMESPACE/NAME, KIND/NAMESPACE/NAME or a node name")
    parser.add_argument("--alert", default="", help="only for this alert name (default: every alert)")
    parser.add_argument("--reason", default="", help="why (kept in the audit trail)")
    parser.add_argument("--by", default=None, help="who (default: the login running this)")
    parser.add_argument("--cluster", default="", help="the target's cluster (multi-cluster setups)")
    parser.add_argument("--list", action="store_true", help="show recent unblocks (of TARGET if given)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--conn-id", default=DEFAULT_CONN_ID, help="Airflow connection of the history DB")
    args = parser.parse_args(argv)
    if not args.list and not args.target:
        parser.error("TARGET is required (or --list)")
    try:
        kind, namespace, name = parse_target(args.target) if args.target else ("", None, None)
    except ValueError as exc:
        print(f"kubernaut unblock: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from kubernaut.intake.history_checks import IntakeHistory

    history = IntakeHistory(args.conn_id)
    try:
        if args.list:
            rows = history.unblocks(namespace=namespace, name=name)
            _show(rows, args.json)
            return EXIT_OK
        assert namespace is not None and name is not None
        by = (args.by or who()).strip()
        if not by:
            print("kubernaut unblock: --by must name someone", file=sys.stderr)
            return EXIT_USAGE
        row = history.record_unblock(
            kind=kind,
            namespace=namespace,
            name=name,
            alert_name=args.alert,
            by=by,
            reason=args.reason,
            cluster=args.cluster,
        )
        scope = f"alert {args.alert}" if args.alert else "every alert"
        where = f"{namespace}/{name}" if namespace else name
        if args.json:
            print(json.dumps(row, default=str, indent=2))
        else:
            print(f"unblocked {where} for {scope} by {by} at {row['unblocked_at']:%Y-%m-%dT%H:%M:%S%z}")
        return EXIT_OK
    except HistoryUnavailable as exc:
        print(f"kubernaut unblock: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        history.close()


def _show(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, default=str, indent=2))
        return
    print(f"{'when':25}  {'by':20}  {'target':40}  {'alert':24}  reason")
    for r in rows:
        target = "/".join(p for p in (r["target_namespace"], r["target_name"]) if p)
        print(
            f"{r['unblocked_at']:%Y-%m-%dT%H:%M:%S%z}  {r['unblocked_by']:20}  {target:40}  "
            f"{r['alert_name'] or '*':24}  {r['reason']}"
        )
