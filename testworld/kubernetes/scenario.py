"""Scenario files: the hardware and state of a simulated cluster.

A scenario describes what an API server cannot know by itself: the PCI
devices, network devices, kernels and loaded modules of each node, which the
simulated NFD worker, KMM and device plugins discover. It can also carry
objects that are "already installed" (for single-owner checks) and faults.

    cluster:
      kubernetesVersion: v1.31.4
      podSecurity: {enforce: baseline}     # cluster default for unlabelled namespaces
    nodes:
      - name: gpu-1
        kernel: 5.14.0-427.13.1.el9_4.x86_64
        os: {id: rhel, versionId: "9.4", prettyName: Red Hat Enterprise Linux 9.4 (Plow)}
        labels: {node-role.kubernetes.io/worker: ""}
        loadedModules: [mlx5_core]
        pci:
          - {address: "0000:17:00.0", class: "0302", vendor: "10de", device: "20b5", name: NVIDIA A100 80GB PCIe}
        network:
          - {name: ib0, pci: "0000:3b:00.0", driver: mlx5_core, linkType: infiniband, rdma: true,
             sriov: {totalvfs: 8, numvfs: 4, vfDevice: "101c"}}
    profiles:                               # hardware of nodes registered at run time (PUT /_sim/nodes/{name})
      bm.gpu:                               # every node field but name; kernel may be a list, used in
        kernel: [5.14.0-427.13.1.el9_4.x86_64, 5.14.0-503.11.1.el9_5.x86_64]   # turn by registration order
        pci: [...]                          # (a list item may also be {kernel: ..., os: {...}})
    installed:
      crds: [cert-manager, monitoring]      # shortcuts, see crds.py
      objects: [...]                        # any manifests, created before clients connect
    faults:
      neverReadyImages: ["registry.example.com/broken/*"]
      rbacDeny: [{resource: daemonsets, group: apps, verb: create}]
      failCommands: [{node: gpu-2, match: nvidia-smi, message: "..."}]
"""

import re

import attrs
import yaml

HEX = re.compile(r"^[0-9a-fA-F]+$")
# A Node's name is a DNS subdomain (RFC 1123): lower case, digits, '-' and '.'.
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ScenarioError(ValueError):
    pass


@attrs.define
class PciDevice:
    address: str
    cls: str
    vendor: str
    device: str
    name: str = ""
    driver: str = ""
    subsystem_vendor: str = ""
    subsystem_device: str = ""
    sriov_totalvfs: int = 0


@attrs.define
class NetDevice:
    name: str
    pci: str = ""
    vendor: str = ""
    device: str = ""
    driver: str = ""
    link_type: str = "ether"
    operstate: str = "up"
    speed: int = 100000
    rdma: bool = False
    totalvfs: int = 0
    numvfs: int = 0
    vf_device: str = ""
    vf_driver: str = ""


@attrs.define
class NodeSpec:
    name: str
    kernel: str
    os_id: str = "rhel"
    os_version: str = "9.4"
    os_name: str = "Red Hat Enterprise Linux 9.4 (Plow)"
    labels: dict = attrs.field(factory=dict)
    annotations: dict = attrs.field(factory=dict)
    taints: list = attrs.field(factory=list)
    unschedulable: bool = False
    cpu: str = "64"
    memory: str = "512Gi"
    pods: str = "110"
    modules: list = attrs.field(factory=list)
    pci: list = attrs.field(factory=list)
    network: list = attrs.field(factory=list)


@attrs.define
class Profile:
    """The hardware of nodes that register at run time; `kernels` turn by registration order."""
    name: str
    raw: dict
    kernels: list  # [(kernel, os mapping or None)]

    def node(self, name, serial=0, labels=None, taints=None, annotations=None, where=None):
        """The NodeSpec of the `serial`-th node registered with this profile."""
        kernel, os_info = self.kernels[serial % len(self.kernels)]
        raw = dict(self.raw, name=name, kernel=kernel)
        if os_info is not None:
            raw["os"] = os_info
        raw["labels"] = dict(self.raw.get("labels") or {}, **(labels or {}))
        raw["taints"] = list(self.raw.get("taints") or []) + list(taints or [])
        raw["annotations"] = dict(self.raw.get("annotations") or {}, **(annotations or {}))
        return _node(raw, where or "node %s (profile %s)" % (name, self.name))


@attrs.define
class Scenario:
    name: str = "cluster"
    kubernetes_version: str = "v1.31.4"
    pod_security: str = "privileged"
    nodes: list = attrs.field(factory=list)
    installed_crds: list = attrs.field(factory=list)
    installed_objects: list = attrs.field(factory=list)
    never_ready_images: list = attrs.field(factory=list)
    rbac_deny: list = attrs.field(factory=list)
    fail_commands: list = attrs.field(factory=list)
    profiles: dict = attrs.field(factory=dict)

    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def _hex(value, field, lengths):
    text = str(value).lower()
    if not HEX.match(text) or len(text) not in lengths:
        raise ScenarioError("%s: %r is not a %s-digit hex value" % (field, value, "/".join(map(str, lengths))))
    return text


def _node(raw, where):
    if not isinstance(raw, dict) or not raw.get("name"):
        raise ScenarioError("%s: a node needs at least a name" % where)
    if not raw.get("kernel"):
        raise ScenarioError("%s (%s): kernel (the full version, as `uname -r` prints it) is required"
                            % (where, raw["name"]))
    os_info = raw.get("os") or {}
    node = NodeSpec(
        name=raw["name"], kernel=str(raw["kernel"]),
        os_id=str(os_info.get("id", "rhel")), os_version=str(os_info.get("versionId", "9.4")),
        os_name=str(os_info.get("prettyName") or "%s %s" % (os_info.get("id", "rhel"), os_info.get("versionId", "9.4"))),
        labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
        annotations=dict(raw.get("annotations") or {}),
        taints=list(raw.get("taints") or []),
        unschedulable=bool(raw.get("unschedulable", False)),
        cpu=str(raw.get("cpu", "64")), memory=str(raw.get("memory", "512Gi")), pods=str(raw.get("pods", "110")),
        modules=[str(m) for m in raw.get("loadedModules") or []],
    )
    by_address = {}
    for j, dev in enumerate(raw.get("pci") or []):
        field = "%s.pci[%d]" % (where, j)
        for key in ("class", "vendor", "device"):
            if key not in dev:
                raise ScenarioError("%s: %s is required (hex, e.g. class 0302, vendor 10de)" % (field, key))
        pci = PciDevice(
            address=str(dev.get("address") or "0000:%02x:00.0" % (j + 1)),
            cls=_hex(dev["class"], field + ".class", (4,)),
            vendor=_hex(dev["vendor"], field + ".vendor", (4,)),
            device=_hex(dev["device"], field + ".device", (4,)),
            name=str(dev.get("name", "")), driver=str(dev.get("driver", "")),
            subsystem_vendor=str(dev.get("subsystemVendor", "")), subsystem_device=str(dev.get("subsystemDevice", "")),
            sriov_totalvfs=int(dev.get("sriovTotalVfs", 0)))
        node.pci.append(pci)
        by_address[pci.address] = pci
    for j, dev in enumerate(raw.get("network") or []):
        field = "%s.network[%d]" % (where, j)
        if not dev.get("name"):
            raise ScenarioError("%s: name (the interface name, e.g. ib0) is required" % field)
        pci = by_address.get(str(dev.get("pci", "")))
        if dev.get("pci") and pci is None:
            raise ScenarioError("%s: pci %r does not name a device in %s.pci" % (field, dev["pci"], where))
        sriov = dev.get("sriov") or {}
        link = str(dev.get("linkType", "ether"))
        if link not in ("ether", "infiniband"):
            raise ScenarioError("%s: linkType %r is not one of ether, infiniband" % (field, link))
        node.network.append(NetDevice(
            name=str(dev["name"]), pci=pci.address if pci else "",
            vendor=pci.vendor if pci else _hex(dev.get("vendor", "8086"), field + ".vendor", (4,)),
            device=pci.device if pci else _hex(dev.get("device", "1572"), field + ".device", (4,)),
            driver=str(dev.get("driver") or (pci.driver if pci else "")),
            link_type=link, operstate=str(dev.get("operstate", "up")), speed=int(dev.get("speed", 100000)),
            rdma=bool(dev.get("rdma", False)),
            totalvfs=int(sriov.get("totalvfs", 0)), numvfs=int(sriov.get("numvfs", 0)),
            vf_device=str(sriov.get("vfDevice", "")).lower(), vf_driver=str(sriov.get("vfDriver", ""))))
        if pci and int(sriov.get("totalvfs", 0)):
            pci.sriov_totalvfs = int(sriov["totalvfs"])
    return node


def _profiles(raw):
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScenarioError("profiles: a mapping of profile name to node hardware (every node field but name)")
    out = {}
    for name, body in raw.items():
        where = "profiles.%s" % name
        if not isinstance(body, dict):
            raise ScenarioError("%s: a mapping of node fields (kernel, os, cpu, memory, pci, network, ...)" % where)
        kernels = body.get("kernel")
        kernels = kernels if isinstance(kernels, list) else [kernels] if kernels else []
        options = []
        for j, item in enumerate(kernels):
            if isinstance(item, dict):
                if not item.get("kernel"):
                    raise ScenarioError("%s.kernel[%d]: kernel is required" % (where, j))
                options.append((str(item["kernel"]), item.get("os")))
            else:
                options.append((str(item), None))
        if not options:
            raise ScenarioError("%s: kernel (a version as `uname -r` prints it, or a list of them) is required"
                                % where)
        fields = {k: v for k, v in body.items() if k not in ("kernel", "name")}
        profile = Profile(name=str(name), raw=fields, kernels=options)
        for serial in range(len(options)):  # every kernel choice must make a valid node
            profile.node("profile-check", serial, where=where)
        out[str(name)] = profile
    return out


def load(source):
    """Load a scenario from a path, a YAML string or a dict."""
    if isinstance(source, dict):
        raw = source
    else:
        text = str(source)
        if "\n" not in text and text.endswith((".yml", ".yaml")):
            with open(text, encoding="utf-8") as handle:
                raw = yaml.safe_load(handle)
        else:
            raw = yaml.safe_load(text)
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ScenarioError("a scenario is a mapping with cluster, nodes, installed and faults")
    cluster = raw.get("cluster") or {}
    installed = raw.get("installed") or {}
    faults = raw.get("faults") or {}
    nodes = [_node(n, "nodes[%d]" % i) for i, n in enumerate(raw.get("nodes") or [])]
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ScenarioError("node names must be unique: %s" % ", ".join(sorted(names)))
    enforce = str((cluster.get("podSecurity") or {}).get("enforce", "privileged"))
    if enforce not in ("privileged", "baseline", "restricted"):
        raise ScenarioError("cluster.podSecurity.enforce %r is not one of privileged, baseline, restricted" % enforce)
    return Scenario(
        name=str(cluster.get("name", "cluster")),
        kubernetes_version=str(cluster.get("kubernetesVersion", "v1.31.4")),
        pod_security=enforce,
        nodes=nodes,
        installed_crds=list(installed.get("crds") or []),
        installed_objects=list(installed.get("objects") or []),
        never_ready_images=list(faults.get("neverReadyImages") or []),
        rbac_deny=list(faults.get("rbacDeny") or []),
        fail_commands=list(faults.get("failCommands") or []),
        profiles=_profiles(raw.get("profiles")),
    )
