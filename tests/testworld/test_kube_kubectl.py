"""kubectl as a judge of the simulated API server: client-side and server-side apply, scale,
drain (cordon, eviction) and explain (OpenAPI v3). Skipped when kubectl is not installed."""

import json
import os
import shutil
import subprocess

import pytest

from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (it is an optional judge)")

SCENARIO = {"cluster": {"podSecurity": {"enforce": "privileged"}},
            "nodes": [{"name": "n1", "kernel": "6.8.0-45-generic"}, {"name": "n2", "kernel": "6.8.0-45-generic"}],
            "installed": {"crds": ["monitoring"]}}

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: %(replicas)d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
"""


@pytest.fixture
def world(kube_world_factory):  # noqa: F811
    return kube_world_factory(SCENARIO)


@pytest.fixture
def kubectl(world, tmp_path):
    env = dict(os.environ, KUBECONFIG=world.kubeconfig, HOME=str(tmp_path))

    def run(*args, stdin=None, ok=True):
        proc = subprocess.run([KUBECTL, "--cache-dir", str(tmp_path / "cache"), "--request-timeout=60s"] + list(args),
                              input=stdin, capture_output=True, text=True, env=env, timeout=180, check=False)
        if ok:
            assert proc.returncode == 0, "kubectl %s: %s%s" % (" ".join(args), proc.stdout, proc.stderr)
        return proc
    return run


def test_apply_and_server_side_apply(world, kubectl):
    assert "created" in kubectl("apply", "-f", "-", stdin=DEPLOYMENT % {"replicas": 1}).stdout
    assert "unchanged" in kubectl("apply", "-f", "-", stdin=DEPLOYMENT % {"replicas": 1}).stdout
    # kubectl takes over its client-side fields on the first server-side apply
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-",
                                           stdin=DEPLOYMENT % {"replicas": 2}).stdout
    managers = {m["manager"]: m["operation"]
                for m in world.get("apps/v1", "Deployment", "web", "default")["metadata"]["managedFields"]}
    assert managers.get("kubectl") == "Apply"
    # a field the server does not know is refused (kubectl asks for strict field validation)
    typo = kubectl("apply", "-f", "-", stdin=(DEPLOYMENT % {"replicas": 2}).replace("  replicas:", "  replica:"),
                   ok=False)
    assert typo.returncode != 0 and 'unknown field "spec.replica"' in typo.stderr


def test_scale(world, kubectl):
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT % {"replicas": 1})
    assert "scaled" in kubectl("scale", "deployment/web", "--replicas=3").stdout
    assert kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    assert any(r["subresource"] == "scale" and r["method"] == "PATCH" for r in world.requests() if "subresource" in r)


def test_drain_cordons_and_evicts(world, kubectl):
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT % {"replicas": 4})
    world.wait_for(lambda: ((world.get("apps/v1", "Deployment", "web", "default") or {}).get("status") or {})
                   .get("readyReplicas") == 4, timeout=30, what="four ready replicas")
    on_n1 = [p["metadata"]["name"] for p in world.list("v1", "Pod", "default") if p["spec"].get("nodeName") == "n1"]
    assert on_n1
    drained = kubectl("drain", "n1", "--ignore-daemonsets", "--timeout=60s")
    assert "node/n1 drained" in drained.stdout
    assert world.get("v1", "Node", "n1")["spec"]["unschedulable"] is True
    assert {r["path"].rsplit("/", 2)[-2] for r in world.requests() if r["path"].endswith("/eviction")} == set(on_n1)
    world.wait_for(lambda: not [p for p in world.list("v1", "Pod", "default") if p["spec"].get("nodeName") == "n1"],
                   timeout=30, what="no pods on n1")
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)
    assert {n["metadata"]["name"]: n["spec"].get("unschedulable", False) for n in nodes["items"]} == \
        {"n1": True, "n2": False}


def test_explain(kubectl):
    explained = kubectl("explain", "deployment.spec.replicas").stdout
    assert "KIND:       Deployment" in explained and "replicas <integer>" in explained
    assert "Number of desired pods" in explained
    custom = kubectl("explain", "servicemonitors").stdout
    assert "monitoring.coreos.com" in custom and "ServiceMonitor" in custom
