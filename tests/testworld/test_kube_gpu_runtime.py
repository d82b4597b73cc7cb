"""The simulated NVIDIA runtime, MIG manager and GPU operator, driven through the kubernetes client."""

import yaml
from kubernetes import config
from kubernetes.dynamic import DynamicClient

from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

PRIV = {"pod-security.kubernetes.io/enforce": "privileged"}
GPU = {"kubernetes.io/hostname": "gpu-1"}
TOOLKIT_ENV = [{"name": "RUNTIME", "value": "containerd"}, {"name": "CONTAINERD_RUNTIME_CLASS", "value": "nvidia"}]
CONTAINERD = [{"name": "config", "hostPath": {"path": "/etc/containerd"}},
              {"name": "socket", "hostPath": {"path": "/run/containerd"}}]


def client_for(world):
    return DynamicClient(config.new_client_from_config(config_file=world.kubeconfig))


def apply(dyn, body):
    res = dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    meta = body["metadata"]
    return res.server_side_apply(body=body, name=meta["name"], namespace=meta.get("namespace"),
                                 field_manager="test", force_conflicts=True)


def daemonset(name, image, env=None, volumes=None, runtime_class=None, config_map=None):
    pod = {"nodeSelector": GPU, "containers": [{"name": name, "image": image, "env": env or []}],
           "volumes": list(volumes or [])}
    if config_map:
        pod["volumes"].append({"name": "cfg", "configMap": {"name": config_map}})
    if runtime_class:
        pod["runtimeClassName"] = runtime_class
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "gpu"},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}}


def job(name, command, resource="nvidia.com/gpu", runtime_class=None):
    pod = {"restartPolicy": "Never", "nodeSelector": GPU, "containers": [{
        "name": "check", "image": "nvcr.io/nvidia/cuda:12.4.1-base-ubi9", "command": command,
        "resources": {"limits": {resource: "1"}}}]}
    if runtime_class:
        pod["runtimeClassName"] = runtime_class
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "gpu"},
            "spec": {"backoffLimit": 0, "template": {"spec": pod}}}


def finished(world, name):
    status = (world.get("batch/v1", "Job", name, "gpu") or {}).get("status") or {}
    return next((c["type"] for c in status.get("conditions") or [] if c["type"] in ("Complete", "Failed")), None)


def pod_of(world, name):
    pods = [p for p in world.list("v1", "Pod", "gpu") if (p["metadata"].get("labels") or {}).get("job-name") == name]
    return pods[-1] if pods else None


def log_of(world, job_name):
    pod = pod_of(world, job_name)
    return world.server.pod_logs.get(("gpu", pod["metadata"]["name"]), "") if pod else ""


def events(world, reason):
    return [e["message"] for e in world.list("v1", "Event", "gpu") if e.get("reason") == reason]


def setup_gpu_node(world, dyn):
    world.call(world.sim.hw["gpu-1"].loaded.add, "nvidia")
    apply(dyn, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu", "labels": PRIV}})


def test_gpu_pods_need_the_nvidia_runtime(kube_world):  # noqa: F811
    world, dyn = kube_world, client_for(kube_world)
    setup_gpu_node(world, dyn)
    # a stock node: the plugin itself cannot read the GPUs without the runtime
    apply(dyn, daemonset("plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.16.2"))

    def plugin_state():
        pods = world.list("v1", "Pod", "gpu")
        return pods and ((pods[0]["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting")

    waiting = world.wait_for(lambda: (plugin_state() or {}).get("reason") == "CrashLoopBackOff" and plugin_state(),
                             what="plugin crash")
    assert "failed to initialize NVML" in waiting["message"]

    # with the RuntimeClass named but not there, the pods are refused at admission
    apply(dyn, daemonset("plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.16.2", runtime_class="nvidia"))
    world.wait_for(lambda: any('RuntimeClass "nvidia" not found' in m for m in events(world, "FailedCreate")),
                   what="admission refusal")
    # with the RuntimeClass but no toolkit on the node, the sandbox cannot be created
    apply(dyn, {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"},
                "handler": "nvidia"})
    world.wait_for(lambda: any('no runtime for "nvidia" is configured' in m
                               for m in events(world, "FailedCreatePodSandBox")), what="sandbox failure")
    assert "nvidia.com/gpu" not in world.allocatable("gpu-1")

    # a toolkit configured for another runtime crashes and configures nothing
    apply(dyn, daemonset("toolkit", "nvcr.io/nvidia/k8s/container-toolkit:v1.19.0-ubuntu20.04",
                         env=[{"name": "RUNTIME", "value": "docker"}], volumes=CONTAINERD))
    world.wait_for(lambda: any("RUNTIME=containerd" in str(p["status"]) for p in world.list("v1", "Pod", "gpu")),
                   what="toolkit crash")
    assert world.sim.gpu.handlers.get("gpu-1") is None
    # a toolkit for containerd adds the handler: the plugin starts and the GPUs show
    apply(dyn, daemonset("toolkit", "nvcr.io/nvidia/k8s/container-toolkit:v1.19.0-ubuntu20.04", env=TOOLKIT_ENV,
                         volumes=CONTAINERD))
    world.wait_for(lambda: world.allocatable("gpu-1").get("nvidia.com/gpu") == "2", what="GPUs")

    # a GPU pod without the RuntimeClass runs as on a stock node: no nvidia-smi in the container
    apply(dyn, job("plain", ["nvidia-smi", "-L"]))
    assert world.wait_for(lambda: finished(world, "plain"), what="plain job") == "Failed"
    assert 'exec: "nvidia-smi": executable file not found' in log_of(world, "plain")
    apply(dyn, job("runtime", ["nvidia-smi", "-L"], runtime_class="nvidia"))
    assert world.wait_for(lambda: finished(world, "runtime"), what="runtime job") == "Complete"
    assert "GPU 0: NVIDIA A100 80GB PCIe" in log_of(world, "runtime")

    # the toolkit going away takes the handler with it
    dyn.resources.get(api_version="apps/v1", kind="DaemonSet").delete(name="toolkit", namespace="gpu")
    world.wait_for(lambda: not world.sim.gpu.handlers.get("gpu-1"), what="handler removed")


def mig_config(profile, count):
    return yaml.safe_dump({"version": "v1", "mig-configs": {
        "all-disabled": [{"devices": "all", "mig-enabled": False}],
        "all-%s" % profile: [{"devices": "all", "mig-enabled": True, "mig-devices": {profile: count}}]}})


def test_mig_manager_and_device_plugin_strategies(kube_world):  # noqa: F811
    world, dyn = kube_world, client_for(kube_world)
    setup_gpu_node(world, dyn)
    world.call(world.sim.gpu.preinstall, "gpu-1")
    apply(dyn, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mig", "namespace": "gpu"},
                "data": {"config.yaml": mig_config("1g.10gb", 7)}})
    apply(dyn, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dp", "namespace": "gpu"},
                "data": {"config.yaml": "version: v1\nflags:\n  migStrategy: mixed\n"}})
    apply(dyn, daemonset("mig-manager", "nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.12.3-ubuntu20.04",
                         env=[{"name": "CONFIG_FILE", "value": "/mig-parted-config/config.yaml"}], config_map="mig"))
    apply(dyn, daemonset("plugin", "nvcr.io/nvidia/k8s-device-plugin:v0.16.2", config_map="dp"))
    world.wait_for(lambda: world.allocatable("gpu-1").get("nvidia.com/gpu") == "2", what="whole GPUs first")

    world.label_node("gpu-1", {"nvidia.com/mig.config": "all-1g.10gb"})
    world.wait_for(lambda: world.node_labels("gpu-1").get("nvidia.com/mig.config.state") == "success", what="MIG")
    world.wait_for(lambda: world.allocatable("gpu-1").get("nvidia.com/mig-1g.10gb") == "14", what="MIG instances")
    assert "nvidia.com/gpu" not in world.allocatable("gpu-1")
    apply(dyn, job("mig", ["nvidia-smi", "-L"], resource="nvidia.com/mig-1g.10gb"))
    assert world.wait_for(lambda: finished(world, "mig"), what="MIG job") == "Complete"
    assert "MIG 1g.10gb Device  0" in log_of(world, "mig")

    # single strategy: one nvidia.com/gpu per instance
    apply(dyn, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dp", "namespace": "gpu"},
                "data": {"config.yaml": "version: v1\nflags:\n  migStrategy: single\n"}})
    world.wait_for(lambda: world.allocatable("gpu-1").get("nvidia.com/gpu") == "14", what="single strategy")

    # a layout the A100 80GB does not have: the manager reports failed and keeps the old layout
    apply(dyn, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mig", "namespace": "gpu"},
                "data": {"config.yaml": mig_config("1g.5gb", 7)}})
    world.label_node("gpu-1", {"nvidia.com/mig.config": "all-1g.5gb"})
    world.wait_for(lambda: world.node_labels("gpu-1").get("nvidia.com/mig.config.state") == "failed", what="failed")
    assert world.allocatable("gpu-1")["nvidia.com/gpu"] == "14"


def test_gpu_operator_reports_its_cluster_policy(kube_world_factory):  # noqa: F811
    world = kube_world_factory("kube-gpu-operator.yml")
    # before NFD has labelled gpu-1 the operator has no GPU node, so "ready" comes with the GPUs only later
    world.wait_for(lambda: world.allocatable("gpu-1").get("nvidia.com/gpu") == "1", what="GPU", timeout=30)
    policy = world.wait_for(lambda: ((world.get("nvidia.com/v1", "ClusterPolicy", "cluster-policy") or {})
                                     .get("status") or {}).get("state") == "ready"
                            and world.get("nvidia.com/v1", "ClusterPolicy", "cluster-policy"), what="ready")
    assert policy["status"]["namespace"] == "gpu-operator"
    # its driver container loaded the driver, its toolkit configured the runtime its plugin runs with
    assert "nvidia" in world.sim.hw["gpu-1"].loaded and "nvidia" in world.sim.gpu.handlers["gpu-1"]
    assert "nvidia.com/gpu" not in world.allocatable("cpu-1")
    assert world.node_labels("gpu-1")["nvidia.com/gpu.present"] == "true"
    assert world.get("node.k8s.io/v1", "RuntimeClass", "nvidia")["handler"] == "nvidia"
    # the operator works from the oldest ClusterPolicy only
    dyn = client_for(world)
    apply(dyn, {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "second"},
                "spec": {"driver": {"enabled": True}}})
    world.wait_for(lambda: ((world.get("nvidia.com/v1", "ClusterPolicy", "second") or {}).get("status") or {})
                   .get("state") == "ignored", what="ignored")
