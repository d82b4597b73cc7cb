"""The upstream schemas of the built-in kinds, as the API server decodes and validates them.

The definitions come from PyPI's ``kubernetes-validate`` (the OpenAPI definitions of each
Kubernetes release, converted to JSON schema), the release closest to the cluster's version
without being newer. What the API server does with a built-in object, and what is mirrored here:

* decoding into the Go types: a value of the wrong JSON type is a 400 BadRequest ("cannot be
  handled as a Deployment: json: cannot unmarshal ..."); a field the type does not have is
  dropped (``fieldValidation=Ignore``), dropped with a warning (``Warn``, the default) or refused
  with 400 (``Strict``: "strict decoding error: unknown field ...");
* validation: required fields and enumerations are 422 Invalid with one cause per field.
"""

import functools
import json
import os
import re

_VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)\.\d+-local$")
_REF = re.compile(r"#/\$defs/(.+)$")


class SchemaUnavailable(RuntimeError):
    pass


def _schema_root():
    try:
        import kubernetes_validate
    except ImportError as exc:  # pragma: no cover - a pinned test requirement
        raise SchemaUnavailable("kubernetes-validate is not installed (requirements/test.txt)") from exc
    return os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")


@functools.lru_cache(maxsize=None)
def release(kube_version):
    """(schema directory, definitions, {(group, version, kind): definition name}) for a cluster version."""
    root = _schema_root()
    wanted = tuple(int(x) for x in re.findall(r"\d+", kube_version)[:2])
    versions = sorted((tuple(int(x) for x in m.groups()), name)
                      for name in os.listdir(root) for m in [_VERSION_DIR.match(name)] if m)
    older = [name for number, name in versions if number <= wanted]
    directory = older[-1] if older else versions[0][1]
    with open(os.path.join(root, directory, "_definitions.json"), encoding="utf-8") as handle:
        definitions = json.load(handle)["$defs"]
    index = {}
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            index[(gvk.get("group", ""), gvk.get("version"), gvk.get("kind"))] = name
    return directory, definitions, index


def definition_name(kube_version, group, version, kind):
    return release(kube_version)[2].get((group, version, kind))


_JSON_TYPES = (("boolean", bool), ("integer", int), ("number", (int, float)), ("string", str),
               ("array", list), ("object", dict))


def json_type(value):
    for name, typ in _JSON_TYPES:
        if isinstance(value, typ):
            return name
    return "null"


def _is(value, type_name):
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or \
            isinstance(value, float) and value.is_integer()
    if type_name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return json_type(value) == type_name


class Findings:
    """What checking an object found: type errors (decoding), causes (validation), unknown fields."""

    def __init__(self):
        self.type_errors = []   # (field, JSON type given, type expected)
        self.causes = []        # {"field", "reason", "message"}
        self.unknown = []       # field paths


class Checker:
    def __init__(self, definitions):
        self.definitions = definitions

    def resolve(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            match = _REF.search(schema["$ref"])
            schema = self.definitions.get(match.group(1)) if match else None
        return schema or {}

    def check(self, value, schema, field, found):
        """Check `value` against `schema`; returns it without the fields the schema does not know."""
        schema = self.resolve(schema)
        if value is None:
            return value
        alternatives = schema.get("oneOf") or schema.get("anyOf")
        if alternatives:
            types = [t for alt in alternatives for t in _types(self.resolve(alt))]
            if types and not any(_is(value, t) for t in types):
                found.type_errors.append((field, json_type(value), " or ".join(types)))
            return value
        types = _types(schema)
        if types and not any(_is(value, t) for t in types):
            found.type_errors.append((field, json_type(value), types[0]))
            return value
        enum = [e for e in schema.get("enum") or [] if e is not None]
        if enum and value not in enum:
            found.causes.append({"field": field, "reason": "FieldValueNotSupported",
                                 "message": "Unsupported value: %s: supported values: %s"
                                 % (json.dumps(value), ", ".join(json.dumps(e) for e in enum))})
        if isinstance(value, list):
            items = schema.get("items")
            if items is None:
                return value
            return [self.check(v, items, "%s[%d]" % (field, i), found) for i, v in enumerate(value)]
        if isinstance(value, dict):
            props = schema.get("properties")
            addl = schema.get("additionalProperties")
            for required in schema.get("required") or []:
                if value.get(required) is None:
                    found.causes.append({"field": _join(field, required), "reason": "FieldValueRequired",
                                         "message": "Required value"})
            if props is None and addl is None:
                return value
            out = {}
            for key, sub in value.items():
                path = _join(field, key)
                if props and key in props:
                    out[key] = self.check(sub, props[key], path, found)
                elif isinstance(addl, dict):
                    out[key] = self.check(sub, addl, path, found)
                elif addl is True:
                    out[key] = sub
                else:
                    found.unknown.append(path)
            return out
        return value


def _types(schema):
    raw = schema.get("type")
    if raw is None:
        return []
    return [t for t in (raw if isinstance(raw, list) else [raw]) if t != "null"]


def _join(field, key):
    return "%s.%s" % (field, key) if field else key


def check_builtin(kube_version, group, version, kind, obj):
    """(pruned object, Findings) for a built-in object; (obj, None) when upstream has no schema for it."""
    _directory, definitions, index = release(kube_version)
    name = index.get((group, version, kind))
    if name is None:
        return obj, None
    found = Findings()
    pruned = Checker(definitions).check(obj, {"$ref": "#/$defs/" + name}, "", found)
    return pruned, found


def check_object_meta(kube_version, meta, found):
    """ObjectMeta as every kind has it (custom resources too); returns it pruned."""
    definitions = release(kube_version)[1]
    return Checker(definitions).check(
        meta, {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}, "metadata", found)
