"""A user's custom action, as the docs describe it: sets a key in a JSON file, undo restores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from kubernaut.actions import Action, ActionContext, ActionParams, ActionResult, PreconditionFailed


class SetFlagParams(ActionParams):
    store: str = Field(description="JSON file holding the flags")
    flag: str = Field(pattern=r"^[a-z0-9_]+$")
    value: bool


class SetFlag(Action[SetFlagParams]):
    kind = "custom"
    name = "acme_set_flag"
    Params = SetFlagParams
    mutating = True
    summary = "Set a feature flag."
    changes = "one flag in the store"
    undo_doc = "restores the previous value"
    dry_run_doc = "reports the change, writes nothing"

    writes = 0  # counts real changes, so tests can see a double change

    def precheck(self, ctx: ActionContext, params: SetFlagParams) -> None:
        if not Path(params.store).exists():
            raise PreconditionFailed(f"flag store {params.store} not found")

    def run(self, ctx: ActionContext, params: SetFlagParams) -> ActionResult:
        flags = _load(params.store)
        if ctx.prior_undo is not None and flags.get(params.flag) == params.value:
            return ActionResult(output={"already_done": True}, undo=ctx.prior_undo, changed=True)
        undo = ctx.remember_prior({"flag": params.flag, "previous": flags.get(params.flag)})
        if not ctx.dry_run:
            flags[params.flag] = params.value
            _save(params.store, flags)
            SetFlag.writes += 1
        return ActionResult(
            output={"flag": params.flag, "value": params.value}, undo=undo, changed=not ctx.dry_run
        )

    def undo(self, ctx: ActionContext, params: SetFlagParams, record: dict[str, Any]) -> dict[str, Any]:
        flags = _load(params.store)
        if flags.get(record["flag"]) == record["previous"]:
            return {"restored": False}
        flags[record["flag"]] = record["previous"]
        _save(params.store, flags)
        return {"restored": True}


def _load(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def _save(path: str, flags: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(flags))
