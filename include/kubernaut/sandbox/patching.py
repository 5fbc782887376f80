"""The PATCH flavours of the real API: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge
(built-in kinds only) and an approximation of server-side apply."""

from __future__ import annotations

import copy
from typing import Any

from kubernaut.kube.patch_strategy import (
    DELETE_FROM_PRIMITIVE_LIST,
    DIRECTIVE,
    RETAIN_KEYS,
    SET_ELEMENT_ORDER,
    FieldMeta,
    field_meta,
    supports_strategic_merge,
)
from kubernaut.sandbox.errors import ApiError, bad_request, unprocessable

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


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


# --- strategic merge patch ----------------------------------------------------------------------
#
# A port of k8s.io/apimachinery/pkg/util/strategicpatch (mergeMap, mergeSlice and the ordering
# rules), driven by the patch metadata of the built-in types (kubernaut.kube.patch_strategy).
# Errors carry the codes the real server gives: its sentinel format errors are 400 (422 for lists
# of lists), any other merge error (e.g. a missing merge key) is a plain error, i.e. 500 Unknown.


def _merge_error(message: str) -> ApiError:
    return ApiError(500, "", message, {})


def _go(value: Any) -> str:
    """A value roughly as Go's %v prints it in the real server's messages (map[k:v] ...)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    return "<nil>" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _no_merge_key(item: Any, merge_key: str) -> ApiError:
    return _merge_error(f"map: {_go(item)} does not contain declared merge key: {merge_key}")


def _clean(value: Any) -> tuple[Any, bool]:
    """A patch value taken as is: nulls and directive keys dropped, and (removeDirectives) a map
    carrying `$patch` not kept at all. Returns (value, keep)."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        cleaned = {}
        for key, item in value.items():
            if item is None or key.startswith("$"):
                continue
            item, keep = _clean(item)
            if keep:
                cleaned[key] = item
        return cleaned, True
    if isinstance(value, list):
        return [c for c, keep in (_clean(item) for item in value) if keep], True
    return value, True


def _category(value: Any) -> str:
    return "map" if isinstance(value, dict) else "list" if isinstance(value, list) else "scalar"


def _extract_key(key: str, prefix: str) -> str:
    head, sep, field = key.partition("/")
    if not sep or head != prefix or not field:
        which = "primitive list" if prefix == DELETE_FROM_PRIMITIVE_LIST else "setElementOrder list"
        raise bad_request(f"invalid patch format of {which}")
    return field


def strategic_merge_patch(target: Any, patch: Any, type_name: str | None) -> Any:
    """Apply a strategic merge patch to ``target`` (not modified) as an object of the Go type
    ``type_name`` (a kind, or None: no merge keys, every list atomic)."""
    if not isinstance(patch, dict):
        raise bad_request("the strategic merge patch must be a JSON object")
    original = copy.deepcopy(target) if isinstance(target, dict) else {}
    return _merge_map(original, copy.deepcopy(patch), type_name)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], type_name: str | None) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":  # the patch's map, as is, instead of a merge
            return {k: v for k, v in patch.items() if k != DIRECTIVE}
        if directive == "delete":  # an empty map (the field is emptied, not removed)
            return {}
        raise _merge_error(f"unknown patch type: {directive} in map: {_go(patch)}")
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, type_name)
    for key, value in patch.items():
        delete_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST)
        if delete_list:
            key = _extract_key(key, DELETE_FROM_PRIMITIVE_LIST)
        if value is None:
            original.pop(key, None)
            continue
        if key not in original or _category(original[key]) != _category(value):
            if not delete_list:  # not in the original (or of another shape): take the patch value
                cleaned, keep = _clean(value)
                if keep:
                    original[key] = cleaned
                else:
                    original.pop(key, None)
            continue
        meta = field_meta(type_name, key)
        current = original[key]
        if isinstance(current, dict):
            original[key] = value if meta.replace else _merge_map(current, value, meta.type)
        elif isinstance(current, list):
            merged = _merge_list_field(current, value, meta, delete_list)
            if merged or not (meta.merge or delete_list):
                original[key] = merged
            else:  # a merged list left empty is omitted (omitempty), as the real server shows it
                del original[key]
        else:
            cleaned, keep = _clean(value)
            if keep:
                original[key] = cleaned
            else:
                original.pop(key, None)
    return original


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """`$retainKeys: [...]`: every key of the patch must be listed; unlisted keys are cleared."""
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if not isinstance(retained, list) or not all(isinstance(k, str) for k in retained):
        raise bad_request("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in retained:
            raise bad_request("invalid patch format of retainKeys")
    for key in [k for k in original if k not in retained]:
        del original[key]


def _merge_list_field(original: list[Any], patch: Any, meta: FieldMeta, delete_list: bool) -> list[Any]:
    if meta.merge or delete_list:
        return _merge_slice(original, patch, meta, delete_list)
    return copy.deepcopy(patch)  # an atomic list: replaced whole


def _element_kind(*lists: list[Any]) -> str | None:
    kinds = {_category(item) for items in lists for item in items}
    if "list" in kinds:
        raise ApiError(422, "", "lists of lists are not supported", {})
    if len(kinds) > 1:
        raise _merge_error(f"list element types are not identical: {_go(list(lists))}")
    return next(iter(kinds), None)


def _key_of(item: Any, merge_key: str) -> Any:
    if not isinstance(item, dict):
        raise _merge_error(f"expected a map[string]interface {{}}, but received a {_category(item)}")
    if merge_key not in item:
        raise _no_merge_key(item, merge_key)
    return item[merge_key]


def _merge_slice(original: list[Any], patch: list[Any], meta: FieldMeta, delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    merge_key = meta.merge_key or ""
    if kind != "map":
        if delete_list:  # $deleteFromPrimitiveList/<field>: [values to remove]
            return [item for item in original if item not in patch]
        merged = list(original)
        merged += [item for item in patch if item not in merged]  # a set of scalars
        patch_items = [item for item in merged if item in patch]
        server_only = [item for item in merged if item not in patch]
    else:
        if not merge_key:
            raise _merge_error(f"cannot merge lists without merge key for {meta.type or 'this field'}")
        original, patch = _special_elements(original, patch, merge_key)
        merged = _merge_elements(original, patch, merge_key, meta.type)
        in_patch = [_key_of(item, merge_key) for item in patch]
        patch_items = [item for item in merged if _key_of(item, merge_key) in in_patch]
        server_only = [item for item in merged if _key_of(item, merge_key) not in in_patch]
    return _normalize_order(patch_items, server_only, patch, original, merge_key if kind == "map" else None)


def _special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Items with `$patch`: `delete` removes the original's items with that key, `replace`
    makes the other patch items the whole list."""
    plain, replace = [], False
    for item in patch:
        if not isinstance(item, dict) or DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            value = _key_of(item, merge_key)
            original = [o for o in original if _key_of(o, merge_key) != value]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _merge_error("merging lists cannot yet be specified in the patch")
        else:
            raise _merge_error(f"unknown patch type: {directive} in map: {_go(item)}")
    if replace:
        return [_clean(item)[0] for item in plain], []
    return original, plain


def _merge_elements(
    original: list[Any], patch: list[Any], merge_key: str, type_name: str | None
) -> list[Any]:
    merged = list(original)
    for item in patch:
        value = _key_of(item, merge_key)
        index = next((i for i, o in enumerate(merged) if _key_of(o, merge_key) == value), None)
        if index is None:
            merged.append(_clean(item)[0])
        else:
            merged[index] = _merge_map(merged[index], item, type_name)
    return merged


def _index(items: list[Any], item: Any, merge_key: str | None) -> int:
    wanted = item.get(merge_key) if merge_key and isinstance(item, dict) else item
    for i, candidate in enumerate(items):
        value = candidate.get(merge_key) if merge_key and isinstance(candidate, dict) else candidate
        if value == wanted:
            return i
    return -1


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str | None,
) -> list[Any]:
    """The real server's order: the patch's items in the patch's order, the server-only items in
    the live order, interleaved where the live order relates them (mergeSortedSlice). A new item
    has no live position, so it goes before the server-only items that follow it."""

    def by(order: list[Any]) -> Any:
        return lambda item: (_index(order, item, merge_key) < 0, _index(order, item, merge_key))

    right = sorted(patch_items, key=by(patch_order))
    left = sorted(server_only, key=by(server_order))
    result: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            result.append(left[i])
            i += 1
        elif i >= len(left):
            result.append(right[j])
            j += 1
        else:
            li, ri = _index(server_order, left[i], merge_key), _index(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                result.append(left[i])
                i += 1
            else:
                result.append(right[j])
                j += 1
    return result


def _merge_ordered_lists(original: dict[str, Any], patch: dict[str, Any], type_name: str | None) -> None:
    """`$setElementOrder/<field>: [...]`: merge that field's list now and order it as listed."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        field = _extract_key(key, SET_ELEMENT_ORDER)
        if not isinstance(order, list):
            raise _merge_error(f"expected a []interface {{}}, but received a {_category(order)}")
        meta = field_meta(type_name, field)
        merge_key = meta.merge_key
        current, patch_list = original.get(field), patch.get(field)
        if (current is not None and not isinstance(current, list)) or (
            patch_list is not None and not isinstance(patch_list, list)
        ):
            raise bad_request("invalid patch format of setElementOrder list")
        _check_order(patch_list or [], order, merge_key)
        if current is None and patch_list is None:
            continue
        if patch_list is None:
            merged = list(current or [])
        elif current is None:
            merged = _clean(patch_list)[0]
        else:
            merged = _merge_list_field(current, patch_list, meta, False)
        if merge_key:
            listed = [_key_of(item, merge_key) for item in order]
            patch_items = [m for m in merged if _key_of(m, merge_key) in listed]
            server_only = [m for m in merged if _key_of(m, merge_key) not in listed]
        else:
            patch_items = [m for m in merged if m in order]
            server_only = [m for m in merged if m not in order]
        is_map = _element_kind(current or [], patch_list or []) == "map"
        original[field] = _normalize_order(
            patch_items, server_only, order, current or [], merge_key if is_map else None
        )
        patch.pop(field, None)


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str | None) -> None:
    """The patch list's items must appear in `$setElementOrder` in the same relative order."""
    items = [i for i in patch_list if not (isinstance(i, dict) and i.get(DIRECTIVE) == "delete")]
    p = o = 0
    while p < len(items) and o < len(order):
        if isinstance(items[p], dict) and DIRECTIVE in items[p]:
            p += 1
            continue
        same = (
            _key_of(items[p], merge_key) == _key_of(order[o], merge_key)
            if merge_key
            else items[p] == order[o]
        )
        p += 1 if same else 0
        o += 1
    if p < len(items):
        raise _merge_error(
            f"The order in patch list:\n{_go(patch_list)}\n doesn't match {SET_ELEMENT_ORDER} list:\n"
            f"{_go(order)}\n"
        )


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


def _unsupported(accepted: tuple[str, ...]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
        {},
    )


def apply_patch(
    target: dict[str, Any], patch: Any, content_type: str, kind: str | None = None
) -> dict[str, Any]:
    """Patch ``target`` as the API server does for an object of ``kind``; None (a custom
    resource) takes no strategic merge patch: 415, as the real server answers for CRDs."""
    media = content_type.split(";")[0].strip().lower()
    builtin = kind is not None and supports_strategic_merge(kind)
    accepted = (
        (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
        if builtin
        else (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)
    )
    if media not in accepted:
        raise _unsupported(accepted)
    result: Any
    if media == JSON_PATCH:
        result = json_patch(target, patch)
    elif media == MERGE_PATCH:
        result = merge_patch(target, patch)
    else:
        # Server-side apply is approximated by a strategic merge (no field-manager ownership
        # tracking); for a custom resource without merge keys every list is atomic.
        result = strategic_merge_patch(target, patch, kind if builtin else None)
    if not isinstance(result, dict):
        raise bad_request("the patch produced a non-object document")
    return result
