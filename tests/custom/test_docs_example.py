"""The worked example of docs/custom-actions.md, run for real: the action file and the template
it shows are the files under docs/examples/ (the doc must show them verbatim), the action runs
against the sandbox cluster through the test-kit, and the template validates.

After changing an included file: ``python -m tests.custom.test_docs_example`` rewrites the doc.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions import ActionRegistry
from kubernaut.templates import load_template
from kubernaut.testing import (
    KubeSandbox,
    assert_undo_idempotent,
    run_action,
)

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "custom-actions.md"
EXAMPLES = REPO / "docs" / "examples"
# <!-- include: PATH --> then a fenced block holding exactly that file.
INCLUDE = re.compile(
    r"^<!-- include: (?P<path>\S+) -->\n(?P<fence>```\w*\n)(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL
)


def _import(name: str) -> Any:
    """Import a docs/examples file under its plain module name, as an installed package would."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


AnnotateDeployment = _import("annotate_action").AnnotateDeployment
_shown = _import("test_annotate_action")  # imports annotate_action, registered just above
PARAMS, annotations = _shown.PARAMS, _shown.annotations
# The tests the doc shows, collected here (docs/ is outside the test paths): they run
# against the kubernaut_sandbox fixture of tests/custom/conftest.py.
globals().update({k: v for k, v in vars(_shown).items() if k.startswith("test_")})


def sync_includes(doc: str) -> str:
    """The doc with each included block replaced by the current content of its file."""

    def replace(m: re.Match[str]) -> str:
        return f"<!-- include: {m['path']} -->\n{m['fence']}{(REPO / m['path']).read_text()}```"

    return INCLUDE.sub(replace, doc)


def test_doc_shows_the_tested_files_verbatim() -> None:
    doc = DOC.read_text()
    shown = {m["path"] for m in INCLUDE.finditer(doc)}
    assert shown == {f"docs/examples/{p.name}" for p in EXAMPLES.iterdir() if p.suffix in (".py", ".yaml")}
    assert doc == sync_includes(doc), (
        "docs/custom-actions.md is stale: run python -m tests.custom.test_docs_example"
    )


def test_doc_yaml_steps_are_valid_template_syntax() -> None:
    # Every step-like snippet in the doc uses the real syntax (`action:`, never `name:`).
    doc = DOC.read_text()
    for snippet in re.findall(r"action: \{[^}]*\}", doc):
        assert re.search(r"\btype: \w+, action: \w+", snippet), snippet


def test_example_template_validates_with_the_action_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Installed as the doc says: an entry point in the "kubernaut.actions" group.
    info = tmp_path / "acme_remediation-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-remediation\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[kubernaut.actions]\nacme_annotate_deployment = annotate_action:AnnotateDeployment\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ActionRegistry()
    assert registry.get("kubernetes", "acme_annotate_deployment") is AnnotateDeployment
    assert registry.package_of("kubernetes", "acme_annotate_deployment") == "acme-remediation 1.0"
    assert registry.problems == []
    template = load_template(EXAMPLES / "annotate-template.yaml", registry=registry)
    assert [s.action.action for s in template.steps] == [
        "acme_annotate_deployment",
        "validate_deployment_ready",
    ]
    resolved = template.step("mark").resolved_rollback(registry)
    assert resolved is not None and resolved.use_undo  # the rollback uses the action's own undo


def test_sensitive_parameter_example() -> None:
    params = _import("sensitive_params").ResetPasswordParams
    assert params.sensitive_fields() == frozenset({"new_password"})
    model = params.model_validate({"namespace": "demo", "secret": "db", "new_password": "hunter2"})
    assert "hunter2" not in repr(model)


def test_undo_restores_a_previous_value(kubernaut_sandbox: KubeSandbox) -> None:
    deployment = kubernaut_sandbox.get("Deployment", "demo", "web")
    assert deployment is not None
    deployment["metadata"]["annotations"] = {"acme.example.com/incident": "INC-0"}
    kubernaut_sandbox.cluster.apply(deployment)
    result = run_action(AnnotateDeployment, PARAMS)
    assert result.undo == {"key": "acme.example.com/incident", "previous": "INC-0"}
    assert_undo_idempotent(AnnotateDeployment, PARAMS, result, state=lambda: annotations(kubernaut_sandbox))
    assert annotations(kubernaut_sandbox)["acme.example.com/incident"] == "INC-0"


def test_a_concurrent_write_is_retried_not_overwritten(
    kubernaut_sandbox: KubeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes.client import ApiClient

    original, patches = ApiClient.call_api, []

    def call_api(self: ApiClient, path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "PATCH" and not patches:  # another writer gets in between our read and write
            deployment = kubernaut_sandbox.get("Deployment", "demo", "web")
            assert deployment is not None
            deployment["metadata"].setdefault("annotations", {})["other/writer"] = "was-here"
            kubernaut_sandbox.cluster.apply(deployment)
        if method == "PATCH":
            patches.append(path)
        return original(self, path, method, *args, **kwargs)

    monkeypatch.setattr(ApiClient, "call_api", call_api)
    run_action(AnnotateDeployment, PARAMS)
    assert len(patches) == 2  # the first write met a 409 (stale resourceVersion) and was redone
    assert annotations(kubernaut_sandbox) == {
        "other/writer": "was-here",
        "acme.example.com/incident": "INC-1",
    }


def test_the_sandbox_fixture_restores_the_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernaut.testing import kube_sandbox

    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", "kubernetes://real-cluster")
    with kube_sandbox(tmp_path, seed=False) as sandbox:
        assert sandbox.get("Deployment", "demo", "web") is None  # not seeded
        from kubernetes.client import CoreV1Api

        namespaces = CoreV1Api(sandbox.context().api_client).list_namespace().items
        assert [n.metadata.name for n in namespaces] == ["default"]
    assert os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] == "kubernetes://real-cluster"


if __name__ == "__main__":
    DOC.write_text(sync_includes(DOC.read_text()))
    print(f"updated {DOC}")
