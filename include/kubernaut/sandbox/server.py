"""
The sandbox API server: a `kmock.KubernetesEmulator` whose request handling is replaced by
a stricter, real-API-compatible implementation (selectors, PUT, subresources, patches, dryRun,
resourceVersion conflicts, Status errors, discovery), plus `/sandbox/*` control endpoints.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal.parsing import ParsedPath, parse_path

from kubernaut.sandbox import errors
from kubernaut.sandbox.disruption import compute_budget, is_pod_ready, selected_pods
from kubernaut.sandbox.errors import ApiError
from kubernaut.sandbox.faults import FAULT_TYPES, WORKLOAD_KINDS, FaultBook
from kubernaut.sandbox.logs import LogBook
from kubernaut.sandbox.patching import APPLY_PATCH, apply_patch
from kubernaut.sandbox.resources import (
    SUBRESOURCE_KINDS,
    ResourceSpec,
    find_resource,
    resolve,
    served_group_versions,
    served_resources,
)
from kubernaut.sandbox.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_to_string,
)
from kubernaut.sandbox.store import Store, WatchEvent
from kubernaut.sandbox.validation import validate_object

JSON = dict[str, Any]
_TRUE = ("true", "True", "1")  # client 36.x sends watch=True; the real API accepts all of these
_WORKLOAD_CATEGORIES = {
    "pods",
    "services",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "horizontalpodautoscalers",
}
SERVER_VERSION: JSON = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-sandbox",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _parse_path(parts: list[str]) -> ParsedPath:
    """kmock's parse_path, but also for `/api/v1/namespaces` (which kmock 0.8 fails to split)."""
    if parts[-1:] == ["namespaces"] and len(parts) in (3, 4) and parts[0] in ("api", "apis"):
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        return ParsedPath(group, version, "namespaces")
    return parse_path("/" + "/".join(parts))


def _json_response(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.json_response(body, status=status)


def _success_status(spec: ResourceSpec, obj: JSON) -> JSON:
    details: JSON = {"name": obj["metadata"]["name"], "kind": spec.plural, "uid": obj["metadata"]["uid"]}
    if spec.group:
        details["group"] = spec.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


@attrs.define(kw_only=True)
class SandboxEmulator(kmock.KubernetesEmulator):
    store: Store = attrs.field(factory=Store)
    logs: LogBook = attrs.field(factory=LogBook)
    faults: FaultBook = attrs.field(factory=FaultBook)
    stopping: bool = False  # set on shutdown so open watch streams end promptly
    # The controller's view of a pod's workload scale, for PDB arithmetic (set by the cluster).
    scale_of: Callable[[JSON], tuple[str, int] | None] | None = None
    # Storage keys of the CRD resources served (see resources.CRD_RESOURCES); none by default.
    crds: frozenset[str] = frozenset()

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        from kubernaut.sandbox import batch, quota

        self.store.admission.extend([batch.admit, quota.admission(self.store)])
        # Declare the catalogue to kmock too, so its own introspection (e.g. kmock.resources) agrees.
        for spec in served_resources(self.crds):
            for version in (spec.version, *spec.extra_versions):
                self.resources[kmock.resource(spec.group, version, spec.plural)] = kmock.ResourceInfo(
                    namespaced=spec.namespaced,
                    kind=spec.kind,
                    singular=spec.singular,
                    verbs=set(spec.verbs),
                    shortnames=set(spec.short_names),
                    subresources=set(spec.subresources),
                )

    # --- entry point ----------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        try:
            request = await kmock.Request._parse(raw_request, id=len(self._requests))
        except ValueError:
            # kmock 0.8 cannot parse e.g. `/api/v1/namespaces` (the namespaces collection itself);
            # we route by path ourselves anyway, so a plain HTTP request is enough.
            request = kmock.Request(
                id=len(self._requests),
                method=raw_request.method,
                url=raw_request.url,
                params=dict(raw_request.query),
                headers=dict(raw_request.headers),
                body=body,
                raw_request=raw_request,
            )
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as exc:  # a sandbox bug: report it like the real API's 500 InternalError
            return await self._render_error(exc)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock keeps every request for assertions; a long-running sandbox must not grow forever.
        del self._requests[:-500]
        try:
            return await self._route(request)
        except ApiError as exc:
            return _json_response(exc.status_body(), exc.status)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            return _json_response(errors.bad_request(f"invalid request body: {exc}").status_body(), 400)

    async def _route(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = "/" + request.url.path.strip("/")
        method = str(request.method.value).upper()
        if path == "/sandbox" or path.startswith("/sandbox/"):
            return self._control(request, path, method)
        if method == "GET":
            discovered = self._discovery(path)
            if discovered is not None:
                return _json_response(discovered)
        force_watch = False
        parts = path.strip("/").split("/")
        watch_at = 2 if parts[:1] == ["api"] else 3
        if len(parts) > watch_at and parts[watch_at] == "watch":  # legacy /api/v1/watch/... paths
            del parts[watch_at]
            force_watch = True
        parsed = _parse_path(parts)
        if parsed.group is None or parsed.version is None or parsed.plural is None:
            raise errors.endpoint_not_found(path)
        spec = find_resource(parsed.group, parsed.version, parsed.plural, self.crds)
        if spec is None or (parsed.namespace is not None and not spec.namespaced):
            raise errors.endpoint_not_found(path)
        version = parsed.version
        namespace, name, sub = parsed.namespace, parsed.name, parsed.subresource
        params = request.params
        is_watch = force_watch or params.get("watch") in _TRUE

        if name is None:
            if method == "GET" and is_watch:
                return await self._watch(request, spec, version, namespace, None)
            if method == "GET":
                return _json_response(self._list(spec, version, namespace, params))
            if method == "POST":
                body = self._body(request)
                validate_object(spec, body)
                obj = self.store.create(spec, body, namespace, dry_run=self._dry(request))
                return _json_response(self._present(obj, version), 201)
            if method == "DELETE":
                return _json_response(self._delete_collection(request, spec, version, namespace))
            raise errors.method_not_allowed()

        if sub is None:
            if method == "GET" and is_watch:
                return await self._watch(request, spec, version, namespace, name)
            if method == "GET":
                return _json_response(
                    self._present(copy.deepcopy(self.store.require(spec, namespace, name)), version)
                )
            if method == "PUT":
                return _json_response(
                    self._present(self._replace(request, spec, namespace, name, None), version)
                )
            if method == "PATCH":
                return _json_response(
                    self._present(self._patch(request, spec, namespace, name, None), version)
                )
            if method == "DELETE":
                return self._delete(request, spec, version, namespace, name)
            raise errors.method_not_allowed()

        if sub not in spec.subresources:
            raise errors.endpoint_not_found(path)
        if sub == "status":
            if method == "GET":
                return _json_response(
                    self._present(copy.deepcopy(self.store.require(spec, namespace, name)), version)
                )
            if method == "PUT":
                return _json_response(
                    self._present(self._replace(request, spec, namespace, name, "status"), version)
                )
            if method == "PATCH":
                return _json_response(
                    self._present(self._patch(request, spec, namespace, name, "status"), version)
                )
        elif sub == "scale":
            if method in ("GET", "PUT", "PATCH"):
                return _json_response(self._scale(request, spec, namespace, name, method))
        elif sub == "log" and method == "GET":
            return self._log(request, namespace, name)
        elif sub == "eviction" and method == "POST":
            return self._evict(request, namespace, name)
        elif sub == "binding" and method == "POST":
            return self._bind(request, namespace, name)
        raise errors.method_not_allowed()

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _body(request: kmock.Request) -> Any:  # an object, or a list of operations for JSON patches
        content_type = request.headers.get("Content-Type", "application/json")
        text = request.body.decode() if request.body else ""
        data = yaml.safe_load(text) if "yaml" in content_type else json.loads(text or "null")
        if not isinstance(data, dict) and not (isinstance(data, list) and "json-patch" in content_type):
            raise errors.bad_request("the request body must be a JSON object")
        return data

    @staticmethod
    def _dry(request: kmock.Request, options: JSON | None = None) -> bool:
        if request.params.get("dryRun") == "All":
            return True
        return "All" in ((options or {}).get("dryRun") or [])

    @staticmethod
    def _present(obj: JSON, version: str) -> JSON:
        """Show the object in the requested version (only the apiVersion differs for shared storage)."""
        group = obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""
        obj["apiVersion"] = f"{group}/{version}" if group else version
        return obj

    @staticmethod
    def _selectors(spec: ResourceSpec, params: Any) -> tuple[list[Requirement], list[FieldRequirement]]:
        return (
            parse_label_selector(params.get("labelSelector")),
            parse_field_selector(params.get("fieldSelector"), spec.plural),
        )

    # --- discovery ------------------------------------------------------------------------------

    def _discovery(self, path: str) -> JSON | None:
        groups = served_group_versions(self.crds)
        if path == "/version":
            return SERVER_VERSION
        if path in ("/healthz", "/livez", "/readyz"):
            return {"status": "ok"}
        if path == "/":
            paths = {"/api", "/api/v1", "/apis", "/version", "/healthz"}
            for group, versions in groups.items():
                paths |= {f"/apis/{group}"} | {f"/apis/{group}/{v}" for v in versions}
            return {"paths": sorted(paths)}
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
            }
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group_info(group, versions) for group, versions in groups.items()],
            }
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group_info(parts[1], groups[parts[1]])}
        if path == "/api/v1" or (
            parts[0] == "apis" and len(parts) == 3 and parts[2] in groups.get(parts[1], [])
        ):
            group, version = ("", "v1") if path == "/api/v1" else (parts[1], parts[2])
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": self._resource_list(group, version, self.crds),
            }
        return None

    @staticmethod
    def _group_info(group: str, versions: list[str]) -> JSON:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    @staticmethod
    def _resource_list(group: str, version: str, crds: frozenset[str]) -> list[JSON]:
        result: list[JSON] = []
        for spec in served_resources(crds):
            if spec.group != group or version not in (spec.version, *spec.extra_versions):
                continue
            entry: JSON = {
                "name": spec.plural,
                "singularName": spec.singular,
                "namespaced": spec.namespaced,
                "kind": spec.kind,
                "verbs": list(spec.verbs),
            }
            if spec.short_names:
                entry["shortNames"] = list(spec.short_names)
            if spec.plural in _WORKLOAD_CATEGORIES:
                entry["categories"] = ["all"]
            result.append(entry)
            for sub in spec.subresources:
                sub_group, sub_kind, verbs = SUBRESOURCE_KINDS[sub]
                sub_entry: JSON = {
                    "name": f"{spec.plural}/{sub}",
                    "singularName": "",
                    "namespaced": spec.namespaced,
                    "kind": sub_kind or spec.kind,
                    "verbs": list(verbs),
                }
                if sub_group:
                    sub_entry.update(group=sub_group, version="v1")
                result.append(sub_entry)
        return result

    # --- list & watch ---------------------------------------------------------------------------

    def _list(self, spec: ResourceSpec, version: str, namespace: str | None, params: Any) -> JSON:
        labels, fields = self._selectors(spec, params)
        items = [
            copy.deepcopy(obj)
            for obj in self.store.list(spec, namespace)
            if labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)
        ]
        metadata: JSON = {"resourceVersion": str(self.store.revision)}
        offset = 0
        if params.get("continue"):
            try:
                offset = int(json.loads(base64.urlsafe_b64decode(params["continue"]))["offset"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(
                    410, "Expired", "the provided continue parameter is too old or invalid", {}
                ) from exc
        limit = int(params.get("limit") or 0)
        if limit > 0 and offset + limit < len(items):
            token = json.dumps({"offset": offset + limit}).encode()
            metadata["continue"] = base64.urlsafe_b64encode(token).decode()
            metadata["remainingItemCount"] = len(items) - offset - limit
            items = items[offset : offset + limit]
        else:
            items = items[offset:]
        return {
            "kind": f"{spec.kind}List",
            "apiVersion": spec.api_version.rsplit("/", 1)[0] + f"/{version}" if spec.group else version,
            "metadata": metadata,
            "items": [self._present(item, version) for item in items],
        }

    async def _watch(
        self,
        request: kmock.Request,
        spec: ResourceSpec,
        version: str,
        namespace: str | None,
        name: str | None,
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        labels, fields = self._selectors(spec, params)

        def matches(obj: JSON | None) -> bool:
            if obj is None:
                return False
            meta = obj["metadata"]
            return (
                (namespace is None or meta.get("namespace") == namespace)
                and (name is None or meta["name"] == name)
                and labels_match(labels, meta.get("labels"))
                and fields_match(fields, obj)
            )

        def translate(event: WatchEvent) -> tuple[str, JSON] | None:
            # Objects moving in/out of the selector appear as ADDED/DELETED, as in the real API.
            if event.storage_key != spec.storage_key:
                return None
            was, now = matches(event.old), matches(event.new)
            if event.type == "DELETED":
                return ("DELETED", event.new) if was or now else None
            if now:
                return ("MODIFIED" if was else "ADDED", event.new)
            return ("DELETED", event.new) if was else None

        queue = self.store.subscribe()  # subscribe before the snapshot: no await in between, so no gaps
        try:
            initial: list[tuple[str, JSON]] = []
            since = params.get("resourceVersion")
            if since in (None, "", "0") or params.get("sendInitialEvents") in _TRUE:
                initial = [("ADDED", obj) for obj in self.store.list(spec, namespace) if matches(obj)]
            elif int(since) < self.store.oldest_replayable:
                gone = ApiError(
                    410, "Expired", f"too old resource version: {since} ({self.store.revision})", {}
                )
                initial = [("ERROR", gone.status_body())]
            else:
                initial = [t for t in map(translate, self.store.history_since(int(since))) if t is not None]
            response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            raw_request = request._raw_request
            assert raw_request is not None
            await response.prepare(raw_request)
            timeout = float(params.get("timeoutSeconds") or 0)
            deadline = time.monotonic() + timeout if timeout > 0 else None
            for type_, obj in initial:
                await self._send(response, type_, obj, version)
            if initial and initial[0][0] == "ERROR":
                return response
            while not self.stopping and (deadline is None or time.monotonic() < deadline):
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=0.1)
                except TimeoutError:
                    continue
                translated = translate(event)
                if translated is not None:
                    await self._send(response, *translated, version)
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        except ConnectionError:  # the client went away
            return aiohttp.web.Response(status=499)
        finally:
            self.store.unsubscribe(queue)

    async def _send(self, response: aiohttp.web.StreamResponse, type_: str, obj: JSON, version: str) -> None:
        payload = obj if type_ == "ERROR" else self._present(copy.deepcopy(obj), version)
        await response.write(json.dumps({"type": type_, "object": payload}).encode() + b"\n")

    # --- writes ---------------------------------------------------------------------------------

    def _check_pod_update(self, spec: ResourceSpec, current: JSON, new: JSON, sub: str | None) -> None:
        """Pod specs are immutable except for images, activeDeadlineSeconds and tolerations."""
        if spec.plural != "pods" or sub is not None:
            return

        def mutable_stripped(pod_spec: JSON) -> JSON:
            stripped = copy.deepcopy(pod_spec)
            for key in ("activeDeadlineSeconds", "tolerations"):
                stripped.pop(key, None)
            for container in [*stripped.get("containers", []), *stripped.get("initContainers", [])]:
                container.pop("image", None)
            return stripped

        from kubernaut.sandbox.defaults import default_pod_spec

        new_spec = copy.deepcopy(new.get("spec") or {})
        default_pod_spec(new_spec)
        if mutable_stripped(new_spec) != mutable_stripped(current.get("spec") or {}):
            raise errors.invalid(
                spec,
                current["metadata"]["name"],
                "spec",
                "<pod spec>",
                "pod updates may not change fields other than `spec.containers[*].image`, "
                "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
                "`spec.tolerations` (only additions to existing tolerations)",
            )

    def _replace(
        self, request: kmock.Request, spec: ResourceSpec, namespace: str | None, name: str, sub: str | None
    ) -> JSON:
        body = self._body(request)
        current = self.store.require(spec, namespace, name)
        self._check_pod_update(spec, current, body, sub)
        if sub is None:
            validate_object(spec, body)
        return self.store.update(spec, namespace, name, body, subresource=sub, dry_run=self._dry(request))

    def _patch(
        self, request: kmock.Request, spec: ResourceSpec, namespace: str | None, name: str, sub: str | None
    ) -> JSON:
        content_type = request.headers.get("Content-Type", "")
        patch = self._body(request)
        current = self.store.get(spec, namespace, name)
        if current is None and content_type.startswith(APPLY_PATCH) and sub is None:
            created = {**patch, "metadata": {**patch.get("metadata", {}), "name": name}}
            validate_object(spec, created)
            return self.store.create(spec, created, namespace, dry_run=self._dry(request))
        if current is None:
            raise errors.not_found(spec, name)
        # A custom resource has no Go type, hence no merge keys: no strategic merge patch (415).
        kind = None if spec.storage_key in self.crds else spec.kind
        patched = apply_patch(copy.deepcopy(current), patch, content_type, kind)
        # A patch that carries (or JSON-patches in) a stale resourceVersion is a conflict, like a PUT.
        if (
            str((patched.get("metadata") or {}).get("resourceVersion"))
            != current["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(spec, name)
        self._check_pod_update(spec, current, patched, sub)
        if sub is None:
            validate_object(spec, patched)
        return self.store.update(spec, namespace, name, patched, subresource=sub, dry_run=self._dry(request))

    def _delete(
        self, request: kmock.Request, spec: ResourceSpec, version: str, namespace: str | None, name: str
    ) -> aiohttp.web.Response:
        options = self._body(request) if request.body.strip() else {}
        current = self.store.require(spec, namespace, name)
        self._check_preconditions(spec, current, options)
        dry = self._dry(request, options)
        policy = request.params.get("propagationPolicy") or options.get("propagationPolicy")
        if policy == "Orphan" and not dry:
            self._orphan_dependents(current["metadata"]["uid"])
        grace = request.params.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        seconds = None if grace in (None, "") else int(grace)
        obj, gone = self.store.delete(spec, namespace, name, dry_run=dry, grace_period_seconds=seconds)
        if spec.plural == "pods" or not gone:  # pods (graceful) and finalized objects return the object
            return _json_response(self._present(obj, version), 200 if gone or spec.plural == "pods" else 202)
        return _json_response(_success_status(spec, obj))

    @staticmethod
    def _check_preconditions(spec: ResourceSpec, current: JSON, options: JSON) -> None:
        """DeleteOptions.preconditions (of a delete or an eviction): 409 when they do not hold."""
        preconditions = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) and preconditions[field] != current["metadata"].get(field):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: {field} in precondition: "
                    f"{preconditions[field]}, {field} in object meta: {current['metadata'].get(field)}",
                    {"name": current["metadata"]["name"], "kind": spec.plural},
                )

    def _orphan_dependents(self, uid: str) -> None:
        for (storage_key, namespace, name), obj in self.store.items():
            refs = obj["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                updated = copy.deepcopy(obj)
                updated["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                updated["metadata"].pop("resourceVersion", None)
                self.store.update(resolve(storage_key), namespace, name, updated, keep_status=True)

    def _delete_collection(
        self, request: kmock.Request, spec: ResourceSpec, version: str, namespace: str | None
    ) -> JSON:
        labels, fields = self._selectors(spec, request.params)
        deleted = []
        for obj in self.store.list(spec, namespace):
            if labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj):
                gone, _ = self.store.delete(
                    spec,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                    dry_run=self._dry(request),
                )
                deleted.append(self._present(gone, version))
        return {
            "kind": f"{spec.kind}List",
            "apiVersion": spec.api_version,
            "metadata": {"resourceVersion": str(self.store.revision)},
            "items": deleted,
        }

    # --- subresources ---------------------------------------------------------------------------

    @staticmethod
    def _scale_of(obj: JSON) -> JSON:
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": int(obj.get("spec", {}).get("replicas", 1))},
            "status": {
                "replicas": int((obj.get("status") or {}).get("replicas", 0)),
                "selector": selector_to_string(obj.get("spec", {}).get("selector")),
            },
        }

    def _scale(
        self, request: kmock.Request, spec: ResourceSpec, namespace: str | None, name: str, method: str
    ) -> JSON:
        current = self.store.require(spec, namespace, name)
        scale = self._scale_of(current)
        if method == "GET":
            return scale
        body = self._body(request)
        content_type = request.headers.get("Content-Type", "")
        new_scale = body if method == "PUT" else apply_patch(scale, body, content_type, "Scale")
        requested = (new_scale.get("metadata") or {}).get("resourceVersion")
        if requested and requested != current["metadata"]["resourceVersion"]:
            raise errors.conflict(spec, name)
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                resolve("deployments") if spec.plural == "deployments" else spec,
                name,
                "spec.replicas",
                replicas,
                "must be greater than or equal to 0",
            )
        updated = copy.deepcopy(current)
        updated["spec"]["replicas"] = replicas
        result = self.store.update(
            spec, namespace, name, updated, check_version=False, dry_run=self._dry(request)
        )
        return self._scale_of(result)

    def _log(self, request: kmock.Request, namespace: str | None, name: str) -> aiohttp.web.Response:
        assert namespace is not None
        pods = resolve("pods")
        pod = self.store.require(pods, namespace, name)
        params = request.params
        containers = [
            c["name"] for c in [*pod["spec"].get("initContainers", []), *pod["spec"].get("containers", [])]
        ]
        main = [c["name"] for c in pod["spec"].get("containers", [])]
        container = params.get("container") or (main[0] if len(main) == 1 else None)
        if container is None:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]"
            )
        if container not in containers:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        previous = params.get("previous") in _TRUE
        if previous and not self.logs.has_previous(namespace, name, container):
            raise errors.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        state = next((s.get("state") or {} for s in statuses if s.get("name") == container), {})
        if not previous and (not statuses or state.get("waiting", {}).get("reason") == "ContainerCreating"):
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        tail = params.get("tailLines")
        limit = params.get("limitBytes")
        text = self.logs.read(
            namespace,
            name,
            container,
            previous=previous,
            tail_lines=int(tail) if tail not in (None, "") else None,
            timestamps=params.get("timestamps") in _TRUE,
            limit_bytes=int(limit) if limit not in (None, "") else None,
        )
        return aiohttp.web.Response(text=text, content_type="text/plain")

    def _evict(self, request: kmock.Request, namespace: str | None, name: str) -> aiohttp.web.Response:
        assert namespace is not None
        pods_spec = resolve("pods")
        body = self._body(request) if request.body.strip() else {}
        pod = self.store.require(pods_spec, namespace, name)
        options = body.get("deleteOptions") or {}
        self._check_preconditions(pods_spec, pod, options)
        dry = self._dry(request, options)
        # As the real eviction REST: no budget applies to a pod that is done, not yet running or
        # already terminating (canIgnorePDB).
        exempt = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Pending")
        if not exempt and not pod["metadata"].get("deletionTimestamp"):
            all_pods = self.store.list(pods_spec, namespace)
            budgets = [
                pdb
                for pdb in self.store.list(resolve("poddisruptionbudgets"), namespace)
                if any(p["metadata"]["uid"] == pod["metadata"]["uid"] for p in selected_pods(pdb, [pod]))
            ]
            if len(budgets) > 1:
                raise ApiError(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the "
                    "eviction subresource does not support.",
                    {},
                )
            for pdb in budgets:
                budget = compute_budget(pdb, all_pods, self.scale_of)
                healthy = is_pod_ready(pod)
                allowed = (
                    budget.disruptions_allowed > 0
                    if healthy
                    else budget.current_healthy >= budget.desired_healthy
                )
                if not allowed:
                    raise errors.too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                f"{budget.desired_healthy} healthy pods and has {budget.current_healthy} "
                                "currently",
                            }
                        ],
                    )
        if not dry:
            grace = options.get("gracePeriodSeconds")
            self.store.delete(pods_spec, namespace, name, grace_period_seconds=grace)
        return _json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
        )

    def _bind(self, request: kmock.Request, namespace: str | None, name: str) -> aiohttp.web.Response:
        pods_spec = resolve("pods")
        pod = copy.deepcopy(self.store.require(pods_spec, namespace, name))
        if pod["spec"].get("nodeName"):
            raise errors.conflict(pods_spec, name)
        pod["spec"]["nodeName"] = (self._body(request).get("target") or {}).get("name")
        pod["metadata"].pop("resourceVersion", None)
        self.store.update(pods_spec, namespace, name, pod, keep_status=True)
        return _json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
        )

    # --- sandbox control ------------------------------------------------------------------------

    def _control(self, request: kmock.Request, path: str, method: str) -> aiohttp.web.Response:
        if path == "/sandbox/healthz":
            return aiohttp.web.Response(text="ok")
        if path != "/sandbox/faults":
            raise errors.endpoint_not_found(path)
        if method == "GET":
            return _json_response({"faults": [fault.to_dict() for fault in self.faults.faults]})
        if method == "DELETE":
            self.faults.clear()
            return _json_response({"faults": []})
        if method == "POST":
            body = self._body(request)
            kind = next((k for k in WORKLOAD_KINDS if k in body), "deployment")
            options = {k: str(body[k]) for k in ("memory", "container", "image") if body.get(k) is not None}
            try:
                fault = self.inject_fault(
                    str(body.get("type")),
                    str(body.get("namespace", "default")),
                    str(body.get(kind)),
                    kind,
                    **options,
                )
            except (ValueError, KeyError) as exc:
                raise errors.bad_request(f"{exc}; supported types: {', '.join(FAULT_TYPES)}") from exc
            return _json_response(fault, 201)
        raise errors.method_not_allowed()

    def inject_fault(
        self,
        type_: str,
        namespace: str,
        workload: str,
        kind: str = "deployment",
        *,
        memory: str | None = None,
        container: str | None = None,
        image: str | None = None,
    ) -> JSON:
        """``memory``/``container``: the oom fault's need and target; ``image``/``container``:
        the image-pull fault's image and target, rolled out here (see faults.py)."""
        spec = resolve(kind + "s")
        obj = self.store.get(spec, namespace, workload)
        if obj is None:
            raise errors.not_found(spec, workload)
        containers = ((obj["spec"].get("template") or {}).get("spec") or {}).get("containers") or []
        fault = self.faults.inject(
            type_,
            namespace,
            workload,
            kind,
            containers=containers,
            memory=memory,
            container=container,
            image=image,
        )
        if fault.images:  # the bad rollout, as `kubectl set image` makes it
            rollout = copy.deepcopy(obj)
            for item in rollout["spec"]["template"]["spec"]["containers"]:
                item["image"] = fault.images.get(item["name"], item["image"])
            rollout["metadata"].pop("resourceVersion", None)
            self.store.update(spec, namespace, workload, rollout, check_version=False)
        return fault.to_dict()
