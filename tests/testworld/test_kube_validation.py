"""Objects are decoded and validated as the API server does: built-in kinds against the upstream
schemas, custom resources against their CRD's OpenAPI v3 schema; judged by the `kubernetes`
client (dynamic and raw) and kubernetes.core."""

import json
import urllib.error
import urllib.request

import pytest
from kubernetes import config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from testworld.kubernetes.playbook_runner import run_playbook
from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import
from testworld.kubernetes.world import TOKEN

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {
                     "type": "object", "required": ["size"],
                     "properties": {"size": {"type": "integer"}, "colour": {"type": "string", "enum": ["red", "blue"]},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}}}]}}
SCENARIO = {"cluster": {"podSecurity": {"enforce": "privileged"}},
            "nodes": [{"name": "n1", "kernel": "6.8.0-45-generic"}], "installed": {"objects": [CRD]}}


@pytest.fixture
def world(kube_world_factory):  # noqa: F811
    return kube_world_factory(SCENARIO)


@pytest.fixture
def dyn(world):
    return DynamicClient(config.new_client_from_config(config_file=world.kubeconfig))


def post(world, path, body, query=""):
    """(status, body, Warning headers) of a raw POST."""
    req = urllib.request.Request(world.url + path + query, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN})
    try:
        with urllib.request.urlopen(req, context=world.ssl_context(), timeout=10) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get_all("Warning") or []
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers.get_all("Warning") or []


def deployment(name, **spec):
    base = {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": base}


def test_builtin_unknown_fields_follow_field_validation(world):
    path = "/apis/apps/v1/namespaces/default/deployments"
    status, body, warnings = post(world, path, deployment("warned", bogus=1))
    assert status == 201 and "bogus" not in body["spec"]
    assert warnings == ['299 - "unknown field \\"spec.bogus\\""']
    status, body, _headers = post(world, path, deployment("ignored", bogus=1), "?fieldValidation=Ignore")
    assert status == 201 and "bogus" not in body["spec"]
    status, body, _headers = post(world, path, deployment("strict", bogus=1), "?fieldValidation=Strict")
    assert status == 400 and body["message"] == 'strict decoding error: unknown field "spec.bogus"'
    assert world.get("apps/v1", "Deployment", "strict", "default") is None


def test_builtin_type_errors_are_400_and_missing_fields_422(world, dyn):
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    with pytest.raises(ApiException) as err:
        deployments.create(deployment("typed", replicas="three"), namespace="default")
    body = json.loads(err.value.body)
    assert err.value.status == 400 and body["reason"] == "BadRequest"
    assert "spec.replicas" in body["message"] and "cannot be handled as a Deployment" in body["message"]

    bad = deployment("required")
    del bad["spec"]["template"]["spec"]["containers"][0]["name"]
    bad["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"name": "http"}]
    with pytest.raises(ApiException) as err:
        deployments.create(bad, namespace="default")
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    fields = {(c["field"], c["reason"]) for c in body["details"]["causes"]}
    assert ("spec.template.spec.containers[0].name", "FieldValueRequired") in fields
    assert ("spec.template.spec.containers[0].ports[0].containerPort", "FieldValueRequired") in fields

    services = dyn.resources.get(api_version="v1", kind="Service")
    with pytest.raises(ApiException) as err:
        services.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                         "spec": {"ports": [{"port": "http"}]}}, namespace="default")
    assert err.value.status == 400


def test_custom_resources_follow_their_crd_schema(world, dyn):
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    created = widgets.create({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                              "spec": {"size": 3, "unknown": True, "extra": {"kept": 1}}}, namespace="default")
    assert created.spec.to_dict() == {"size": 3, "extra": {"kept": 1}}  # pruned, as for a structural schema
    with pytest.raises(ApiException) as err:
        widgets.create({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"},
                        "spec": {"size": "big", "colour": "green"}}, namespace="default")
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert {(c["field"], c["reason"]) for c in body["details"]["causes"]} == {
        ("spec.size", "FieldValueTypeInvalid"), ("spec.colour", "FieldValueNotSupported")}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "s"},
              "spec": {"size": 1, "unknown": True}}
    status, body, _headers = post(world, "/apis/example.com/v1/namespaces/default/widgets", widget,
                                  "?fieldValidation=Strict")
    assert status == 400 and body["message"] == "strict decoding error: .spec.unknown: field not declared in schema"


PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: A Deployment with a misspelt field
      kubernetes.core.k8s:
        definition:
          apiVersion: apps/v1
          kind: Deployment
          metadata: {name: typo, namespace: default}
          spec:
            replicas: many
            selector: {matchLabels: {app: typo}}
            template:
              metadata: {labels: {app: typo}}
              spec: {containers: [{name: c, image: nginx}]}
"""


def test_kubernetes_core_sees_the_decoding_error(world):
    run = run_playbook(world, PLAY)
    assert run.rc != 0
    assert "cannot be handled as a Deployment" in run.stdout
    assert world.get("apps/v1", "Deployment", "typo", "default") is None
