"""Fidelity of the simulated API server, exercised with the `kubernetes` client."""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import
from testworld.kubernetes.world import TOKEN

MINIMAL = {"cluster": {"podSecurity": {"enforce": "privileged"}},
           "nodes": [{"name": "n1", "kernel": "6.8.0-45-generic"}, {"name": "n2", "kernel": "6.8.0-45-generic"}],
           "installed": {"crds": ["monitoring"]}}


@pytest.fixture
def world(kube_world_factory):  # noqa: F811
    return kube_world_factory(MINIMAL)


@pytest.fixture
def api(world):
    return config.new_client_from_config(config_file=world.kubeconfig)


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture
def dyn(api):
    return DynamicClient(api)


def raw(world, method, path, body=None, content_type="application/json"):
    """A request without the client's typed models, to see exactly what the server answers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(world.url + path, data=data, method=method,
                                 headers={"Content-Type": content_type, "Accept": "application/json",
                                          "Authorization": "Bearer " + TOKEN})
    try:
        with urllib.request.urlopen(req, timeout=10, context=world.ssl_context()) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def status_of(exc):
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def test_create_namespace_sets_server_fields(core):
    ns = core.create_namespace({"metadata": {"name": "demo"}})
    assert ns.status.phase == "Active"
    assert ns.metadata.uid and ns.metadata.creation_timestamp
    assert int(ns.metadata.resource_version) > 0
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "demo"
    assert core.read_namespace("demo").metadata.uid == ns.metadata.uid


def test_resource_version_increments_and_stale_put_conflicts(core):
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    rv1 = int(cm.metadata.resource_version)
    cm.data["a"] = "2"
    updated = core.replace_namespaced_config_map("c", "default", cm)
    assert int(updated.metadata.resource_version) > rv1
    cm.data["a"] = "3"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", "default", cm)
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_put_is_a_full_update_not_a_merge(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "c", "labels": {"x": "1"}},
                                                  "data": {"a": "1", "b": "2"}})
    got = core.replace_namespaced_config_map("c", "default", {"metadata": {"name": "c"}, "data": {"a": "9"}})
    assert got.data == {"a": "9"}
    assert not got.metadata.labels


def test_not_found_and_already_exists_are_status_objects(core):
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("missing", "default")
    body = status_of(err.value)
    assert body["reason"] == "NotFound" and body["message"] == 'configmaps "missing" not found'
    assert body["details"] == {"name": "missing", "kind": "configmaps", "group": ""}
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert status_of(err.value)["reason"] == "AlreadyExists" and err.value.status == 409


def test_create_in_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "c"}})
    assert err.value.status == 404 and 'namespaces "nope" not found' in status_of(err.value)["message"]


@pytest.mark.parametrize("meta, field", [
    ({"name": "Bad_Name"}, "metadata.name"),
    ({"name": "ok", "labels": {"bad key!": "v"}}, "metadata.labels"),
    ({"name": "ok", "labels": {"k": "x" * 64}}, "metadata.labels"),
])
def test_invalid_objects_are_422_with_causes(core, meta, field):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": meta})
    body = status_of(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert any(c["field"] == field for c in body["details"]["causes"])


def test_daemonset_selector_must_match_template(api):
    apps = client.AppsV1Api(api)
    body = {"metadata": {"name": "ds"}, "spec": {
        "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_daemon_set("default", body)
    assert err.value.status == 422 and "does not match template" in status_of(err.value)["message"]


def test_list_has_kind_and_filters_by_selectors(core, dyn):
    for name, labels in (("a", {"tier": "gpu", "zone": "1"}), ("b", {"tier": "cpu"}), ("c", {})):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})
    raw = dyn.resources.get(api_version="v1", kind="ConfigMap").get(namespace="default")
    assert raw.kind == "ConfigMapList" and raw.apiVersion == "v1" and raw.metadata.resourceVersion

    def names(**kw):
        return sorted(i.metadata.name for i in core.list_namespaced_config_map("default", **kw).items)

    assert names(label_selector="tier=gpu") == ["a"]
    assert names(label_selector="tier!=gpu") == ["b", "c"]
    assert names(label_selector="tier in (gpu,cpu),zone") == ["a"]
    assert names(label_selector="!tier") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", field_selector="data.a=1")
    assert err.value.status == 400


def test_list_pagination(core):
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": "p%d" % i}})
    first = core.list_namespaced_config_map("default", limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    rest = core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [i.metadata.name for i in first.items + rest.items] == ["p%d" % i for i in range(5)]


def test_dry_run_returns_object_without_persisting(core):
    made = core.create_namespaced_config_map("default", {"metadata": {"name": "d"}, "data": {"a": "1"}},
                                             dry_run="All")
    assert made.metadata.uid and made.data == {"a": "1"}
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("d", "default")
    core.create_namespaced_config_map("default", {"metadata": {"name": "d"}, "data": {"a": "1"}})
    patched = core.patch_namespaced_config_map("d", "default", {"data": {"a": "2"}}, dry_run="All")
    assert patched.data["a"] == "2"
    assert core.read_namespaced_config_map("d", "default").data["a"] == "1"
    core.delete_namespaced_config_map("d", "default", dry_run="All")
    assert core.read_namespaced_config_map("d", "default")


def _ssa(dyn, body, manager, force=False, dry_run=None):
    res = dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    return res.server_side_apply(body=body, name=body["metadata"]["name"], namespace=body["metadata"].get("namespace"),
                                 field_manager=manager, force_conflicts=force, dry_run=dry_run)


def test_server_side_apply_creates_owns_and_conflicts(dyn, core):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "namespace": "default"},
            "data": {"a": "1", "b": "2"}}
    made = _ssa(dyn, body, "alice")
    assert made.metadata.managedFields[0].manager == "alice"
    assert made.metadata.managedFields[0].operation == "Apply"
    again = _ssa(dyn, body, "alice")
    assert again.metadata.resourceVersion == made.metadata.resourceVersion  # a no-op apply writes nothing
    with pytest.raises(Exception) as err:
        _ssa(dyn, dict(body, data={"a": "changed"}), "bob")
    assert err.value.status == 409
    message = json.loads(err.value.body)["message"]
    assert 'conflict with "alice"' in message and ".data.a" in message
    forced = _ssa(dyn, dict(body, data={"a": "changed"}), "bob", force=True)
    assert forced.data.a == "changed"
    # alice drops b from her configuration: the field goes away
    pruned = _ssa(dyn, dict(body, data={}), "alice")
    assert "b" not in (pruned.data or {})
    assert core.read_namespaced_config_map("s", "default").data == {"a": "changed"}


def test_server_side_apply_dry_run_does_not_create(dyn, core):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry", "namespace": "default"},
            "data": {"a": "1"}}
    out = _ssa(dyn, body, "alice", dry_run="All")
    assert out.data.a == "1"
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry", "default")


def test_server_side_apply_needs_field_manager(world):
    code, body = raw(world, "PATCH", "/api/v1/namespaces/default/configmaps/x",
                     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
                     content_type="application/apply-patch+yaml")
    assert code == 422 and body["kind"] == "Status" and "field manager" in body["message"]


DEPLOY = {"metadata": {"name": "web"}, "spec": {
    "replicas": 1, "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
        {"name": "a", "image": "img-a:1"}, {"name": "b", "image": "img-b:1"}]}}}}


def test_strategic_merge_vs_merge_vs_json_patch(api, dyn):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", DEPLOY)
    res = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "img-b:2"}]}}}}
    smp = res.patch(body=patch, name="web", namespace="default",
                    content_type="application/strategic-merge-patch+json")
    assert [(c.name, c.image) for c in smp.spec.template.spec.containers] == [("a", "img-a:1"), ("b", "img-b:2")]
    mp = res.patch(body=patch, name="web", namespace="default", content_type="application/merge-patch+json")
    assert [(c.name, c.image) for c in mp.spec.template.spec.containers] == [("b", "img-b:2")]
    jp = res.patch(body=[{"op": "replace", "path": "/spec/replicas", "value": 3}], name="web", namespace="default",
                   content_type="application/json-patch+json")
    assert jp.spec.replicas == 3
    assert jp.metadata.generation == mp.metadata.generation + 1
    with pytest.raises(Exception) as err:
        res.patch(body=[{"op": "test", "path": "/spec/replicas", "value": 7}], name="web", namespace="default",
                  content_type="application/json-patch+json")
    assert err.value.status == 422


def test_strategic_merge_patch_is_refused_for_custom_resources(dyn):
    res = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="ServiceMonitor")
    res.create(body={"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                     "metadata": {"name": "m", "namespace": "default"}, "spec": {"endpoints": []}})
    with pytest.raises(Exception) as err:
        res.patch(body={"spec": {"endpoints": [{"port": "x"}]}}, name="m", namespace="default",
                  content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415


def test_watch_honours_timeout_and_resource_version(core):
    start = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1))
    assert time.monotonic() - start < 3
    assert events == []
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "w", "labels": {"k": "v"}}})
    seen = []

    def consume():
        for ev in watch.Watch().stream(core.list_namespaced_config_map, "default", label_selector="k=v",
                                       resource_version=cm.metadata.resource_version, timeout_seconds=2):
            seen.append((ev["type"], ev["object"].metadata.name))

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.3)
    core.patch_namespaced_config_map("w", "default", {"data": {"x": "1"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})  # filtered out
    core.delete_namespaced_config_map("w", "default")
    thread.join(5)
    assert seen == [("MODIFIED", "w"), ("DELETED", "w")]


def _crd(dyn, world):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object", "required": ["size"],
                                               "properties": {"size": {"type": "integer"}}},
                                      "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
    dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition").create(body=crd)
    world.wait_for(lambda: any(c["type"] == "Established" and c["status"] == "True" for c in (
        world.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com").get("status")
        or {}).get("conditions", [])), what="CRD established")
    dyn.resources.invalidate_cache()
    return dyn.resources.get(api_version="example.com/v1", kind="Widget")


def test_crd_is_established_served_and_validated(dyn, world):
    widgets = _crd(dyn, world)
    made = widgets.create(body={"apiVersion": "example.com/v1", "kind": "Widget",
                                "metadata": {"name": "w", "namespace": "default"},
                                "spec": {"size": 1, "unknown": "pruned"}, "status": {"ignored": True}})
    assert made.metadata.generation == 1 and "unknown" not in made.spec and not made.status
    with pytest.raises(Exception) as err:
        widgets.create(body={"apiVersion": "example.com/v1", "kind": "Widget",
                             "metadata": {"name": "bad", "namespace": "default"}, "spec": {"size": "big"}})
    assert err.value.status == 422
    status = widgets.status.patch(body={"status": {"phase": "Ready"}}, name="w", namespace="default",
                                  content_type="application/merge-patch+json")
    assert status.status.phase == "Ready" and status.metadata.generation == 1
    spec = widgets.patch(body={"spec": {"size": 2}, "status": {"phase": "Lost"}}, name="w", namespace="default",
                         content_type="application/merge-patch+json")
    assert spec.metadata.generation == 2 and spec.status.phase == "Ready"


def test_discovery_serves_the_kinds_the_collection_uses(dyn):
    for api_version, kind in [("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Namespace"), ("v1", "Node"),
                              ("v1", "Pod"), ("v1", "ServiceAccount"), ("apps/v1", "DaemonSet"),
                              ("apps/v1", "Deployment"), ("batch/v1", "Job"),
                              ("rbac.authorization.k8s.io/v1", "ClusterRole"),
                              ("rbac.authorization.k8s.io/v1", "RoleBinding"),
                              ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
                              ("monitoring.coreos.com/v1", "ServiceMonitor"),
                              ("monitoring.coreos.com/v1", "PrometheusRule")]:
        res = dyn.resources.get(api_version=api_version, kind=kind)
        assert res.kind == kind


def test_finalizers_hold_deletion(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "f", "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("f", "default")
    held = core.read_namespaced_config_map("f", "default")
    assert held.metadata.deletion_timestamp
    core.patch_namespaced_config_map("f", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("f", "default")
    assert err.value.status == 404


def test_namespace_deletion_terminates_then_removes_contents(core, world):
    core.create_namespace({"metadata": {"name": "gone"}})
    core.create_namespaced_config_map("gone", {"metadata": {"name": "c"}})
    code, deleted = raw(world, "DELETE", "/api/v1/namespaces/gone")
    assert code in (200, 202) and deleted["kind"] == "Namespace" and deleted["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("gone", {"metadata": {"name": "late"}})
    assert err.value.status in (403, 404)
    world.wait_for(lambda: world.get("v1", "Namespace", "gone") is None, what="namespace removal")


def test_delete_answers_status_for_builtins_and_object_for_custom(core, dyn, world):
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    code, out = raw(world, "DELETE", "/api/v1/namespaces/default/configmaps/c")
    assert code == 200 and out["kind"] == "Status" and out["status"] == "Success" and out["details"]["name"] == "c"
    dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="PrometheusRule").create(body={
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "r", "namespace": "default"}, "spec": {"groups": []}})
    code, out = raw(world, "DELETE", "/apis/monitoring.coreos.com/v1/namespaces/default/prometheusrules/r")
    assert code == 200 and out["kind"] == "PrometheusRule" and out["metadata"]["name"] == "r"


def test_unknown_paths_and_kinds_are_404_status(world):
    code, body = raw(world, "GET", "/apis/example.com/v1/namespaces/default/widgets")
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    code, body = raw(world, "GET", "/api/v1")
    assert code == 200 and body["kind"] == "APIResourceList"
    assert any(r["name"] == "namespaces" and r["namespaced"] is False for r in body["resources"])


def test_fault_hooks_rbac_and_conflict(core, world):
    world.deny("configmaps", "create", namespace="default")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    body = status_of(err.value)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert 'cannot create resource "configmaps"' in body["message"] and 'namespace "default"' in body["message"]
    world.allow()
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    world.conflict("configmaps", "patch", count=1)
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("c", "default", {"data": {"a": "1"}})
    assert err.value.status == 409
    assert core.patch_namespaced_config_map("c", "default", {"data": {"a": "1"}}).data == {"a": "1"}


def test_owner_references_are_garbage_collected(api, world):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", DEPLOY)
    world.wait_for(lambda: world.list("v1", "Pod", "default"), what="deployment pods")
    apps.delete_namespaced_deployment("web", "default")
    world.wait_for(lambda: not world.list("v1", "Pod", "default"), what="pods collected")


def test_requests_are_recorded(core, world):
    core.list_namespaced_config_map("default")
    log = world.requests()
    assert any(r["verb"] == "list" and r.get("resource") == "configmaps" and r["code"] == 200 for r in log
               if "verb" in r)
