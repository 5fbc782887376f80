from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kubernaut.actions.registry import ActionRegistry
from kubernaut.templates.schema import SCHEMA_DIALECT, schema_json, template_schema

from .conftest import SEED

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schema" / "template.schema.json"


def _messages(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [e.message for e in validator.iter_errors(document)]


def test_committed_schema_is_up_to_date() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_json(), (
        "schema/template.schema.json is stale: run `kubernaut schema -o schema/template.schema.json`"
    )


def test_schema_is_valid_draft_2020_12(registry: ActionRegistry) -> None:
    schema = template_schema(registry)
    assert schema["$schema"] == SCHEMA_DIALECT
    jsonschema.Draft202012Validator.check_schema(schema)
    assert json.loads(schema_json(registry)) == schema


def test_schema_accepts_seed_and_repository_templates() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert _messages(schema, yaml.safe_load(SEED)) == []
    for path in sorted((ROOT / "templates").glob("*.yaml")):
        assert _messages(schema, yaml.safe_load(path.read_text())) == [], path


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (("wait_timeout: 5m", "wait_timeot: 5m"), "unknown action parameter"),
        (("wait_timeout: 5m", "wait_timeout: soon"), "bad literal parameter value"),
        (("action: restart_pod", "action: restrat_pod"), "unknown action"),
        (("depends_on: [restart-pod]", "dependson: [restart-pod]"), "unknown step field"),
        (("name: assess-pod-state", "name: Assess"), "bad step name"),
    ],
)
def test_schema_rejects_mistakes(registry: ActionRegistry, change: tuple[str, str], why: str) -> None:
    assert change[0] in SEED
    assert _messages(template_schema(registry), yaml.safe_load(SEED.replace(*change))), why


def test_templated_strings_accepted_for_any_parameter(registry: ActionRegistry) -> None:
    templated = SEED.replace("wait_timeout: 5m", "wait_timeout: '{{ params.wait }}'")
    assert _messages(template_schema(registry), yaml.safe_load(templated)) == []


def test_single_condition_string_and_alert_matchers_accepted(registry: ActionRegistry) -> None:
    doc = yaml.safe_load(SEED)
    doc["steps"][1]["conditions"] = "steps['assess-pod-state'].phase != 'Running'"
    doc["alert_types"].append({"alertname": "X", "matchers": ['severity="critical"']})
    doc["steps"][0]["rollback"] = "none"
    assert _messages(template_schema(registry), doc) == []
