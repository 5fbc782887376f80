"""The `serve` command as a real process, and Airflow's KubernetesHook against the sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client, config

from kubernaut.sandbox import SandboxCluster


def test_serve_process_with_ready_file_and_sigterm(tmp_path: Path) -> None:
    kubeconfig, ready = tmp_path / "kubeconfig", tmp_path / "ready"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubernaut.sandbox",
            "serve",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--seed",
            "demo",
            "--fault",
            "crashloop:demo/web",
            "--ready-file",
            str(ready),
            "--pod-ready-delay",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        url = ready.read_text()
        assert url.startswith("http://127.0.0.1:")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        assert api.configuration.host == url
        namespaces = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
        assert {"default", "demo", "kube-system"} <= namespaces
        with urllib.request.urlopen(url + "/sandbox/faults", timeout=5) as response:
            assert json.loads(response.read())["faults"][0]["type"] == "crashloop"
        api.close()
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stdout.strip() == url


def test_airflow_kubernetes_hook_test_connection(
    cluster: SandboxCluster, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", os.environ.get("AIRFLOW_HOME", str(tmp_path)))
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}),
    )
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    hook = KubernetesHook(conn_id="kubernetes_default")
    ok, message = hook.test_connection()
    assert ok is True, message
    assert "v1.33" in message
    assert {p.metadata.name for p in hook.core_v1_client.list_namespaced_pod("demo").items}
