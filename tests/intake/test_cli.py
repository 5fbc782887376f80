from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubernaut.intake.cli import route_main
from tests.conftest import REPO
from tests.intake.conftest import alert, payload

Capture = pytest.CaptureFixture[str]


def test_route_prints_decisions_without_triggering(tmp_path: Path, capsys: Capture) -> None:
    file = tmp_path / "payload.json"
    file.write_text(json.dumps(payload(alert(), alert("Watchdog", fingerprint="ff", severity="none"))))
    args = ["--alerts", str(file), "--templates", str(REPO / "templates"), "--history", "off"]
    assert route_main(args) == 0
    out = capsys.readouterr()
    decisions = json.loads(out.out)
    assert [d["decision"] for d in decisions] == ["triggered", "no_template"]
    assert decisions[0]["target"] == {"kind": "Pod", "namespace": "demo", "name": "web-7d4b9c-x2x"}
    assert "nothing launched" in decisions[0]["reason"]


def test_route_rejects_a_bad_payload_naming_the_field(tmp_path: Path, capsys: Capture) -> None:
    file = tmp_path / "payload.json"
    file.write_text(json.dumps({"status": "firing", "alerts": [{"labels": {}}]}))
    assert route_main(["--alerts", str(file), "--history", "off"]) == 2
    assert "alerts[0].fingerprint" in capsys.readouterr().err
