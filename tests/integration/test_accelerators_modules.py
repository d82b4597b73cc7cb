"""The four accelerator modules, run by ansible-playbook against the Kubernetes test world."""

import json
import os

from testworld.kubernetes import components
from testworld.kubernetes.playbook_runner import run_playbook
from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

PLAYBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks")
EL94 = "5.14.0-427.13.1.el9_4.x86_64"
EL95 = "5.14.0-503.11.1.el9_5.x86_64"


def playbook(name):
    return os.path.join(PLAYBOOKS, name)


def label_gpu_and_rdma_nodes(world):
    for node in ("gpu-1", "gpu-2"):
        world.label_node(node, {"hpcops.example/gpu": "true"})
    for node in ("gpu-1", "ib-1", "eth-1"):
        world.label_node(node, {"hpcops.example/rdma": "true"})


def test_node_feature_rule(kube_world):  # noqa: F811
    components.deploy_nfd(kube_world)
    run = run_playbook(kube_world, playbook("accelerators_node_feature_rule.yml"))
    assert run.rc == 0, run.explain()

    applied = run.task("Apply rules")["result"]
    assert applied["changed"]
    assert applied["nodes"] == {"nvidia-gpu": ["gpu-1", "gpu-2"], "mellanox-nic": ["eth-1", "gpu-1", "ib-1"]}
    assert applied["labels"]["feature.node.kubernetes.io/pci-10de.present"] == ["gpu-1", "gpu-2"]
    assert applied["rule"]["spec"]["rules"][0]["labels"] == {"pci-10de.present": "true"}
    assert not run.task("Apply again")["result"]["changed"]

    check = run.task("Check mode change")["result"]
    assert check["changed"] and len(check["diff"]["after"]["spec"]["rules"]) == 1
    assert len(check["diff"]["before"]["spec"]["rules"]) == 2

    foreign = run.task("Foreign label namespace")["result"]
    assert foreign["failed"] and "nothing was applied" in foreign["msg"]
    assert "'example.org'" in foreign["msg"] and "-extra-label-ns=example.org" in foreign["msg"]
    assert "reserved" in foreign["msg"]  # node-role.kubernetes.io
    assert kube_world.get("nfd.k8s-sigs.io/v1alpha1", "NodeFeatureRule", "bad") is None

    badpci = run.task("Bad PCI IDs")["result"]["msg"]
    assert "'nvidia' is not a 4-digit hex ID" in badpci and "'3' is not a 2-digit PCI base class" in badpci

    impossible = run.task("Unreachable expectation")["result"]
    assert impossible["failed"] and "missing on cpu-1: NFD runs there but the rule does not match" in impossible["msg"]

    assert run.task("Remove the rules")["result"]["changed"]
    assert "feature.node.kubernetes.io/pci-10de.present" not in kube_world.node_labels("gpu-1")


def test_kernel_module(kube_world):  # noqa: F811
    components.deploy_kmm(kube_world)
    components.namespace(kube_world, "hpcops-gpu")
    label_gpu_and_rdma_nodes(kube_world)
    kube_world.never_ready("registry.example.com/broken/*")
    run = run_playbook(kube_world, playbook("accelerators_kernel_module.yml"))
    assert run.rc == 0, run.explain()

    missing = run.task("Missing mapping in check mode")["result"]
    assert missing["failed"] and missing["missing_mappings"] == [{"node": "gpu-2", "kernel": EL95}]
    assert "kernel %s on gpu-2" % EL95 in missing["msg"] and "Nothing was applied" in missing["msg"]

    loaded = run.task("Load on both kernels")["result"]
    assert loaded["changed"]
    assert loaded["status"]["moduleLoader"] == {"nodesMatchingSelectorNumber": 2, "desiredNumber": 2,
                                                "availableNumber": 2}
    assert [(n["name"], n["ready"], n["image"]) for n in loaded["nodes"]] == [
        ("gpu-1", True, "registry.example.com/drivers/nvidia:550.90.07-" + EL94),
        ("gpu-2", True, "registry.example.com/drivers/nvidia:550.90.07-" + EL95)]
    modprobe = loaded["module"]["spec"]["moduleLoader"]["container"]["modprobe"]
    assert modprobe == {"moduleName": "nvidia", "parameters": ["NVreg_EnableGpuFirmware=0"],
                        "firmwarePath": "/firmware"}
    assert loaded["module"]["spec"]["imageRepoSecret"] == {"name": "registry-creds"}
    secret = kube_world.get("v1", "Secret", "registry-creds", "hpcops-gpu")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert "s3cr3t-registry-token" not in run.stdout + str(loaded)
    assert not run.task("Load again")["result"]["changed"]

    broken = run.task("Image that never becomes ready")["result"]
    assert broken["failed"]
    assert "not ready after" in broken["msg"] and "on 2 of 2 node(s)" in broken["msg"]
    assert "ImagePullBackOff" in broken["msg"] or "ErrImagePull" in broken["msg"]
    assert "registry.example.com/broken/peermem:%s" % EL95 in broken["msg"]
    reasons = {n["name"]: n["reason"] for n in broken["nodes"]}
    assert "worker pod kmm-worker-gpu-1-broken" in reasons["gpu-1"]

    invalid = run.task("Both literal and regexp")["result"]
    assert invalid["failed"] and "exactly one of literal" in invalid["msg"]

    assert run.task("Unload")["result"]["changed"]
    assert "kmm.node.kubernetes.io/hpcops-gpu.nvidia.ready" not in kube_world.node_labels("gpu-1")


def test_device_plugin(kube_world):  # noqa: F811
    label_gpu_and_rdma_nodes(kube_world)
    components.namespace(kube_world, "hpcops-plugins")
    components.namespace(kube_world, "baseline-ns", privileged=False)
    for node in ("gpu-1", "gpu-2"):
        kube_world.call(kube_world.sim.hw[node].loaded.add, "nvidia")
        # node images with the NVIDIA container runtime as containerd's default
        kube_world.call(kube_world.sim.gpu.preinstall, node)
    run = run_playbook(kube_world, playbook("accelerators_device_plugin.yml"))
    assert run.rc == 0, run.explain()

    gpu = run.task("NVIDIA GPU plugin")["result"]
    assert gpu["changed"] and gpu["nodes"] == {"gpu-1": {"nvidia.com/gpu": 2}, "gpu-2": {"nvidia.com/gpu": 2}}
    assert "config.yaml" in gpu["config_map"]["data"]
    assert not run.task("NVIDIA GPU plugin again")["result"]["changed"]

    rdma = run.task("RDMA shared plugin")["result"]
    assert rdma["resources"] == ["rdma/ib"]
    assert rdma["nodes"] == {"gpu-1": {"rdma/ib": 64}, "ib-1": {"rdma/ib": 64}}
    sriov = run.task("SR-IOV plugin")["result"]
    assert sriov["nodes"] == {"ib-1": {"nvidia.com/ib_vf": 4}}

    nomatch = run.task("Selectors that match nothing")["result"]
    assert nomatch["failed"] and "eth-1: the plugin runs" in nomatch["msg"]
    assert "advertises no rdma/roce" in nomatch["msg"]

    psa = run.task("GPU plugin in a namespace without privileged pod security")["result"]
    assert psa["failed"] and 'violates PodSecurity "baseline:latest"' in psa["msg"]


def test_rdma_plugin_waits_for_every_selected_node(kube_world):  # noqa: F811
    """eth-1 is RoCE, so an InfiniBand-only selector leaves it without the resource: the default
    expectation (every node the plugin runs on) must make the module fail there."""
    label_gpu_and_rdma_nodes(kube_world)
    components.namespace(kube_world, "hpcops-plugins")
    play = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: RDMA
      hpcops.coe.device_plugin:
        type: rdma-shared
        namespace: hpcops-plugins
        node_selector: {hpcops.example/rdma: "true"}
        wait_sleep: 0.2
        wait_timeout: 3
        rdma_resources: [{name: ib, vendors: ["15b3"], link_types: [infiniband]}]
      ignore_errors: true
      register: r
"""
    run = run_playbook(kube_world, play)
    result = run.task("RDMA")["result"]
    assert result["failed"] and "on 1 of 3 expected node(s)" in result["msg"] and "eth-1" in result["msg"]


def test_accelerator_validation(kube_world):  # noqa: F811
    components.namespace(kube_world, "hpcops-gpu")
    components.namespace(kube_world, "hpcops-plugins")
    for node in ("gpu-1", "gpu-2"):
        kube_world.call(kube_world.sim.hw[node].loaded.add, "nvidia")
        kube_world.call(kube_world.sim.gpu.preinstall, node)
        kube_world.label_node(node, {"hpcops.example/gpu": "true"})
    kube_world.apply({"apiVersion": "apps/v1", "kind": "DaemonSet",
                      "metadata": {"name": "nvidia-device-plugin", "namespace": "hpcops-plugins"},
                      "spec": {"selector": {"matchLabels": {"app": "dp"}}, "template": {
                          "metadata": {"labels": {"app": "dp"}},
                          "spec": {"nodeSelector": {"hpcops.example/gpu": "true"}, "containers": [
                              {"name": "dp", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.16.2"}]}}}})
    kube_world.wait_for(lambda: kube_world.allocatable("gpu-2").get("nvidia.com/gpu"), what="GPU resources")
    run = run_playbook(kube_world, playbook("accelerators_validation.yml"), skip_tags=["failing"])
    assert run.rc == 0, run.explain()

    planned = run.task("Check mode lists the nodes")["result"]
    # Jobs would be created and deleted: a change, predicted
    assert [r["node"] for r in planned["results"]] == ["gpu-1", "gpu-2"] and planned["changed"]
    passed = run.task("All GPU nodes pass")["result"]
    assert passed["passed_nodes"] == ["gpu-1", "gpu-2"] and passed["changed"]
    assert passed["validated_nodes"] == ["gpu-1", "gpu-2"]
    assert "NVIDIA L40S" in passed["results"][1]["output"]
    record = kube_world.get("v1", "ConfigMap", "gpu-check-validated", "hpcops-gpu")
    assert sorted(json.loads(record["data"]["digests"])) == ["gpu-1", "gpu-2"]
    again = run.task("The same check again finds nothing changed")["result"]
    assert not again["changed"] and again["unchanged_nodes"] == ["gpu-1", "gpu-2"] and again["validated_nodes"] == []
    assert again["passed_nodes"] == ["gpu-1", "gpu-2"]
    forced = run.task("Forced, it checks every node")["result"]
    assert forced["changed"] and forced["validated_nodes"] == ["gpu-1", "gpu-2"]
    notthere = run.task("A node without the resource is named")["result"]
    assert notthere["failed"] and notthere["failed_nodes"] == ["cpu-1"]
    assert "cpu-1: the node advertises 0 nvidia.com/gpu" in notthere["msg"]
    assert kube_world.list("batch/v1", "Job", "hpcops-gpu") == []
    kube_world.wait_for(lambda: not kube_world.list("v1", "Pod", "hpcops-gpu"), what="validation pods gone")

    kube_world.fail_command("gpu-2", "nvidia-smi", "Unable to determine the device handle for GPU0000:31:00.0: "
                            "GPU is lost")
    run = run_playbook(kube_world, playbook("accelerators_validation.yml"), tags=["failing"])
    failing = run.task("Failing check")["result"]
    assert failing["failed"] and failing["failed_nodes"] == ["gpu-2"]
    assert "1 of 2 node(s) failed: gpu-2" in failing["msg"] and "GPU is lost" in failing["msg"]
    assert failing["passed_nodes"] == ["gpu-1"]
    assert kube_world.list("batch/v1", "Job", "hpcops-gpu") == []


def test_rbac_denial_is_named(kube_world):  # noqa: F811
    label_gpu_and_rdma_nodes(kube_world)
    components.namespace(kube_world, "hpcops-plugins")
    kube_world.deny("daemonsets", "patch", group="apps", namespace="hpcops-plugins")
    play = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Denied
      hpcops.coe.device_plugin:
        type: nvidia-gpu
        namespace: hpcops-plugins
        node_selector: {hpcops.example/gpu: "true"}
      ignore_errors: true
      register: r
"""
    run = run_playbook(kube_world, play)
    msg = run.task("Denied")["result"]["msg"]
    assert "Applying DaemonSet hpcops-plugins/nvidia-device-plugin failed" in msg
    assert 'cannot patch resource "daemonsets" in API group "apps"' in msg
    assert "RBAC permission" in msg
