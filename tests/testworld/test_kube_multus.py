"""The simulated Multus, CNI plugins and whereabouts: pods get their secondary networks only as a real
cluster would give them, with addresses from the range recorded in IPPools, or stay ContainerCreating."""

import json
import os

import pytest
import yaml
from kubernetes import config
from kubernetes.dynamic import DynamicClient

from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRDS = os.path.join(REPO, "roles", "pod_networks", "files", "crds.yml")
NS = "net"
STATUS = "k8s.v1.cni.cncf.io/network-status"
IMAGES = {
    "multus": "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.1.4-thick",
    "cni-plugins": "ghcr.io/k8snetworkplumbingwg/plugins:v1.5.0",
    "whereabouts": "ghcr.io/k8snetworkplumbingwg/whereabouts:v0.8.0",
    "ipoib-cni": "ghcr.io/mellanox/ipoib-cni:v1.2.0",
}


@pytest.fixture
def dyn(kube_world):  # noqa: F811
    return DynamicClient(config.new_client_from_config(config_file=kube_world.kubeconfig))


def ssa(dyn, body):
    res = dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    return res.server_side_apply(body=body, name=body["metadata"]["name"], namespace=body["metadata"].get("namespace"),
                                 field_manager="test", force_conflicts=True).to_dict()


def daemonset(name, image):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"hostNetwork": True, "tolerations": [{"operator": "Exists"}],
                                           "containers": [{"name": name, "image": image,
                                                           "securityContext": {"privileged": True}}]}}}}


def nad(name, plugin, first="10.100.200.1", last="10.100.200.3"):
    plugin = dict(plugin, cniVersion="0.4.0", name=name,
                  ipam={"type": "whereabouts", "range": "10.100.0.0/16", "range_start": first, "range_end": last,
                        "network_name": name})
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": NS}, "spec": {"config": json.dumps(plugin)}}


def pod(name, node, network, command=None):
    run_once = command is not None
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "annotations": {"k8s.v1.cni.cncf.io/networks": network}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "restartPolicy": "Never" if run_once else "Always",
                     "containers": [{"name": "c", "image": "docker.io/library/busybox:1.36.1",
                                     "command": command or ["sleep", "3600"]}]}}


def phase(world, name):
    return ((world.get("v1", "Pod", name, NS) or {}).get("status") or {}).get("phase")


def status(world, name):
    annotations = (world.get("v1", "Pod", name, NS) or {}).get("metadata", {}).get("annotations") or {}
    return json.loads(annotations[STATUS]) if STATUS in annotations else None


def sandbox_events(world, name):
    return [e["message"] for e in world.list("v1", "Event", NS)
            if e["involvedObject"]["name"] == name and e["reason"] == "FailedCreatePodSandBox"]


def test_multus_attaches_pods_allocates_from_the_range_and_refuses_what_a_node_lacks(kube_world, dyn):  # noqa: F811
    world = kube_world
    ssa(dyn, {"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": NS, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    with open(CRDS, encoding="utf-8") as handle:
        for crd in yaml.safe_load(handle):  # one document: the list the role applies
            ssa(dyn, crd)
    world.wait_for(lambda: world.call(lambda: world.sim.k("whereabouts.cni.cncf.io/v1alpha1", "IPPool")),
                   what="IPPool served")
    ssa(dyn, nad("ib", {"type": "ipoib", "master": "ib0"}))

    # before Multus runs, the default CNI starts the pod and ignores the annotation
    ssa(dyn, pod("early", "gpu-1", "ib"))
    world.wait_for(lambda: phase(world, "early") == "Running", what="early pod running")
    assert status(world, "early") is None

    for component, image in IMAGES.items():
        ssa(dyn, daemonset(component, image))
    for component in IMAGES:
        world.wait_for(lambda c=component: (world.get("apps/v1", "DaemonSet", c, NS).get("status") or {}).get(
            "numberReady") == 7, what="%s ready" % component)

    ssa(dyn, pod("hold-gpu-1", "gpu-1", "ib"))
    ssa(dyn, pod("hold-ib-1", "ib-1", "%s/ib" % NS))
    for name in ("hold-gpu-1", "hold-ib-1"):
        world.wait_for(lambda n=name: phase(world, n) == "Running" and status(world, n), what=name)
    addresses = {name: status(world, name)[-1]["ips"][0] for name in ("hold-gpu-1", "hold-ib-1")}
    assert sorted(addresses.values()) == ["10.100.200.1", "10.100.200.2"]
    assert status(world, "hold-gpu-1")[-1]["name"] == "net/ib" and status(world, "hold-gpu-1")[-1]["interface"] == "net1"
    (ippool,) = world.list("whereabouts.cni.cncf.io/v1alpha1", "IPPool", NS)
    assert ippool["metadata"]["name"] == "ib-10.100.0.0-16"
    assert {v["podref"] for v in ippool["spec"]["allocations"].values()} == {"net/hold-gpu-1", "net/hold-ib-1"}

    # reach: a pod on the same network pings the other node's holder; an unheld address does not answer
    ssa(dyn, pod("ping-ok", "gpu-1", "ib", ["ping", "-c", "3", addresses["hold-ib-1"]]))
    ssa(dyn, pod("ping-nobody", "ib-1", "ib", ["ping", "-c", "3", "10.100.9.9"]))
    ssa(dyn, pod("ping-no-net", "cpu-1", "", ["ping", "-c", "3", addresses["hold-gpu-1"]]))
    world.wait_for(lambda: all(phase(world, n) in ("Succeeded", "Failed")
                               for n in ("ping-ok", "ping-nobody", "ping-no-net")), what="pings done")
    assert phase(world, "ping-ok") == "Succeeded"
    assert phase(world, "ping-nobody") == "Failed" and phase(world, "ping-no-net") == "Failed"
    # the range holds three addresses: the third pod gets the last one, a fourth cannot start
    world.wait_for(lambda: len(world.list("whereabouts.cni.cncf.io/v1alpha1", "IPPool", NS)[0]["spec"]
                               ["allocations"]) == 2, what="terminated pings release their addresses")
    ssa(dyn, pod("third", "ib-1", "ib"))
    world.wait_for(lambda: phase(world, "third") == "Running" and status(world, "third"), what="third")
    ssa(dyn, pod("fourth", "gpu-1", "ib"))
    world.wait_for(lambda: sandbox_events(world, "fourth"), what="fourth refused")
    assert "Could not allocate IP in range" in sandbox_events(world, "fourth")[0]
    assert phase(world, "fourth") == "Pending"
    state = world.get("v1", "Pod", "fourth", NS)["status"]["containerStatuses"][0]["state"]
    assert state == {"waiting": {"reason": "ContainerCreating"}}
    # deleting a holder frees its address: the waiting pod gets it
    world.delete("v1", "Pod", "hold-ib-1", NS)
    world.wait_for(lambda: phase(world, "fourth") == "Running" and status(world, "fourth"), what="fourth runs")
    assert status(world, "fourth")[-1]["ips"] == [addresses["hold-ib-1"]]

    # links the node lacks, or that do not suit the plugin, keep the pod in ContainerCreating
    ssa(dyn, nad("eth", {"type": "macvlan", "master": "ens1f0"}, "10.100.201.1", "10.100.201.9"))
    ssa(dyn, nad("mac-on-ib", {"type": "macvlan", "master": "ib0"}, "10.100.202.1", "10.100.202.9"))
    ssa(dyn, pod("eth-on-eth-1", "eth-1", "eth"))
    ssa(dyn, pod("eth-on-cpu-1", "cpu-1", "eth"))
    ssa(dyn, pod("macvlan-on-ib", "gpu-1", "mac-on-ib"))
    ssa(dyn, pod("no-such-nad", "gpu-1", "missing"))
    world.wait_for(lambda: phase(world, "eth-on-eth-1") == "Running" and status(world, "eth-on-eth-1"), what="eth")
    world.wait_for(lambda: all(sandbox_events(world, n) for n in ("eth-on-cpu-1", "macvlan-on-ib", "no-such-nad")),
                   what="refusals")
    assert 'failed to lookup master "ens1f0": Link not found' in sandbox_events(world, "eth-on-cpu-1")[0]
    assert "operation not supported" in sandbox_events(world, "macvlan-on-ib")[0]
    assert 'network-attachment-definitions.k8s.cni.cncf.io "missing" not found' in sandbox_events(
        world, "no-such-nad")[0]
    assert {phase(world, n) for n in ("eth-on-cpu-1", "macvlan-on-ib", "no-such-nad")} == {"Pending"}
    # a plugin binary nobody installed
    ssa(dyn, nad("hd", {"type": "sriov"}, "10.100.203.1", "10.100.203.9"))
    ssa(dyn, pod("sriov-pod", "eth-1", "hd"))
    world.wait_for(lambda: sandbox_events(world, "sriov-pod"), what="sriov refused")
    assert 'failed to find plugin "sriov"' in sandbox_events(world, "sriov-pod")[0]
    assert world.errors == []
