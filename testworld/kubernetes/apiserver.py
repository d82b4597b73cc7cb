"""The API server: kmock's KubernetesEmulator with the behaviour real clients
depend on put back.

kmock provides the HTTP plumbing, request records, discovery documents, the
bundled list of built-in kinds and the versioned object store. What it gets
wrong for the `kubernetes` client and Ansible's kubernetes.core is replaced
here: path parsing (POST /api/v1/namespaces), PUT as a real update with
optimistic concurrency, merge vs strategic vs JSON patch, server-side apply
(creating missing objects, field managers, conflicts), object metadata (uid,
resourceVersion, creationTimestamp, generation, managedFields), list `kind`,
watch resourceVersion/timeouts, dry-run, selectors, Status error bodies,
finalizers, CRD registration and schema validation.

All state lives in the event loop thread that serves HTTP; the controllers
run as tasks on the same loop and call the store methods directly.
"""

import asyncio
import base64
import builtins
import collections
import copy
import fnmatch
import json
import time
import uuid

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import apps as kmock_apps
from kmock._internal import rendering as kmock_rendering

from testworld.kubernetes import catalog, openapi, patching, schemas, selectors

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")
# Groups kmock bundles that a bare cluster does not serve: add-ons bring them (metrics-server, the
# Gateway API CRDs). Served here, kubectl would take `nodes` for metrics.k8s.io's NodeMetrics.
ADD_ON_GROUPS = ("metrics.k8s.io", "gateway.networking.k8s.io")
OUTSIDE_REQUESTS = {"fieldValidation": "Ignore", "warnings": ()}


class ApiError(Exception):
    """An error answered as a v1 Status object."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self):
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(kind, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (kind.gr, name),
                    {"name": name, "group": kind.group, "kind": kind.plural})


def invalid(kind, name, causes):
    text = ", ".join("%s: %s" % (c["field"], c["message"]) if c["field"] else c["message"] for c in causes)
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind.gk, name, text),
                    {"name": name, "group": kind.group, "kind": kind.kind, "causes": list(causes)})


@attrs.define
class Parsed:
    """Where a request points in the API."""
    group: str | None = None
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    discovery: bool = False


def route_of(method, path, query=None):
    """The route of a request: its method and path with namespace and name as placeholders,
    e.g. "GET /api/v1/namespaces/{ns}/pods/{name}/log"; a watch is marked "(watch)"."""
    parsed = parse_path(path)
    if parsed is None or parsed.discovery or not parsed.plural:
        pattern = path.rstrip("/") or "/"
    else:
        parts = ["/api/" + parsed.version if not parsed.group else "/apis/%s/%s" % (parsed.group, parsed.version)]
        if parsed.namespace is not None:
            parts.append("namespaces/{ns}")
        parts.append(parsed.plural)
        if parsed.name is not None:
            # the Namespace kind's own name is a namespace
            parts.append("{ns}" if parsed.plural == "namespaces" and parsed.namespace is None else "{name}")
        if parsed.subresource:
            parts.append(parsed.subresource)
        pattern = "/".join(parts)
    watch = (query or {}).get("watch") in ("1", "true", "True")
    return "%s %s%s" % (method, pattern, " (watch)" if watch else "")


def parse_path(path):
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    if parts[0] == "api":
        group, rest = "", parts[1:]
        if len(rest) <= 1:
            return Parsed(group=group, version=rest[0] if rest else None, discovery=True)
        version, rest = rest[0], rest[1:]
    else:
        if len(parts) <= 3:
            return Parsed(group=parts[1] if len(parts) > 1 else None,
                          version=parts[2] if len(parts) > 2 else None, discovery=True)
        group, version, rest = parts[1], parts[2], parts[3:]
    out = Parsed(group=group, version=version)
    # namespaces/{ns}/{plural}/... is namespaced; namespaces[/{name}[/status|finalize]] is the Namespace kind
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        out.namespace, rest = rest[1], rest[2:]
    out.plural = rest[0]
    if len(rest) > 1:
        out.name = rest[1]
    if len(rest) > 2:
        out.subresource = "/".join(rest[2:])
    return out


@attrs.frozen
class User:
    """Who a request comes from, as an authenticator names it."""
    name: str
    groups: tuple = ()

    @property
    def privileged(self):
        # the RBAC authorizer lets members of system:masters do anything, bindings or not
        return "system:masters" in self.groups


UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")


def _client_certificate_user(raw_request):
    """The user of a client certificate the TLS layer verified against the cluster CA (CN: name, O: groups)."""
    transport = raw_request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    name, groups = None, []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    return User(name, tuple(groups) + ("system:authenticated",)) if name else None


def json_copy(value):
    """A deep copy of a JSON document (dicts, lists, scalars), several times faster than copy.deepcopy:
    every read of the store makes one."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def _strip_meta_for_compare(obj):
    clone = copy.deepcopy(obj)
    meta = clone.get("metadata") or {}
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    return clone


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    kube_version: str = "v1.31.4"
    # Fault hooks, set by KubeWorld (see world.py for the public API).
    # (the class has a `list` method, so the builtin is spelled out in the field declarations)
    denials: builtins.list = attrs.field(factory=builtins.list)
    conflicts: builtins.list = attrs.field(factory=builtins.list)
    # Logs of pods whose containers the controllers "ran" (pods/log).
    pod_logs: dict = attrs.field(factory=dict)
    # Answers /_sim/... (the world's control plane, see admin.py); None: those paths are 404.
    admin: object = attrs.field(default=None)
    # Bearer tokens the server accepts: token -> User (see add_token).
    tokens: dict = attrs.field(factory=dict)
    _openapi_cache: dict = attrs.field(factory=dict, init=False)
    # The request being served: its fieldValidation directive and the warnings for its answer.
    # Controllers write outside any request, with typed clients that send no unknown fields.
    _request: dict = attrs.field(factory=lambda: dict(OUTSIDE_REQUESTS), init=False)

    _kinds: dict = attrs.field(factory=dict, init=False)
    _storage: dict = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _events: collections.deque = attrs.field(factory=lambda: collections.deque(maxlen=20000), init=False)
    _changed: asyncio.Condition | None = attrs.field(default=None, init=False)
    _log: builtins.list = attrs.field(factory=builtins.list, init=False)
    # Requests served by route ("GET /api/v1/namespaces/{ns}/pods"): unlike _log, never trimmed
    # (one entry per route), so the counts of a long run stay whole; see route_counts().
    _routes: collections.Counter = attrs.field(factory=collections.Counter, init=False)
    listeners: builtins.list = attrs.field(factory=builtins.list, init=False)

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.resources.load_bundled()
        for resource in list(self.resources):
            if resource.group in ADD_ON_GROUPS:
                del self.resources[resource]
                continue
            info = self.resources[resource]
            behaviour = catalog.BUILTIN_BEHAVIOUR.get((resource.group, resource.plural), {})
            kind = catalog.Kind(
                group=resource.group, version=resource.version, plural=resource.plural,
                kind=info.kind or resource.plural.capitalize(), namespaced=bool(info.namespaced),
                singular=info.singular or (info.kind or "").lower(),
                short_names=tuple(sorted(info.shortnames)), verbs=tuple(sorted(info.verbs)),
                **behaviour)
            if "status" in info.subresources:
                kind.status = True
            self._register(kind, discovery=False)

    # ------------------------------------------------------------ registry

    def _register(self, kind, discovery=True):
        self._kinds[(kind.group, kind.version, kind.plural)] = kind
        self._storage.setdefault((kind.group, kind.plural), kmock.resource(group=kind.group, version=kind.version, plural=kind.plural))
        if discovery:
            self.resources[kmock.resource(group=kind.group, version=kind.version, plural=kind.plural)] = kmock.ResourceInfo(
                kind=kind.kind, namespaced=kind.namespaced, singular=kind.singular,
                verbs=set(kind.verbs), shortnames=set(kind.short_names),
                subresources=({"status"} if kind.status else set()) | ({"scale"} if kind.scale else set()),
                categories=set())

    def _unregister(self, group, plural):
        for key in [k for k in self._kinds if (k[0], k[2]) == (group, plural)]:
            kind = self._kinds.pop(key)
            res = kmock.resource(group=kind.group, version=kind.version, plural=kind.plural)
            if res in self.resources:
                del self.resources[res]

    def kind_for(self, api_version, kind_name):
        group, version = api_version.rpartition("/")[::2]
        for kind in self._kinds.values():
            if kind.group == group and kind.version == version and kind.kind == kind_name:
                return kind
        return None

    def kind_by_plural(self, group, plural):
        for kind in self._kinds.values():
            if kind.group == group and kind.plural == plural:
                return kind
        return None

    def kinds(self):
        return list(self._kinds.values())

    def _storage_key(self, kind, namespace, name):
        return (self._storage[(kind.group, kind.plural)], namespace if kind.namespaced else None, name)

    # ------------------------------------------------------------ store

    @property
    def resource_version(self):
        return self._rv

    def get(self, kind, namespace, name):
        key = self._storage_key(kind, namespace, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        if obj.deleted:
            return None
        return self._present(kind, obj.last.raw)

    def list(self, kind, namespace=None, label_selector=None, field_reqs=None):
        storage = self._storage[(kind.group, kind.plural)]
        out = []
        for (res, ns, _name), obj in self.objects.items():
            if res != storage or obj.deleted:
                continue
            if namespace is not None and kind.namespaced and ns != namespace:
                continue
            raw = obj.last.raw
            if label_selector and not selectors.label_selector_matches(
                    (raw.get("metadata") or {}).get("labels"), label_selector):
                continue
            if field_reqs and not selectors.field_selector_matches(raw, field_reqs):
                continue
            out.append(self._present(kind, raw))
        out.sort(key=lambda o: ((o["metadata"].get("namespace") or ""), o["metadata"]["name"]))
        return out

    def _present(self, kind, raw):
        obj = json_copy(raw)
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        return obj

    def _commit(self, kind, obj, event_type):
        """Persist a new state (or deletion) and tell the watchers."""
        meta = obj["metadata"]
        key = self._storage_key(kind, meta.get("namespace"), meta["name"])
        if event_type == "DELETED":
            self._rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._rv)
            if key in self.objects:
                self.objects[key].delete()
        else:
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            stored = copy.deepcopy(obj)
            stored.pop("apiVersion", None)
            stored.pop("kind", None)
            if key not in self.objects:
                self.objects[key] = stored
            else:
                self.objects[key].create(stored)
        self._events.append((self._rv, kind.group, kind.plural, event_type, copy.deepcopy(obj)))
        for listener in list(self.listeners):
            listener(kind, event_type, obj)
        if self._changed is not None:
            self._wake()
        return obj

    def _wake(self):
        async def notify():
            async with self._changed:
                self._changed.notify_all()
        asyncio.get_running_loop().create_task(notify())

    # ------------------------------------------------------------ object lifecycle (used by handlers and controllers)

    def _new_metadata(self, kind, obj, namespace):
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = patching.now_iso()
        for key in ("resourceVersion", "deletionTimestamp", "selfLink", "managedFields", "generation"):
            meta.pop(key, None)
        if kind.generation:
            meta["generation"] = 1
        return meta

    def _admit(self, kind, obj, old=None):
        """Decoding and validation the API server runs before persisting; returns the object without
        the fields its schema does not know."""
        causes = catalog.Causes()
        found = schemas.Findings()
        name = (obj.get("metadata") or {}).get("name") or ""
        if kind.custom:
            obj = dict(obj, metadata=schemas.check_object_meta(self.kube_version, obj.get("metadata") or {}, found))
            obj = catalog.validate_custom(kind, obj, causes, found.unknown)
        else:
            obj, checked = schemas.check_builtin(self.kube_version, kind.group, kind.version, kind.kind, obj)
            found = checked or found
        if found.type_errors:
            raise ApiError(400, "BadRequest", '%s in version "%s" cannot be handled as a %s: %s' % (
                kind.kind, kind.version, kind.kind, "; ".join(
                    "json: cannot unmarshal %s into Go struct field %s of type %s" % (given, field, expected)
                    for field, given, expected in found.type_errors)))
        self._unknown_fields(kind, found.unknown)
        catalog.validate_metadata(kind, obj, causes)
        if not kind.custom:
            catalog.validate_builtin(kind, obj, causes)
        seen = {(c["field"], c["reason"]) for c in causes}
        causes.extend(c for c in found.causes if (c["field"], c["reason"]) not in seen)
        if causes:
            raise invalid(kind, name, causes)
        return obj

    def _unknown_fields(self, kind, fields):
        """Fields the schema does not know: dropped, with a warning or not, or the request refused
        (the request's fieldValidation: Ignore, Warn (the default) or Strict)."""
        if not fields:
            return
        directive = self._request["fieldValidation"]
        if directive == "Strict":
            if kind.custom:
                text = ", ".join(".%s: field not declared in schema" % f for f in fields)
            else:
                text = ", ".join('unknown field "%s"' % f for f in fields)
            raise ApiError(400, "BadRequest", "strict decoding error: " + text)
        if directive == "Warn":
            self._request["warnings"].extend('unknown field "%s"' % f for f in fields)

    def _check_namespace(self, kind, namespace, verb):
        if not kind.namespaced:
            return
        ns_kind = self.kind_by_plural("", "namespaces")
        ns = self.get(ns_kind, None, namespace)
        if ns is None:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % namespace,
                           {"name": namespace, "kind": "namespaces"})
        if verb == "create" and (ns.get("status") or {}).get("phase") == "Terminating":
            raise ApiError(403, "Forbidden", '%s "%s" is forbidden: unable to create new content in namespace %s '
                           'because it is being terminated' % (kind.gr, "", namespace),
                           {"kind": kind.plural, "group": kind.group,
                            "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                        "message": "namespace %s is being terminated" % namespace}]})

    def create(self, kind, obj, namespace=None, manager="testworld", dry_run=False, operation="Update"):
        obj = copy.deepcopy(obj)
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        meta = self._new_metadata(kind, obj, namespace)
        self._check_namespace(kind, meta.get("namespace"), "create")
        if kind.clear_status_on_create:
            obj.pop("status", None)
        if kind.kind == "Namespace":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if kind.kind == "Pod":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        obj = self._admit(kind, obj)
        if self.get(kind, meta.get("namespace"), meta["name"]) is not None:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (kind.gr, meta["name"]),
                           {"name": meta["name"], "group": kind.group, "kind": kind.plural})
        if operation == "Update":
            patching.record_update(None, obj, manager, kind.api_version, kind.kind)
        if kind.status and obj.get("status") and not kind.clear_status_on_create:
            pass
        obj = self._present(kind, obj)
        if dry_run:
            return obj
        return self._commit(kind, obj, "ADDED")

    def _finish_update(self, kind, old, new, manager, subresource, dry_run, operation="Update"):
        """Common tail of PUT/PATCH/apply: bookkeeping, no-op detection, commit."""
        new = self._admit(kind, new, old)
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["name"] = old_meta["name"]
        meta.pop("resourceVersion", None)
        if kind.namespaced:
            meta["namespace"] = old_meta.get("namespace")
        # The main resource cannot change status and /status cannot change anything else.
        if kind.status and subresource is None:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        elif subresource == "status":
            keep = {k: copy.deepcopy(v) for k, v in old.items() if k != "status"}
            keep["metadata"]["managedFields"] = meta.get("managedFields", keep["metadata"].get("managedFields"))
            status = new.get("status")
            new = keep
            if status is not None:
                new["status"] = status
            meta = new["metadata"]
        if kind.generation:
            def spec_part(o):
                return {k: v for k, v in o.items() if k not in ("metadata", "status" if kind.status else "")}
            meta["generation"] = old_meta.get("generation", 1) + (1 if spec_part(old) != spec_part(new) else 0)
        if operation == "Update":
            patching.record_update(old, new, manager, kind.api_version, kind.kind, subresource)
        new = self._present(kind, new)
        old_cmp = _strip_meta_for_compare(old)
        new_cmp = _strip_meta_for_compare(new)
        unchanged = old_cmp == new_cmp and (old["metadata"].get("managedFields") == new["metadata"].get("managedFields"))
        if unchanged:
            return copy.deepcopy(old)
        if dry_run:
            new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._commit(kind, new, "MODIFIED")
            self._commit(kind, new, "DELETED")
            return new
        return self._commit(kind, new, "MODIFIED")

    def replace(self, kind, obj, namespace=None, name=None, manager="testworld", subresource=None, dry_run=False):
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        name = name or meta.get("name")
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                           % (meta["name"], name))
        old = self.get(kind, namespace, name)
        if old is None:
            raise not_found(kind, name)
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; '
                           'please apply your changes to the latest version and try again' % (kind.gr, name),
                           {"name": name, "group": kind.group, "kind": kind.plural})
        obj["metadata"]["managedFields"] = old["metadata"].get("managedFields", [])
        return self._finish_update(kind, old, obj, manager, subresource, dry_run)

    def patch(self, kind, namespace, name, patch, patch_type, manager="testworld", subresource=None,
              dry_run=False, force=False):
        old = self.get(kind, namespace, name)
        if patch_type == "apply":
            return self.apply(kind, patch, namespace, name, manager, force, subresource, dry_run, old)
        if old is None:
            raise not_found(kind, name)
        if patch_type == "json":
            new = patching.json_patch(old, patch)
        elif patch_type == "merge":
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "merge patch must be a JSON object")
            new = patching.merge_patch(old, patch)
        elif patch_type == "strategic":
            if kind.custom:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
            new = patching.strategic_merge_patch(old, patch, kind.kind)
        else:
            raise ApiError(415, "UnsupportedMediaType", "unsupported patch type %r" % patch_type)
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "patch produced a non-object")
        if (new.get("metadata") or {}).get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                           % ((new.get("metadata") or {}).get("name"), name))
        rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; '
                           'please apply your changes to the latest version and try again' % (kind.gr, name),
                           {"name": name, "group": kind.group, "kind": kind.plural})
        return self._finish_update(kind, old, new, manager, subresource, dry_run)

    def apply(self, kind, config, namespace, name, manager, force=False, subresource=None, dry_run=False, old=None):
        if not isinstance(config, dict):
            raise ApiError(400, "BadRequest", "apply patch must be a YAML or JSON object")
        if not manager:
            raise ApiError(422, "Invalid", "PATCH requests must specify a field manager when using server-side apply "
                           "(fieldManager query parameter)")
        meta = config.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                           % (meta["name"], name))
        if config.get("kind") and config["kind"] != kind.kind:
            raise ApiError(400, "BadRequest", "the kind of the object (%s) does not match the URL (%s)"
                           % (config["kind"], kind.kind))
        if old is None:
            old = self.get(kind, namespace, name)
        ignore_status = subresource is None and kind.status
        try:
            if old is None:
                if subresource:
                    raise not_found(kind, name)
                body = copy.deepcopy(config)
                body.setdefault("metadata", {})["name"] = name
                created = patching.server_side_apply(None, body, manager, force, kind.kind, kind.api_version,
                                                     ignore_status=ignore_status)
                managed = created["metadata"].get("managedFields")
                result = self.create(kind, created, namespace, manager=manager, dry_run=True, operation="Apply")
                result["metadata"]["managedFields"] = managed
                if dry_run:
                    return result
                result.pop("apiVersion", None)
                result.pop("kind", None)
                return self._commit(kind, self._present(kind, result), "ADDED")
            if subresource == "status":
                cfg = {"metadata": {"name": name}, "status": config.get("status") or {}}
                new = patching.server_side_apply(old, cfg, manager, force, kind.kind, kind.api_version,
                                                 subresource="status", ignore_status=False)
            else:
                new = patching.server_side_apply(old, config, manager, force, kind.kind, kind.api_version,
                                                 ignore_status=ignore_status)
        except patching.ApplyConflict as exc:
            raise ApiError(409, "Conflict", str(exc), {
                "name": name, "group": kind.group, "kind": kind.plural,
                "causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "%s": %s' % (m, f),
                            "field": f} for m, f in exc.conflicts]})
        return self._finish_update(kind, old, new, manager, subresource, dry_run, operation="Apply")

    def delete(self, kind, namespace, name, dry_run=False, propagation=None, preconditions=None):
        old = self.get(kind, namespace, name)
        if old is None:
            raise not_found(kind, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                           % (pre["uid"], old["metadata"]["uid"]))
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "Precondition failed: ResourceVersion in precondition: %s, "
                           "ResourceVersion in object meta: %s" % (pre["resourceVersion"],
                                                                   old["metadata"]["resourceVersion"]))
        if dry_run:
            return old, False
        if kind.kind == "Namespace":
            if (old.get("status") or {}).get("phase") != "Terminating":
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = patching.now_iso()
                new["status"] = {"phase": "Terminating"}
                return self._commit(kind, new, "MODIFIED"), False
            return old, False
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old, False
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = patching.now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(kind, new, "MODIFIED"), False
        if propagation == "Orphan":
            self._orphan(old["metadata"]["uid"])
        self._commit(kind, old, "DELETED")
        return old, True

    def _orphan(self, uid):
        for kind in self.kinds():
            if (kind.group, kind.plural) not in self._storage or self._storage[(kind.group, kind.plural)].version != kind.version:
                continue
            for obj in self.list(kind):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    self._commit(kind, new, "MODIFIED")

    # ------------------------------------------------------------ authentication and authorization

    def add_token(self, token, user, groups=()):
        self.tokens[token] = User(user, tuple(groups) + ("system:authenticated",))

    def authenticate(self, raw_request):
        """The request's user: a verified client certificate, else a known bearer token; 401 otherwise
        (anonymous requests are refused, as with --anonymous-auth=false)."""
        user = _client_certificate_user(raw_request)
        if user is not None:
            return user
        scheme, _sep, token = (raw_request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip() in self.tokens:
            return self.tokens[token.strip()]
        raise UNAUTHORIZED

    def _rbac_rules(self, user, namespace):
        """The rules RBAC grants `user` in `namespace` (cluster-wide ones too)."""
        def bound(binding):
            for subject in binding.get("subjects") or []:
                kind, name = subject.get("kind"), subject.get("name")
                if kind == "User" and name == user.name or kind == "Group" and name in user.groups:
                    return True
                if kind == "ServiceAccount" and user.name == "system:serviceaccount:%s:%s" % (
                        subject.get("namespace") or binding["metadata"].get("namespace"), name):
                    return True
            return False

        def role_rules(kind_name, name, ns):
            kind = self.kind_for("rbac.authorization.k8s.io/v1", kind_name)
            role = self.get(kind, ns, name) if kind is not None else None
            return (role or {}).get("rules") or []

        rules = []
        crb = self.kind_for("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
        for binding in self.list(crb) if crb is not None else []:
            if bound(binding):
                rules.extend(role_rules("ClusterRole", binding["roleRef"]["name"], None))
        rb = self.kind_for("rbac.authorization.k8s.io/v1", "RoleBinding")
        if namespace and rb is not None:
            for binding in self.list(rb, namespace):
                if bound(binding):
                    ref = binding["roleRef"]
                    rules.extend(role_rules(ref["kind"], ref["name"], namespace if ref["kind"] == "Role" else None))
        return rules

    def authorize(self, user, verb, kind, namespace, name, subresource):
        """None when RBAC allows the request, else the 403 Forbidden answer."""
        if user.privileged:
            return None
        resource = kind.plural + ("/" + subresource if subresource else "")
        for rule in self._rbac_rules(user, namespace):
            if not {"*", verb} & set(rule.get("verbs") or []):
                continue
            if not {"*", kind.group} & set(rule.get("apiGroups") or []):
                continue
            if not {"*", resource} & set(rule.get("resources") or []):
                continue
            if rule.get("resourceNames") and name not in rule["resourceNames"]:
                continue
            return None
        return self._forbidden(user.name, verb, kind, namespace, name, subresource)

    def _forbidden(self, user, verb, kind, namespace, name, subresource):
        scope = ('in the namespace "%s"' % namespace) if namespace else "at the cluster scope"
        what = kind.plural + ("/" + subresource if subresource else "")
        group = 'in API group "%s"' % kind.group
        subject = ('%s "%s"' % (kind.gr, name)) if name else kind.gr
        return ApiError(403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource "%s" %s %s'
                        % (subject, user, verb, what, group, scope),
                        {"name": name or "", "group": kind.group, "kind": kind.plural})

    # ------------------------------------------------------------ HTTP

    async def __call__(self, raw_request):
        if self.admin is not None and raw_request.path.startswith("/_sim/"):
            return await self.admin(raw_request)
        body = await raw_request.read()
        text = body.decode("utf-8", "replace")
        parsed = parse_path(raw_request.path)
        data = None
        if body:
            try:
                data = json.loads(text)
            except ValueError:
                try:
                    data = yaml.safe_load(text)
                except yaml.YAMLError:
                    data = None
        resource = None
        if parsed is not None and parsed.group is not None:
            resource = kmock.resource(group=parsed.group, version=parsed.version, plural=parsed.plural)
        request = kmock_rendering.Request(
            id=len(self._requests), raw_request=raw_request, method=raw_request.method,
            # /api/v1/ is /api/v1 to the API server (the kubernetes client asks for the former)
            url=raw_request.url.with_path(raw_request.path.rstrip("/") or "/"),
            params=dict(raw_request.query), headers=dict(raw_request.headers), cookies=dict(raw_request.cookies),
            data=data, body=body, text=text, action=None, resource=resource,
            namespace=parsed.namespace if parsed else None, name=parsed.name if parsed else None,
            subresource=parsed.subresource if parsed else None)
        self._requests.append(request)
        started = time.monotonic()
        rv_before = self._rv
        record = {"method": raw_request.method, "path": raw_request.path, "query": dict(raw_request.query),
                  "content_type": raw_request.headers.get("Content-Type", ""), "code": None}
        self._log.append(record)
        self._routes[route_of(raw_request.method, raw_request.path, raw_request.query)] += 1
        self._request = {"fieldValidation": raw_request.query.get("fieldValidation") or "Warn", "warnings": []}
        try:
            user = self.authenticate(raw_request)
            record.update(user=user.name, groups=list(user.groups))
            if self._request["fieldValidation"] not in FIELD_VALIDATION:
                raise ApiError(400, "BadRequest", 'fieldValidation must be one of "%s", not "%s"'
                               % ('", "'.join(FIELD_VALIDATION), self._request["fieldValidation"]))
            if parsed is not None and not parsed.discovery and parsed.plural:
                response = await self._serve_resource(request, parsed, record)
            else:
                response = await self._serve_other(request)
        except ApiError as exc:
            response = aiohttp.web.json_response(exc.status(), status=exc.code)
        except patching.PatchError as exc:
            response = aiohttp.web.json_response(ApiError(exc.code, exc.reason, str(exc)).status(), status=exc.code)
        except Exception as exc:  # noqa: BLE001 - a bug in the simulator answers 500 like a crashing apiserver
            import traceback
            traceback.print_exc()
            response = aiohttp.web.json_response(
                ApiError(500, "InternalError", "Internal error occurred: %r" % exc).status(), status=500)
        for warning in self._request["warnings"]:
            response.headers.add("Warning", '299 - "%s"' % warning.replace('"', '\\"'))
        self._request = dict(OUTSIDE_REQUESTS)
        record["code"] = response.status
        record["seconds"] = round(time.monotonic() - started, 4)
        # handlers do not yield to the controllers between reading and answering (watches aside),
        # so a moved resourceVersion means this request stored something
        record["wrote"] = self._rv != rv_before and record.get("verb") != "watch"
        return response

    async def _serve_other(self, request):
        path = request.url.path.rstrip("/") or "/"
        if path in ("/healthz", "/readyz", "/livez"):
            return aiohttp.web.Response(text="ok")
        if path == "/version":
            major, minor = self.kube_version.lstrip("v").split(".")[:2]
            return aiohttp.web.json_response({
                "major": major, "minor": minor, "gitVersion": self.kube_version,
                "gitTreeState": "clean", "goVersion": "go1.22.0", "compiler": "gc", "platform": "linux/amd64"})
        if request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if path == "/openapi/v2" or path == "/openapi/v3" or path.startswith("/openapi/v3/"):
            return self._openapi(path)
        try:
            response = await kmock_apps.RawHandler._handle(self, request)
            if getattr(response, "content_type", "") == "application/json" and getattr(response, "body", None):
                body = json.loads(response.body)
                if isinstance(body, dict) and body.get("kind") == "APIResourceList":
                    return aiohttp.web.json_response(self._discovery_resources(body))
            return response
        except kmock.KubernetesError as exc:
            raise ApiError(exc.status, "NotFound", "the server could not find the requested resource")
        except NotImplementedError:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _verb(self, method, parsed, params):
        if method == "GET":
            if params.get("watch") in ("true", "1"):
                return "watch"
            return "get" if parsed.name else "list"
        return {
            "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if parsed.name else "deletecollection",
        }.get(method, method.lower())

    def _denied(self, user, kind, verb, namespace, name, subresource):
        for rule in self.denials:
            if rule.get("resource") not in ("*", kind.plural, "%s/%s" % (kind.plural, subresource or "")):
                continue
            if rule.get("group", kind.group) not in ("*", kind.group):
                continue
            if rule.get("verb", "*") not in ("*", verb):
                continue
            if rule.get("namespace") and rule["namespace"] != namespace:
                continue
            if rule.get("user") and rule["user"] != user.name:
                continue
            return self._forbidden(user.name, verb, kind, namespace, name, subresource)
        return None

    def _injected_conflict(self, kind, verb, name):
        for rule in self.conflicts:
            if rule["remaining"] <= 0:
                continue
            if rule.get("resource") not in ("*", kind.plural) or rule.get("verb", "*") not in ("*", verb):
                continue
            rule["remaining"] -= 1
            return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been '
                            'modified; please apply your changes to the latest version and try again'
                            % (kind.gr, name or ""), {"name": name or "", "group": kind.group, "kind": kind.plural})
        return None

    async def _serve_resource(self, request, parsed, record):
        params = request.params
        kind = self._kinds.get((parsed.group, parsed.version, parsed.plural))
        if kind is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verb = self._verb(request.method, parsed, params)
        record.update(verb=verb, resource=kind.plural, group=kind.group, namespace=parsed.namespace,
                      name=parsed.name, subresource=parsed.subresource,
                      field_manager=params.get("fieldManager"), dry_run=params.get("dryRun"))
        if kind.namespaced is False and parsed.namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if parsed.subresource and not self._serves_subresource(kind, parsed.subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        user = User(record["user"], tuple(record["groups"]))
        denial = self.authorize(user, verb, kind, parsed.namespace, parsed.name, parsed.subresource) or \
            self._denied(user, kind, verb, parsed.namespace, parsed.name, parsed.subresource)
        if denial:
            raise denial
        if verb in WRITE_VERBS:
            conflict = self._injected_conflict(kind, verb, parsed.name)
            if conflict:
                raise conflict
        dry_run = params.get("dryRun") == "All"
        if params.get("dryRun") not in (None, "All"):
            raise ApiError(400, "BadRequest", 'unsupported dry run value "%s", the only supported value is "All"'
                           % params.get("dryRun"))
        manager = params.get("fieldManager") or self._default_manager(request)
        ns = parsed.namespace

        if parsed.subresource == "scale":
            return self._json(self._serve_scale(request, kind, ns, parsed.name, verb, manager, dry_run))
        if parsed.subresource == "eviction":
            if verb != "create":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            return self._json(self.evict(kind, ns, parsed.name, self._body(request), dry_run), 201)
        if verb == "list":
            return self._json(self._list_response(kind, ns, params))
        if verb == "watch":
            return await self._watch(request, kind, ns, parsed.name, params)
        if verb == "get":
            if parsed.subresource == "log":
                return self._pod_log(kind, ns, parsed.name, params)
            obj = self.get(kind, ns, parsed.name)
            if obj is None:
                raise not_found(kind, parsed.name)
            return self._json(obj)
        if verb == "create":
            if parsed.name:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            body = self._body(request)
            body_ns = (body.get("metadata") or {}).get("namespace")
            if kind.namespaced and body_ns and ns and body_ns != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                               "sent on the request")
            self._check_kind(kind, body)
            obj = self.create(kind, body, ns, manager=manager, dry_run=dry_run)
            return self._json(obj, 201)
        if verb == "update":
            body = self._body(request)
            self._check_kind(kind, body)
            self._check_namespace(kind, ns, "update")
            obj = self.replace(kind, body, ns, parsed.name, manager, parsed.subresource, dry_run)
            return self._json(obj)
        if verb == "patch":
            ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
            patch_type = {
                "application/json-patch+json": "json",
                "application/merge-patch+json": "merge",
                "application/strategic-merge-patch+json": "strategic",
                "application/apply-patch+yaml": "apply",
                "application/apply-patch+json": "apply",
            }.get(ctype)
            if patch_type is None:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: application/json-patch+json, "
                               "application/merge-patch+json, application/apply-patch+yaml")
            body = request.data
            if patch_type != "apply":
                self._check_namespace(kind, ns, "update")
            else:
                self._check_namespace(kind, ns, "create")
                if not params.get("fieldManager"):
                    raise ApiError(422, "Invalid", "PATCH requests must specify a field manager when using "
                                   "server-side apply (fieldManager query parameter)")
            if body is None:
                raise ApiError(400, "BadRequest", "the request body could not be decoded")
            force = params.get("force") in ("true", "1")
            existed = self.get(kind, ns, parsed.name) is not None
            obj = self.patch(kind, ns, parsed.name, body, patch_type, manager, parsed.subresource, dry_run, force)
            return self._json(obj, 201 if patch_type == "apply" and not existed else 200)
        if verb == "delete":
            opts = request.data if isinstance(request.data, dict) else {}
            propagation = params.get("propagationPolicy") or opts.get("propagationPolicy")
            obj, gone = self.delete(kind, ns, parsed.name, dry_run, propagation, opts.get("preconditions"))
            if kind.returns_object_on_delete or not gone:
                return self._json(obj, 200 if gone or dry_run else 202)
            return self._json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                               "details": {"name": parsed.name, "group": kind.group, "kind": kind.plural,
                                           "uid": obj["metadata"]["uid"]}})
        if verb == "deletecollection":
            items = self._list_response(kind, ns, params)["items"]
            for item in items:
                self.delete(kind, item["metadata"].get("namespace"), item["metadata"]["name"], dry_run)
            return self._json({"kind": kind.list_kind, "apiVersion": kind.api_version,
                               "metadata": {"resourceVersion": str(self._rv)}, "items": items})
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # ------------------------------------------------------------ subresources

    # What each served subresource is, as discovery lists it: (kind, group, version, verbs).
    SUBRESOURCES = {
        "status": (None, None, None, ("get", "patch", "update")),
        "scale": ("Scale", "autoscaling", "v1", ("get", "patch", "update")),
        "log": ("Pod", None, None, ("get",)),
        "eviction": ("Eviction", "policy", "v1", ("create",)),
    }

    def _serves_subresource(self, kind, subresource):
        if subresource == "status":
            return kind.status
        if subresource == "scale":
            return kind.scale is not None
        if subresource in ("log", "eviction"):
            return kind.kind == "Pod" and not kind.group
        return False

    def scale_of(self, kind, obj):
        """The autoscaling/v1 Scale of a workload (or of a custom resource with a scale subresource)."""
        spec_path, status_path, selector_path = kind.scale
        meta = obj["metadata"]
        selector = patching.get_path(obj, selector_path) if selector_path else None
        if isinstance(selector, dict):
            selector = selectors.selector_string(selector)
        status = {"replicas": patching.get_path(obj, status_path) or 0 if status_path else 0}
        if selector:
            status["selector"] = selector
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": patching.get_path(obj, spec_path) or 0}, "status": status}

    def _serve_scale(self, request, kind, namespace, name, verb, manager, dry_run):
        old = self.get(kind, namespace, name)
        if old is None:
            raise not_found(kind, name)
        current = self.scale_of(kind, old)
        if verb == "get":
            return current
        if verb == "update":
            wanted = self._body(request)
        elif verb == "patch":
            ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype == "application/json-patch+json":
                wanted = patching.json_patch(current, request.data)
            elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json") and \
                    isinstance(request.data, dict):
                wanted = patching.merge_patch(current, request.data)
            else:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: application/json-patch+json, "
                               "application/merge-patch+json, application/strategic-merge-patch+json")
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        replicas = (wanted.get("spec") or {}).get("replicas", 0) if isinstance(wanted, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise ApiError(400, "BadRequest", 'Scale in version "v1" cannot be handled as a Scale: json: cannot '
                           "unmarshal %s into Go struct field ScaleSpec.spec.replicas of type int32"
                           % schemas.json_type(replicas))
        if replicas < 0:
            raise ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: Invalid value: %d: '
                           "must be greater than or equal to 0" % (name, replicas),
                           {"name": name, "group": "autoscaling", "kind": "Scale", "causes": [
                               {"reason": "FieldValueInvalid", "field": "spec.replicas",
                                "message": "Invalid value: %d: must be greater than or equal to 0" % replicas}]})
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; '
                           'please apply your changes to the latest version and try again' % (kind.gr, name),
                           {"name": name, "group": kind.group, "kind": kind.plural})
        new = json_copy(old)
        patching.set_path(new, kind.scale[0], replicas)
        return self.scale_of(kind, self._finish_update(kind, old, new, manager, None, dry_run))

    def evict(self, kind, namespace, name, eviction, dry_run=False):
        """policy/v1 Eviction: the pod is deleted unless a PodDisruptionBudget would be violated (429)."""
        pod = self.get(kind, namespace, name)
        if pod is None:
            raise not_found(kind, name)
        if (eviction.get("metadata") or {}).get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        for budget in self._disruption_budgets(pod):
            if budget["allowed"] <= 0:
                raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption "
                               "budget.", {"causes": [{"reason": "DisruptionBudget", "message": (
                                   "The disruption budget %s needs %d healthy pods and has %d currently"
                                   % (budget["name"], budget["desired"], budget["healthy"]))}]})
        options = eviction.get("deleteOptions") or {}
        self.delete(kind, namespace, name, dry_run, options.get("propagationPolicy"), options.get("preconditions"))
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _disruption_budgets(self, pod):
        pdb_kind = self.kind_for("policy/v1", "PodDisruptionBudget")
        namespace = pod["metadata"]["namespace"]
        pod_kind = self.kind_for("v1", "Pod")
        out = []
        for budget in self.list(pdb_kind, namespace) if pdb_kind is not None else []:
            spec = budget.get("spec") or {}
            if not selectors.structured_selector_matches(pod["metadata"].get("labels") or {}, spec.get("selector")):
                continue
            covered = [p for p in self.list(pod_kind, namespace)
                       if selectors.structured_selector_matches(p["metadata"].get("labels") or {}, spec.get("selector"))]
            healthy = sum(1 for p in covered if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                    for c in (p.get("status") or {}).get("conditions") or []))
            expected = len(covered)

            def count(value):
                if isinstance(value, str) and value.endswith("%"):
                    return -(-int(value[:-1]) * expected // 100)
                return int(value)
            if spec.get("minAvailable") is not None:
                desired = count(spec["minAvailable"])
            else:
                desired = expected - count(spec.get("maxUnavailable", 0))
            out.append({"name": budget["metadata"]["name"], "desired": desired, "healthy": healthy,
                        "allowed": healthy - desired})
        return out

    def _discovery_resources(self, body):
        """kmock's APIResourceList with the subresources this server serves, as a real server lists them
        (and the core group's groupVersion "v1", not kmock's "/v1": kubectl would find no core kinds)."""
        gv = body.get("groupVersion", "").lstrip("/")
        group, version = gv.rpartition("/")[::2]
        out = []
        for entry in body.get("resources") or []:
            plural, _sep, subresource = entry["name"].partition("/")
            if not subresource:
                out.append(entry)
                continue
            kind = self._kinds.get((group, version, plural))
            if kind is None or not self._serves_subresource(kind, subresource):
                continue
            sub_kind, sub_group, sub_version, verbs = self.SUBRESOURCES[subresource]
            entry = {"name": entry["name"], "singularName": "", "namespaced": entry.get("namespaced", False),
                     "kind": sub_kind or kind.kind, "verbs": list(verbs)}
            if sub_group:
                entry.update(group=sub_group, version=sub_version)
            out.append(entry)
        present = {e["name"] for e in out}
        for kind in self._kinds.values():
            if (kind.group, kind.version) != (group, version) or kind.plural not in present:
                continue
            for subresource in ("scale",):
                name = "%s/%s" % (kind.plural, subresource)
                if name not in present and self._serves_subresource(kind, subresource):
                    sub_kind, sub_group, sub_version, verbs = self.SUBRESOURCES[subresource]
                    out.append({"name": name, "singularName": "", "namespaced": kind.namespaced, "kind": sub_kind,
                                "group": sub_group, "version": sub_version, "verbs": list(verbs)})
        return dict(body, groupVersion=gv, resources=out)

    def _openapi(self, path):
        """/openapi/v2, /openapi/v3 and /openapi/v3/<group version>, built once per set of served kinds."""
        served = tuple(sorted((k.group, k.version, k.plural, json.dumps(k.schema, sort_keys=True) if k.custom else "")
                              for k in self._kinds.values()))
        if self._openapi_cache.get("served") != served:
            self._openapi_cache = {"served": served}
        cache = self._openapi_cache
        if path == "/openapi/v2":
            if "v2" not in cache:
                cache["v2"] = openapi.v2(self.kube_version, self.kinds())
            return aiohttp.web.json_response(cache["v2"])
        if "v3" not in cache:
            cache["v3"] = openapi.v3_documents(self.kube_version, self.kinds())
        if path == "/openapi/v3":
            return aiohttp.web.json_response(openapi.v3_discovery(cache["v3"]))
        document = cache["v3"].get(path[len("/openapi/v3/"):])
        if document is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return aiohttp.web.json_response(document)

    def _default_manager(self, request):
        agent = request.headers.get("User-Agent") or "unknown"
        return agent.split("/")[0] or "unknown"

    def _body(self, request):
        if not isinstance(request.data, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        return request.data

    def _check_kind(self, kind, body):
        if body.get("kind") and body["kind"] != kind.kind:
            raise ApiError(400, "BadRequest", "the kind of the object (%s) does not match the URL (%s)"
                           % (body["kind"], kind.kind))

    def _json(self, body, status=200):
        return aiohttp.web.json_response(body, status=status)

    def _list_response(self, kind, namespace, params):
        try:
            label = params.get("labelSelector")
            if label:
                selectors.parse_label_selector(label)
            fields = selectors.parse_field_selector(params.get("fieldSelector"), kind.kind)
        except selectors.SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc))
        items = self.list(kind, namespace, label, fields)
        meta = {"resourceVersion": str(self._rv)}
        limit = int(params.get("limit") or 0)
        start = int(base64.b64decode(params["continue"]).decode()) if params.get("continue") else 0
        if limit:
            page = items[start:start + limit]
            if start + limit < len(items):
                meta["continue"] = base64.b64encode(str(start + limit).encode()).decode()
                meta["remainingItemCount"] = len(items) - start - limit
            items = page
        if not kind.custom:
            # built-in list items carry no apiVersion/kind; custom resources keep theirs
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {"kind": kind.list_kind, "apiVersion": kind.api_version, "metadata": meta, "items": items}

    def _pod_log(self, kind, namespace, name, params):
        obj = self.get(kind, namespace, name)
        if obj is None:
            raise not_found(kind, name)
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Pending":
            container = ((obj.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
            raise ApiError(400, "BadRequest", 'container "%s" in pod "%s" is waiting to start: ContainerCreating'
                           % (container, name))
        text = self.pod_logs.get((namespace, name), "")
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _watch(self, request, kind, namespace, name, params):
        if self._changed is None:
            self._changed = asyncio.Condition()
        timeout = float(params.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        label = params.get("labelSelector")
        try:
            fields = selectors.parse_field_selector(params.get("fieldSelector"), kind.kind)
            if label:
                selectors.parse_label_selector(label)
        except selectors.SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc))
        if name:
            fields = list(fields) + [("metadata.name", True, name)]
        since = params.get("resourceVersion")
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)

        def visible(obj):
            meta = obj.get("metadata") or {}
            if namespace and kind.namespaced and meta.get("namespace") != namespace:
                return False
            if label and not selectors.label_selector_matches(meta.get("labels"), label):
                return False
            return selectors.field_selector_matches(obj, fields)

        async def send(event_type, obj):
            if not kind.custom and event_type != "ERROR":
                obj = dict(obj, apiVersion=kind.api_version, kind=kind.kind)
            await response.write(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")

        try:
            if since in (None, "", "0"):
                last = self._rv
                for obj in self.list(kind, namespace, label, fields):
                    await send("ADDED", obj)
            else:
                last = int(since)
                oldest = self._events[0][0] if self._events else self._rv
                if last < oldest - 1 and self._events:
                    await send("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                         "message": "too old resource version: %s (%d)" % (since, oldest),
                                         "reason": "Expired", "code": 410})
                    await response.write_eof()
                    return response
            while True:
                pending = [e for e in self._events if e[0] > last]
                if pending:
                    last = pending[-1][0]
                for rv, group, plural, event_type, obj in pending:
                    if (group, plural) == (kind.group, kind.plural) and visible(obj):
                        await send(event_type, obj)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                async with self._changed:
                    try:
                        await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 5.0))
                    except asyncio.TimeoutError:
                        pass
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    def request_log(self):
        return list(self._log)

    def route_counts(self):
        """{"total": n, "by_route": {route: n}} of the requests served since the start or the last reset."""
        return {"total": sum(self._routes.values()), "by_route": dict(self._routes)}

    def reset_route_counts(self):
        self._routes.clear()

    def never_matches(self, image, patterns):
        return any(fnmatch.fnmatchcase(image, p) for p in patterns)
