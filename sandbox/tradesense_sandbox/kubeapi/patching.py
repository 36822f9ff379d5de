"""The three PATCH flavours of the API server: JSON merge, JSON patch (RFC 6902) and strategic merge.

Strategic merge knows the merge keys of the built-in lists the operator touches (containers and
env by `name`, ports by `containerPort`/`port`, volume mounts by `mountPath`, conditions by `type`);
other lists are replaced, as they are for kinds without patch metadata.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from tradesense_sandbox.kubeapi.errors import ApiError, bad_request, unsupported_media_type
from tradesense_sandbox.kubeapi.snapshot import clone

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Merge keys by the list field's name, as declared by `patchMergeKey` in the Kubernetes API types.
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# `ports` is keyed by containerPort inside containers and by port in a Service spec.
_PORT_KEYS = ("containerPort", "port")
# Lists of scalars the API types declare with patchStrategy=merge (merged as sets).
_SET_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, everything else replaces.

    Returns a new object; the parts the patch does not reach are shared with `target`, not copied (copying the
    whole target at every level of the recursion was most of a write's cost in the emulator)."""
    if not isinstance(patch, dict):
        return clone(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902; a failed `test` or a bad path is 422 like the API server, a malformed body 400."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        patch = jsonpatch.JsonPatch(operations)
        result = patch.apply(target)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from exc
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPointerException) as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}") from exc
    except (jsonpatch.InvalidJsonPatch, TypeError, KeyError) as exc:
        raise bad_request(f"invalid JSON patch: {exc}") from exc
    if not isinstance(result, dict):
        raise ApiError(422, "Invalid", "the patch replaced the whole object with a non-object")
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        for key in _PORT_KEYS:
            if all(isinstance(item, dict) and key in item for item in items):
                return key
        return None
    return _MERGE_KEYS.get(field)


def _merge_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    if field in _SET_LISTS:
        merged = list(target)
        merged.extend(item for item in patch if item not in merged)
        return merged
    directives = [item for item in patch if isinstance(item, dict) and item.get("$patch") == "replace"]
    if directives:
        return [clone(item) for item in patch if item not in directives]
    key = _merge_key(field, [*target, *patch])
    if key is None:
        return clone(patch)
    result = list(target)  # merged items are new objects (strategic_merge_patch); the others are shared
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise ApiError(422, "Invalid", f"map: {item!r} does not contain declared merge key: {key}")
        index = next((i for i, existing in enumerate(result) if existing.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes strategic merge: like merge patch, but keyed lists merge element-wise. Returns a new object
    sharing what the patch does not reach with `target` (as `merge_patch`)."""
    if not isinstance(patch, dict):
        return clone(patch)
    if patch.get("$patch") == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $retainKeys / $setElementOrder are ordering hints this emulator does not need
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, list):
            result[key] = [
                strategic_merge_patch({}, v) if isinstance(v, dict) else v
                for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "delete")
            ]
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def apply_patch(target: dict[str, Any], content_type: str, body: Any, *, strategic_allowed: bool) -> dict[str, Any]:
    """Apply `body` to `target` according to the request's Content-Type."""
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    if media == JSON_PATCH:
        return json_patch(target, body)
    if not isinstance(body, dict):
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    if media == MERGE_PATCH:
        result = merge_patch(target, body)
    elif media == STRATEGIC_MERGE_PATCH:
        if not strategic_allowed:
            raise unsupported_media_type(
                f"{media} (strategic merge patch is not supported for custom resources; use merge-patch)"
            )
        result = strategic_merge_patch(target, body)
    elif media == APPLY_PATCH:
        # Server-side apply, approximated: the applied configuration is merged onto the live object (keyed lists
        # element-wise for built-ins). Field ownership — removing fields this manager applied before and no longer
        # sends, and conflicts between managers — is not tracked.
        result = strategic_merge_patch(target, body) if strategic_allowed else merge_patch(target, body)
    else:
        raise unsupported_media_type(media)
    if not isinstance(result, dict):
        raise ApiError(422, "Invalid", "the patch replaced the whole object with a non-object")
    return result
