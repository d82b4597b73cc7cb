"""The parts of the API surface clients rely on beyond CRUD, judged by the `kubernetes` client:
the /scale subresources discovery advertises, pods/eviction, /openapi/v2 and /openapi/v3, and
label and field selectors the API server's parser refuses (400)."""

import json
import urllib.request

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import
from testworld.kubernetes.world import TOKEN

SCENARIO = {"cluster": {"podSecurity": {"enforce": "privileged"}},
            "nodes": [{"name": "n1", "kernel": "6.8.0-45-generic"}, {"name": "n2", "kernel": "6.8.0-45-generic"}],
            "installed": {"crds": ["monitoring"]}}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}


@pytest.fixture
def world(kube_world_factory):  # noqa: F811
    return kube_world_factory(SCENARIO)


@pytest.fixture
def api(world):
    return config.new_client_from_config(config_file=world.kubeconfig)


def workload(kind, replicas=1):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}
    if kind == "StatefulSet":
        spec["serviceName"] = "web"
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"}, "spec": spec}


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "ReplicaSet"])
def test_scale_subresource_reads_and_writes_replicas(api, kind):
    apps = client.AppsV1Api(api)
    snake = {"Deployment": "deployment", "StatefulSet": "stateful_set", "ReplicaSet": "replica_set"}[kind]
    getattr(apps, "create_namespaced_%s" % snake)("default", workload(kind))
    read = getattr(apps, "read_namespaced_%s_scale" % snake)
    scale = read("web", "default")
    assert (scale.kind, scale.api_version, scale.spec.replicas) == ("Scale", "autoscaling/v1", 1)
    assert scale.status.selector == "app=web"

    patched = getattr(apps, "patch_namespaced_%s_scale" % snake)("web", "default", {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    assert getattr(apps, "read_namespaced_%s" % snake)("web", "default").spec.replicas == 3

    current = read("web", "default")
    current.spec.replicas = 2
    assert getattr(apps, "replace_namespaced_%s_scale" % snake)("web", "default", current).spec.replicas == 2
    # a stale resourceVersion is a conflict, a negative count invalid
    with pytest.raises(ApiException) as err:
        getattr(apps, "replace_namespaced_%s_scale" % snake)("web", "default", current)
    assert err.value.status == 409
    with pytest.raises(ApiException) as err:
        getattr(apps, "patch_namespaced_%s_scale" % snake)("web", "default", {"spec": {"replicas": -1}})
    assert err.value.status == 422 and json.loads(err.value.body)["details"]["causes"][0]["field"] == "spec.replicas"


def test_discovery_advertises_only_served_subresources(api):
    resources = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    scale = resources["deployments/scale"]
    wanted = ("Scale", "autoscaling", "v1", ["get", "patch", "update"])
    assert (scale.kind, scale.group, scale.version, sorted(scale.verbs)) == wanted
    assert "daemonsets/scale" not in resources
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert (core["pods/eviction"].kind, core["pods/eviction"].group, core["pods/eviction"].verbs) == \
        ("Eviction", "policy", ["create"])
    assert "pods/exec" not in core and "pods/portforward" not in core
    assert client.CoreV1Api(api).get_api_resources().group_version == "v1"


def test_eviction_honours_pod_disruption_budgets(world, api):
    apps, core, policy = client.AppsV1Api(api), client.CoreV1Api(api), client.PolicyV1Api(api)
    apps.create_namespaced_deployment("default", workload("Deployment", replicas=2))

    def ready_replicas():
        status = apps.read_namespaced_deployment("web", "default").status
        return (status.ready_replicas if status else 0) or 0

    world.wait_for(lambda: ready_replicas() == 2, timeout=30, what="two ready replicas")
    policy.create_namespaced_pod_disruption_budget("default", {
        "metadata": {"name": "web"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    pod = core.list_namespaced_pod("default", label_selector="app=web").items[0].metadata.name
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "default"}}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction(pod, "default", eviction)
    assert err.value.status == 429 and json.loads(err.value.body)["reason"] == "TooManyRequests"
    policy.patch_namespaced_pod_disruption_budget("web", "default", {"spec": {"minAvailable": 1}})
    core.create_namespaced_pod_eviction(pod, "default", eviction)
    assert pod not in [p.metadata.name for p in core.list_namespaced_pod("default").items]


def test_openapi_documents(world):
    def get(path):
        req = urllib.request.Request(world.url + path, headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, context=world.ssl_context(), timeout=30) as resp:
            return json.loads(resp.read())
    v2 = get("/openapi/v2")
    deployment = v2["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert deployment["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    assert "com.coreos.monitoring.v1.ServiceMonitor" in v2["definitions"]

    index = get("/openapi/v3")["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/monitoring.coreos.com/v1"} <= set(index)
    apps = get(index["apis/apps/v1"]["serverRelativeURL"])
    assert apps["openapi"].startswith("3.")
    patch = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-action"] == "patch"
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "io.k8s.api.apps.v1.DeploymentSpec" in apps["components"]["schemas"]


@pytest.mark.parametrize("selector", ["a=b=c", "=b", "a,,b", "a=b,", "a in (b", "!a=b", "a=b)", "a=%%",
                                      "a/b/c=d", "-a=b", "a in b"])
def test_label_selector_syntax_errors_are_400(api, selector):
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespaced_config_map("default", label_selector=selector)
    assert err.value.status == 400 and json.loads(err.value.body)["reason"] == "BadRequest"


@pytest.mark.parametrize("selector", ["metadata.name", "foo=bar", "spec.nodeName~n1"])
def test_field_selector_errors_are_400(api, selector):
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespaced_pod("default", field_selector=selector)
    assert err.value.status == 400


def test_valid_selectors_still_select(api):
    core = client.CoreV1Api(api)
    for name, labels in (("a", {"tier": "x", "zone": "1"}), ("b", {"tier": "y"})):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})
    for selector, expected in (("tier in (x, y),zone", ["a"]), ("!zone", ["b"]), ("tier!=x", ["b"]),
                               ("tier=", []), ("zone>0", ["a"])):
        got = [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector=selector).items]
        assert got == expected, selector
    dyn = DynamicClient(api)
    nodes = dyn.resources.get(api_version="v1", kind="Node").get(field_selector="metadata.name=n2,")
    assert [n.metadata.name for n in nodes.items] == ["n2"]
