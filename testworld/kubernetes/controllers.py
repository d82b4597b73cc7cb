"""Simulated controllers, so that waiting on the test world means something.

They stand in for what runs in a real cluster: the CRD, namespace and
garbage-collection controllers, the scheduler and kubelets (pods, images,
device-plugin resources in node allocatable), the DaemonSet, Deployment and
Job controllers, Pod Security admission of workload pods, the NFD worker and
master (features, default labels, NodeFeatureRules), and the KMM operator
(Module status, worker pods, node labels, device-plugin DaemonSets).

Each runs as part of one reconcile pass on the API server's event loop; a
pass is skipped when nothing changed and no timer is due. Controllers only
write when the new state differs, so the world settles.
"""

import asyncio
import copy
import fnmatch
import hashlib
import ipaddress
import json
import re
import time
import uuid

import yaml

from testworld.kubernetes import crds, patching, selectors
from testworld.kubernetes.multus import Multus
from testworld.kubernetes import scenario as scenario_mod
from testworld.kubernetes.apiserver import ApiError
from testworld.kubernetes.gpu_runtime import GpuRuntime

NFD_PREFIX = "feature.node.kubernetes.io/"
NFD_DEFAULT_CLASSES = ["03", "0b40", "12"]
NFD_DEFAULT_FIELDS = ["class", "vendor"]
KMM_LABEL = "kmm.node.kubernetes.io/"
EXTENDED_BUILTIN = ("cpu", "memory", "pods", "ephemeral-storage", "hugepages-")


def _hash(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def _suffix():
    return uuid.uuid4().hex[:5]


def _owner_ref(obj, controller=True):
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


def _owned_by(obj, owner):
    return any(r.get("uid") == owner["metadata"]["uid"] for r in obj["metadata"].get("ownerReferences") or [])


def _images(pod_spec):
    return [c.get("image", "") for c in (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or [])]


def _args(container):
    return " ".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))


def _is_extended(name):
    return not name.startswith(EXTENDED_BUILTIN) and "/" in name and not name.startswith("kubernetes.io/")


def pod_requests(pod_spec):
    """Extended resources a pod asks for (limits imply requests for them)."""
    want = {}
    for container in pod_spec.get("containers") or []:
        res = container.get("resources") or {}
        merged = dict(res.get("limits") or {}, **(res.get("requests") or {}))
        for name, qty in merged.items():
            if _is_extended(name):
                want[name] = want.get(name, 0) + int(str(qty))
    return want


def psa_violations(pod_spec, level):
    """Pod Security Standards checks for the baseline and restricted levels."""
    if level == "privileged":
        return []
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            out.append("host namespaces (%s=true)" % key)
    host_paths = [v.get("name") for v in pod_spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        out.append('hostPath volumes (volumes %s)' % ", ".join('"%s"' % n for n in host_paths))
    for container in (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or []):
        ctx = container.get("securityContext") or {}
        if ctx.get("privileged"):
            out.append('privileged (container "%s" must not set securityContext.privileged=true)' % container.get("name"))
        added = set(((ctx.get("capabilities") or {}).get("add")) or []) - {
            "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
            "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
        if added:
            out.append('non-default capabilities (container "%s" must not include %s in securityContext.'
                       'capabilities.add)' % (container.get("name"), ", ".join('"%s"' % a for a in sorted(added))))
        if any(p.get("hostPort") for p in container.get("ports") or []):
            out.append('hostPort (container "%s" uses hostPort)' % container.get("name"))
        if level == "restricted":
            pod_ctx = pod_spec.get("securityContext") or {}
            if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
                out.append('runAsNonRoot != true (container "%s" must set securityContext.runAsNonRoot=true)'
                           % container.get("name"))
            if ctx.get("allowPrivilegeEscalation") is not False:
                out.append('allowPrivilegeEscalation != false (container "%s" must set securityContext.'
                           'allowPrivilegeEscalation=false)' % container.get("name"))
    return out


class LoadedModules(set):
    """The kernel modules loaded on a node; loading or unloading one tells the controllers
    (tests and the KMM controller change them directly, not through the API)."""

    def __init__(self, modules=(), on_change=None):
        super().__init__(modules)
        self.on_change = on_change

    def _changed(self):
        if self.on_change is not None:
            self.on_change()

    def add(self, module):
        if module not in self:
            super().add(module)
            self._changed()

    def discard(self, module):
        if module in self:
            super().discard(module)
            self._changed()

    def remove(self, module):
        super().remove(module)
        self._changed()

    def update(self, *others):
        super().update(*others)
        self._changed()

    def clear(self):
        super().clear()
        self._changed()


class NodeHardware:
    def __init__(self, spec, address, profile=None, provider_id=None, on_change=None):
        self.spec = spec
        self.kernel = spec.kernel
        self.on_change = on_change
        self.loaded = LoadedModules(spec.modules, on_change)
        self.firmware = set()
        self.address = address
        # None for nodes of the scenario's `nodes:`, else the profile the node registered with
        self.profile = profile
        self.provider_id = provider_id

    def reboot(self, kernel=None):
        if kernel:
            self.kernel = kernel
        self.loaded = LoadedModules(self.spec.modules, self.on_change)
        self.firmware = set()
        if self.on_change is not None:
            self.on_change()


class Simulation:
    """All simulated controllers of one cluster."""

    def __init__(self, server, scenario, nfd_interval=0.3, tick=0.05, pod_start=0.1, job_run=0.2):
        self.server = server
        self.scenario = scenario
        self._addresses = 0
        # set when simulated hardware changed (modules loaded or unloaded, a reboot): the next pass runs
        self._hardware_changed = False
        self.hw = {n.name: NodeHardware(n, self._next_address(), on_change=self._hardware_change)
                   for n in scenario.nodes}
        self._profile_serial = {}
        self.nfd_interval = nfd_interval
        self.tick = tick
        self.pod_start = pod_start
        self.job_run = job_run
        self.never_ready = list(scenario.never_ready_images)
        self.fail_commands = list(scenario.fail_commands)
        self.nfd_rejected = []
        self.nfd_withheld = []  # (node pattern, label key): labels nfd-master never writes there
        self.kmm_loaded = {}
        self._pod_times = {}
        self._nfd_last = {}
        self._timers = []
        self._last_rv = None
        self._gc_needed = True
        self._kind_cache = {}
        self._running = False
        self.errors = []
        self.multus = Multus(self)  # secondary pod networks (multus.py)
        self.gpu = GpuRuntime(self)  # NVIDIA runtime, MIG manager, GPU operator (gpu_runtime.py)
        server.listeners.append(self._on_event)

    # ------------------------------------------------------------ plumbing

    def k(self, api_version, kind):
        found = self.server.kind_for(api_version, kind)
        return found

    def _on_event(self, kind, event_type, obj):
        if event_type == "DELETED":
            self._gc_needed = True
            if kind.kind == "CustomResourceDefinition":
                self._crd_deleted(obj)

    def _hardware_change(self):
        self._hardware_changed = True

    def at(self, delay):
        when = time.monotonic() + delay
        # many objects ask for the same wake-up; one timer per 10 ms is enough
        if not any(abs(t - when) < 0.01 for t in self._timers):
            self._timers.append(when)

    def list(self, api_version, kind, namespace=None, label_selector=None):
        k = self.k(api_version, kind)
        return self.server.list(k, namespace, label_selector) if k else []

    def get(self, api_version, kind, namespace, name):
        k = self.k(api_version, kind)
        return self.server.get(k, namespace, name) if k else None

    def create(self, obj, manager):
        k = self.k(obj["apiVersion"], obj["kind"])
        try:
            return self.server.create(k, obj, obj["metadata"].get("namespace"), manager=manager)
        except ApiError as exc:
            if exc.code != 409:
                self.errors.append("create %s/%s: %s" % (obj["kind"], obj["metadata"].get("name"), exc.message))
            return None

    def delete(self, obj):
        k = self.k(obj["apiVersion"], obj["kind"])
        try:
            self.server.delete(k, obj["metadata"].get("namespace"), obj["metadata"]["name"], propagation="Background")
        except ApiError:
            pass

    def set_status(self, obj, status, manager):
        if obj.get("status") == status:
            return obj
        k = self.k(obj["apiVersion"], obj["kind"])
        new = copy.deepcopy(obj)
        new["status"] = status
        sub = "status" if k.status else None
        try:
            return self.server.replace(k, new, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                                       manager=manager, subresource=sub)
        except ApiError as exc:
            self.errors.append("status %s/%s: %s" % (obj["kind"], obj["metadata"]["name"], exc.message))
            return obj

    def merge_patch(self, obj, patch, manager, subresource=None):
        k = self.k(obj["apiVersion"], obj["kind"])
        try:
            return self.server.patch(k, obj["metadata"].get("namespace"), obj["metadata"]["name"], patch, "merge",
                                     manager=manager, subresource=subresource)
        except ApiError as exc:
            self.errors.append("patch %s/%s: %s" % (obj["kind"], obj["metadata"]["name"], exc.message))
            return obj

    def event(self, involved, reason, message, type_="Normal", source="testworld"):
        ns = involved["metadata"].get("namespace") or "default"
        name = "%s.%s" % (involved["metadata"]["name"], _hash([involved["metadata"].get("uid"), reason, message])[:8])
        if self.get("v1", "Event", ns, name) is not None:
            return
        now = patching.now_iso()
        self.create({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {"apiVersion": involved["apiVersion"], "kind": involved["kind"],
                               "name": involved["metadata"]["name"], "namespace": involved["metadata"].get("namespace"),
                               "uid": involved["metadata"].get("uid")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": {"component": source},
        }, manager=source)

    # ------------------------------------------------------------ lifecycle

    def bootstrap(self):
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, "testworld")
        for name, hw in self.hw.items():
            self.create(self._node_object(hw), "kubelet")
        crd_kind = self.k("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        for definition in crds.expand(self.scenario.installed_crds):
            self.server.create(crd_kind, definition, manager="testworld")
        self.reconcile_crds()
        pending = list(self.scenario.installed_objects)
        for _attempt in range(3):
            retry = []
            for obj in pending:
                if obj.get("kind") == "CustomResourceDefinition":
                    self.server.create(crd_kind, obj, manager="testworld")
                    self.reconcile_crds()
                    continue
                kind = self.k(obj.get("apiVersion", ""), obj.get("kind", ""))
                ns = (obj.get("metadata") or {}).get("namespace")
                if kind is None:
                    retry.append(obj)
                    continue
                if kind.namespaced and ns and self.get("v1", "Namespace", None, ns) is None:
                    self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, "testworld")
                self.server.create(kind, obj, ns, manager="testworld")
            pending = retry
            self.reconcile_crds()
        if pending:
            raise ValueError("installed objects of unknown kinds: %s" % ", ".join(
                "%s/%s" % (o.get("apiVersion"), o.get("kind")) for o in pending))

    def _node_object(self, hw):
        spec = hw.spec
        labels = {
            "kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        }
        labels.update(spec.labels)
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels, "annotations": dict(spec.annotations)},
            "spec": {},
            "status": self._node_status(hw, {}),
        }
        if hw.provider_id:
            node["spec"]["providerID"] = hw.provider_id
        if spec.taints:
            node["spec"]["taints"] = copy.deepcopy(spec.taints)
        if spec.unschedulable:
            node["spec"]["unschedulable"] = True
        return node

    def _node_status(self, hw, extended):
        spec = hw.spec
        base = {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods, "ephemeral-storage": "1Ti"}
        capacity = dict(base, **{k: str(v) for k, v in extended.items()})
        return {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": hw.address},
                          {"type": "Hostname", "address": spec.name}],
            "nodeInfo": {
                "kernelVersion": hw.kernel, "osImage": spec.os_name, "operatingSystem": "linux",
                "architecture": "amd64", "containerRuntimeVersion": "containerd://1.7.20",
                "kubeletVersion": self.scenario.kubernetes_version,
                "kubeProxyVersion": self.scenario.kubernetes_version,
                "machineID": _hash(spec.name), "systemUUID": str(uuid.UUID((_hash(spec.name) * 4)[:32])),
                "bootID": _hash([spec.name, hw.kernel]),
            },
        }

    def _next_address(self):
        self._addresses += 1
        return str(ipaddress.ip_address("10.0.0.9") + self._addresses)

    # ------------------------------------------------------------ nodes joining and leaving at run time

    def register_node(self, name, profile, labels=None, taints=None, annotations=None, address=None,
                      provider_id=None):
        """A kubelet registering: the Node gets the hardware of `profile`.

        Registering an existing node again merges `labels` and `taints` (what a kubelet restart
        with other flags does) and keeps its hardware. Returns (node, created)."""
        if not scenario_mod.NODE_NAME.match(name or "") or len(name) > 253:
            raise ValueError("%r is not a valid node name (a lower-case RFC 1123 subdomain)" % name)
        if profile not in self.scenario.profiles:
            raise KeyError("no profile %r in the scenario (profiles: %s)"
                           % (profile, ", ".join(sorted(self.scenario.profiles)) or "none"))
        labels = {str(k): "" if v is None else str(v) for k, v in (labels or {}).items()}
        taints = list(taints or [])
        hw = self.hw.get(name)
        node = self.get("v1", "Node", None, name)
        if hw is None and node is not None:
            raise FileExistsError("node %s exists but was created through the API, not registered" % name)
        if hw is not None:
            if hw.profile != profile:
                raise FileExistsError("node %s is registered with profile %s; delete it first"
                                      % (name, hw.profile or "(a scenario node)"))
            keys = {t.get("key") for t in taints}
            hw.spec.labels.update(labels)
            hw.spec.taints = [t for t in hw.spec.taints if t.get("key") not in keys] + taints
            if node is None:
                # deleted through the API while its machine kept running: the kubelet registers it again
                return self.create(self._node_object(hw), "kubelet"), True
            patch = {"metadata": {"labels": labels}}
            if taints:
                patch["spec"] = {"taints": [t for t in node["spec"].get("taints") or []
                                            if t.get("key") not in keys] + taints}
            return self.merge_patch(node, patch, "kubelet"), False
        serial = self._profile_serial.get(profile, 0)
        spec = self.scenario.profiles[profile].node(name, serial, labels, taints, annotations)
        self._profile_serial[profile] = serial + 1
        hw = NodeHardware(spec, address or self._next_address(), profile, provider_id, self._hardware_change)
        self.hw[name] = hw
        created = self.create(self._node_object(hw), "kubelet")
        if created is None:
            del self.hw[name]
            raise RuntimeError("node %s could not be created: %s" % (name, self.errors[-1] if self.errors else "?"))
        return created, True

    def unregister_node(self, name):
        """A node leaving for good: the Node goes and so do its pods (the pod garbage collector
        deletes pods bound to nodes that are gone) and its NodeFeature (nfd-master's).
        Returns False if there was no such node."""
        hw = self.hw.pop(name, None)
        node = self.get("v1", "Node", None, name)
        if hw is None and node is None:
            return False
        if node is not None:
            self.delete(node)
        for pod in self.node_pods(name):
            self.delete(pod)
        for feature in self.list("nfd.k8s-sigs.io/v1alpha1", "NodeFeature",
                                 label_selector="nfd.node.kubernetes.io/node-name=%s" % name):
            self.delete(feature)
        for key in [k for k in self.kmm_loaded if k[0] == name]:
            del self.kmm_loaded[key]
        self._nfd_last.pop(name, None)
        return True

    def node_registry(self):
        """Every node with hardware: name, profile (None for scenario nodes), kernel, address."""
        out = []
        for name, hw in self.hw.items():
            node = self.get("v1", "Node", None, name) or {}
            out.append({"name": name, "profile": hw.profile, "kernel": hw.kernel, "address": hw.address,
                        "providerID": hw.provider_id, "present": bool(node),
                        "labels": (node.get("metadata") or {}).get("labels", {})})
        return out

    async def run(self):
        self._running = True
        while self._running:
            self._trim_records()
            try:
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - a controller bug must not stop the others
                import traceback
                traceback.print_exc()
                self.errors.append(repr(exc))
            await asyncio.sleep(self.tick)

    def _trim_records(self, keep=20000):
        # a long-running `serve` would otherwise keep every request (kmock keeps bodies too)
        if len(self.server._log) > keep * 2:
            del self.server._log[:-keep]
        if len(self.server._requests) > keep * 2:
            del self.server._requests[:-keep]

    def reconcile(self, force=False):
        now = time.monotonic()
        due = [t for t in self._timers if t <= now]
        if not force and self.server.resource_version == self._last_rv and not due and not self._hardware_changed:
            return
        self._hardware_changed = False
        self._timers = [t for t in self._timers if t > now]
        for _round in range(5):
            before = self.server.resource_version
            self.reconcile_crds()
            self.reconcile_namespaces()
            if self._gc_needed:
                self._gc_needed = False
                self.reconcile_gc()
            self.reconcile_daemonsets()
            self.reconcile_deployments()
            self.reconcile_jobs()
            self.reconcile_kmm()
            self.gpu.reconcile()
            self.reconcile_pods()
            self.multus.release()
            self.reconcile_nodes()
            self.reconcile_nfd()
            if self.server.resource_version == before:
                break
        self._last_rv = self.server.resource_version

    # ------------------------------------------------------------ CRDs, namespaces, GC

    def reconcile_crds(self):
        for crd in self.list("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
            if crd["metadata"].get("deletionTimestamp"):
                continue
            from testworld.kubernetes import catalog
            spec = crd["spec"]
            storage = next(v for v in spec["versions"] if v.get("storage"))
            kinds = [catalog.crd_kind(crd, storage)] + [catalog.crd_kind(crd, v) for v in spec["versions"]
                                                        if v is not storage and v.get("served", True)]
            for kind in kinds:
                existing = self.server._kinds.get((kind.group, kind.version, kind.plural))
                if existing is None or existing.schema != kind.schema or existing.status != kind.status:
                    self.server._register(kind)
            names = dict(spec["names"])
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
            status = {
                "acceptedNames": names,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": (crd.get("status") or {}).get(
                         "conditions", [{}])[0].get("lastTransitionTime") or patching.now_iso()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted",
                     "lastTransitionTime": ((crd.get("status") or {}).get("conditions") or [{}, {}])[-1].get(
                         "lastTransitionTime") or patching.now_iso()},
                ],
                "storedVersions": [storage["name"]],
            }
            self.set_status(crd, status, "kube-apiserver")

    def _crd_deleted(self, crd):
        spec = crd.get("spec") or {}
        group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
        kind = self.server.kind_by_plural(group, plural)
        if kind is not None:
            for obj in self.server.list(kind):
                self.server._commit(kind, obj, "DELETED")
        self.server._unregister(group, plural)

    def reconcile_namespaces(self):
        for ns in self.list("v1", "Namespace"):
            if (ns.get("status") or {}).get("phase") != "Terminating":
                continue
            name = ns["metadata"]["name"]
            remaining = 0
            for kind in self.server.kinds():
                if not kind.namespaced or self.server._storage[(kind.group, kind.plural)].version != kind.version:
                    continue
                for obj in self.server.list(kind, name):
                    remaining += 1
                    if obj["metadata"].get("finalizers"):
                        if not obj["metadata"].get("deletionTimestamp"):
                            self.server.delete(kind, name, obj["metadata"]["name"])
                        continue
                    self.server.delete(kind, name, obj["metadata"]["name"])
            if not remaining:
                self.server._commit(self.k("v1", "Namespace"), ns, "DELETED")

    def reconcile_gc(self):
        everything = []
        for kind in self.server.kinds():
            if self.server._storage[(kind.group, kind.plural)].version != kind.version:
                continue
            everything.extend((kind, o) for o in self.server.list(kind))
        uids = {o["metadata"]["uid"] for _kind, o in everything}
        for kind, obj in everything:
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in uids for r in refs):
                try:
                    self.server.delete(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                except ApiError:
                    pass

    # ------------------------------------------------------------ nodes and device plugins

    def nodes(self):
        return self.list("v1", "Node")

    def node_pods(self, node_name):
        return [p for p in self.list("v1", "Pod") if (p.get("spec") or {}).get("nodeName") == node_name]

    def _ready(self, pod):
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (pod.get("status") or {}).get("conditions") or [])

    def _config_from_volumes(self, pod, key):
        """The content of `key` in a ConfigMap the pod mounts (None if absent)."""
        ns = pod["metadata"]["namespace"]
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            cm = (vol.get("configMap") or {}).get("name")
            if not cm:
                continue
            obj = self.get("v1", "ConfigMap", ns, cm)
            if obj and key in (obj.get("data") or {}):
                return obj["data"][key]
        return None

    def plugin_resources(self, pod, hw):
        """Resources a ready device-plugin pod advertises on its node."""
        out = {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            image = container.get("image", "")
            if "k8s-device-plugin" in image:
                gpus = [d for d in hw.spec.pci if d.vendor == "10de" and d.cls.startswith("03")]
                if gpus and "nvidia" in hw.loaded:
                    replicas = 1
                    text = self._config_from_volumes(pod, "config.yaml") or self._config_from_volumes(pod, "config")
                    cfg = self.gpu.plugin_config(pod, text)
                    try:
                        for res in ((cfg.get("sharing") or {}).get("timeSlicing") or {}).get("resources") or []:
                            if res.get("name") == "nvidia.com/gpu":
                                replicas = int(res.get("replicas", 1))
                    except (ValueError, AttributeError):
                        pass
                    out.update(self.gpu.gpu_resources(hw, gpus, replicas, cfg))
            elif "rdma-shared-dev-plugin" in image:
                text = self._config_from_volumes(pod, "config.json")
                try:
                    cfg = json.loads(text) if text else {}
                except ValueError:
                    cfg = {}
                for entry in cfg.get("configList") or []:
                    sel = entry.get("selectors") or {}
                    if any(self._netdev_matches(dev, sel) and dev.rdma for dev in hw.spec.network):
                        name = "%s/%s" % (entry.get("resourcePrefix") or "rdma", entry.get("resourceName"))
                        out[name] = int(entry.get("rdmaHcaMax", 1000))
            elif "sriov-network-device-plugin" in image:
                text = self._config_from_volumes(pod, "config.json")
                try:
                    cfg = json.loads(text) if text else {}
                except ValueError:
                    cfg = {}
                for entry in cfg.get("resourceList") or []:
                    sels = entry.get("selectors") or {}
                    sels = sels if isinstance(sels, list) else [sels]
                    count = 0
                    for dev in hw.spec.network:
                        for _vf in range(dev.numvfs):
                            vf = {"vendor": dev.vendor, "device": dev.vf_device or dev.device,
                                  "driver": dev.vf_driver or dev.driver, "pfName": dev.name,
                                  "linkType": dev.link_type, "isRdma": dev.rdma}
                            if any(self._vf_matches(vf, s) for s in sels):
                                count += 1
                    if count:
                        name = "%s/%s" % (entry.get("resourcePrefix") or "intel.com", entry.get("resourceName"))
                        out[name] = count
        return out

    @staticmethod
    def _netdev_matches(dev, sel):
        checks = [("vendors", dev.vendor), ("deviceIDs", dev.device), ("drivers", dev.driver),
                  ("ifNames", dev.name), ("linkTypes", dev.link_type)]
        return all(not sel.get(key) or value in [str(x).lower() for x in sel[key]] for key, value in checks)

    @staticmethod
    def _vf_matches(vf, sel):
        checks = [("vendors", vf["vendor"]), ("devices", vf["device"]), ("drivers", vf["driver"]),
                  ("pfNames", vf["pfName"]), ("linkTypes", vf["linkType"])]
        if not all(not sel.get(key) or value in [str(x).lower() for x in sel[key]] for key, value in checks):
            return False
        return "isRdma" not in sel or bool(sel["isRdma"]) == vf["isRdma"]

    def reconcile_nodes(self):
        pods_by_node = {}
        for pod in self.list("v1", "Pod"):
            pods_by_node.setdefault((pod.get("spec") or {}).get("nodeName"), []).append(pod)
        for node in self.nodes():
            name = node["metadata"]["name"]
            hw = self.hw.get(name)
            if hw is None:
                continue
            extended = {}
            for pod in pods_by_node.get(name, ()):
                if self._ready(pod) and not pod["metadata"].get("deletionTimestamp"):
                    for res, count in self.plugin_resources(pod, hw).items():
                        extended[res] = max(extended.get(res, 0), count)
            status = copy.deepcopy(node.get("status") or {})
            fresh = self._node_status(hw, extended)
            status["capacity"] = fresh["capacity"]
            status["allocatable"] = fresh["allocatable"]
            status["nodeInfo"] = dict(status.get("nodeInfo") or {}, kernelVersion=hw.kernel,
                                      bootID=fresh["nodeInfo"]["bootID"])
            self.set_status(node, status, "kubelet")

    # ------------------------------------------------------------ pods: scheduler and kubelet

    def _allocatable(self, node):
        alloc = (node.get("status") or {}).get("allocatable") or {}
        return {k: int(v) for k, v in alloc.items() if _is_extended(k)}

    def _used(self, node_name, pods, skip_uid=None):
        used = {}
        for pod in pods:
            if pod["spec"].get("nodeName") != node_name or pod["metadata"]["uid"] == skip_uid:
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for k, v in pod_requests(pod["spec"]).items():
                used[k] = used.get(k, 0) + v
        return used

    def schedule(self, pod, nodes, pods):
        """Pick a node, or return (None, FailedScheduling message)."""
        want = pod_requests(pod["spec"])
        reasons = {}
        fits = []
        for node in nodes:
            why = selectors.pod_fits_node_placement(pod["spec"], node)
            if why is None and node["spec"].get("unschedulable"):
                why = "were unschedulable"
            if why is None:
                alloc = self._allocatable(node)
                used = self._used(node["metadata"]["name"], pods)
                short = [r for r, n in sorted(want.items()) if alloc.get(r, 0) - used.get(r, 0) < n]
                if short:
                    why = "Insufficient %s" % short[0]
            if why is None:
                fits.append(node)
            else:
                reasons[why] = reasons.get(why, 0) + 1
        if fits:
            fits.sort(key=lambda n: (len([p for p in pods if p["spec"].get("nodeName") == n["metadata"]["name"]]),
                                     n["metadata"]["name"]))
            return fits[0]["metadata"]["name"], None
        detail = ", ".join("%d %s" % (n, r if r.startswith("Insufficient") else "node(s) " + r)
                           for r, n in sorted(reasons.items()))
        return None, "0/%d nodes are available: %s. preemption: 0/%d nodes are available: %d Preemption is not " \
                     "helpful for scheduling." % (len(nodes), detail, len(nodes), len(nodes))

    def image_broken(self, image):
        return any(fnmatch.fnmatchcase(image, p) for p in self.never_ready)

    def command_result(self, pod, node_name):
        """Outcome and log of a run-to-completion container on a node."""
        hw = self.hw.get(node_name)
        container = (pod["spec"].get("containers") or [{}])[0]
        command = _args(container)
        for rule in self.fail_commands:
            if fnmatch.fnmatchcase(node_name, rule.get("node", "*")) and rule.get("match", "") in command:
                return False, rule.get("message", "command failed on %s" % node_name)
        traffic = self.multus.command_result(pod, node_name, command)
        if traffic is not None:
            return traffic
        if hw is None:
            return True, ""
        gpu_result = self.gpu.command_result(pod, node_name, hw)
        if gpu_result is not None:
            return gpu_result
        lines = []
        if "nvidia-smi" in command:
            gpus = [d for d in hw.spec.pci if d.vendor == "10de" and d.cls.startswith("03")]
            if "nvidia" not in hw.loaded or not gpus:
                return False, ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                               "Make sure that the latest NVIDIA driver is installed and running.")
            for i, gpu in enumerate(gpus):
                gpu_uuid = uuid.UUID((_hash([node_name, gpu.address]) * 4)[:32])
                lines.append("GPU %d: %s (UUID: GPU-%s)" % (i, gpu.name or "NVIDIA GPU " + gpu.device, gpu_uuid))
        if "ibv_devinfo" in command or "ibv_devices" in command:
            rdma = [d for d in hw.spec.network if d.rdma]
            if not rdma or "mlx5_ib" not in hw.loaded and "mlx5_core" not in hw.loaded:
                return False, "No IB devices found"
            for i, dev in enumerate(rdma):
                lines.append("hca_id:\tmlx5_%d\n\ttransport:\t\t\tInfiniBand (0)\n\tnetdev:\t\t\t%s\n\t"
                             "link_layer:\t\t%s" % (i, dev.name, "InfiniBand" if dev.link_type == "infiniband"
                                                    else "Ethernet"))
        return True, "\n".join(lines) + ("\n" if lines else "")

    def reconcile_pods(self):
        now = time.monotonic()
        nodes = self.nodes()
        by_name = {n["metadata"]["name"]: n for n in nodes}
        pods = self.list("v1", "Pod")
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            status = copy.deepcopy(pod.get("status") or {})
            phase = status.get("phase", "Pending")
            if phase in ("Succeeded", "Failed"):
                continue
            spec = pod["spec"]
            node_name = spec.get("nodeName")
            if not node_name:
                chosen, why = self.schedule(pod, nodes, pods)
                if chosen is None:
                    status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                             "message": why}]
                    self.set_status(pod, status, "kube-scheduler")
                    self.event(pod, "FailedScheduling", why, "Warning", "default-scheduler")
                    continue
                bound = copy.deepcopy(pod)
                bound["spec"]["nodeName"] = chosen
                kind = self.k("v1", "Pod")
                # binding is a subresource in a real cluster; a direct update is what clients observe
                pod = self.server._commit(kind, bound, "MODIFIED")
                pod = self.server.get(kind, meta["namespace"], meta["name"])
                node_name = chosen
                pods = [p if p["metadata"]["uid"] != meta["uid"] else pod for p in pods]
                self.event(pod, "Scheduled", "Successfully assigned %s/%s to %s"
                           % (meta["namespace"], meta["name"], chosen), "Normal", "default-scheduler")
            if node_name not in by_name:
                continue
            uid = meta["uid"]
            started = self._pod_times.setdefault(uid, now)
            status.setdefault("hostIP", by_name[node_name]["status"]["addresses"][0]["address"])
            status.setdefault("startTime", patching.now_iso())
            conditions = {"PodScheduled": "True"}
            containers = spec.get("containers") or []
            broken = [img for img in _images(spec) if self.image_broken(img)]
            run_once = spec.get("restartPolicy", "Always") in ("Never", "OnFailure")
            if now - started < self.pod_start:
                self.at(self.pod_start - (now - started) + 0.001)
                new_status = dict(status, phase="Pending", conditions=self._conds(conditions))
                new_status["containerStatuses"] = [self._cstatus(c, "waiting", reason="ContainerCreating")
                                                   for c in containers]
                self.set_status(pod, new_status, "kubelet")
                continue
            pod, sandbox_error = self.multus.sandbox(pod, node_name)
            if sandbox_error:
                self.set_status(pod, dict(status, phase="Pending", conditions=self._conds(conditions),
                                          containerStatuses=[self._cstatus(c, "waiting", reason="ContainerCreating")
                                                             for c in containers]), "kubelet")
                continue
            if self.gpu.hold_sandbox(pod, node_name, status, conditions):
                continue
            if broken:
                image = broken[0]
                reason = "ErrImagePull" if now - started < self.pod_start * 3 else "ImagePullBackOff"
                if reason == "ErrImagePull":
                    self.at(self.pod_start * 3 - (now - started) + 0.001)
                message = ('rpc error: code = NotFound desc = failed to pull and unpack image "%s": not found'
                           % image) if reason == "ErrImagePull" else 'Back-off pulling image "%s"' % image
                new_status = dict(status, phase="Pending", conditions=self._conds(dict(conditions, Ready="False")))
                new_status["containerStatuses"] = [
                    self._cstatus(c, "waiting", reason=reason if c.get("image") == image else "PodInitializing",
                                  message=message if c.get("image") == image else None) for c in containers]
                self.set_status(pod, new_status, "kubelet")
                self.event(pod, "Failed", 'Failed to pull image "%s": not found' % image, "Warning", "kubelet")
                self.event(pod, "BackOff", 'Back-off pulling image "%s"' % image, "Normal", "kubelet")
                continue
            crash = self._crash_reason(pod, node_name)
            if crash:
                new_status = dict(status, phase="Running", conditions=self._conds(dict(conditions, Ready="False")))
                new_status["containerStatuses"] = [self._cstatus(c, "waiting", reason="CrashLoopBackOff",
                                                                 message=crash, restarts=1) for c in containers]
                self.set_status(pod, new_status, "kubelet")
                self.server.pod_logs[(meta["namespace"], meta["name"])] = crash + "\n"
                self.event(pod, "BackOff", "Back-off restarting failed container %s in pod %s"
                           % (containers[0].get("name"), meta["name"]), "Warning", "kubelet")
                continue
            if run_once:
                if now - started < self.pod_start + self.job_run:
                    self.at(self.pod_start + self.job_run - (now - started) + 0.001)
                    new_status = dict(status, phase="Running", conditions=self._conds(dict(conditions, Ready="True")))
                    new_status["containerStatuses"] = [self._cstatus(c, "running") for c in containers]
                    self.set_status(pod, new_status, "kubelet")
                    continue
                ok, log = self.command_result(pod, node_name)
                self.server.pod_logs[(meta["namespace"], meta["name"])] = log if log.endswith("\n") or not log \
                    else log + "\n"
                new_status = dict(status, phase="Succeeded" if ok else "Failed",
                                  conditions=self._conds(dict(conditions, Ready="False")))
                new_status["containerStatuses"] = [
                    self._cstatus(c, "terminated", reason="Completed" if ok else "Error", exit_code=0 if ok else 1,
                                  message=None if ok else log.strip()[:400]) for c in containers]
                self.set_status(pod, new_status, "kubelet")
                continue
            new_status = dict(status, phase="Running", conditions=self._conds(dict(conditions, Ready="True")))
            new_status["containerStatuses"] = [self._cstatus(c, "running") for c in containers]
            self.set_status(pod, new_status, "kubelet")

    def _crash_reason(self, pod, node_name):
        hw = self.hw.get(node_name)
        if hw is None:
            return None
        gpu_crash = self.gpu.crash_reason(pod, hw)
        if gpu_crash:
            return gpu_crash
        for container in pod["spec"].get("containers") or []:
            if "k8s-device-plugin" in container.get("image", ""):
                gpus = [d for d in hw.spec.pci if d.vendor == "10de" and d.cls.startswith("03")]
                if gpus and "nvidia" not in hw.loaded:
                    return ("failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND; if this is a GPU node, did you "
                            "install the NVIDIA driver?")
        return None

    @staticmethod
    def _conds(values):
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        values = dict(values)
        if "Ready" in values:
            values.setdefault("ContainersReady", values["Ready"])
            values.setdefault("Initialized", "True")
        return [{"type": t, "status": values[t]} for t in order if t in values]

    @staticmethod
    def _cstatus(container, state, reason=None, message=None, exit_code=None, restarts=0):
        detail = {}
        if reason:
            detail["reason"] = reason
        if message:
            detail["message"] = message
        if exit_code is not None:
            detail["exitCode"] = exit_code
        return {"name": container.get("name"), "image": container.get("image"), "imageID": "",
                "ready": state == "running", "started": state == "running", "restartCount": restarts,
                "state": {state: detail}}

    # ------------------------------------------------------------ workloads

    def _pod_security_level(self, namespace):
        ns = self.get("v1", "Namespace", None, namespace) or {}
        labels = (ns.get("metadata") or {}).get("labels") or {}
        return labels.get("pod-security.kubernetes.io/enforce", self.scenario.pod_security)

    def _make_pod(self, owner, template, name, node_name=None, extra_labels=None):
        spec = copy.deepcopy(template.get("spec") or {})
        if node_name:
            spec["nodeName"] = node_name
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update(extra_labels or {})
        level = self._pod_security_level(owner["metadata"]["namespace"])
        violations = psa_violations(spec, level)
        rejected = self.gpu.admission_error(spec)
        if rejected:
            self.event(owner, "FailedCreate", 'Error creating: pods "%s" is forbidden: %s' % (name, rejected),
                       "Warning", owner["kind"].lower() + "-controller")
            return None
        if violations:
            self.event(owner, "FailedCreate", 'Error creating: pods "%s" is forbidden: violates PodSecurity "%s:latest": '
                       "%s" % (name, level, ", ".join(violations)), "Warning", owner["kind"].lower() + "-controller")
            return None
        return self.create({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"], "labels": labels,
                         "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                         "ownerReferences": [_owner_ref(owner)]},
            "spec": spec,
        }, manager=owner["kind"].lower() + "-controller")

    def reconcile_daemonsets(self):
        nodes = self.nodes()
        pods = self.list("v1", "Pod")
        for ds in self.list("apps/v1", "DaemonSet"):
            if ds["metadata"].get("deletionTimestamp"):
                continue
            template = ds["spec"]["template"]
            revision = _hash(template)
            tolerating = copy.deepcopy(template.get("spec") or {})
            tolerating.setdefault("tolerations", [])
            tolerating["tolerations"] = list(tolerating["tolerations"]) + [
                {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
            eligible = [n["metadata"]["name"] for n in nodes
                        if selectors.pod_fits_node_placement(tolerating, n) is None]
            mine = [p for p in pods if _owned_by(p, ds) and not p["metadata"].get("deletionTimestamp")]
            by_node = {}
            for pod in mine:
                node = pod["spec"].get("nodeName")
                stale = node not in eligible or pod["metadata"].get("labels", {}).get("controller-revision-hash") != revision
                if stale or node in by_node:
                    self.delete(pod)
                    continue
                by_node[node] = pod
            for node in eligible:
                if node not in by_node:
                    created = self._make_pod(ds, template, "%s-%s" % (ds["metadata"]["name"], _suffix()), node,
                                             {"controller-revision-hash": revision,
                                              "pod-template-generation": str(ds["metadata"].get("generation", 1))})
                    if created:
                        by_node[node] = created
            ready = sum(1 for p in by_node.values() if self._ready(p))
            status = {
                "currentNumberScheduled": len(by_node),
                "desiredNumberScheduled": len(eligible),
                "numberMisscheduled": 0,
                "numberReady": ready,
                "numberAvailable": ready,
                "updatedNumberScheduled": len(by_node),
                "observedGeneration": ds["metadata"].get("generation", 1),
            }
            if len(eligible) - ready:
                status["numberUnavailable"] = len(eligible) - ready
            self.set_status(ds, status, "daemonset-controller")

    def reconcile_deployments(self):
        pods = self.list("v1", "Pod")
        for dep in self.list("apps/v1", "Deployment"):
            if dep["metadata"].get("deletionTimestamp"):
                continue
            template = dep["spec"]["template"]
            revision = _hash(template)
            want = dep["spec"].get("replicas", 1)
            mine = [p for p in pods if _owned_by(p, dep) and not p["metadata"].get("deletionTimestamp")]
            current = []
            for pod in mine:
                if pod["metadata"].get("labels", {}).get("pod-template-hash") != revision or len(current) >= want:
                    self.delete(pod)
                else:
                    current.append(pod)
            while len(current) < want:
                created = self._make_pod(dep, template, "%s-%s-%s" % (dep["metadata"]["name"], revision[:9],
                                                                      _suffix()),
                                         extra_labels={"pod-template-hash": revision})
                if not created:
                    break
                current.append(created)
            ready = sum(1 for p in current if self._ready(p))
            status = {"observedGeneration": dep["metadata"].get("generation", 1)}
            if current:
                status.update(replicas=len(current), updatedReplicas=len(current))
            if ready:
                status.update(readyReplicas=ready, availableReplicas=ready)
            if want - ready > 0:
                status["unavailableReplicas"] = want - ready
            old = {c["type"]: c for c in (dep.get("status") or {}).get("conditions") or []}
            available = "True" if ready >= want else "False"
            progressing = "True"
            conds = [
                {"type": "Available", "status": available,
                 "reason": "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if available == "True" else
                 "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": progressing,
                 "reason": "NewReplicaSetAvailable" if available == "True" else "ReplicaSetUpdated",
                 "message": 'ReplicaSet "%s-%s" has %s.' % (
                     dep["metadata"]["name"], revision[:9],
                     "successfully progressed" if available == "True" else "is progressing")},
            ]
            for cond in conds:
                prev = old.get(cond["type"])
                same = prev and prev.get("status") == cond["status"]
                cond["lastTransitionTime"] = prev.get("lastTransitionTime") if same else patching.now_iso()
                cond["lastUpdateTime"] = prev.get("lastUpdateTime") if same and prev.get("reason") == cond["reason"] \
                    else patching.now_iso()
            status["conditions"] = conds
            self.set_status(dep, status, "deployment-controller")

    def reconcile_jobs(self):
        pods = self.list("v1", "Pod")
        for job in self.list("batch/v1", "Job"):
            meta = job["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            spec = job["spec"]
            status = copy.deepcopy(job.get("status") or {})
            finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                           for c in status.get("conditions") or [])
            mine = [p for p in pods if _owned_by(p, job)]
            if finished:
                ttl = spec.get("ttlSecondsAfterFinished")
                if ttl is not None:
                    done_at = self._pod_times.setdefault("job-finished:" + meta["uid"], time.monotonic())
                    if time.monotonic() - done_at >= ttl:
                        self.delete(job)
                    else:
                        self.at(ttl - (time.monotonic() - done_at) + 0.001)
                continue
            completions = spec.get("completions", 1)
            parallelism = spec.get("parallelism", 1)
            backoff = spec.get("backoffLimit", 6)
            succeeded = sum(1 for p in mine if p["status"].get("phase") == "Succeeded")
            failed = sum(1 for p in mine if p["status"].get("phase") == "Failed")
            active = [p for p in mine if p["status"].get("phase") not in ("Succeeded", "Failed")
                      and not p["metadata"].get("deletionTimestamp")]
            status.setdefault("startTime", patching.now_iso())
            now = patching.now_iso()
            conditions = []
            deadline = spec.get("activeDeadlineSeconds")
            started = self._pod_times.setdefault("job-start:" + meta["uid"], time.monotonic())
            if deadline is not None and time.monotonic() - started < deadline:
                self.at(deadline - (time.monotonic() - started) + 0.001)
            if succeeded >= completions:
                conditions = [{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                               "message": "Reached expected number of succeeded pods"},
                              {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                               "message": "Reached expected number of succeeded pods"}]
                status["completionTime"] = now
            elif failed > backoff:
                conditions = [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                               "message": "Job has reached the specified backoff limit"},
                              {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                               "message": "Job has reached the specified backoff limit"}]
            elif deadline is not None and time.monotonic() - started >= deadline:
                conditions = [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded",
                               "message": "Job was active longer than specified deadline"},
                              {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                               "message": "Job was active longer than specified deadline"}]
            if conditions:
                for pod in active:
                    self.delete(pod)
                active = []
                for cond in conditions:
                    cond["lastProbeTime"] = now
                    cond["lastTransitionTime"] = now
                status["conditions"] = conditions
                self._pod_times["job-finished:" + meta["uid"]] = time.monotonic()
                if spec.get("ttlSecondsAfterFinished") is not None:
                    self.at(spec["ttlSecondsAfterFinished"] + 0.001)
            else:
                missing = min(parallelism, completions - succeeded) - len(active)
                for _slot in range(max(0, missing)):
                    labels = {"job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"],
                              "controller-uid": meta["uid"], "batch.kubernetes.io/controller-uid": meta["uid"]}
                    created = self._make_pod(job, spec["template"], "%s-%s" % (meta["name"], _suffix()),
                                             extra_labels=labels)
                    if created:
                        active.append(created)
            status["active"] = len(active)
            if not status["active"]:
                del status["active"]
            status["ready"] = sum(1 for p in active if self._ready(p))
            if succeeded:
                status["succeeded"] = succeeded
            if failed:
                status["failed"] = failed
            status.setdefault("uncountedTerminatedPods", {})
            self.set_status(job, status, "job-controller")

    # ------------------------------------------------------------ NFD

    def _nfd_parts(self):
        """(master available, {node: worker pod ready}, worker config, extra label namespaces, worker namespace)"""
        master_ok, extra = False, set()
        for dep in self.list("apps/v1", "Deployment"):
            for container in dep["spec"]["template"]["spec"].get("containers") or []:
                if "node-feature-discovery" in container.get("image", "") and (
                        "nfd-master" in _args(container) or "master" in dep["metadata"]["name"]):
                    if (dep.get("status") or {}).get("availableReplicas"):
                        master_ok = True
                    for arg in (container.get("command") or []) + (container.get("args") or []):
                        match = re.match(r"^--?extra-label-ns=(.*)$", str(arg))
                        if match:
                            extra |= {x.strip() for x in match.group(1).split(",") if x.strip()}
        workers, config, worker_ns = {}, {}, None
        for ds in self.list("apps/v1", "DaemonSet"):
            containers = ds["spec"]["template"]["spec"].get("containers") or []
            if not any("node-feature-discovery" in c.get("image", "") and (
                    "nfd-worker" in _args(c) or "worker" in ds["metadata"]["name"]) for c in containers):
                continue
            worker_ns = ds["metadata"]["namespace"]
            for pod in self.list("v1", "Pod", worker_ns):
                if _owned_by(pod, ds) and self._ready(pod):
                    workers[pod["spec"]["nodeName"]] = pod
                    if not config:
                        text = self._config_from_volumes(pod, "nfd-worker.conf")
                        try:
                            config = yaml.safe_load(text) or {} if text else {}
                        except yaml.YAMLError:
                            config = {}
        return master_ok, workers, config if isinstance(config, dict) else {}, extra, worker_ns

    def node_features(self, hw):
        spec = hw.spec
        kernel = hw.kernel
        match = re.match(r"^(\d+)\.(\d+)\.(\d+)", kernel)
        version = {"full": kernel}
        if match:
            version.update(major=match.group(1), minor=match.group(2), revision=match.group(3))
        os_major, os_minor = spec.os_version.partition(".")[::2]
        osrel = {"ID": spec.os_id, "VERSION_ID": spec.os_version, "VERSION_ID.major": os_major}
        if os_minor:
            osrel["VERSION_ID.minor"] = os_minor
        return {
            "flags": {
                "kernel.loadedmodule": {"elements": {m: {} for m in sorted(hw.loaded)}},
                "kernel.enabledmodule": {"elements": {m: {} for m in sorted(hw.loaded)}},
            },
            "attributes": {
                "kernel.version": {"elements": version},
                "system.osrelease": {"elements": osrel},
            },
            "instances": {
                "pci.device": {"elements": [{"attributes": dict(
                    {"class": d.cls, "vendor": d.vendor, "device": d.device,
                     "subsystem_vendor": d.subsystem_vendor or d.vendor,
                     "subsystem_device": d.subsystem_device or d.device},
                    **({"sriov_totalvfs": str(d.sriov_totalvfs)} if d.sriov_totalvfs else {}))} for d in spec.pci]},
                "network.device": {"elements": [{"attributes": {
                    "name": n.name, "operstate": n.operstate, "speed": str(n.speed),
                    **({"sriov_totalvfs": str(n.totalvfs), "sriov_numvfs": str(n.numvfs)} if n.totalvfs else {})}}
                    for n in spec.network]},
            },
        }

    def default_labels(self, hw, config):
        sources = (config.get("sources") or {}) if isinstance(config, dict) else {}
        core = (config.get("core") or {}) if isinstance(config, dict) else {}
        pci_cfg = sources.get("pci") or {}
        classes = [str(c).lower() for c in pci_cfg.get("deviceClassWhitelist") or NFD_DEFAULT_CLASSES]
        fields = pci_cfg.get("deviceLabelFields") or NFD_DEFAULT_FIELDS
        enabled = core.get("labelSources") or ["all"]

        def on(source):
            return "all" in enabled or source in enabled

        labels = {}
        if on("pci"):
            for dev in hw.spec.pci:
                if not any(dev.cls.startswith(c) for c in classes):
                    continue
                values = {"class": dev.cls, "vendor": dev.vendor, "device": dev.device,
                          "subsystem_vendor": dev.subsystem_vendor or dev.vendor,
                          "subsystem_device": dev.subsystem_device or dev.device}
                key = "pci-" + "_".join(values[f] for f in fields if f in values)
                labels[key + ".present"] = "true"
                if dev.sriov_totalvfs:
                    labels[key + ".sriov.capable"] = "true"
        if on("kernel"):
            feats = self.node_features(hw)["attributes"]["kernel.version"]["elements"]
            for key, value in feats.items():
                labels["kernel-version." + key] = value
        if on("system"):
            osrel = self.node_features(hw)["attributes"]["system.osrelease"]["elements"]
            labels["system-os_release.ID"] = osrel["ID"]
            labels["system-os_release.VERSION_ID"] = osrel["VERSION_ID"]
            labels["system-os_release.VERSION_ID.major"] = osrel["VERSION_ID.major"]
            if "VERSION_ID.minor" in osrel:
                labels["system-os_release.VERSION_ID.minor"] = osrel["VERSION_ID.minor"]
        if on("network"):
            if any(n.totalvfs for n in hw.spec.network):
                labels["network-sriov.capable"] = "true"
            if any(n.numvfs for n in hw.spec.network):
                labels["network-sriov.configured"] = "true"
        if on("custom"):
            if any(d.vendor == "15b3" for d in hw.spec.pci):
                labels["custom-rdma.capable"] = "true"
            if {"ib_uverbs", "rdma_ucm"} <= hw.loaded:
                labels["custom-rdma.available"] = "true"
        return {NFD_PREFIX + k: v for k, v in labels.items()}

    @staticmethod
    def _op_matches(op, have, values):
        values = [str(v) for v in (values if isinstance(values, list) else [values] if values is not None else [])]
        if op == "Exists":
            return have is not None
        if op == "DoesNotExist":
            return have is None
        if have is None:
            return op == "NotIn"
        have = str(have)
        if op == "In":
            return have in values
        if op == "NotIn":
            return have not in values
        if op == "InRegexp":
            return any(re.search(v, have) for v in values)
        if op in ("Gt", "Lt", "GtLt"):
            try:
                num = int(have)
                bounds = [int(v) for v in values]
            except ValueError:
                return False
            if op == "Gt":
                return num > bounds[0]
            if op == "Lt":
                return num < bounds[0]
            return bounds[0] < num < bounds[1]
        if op == "IsTrue":
            return have == "true"
        if op == "IsFalse":
            return have == "false"
        return False

    def _term_matches(self, term, features):
        name = term.get("feature", "")
        exprs = term.get("matchExpressions") or {}
        if name in features["flags"]:
            elements = features["flags"][name]["elements"]
            ok = all(self._op_matches(e.get("op"), key if key in elements else None, e.get("value"))
                     for key, e in exprs.items())
            if term.get("matchName"):
                ok = ok and any(self._op_matches(term["matchName"].get("op"), key, term["matchName"].get("value"))
                                for key in elements)
            return ok
        if name in features["attributes"]:
            elements = features["attributes"][name]["elements"]
            return all(self._op_matches(e.get("op"), elements.get(key), e.get("value")) for key, e in exprs.items())
        if name in features["instances"]:
            for inst in features["instances"][name]["elements"]:
                attrs = inst["attributes"]
                if all(self._op_matches(e.get("op"), attrs.get(key), e.get("value")) for key, e in exprs.items()):
                    return True
            return False
        if name == "rule.matched":
            elements = features.get("rule.matched", {})
            return all(self._op_matches(e.get("op"), elements.get(key), e.get("value")) for key, e in exprs.items())
        return False

    def rule_matches(self, rule, features):
        terms = rule.get("matchFeatures") or []
        if not all(self._term_matches(t, features) for t in terms):
            return False
        anys = rule.get("matchAny") or []
        if anys and not any(all(self._term_matches(t, features) for t in a.get("matchFeatures") or []) for a in anys):
            return False
        return True

    @staticmethod
    def label_allowed(key, extra):
        prefix = key.rpartition("/")[0]
        if not prefix or prefix == "feature.node.kubernetes.io" or prefix.endswith(".feature.node.kubernetes.io"):
            return True
        if prefix in ("profile.node.kubernetes.io",) or prefix.endswith(".profile.node.kubernetes.io"):
            return True
        if prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io") or prefix == "k8s.io" or \
                prefix.endswith(".k8s.io"):
            return False
        return prefix in extra

    def reconcile_nfd(self):
        master_ok, workers, config, extra, worker_ns = self._nfd_parts()
        if not workers:
            return
        rules = self.list("nfd.k8s-sigs.io/v1alpha1", "NodeFeatureRule")
        now = time.monotonic()
        nf_kind = self.k("nfd.k8s-sigs.io/v1alpha1", "NodeFeature")
        published = {f["metadata"]["name"]: f["metadata"]["resourceVersion"]
                     for f in (self.server.list(nf_kind, worker_ns) if nf_kind is not None and worker_ns else [])}
        # What a pass depends on besides the node itself; a worker pass that would find nothing new is skipped
        # (the real worker re-reads the node every sleepInterval and writes only changes: the same to a client).
        cluster_inputs = [[(r["metadata"]["name"], r["metadata"]["resourceVersion"]) for r in rules],
                          config, master_ok, sorted(extra), worker_ns, self.nfd_withheld, nf_kind is not None]
        for node in self.nodes():
            name = node["metadata"]["name"]
            hw = self.hw.get(name)
            if hw is None or name not in workers:
                continue

            def inputs(node_now, published_rv):
                return _hash(cluster_inputs + [hw.kernel, sorted(hw.loaded), published_rv,
                                               node_now["metadata"].get("labels"),
                                               node_now["metadata"].get("annotations")])
            last = self._nfd_last.get(name)
            if last is not None and last[1] == inputs(node, published.get(name)):
                continue
            if last is not None and now - last[0] < self.nfd_interval:
                # the worker sees the change at its next pass
                self.at(self.nfd_interval - (now - last[0]) + 0.001)
                continue
            node = self._nfd_pass(node, hw, rules, config, master_ok, extra, worker_ns, nf_kind)
            published_rv = None
            if nf_kind is not None and worker_ns:
                feature = self.server.get(nf_kind, worker_ns, name)
                published_rv = feature["metadata"]["resourceVersion"] if feature else None
            self._nfd_last[name] = (now, inputs(node, published_rv))

    def _nfd_pass(self, node, hw, rules, config, master_ok, extra, worker_ns, nf_kind):
        """One nfd-worker pass on a node and what nfd-master makes of it; returns the node as it is now."""
        name = node["metadata"]["name"]
        features = self.node_features(hw)
        labels = self.default_labels(hw, config)
        if nf_kind is not None and worker_ns:
            body = {"apiVersion": "nfd.k8s-sigs.io/v1alpha1", "kind": "NodeFeature",
                    "metadata": {"name": name, "namespace": worker_ns,
                                 "labels": {"nfd.node.kubernetes.io/node-name": name}},
                    "spec": {"features": features, "labels": {k[len(NFD_PREFIX):]: v for k, v in labels.items()}}}
            try:
                self.server.apply(nf_kind, body, worker_ns, name, "nfd-worker", force=True)
            except ApiError as exc:
                self.errors.append("NodeFeature %s: %s" % (name, exc.message))
        if not master_ok:
            return node
        matched = {}
        for rule_obj in rules:
            for rule in (rule_obj.get("spec") or {}).get("rules") or []:
                features["rule.matched"] = matched
                if not self.rule_matches(rule, features):
                    continue
                for key, value in (rule.get("labels") or {}).items():
                    full = key if "/" in key else NFD_PREFIX + key
                    if not self.label_allowed(full, extra):
                        entry = (name, rule_obj["metadata"]["name"], full)
                        if entry not in self.nfd_rejected:
                            self.nfd_rejected.append(entry)
                        continue
                    labels[full] = str(value)
                    matched[key] = str(value)
                for key, value in (rule.get("vars") or {}).items():
                    matched[key] = str(value)
        for pattern, key in self.nfd_withheld:
            if fnmatch.fnmatchcase(name, pattern):
                labels.pop(key if "/" in key else NFD_PREFIX + key, None)
        annotations = node["metadata"].get("annotations") or {}
        previous = [x for x in (annotations.get("nfd.node.kubernetes.io/feature-labels") or "").split(",") if x]
        current_labels = node["metadata"].get("labels") or {}
        patch_labels = {}
        for short in previous:
            full = short if "/" in short else NFD_PREFIX + short
            if full not in labels and full in current_labels:
                patch_labels[full] = None
        for key, value in labels.items():
            if current_labels.get(key) != value:
                patch_labels[key] = value
        names = ",".join(sorted(k[len(NFD_PREFIX):] if k.startswith(NFD_PREFIX) else k for k in labels))
        patch = {"metadata": {}}
        if patch_labels:
            patch["metadata"]["labels"] = patch_labels
        if annotations.get("nfd.node.kubernetes.io/feature-labels") != names:
            patch["metadata"]["annotations"] = {"nfd.node.kubernetes.io/feature-labels": names}
        if patch["metadata"]:
            node = self.merge_patch(node, patch, "nfd-master")
        return node

    # ------------------------------------------------------------ KMM

    def _kmm_operator_ready(self):
        for dep in self.list("apps/v1", "Deployment"):
            images = " ".join(_images(dep["spec"]["template"].get("spec") or {}))
            if (dep["metadata"]["name"] == "kmm-operator-controller" or
                    ("kernel-module-management" in images and "webhook" not in dep["metadata"]["name"])):
                if (dep.get("status") or {}).get("availableReplicas"):
                    return True
        return False

    @staticmethod
    def kernel_mapping(module, kernel):
        """The image a Module maps `kernel` to, or None (first matching mapping wins)."""
        container = ((module.get("spec") or {}).get("moduleLoader") or {}).get("container") or {}
        for mapping in container.get("kernelMappings") or []:
            hit = (mapping.get("literal") == kernel) if mapping.get("literal") else \
                bool(mapping.get("regexp")) and re.search(mapping["regexp"], kernel) is not None
            if hit:
                image = mapping.get("containerImage") or container.get("containerImage") or ""
                return image.replace("${KERNEL_FULL_VERSION}", kernel).replace("$KERNEL_FULL_VERSION", kernel)
        return None

    def reconcile_kmm(self):
        module_kind = self.k("kmm.sigs.x-k8s.io/v1beta1", "Module")
        if module_kind is None:
            return
        operator = self._kmm_operator_ready()
        modules = self.server.list(module_kind)
        nodes = self.nodes()
        pods = self.list("v1", "Pod")
        wanted = set()
        for module in modules:
            if not operator or module["metadata"].get("deletionTimestamp"):
                continue
            ns, name = module["metadata"]["namespace"], module["metadata"]["name"]
            spec = module.get("spec") or {}
            selector = spec.get("selector") or {}
            container = (spec.get("moduleLoader") or {}).get("container") or {}
            modname = (container.get("modprobe") or {}).get("moduleName")
            ready_label = "%s%s.%s.ready" % (KMM_LABEL, ns, name)
            matching, desired, available = [], [], []
            for node in nodes:
                labels = node["metadata"].get("labels") or {}
                if not all(labels.get(k) == v for k, v in selector.items()):
                    continue
                node_name = node["metadata"]["name"]
                matching.append(node_name)
                if not spec.get("moduleLoader"):
                    continue
                hw = self.hw.get(node_name)
                if hw is None:
                    continue
                image = self.kernel_mapping(module, hw.kernel)
                if image is None:
                    continue
                desired.append(node_name)
                key = (node_name, ns, name)
                wanted.add(key)
                loaded = self.kmm_loaded.get(key)
                if loaded and loaded["image"] == image and loaded["kernel"] == hw.kernel and modname in hw.loaded:
                    available.append(node_name)
                    if labels.get(ready_label) != "":
                        self.merge_patch(node, {"metadata": {"labels": {ready_label: ""}}}, "kmm")
                        self.event(dict(node, apiVersion="v1", kind="Node"), "ModuleLoaded",
                                   "Module %s/%s loaded into the kernel" % (ns, name), "Normal", "kmm")
                    continue
                if loaded:
                    self._kmm_unload(key, node, ready_label, modname)
                worker = "kmm-worker-%s-%s" % (node_name, name)
                worker = worker[:63].rstrip("-.")
                pod = next((p for p in pods if p["metadata"]["namespace"] == ns and p["metadata"]["name"] == worker
                            and not p["metadata"].get("deletionTimestamp")), None)
                if pod is not None and pod["spec"]["containers"][0].get("image") != image:
                    self.delete(pod)
                    pod = None
                if pod is None:
                    self.create({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": worker, "namespace": ns,
                                     "labels": {"app.kubernetes.io/name": "kmm", "app.kubernetes.io/component": "worker",
                                                "app.kubernetes.io/part-of": "kmm",
                                                "kmm.node.kubernetes.io/module.name": name},
                                     "ownerReferences": [_owner_ref(module)]},
                        "spec": {"nodeName": node_name, "restartPolicy": "Never",
                                 "serviceAccountName": spec.get("moduleLoader", {}).get("serviceAccountName", "default"),
                                 "imagePullSecrets": [spec["imageRepoSecret"]] if spec.get("imageRepoSecret") else [],
                                 "containers": [{"name": "worker", "image": image,
                                                 "args": ["kmm", "load", "--module", modname or ""]}]},
                    }, manager="kmm")
                    continue
                phase = pod["status"].get("phase")
                if phase == "Succeeded":
                    self.kmm_loaded[key] = {"image": image, "kernel": hw.kernel, "module": modname}
                    if modname:
                        hw.loaded.add(modname)
                    fw = (container.get("modprobe") or {}).get("firmwarePath")
                    if fw:
                        hw.firmware.add(fw)
                    self.delete(pod)
                    self.at(0.001)
                elif phase == "Failed":
                    self.delete(pod)
            status = copy.deepcopy(module.get("status") or {})
            if spec.get("moduleLoader"):
                status["moduleLoader"] = {"nodesMatchingSelectorNumber": len(matching),
                                          "desiredNumber": len(desired), "availableNumber": len(available)}
            dp = spec.get("devicePlugin")
            if dp:
                status["devicePlugin"] = self._kmm_device_plugin(module, dp, nodes, ready_label)
            self.set_status(module, status, "kmm")
        for key in list(self.kmm_loaded):
            if key not in wanted:
                node_name, ns, name = key
                node = next((n for n in nodes if n["metadata"]["name"] == node_name), None)
                modname = self.kmm_loaded[key].get("module")
                self._kmm_unload(key, node, "%s%s.%s.ready" % (KMM_LABEL, ns, name), modname)
        # labels left behind by a reboot or a deleted Module
        for node in nodes:
            for label in list((node["metadata"].get("labels") or {})):
                if not label.startswith(KMM_LABEL) or not label.endswith(".ready"):
                    continue
                body = label[len(KMM_LABEL):-len(".ready")]
                if body.endswith(".device-plugin"):
                    continue
                ns, name = body.partition(".")[::2]
                if (node["metadata"]["name"], ns, name) not in self.kmm_loaded:
                    self.merge_patch(node, {"metadata": {"labels": {label: None}}}, "kmm")

    def _kmm_unload(self, key, node, ready_label, modname):
        node_name = key[0]
        self.kmm_loaded.pop(key, None)
        hw = self.hw.get(node_name)
        if hw is not None and modname and modname not in hw.spec.modules:
            hw.loaded.discard(modname)
        if node is not None and ready_label in (node["metadata"].get("labels") or {}):
            self.merge_patch(node, {"metadata": {"labels": {ready_label: None}}}, "kmm")
            self.event(dict(node, apiVersion="v1", kind="Node"), "ModuleUnloaded",
                       "Module %s/%s unloaded from the kernel" % (key[1], key[2]), "Normal", "kmm")

    def _kmm_device_plugin(self, module, dp, nodes, ready_label):
        ns, name = module["metadata"]["namespace"], module["metadata"]["name"]
        spec = module.get("spec") or {}
        ds_name = "%s-device-plugin" % name
        node_selector = {ready_label: ""} if spec.get("moduleLoader") else dict(spec.get("selector") or {})
        container = copy.deepcopy(dp.get("container") or {})
        container.setdefault("name", "device-plugin")
        container.setdefault("volumeMounts", []).append({"name": "kubelet-device-plugins",
                                                         "mountPath": "/var/lib/kubelet/device-plugins"})
        container.setdefault("securityContext", {"privileged": True})
        template = {
            "metadata": {"labels": {"kmm.node.kubernetes.io/module.name": name, "app.kubernetes.io/name": "kmm",
                                    "app.kubernetes.io/component": "device-plugin"}},
            "spec": {"nodeSelector": node_selector, "serviceAccountName": dp.get("serviceAccountName", "default"),
                     "containers": [container],
                     "volumes": (dp.get("volumes") or []) + [{"name": "kubelet-device-plugins",
                                                              "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                     "tolerations": spec.get("tolerations") or []},
        }
        ds = self.get("apps/v1", "DaemonSet", ns, ds_name)
        body = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": ds_name, "namespace": ns, "ownerReferences": [_owner_ref(module)]},
                "spec": {"selector": {"matchLabels": {"kmm.node.kubernetes.io/module.name": name,
                                                      "app.kubernetes.io/component": "device-plugin"}},
                         "template": template}}
        kind = self.k("apps/v1", "DaemonSet")
        try:
            ds = self.server.apply(kind, body, ns, ds_name, "kmm", force=True)
        except ApiError as exc:
            self.errors.append("kmm device plugin %s: %s" % (ds_name, exc.message))
        plugin_label = "%s%s.%s.device-plugin-ready" % (KMM_LABEL, ns, name)
        ready_nodes = set()
        for pod in self.list("v1", "Pod", ns):
            if ds and _owned_by(pod, ds) and self._ready(pod):
                ready_nodes.add(pod["spec"]["nodeName"])
        for node in nodes:
            labels = node["metadata"].get("labels") or {}
            has = plugin_label in labels
            if node["metadata"]["name"] in ready_nodes and not has:
                self.merge_patch(node, {"metadata": {"labels": {plugin_label: ""}}}, "kmm")
            elif node["metadata"]["name"] not in ready_nodes and has:
                self.merge_patch(node, {"metadata": {"labels": {plugin_label: None}}}, "kmm")
        st = (ds or {}).get("status") or {}
        matching = sum(1 for n in nodes if all((n["metadata"].get("labels") or {}).get(k) == v
                                               for k, v in node_selector.items()))
        return {"nodesMatchingSelectorNumber": matching, "desiredNumber": st.get("desiredNumberScheduled", 0),
                "availableNumber": st.get("numberAvailable", 0)}

    # ------------------------------------------------------------ world events

    def set_kernel(self, node_name, kernel):
        """Reboot a node into another kernel: modules KMM loaded are gone."""
        hw = self.hw[node_name]
        hw.reboot(kernel)
        for key in [k for k in self.kmm_loaded if k[0] == node_name]:
            self.kmm_loaded.pop(key)
        self._nfd_last.pop(node_name, None)
        node = self.get("v1", "Node", None, node_name)
        if node is not None:
            status = copy.deepcopy(node["status"])
            status["nodeInfo"]["kernelVersion"] = kernel
            status["nodeInfo"]["bootID"] = _hash([node_name, kernel])
            self.set_status(node, status, "kubelet")
