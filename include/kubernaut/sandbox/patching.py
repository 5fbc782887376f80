"""The three PATCH flavours of the real API: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from kubernaut.sandbox.errors import ApiError, bad_request, unprocessable

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_PRIMITIVE_MERGE = "<primitive>"  # lists of scalars merged as sets (e.g. metadata.finalizers)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, `null` deletes a key, everything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_key_for(path: Sequence[str]) -> str | None:
    """
    The `patchMergeKey` of a list field, as declared in the real API's Go types.

    Lists without a merge key (e.g. `spec.taints`, `tolerations`, `args`) are replaced atomically.
    """
    last = path[-1] if path else ""
    parent = path[-2] if len(path) >= 2 else ""
    if last in ("containers", "initContainers", "ephemeralContainers") and parent == "spec":
        return "name"
    if last in ("volumes", "imagePullSecrets") and parent == "spec":
        return "name"
    if parent in ("containers", "initContainers", "ephemeralContainers"):
        return {
            "env": "name",
            "ports": "containerPort",
            "volumeMounts": "mountPath",
            "volumeDevices": "devicePath",
        }.get(last)
    if last == "ports" and tuple(path) == ("spec", "ports"):  # Service ports
        return "port"
    if last == "conditions":
        return "type"
    if tuple(path) == ("metadata", "ownerReferences"):
        return "uid"
    if tuple(path) == ("metadata", "finalizers"):
        return _PRIMITIVE_MERGE
    if tuple(path) == ("status", "addresses"):  # Node addresses
        return "type"
    if last == "hostAliases":
        return "ip"
    return None


def strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """Strategic merge: like JSON merge, but lists with a merge key are merged item-by-item."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue  # ordering/retention hints do not change the content
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, (*path, key))
        else:
            merged = strategic_merge_patch(result.get(key), value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _merge_list(target: Any, patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    merge_key = merge_key_for(path)
    current: list[Any] = copy.deepcopy(target) if isinstance(target, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    if merge_key is None:
        return copy.deepcopy(patch)
    if merge_key == _PRIMITIVE_MERGE:
        return current + [item for item in patch if item not in current]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise bad_request(f"map: {item!r} does not contain declared merge key: {merge_key}")
        index = next(
            (
                i
                for i, existing in enumerate(current)
                if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del current[index]
        elif index is None:
            current.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            current[index] = strategic_merge_patch(current[index], item, path)
    return current


def _decode_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise unprocessable(f"invalid JSON pointer: {pointer!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _resolve_parent(doc: Any, parts: list[str], op: str) -> tuple[Any, str]:
    current = doc
    for part in parts[:-1]:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise unprocessable(
                f"the server rejected our request due to an error in our request: "
                f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}"
            )
    return current, parts[-1]


def _get(doc: Any, parts: list[str], op: str) -> Any:
    if not parts:
        return doc
    parent, last = _resolve_parent(doc, parts, op)
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise unprocessable(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 with add/remove/replace/move/copy/test; a failing `test` is 422 as in the real API."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp")
    doc = copy.deepcopy(target)
    for operation in operations:
        op = operation.get("op")
        parts = _decode_pointer(operation.get("path", ""))
        if op == "test":
            if _get(doc, parts, op) != operation.get("value"):
                raise unprocessable(
                    f"the server rejected our request due to an error in our request: "
                    f"testing value {operation.get('path')} failed"
                )
        elif op == "remove":
            _get(doc, parts, op)
            parent, last = _resolve_parent(doc, parts, op)
            del parent[int(last) if isinstance(parent, list) else last]
        elif op in ("add", "replace", "move", "copy"):
            if op in ("move", "copy"):
                source = _decode_pointer(operation.get("from", ""))
                value = copy.deepcopy(_get(doc, source, op))
                if op == "move":
                    source_parent, source_last = _resolve_parent(doc, source, op)
                    del source_parent[int(source_last) if isinstance(source_parent, list) else source_last]
            else:
                value = copy.deepcopy(operation.get("value"))
            if not parts:
                doc = value
                continue
            if op == "replace":
                _get(doc, parts, op)
            parent, last = _resolve_parent(doc, parts, op)
            if isinstance(parent, list):
                if op == "replace":
                    parent[int(last)] = value
                elif last == "-":
                    parent.append(value)
                elif last.isdigit() and int(last) <= len(parent):
                    parent.insert(int(last), value)
                else:
                    raise unprocessable(f"add operation does not apply: index out of range: {last}")
            elif isinstance(parent, dict):
                parent[last] = value
            else:
                raise unprocessable(
                    f"{op} operation does not apply: not a container: {operation.get('path')}"
                )
        else:
            raise unprocessable(f"Unexpected kind: {op}")
    return doc


def apply_patch(target: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    media = content_type.split(";")[0].strip().lower()
    result: Any
    if media == JSON_PATCH:
        result = json_patch(target, patch)
    elif media == MERGE_PATCH:
        result = merge_patch(target, patch)
    elif media in (STRATEGIC_MERGE_PATCH, APPLY_PATCH):
        # Server-side apply is approximated by a strategic merge (no field-manager ownership tracking).
        result = strategic_merge_patch(target, patch)
    else:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}, {APPLY_PATCH}",
            {},
        )
    if not isinstance(result, dict):
        raise bad_request("the patch produced a non-object document")
    return result
