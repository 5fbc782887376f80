"""Configuration: validated when loaded, errors name the source and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubernaut.cli import main
from kubernaut.config import ConfigError, load_config, parse_config


def test_defaults_protect_the_system_namespaces() -> None:
    config = parse_config({}, "defaults")
    assert config.policy.protected_namespaces == ["kube-system", "kube-public", "kube-node-lease"]
    assert config.history_conn_id == "kubernaut_history"


def test_errors_name_the_source_and_field() -> None:
    with pytest.raises(ConfigError, match=r"ops.yaml: .*policy.max_replicas: Input should be greater"):
        parse_config({"policy": {"max_replicas": -1}}, "ops.yaml")
    with pytest.raises(ConfigError, match=r"policy.max_replicaz: Extra inputs are not permitted"):
        parse_config({"policy": {"max_replicaz": 3}}, "ops.yaml")


def test_file_from_env_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kubernaut.yaml"
    path.write_text("policy: {require_label: kubernaut.io/managed=true}\nscripts: {flush: [/bin/true]}\n")
    monkeypatch.setenv("KUBERNAUT_CONFIG", str(path))
    config = load_config()
    assert config.policy.require_label == "kubernaut.io/managed=true"
    assert config.scripts == {"flush": ["/bin/true"]}


def test_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("policy: {max_replicas: 7}\n")
    bad.write_text("policy: {max_replicas: many}\n")
    assert main(["config", str(good)]) == 0
    assert "max_replicas: 7" in capsys.readouterr().out
    assert main(["config", str(bad)]) == 1
    assert "bad.yaml: invalid kubernaut configuration: policy.max_replicas" in capsys.readouterr().err
    assert main(["config", str(tmp_path / "missing.yaml")]) == 2
