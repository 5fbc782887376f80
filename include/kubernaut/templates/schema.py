"""JSON Schema (draft 2020-12) of the template format, for editors and CI.

The step ``action`` becomes a ``oneOf`` over the registered actions, each with its own
parameter schema, so a YAML language server checks parameters while people type. Any
parameter may also be a Jinja string, whose value is only known at run time.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kubernaut.actions.registry import ActionRegistry
from kubernaut.actions.registry import registry as default_registry
from kubernaut.templates.model import Template

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://kubernaut.dev/schema/template.schema.json"
TEMPLATED_STRING: dict[str, Any] = {
    "type": "string",
    "pattern": r"\{\{|\{%",
    "description": "Jinja template, rendered when the step runs",
}


def _allow_templates(params_schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(params_schema)
    for name, prop in list(schema.get("properties", {}).items()):
        schema["properties"][name] = {"anyOf": [prop, TEMPLATED_STRING]}
    return schema


def _action_schema(kind: str, name: str, summary: str, params: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "title": f"{kind}/{name}",
        "properties": {
            "type": {"const": kind},
            "action": {"const": name},
            "parameters": params,
        },
        "required": ["type", "action"],
        "additionalProperties": False,
    }
    if summary:
        schema["description"] = summary
    if params.get("required"):
        schema["required"].append("parameters")
    return schema


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _rename_refs(v, renames) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in renames:
            out["$ref"] = "#/$defs/" + renames[ref[8:]]
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def template_schema(registry: ActionRegistry = default_registry) -> dict[str, Any]:
    schema: dict[str, Any] = {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID}
    schema.update(Template.model_json_schema())
    schema["title"] = "Kubernaut remediation template"
    defs: dict[str, Any] = schema["$defs"]
    variants = []
    for cls in registry.all():
        params = cls.Params.model_json_schema()
        # Nested models of each action get a prefixed name so two actions can't collide.
        nested = params.pop("$defs", {})
        prefix = f"{cls.kind}.{cls.name}."
        renames = {k: prefix + k for k in nested}
        for key, value in nested.items():
            # nested fields render too (e.g. prometheus_query's condition.value: "{{ params.x }}")
            defs[renames[key]] = _allow_templates(_rename_refs(value, renames))
        params = _allow_templates(_rename_refs(params, renames))
        variants.append(_action_schema(cls.kind, cls.name, cls.summary, params))
    if variants:
        defs["StepAction"] = {"oneOf": variants, "description": "The action a step runs"}
    return schema


def schema_json(registry: ActionRegistry = default_registry) -> str:
    """Stable text form (what is committed as schema/template.schema.json)."""
    return json.dumps(template_schema(registry), indent=2, ensure_ascii=False) + "\n"
