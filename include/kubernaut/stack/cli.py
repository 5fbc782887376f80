"""`kubernaut stack`: the production shape on this machine (CeleryExecutor on Redis, every
Airflow component its own process, PostgreSQL, Alertmanager posting to the intake), running
until Ctrl-C or SIGTERM, which stop the workers first, then the rest."""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from pathlib import Path

from kubernaut.demo import STOP_SIGNALS, Stop, _ignore_stop_signals, _raise_stop
from kubernaut.stack.stack import REPO, Stack

DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,54}")


def _db_name(value: str) -> str:
    if not DB_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(f"invalid database name {value!r}: lowercase letters, digits, _")
    return value


def _redis_db(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 15:
        raise argparse.ArgumentTypeError(f"redis database {value}: expected 0..15")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubernaut stack", description=__doc__)
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".stack", help="state and logs (default .stack/)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    parser.add_argument("--concurrency", type=int, default=4, help="task processes per worker (default 4)")
    parser.add_argument("--redis-db", type=_redis_db, default=0, help="Redis database number (default 0)")
    parser.add_argument(
        "--db",
        type=_db_name,
        default="kubernaut_stack",
        help="PostgreSQL databases <db> (Airflow) and <db>_history, kept across restarts",
    )
    parser.add_argument("--fresh", action="store_true", help="recreate the databases; drop them on stop")
    parser.add_argument(
        "--kubeconfig", type=Path, help="the cluster to remediate (default: start the sandbox cluster)"
    )
    parser.add_argument("--port", type=int, default=0, help="api-server port (default: a free one)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.concurrency < 1:
        parser.error("--workers and --concurrency must be at least 1")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        parser.error(f"--kubeconfig {args.kubeconfig}: no such file")
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    stack = Stack(
        args.workdir.resolve(),
        workers=args.workers,
        concurrency=args.concurrency,
        redis_db=args.redis_db,
        name=args.db,
        fresh=args.fresh,
        kubeconfig=args.kubeconfig.resolve() if args.kubeconfig else None,
        port=args.port,
    )
    try:
        print(f"[stack] starting in {stack.workdir} ...", flush=True)
        stack.start()
        print(json.dumps(stack.describe(), indent=2), flush=True)
        print("[stack] running; Ctrl-C (or SIGTERM) stops it, workers first", flush=True)
        while True:
            for name, component in stack.components.items():
                if not component.running():
                    raise RuntimeError(f"{name} exited; see {component.log}")
            time.sleep(2)
    except RuntimeError as exc:
        print(f"[stack] failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Stop as stop:
        return 128 + stop.signum
    finally:
        _ignore_stop_signals()
        print("[stack] stopping ...", flush=True)
        stack.stop()
        print("[stack] stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
