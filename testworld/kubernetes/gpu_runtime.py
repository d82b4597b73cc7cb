"""What the NVIDIA container runtime, the MIG manager and the GPU operator do to a simulated cluster.

A stock node has containerd with runc only. The NVIDIA container toolkit, once
its pod is ready on a node, has written a containerd drop-in with an `nvidia`
runtime handler (the name is its CONTAINERD_RUNTIME_CLASS); the kubelet then:

- rejects pods whose `runtimeClassName` names no RuntimeClass (admission);
- cannot create the sandbox of a pod whose RuntimeClass handler the node's
  containerd does not have (the pod stays ContainerCreating, with
  FailedCreatePodSandBox events);
- starts a container that asks for `nvidia.com/gpu` (or a MIG instance)
  without the NVIDIA runtime as on a stock node: no driver libraries and no
  `nvidia-smi` inside, so the exec fails;
- lets NVML users (device plugin, DCGM exporter, MIG manager) crash without it.

The MIG manager applies the layout named by the node label
`nvidia.com/mig.config` from its mig-parted configuration, checked against the
GPU model's profiles, and reports `nvidia.com/mig.config.state`; the device
plugin then advertises `nvidia.com/mig-<profile>` (mixed) or one
`nvidia.com/gpu` per instance (single).

A simulated GPU operator (when a `gpu-operator` Deployment is available)
works from the oldest ClusterPolicy: it labels GPU nodes
`nvidia.com/gpu.present=true`, runs driver, toolkit, device plugin and DCGM
exporter as DaemonSets, creates the RuntimeClass and reports `status.state`.

The facts here (profiles per GPU model, the operator's names) are kept apart
from the collection's own tables on purpose: the simulator is the oracle.
"""

import copy
import fnmatch
import uuid

import yaml

from testworld.kubernetes import patching

NVIDIA = "10de"
MIG_CONFIG = "nvidia.com/mig.config"
MIG_STATE = "nvidia.com/mig.config.state"
GPU_PRESENT = "nvidia.com/gpu.present"
OPERATOR_MANAGER = "gpu-operator"

# instances per GPU of each MIG profile, per PCI device ID (NVIDIA's MIG user guide)
_A100_40 = {"1g.5gb": 7, "1g.10gb": 4, "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1, "7g.40gb": 1}
_80GB = {"1g.10gb": 7, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1}
MIG_TABLE = {
    "20b0": _A100_40, "20f1": _A100_40, "20b2": _80GB, "20b5": _80GB, "2330": _80GB, "2331": _80GB,
    "20b7": {"1g.6gb": 4, "2g.12gb": 2, "4g.24gb": 1},
    "2321": {"1g.12gb": 7, "1g.24gb": 4, "2g.24gb": 3, "3g.47gb": 2, "4g.47gb": 1, "7g.94gb": 1},
    "2335": {"1g.18gb": 7, "1g.35gb": 4, "2g.35gb": 3, "3g.71gb": 2, "4g.71gb": 1, "7g.141gb": 1},
}
NVML_USERS = ("k8s-device-plugin", "dcgm-exporter", "k8s-mig-manager")


def _env(container):
    return {e.get("name"): str(e.get("value", "")) for e in container.get("env") or [] if "value" in e}


def _gpus(hw):
    return [d for d in hw.spec.pci if d.vendor == NVIDIA and d.cls.startswith("03")]


def _requests_gpu(spec):
    from testworld.kubernetes.controllers import pod_requests
    return any(r == "nvidia.com/gpu" or r.startswith("nvidia.com/mig-") for r in pod_requests(spec))


class GpuRuntime:
    """The GPU side of the simulated kubelets, plus the MIG manager and the GPU operator."""

    def __init__(self, sim):
        self.sim = sim
        self.handlers = {}      # node -> {handler: set as default}
        self.preinstalled = {}  # node -> {handler: default}: node images with the toolkit baked in
        self.mig = {}           # node -> {profile: instances per GPU}; absent: MIG disabled

    # ------------------------------------------------------------ world hooks

    def preinstall(self, node, handler="nvidia", default=True):
        """A node image that ships the NVIDIA runtime (as the default runtime unless told otherwise)."""
        self.preinstalled.setdefault(node, {})[handler] = default
        self.handlers.setdefault(node, {})[handler] = default

    # ------------------------------------------------------------ kubelet

    def _runtime_handler(self, pod, node_name):
        """The containerd handler a pod runs with, or None when the node has no such handler."""
        name = (pod.get("spec") or {}).get("runtimeClassName")
        node_handlers = self.handlers.get(node_name) or {}
        if not name:
            defaults = [h for h, is_default in node_handlers.items() if is_default]
            return defaults[0] if defaults else "runc"
        rc = self.sim.get("node.k8s.io/v1", "RuntimeClass", None, name)
        handler = (rc or {}).get("handler", name)
        return handler if handler in node_handlers or handler == "runc" else None

    def _nvidia(self, pod, node_name):
        handler = self._runtime_handler(pod, node_name)
        return handler is not None and handler in (self.handlers.get(node_name) or {})

    def admission_error(self, spec):
        """The RuntimeClass admission plugin: a pod naming a missing RuntimeClass is rejected."""
        name = spec.get("runtimeClassName")
        if name and self.sim.get("node.k8s.io/v1", "RuntimeClass", None, name) is None:
            return 'pod rejected: RuntimeClass "%s" not found' % name
        return None

    def sandbox_error(self, pod, node_name):
        name = (pod.get("spec") or {}).get("runtimeClassName")
        if name and self._runtime_handler(pod, node_name) is None:
            rc = self.sim.get("node.k8s.io/v1", "RuntimeClass", None, name) or {}
            return ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: '
                    'no runtime for "%s" is configured' % rc.get("handler", name))
        return None

    def hold_sandbox(self, pod, node_name, status, conditions):
        """Keep a pod whose sandbox cannot be created in ContainerCreating; True when held."""
        why = self.sandbox_error(pod, node_name)
        if not why:
            return False
        new_status = dict(status, phase="Pending", conditions=self.sim._conds(dict(conditions, Ready="False")))
        new_status["containerStatuses"] = [self.sim._cstatus(c, "waiting", reason="ContainerCreating")
                                           for c in pod["spec"].get("containers") or []]
        self.sim.set_status(pod, new_status, "kubelet")
        self.sim.event(pod, "FailedCreatePodSandBox", why, "Warning", "kubelet")
        return True

    def crash_reason(self, pod, hw):
        """NVML users crash without the NVIDIA runtime (the driver's libraries are not in their images)."""
        if hw is None or not _gpus(hw):
            return None
        node_name = hw.spec.name
        for container in pod["spec"].get("containers") or []:
            image = container.get("image", "")
            if any(user in image for user in NVML_USERS) and not self._nvidia(pod, node_name):
                return ("failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND (libnvidia-ml.so.1 is not in the "
                        "container: it runs without the NVIDIA container runtime)")
            if "container-toolkit" in image:
                why = self._toolkit_problem(container, pod)
                if why:
                    return why
        return None

    def command_result(self, pod, node_name, hw):
        """(ok, log) for containers that ask for GPUs, or None to let the generic kubelet answer."""
        if hw is None or not _requests_gpu(pod["spec"]):
            return None
        container = (pod["spec"].get("containers") or [{}])[0]
        command = " ".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))
        if not self._nvidia(pod, node_name):
            if "nvidia-smi" in command:
                return False, ('failed to create containerd task: failed to create shim task: OCI runtime create '
                               'failed: runc create failed: unable to start container process: exec: "nvidia-smi": '
                               'executable file not found in $PATH: unknown')
            return None
        wants = [r for r in self._requests(pod) if r.startswith("nvidia.com/mig-")]
        if "nvidia-smi" not in command or not wants or "nvidia" not in hw.loaded:
            return None
        lines = []
        for profile_resource in wants:
            profile = profile_resource[len("nvidia.com/mig-"):]
            gpu = _gpus(hw)[0]
            gpu_uuid = uuid.uuid5(uuid.NAMESPACE_OID, node_name + gpu.address)
            lines.append("GPU 0: %s (UUID: GPU-%s)" % (gpu.name or "NVIDIA GPU " + gpu.device, gpu_uuid))
            lines.append("  MIG %s Device  0: (UUID: MIG-%s)" % (profile, uuid.uuid5(gpu_uuid, profile)))
        return True, "\n".join(lines) + "\n"

    def _requests(self, pod):
        from testworld.kubernetes.controllers import pod_requests
        return pod_requests(pod["spec"])

    def gpu_resources(self, hw, gpus, replicas, config):
        """What the NVIDIA device plugin advertises on a node, with its MIG strategy."""
        strategy = ((config or {}).get("flags") or {}).get("migStrategy") or "none"
        layout = self.mig.get(hw.spec.name)
        if not layout or strategy == "none":
            return {"nvidia.com/gpu": len(gpus) * replicas}
        profile, per_gpu = next(iter(layout.items()))
        if strategy == "single":
            return {"nvidia.com/gpu": per_gpu * len(gpus)}
        return {"nvidia.com/mig-%s" % profile: per_gpu * len(gpus)}

    # ------------------------------------------------------------ controllers

    def reconcile(self):
        self._toolkits()
        self._drivers()
        self._mig_managers()
        self._operator()

    def _ready_pods(self, image_part):
        for pod in self.sim.list("v1", "Pod"):
            if pod["metadata"].get("deletionTimestamp") or not self.sim._ready(pod):
                continue
            for container in pod["spec"].get("containers") or []:
                if image_part in container.get("image", ""):
                    yield pod, container
                    break

    @staticmethod
    def _toolkit_problem(container, pod):
        env = _env(container)
        if env.get("RUNTIME", "docker") != "containerd":
            return ("unable to configure runtime %s: the node runs containerd (set RUNTIME=containerd)"
                    % env.get("RUNTIME", "docker"))
        host_paths = [((v.get("hostPath") or {}).get("path") or "") for v in pod["spec"].get("volumes") or []]
        if not any(p.startswith("/etc/containerd") for p in host_paths):
            return "unable to write the containerd configuration: /etc/containerd of the host is not mounted"
        if not any(p.startswith("/run/containerd") for p in host_paths):
            return "unable to signal containerd: its socket directory /run/containerd is not mounted"
        return None

    def _toolkits(self):
        found = {node: dict(handlers) for node, handlers in self.preinstalled.items()}
        for pod, container in self._ready_pods("container-toolkit"):
            env = _env(container)
            handler = env.get("CONTAINERD_RUNTIME_CLASS") or "nvidia"
            default = env.get("CONTAINERD_SET_AS_DEFAULT", "false").lower() in ("true", "1")
            found.setdefault(pod["spec"]["nodeName"], {})[handler] = default
        # a toolkit that stops removes its drop-in (and containerd goes back to runc only)
        self.handlers = found

    def _drivers(self):
        for pod, _container in self._ready_pods("nvcr.io/nvidia/driver"):
            hw = self.sim.hw.get(pod["spec"]["nodeName"])
            if hw is not None:
                hw.loaded.add("nvidia")

    def _mig_managers(self):
        nodes = {n["metadata"]["name"]: n for n in self.sim.nodes()}
        for pod, container in self._ready_pods("k8s-mig-manager"):
            node_name = pod["spec"]["nodeName"]
            node, hw = nodes.get(node_name), self.sim.hw.get(node_name)
            if node is None or hw is None:
                continue
            labels = node["metadata"].get("labels") or {}
            wanted = labels.get(MIG_CONFIG)
            if not wanted:
                continue
            key = (_env(container).get("CONFIG_FILE") or "/mig-parted-config/config.yaml").rsplit("/", 1)[-1]
            text = self.sim._config_from_volumes(pod, key)
            state, layout = self._mig_apply(hw, wanted, text)
            if state == "success":
                if layout:
                    self.mig[node_name] = layout
                else:
                    self.mig.pop(node_name, None)
            if labels.get(MIG_STATE) != state:
                self.sim.merge_patch(node, {"metadata": {"labels": {MIG_STATE: state}}}, "nvidia-mig-manager")

    @staticmethod
    def _mig_apply(hw, wanted, text):
        """(state, {profile: per GPU} or {} for disabled) of applying config `wanted` to the node's GPUs."""
        if "nvidia" not in hw.loaded:
            return "pending", None
        try:
            configs = (yaml.safe_load(text or "") or {}).get("mig-configs") or {}
        except (yaml.YAMLError, AttributeError):
            return "failed", None
        entries = configs.get(wanted)
        if not entries:
            return "failed", None
        layout = {}
        for entry in entries:
            if not entry.get("mig-enabled"):
                continue
            for profile, count in (entry.get("mig-devices") or {}).items():
                layout[str(profile)] = int(count)
        if len(layout) > 1:
            return "failed", None  # one profile per GPU in this simulation
        for gpu in _gpus(hw):
            table = MIG_TABLE.get(gpu.device) or {}
            for profile, count in layout.items():
                if profile not in table or count > table[profile]:
                    return "failed", None
        return "success", layout

    # ------------------------------------------------------------ the GPU operator

    def _operator_namespace(self):
        for dep in self.sim.list("apps/v1", "Deployment"):
            images = " ".join(c.get("image", "") for c in dep["spec"]["template"]["spec"].get("containers") or [])
            if "nvidia/gpu-operator" in images and (dep.get("status") or {}).get("availableReplicas"):
                return dep["metadata"]["namespace"]
        return None

    def _operator(self):
        if self.sim.k("nvidia.com/v1", "ClusterPolicy") is None:
            return
        policies = self.sim.list("nvidia.com/v1", "ClusterPolicy")
        ns = self._operator_namespace()
        if not policies or ns is None:
            return
        policies.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        primary = policies[0]
        for other in policies[1:]:
            self.sim.set_status(other, dict(other.get("status") or {}, state="ignored"), OPERATOR_MANAGER)
        spec = primary.get("spec") or {}
        for node in self.sim.nodes():
            labels = node["metadata"].get("labels") or {}
            gpu = any(fnmatch.fnmatchcase(k, "feature.node.kubernetes.io/pci-*10de.present") and v == "true"
                      for k, v in labels.items())
            if gpu and labels.get(GPU_PRESENT) != "true":
                self.sim.merge_patch(node, {"metadata": {"labels": {GPU_PRESENT: "true"}}}, OPERATOR_MANAGER)
        handler = (spec.get("operator") or {}).get("runtimeClass") or "nvidia"
        if self.sim.get("node.k8s.io/v1", "RuntimeClass", None, handler) is None:
            self.sim.create({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                             "metadata": {"name": handler}, "handler": handler}, OPERATOR_MANAGER)
        operands = self._operands(primary, spec, ns, handler)
        states = []
        for name, wanted in operands.items():
            current = self.sim.get("apps/v1", "DaemonSet", ns, name)
            if wanted is None:
                if current is not None:
                    self.sim.delete(current)
                continue
            kind = self.sim.k(wanted["apiVersion"], wanted["kind"])
            try:
                current = self.sim.server.apply(kind, wanted, ns, name, OPERATOR_MANAGER, force=True)
            except Exception as exc:  # noqa: BLE001 - reported like the other controllers' errors
                self.sim.errors.append("gpu-operator %s: %s" % (name, exc))
                continue
            status = current.get("status") or {}
            desired = status.get("desiredNumberScheduled")
            states.append(desired is not None and status.get("numberReady") == desired
                          and status.get("observedGeneration") == current["metadata"].get("generation"))
        # the operator's validator also checks that every GPU node advertises GPUs (its plugin validation)
        advertising = all(any(k == "nvidia.com/gpu" or k.startswith("nvidia.com/mig-")
                              for k in ((n.get("status") or {}).get("allocatable") or {}))
                          for n in self.sim.nodes() if (n["metadata"].get("labels") or {}).get(GPU_PRESENT) == "true")
        ready = bool(states) and all(states) and advertising
        old = primary.get("status") or {}
        conditions = [{"type": "Ready", "status": "True" if ready else "False",
                       "reason": "Reconciled" if ready else "OperandNotReady",
                       "message": "ClusterPolicy is ready" if ready else "ClusterPolicy is not ready, states not ready",
                       "lastTransitionTime": old.get("state") == ("ready" if ready else "notReady")
                       and ((old.get("conditions") or [{}])[0].get("lastTransitionTime")) or patching.now_iso()}]
        self.sim.set_status(primary, {"state": "ready" if ready else "notReady", "namespace": ns,
                                      "conditions": conditions}, OPERATOR_MANAGER)

    def _operands(self, owner, spec, ns, handler):
        def enabled(key, default=True):
            value = (spec.get(key) or {}).get("enabled")
            return default if value is None else bool(value)

        def daemonset(name, image, extra=None, runtime=True):
            container = {"name": name, "image": image}
            container.update(extra or {})
            pod = {"nodeSelector": {GPU_PRESENT: "true"}, "containers": [container],
                   "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                   "priorityClassName": "system-node-critical"}
            if runtime:
                pod["runtimeClassName"] = handler
            return {"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": name, "namespace": ns, "labels": {"app": name},
                                 "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                                      "name": owner["metadata"]["name"],
                                                      "uid": owner["metadata"]["uid"], "controller": True}]},
                    "spec": {"selector": {"matchLabels": {"app": name}},
                             "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}}

        driver = spec.get("driver") or {}
        strategy = (spec.get("mig") or {}).get("strategy") or "single"
        toolkit_env = [{"name": "RUNTIME", "value": "containerd"},
                       {"name": "CONTAINERD_RUNTIME_CLASS", "value": handler}] + list(
            (spec.get("toolkit") or {}).get("env") or [])
        host = [{"name": "containerd-config", "hostPath": {"path": "/etc/containerd"}},
                {"name": "containerd-socket", "hostPath": {"path": "/run/containerd"}}]
        plugin = daemonset("nvidia-device-plugin-daemonset", "nvcr.io/nvidia/k8s-device-plugin:v0.16.2",
                           {"args": ["--mig-strategy=%s" % strategy]})
        toolkit = daemonset("nvidia-container-toolkit-daemonset", "nvcr.io/nvidia/k8s/container-toolkit:v1.19.0",
                            {"env": toolkit_env, "securityContext": {"privileged": True},
                             "volumeMounts": [{"name": "containerd-config", "mountPath": "/runtime/config-dir/"},
                                              {"name": "containerd-socket", "mountPath": "/runtime/sock-dir/"}]},
                            runtime=False)
        toolkit["spec"]["template"]["spec"]["volumes"] = host
        return {
            "nvidia-driver-daemonset": daemonset(
                "nvidia-driver-daemonset", "%s/%s:%s" % (driver.get("repository") or "nvcr.io/nvidia",
                                                         driver.get("image") or "driver",
                                                         driver.get("version") or "550.90.07"),
                {"securityContext": {"privileged": True}}, runtime=False) if enabled("driver") else None,
            "nvidia-container-toolkit-daemonset": toolkit if enabled("toolkit") else None,
            "nvidia-device-plugin-daemonset": plugin if enabled("devicePlugin") else None,
            "nvidia-dcgm-exporter": daemonset("nvidia-dcgm-exporter", "nvcr.io/nvidia/k8s/dcgm-exporter:4.3.1-4.4.0-"
                                              "ubuntu22.04") if enabled("dcgmExporter") else None,
        }

    def plugin_config(self, pod, text):
        """The device plugin configuration: its config file, or the operator's --mig-strategy flag."""
        cfg = {}
        if text:
            try:
                cfg = yaml.safe_load(text) or {}
            except yaml.YAMLError:
                cfg = {}
        for container in pod["spec"].get("containers") or []:
            for arg in container.get("args") or []:
                if str(arg).startswith("--mig-strategy="):
                    cfg = copy.deepcopy(cfg) if isinstance(cfg, dict) else {}
                    cfg.setdefault("flags", {})["migStrategy"] = str(arg).split("=", 1)[1]
        return cfg if isinstance(cfg, dict) else {}
