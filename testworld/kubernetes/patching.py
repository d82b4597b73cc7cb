"""Patch semantics of the API server: merge patch, strategic merge patch,
JSON patch, server-side apply and the managedFields bookkeeping behind it.

kmock merges every patch as a plain dict merge. Clients of a real API server
see four different behaviours, and Ansible's kubernetes.core picks between
them (strategic merge for built-in kinds, merge patch for custom resources,
apply patches for server-side apply), so each is modelled here.
"""

import copy
import datetime
import json

import jsonpatch

# Lists that the API server merges item by item (patchMergeKey) instead of
# replacing them wholesale. Paths are relative to a pod spec; the pod spec
# itself sits at a different depth in each workload kind.
_POD_SPEC_MERGE_KEYS = {
    ("containers",): "name",
    ("initContainers",): "name",
    ("ephemeralContainers",): "name",
    ("volumes",): "name",
    ("imagePullSecrets",): "name",
    ("containers", "env"): "name",
    ("initContainers", "env"): "name",
    ("containers", "ports"): "containerPort",
    ("initContainers", "ports"): "containerPort",
    ("containers", "volumeMounts"): "mountPath",
    ("initContainers", "volumeMounts"): "mountPath",
    ("containers", "volumeDevices"): "devicePath",
    ("initContainers", "volumeDevices"): "devicePath",
}
_POD_SPEC_PREFIX = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_OTHER_MERGE_KEYS = {
    ("metadata", "ownerReferences"): "uid",
    ("status", "conditions"): "type",
    ("status", "addresses"): "type",
    ("spec", "ports"): "port",
    ("secrets",): "name",
    ("webhooks",): "name",
}
# Lists of scalars merged as sets (patchStrategy=merge on a primitive list).
_SET_LISTS = {("metadata", "finalizers")}

# Bookkeeping fields that no manager owns.
_UNMANAGED_METADATA = {
    "managedFields", "resourceVersion", "uid", "creationTimestamp", "generation",
    "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "name", "namespace",
}


class PatchError(Exception):
    """A patch that cannot be applied (answered 422 or 400 by the caller)."""

    def __init__(self, message, code=422, reason="Invalid"):
        super().__init__(message)
        self.code = code
        self.reason = reason


class ApplyConflict(Exception):
    """Server-side apply touched fields owned by another manager."""

    def __init__(self, conflicts, api_version):
        self.conflicts = conflicts  # list of (manager, field path text)
        self.api_version = api_version
        lines = ['conflict with "%s" using %s: %s' % (m, api_version, f) for m, f in conflicts]
        if len(lines) == 1:
            msg = "Apply failed with 1 conflict: " + lines[0]
        else:
            msg = "Apply failed with %d conflicts: %s" % (len(lines), "\n".join(lines))
        super().__init__(msg)


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def now_iso():
    return datetime.datetime.now(tz=datetime.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- list keys

def list_kind(kind, path):
    """How the list at `path` (map keys only, no indexes) of a `kind` merges.

    Returns ("map", key) for associative lists, ("set", None) for scalar sets
    and ("atomic", None) for lists replaced as a whole.
    """
    path = tuple(path)
    if path in _SET_LISTS:
        return ("set", None)
    prefix = _POD_SPEC_PREFIX.get(kind)
    if prefix and path[:len(prefix)] == prefix:
        key = _POD_SPEC_MERGE_KEYS.get(path[len(prefix):])
        if key:
            return ("map", key)
    key = _OTHER_MERGE_KEYS.get(path)
    if key:
        return ("map", key)
    return ("atomic", None)


# ---------------------------------------------------------------- merge patch (RFC 7386)

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- strategic merge patch

def strategic_merge_patch(target, patch, kind, path=()):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [x for x in result.get(field) or [] if x not in value]
            continue
        sub = path + (key,)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value, kind, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            how, merge_key = list_kind(kind, sub)
            current = result.get(key) if isinstance(result.get(key), list) else []
            if how == "map":
                result[key] = _merge_keyed_list(current, value, merge_key, kind, sub)
            elif how == "set":
                result[key] = current + [v for v in value if v not in current]
            else:
                result[key] = copy.deepcopy(value)
        else:
            result[key] = value
    return result


def _merge_keyed_list(current, patch_items, merge_key, kind, path):
    result = copy.deepcopy(current)
    for item in patch_items:
        if not isinstance(item, dict) or merge_key not in item:
            if isinstance(item, dict) and item.get("$patch") == "replace":
                continue
            raise PatchError("%s: merge key %r missing in patch item" % (".".join(path), merge_key))
        index = next((i for i, x in enumerate(result)
                      if isinstance(x, dict) and x.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            result[index] = strategic_merge_patch(result[index], item, kind, path)
    return result


# ---------------------------------------------------------------- JSON patch (RFC 6902)

def json_patch(target, operations):
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations", code=400, reason="BadRequest")
    try:
        return jsonpatch.apply_patch(target, operations, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise PatchError("the server rejected our request due to an error in our request: %s" % exc)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise PatchError("the server rejected our request due to an error in our request: %s" % exc)


# ---------------------------------------------------------------- field sets

def _item_key(item, merge_key):
    return json.dumps({merge_key: item.get(merge_key)}, sort_keys=True, separators=(",", ":"))


def flatten(obj, kind, path=(), spath=()):
    """Leaf fields of an object as {field path: value}.

    A field path is a tuple of elements: ("f", name) for a map field,
    ("k", key json) for an item of an associative list, ("v", json) for an
    element of a scalar set. `spath` carries the plain map keys for list
    strategy lookups.
    """
    leaves = {}
    if not path:
        obj = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta = {k: v for k, v in meta.items() if k not in _UNMANAGED_METADATA}
            obj = dict(obj, metadata=meta)
            if not meta:
                obj.pop("metadata")
    if isinstance(obj, dict):
        if not obj and path:
            leaves[path] = {}
        for key, value in obj.items():
            leaves.update(_flatten_value(value, kind, path + (("f", key),), spath + (key,)))
        return leaves
    leaves[path] = copy.deepcopy(obj)
    return leaves


def _flatten_value(value, kind, path, spath):
    if isinstance(value, dict):
        return flatten(value, kind, path, spath)
    if isinstance(value, list):
        how, merge_key = list_kind(kind, spath)
        if how == "map" and all(isinstance(x, dict) and merge_key in x for x in value):
            leaves = {}
            for item in value:
                item_path = path + (("k", _item_key(item, merge_key)),)
                leaves[item_path + ((".", ""),)] = True
                leaves.update(flatten(item, kind, item_path, spath))
            return leaves
        if how == "set":
            return {path + (("v", json.dumps(x, sort_keys=True)),): True for x in value}
    return {path: copy.deepcopy(value)}


def path_text(path):
    """Human-readable field path, as the API server prints it in conflicts."""
    out = ""
    for kind, val in path:
        if kind == "f":
            out += "." + val
        elif kind == "k":
            key = json.loads(val)
            out += "[" + ",".join("%s=%s" % (k, json.dumps(v)) for k, v in key.items()) + "]"
        elif kind == "v":
            out += "[%s]" % val
    return out


def to_fields_v1(paths):
    tree = {}
    for path in sorted(paths):
        node = tree
        for kind, val in path:
            if kind == ".":
                node = node.setdefault(".", {})
                continue
            node = node.setdefault("%s:%s" % (kind, val), {})
    return tree


def from_fields_v1(tree, prefix=()):
    paths = set()
    for key, sub in (tree or {}).items():
        if key == ".":
            paths.add(prefix + ((".", ""),))
            continue
        kind, val = key.partition(":")[::2]
        path = prefix + ((kind, val),)
        if sub:
            child = from_fields_v1(sub, path)
            paths |= child
            if not child:
                paths.add(path)
        else:
            paths.add(path)
    return paths


# ---------------------------------------------------------------- object surgery by field path

def _locate(obj, path, create=False):
    """Walk to the container holding the last element of `path`."""
    node = obj
    for kind, val in path[:-1]:
        if node is None:
            return None
        if kind == "f":
            if not isinstance(node, dict):
                return None
            if val not in node:
                if not create:
                    return None
                node[val] = {}
            node = node[val]
        elif kind == "k":
            if not isinstance(node, list):
                return None
            key = json.loads(val)
            node = next((x for x in node if isinstance(x, dict)
                         and all(x.get(k) == v for k, v in key.items())), None)
        else:
            return None
    return node


def remove_field(obj, path):
    parent = _locate(obj, path)
    if parent is None:
        return
    kind, val = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(val, None)
    elif kind == "k" and isinstance(parent, list):
        key = json.loads(val)
        parent[:] = [x for x in parent if not (isinstance(x, dict) and all(x.get(k) == v for k, v in key.items()))]
    elif kind == "v" and isinstance(parent, list):
        parent[:] = [x for x in parent if json.dumps(x, sort_keys=True) != val]
    elif kind == "." and isinstance(parent, list):
        # the item marker: removing it removes the whole list item
        remove_field(obj, path[:-1])


def prune_empty(obj, keep=("metadata", "spec")):
    """Drop maps and lists that removal left empty (top-level sections stay)."""
    def walk(node, depth):
        if isinstance(node, dict):
            for key in list(node):
                if key == "managedFields":
                    continue  # empty maps there are field markers, not leftovers
                walk(node[key], depth + 1)
                if isinstance(node[key], (dict, list)) and not node[key] and not (depth == 0 and key in keep):
                    del node[key]
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)
    walk(obj, 0)
    return obj


# ---------------------------------------------------------------- server-side apply

def apply_merge(current, applied, kind, spath=()):
    """Merge an apply configuration into the live object, structure-aware."""
    if not isinstance(applied, dict) or not isinstance(current, dict):
        return copy.deepcopy(applied)
    result = copy.deepcopy(current)
    for key, value in applied.items():
        sub = spath + (key,)
        if isinstance(value, dict):
            result[key] = apply_merge(result.get(key), value, kind, sub)
        elif isinstance(value, list):
            how, merge_key = list_kind(kind, sub)
            existing = result.get(key) if isinstance(result.get(key), list) else []
            if how == "map" and all(isinstance(x, dict) and merge_key in x for x in value):
                merged = []
                by_key = {x.get(merge_key): x for x in existing if isinstance(x, dict)}
                for item in value:
                    merged.append(apply_merge(by_key.pop(item[merge_key], {}), item, kind, sub))
                # items the applier does not mention stay, after the applier's own
                merged.extend(x for x in existing if isinstance(x, dict) and x.get(merge_key) in by_key)
                result[key] = merged
            elif how == "set":
                result[key] = list(value) + [x for x in existing if x not in value]
            else:
                result[key] = copy.deepcopy(value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def managers_of(obj, subresource=None):
    """{(manager, operation): set(paths)} for one subresource of an object."""
    out = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if (entry.get("subresource") or None) != subresource:
            continue
        key = (entry.get("manager", ""), entry.get("operation", "Update"))
        out.setdefault(key, set()).update(from_fields_v1(entry.get("fieldsV1")))
    return out


def write_managers(obj, owners, api_version, subresource, touched, previous):
    """Store `owners` back into metadata.managedFields.

    Entries keep their place and timestamp unless their field set changed or
    the manager is in `touched`; entries of other subresources are untouched.
    """
    meta = obj.setdefault("metadata", {})

    def entry_for(manager, operation, old):
        paths = owners.get((manager, operation)) or set()
        unchanged = (old is not None and previous.get((manager, operation)) == paths
                     and (manager, operation) not in touched)
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": old.get("time") if unchanged else now_iso(),
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        return entry

    entries, done = [], set()
    for old in meta.get("managedFields") or []:
        if (old.get("subresource") or None) != subresource:
            entries.append(old)
            continue
        key = (old.get("manager", ""), old.get("operation", "Update"))
        if key in done or not owners.get(key):
            continue
        done.add(key)
        entries.append(entry_for(key[0], key[1], old))
    for key, paths in owners.items():
        if key not in done and paths:
            entries.append(entry_for(key[0], key[1], None))
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)


def server_side_apply(current, applied, manager, force, kind, api_version, subresource=None,
                      ignore_status=True):
    """Apply `applied` as `manager` over `current` (None when absent).

    Returns the new object (managedFields updated). Raises ApplyConflict.
    """
    applied = copy.deepcopy(applied)
    if ignore_status:
        applied.pop("status", None)
    base = copy.deepcopy(current) if current else {}
    owners = managers_of(base, subresource) if current else {}
    previous = {k: set(v) for k, v in owners.items()}
    mine = owners.get((manager, "Apply"), set())

    applied_leaves = flatten(applied, kind)
    current_leaves = flatten(base, kind) if current else {}

    conflicts = []
    for path, value in applied_leaves.items():
        if path in current_leaves and current_leaves[path] == value:
            continue
        for (other, op), paths in owners.items():
            if other == manager and op == "Apply":
                continue
            if path in paths:
                conflicts.append((other, path))
    if conflicts and not force and manager == "kubectl" and current:
        # kubectl's first server-side apply of an object it managed with client-side apply takes over
        # the fields of its last-applied configuration without conflicts (the API server's upgrade path)
        allowed = _last_applied_fields(current, kind)
        if all(path in allowed for _other, path in conflicts):
            force = True
        else:
            conflicts = [(other, path) for other, path in conflicts if path not in allowed]
    if conflicts and not force:
        raise ApplyConflict(sorted({(m, path_text(p)) for m, p in conflicts}), api_version)
    for other, path in conflicts:
        for (mgr, op), paths in owners.items():
            if mgr == other:
                paths.discard(path)

    new_paths = set(applied_leaves)
    result = apply_merge(base, applied, kind)
    # Fields this manager gave up are removed unless someone else still owns them.
    others = set()
    for (mgr, op), paths in owners.items():
        if not (mgr == manager and op == "Apply"):
            others |= paths
    for path in sorted(mine - new_paths, key=len, reverse=True):
        if path not in others:
            remove_field(result, path)
    prune_empty(result)
    owners[(manager, "Apply")] = new_paths
    write_managers(result, owners, api_version, subresource, touched={(manager, "Apply")} if result != current else set(),
                   previous=previous)
    return result


def _last_applied_fields(obj, kind):
    """The field paths of kubectl's last-applied-configuration annotation (empty when there is none)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        config = json.loads(text) if text else None
    except ValueError:
        return set()
    return set(flatten(config, kind)) if isinstance(config, dict) else set()


def record_update(old, new, manager, api_version, kind, subresource=None):
    """Attribute the fields an update changed to `manager` (operation Update)."""
    owners = managers_of(old, subresource) if old else {}
    previous = {k: set(v) for k, v in owners.items()}

    def scope(obj):
        # an update of /status owns status fields only, an update of the object everything else
        if subresource == "status":
            return {"status": obj.get("status")}
        return {k: v for k, v in obj.items() if k != "status"}

    old_leaves = flatten(scope(old), kind) if old else {}
    new_leaves = flatten(scope(new), kind)
    changed = {p for p, v in new_leaves.items() if old_leaves.get(p, object()) != v}
    gone = set(old_leaves) - set(new_leaves)
    for key, paths in owners.items():
        if key != (manager, "Update"):
            paths -= changed
        paths -= gone
    mine = owners.setdefault((manager, "Update"), set())
    mine |= changed
    mine -= gone
    # Keep an entry only for fields that still exist in the object.
    for key in owners:
        owners[key] &= set(new_leaves) | {p for p in owners[key] if p[-1][0] == "."}
    write_managers(new, owners, api_version, subresource, touched={(manager, "Update")} if changed else set(),
                   previous=previous)
    return new


def get_path(obj, path):
    """The value at a dotted JSON path such as ".spec.replicas" (None when absent)."""
    for part in [p for p in (path or "").split(".") if p]:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def set_path(obj, path, value):
    """Set the value at a dotted JSON path, creating the objects on the way."""
    parts = [p for p in path.split(".") if p]
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value
