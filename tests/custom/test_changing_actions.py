"""`http_request` (POST/PUT/PATCH/DELETE) and `run_script` change something: through the real
runner they need the history database, journal that they cannot be undone before they run,
and the safety policy refuses them when they name a protected namespace."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from kubernaut.actions import PreconditionFailed, registry
from kubernaut.actions.base import ActionContext, ActionError
from kubernaut.actions.catalogue import markdown_table
from kubernaut.config import KubernautConfig, PolicyConfig
from kubernaut.history import History
from kubernaut.operators.recorder import HistoryRecorder, NullRecorder
from kubernaut.operators.runner import StepInputError, StepOutcome, StepSpec, run_step
from kubernaut.policy import PolicyViolation
from kubernaut.rollback import rollback_run

http_request = registry.get("custom", "http_request")
run_script = registry.get("custom", "run_script")
log = logging.getLogger("kubernaut.test")
POLICY = PolicyConfig(protected_namespaces=["kube-system", "payments"])
_runs = count()


class JournalProbe:
    """A local HTTP API that, on every request, looks up the step's undo-journal entry: what
    the journal held at the moment the change reached the remote system."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.run_id: int | None = None
        self.seen: list[tuple[str, str, dict[str, Any] | None]] = []
        self.status = 200
        probe = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                assert probe.run_id is not None
                journaled = probe.history.undo_record(probe.run_id, "call-api")
                probe.seen.append((self.command, self.path, journaled))
                body = json.dumps({"ok": probe.status < 400}).encode()
                self.send_response(probe.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"


@pytest.fixture
def api(history: History, airflow_connection: Callable[..., str]) -> Iterator[JournalProbe]:
    probe = JournalProbe(history)
    airflow_connection("ops_api", probe.url)
    yield probe
    probe.server.shutdown()
    probe.server.server_close()


def new_run(history: History) -> int:
    return history.ensure_run("custom_test", f"run-{next(_runs)}-{id(history)}", "custom-test", {}, False)


def step(
    name: str, action: str, parameters: dict[str, Any], rollback: dict[str, Any] | None = None
) -> StepSpec:
    return StepSpec(
        template="custom-test",
        name=name,
        action_type="custom",
        action_name=action,
        parameters=parameters,
        rollback=rollback or {"mode": "undo"},
    )


def run(spec: StepSpec, history: History | None, run_id: int | None, config: KubernautConfig) -> StepOutcome:
    recorder = (
        HistoryRecorder(
            history, run_id, spec.name, f"custom/{spec.action_name}", str((spec.rollback or {})["mode"])
        )
        if history is not None and run_id is not None
        else NullRecorder()
    )
    return run_step(
        spec, conf={}, params={}, steps={}, timeout=30, logger=log, recorder=recorder, _config=config
    )


def journal(history: History, run_id: int) -> dict[str, dict[str, Any]]:
    found = history.run(run_id)
    assert found is not None
    return {entry["step"]: entry for entry in found["undo"]}


def step_row(history: History, run_id: int, name: str) -> dict[str, Any]:
    found = history.run(run_id)
    assert found is not None
    return {s["step"]: s for s in found["steps"]}[name]


# -- http_request ------------------------------------------------------------------------

NO_UNDO = "custom/http_request POST /tickets changes a remote system and has no undo"


def test_post_is_journaled_as_not_undoable_before_it_is_sent(api: JournalProbe, history: History) -> None:
    config = KubernautConfig(policy=POLICY)
    api.run_id = run_id = new_run(history)
    spec = step("call-api", "http_request", {"conn_id": "ops_api", "method": "POST", "path": "/tickets"})
    outcome = run(spec, history, run_id, config)
    # When the request reached the API, the journal already said the change cannot be undone.
    assert api.seen == [("POST", "/tickets", {"no_undo": NO_UNDO})]
    assert outcome.record["mutating"] is True and outcome.record["output"]["status"] == 200
    entry = journal(history, run_id)["call-api"]
    assert entry["action"] == "custom/http_request" and entry["prior_state"] == {"no_undo": NO_UNDO}
    assert entry["undo_status"] == "pending" and entry["rollback_mode"] == "undo"

    # The rollback knows the change happened, and that it cannot be undone.
    report = rollback_run(
        history,
        run_id,
        {"call-api": {"mode": "undo"}},
        lambda: ActionContext(_config=config),
        lambda _: {},
        log,
    )
    [item] = report.items
    assert item.status == "not_restorable" and "custom/http_request has no undo" in item.result["reason"]


def test_post_that_fails_remotely_is_still_journaled(api: JournalProbe, history: History) -> None:
    api.run_id = run_id = new_run(history)
    api.status = 500
    spec = step("call-api", "http_request", {"conn_id": "ops_api", "method": "POST", "path": "/tickets"})
    with pytest.raises(ActionError, match="HTTP 500"):
        run(spec, history, run_id, KubernautConfig())
    # The remote system may have acted before answering 500: the rollback must know.
    assert api.seen == [("POST", "/tickets", {"no_undo": NO_UNDO})]
    assert journal(history, run_id)["call-api"]["prior_state"] == {"no_undo": NO_UNDO}


def test_template_rollback_action_undoes_the_post(api: JournalProbe, history: History) -> None:
    config = KubernautConfig()
    api.run_id = run_id = new_run(history)
    undo_call = {
        "mode": "action",
        "action": "http_request",
        "parameters": {"conn_id": "ops_api", "method": "DELETE", "path": "/tickets/42"},
    }
    spec = step(
        "call-api", "http_request", {"conn_id": "ops_api", "method": "POST", "path": "/tickets"}, undo_call
    )
    run(spec, history, run_id, config)
    assert journal(history, run_id)["call-api"]["rollback_mode"] == "action"
    report = rollback_run(
        history, run_id, {"call-api": undo_call}, lambda: ActionContext(_config=config), lambda _: {}, log
    )
    assert [(i.step, i.status) for i in report.items] == [("call-api", "applied")]
    assert [(method, path) for method, path, _ in api.seen] == [
        ("POST", "/tickets"),
        ("DELETE", "/tickets/42"),
    ]


def test_post_needs_the_history_database_but_get_does_not(api: JournalProbe) -> None:
    post = step("call-api", "http_request", {"conn_id": "ops_api", "method": "POST", "path": "/tickets"})
    with pytest.raises(StepInputError, match="'call-api' makes a change but no history database"):
        run(post, None, None, KubernautConfig())
    assert api.seen == []
    api.run_id = -1  # nothing journaled for a read
    get = step("call-api", "http_request", {"conn_id": "ops_api", "path": "/namespaces/payments/status"})
    outcome = run(get, None, None, KubernautConfig(policy=POLICY))
    assert outcome.record["mutating"] is False and api.seen == [("GET", "/namespaces/payments/status", None)]


@pytest.mark.parametrize(
    "request_params",
    [
        {"method": "POST", "path": "/api/v1/namespaces/payments/flush"},
        {"method": "DELETE", "path": "/cache", "query": {"namespace": "payments"}},
        {"method": "PUT", "path": "/jobs", "body": {"target": {"namespaces": ["shop", "Payments"]}}},
        {"method": "PATCH", "path": "/jobs", "headers": {"X-Scope": "cluster/payments"}},
        {"method": "POST", "path": "/namespaces/kube-system/restart"},
    ],
)
def test_request_naming_a_protected_namespace_is_refused(
    request_params: dict[str, Any], api: JournalProbe, history: History
) -> None:
    api.run_id = run_id = new_run(history)
    spec = step("call-api", "http_request", {"conn_id": "ops_api", **request_params})
    with pytest.raises(
        PolicyViolation, match=r"'protected_namespace' refuses Namespace/(payments|kube-system)"
    ):
        run(spec, history, run_id, KubernautConfig(policy=POLICY))
    assert api.seen == []  # nothing sent
    assert journal(history, run_id) == {}  # refused before anything was journaled
    assert (
        step_row(history, run_id, "call-api")["result"]["policy_violation"]["rule"] == "protected_namespace"
    )


def test_dry_run_shows_the_refusal_too(api: JournalProbe) -> None:
    spec = step("call-api", "http_request", {"conn_id": "ops_api", "method": "POST", "path": "/ns/payments"})
    spec.dry_run = True
    with pytest.raises(PolicyViolation, match="payments"):
        run(spec, None, None, KubernautConfig(policy=POLICY))


def test_names_that_only_contain_a_protected_one_are_not_refused(api: JournalProbe, history: History) -> None:
    api.run_id = run_id = new_run(history)
    spec = step(
        "call-api",
        "http_request",
        {
            "conn_id": "ops_api",
            "method": "POST",
            "path": "/payments-api/flush",
            "body": {"ns": "kube-systems"},
        },
    )
    run(spec, history, run_id, KubernautConfig(policy=POLICY))
    assert [(method, path) for method, path, _ in api.seen] == [("POST", "/payments-api/flush")]


# -- run_script ----------------------------------------------------------------------------


@pytest.fixture
def script_config(tmp_path: Path) -> tuple[KubernautConfig, Path]:
    marker = tmp_path / "ran.txt"
    return (
        KubernautConfig(
            policy=POLICY,
            scripts={
                "flush": ["sh", "-c", f'echo "$*" >> {marker}', "flush"],
                "broken": ["sh", "-c", f'echo "$*" >> {marker}; exit 3', "broken"],
            },
        ),
        marker,
    )


def test_script_is_journaled_as_not_undoable_before_it_runs(
    script_config: tuple[KubernautConfig, Path], history: History
) -> None:
    config, marker = script_config
    run_id = new_run(history)
    outcome = run(step("flush", "run_script", {"script": "flush", "args": ["shop"]}), history, run_id, config)
    assert marker.read_text() == "shop\n" and outcome.record["mutating"] is True
    no_undo = {"no_undo": "custom/run_script flush runs a command whose effect has no undo"}
    assert journal(history, run_id)["flush"]["prior_state"] == no_undo
    # A script that fails after running may have changed something: still journaled.
    with pytest.raises(ActionError, match="exited with 3"):
        run(step("broken", "run_script", {"script": "broken", "args": ["shop"]}), history, run_id, config)
    assert marker.read_text() == "shop\nshop\n"
    assert journal(history, run_id)["broken"]["prior_state"] == {
        "no_undo": "custom/run_script broken runs a command whose effect has no undo"
    }


def test_script_needs_the_history_database(script_config: tuple[KubernautConfig, Path]) -> None:
    config, marker = script_config
    with pytest.raises(StepInputError, match="no history database"):
        run(step("flush", "run_script", {"script": "flush", "args": ["shop"]}), None, None, config)
    assert not marker.exists()


@pytest.mark.parametrize("args", [["payments"], ["app=web", "ns=payments"], ["cluster/kube-system"]])
def test_script_argument_naming_a_protected_namespace_is_refused(
    args: list[str], script_config: tuple[KubernautConfig, Path], history: History
) -> None:
    config, marker = script_config
    run_id = new_run(history)
    with pytest.raises(PreconditionFailed, match=r"policy rule 'protected_namespace' refuses Namespace/"):
        run(step("flush", "run_script", {"script": "flush", "args": args}), history, run_id, config)
    assert not marker.exists()
    assert journal(history, run_id) == {}


# -- declarations and the catalogue --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "mutating"),
    [("GET", False), ("HEAD", False), ("POST", True), ("PUT", True), ("PATCH", True), ("DELETE", True)],
)
def test_http_request_declares_a_change_by_method(method: str, mutating: bool) -> None:
    params = http_request.Params.model_validate({"conn_id": "ops_api", "method": method})
    assert http_request().is_mutating(params) is mutating


def test_catalogue_shows_them_as_changing_without_undo() -> None:
    rows = {
        line.split(" | ")[0].strip("| `"): line.split(" | ") for line in markdown_table().splitlines()[2:]
    }
    for name in ("http_request", "run_script"):
        _, kind, _, changes, undo, _ = rows[name]
        assert kind == "custom" and not changes.startswith("reads only"), changes
        assert "protected namespace" in changes and "not_restorable" in undo and "`rollback:`" in undo
    assert (
        rows["http_request"][3].startswith("POST/PUT/PATCH/DELETE")
        and "GET/HEAD read only" in rows["http_request"][3]
    )
    assert rows["log"][3].startswith("reads only")
