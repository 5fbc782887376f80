"""The action catalogue as a Markdown table, generated from the registry so the README
cannot drift from the code (a test compares them)."""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined

from kubernaut.actions.base import Action
from kubernaut.actions.custom import NO_UNDO_DOC
from kubernaut.actions.registry import ActionRegistry, registry

BEGIN, END = "<!-- actions:begin -->", "<!-- actions:end -->"


def _params(action: type[Action[Any]]) -> str:
    parts = []
    for name, field in action.Params.model_fields.items():
        if field.is_required():
            parts.append(name)
        elif field.default is None or field.default is PydanticUndefined:
            parts.append(f"{name}?")
        else:
            default = field.default
            text = f"{int(default.total_seconds())}s" if hasattr(default, "total_seconds") else repr(default)
            parts.append(f"{name}={text}")
    return ", ".join(parts) or "—"


def markdown_table(actions: ActionRegistry = registry) -> str:
    rows = [
        "| action | type | parameters | what it does / changes | undo | dry-run |",
        "|---|---|---|---|---|---|",
    ]
    for action in actions.all():
        touches = action.mutating or action.changes != "nothing"
        changes = action.changes if touches else f"reads only: {action.summary}"
        undo = action.undo_doc
        if action.mutating and not action.has_undo() and undo == "—":
            undo = NO_UNDO_DOC  # what the runner journals for it (Action.execute)
        cells = [
            f"`{action.name}`",
            action.kind,
            _params(action),
            changes,
            undo,
            action.dry_run_doc,
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def replace_in(text: str, table: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"
