"""/openapi/v2 and /openapi/v3 of the simulated API server.

Built from the same upstream definitions the server validates with (schemas.py) plus the
OpenAPI v3 schema of every served custom resource, in the shapes clients read:

* v2: one Swagger 2.0 document, ``definitions`` keyed by the upstream names, each kind's
  definition carrying ``x-kubernetes-group-version-kind`` (``kubectl explain`` with
  ``--output plaintext-openapiv2``, client-side validation);
* v3: a discovery document ``{"paths": {"apis/apps/v1": {"serverRelativeURL": ...}}}`` and
  one OpenAPI 3.0 document per group version with its paths (the operations carry
  ``x-kubernetes-action`` and ``x-kubernetes-group-version-kind`` and list the query
  parameters the server honours: kubectl looks for ``fieldValidation`` there before it relies
  on server-side field validation) and ``components.schemas``.
"""

import hashlib
import json

from testworld.kubernetes import schemas

WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")
_ACTIONS = {  # (item path?, method) -> x-kubernetes-action
    (False, "get"): "list", (False, "post"): "post", (False, "delete"): "deletecollection",
    (True, "get"): "get", (True, "put"): "put", (True, "patch"): "patch", (True, "delete"): "delete",
}


def _convert(schema, ref_prefix):
    """An upstream JSON-schema definition as OpenAPI (one type per schema, refs under `ref_prefix`)."""
    if isinstance(schema, list):
        return [_convert(s, ref_prefix) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = ref_prefix + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if types:
                out[key] = types[0]
        elif key in ("properties", "$defs"):
            out[key] = {k: _convert(v, ref_prefix) for k, v in value.items()}
        elif key == "oneOf" and all(isinstance(v, dict) and "type" in v for v in value):
            # IntOrString and Quantity: how the published documents spell them
            types = {t for v in value for t in (v["type"] if isinstance(v["type"], list) else [v["type"]])}
            out["type"] = "string"
            out["format"] = "int-or-string" if "integer" in types else "quantity"
        else:
            out[key] = _convert(value, ref_prefix)
    return out


def _custom_definition(kind):
    schema = dict(kind.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    schema["x-kubernetes-group-version-kind"] = [{"group": kind.group, "version": kind.version, "kind": kind.kind}]
    return schema


def _definition_key(kind):
    """Custom resources are keyed by reversed group, version and kind, as the real documents do."""
    return ".".join(list(reversed(kind.group.split("."))) + [kind.version, kind.kind])


def v2(kube_version, kinds):
    _directory, definitions, _index = schemas.release(kube_version)
    out = {name: _convert(d, "#/definitions/") for name, d in definitions.items()}
    for kind in kinds:
        if kind.custom:
            out[_definition_key(kind)] = _custom_definition(kind)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": kube_version},
            "paths": {}, "definitions": out}


def _gv_path(group, version):
    return "api/%s" % version if not group else "apis/%s/%s" % (group, version)


def _operations(kind, schema_ref):
    gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
    prefix = "/" + _gv_path(kind.group, kind.version) + ("/namespaces/{namespace}" if kind.namespaced else "")
    paths = {}
    for item, path in ((False, "%s/%s" % (prefix, kind.plural)), (True, "%s/%s/{name}" % (prefix, kind.plural))):
        ops = {}
        for (is_item, method), action in _ACTIONS.items():
            if is_item != item:
                continue
            params = [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                      for p in WRITE_PARAMETERS] if method in ("post", "put", "patch") else []
            ops[method] = {
                "operationId": "%s%s" % (action, kind.kind), "parameters": params,
                "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK",
                                      "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
            }
        paths[path] = ops
    return paths


def v3_documents(kube_version, kinds):
    """{"api/v1": document, "apis/apps/v1": document, ...} for every served group version."""
    _directory, definitions, index = schemas.release(kube_version)
    converted = {name: _convert(d, "#/components/schemas/") for name, d in definitions.items()}
    docs = {}
    for kind in kinds:
        key = _gv_path(kind.group, kind.version)
        doc = docs.setdefault(key, {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": kube_version},
                                    "paths": {}, "components": {"schemas": {}}})
        if kind.custom:
            name = _definition_key(kind)
            doc["components"]["schemas"][name] = _custom_definition(kind)
            meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
            doc["components"]["schemas"].setdefault(meta, converted[meta])
        else:
            name = index.get((kind.group, kind.version, kind.kind))
            if name is None:
                continue
            _closure(name, converted, doc["components"]["schemas"])
        doc["paths"].update(_operations(kind, "#/components/schemas/" + name))
    return docs


def _closure(name, converted, into):
    """`name` and every definition it refers to."""
    todo = [name]
    while todo:
        current = todo.pop()
        if current in into or current not in converted:
            continue
        into[current] = converted[current]
        text = json.dumps(converted[current])
        todo.extend(part.split('"', 1)[0] for part in text.split('"#/components/schemas/')[1:])


def v3_discovery(documents):
    return {"paths": {key: {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (key, digest(doc))}
                      for key, doc in sorted(documents.items())}}


def digest(document):
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32].upper()
