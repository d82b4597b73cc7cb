"""The simulated controllers: hardware-backed nodes, NFD, KMM, device plugins,
workloads and Pod Security, so that waits in the modules mean something."""

import json

import pytest
import yaml
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

PRIV = {"pod-security.kubernetes.io/enforce": "privileged"}
NFD_IMAGE = "registry.k8s.io/nfd/node-feature-discovery:v0.16.4"
EL94 = "5.14.0-427.13.1.el9_4.x86_64"
EL95 = "5.14.0-503.11.1.el9_5.x86_64"
GPU = "feature.node.kubernetes.io/pci-0302_10de.present"


@pytest.fixture
def dyn(kube_world):  # noqa: F811
    return DynamicClient(config.new_client_from_config(config_file=kube_world.kubeconfig))


def ssa(dyn, body, manager="test"):
    res = dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    return res.server_side_apply(body=body, name=body["metadata"]["name"],
                                 namespace=body["metadata"].get("namespace"), field_manager=manager,
                                 force_conflicts=True)


def namespace(dyn, name, labels=None):
    ssa(dyn, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})


def daemonset(name, ns, image, node_selector=None, config_map=None, args=None, privileged=True):
    spec = {"containers": [{"name": name, "image": image, "args": args or [],
                            "securityContext": {"privileged": privileged}}],
            "nodeSelector": node_selector or {}}
    if config_map:
        spec["volumes"] = [{"name": "config", "configMap": {"name": config_map}}]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def deploy_nfd(dyn, worker_conf=None, extra_label_ns=None):
    namespace(dyn, "nfd", PRIV)
    ssa(dyn, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nfd-worker-conf", "namespace": "nfd"},
              "data": {"nfd-worker.conf": yaml.safe_dump(worker_conf or {})}})
    args = ["-extra-label-ns=" + ",".join(extra_label_ns)] if extra_label_ns else []
    ssa(dyn, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nfd-master", "namespace": "nfd"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nfd-master"}},
                       "template": {"metadata": {"labels": {"app": "nfd-master"}},
                                    "spec": {"containers": [{"name": "nfd-master", "image": NFD_IMAGE,
                                                             "command": ["nfd-master"], "args": args}]}}}})
    ssa(dyn, daemonset("nfd-worker", "nfd", NFD_IMAGE, config_map="nfd-worker-conf", args=["-feature-gates="]))


def install_crds(world, names):
    from testworld.kubernetes import crds
    for crd in crds.expand(names):
        world.call(world.server.create, world.server.kind_for("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
                   crd)
    world.kick()


def labels_of(world, node):
    return world.node_labels(node)


def test_nodes_come_from_the_scenario(kube_world):  # noqa: F811
    nodes = {n["metadata"]["name"]: n for n in kube_world.list("v1", "Node")}
    assert set(nodes) == {"cp-1", "gpu-1", "gpu-2", "ib-1", "eth-1", "cpu-1", "cpu-2"}
    assert nodes["gpu-2"]["status"]["nodeInfo"]["kernelVersion"] == EL95
    assert nodes["cp-1"]["spec"]["taints"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert "nvidia.com/gpu" not in nodes["gpu-1"]["status"]["allocatable"]
    assert not any(k.startswith("feature.node.kubernetes.io/") for k in nodes["gpu-1"]["metadata"]["labels"])


def test_pod_security_blocks_privileged_daemonset_pods(kube_world, dyn):  # noqa: F811
    namespace(dyn, "restricted-ns")  # cluster default is baseline
    ssa(dyn, daemonset("agent", "restricted-ns", "example.com/agent:1"))
    kube_world.wait_for(lambda: kube_world.list("v1", "Event", "restricted-ns"), what="FailedCreate event")
    event = kube_world.list("v1", "Event", "restricted-ns")[0]
    assert event["reason"] == "FailedCreate" and 'violates PodSecurity "baseline:latest"' in event["message"]
    status = kube_world.get("apps/v1", "DaemonSet", "agent", "restricted-ns")["status"]
    assert status["desiredNumberScheduled"] == 6 and status["numberReady"] == 0


def test_nfd_default_labels_follow_the_worker_config(kube_world, dyn):  # noqa: F811
    install_crds(kube_world, ["nfd"])
    deploy_nfd(dyn)
    kube_world.wait_for(lambda: labels_of(kube_world, "gpu-1").get(GPU) == "true", what="GPU label")
    gpu1 = labels_of(kube_world, "gpu-1")
    assert gpu1["feature.node.kubernetes.io/kernel-version.full"] == EL94
    assert gpu1["feature.node.kubernetes.io/system-os_release.VERSION_ID"] == "9.4"
    # NICs are classes 0200/0207: not in the default whitelist (03, 0b40, 12)
    assert not any("15b3" in k or "0207" in k for k in labels_of(kube_world, "ib-1"))
    assert "feature.node.kubernetes.io/pci-10de.present" not in gpu1
    assert "cp-1" not in [p["spec"]["nodeName"] for p in kube_world.list("v1", "Pod", "nfd")]
    nf = kube_world.get("nfd.k8s-sigs.io/v1alpha1", "NodeFeature", "gpu-2", "nfd")
    assert nf["metadata"]["labels"]["nfd.node.kubernetes.io/node-name"] == "gpu-2"
    assert {"class": "0302", "vendor": "10de"}.items() <= \
        nf["spec"]["features"]["instances"]["pci.device"]["elements"][0]["attributes"].items()

    conf = {"sources": {"pci": {"deviceClassWhitelist": ["02", "03"], "deviceLabelFields": ["vendor"]}}}
    ssa(dyn, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nfd-worker-conf", "namespace": "nfd"},
              "data": {"nfd-worker.conf": yaml.safe_dump(conf)}})
    kube_world.wait_for(lambda: labels_of(kube_world, "ib-1").get("feature.node.kubernetes.io/pci-15b3.present"),
                        what="vendor-only labels")
    # the old class_vendor label is withdrawn by NFD, not left behind
    assert GPU not in labels_of(kube_world, "gpu-1")
    assert labels_of(kube_world, "gpu-1")["feature.node.kubernetes.io/pci-10de.present"] == "true"


def test_nfd_rules_label_matching_nodes_and_reject_foreign_namespaces(kube_world, dyn):  # noqa: F811
    install_crds(kube_world, ["nfd"])
    deploy_nfd(dyn)
    rule = {"apiVersion": "nfd.k8s-sigs.io/v1alpha1", "kind": "NodeFeatureRule", "metadata": {"name": "nics"},
            "spec": {"rules": [
                {"name": "mellanox", "labels": {"pci-15b3.present": "true"},
                 "matchFeatures": [{"feature": "pci.device", "matchExpressions": {
                     "vendor": {"op": "In", "value": ["15b3"]}, "class": {"op": "In", "value": ["0200", "0207"]}}}]},
                {"name": "el95", "labels": {"example.org/el95": "true"},
                 "matchFeatures": [{"feature": "kernel.version",
                                    "matchExpressions": {"full": {"op": "InRegexp", "value": ["el9_5"]}}}]},
                {"name": "ib-driver", "labels": {"rdma.ready": "true"},
                 "matchFeatures": [{"feature": "kernel.loadedmodule",
                                    "matchExpressions": {"ib_uverbs": {"op": "Exists"}}}]}]}}
    ssa(dyn, rule)
    label = "feature.node.kubernetes.io/pci-15b3.present"
    kube_world.wait_for(lambda: all(labels_of(kube_world, n).get(label) == "true" for n in ("gpu-1", "ib-1", "eth-1")),
                        what="NIC rule labels")
    for node in ("gpu-2", "cpu-1", "cpu-2"):
        assert label not in labels_of(kube_world, node)
    assert labels_of(kube_world, "ib-1")["feature.node.kubernetes.io/rdma.ready"] == "true"
    assert not any(k.startswith("example.org/") for k in labels_of(kube_world, "gpu-2"))
    assert ("gpu-2", "nics", "example.org/el95") in kube_world.nfd_rejected_labels
    dyn.resources.get(api_version="nfd.k8s-sigs.io/v1alpha1", kind="NodeFeatureRule").delete(name="nics")
    kube_world.wait_for(lambda: label not in labels_of(kube_world, "ib-1"), what="labels withdrawn")


def kmm_operator(dyn):
    namespace(dyn, "kmm-operator-system", PRIV)
    ssa(dyn, {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "kmm-operator-controller", "namespace": "kmm-operator-system"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "kmm"}},
                       "template": {"metadata": {"labels": {"app": "kmm"}}, "spec": {"containers": [
                           {"name": "manager",
                            "image": "registry.k8s.io/kmm/kernel-module-management-operator:v2.2.0"}]}}}})


def module(mappings, selector=None, device_plugin=None):
    spec = {"selector": selector or {"node-role.kubernetes.io/worker": ""},
            "moduleLoader": {"container": {"modprobe": {"moduleName": "nvidia"}, "kernelMappings": mappings}}}
    if device_plugin:
        spec["devicePlugin"] = device_plugin
    return {"apiVersion": "kmm.sigs.x-k8s.io/v1beta1", "kind": "Module",
            "metadata": {"name": "nvidia", "namespace": "gpu"}, "spec": spec}


def module_status(world):
    return (world.get("kmm.sigs.x-k8s.io/v1beta1", "Module", "nvidia", "gpu").get("status") or {}).get(
        "moduleLoader", {})


def gpu_nodes(dyn):
    # GPU nodes carry a label of their own in this test, independent of NFD
    for node in ("gpu-1", "gpu-2"):
        dyn.resources.get(api_version="v1", kind="Node").patch(
            body={"metadata": {"labels": {"hpcops.example/gpu": "true"}}}, name=node,
            content_type="application/merge-patch+json")


def test_kmm_module_status_and_missing_mappings(kube_world, dyn):  # noqa: F811
    install_crds(kube_world, ["kmm"])
    kmm_operator(dyn)
    namespace(dyn, "gpu", PRIV)
    gpu_nodes(dyn)
    image = "registry.example.com/nvidia-driver:${KERNEL_FULL_VERSION}"
    ssa(dyn, module([{"literal": EL94, "containerImage": image}], {"hpcops.example/gpu": "true"}))
    kube_world.wait_for(lambda: module_status(kube_world).get("availableNumber") == 1, what="module on gpu-1")
    assert module_status(kube_world) == {"nodesMatchingSelectorNumber": 2, "desiredNumber": 1, "availableNumber": 1}
    assert "kmm.node.kubernetes.io/gpu.nvidia.ready" in labels_of(kube_world, "gpu-1")
    assert "kmm.node.kubernetes.io/gpu.nvidia.ready" not in labels_of(kube_world, "gpu-2")
    assert "nvidia" in kube_world.sim.hw["gpu-1"].loaded

    ssa(dyn, module([{"regexp": r"^.+\.el9_[45]\.x86_64$", "containerImage": image}], {"hpcops.example/gpu": "true"}))
    kube_world.wait_for(lambda: module_status(kube_world).get("availableNumber") == 2, what="module on both")
    assert module_status(kube_world)["desiredNumber"] == 2

    # a reboot into an unmapped kernel: the node still matches but has no mapping
    kube_world.set_kernel("gpu-2", "5.14.0-570.12.1.el9_6.x86_64")
    kube_world.wait_for(lambda: module_status(kube_world).get("desiredNumber") == 1, what="desired drops")
    assert module_status(kube_world)["nodesMatchingSelectorNumber"] == 2
    kube_world.wait_for(lambda: "kmm.node.kubernetes.io/gpu.nvidia.ready" not in labels_of(kube_world, "gpu-2"),
                        what="ready label removed")


def test_kmm_image_that_never_pulls_leaves_a_waiting_worker(kube_world, dyn):  # noqa: F811
    install_crds(kube_world, ["kmm"])
    kmm_operator(dyn)
    namespace(dyn, "gpu", PRIV)
    gpu_nodes(dyn)
    kube_world.never_ready("registry.example.com/broken/*")
    ssa(dyn, module([{"regexp": "^.+$", "containerImage": "registry.example.com/broken/driver:${KERNEL_FULL_VERSION}"}],
                    {"hpcops.example/gpu": "true"}))

    def waiting():
        pods = kube_world.list("v1", "Pod", "gpu")
        states = [((p["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting", {})
                  for p in pods]
        return len(pods) == 2 and all(s.get("reason") == "ImagePullBackOff" for s in states) and states

    states = kube_world.wait_for(waiting, what="ImagePullBackOff")
    assert "registry.example.com/broken/driver:" + EL95 in " ".join(s["message"] for s in states)
    assert module_status(kube_world) == {"nodesMatchingSelectorNumber": 2, "desiredNumber": 2, "availableNumber": 0}


def test_device_plugins_fill_node_allocatable(kube_world, dyn):  # noqa: F811
    # node images with the NVIDIA container runtime as containerd's default (see test_kube_gpu_runtime.py)
    for node in ("gpu-1", "gpu-2"):
        kube_world.call(kube_world.sim.gpu.preinstall, node)
    install_crds(kube_world, ["kmm"])
    namespace(dyn, "plugins", PRIV)
    ssa(dyn, daemonset("nvidia-device-plugin", "plugins", "nvcr.io/nvidia/k8s-device-plugin:v0.16.2",
                       node_selector={"hpcops.example/gpu": "true"}))
    gpu_nodes(dyn)

    def crash():
        pods = kube_world.list("v1", "Pod", "plugins")
        return pods and all(((p["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get(
            "waiting", {}).get("reason") == "CrashLoopBackOff" for p in pods)

    kube_world.wait_for(crash, what="plugin without a driver crashes")
    kmm_operator(dyn)
    namespace(dyn, "gpu", PRIV)
    ssa(dyn, module([{"regexp": "^.+$", "containerImage": "registry.example.com/driver:${KERNEL_FULL_VERSION}"}],
                    {"hpcops.example/gpu": "true"}))
    kube_world.wait_for(lambda: kube_world.allocatable("gpu-1").get("nvidia.com/gpu") == "2", what="GPUs allocatable")
    assert kube_world.allocatable("gpu-2")["nvidia.com/gpu"] == "2"

    rdma = {"periodicUpdateInterval": 300, "configList": [
        {"resourceName": "ib", "rdmaHcaMax": 64, "selectors": {"vendors": ["15b3"], "linkTypes": ["infiniband"]}}]}
    ssa(dyn, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rdma-devices", "namespace": "plugins"},
              "data": {"config.json": json.dumps(rdma)}})
    ssa(dyn, daemonset("rdma-shared-dp", "plugins", "ghcr.io/mellanox/k8s-rdma-shared-dev-plugin:v1.5.1",
                       config_map="rdma-devices"))
    sriov = {"resourceList": [{"resourceName": "ib_vf", "resourcePrefix": "nvidia.com",
                               "selectors": {"vendors": ["15b3"], "devices": ["101e"], "linkTypes": ["infiniband"]}}]}
    ssa(dyn, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sriovdp-config", "namespace": "plugins"},
              "data": {"config.json": json.dumps(sriov)}})
    ssa(dyn, daemonset("sriov-dp", "plugins", "ghcr.io/k8snetworkplumbingwg/sriov-network-device-plugin:v3.7.0",
                       config_map="sriovdp-config"))
    kube_world.wait_for(lambda: kube_world.allocatable("ib-1").get("nvidia.com/ib_vf") == "4", what="VFs")
    assert kube_world.allocatable("ib-1")["rdma/ib"] == "64"
    assert kube_world.allocatable("gpu-1")["rdma/ib"] == "64"
    assert "rdma/ib" not in kube_world.allocatable("eth-1")  # RoCE, not InfiniBand
    assert "nvidia.com/ib_vf" not in kube_world.allocatable("eth-1")


def test_jobs_schedule_on_resources_complete_and_fail(kube_world, dyn):  # noqa: F811
    api = config.new_client_from_config(config_file=kube_world.kubeconfig)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    kube_world.call(lambda: kube_world.sim.hw["gpu-1"].loaded.add("nvidia"))
    kube_world.call(kube_world.sim.gpu.preinstall, "gpu-1")
    namespace(dyn, "plugins", PRIV)
    ssa(dyn, daemonset("nvidia-device-plugin", "plugins", "nvcr.io/nvidia/k8s-device-plugin:v0.16.2",
                       node_selector={"kubernetes.io/hostname": "gpu-1"}))
    kube_world.wait_for(lambda: kube_world.allocatable("gpu-1").get("nvidia.com/gpu"), what="GPU resource")

    def job(name, command, node=None, gpus=1):
        spec = {"restartPolicy": "Never", "containers": [{
            "name": "check", "image": "nvcr.io/nvidia/cuda:12.4.1-base-ubi9", "command": command,
            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}}]}
        if node:
            spec["nodeSelector"] = {"kubernetes.io/hostname": node}
        batch.create_namespaced_job("default", {"metadata": {"name": name}, "spec": {
            "backoffLimit": 0, "template": {"spec": spec}}})

    def condition(name):
        status = batch.read_namespaced_job(name, "default").status
        conds = (status.conditions if status else None) or []
        return next((c.type for c in conds if c.type in ("Complete", "Failed") and c.status == "True"), None)

    job("smi", ["nvidia-smi", "-L"])
    assert kube_world.wait_for(lambda: condition("smi"), what="job done") == "Complete"
    pod = core.list_namespaced_pod("default", label_selector="job-name=smi").items[0]
    assert pod.spec.node_name == "gpu-1"
    assert "NVIDIA A100 80GB PCIe" in core.read_namespaced_pod_log(pod.metadata.name, "default")

    job("nogpu", ["nvidia-smi"], node="cpu-1")
    pending = kube_world.wait_for(lambda: core.list_namespaced_pod("default", label_selector="job-name=nogpu").items,
                                  what="job pod")[0]
    kube_world.wait_for(lambda: core.read_namespaced_pod(pending.metadata.name, "default").status.conditions,
                        what="scheduling condition")
    cond = core.read_namespaced_pod(pending.metadata.name, "default").status.conditions[0]
    assert cond.reason == "Unschedulable" and "Insufficient nvidia.com/gpu" in cond.message

    kube_world.fail_command("gpu-1", "nvidia-smi", "GPU 0 has fallen off the bus")
    job("broken", ["nvidia-smi"])
    assert kube_world.wait_for(lambda: condition("broken"), what="job failed") == "Failed"
    failed = batch.read_namespaced_job("broken", "default").status
    assert failed.failed == 1 and failed.conditions[-1].reason == "BackoffLimitExceeded"


def test_cli_serve_prints_url_and_kubeconfig(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from testworld.kubernetes.playbook_runner import REPO
    scenario = os.path.join(REPO, "testworld", "scenarios", "kube-accelerators.yml")
    pidfile = tmp_path / "pid"
    proc = subprocess.Popen([sys.executable, "-m", "testworld.kubernetes", "serve", "--scenario", scenario,
                             "--port", "0", "--state-dir", str(tmp_path), "--pidfile", str(pidfile)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO))
    try:
        line = json.loads(proc.stdout.readline())
        assert line["url"].startswith("https://127.0.0.1:")
        assert line["kubeconfig"] == str(tmp_path / "kubeconfig")
        assert os.stat(line["kubeconfig"]).st_mode & 0o777 == 0o600
        assert line["ca"] == str(tmp_path / "ca.crt") and line["ca_key"] == str(tmp_path / "ca.key")
        assert os.stat(line["ca_key"]).st_mode & 0o777 == 0o600
        assert int(pidfile.read_text()) == proc.pid
        kubeconfig = yaml.safe_load(open(line["kubeconfig"]))
        assert kubeconfig["current-context"] == "hpcops-sim"
        nodes = client.CoreV1Api(config.new_client_from_config(config_file=line["kubeconfig"])).list_node()
        assert len(nodes.items) == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert not pidfile.exists()
