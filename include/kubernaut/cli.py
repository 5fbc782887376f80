"""The ``kubernaut`` command line.

Each subcommand is a function that configures its own argparse sub-parser and sets
``handler``; add one by decorating it with ``@subcommand``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernaut.actions.registry import ActionRegistry

Handler = Callable[[argparse.Namespace], int]
SetUp = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
SUBCOMMANDS: dict[str, SetUp] = {}


def subcommand(name: str) -> Callable[[SetUp], SetUp]:
    def add(setup: SetUp) -> SetUp:
        SUBCOMMANDS[name] = setup
        return setup

    return add


def action_registry() -> ActionRegistry:
    """The registry commands check against (tests replace this function)."""
    from kubernaut.actions.registry import registry

    return registry


@subcommand("validate")
def _setup_validate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("validate", help="check remediation templates and report every error")
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[Path("templates")],
        help="template files or directories (default: templates/)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    from kubernaut.templates.loader import load_paths  # imported late: keeps `--help` fast

    missing = [p for p in args.paths if not p.exists()]
    if missing:
        for p in missing:
            print(f"kubernaut validate: no such file or directory: {p}", file=sys.stderr)
        return EXIT_USAGE
    report = load_paths(args.paths, registry=action_registry())
    bad = len(report.errors)
    good = len(report.files) - bad
    summary = f"{good} template{'s' if good != 1 else ''} OK, {bad} with errors"
    if report.registry_problems:  # a skipped action plugin must be fixed even if no template uses it
        summary += f", {len(report.registry_problems)} action plugin problem(s)"
    if args.format == "json":
        out = {
            "ok": report.ok,
            "files": [str(f) for f in report.files],
            "errors": [e.to_dict() for e in report.all_errors()],
            "registry_problems": report.registry_problems,
            "summary": {"valid": good, "invalid": bad},
        }
        print(json.dumps(out, indent=2))
    else:
        for problem in report.registry_problems:
            print(f"kubernaut validate: {problem}", file=sys.stderr)
        for error in report.all_errors():
            print(error, file=sys.stderr)
        print(summary, file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_INVALID


@subcommand("config")
def _setup_config(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("config", help="validate a configuration file and print the effective settings")
    p.add_argument("file", nargs="?", type=Path, help="YAML file (default: $KUBERNAUT_CONFIG)")
    p.set_defaults(handler=_config)


def _config(args: argparse.Namespace) -> int:
    import os

    import yaml

    from kubernaut.config import CONFIG_ENV, ConfigError, parse_config

    path = args.file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if path is None or not path.exists():
        print(f"kubernaut config: no configuration file given (argument or ${CONFIG_ENV})", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = parse_config(yaml.safe_load(path.read_text()), str(path))
    except (ConfigError, yaml.YAMLError) as exc:
        print(f"kubernaut config: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return EXIT_OK


@subcommand("schema")
def _setup_schema(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("schema", help="print the JSON Schema of the template format")
    p.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    p.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    from kubernaut.templates.schema import schema_json

    text = schema_json(action_registry())
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubernaut", description="Kubernaut on Airflow")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for setup in SUBCOMMANDS.values():
        setup(subparsers)
    return parser


@subcommand("actions")
def _setup_actions(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("actions", help="print the action catalogue as a Markdown table")
    p.add_argument("--update-readme", type=Path, metavar="README", help="rewrite the table in this file")
    p.set_defaults(handler=_actions)


def _actions(args: argparse.Namespace) -> int:
    from kubernaut.actions.catalogue import markdown_table, replace_in

    actions = action_registry()
    table = markdown_table(actions)
    if args.update_readme:
        args.update_readme.write_text(replace_in(args.update_readme.read_text(), table))
    else:
        print(_with_packages(table, actions))
    for problem in actions.problems:
        print(f"kubernaut actions: {problem}", file=sys.stderr)
    return EXIT_INVALID if actions.problems else EXIT_OK


def _with_packages(table: str, actions: ActionRegistry) -> str:
    """The catalogue plus a last column naming the package each action comes from."""
    head, rule, *rows = table.splitlines()
    packages = [actions.package_of(a.kind, a.name) for a in actions.all()]
    return "\n".join(
        [f"{head} package |", f"{rule}---|", *(f"{r} {p} |" for r, p in zip(rows, packages, strict=True))]
    )


DELEGATED: dict[str, str] = {}


def _delegate(name: str, help_text: str, target: str) -> None:
    """A subcommand whose own argparse lives in ``target`` (``module:function``)."""

    def setup(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        subparsers.add_parser(name, help=help_text, add_help=False)

    SUBCOMMANDS[name] = setup
    DELEGATED[name] = target


def _call(target: str, argv: list[str]) -> int:
    import importlib

    module, function = target.split(":")
    result: int = getattr(importlib.import_module(module), function)(argv)
    return result


_delegate("demo", "run the demo: Airflow + sandbox cluster + a fault + an alert", "kubernaut.demo:main")
_delegate("sandbox", "serve the sandbox Kubernetes cluster", "kubernaut.sandbox.cli:main")
_delegate("history", "remediation history: migrate, list, show", "kubernaut.history.cli:main")
_delegate("route", "print alert decisions, launch nothing", "kubernaut.intake.cli:route_main")
_delegate("serve", "serve the alert intake webhook on its own", "kubernaut.intake.cli:serve_main")
_delegate("unblock", "clear a target's blocks (ineffective chain), audited", "kubernaut.intake.unblock:main")
_delegate("stack", "run the production shape: Celery on Redis, one process each", "kubernaut.stack.cli:main")
_delegate(
    "simulate", "run templates' scenarios against a throwaway sandbox cluster", "kubernaut.simulate.cli:main"
)


def runnable(name: str = "kubernaut") -> str:
    """``name`` (a console script of this installation) as the user can type it: the bare name
    when PATH finds this very script, else its path (relative below the current directory,
    e.g. ``.venv/bin/kubernaut``); ``python -m kubernaut`` when there is no script."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    script = argv0 if argv0.name == name else Path(sys.executable).with_name(name)
    if not script.is_file():
        return f"{shlex.quote(sys.executable)} -m kubernaut" if name == "kubernaut" else name
    script = script.absolute()
    on_path = shutil.which(name)
    if on_path and os.path.samefile(on_path, script):
        return name
    try:
        shown = str(script.relative_to(Path.cwd()))
    except ValueError:
        shown = str(script)
    return shlex.quote(shown)


def _quiet_broken_pipe() -> int:
    """The reader of our output left (``kubernaut actions | head``): stop quietly, as a
    process killed by SIGPIPE would (exit 141), and keep the interpreter's final flush of
    stdout from failing again (Python's documented recipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + 13  # SIGPIPE


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a broken pipe shows here rather than at interpreter exit
    except BrokenPipeError:
        return _quiet_broken_pipe()
    return code


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        return _call(DELEGATED[argv[0]], argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on usage errors and --help; return the code instead
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
