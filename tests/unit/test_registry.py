"""Action lookup, and user actions from another package through the entry-point group."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from kubernaut.actions import ActionContext, ActionRegistry, UnknownAction, registry


def test_builtins_are_registered_by_kind() -> None:
    assert {"get_pod_status", "restart_pod", "scale_deployment", "rollout_restart_deployment"} <= set(
        registry.names("kubernetes")
    )
    assert {"validate_pod_health", "validate_deployment_ready"} <= set(registry.names("monitoring"))
    assert {"wait", "log"} <= set(registry.names("custom"))


def test_unknown_action_suggests_close_names() -> None:
    with pytest.raises(UnknownAction, match="did you mean 'restart_pod'"):
        registry.get("kubernetes", "restrat_pod")


def test_duplicate_registration_is_an_error() -> None:
    reg = ActionRegistry(builtin_modules=("kubernaut.actions.custom",))
    wait = registry.get("custom", "wait")
    reg.register(wait)  # the same class again is fine
    clone = type("Wait2", (wait,), {})
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(clone)


def test_user_package_registers_through_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme_actions.py").write_text(
        textwrap.dedent(
            """
            from kubernaut.actions import Action, ActionParams, ActionResult

            class GreetParams(ActionParams):
                who: str

            class Greet(Action[GreetParams]):
                kind = "custom"
                name = "acme_greet"
                Params = GreetParams

                def run(self, ctx, params):
                    return ActionResult(output={"greeting": f"hello {params.who}"})
            """
        )
    )
    dist = tmp_path / "acme_actions-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-actions\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[kubernaut.actions]\nacme_greet = acme_actions:Greet\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        reg = ActionRegistry(builtin_modules=())
        cls = reg.get("custom", "acme_greet")
        result = cls().execute(ActionContext(), cls.Params.model_validate({"who": "sre"}))
        assert result.output == {"greeting": "hello sre"}
    finally:
        sys.modules.pop("acme_actions", None)


def test_readme_action_table_is_generated_from_the_code() -> None:
    from kubernaut.actions.catalogue import BEGIN, END, markdown_table
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    current = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert current == markdown_table(), "run: kubernaut actions --update-readme README.md"
