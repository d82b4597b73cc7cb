"""The accelerators role, run by ansible-playbook against the simulated HPC cluster."""

import os

import yaml

from testworld.kubernetes.playbook_runner import run_playbook
from testworld.kubernetes.pytest_fixtures import SCENARIOS
from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks", "accelerators_role.yml")
EL94_KERNEL = "5.14.0-427.13.1.el9_4.x86_64"
EL96 = "5.14.0-570.12.1.el9_6.x86_64"
WRITES = ("create", "update", "patch", "delete", "deletecollection")


def real_writes(world, since=0):
    """Requests that stored something (a no-op server-side apply stores nothing)."""
    return [r for r in world.requests()[since:] if r.get("verb") in WRITES and r.get("wrote")]


def test_rollout_check_mode_rerun_and_kernel_upgrade(kube_world):  # noqa: F811
    world = kube_world
    # as Magnum's kubelet registers it: gpu-1 is the node of nodegroup gpu-mig
    world.label_node("gpu-1", {"magnum.openstack.org/nodegroup": "gpu-mig"})

    # check mode on a cluster without NFD or KMM: dry runs only, nothing stored
    check = run_playbook(world, PLAYBOOK, check=True)
    assert check.rc == 0, check.explain()
    assert real_writes(world) == []
    assert world.get("v1", "Namespace", "node-feature-discovery") is None
    assert world.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "modules.kmm.sigs.x-k8s.io") is None

    run = run_playbook(world, PLAYBOOK)
    assert run.rc == 0, run.explain()
    assert world.errors == []
    # NFD and rules: NIC classes 0200/0207 labelled by the rule, GPUs by vendor
    for node in ("gpu-1", "ib-1", "eth-1"):
        assert world.node_labels(node)["feature.node.kubernetes.io/pci-15b3.present"] == "true"
    assert "feature.node.kubernetes.io/pci-15b3.present" not in world.node_labels("gpu-2")
    ns_labels = world.get("v1", "Namespace", "node-feature-discovery")["metadata"]["labels"]
    assert ns_labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert len(world.list("nfd.k8s-sigs.io/v1alpha1", "NodeFeature", "node-feature-discovery")) == 6
    # the driver is loaded on both kernels, the plugins advertise, the checks ran and left nothing
    module = world.get("kmm.sigs.x-k8s.io/v1beta1", "Module", "nvidia", "hpcops-accelerators")
    assert module["status"]["moduleLoader"] == {"nodesMatchingSelectorNumber": 2, "desiredNumber": 2,
                                                "availableNumber": 2}
    # the toolkit gave both GPU nodes the nvidia runtime; gpu-1 is split into 2 x 7 MIG instances of 1g.10gb
    assert world.get("node.k8s.io/v1", "RuntimeClass", "nvidia")["handler"] == "nvidia"
    assert set(world.sim.gpu.handlers) == {"gpu-1", "gpu-2"}
    assert world.node_labels("gpu-1")["nvidia.com/mig.config"] == "all-1g.10gb"
    assert world.node_labels("gpu-1")["nvidia.com/mig.config.state"] == "success"
    assert world.allocatable("gpu-1")["nvidia.com/mig-1g.10gb"] == "14" and "nvidia.com/gpu" not in world.allocatable("gpu-1")
    assert world.allocatable("gpu-2")["nvidia.com/gpu"] == "2"
    plugin = world.get("apps/v1", "DaemonSet", "nvidia-device-plugin", "hpcops-accelerators")
    assert plugin["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    assert world.allocatable("ib-1")["rdma/ib"] == "64" and world.allocatable("ib-1")["nvidia.com/mlx_vf"] == "4"
    assert world.allocatable("eth-1")["nvidia.com/mlx_vf"] == "2"
    checks = dict((r["item"]["name"], r) for r in run.task("Validate accelerators on every node")["result"]["results"])
    assert checks["hpcops-gpu-check"]["passed_nodes"] == ["gpu-2"]
    assert checks["hpcops-mig-1g-10gb"]["passed_nodes"] == ["gpu-1"]
    assert "MIG 1g.10gb" in checks["hpcops-mig-1g-10gb"]["results"][0]["output"]
    assert world.list("batch/v1", "Job", "hpcops-accelerators") == []
    rule = world.get("monitoring.coreos.com/v1", "PrometheusRule", "hpcops-accelerators", "hpcops-accelerators")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    # GPU health: the exporter on both GPU nodes, alerts and dashboards for the Grafana sidecar
    exporter = world.get("apps/v1", "DaemonSet", "dcgm-exporter", "hpcops-accelerators")
    assert exporter["status"]["numberReady"] == 2
    health = world.get("monitoring.coreos.com/v1", "PrometheusRule", "hpcops-gpu-health", "hpcops-accelerators")
    exprs = " ".join(r["expr"] for g in health["spec"]["groups"] for r in g["rules"])
    for metric in ("DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_GPU_TEMP",
                   "node_infiniband_state_id", "kmm-worker-"):
        assert metric in exprs
    boards = world.list("v1", "ConfigMap", "hpcops-accelerators", label_selector="grafana_dashboard=1")
    assert sorted(b["metadata"]["name"] for b in boards) == ["hpcops-gpu-nodes", "hpcops-rdma-links"]

    # a rerun changes nothing
    seen = len(world.requests())
    again = run_playbook(world, PLAYBOOK)
    assert again.rc == 0, again.explain()
    assert again.changed_tasks() == [], again.explain()
    # nothing the validation depends on changed: it runs no Jobs, so the rerun writes nothing at all
    assert real_writes(world, seen) == [], real_writes(world, seen)

    # gpu-2 reboots into a kernel without a driver image: check mode names it before anything is applied
    world.set_kernel("gpu-2", EL96)
    seen = len(world.requests())
    upgraded = run_playbook(world, PLAYBOOK, check=True)
    assert upgraded.rc != 0
    failed = upgraded.failed()
    assert failed[0]["name"] == "Every node a kernel module selects has a kernel mapping"
    item = failed[0]["result"]["results"][0]
    assert "kernel %s on gpu-2" % EL96 in item["msg"] and "Nothing was applied" in item["msg"]
    assert item["missing_mappings"] == [{"node": "gpu-2", "kernel": EL96}]
    assert real_writes(world, seen) == []


def test_refuses_a_second_nfd(kube_world_factory):  # noqa: F811
    world = kube_world_factory("kube-gpu-operator.yml")
    run = run_playbook(world, PLAYBOOK)
    assert run.rc != 0
    failed = run.failed()[0]
    assert failed["name"] == "Refuse a second NFD"
    msg = failed["result"]["msg"]
    assert "DaemonSet gpu-operator/gpu-operator-node-feature-discovery-worker" in msg
    assert "NVIDIA GPU operator" in msg and "accelerators_nfd_install: false" in msg
    assert real_writes(world) == []


def test_rbac_denial_stops_the_rollout_with_the_reason(kube_world):  # noqa: F811
    kube_world.deny("daemonsets", "patch", group="apps", namespace="node-feature-discovery")
    run = run_playbook(kube_world, PLAYBOOK)
    assert run.rc != 0
    failed = run.failed()
    assert failed[0]["name"] == "NFD master and worker" and failed[0]["result"]["reason"] == "Forbidden"
    summary = failed[-1]["result"]["msg"]
    assert failed[-1]["name"] == "Say which step failed and why"
    assert 'step "NFD master and worker" failed' in summary
    assert 'daemonsets.apps "nfd-worker" is forbidden' in summary
    assert 'cannot patch resource "daemonsets" in API group "apps" in the namespace "node-feature-discovery"' in summary
    assert "lack an RBAC permission" in summary
    assert kube_world.get("kmm.sigs.x-k8s.io/v1beta1", "Module", "nvidia", "hpcops-accelerators") is None


DEFAULTS_PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks",
                                 "accelerators_role_defaults.yml")
GPU_LABEL = "feature.node.kubernetes.io/pci-10de.present"
NIC_LABEL = "feature.node.kubernetes.io/pci-15b3.present"
NVIDIA_READY = "kmm.node.kubernetes.io/hpcops-accelerators.nvidia.ready"


def scenario_with_other_network_controller():
    """kube-accelerators.yml plus a Mellanox network controller of subclass 0280 ("other")."""
    with open(os.path.join(SCENARIOS, "kube-accelerators.yml"), encoding="utf-8") as handle:
        scenario = yaml.safe_load(handle)
    scenario["nodes"].append({
        "name": "nic-1", "kernel": EL94_KERNEL,
        "os": {"id": "rhel", "versionId": "9.4", "prettyName": "Red Hat Enterprise Linux 9.4 (Plow)"},
        "labels": {"node-role.kubernetes.io/worker": ""},
        "loadedModules": ["mlx5_core", "mlx5_ib", "ib_core"],
        "pci": [{"address": "0000:3b:00.0", "class": "0280", "vendor": "15b3", "device": "a2dc",
                 "name": "Mellanox network controller", "driver": "mlx5_core"}],
        "network": [{"name": "p0", "pci": "0000:3b:00.0", "linkType": "ether", "rdma": True}],
    })
    return scenario


def test_defaults_derive_the_expected_nodes_from_nfd(kube_world_factory):  # noqa: F811
    # NFD applies a new rule only at its next worker pass (60 s by default): slow enough here that KMM is up
    # and the Module applied long before the labels come, unless the role waits for them
    world = kube_world_factory(scenario_with_other_network_controller(), nfd_interval=45)
    run = run_playbook(world, DEFAULTS_PLAYBOOK, extra_vars={"accelerators_wait_timeout": 120})
    assert run.rc == 0, run.explain()
    assert world.errors == []
    # the NIC rule matches the base class 02: 0200, 0207 and 0280 get the same label
    for node in ("gpu-1", "ib-1", "eth-1", "nic-1"):
        assert world.node_labels(node)[NIC_LABEL] == "true", node
    # the rules step waited for the labels on the nodes the NodeFeatures show, so the Module selected them
    module = world.get("kmm.sigs.x-k8s.io/v1beta1", "Module", "nvidia", "hpcops-accelerators")
    assert module["status"]["moduleLoader"] == {"nodesMatchingSelectorNumber": 2, "desiredNumber": 2,
                                                "availableNumber": 2}
    loaded = run.task("Kernel module")["result"]["results"][0]
    assert sorted(n["name"] for n in loaded["nodes"] if n["ready"]) == ["gpu-1", "gpu-2"]
    # and the plugins were held to them
    plugins = dict((r["item"]["type"], r) for r in run.task("Device plugin")["result"]["results"])
    assert plugins["nvidia-gpu"]["nodes"] == {"gpu-1": {"nvidia.com/gpu": 2}, "gpu-2": {"nvidia.com/gpu": 2}}
    assert sorted(plugins["rdma-shared"]["nodes"]) == ["eth-1", "gpu-1", "ib-1", "nic-1"]
    gpu_check = [r for r in run.task("Validate accelerators on every node")["result"]["results"]
                 if r["item"]["name"] == "hpcops-gpu-check"][0]
    assert gpu_check["passed_nodes"] == ["gpu-1", "gpu-2"]
    # the NVIDIA plugin starts only where KMM has loaded the driver; no Module loads one for the NICs
    nvidia = world.get("apps/v1", "DaemonSet", "nvidia-device-plugin", "hpcops-accelerators")
    assert nvidia["spec"]["template"]["spec"]["nodeSelector"] == {GPU_LABEL: "true", NVIDIA_READY: ""}
    assert "hpcops.coe/config-hash" in nvidia["spec"]["template"]["metadata"]["annotations"]
    rdma = world.get("apps/v1", "DaemonSet", "rdma-shared-device-plugin", "hpcops-accelerators")
    assert rdma["spec"]["template"]["spec"]["nodeSelector"] == {NIC_LABEL: "true"}


def test_defaults_fail_when_a_label_never_comes(kube_world):  # noqa: F811
    # nfd-master never labels gpu-2, although its NodeFeature lists the GPUs
    kube_world.nfd_withhold_label("gpu-2", "pci-10de.present")
    run = run_playbook(kube_world, DEFAULTS_PLAYBOOK, extra_vars={"accelerators_wait_timeout": 4})
    assert run.rc != 0
    failed = run.failed()
    assert failed[0]["name"] == "Accelerator NodeFeatureRule"
    assert failed[1]["name"] == "The rule labels did not reach the nodes with the devices"
    summary = failed[-1]["result"]["msg"]
    assert 'step "The rule labels did not reach the nodes with the devices" failed' in summary
    assert "missing on gpu-2" in summary
    assert "NodeFeature shows the device: GPU (vendor 10de, class 03xx) gpu-1, gpu-2" in summary
    # nothing after the rules ran
    assert kube_world.get("kmm.sigs.x-k8s.io/v1beta1", "Module", "nvidia", "hpcops-accelerators") is None


def test_defaults_fail_on_a_device_label_without_the_device(kube_world):  # noqa: F811
    # set by hand on a node without a GPU: the Module and the plugin would select it
    kube_world.label_node("cpu-1", {GPU_LABEL: "true"})
    run = run_playbook(kube_world, DEFAULTS_PLAYBOOK, extra_vars={"accelerators_wait_timeout": 4})
    assert run.rc != 0
    failed = [r for r in run.failed() if r["name"] != "Wait for the device labels to match the NodeFeatures"]
    assert failed[0]["name"] == "Device labels only on nodes with the device"
    msg = failed[-1]["result"]["msg"]
    assert "%s=true must be on exactly the nodes whose NFD NodeFeature shows GPUs (gpu-1, gpu-2)" % GPU_LABEL in msg
    assert "on nodes without the device: cpu-1" in msg
    assert kube_world.get("kmm.sigs.x-k8s.io/v1beta1", "Module", "nvidia", "hpcops-accelerators") is None


OPERATOR_PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks",
                                 "accelerators_role_gpu_operator.yml")


def test_works_with_an_existing_gpu_operator(kube_world_factory):  # noqa: F811
    world = kube_world_factory("kube-gpu-operator.yml")
    # asking for the collection's NVIDIA plugin as well: two owners, refused before anything is written
    both = run_playbook(world, OPERATOR_PLAYBOOK, extra_vars={"accelerators_device_plugins": [{"type": "nvidia-gpu"}]})
    assert both.rc != 0
    failed = both.failed()[0]
    assert failed["name"] == "One GPU stack at a time"
    assert "GPU stack is the NVIDIA GPU operator's (a ClusterPolicy exists)" in failed["result"]["msg"]
    assert "the NVIDIA device plugin" in failed["result"]["msg"]
    assert real_writes(world) == []

    run = run_playbook(world, OPERATOR_PLAYBOOK)
    assert run.rc == 0, run.explain()
    said = run.task("The NVIDIA GPU operator owns the GPU stack")["result"]["msg"]
    assert "ClusterPolicy cluster-policy" in said and "instead of collection" in said
    policy = world.get("nvidia.com/v1", "ClusterPolicy", "cluster-policy")
    assert policy["status"]["state"] == "ready"
    assert policy["spec"]["dcgmExporter"]["serviceMonitor"] == {"enabled": True}
    assert policy["spec"]["operator"]["runtimeClass"] == "nvidia"
    assert world.list("nvidia.com/v1", "ClusterPolicy") == [policy]  # the existing one, never a second
    # no toolkit, plugin or exporter of the role's own beside the operator's
    assert [d["metadata"]["name"] for d in world.list("apps/v1", "DaemonSet", "hpcops-accelerators")] == []
    runtime = run.task("GPU runtime")["result"]
    assert runtime["stack"] == "gpu-operator" and runtime["nodes"] == {"gpu-1": {"runtime": "ready"}}
    check = [r for r in run.task("Validate accelerators on every node")["result"]["results"]
             if r["item"]["name"] == "hpcops-gpu-check"][0]
    assert check["passed_nodes"] == ["gpu-1"] and check["item"]["runtime_class"] == "nvidia"
    record = world.get("v1", "ConfigMap", "hpcops-accelerator-validation", "hpcops-accelerators")
    assert record["data"]["hpcops-gpu-check"] == "nvidia.com/gpu through runtime nvidia: passed on gpu-1"
    assert world.get("monitoring.coreos.com/v1", "PrometheusRule", "hpcops-gpu-health", "hpcops-accelerators")

    seen = len(world.requests())
    again = run_playbook(world, OPERATOR_PLAYBOOK)
    assert again.rc == 0, again.explain()
    assert again.changed_tasks() == [], again.explain()
    assert real_writes(world, seen) == [], real_writes(world, seen)
