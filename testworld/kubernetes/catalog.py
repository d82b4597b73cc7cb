"""What the simulated API server knows about kinds: per-kind behaviour of
built-in types, validation of the fields clients commonly get wrong, and the
structural-schema checks the API server runs on custom resources."""

import base64
import re

import attrs

from testworld.kubernetes.schemas import json_type

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@attrs.define
class Kind:
    """One served resource (one group/version/plural)."""
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple = ()
    verbs: tuple = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    status: bool = False          # has a /status subresource
    generation: bool = False      # metadata.generation tracks spec changes
    returns_object_on_delete: bool = False
    clear_status_on_create: bool = False
    custom: bool = False          # served from a CustomResourceDefinition
    schema: dict | None = None    # openAPIV3Schema of a custom resource
    crd_name: str | None = None
    # a /scale subresource: (spec replicas path, status replicas path, label selector path or None)
    scale: tuple | None = None

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def list_kind(self):
        return self.kind + "List"

    @property
    def key(self):
        return (self.group, self.plural)

    @property
    def gr(self):
        """group-qualified resource, as used in API error messages"""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    @property
    def gk(self):
        return "%s.%s" % (self.kind, self.group) if self.group else self.kind


# Where the workload kinds keep what their /scale subresource shows (the selector is spec.selector).
BUILTIN_SCALE = (".spec.replicas", ".status.replicas", ".spec.selector")

# Built-in kinds whose server behaviour differs from a plain stored document.
# (group, plural): overrides
BUILTIN_BEHAVIOUR = {
    ("", "namespaces"): dict(status=True, returns_object_on_delete=True),
    ("", "nodes"): dict(status=True),
    ("", "pods"): dict(status=True, returns_object_on_delete=True, clear_status_on_create=True),
    ("", "replicationcontrollers"): dict(status=True, generation=True, scale=BUILTIN_SCALE),
    ("apps", "deployments"): dict(status=True, generation=True, clear_status_on_create=True, scale=BUILTIN_SCALE),
    ("apps", "daemonsets"): dict(status=True, generation=True, clear_status_on_create=True),
    ("apps", "statefulsets"): dict(status=True, generation=True, clear_status_on_create=True, scale=BUILTIN_SCALE),
    ("apps", "replicasets"): dict(status=True, generation=True, clear_status_on_create=True, scale=BUILTIN_SCALE),
    ("batch", "jobs"): dict(status=True, generation=True, clear_status_on_create=True),
    ("batch", "cronjobs"): dict(status=True, generation=True, clear_status_on_create=True),
    ("apiextensions.k8s.io", "customresourcedefinitions"): dict(status=True, generation=True,
                                                                returns_object_on_delete=True,
                                                                clear_status_on_create=True),
}


class Causes(list):
    """Field errors collected for a 422 Invalid answer."""

    def add(self, field, reason, message):
        self.append({"field": field, "reason": reason, "message": message})


def _check_qualified_key(key, field, causes, what="label"):
    prefix, name = key.rpartition("/")[::2]
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        causes.add(field, "FieldValueInvalid",
                   "Invalid value: %r: prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                   "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character" % key)
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        causes.add(field, "FieldValueInvalid",
                   "Invalid value: %r: name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                   "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                   "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') and be at most 63 "
                   "characters" % key)


def validate_metadata(kind, obj, causes):
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        causes.add("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")
    elif name:
        label_only = kind.kind == "Namespace"
        pattern = DNS1123_LABEL if label_only else DNS1123_SUBDOMAIN
        limit = 63 if label_only else 253
        if len(name) > limit or not pattern.match(name):
            causes.add("metadata.name", "FieldValueInvalid",
                       "Invalid value: %r: a lowercase RFC 1123 %s must consist of lower case alphanumeric "
                       "characters, '-' or '.', and must start and end with an alphanumeric character"
                       % (name, "label" if label_only else "subdomain"))
    for key, value in (meta.get("labels") or {}).items():
        _check_qualified_key(key, "metadata.labels", causes)
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            causes.add("metadata.labels", "FieldValueInvalid",
                       "Invalid value: %r: a valid label must be an empty string or consist of alphanumeric "
                       "characters, '-', '_' or '.', and must start and end with an alphanumeric character" % (value,))
    for key, value in (meta.get("annotations") or {}).items():
        _check_qualified_key(key, "metadata.annotations", causes, "annotation")
        if not isinstance(value, str):
            causes.add("metadata.annotations", "FieldValueInvalid", "Invalid value: annotation values must be strings")


def _pod_spec(spec, field, causes, job=False):
    if not isinstance(spec, dict):
        causes.add(field, "FieldValueRequired", "Required value")
        return
    containers = spec.get("containers")
    if not containers:
        causes.add(field + ".containers", "FieldValueRequired", "Required value")
    for i, container in enumerate(containers or []):
        if not container.get("name"):
            causes.add("%s.containers[%d].name" % (field, i), "FieldValueRequired", "Required value")
        if not container.get("image"):
            causes.add("%s.containers[%d].image" % (field, i), "FieldValueRequired", "Required value")
    policy = spec.get("restartPolicy", "Never" if job else "Always")
    if job and policy not in ("Never", "OnFailure"):
        causes.add(field + ".restartPolicy", "FieldValueNotSupported",
                   'Unsupported value: "%s": supported values: "OnFailure", "Never"' % policy)


def _workload(obj, causes, job=False):
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    tlabels = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    if not job:
        if not selector:
            causes.add("spec.selector", "FieldValueRequired", "Required value")
        else:
            from testworld.kubernetes.selectors import structured_selector_matches
            if not structured_selector_matches(tlabels, selector):
                causes.add("spec.template.metadata.labels", "FieldValueInvalid",
                           "Invalid value: %r: `selector` does not match template `labels`" % (tlabels,))
    _pod_spec(template.get("spec"), "spec.template.spec", causes, job=job)


def validate_builtin(kind, obj, causes):
    if kind.kind in ("DaemonSet", "Deployment", "StatefulSet", "ReplicaSet"):
        _workload(obj, causes)
    elif kind.kind == "Job":
        _workload(obj, causes, job=True)
    elif kind.kind == "Pod":
        _pod_spec(obj.get("spec"), "spec", causes)
    elif kind.kind == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            if not isinstance(value, str):
                causes.add("data[%s]" % key, "FieldValueInvalid", "Invalid value: values of data must be strings")
    elif kind.kind == "Secret":
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except Exception:  # noqa: BLE001 - any decoding failure is the same 422 for clients
                causes.add("data[%s]" % key, "FieldValueInvalid", "Invalid value: illegal base64 data")
    elif kind.kind == "CustomResourceDefinition":
        _crd(obj, causes)


def _crd(obj, causes):
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    for field in ("group",):
        if not spec.get(field):
            causes.add("spec." + field, "FieldValueRequired", "Required value")
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.add("spec.names." + field, "FieldValueRequired", "Required value")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.add("spec.scope", "FieldValueNotSupported", 'Unsupported value: %r: supported values: "Cluster", '
                   '"Namespaced"' % spec.get("scope"))
    versions = spec.get("versions") or []
    if not versions:
        causes.add("spec.versions", "FieldValueRequired", "Required value")
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.add("spec.versions", "FieldValueInvalid", "Invalid value: must have exactly one version marked as "
                   "storage version")
    expected = "%s.%s" % (names.get("plural"), spec.get("group"))
    if (obj.get("metadata") or {}).get("name") != expected:
        causes.add("metadata.name", "FieldValueInvalid", 'Invalid value: %r: must be spec.names.plural+"."+spec.group'
                   % (obj.get("metadata") or {}).get("name"))


# ---------------------------------------------------------------- custom resources

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float),
}


def validate_schema(value, schema, field, causes, unknown=None):
    """Check `value` against a structural schema; return the pruned value (the pruned fields are
    added to `unknown`)."""
    if schema is None:
        return value
    if value is None:
        if schema.get("nullable"):
            return value
        causes.add(field, "FieldValueTypeInvalid", 'Invalid value: "null": %s in body must be of type %s'
                   % (field, schema.get("type", "object")))
        return value
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            causes.add(field, "FieldValueTypeInvalid", "Invalid value: must be an integer or a string")
        return value
    expected = schema.get("type")
    if expected and expected in _TYPES:
        ok = isinstance(value, _TYPES[expected]) and not (expected in ("integer", "number") and isinstance(value, bool))
        if not ok:
            causes.add(field, "FieldValueTypeInvalid", "Invalid value: %r: %s in body must be of type %s: %r"
                       % (type(value).__name__, field, expected, json_type(value)))
            return value
    if "enum" in schema and value not in schema["enum"]:
        causes.add(field, "FieldValueNotSupported", "Unsupported value: %r: supported values: %s"
                   % (value, ", ".join('"%s"' % e for e in schema["enum"])))
    if isinstance(value, str) and schema.get("pattern") and not re.search(schema["pattern"], value):
        causes.add(field, "FieldValueInvalid", "Invalid value: %r: %s in body should match '%s'"
                   % (value, field, schema["pattern"]))
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.add(field, "FieldValueTooLong", "Too long: may not be more than %d bytes" % schema["maxLength"])
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.add(field, "FieldValueInvalid", "Invalid value: %d: %s in body should have at least %d items"
                       % (len(value), field, schema["minItems"]))
        items = schema.get("items")
        return [validate_schema(v, items, "%s[%d]" % (field, i), causes, unknown) for i, v in enumerate(value)]
    if isinstance(value, dict):
        for req in schema.get("required") or []:
            if req not in value:
                causes.add("%s.%s" % (field, req) if field else req, "FieldValueRequired", "Required value")
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        out = {}
        for key, sub in value.items():
            path = "%s.%s" % (field, key) if field else key
            if props and key in props:
                out[key] = validate_schema(sub, props[key], path, causes, unknown)
            elif isinstance(addl, dict):
                out[key] = validate_schema(sub, addl, path, causes, unknown)
            elif addl is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[key] = sub
            elif unknown is not None:
                unknown.append(path)  # pruned, as the API server prunes structural schemas
        return out
    return value


def validate_custom(kind, obj, causes, unknown=None):
    """Validate and prune a custom resource; returns the pruned object."""
    if not kind.schema:
        return obj
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    schema = dict(kind.schema)
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k not in ("apiVersion", "kind", "metadata")}
    schema["properties"] = props
    schema["required"] = [r for r in schema.get("required") or [] if r not in ("apiVersion", "kind", "metadata")]
    pruned = validate_schema(body, schema, "", causes, unknown)
    out = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    out.update(pruned if isinstance(pruned, dict) else {})
    return out


def crd_kind(crd, version_entry):
    spec = crd["spec"]
    names = spec["names"]
    subresources = version_entry.get("subresources") or spec.get("subresources") or {}
    schema = (version_entry.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
    scale = subresources.get("scale")
    return Kind(
        group=spec["group"],
        version=version_entry["name"],
        plural=names["plural"],
        kind=names["kind"],
        namespaced=spec.get("scope") == "Namespaced",
        singular=names.get("singular") or names["kind"].lower(),
        short_names=tuple(names.get("shortNames") or ()),
        status="status" in subresources,
        generation=True,
        returns_object_on_delete=True,
        clear_status_on_create="status" in subresources,
        custom=True,
        schema=schema,
        crd_name=crd["metadata"]["name"],
        scale=(scale.get("specReplicasPath"), scale.get("statusReplicasPath"), scale.get("labelSelectorPath"))
        if isinstance(scale, dict) else None,
    )
