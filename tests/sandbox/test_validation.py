"""The sandbox refuses what the real API server refuses, with its 422 Invalid Status:
container requests above their limits, on every write of a pod or a pod template."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubernaut.sandbox import SandboxCluster

JSON_PATCH = "application/json-patch+json"


def _status(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)  # type: ignore[no-any-return]


def _container(requests: dict[str, str], limits: dict[str, str]) -> dict[str, Any]:
    return {"name": "main", "image": "busybox:1.36", "resources": {"requests": requests, "limits": limits}}


def test_deployment_patch_with_requests_above_limits_is_invalid(
    cluster: SandboxCluster, apps: client.AppsV1Api
) -> None:
    before = apps.read_namespaced_deployment("api", "demo")
    patch = [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/resources/requests/memory",
            "value": "2Gi",
        },
        {"op": "replace", "path": "/spec/template/spec/containers/0/resources/limits/memory", "value": "1Gi"},
    ]
    for dry_run in ("All", None):
        with pytest.raises(ApiException) as err:
            apps.patch_namespaced_deployment(
                "api", "demo", patch, _content_type=JSON_PATCH, **({"dry_run": dry_run} if dry_run else {})
            )
        assert err.value.status == 422
        status = _status(err.value)
        assert status["reason"] == "Invalid" and status["code"] == 422
        assert status["message"] == (
            'Deployment.apps "api" is invalid: spec.template.spec.containers[0].resources.requests: '
            'Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi'
        )
        assert status["details"] == {
            "name": "api",
            "group": "apps",
            "kind": "Deployment",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": 'Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi',
                    "field": "spec.template.spec.containers[0].resources.requests",
                }
            ],
        }
    after = apps.read_namespaced_deployment("api", "demo")
    assert after.metadata.resource_version == before.metadata.resource_version
    # Raising both together is fine.
    patch[0]["value"], patch[1]["value"] = "1Gi", "1Gi"
    apps.patch_namespaced_deployment("api", "demo", patch, _content_type=JSON_PATCH)
    limits = apps.read_namespaced_deployment("api", "demo").spec.template.spec.containers[0].resources.limits
    assert limits == {"memory": "1Gi"}


def test_pod_create_and_statefulset_replace_are_validated(
    cluster: SandboxCluster, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy"},
        "spec": {
            "initContainers": [_container({"cpu": "1"}, {"cpu": "500m"})],
            "containers": [_container({"memory": "64Mi", "nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "2"})],
        },
    }
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("demo", pod)
    status = _status(err.value)
    assert err.value.status == 422 and status["details"]["kind"] == "Pod"
    assert status["message"] == (
        'Pod "greedy" is invalid: ['
        'spec.initContainers[0].resources.requests: Invalid value: "1": must be less than or equal to '
        "cpu limit of 500m, "
        'spec.containers[0].resources.requests: Invalid value: "1": '
        "must be equal to nvidia.com/gpu limit of 2]"
    )
    assert [c["field"] for c in status["details"]["causes"]] == [
        "spec.initContainers[0].resources.requests",
        "spec.containers[0].resources.requests",
    ]
    assert cluster.get("pods", "demo", "greedy") is None

    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "demo"},
        "spec": {
            "selector": {"matchLabels": {"app": "db"}},
            "serviceName": "db",
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [_container({"memory": "128Mi"}, {"memory": "256Mi"})]},
            },
        },
    }
    created = apps.create_namespaced_stateful_set("demo", statefulset)
    body = apps.api_client.sanitize_for_serialization(created)
    body["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "300Mi"
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_stateful_set("db", "demo", body)
    assert err.value.status == 422
    assert _status(err.value)["message"].startswith(
        'StatefulSet.apps "db" is invalid: spec.template.spec.containers[0].resources.requests: '
        'Invalid value: "300Mi": must be less than or equal to memory limit of 256Mi'
    )


def test_cronjob_template_and_bad_quantities(cluster: SandboxCluster, api_client: client.ApiClient) -> None:
    batch = client.BatchV1Api(api_client)
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [_container({"memory": "1Gi"}, {"memory": "512Mi"})],
                        }
                    }
                }
            },
        },
    }
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_cron_job("demo", cronjob)
    assert err.value.status == 422 and _status(err.value)["details"]["causes"][0]["field"] == (
        "spec.jobTemplate.spec.template.spec.containers[0].resources.requests"
    )
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"memory": "lots"}
    }
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_cron_job("demo", cronjob)
    assert (
        err.value.status == 400
        and "quantities must match the regular expression" in _status(err.value)["message"]
    )
