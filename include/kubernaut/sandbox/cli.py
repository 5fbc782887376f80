"""`python -m kubernaut.sandbox serve ...`: run the sandbox cluster until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType

from kubernaut.sandbox.cluster import SandboxCluster
from kubernaut.sandbox.faults import FAULT_TYPES, WORKLOAD_KINDS


def parse_fault(text: str) -> tuple[str, str, str, str]:
    """`crashloop:demo/web` or `oom:demo/statefulset/db` -> (type, namespace, kind, name)."""
    try:
        type_, target = text.split(":", 1)
        parts = target.split("/")
        namespace, kind, name = (parts[0], "deployment", parts[1]) if len(parts) == 2 else tuple(parts)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid fault {text!r}; expected TYPE:NAMESPACE/NAME") from exc
    if type_ not in FAULT_TYPES or kind not in WORKLOAD_KINDS:
        raise argparse.ArgumentTypeError(f"invalid fault {text!r}; types: {', '.join(FAULT_TYPES)}")
    return type_, namespace, kind, name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubernaut sandbox", description="A sandbox Kubernetes API server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the sandbox cluster until SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    serve.add_argument("--seed", choices=["demo", "none"], default="none")
    serve.add_argument(
        "--fault",
        type=parse_fault,
        action="append",
        default=[],
        help="inject a fault at start, e.g. crashloop:demo/web (repeatable)",
    )
    serve.add_argument("--ready-file", type=Path, help="the URL is written here once listening")
    serve.add_argument("--pod-ready-delay", type=float, default=0.5)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with SandboxCluster(args.host, args.port, pod_ready_delay=args.pod_ready_delay) as cluster:
            cluster.write_kubeconfig(args.kubeconfig)
            if args.seed == "demo":
                cluster.seed_demo()
            for type_, namespace, kind, name in args.fault:
                cluster.inject_fault(type_, namespace, **{kind: name})
            print(cluster.url, flush=True)
            if args.ready_file is not None:
                # Write-then-rename, so that watchers never read a half-written file.
                partial = args.ready_file.with_name(args.ready_file.name + ".tmp")
                partial.write_text(cluster.url)
                partial.replace(args.ready_file)
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
