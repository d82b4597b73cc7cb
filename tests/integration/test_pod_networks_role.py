"""The pod_networks role, run by ansible-playbook against the simulated HPC cluster."""

import json
import os

from testworld.kubernetes.playbook_runner import run_playbook
from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks", "pod_networks_role.yml")
WRITES = ("create", "update", "patch", "delete", "deletecollection")
NAD = "k8s.cni.cncf.io/v1"
POOLS = "whereabouts.cni.cncf.io/v1alpha1"


def real_writes(world, since=0):
    return [r for r in world.requests()[since:] if r.get("verb") in WRITES and r.get("wrote")]


def test_pod_networks_check_mode_rollout_checks_and_rerun(kube_world):  # noqa: F811
    world = kube_world

    # check mode on a cluster without Multus: dry runs only, nothing stored
    check = run_playbook(world, PLAYBOOK, check=True)
    assert check.rc == 0, check.explain()
    assert real_writes(world) == []

    run = run_playbook(world, PLAYBOOK)
    assert run.rc == 0, run.explain()
    assert world.errors == []
    eth = world.get(NAD, "NetworkAttachmentDefinition", "eth-25g", "default")
    config = json.loads(eth["spec"]["config"])
    assert (config["type"], config["master"], config["mtu"]) == ("macvlan", "eno1", 9000)
    # above the allocation pool, below the port that holds 10.25.255.200
    assert config["ipam"] == {"type": "whereabouts", "range": "10.25.0.0/16", "range_start": "10.25.191.255",
                              "range_end": "10.25.255.199", "gateway": "10.25.0.1", "network_name": "eth-25g"}
    ib = json.loads(world.get(NAD, "NetworkAttachmentDefinition", "ib-100g", "default")["spec"]["config"])
    assert (ib["type"], ib["master"], ib["ipam"]["range_start"]) == ("ipoib", "ib0", "10.100.127.255")
    # the RDMA pool is bound to the IB link by name, so only the IB nodes advertise it
    assert world.allocatable("gpu-1")["rdma/ib_100g"] == "1000" and world.allocatable("ib-1")["rdma/ib_100g"] == "1000"
    assert "rdma/ib_100g" not in world.allocatable("cpu-1")

    # per network and node: an address from the range, the next node reached
    results = run.task("Pod network")["result"]["results"]
    by_nad = {r["item"]["name"]: r for r in results}
    assert by_nad["eth-25g"]["passed_nodes"] == ["cpu-1", "gpu-1", "gpu-2", "ib-1"]
    assert by_nad["ib-100g"]["passed_nodes"] == ["gpu-1", "ib-1"]
    for node, entry in by_nad["eth-25g"]["nodes"].items():
        assert entry["reached"] and entry["in_range"], (node, entry)
        assert entry["address"].startswith("10.25.19") or entry["address"].startswith("10.25.2"), entry
    assert by_nad["ib-100g"]["nodes"]["gpu-1"]["peer"] == "ib-1"
    # the role's report per network and node
    report = run.task("Report per network and node")["result"]["results"][-1]["ansible_facts"]["pod_networks_report"]
    assert sorted(report) == ["eth-25g", "ib-100g"]
    assert report["ib-100g"]["passed_nodes"] == ["gpu-1", "ib-1"] and report["ib-100g"]["failed_nodes"] == []
    assert report["ib-100g"]["nodes"]["ib-1"]["address"] == by_nad["ib-100g"]["nodes"]["ib-1"]["address"]
    # the check pods are gone; the canaries stay, one per attached node with an address
    assert [p["metadata"]["name"] for p in world.list("v1", "Pod", "default")
            if "hpcops.coe/pod-network-check" in (p["metadata"].get("labels") or {})] == []
    canaries = [p for p in world.list("v1", "Pod", "default")
                if "hpcops.coe/pod-network-canary" in (p["metadata"].get("labels") or {})]
    assert sorted(p["spec"]["nodeName"] for p in canaries) == ["cpu-1", "gpu-1", "gpu-1", "gpu-2", "ib-1", "ib-1"]
    pools = {p["metadata"]["name"]: p for p in world.list(POOLS, "IPPool", "hpcops-network")}
    assert sorted(pools) == ["eth-25g-10.25.0.0-16", "ib-100g-10.100.0.0-16"]
    assert len(pools["eth-25g-10.25.0.0-16"]["spec"]["allocations"]) == 4

    # what passed is recorded with its inputs' digest, per network
    record = world.get("v1", "ConfigMap", "eth-25g-pod-network-checked", "default")
    assert sorted(json.loads(record["data"]["digests"])) == ["cpu-1", "gpu-1", "gpu-2", "ib-1"]
    assert by_nad["eth-25g"]["checked_nodes"] == ["cpu-1", "gpu-1", "gpu-2", "ib-1"]

    # a rerun changes nothing and starts no check pod: nothing the checks depend on changed, so every node
    # is reported from the record of the check that passed
    seen = len(world.requests())
    again = run_playbook(world, PLAYBOOK)
    assert again.rc == 0, again.explain()
    assert again.changed_tasks() == [], again.explain()
    assert {r["resource"] for r in real_writes(world, seen)} <= {"events"}
    rerun = {r["item"]["name"]: r for r in again.task("Pod network")["result"]["results"]}
    assert rerun["eth-25g"]["checked_nodes"] == [] and rerun["ib-100g"]["checked_nodes"] == []
    assert rerun["eth-25g"]["passed_nodes"] == ["cpu-1", "gpu-1", "gpu-2", "ib-1"]
    assert rerun["ib-100g"]["nodes"]["ib-1"]["address"] == by_nad["ib-100g"]["nodes"]["ib-1"]["address"]
    assert rerun["ib-100g"]["nodes"]["ib-1"]["checked"] is False

    # a node that rebooted (into another kernel) is checked again, with a node that passed before as its peer
    world.set_kernel("gpu-2", "5.14.0-503.15.1.el9_5.x86_64")
    seen = len(world.requests())
    partial = run_playbook(world, PLAYBOOK)
    assert partial.rc == 0, partial.explain()
    checked = {r["item"]["name"]: r["checked_nodes"] for r in partial.task("Pod network")["result"]["results"]}
    assert checked == {"eth-25g": ["cpu-1", "gpu-2"], "ib-100g": []}
    created = [r for r in real_writes(world, seen) if r.get("resource") == "pods" and r.get("verb") == "create"]
    assert len(created) == 4, created  # a holder and a pinger on each of the two nodes
    assert json.loads(world.get("v1", "ConfigMap", "eth-25g-pod-network-checked", "default")["data"]["digests"]
                      )["gpu-2"] != json.loads(record["data"]["digests"])["gpu-2"]

    # forced, every node is checked again
    forced = run_playbook(world, PLAYBOOK, extra_vars={"pod_networks_validate_force": True})
    assert forced.rc == 0, forced.explain()
    checked = {r["item"]["name"]: r["checked_nodes"] for r in forced.task("Pod network")["result"]["results"]}
    assert checked == {"eth-25g": ["cpu-1", "gpu-1", "gpu-2", "ib-1"], "ib-100g": ["gpu-1", "ib-1"]}


def test_bad_input_is_refused_before_any_change(kube_world):  # noqa: F811
    world = kube_world
    seen = len(world.requests())
    bad = run_playbook(world, PLAYBOOK, extra_vars={"pod_networks_list": [
        {"network": "ib-100g", "type": "macvlan"}]})
    assert bad.rc != 0
    msg = bad.failed()[0]["result"]["results"][0]["msg"]
    assert "type=macvlan cannot run on InfiniBand network ib-100g" in msg and "type=ipoib" in msg
    unknown = run_playbook(world, PLAYBOOK, extra_vars={"pod_networks_list": [{"network": "eth-10g"}]})
    assert unknown.rc != 0 and "network 'eth-10g' is not in networks_list" in unknown.failed()[0]["result"]["msg"]
    inside = run_playbook(world, PLAYBOOK, extra_vars={"pod_networks_list": [
        {"network": "eth-25g", "range": "10.25.100.0/24"}]})
    assert inside.rc != 0
    assert "overlaps the allocation pool 10.25.0.2-10.25.191.254" in inside.failed()[0]["result"]["results"][0]["msg"]
    assert real_writes(world, seen) == []
