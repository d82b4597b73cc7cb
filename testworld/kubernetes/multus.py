"""Simulated Multus (thick plugin), CNI plugins and whereabouts IPAM on the nodes.

A pod that names networks in its `k8s.v1.cni.cncf.io/networks` annotation gets
them only as a real cluster would give them:

- Multus must be the node's CNI: a Ready pod of a `multus-cni` image on the
  node. Without one the default CNI starts the pod and ignores the annotation
  (no network-status), as happens on a node where Multus has not started yet.
- Each named NetworkAttachmentDefinition must exist and its CNI binary must be
  installed on the node (a Ready pod of the reference plugins image for
  macvlan/ipvlan/host-device, of ipoib-cni, of sriov-cni, of whereabouts).
- The link the configuration names must exist on the node (the scenario's
  network devices) and suit the plugin: macvlan and ipvlan cannot run over an
  IPoIB link, ipoib needs one; host-device takes the link from the host, so a
  second pod cannot have it.
- whereabouts allocates the lowest free address of the range (range_start..
  range_end, minus exclude) and records it in its IPPool
  (whereabouts.cni.cncf.io/v1alpha1) so allocations survive and are visible;
  an address is released when its pod is gone or has terminated.

Any failure keeps the pod in ContainerCreating with a FailedCreatePodSandBox
event worded like the kubelet's. On success Multus writes the pod's
`k8s.v1.cni.cncf.io/network-status` annotation.

`ping <address>` in a run-to-completion pod succeeds when a running pod holds
the address on a pod network of the same kind of link and the same subnet as
one of the pinging pod's own attachments; else all packets are lost.
"""

import copy
import hashlib
import ipaddress
import json

NETWORKS = "k8s.v1.cni.cncf.io/networks"
STATUS = "k8s.v1.cni.cncf.io/network-status"
NAD_API = "k8s.cni.cncf.io/v1"
POOL_API = "whereabouts.cni.cncf.io/v1alpha1"
MANAGER = "multus"

# image substring -> CNI binaries that pod installs on its node
INSTALLERS = (
    ("k8snetworkplumbingwg/plugins", ("macvlan", "ipvlan", "host-device", "bridge", "static", "host-local")),
    ("ipoib-cni", ("ipoib",)),
    ("sriov-cni", ("sriov",)),
    ("whereabouts", ("whereabouts",)),
)


class SandboxError(Exception):
    pass


def requested_networks(pod):
    """[(namespace, name, interface or None)] of the pod's networks annotation (both of its forms)."""
    meta = pod.get("metadata") or {}
    text = ((meta.get("annotations") or {}).get(NETWORKS) or "").strip()
    if not text:
        return []
    out = []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise SandboxError("error parsing network selection annotation %r: not valid JSON" % text)
        for item in items:
            out.append((item.get("namespace") or meta.get("namespace"), item.get("name"), item.get("interface")))
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        ref, _sep, iface = part.partition("@")
        ns, _sep, name = ref.rpartition("/")
        out.append((ns or meta.get("namespace"), name, iface or None))
    return out


def pool_name(ipam):
    normalized = ipam["range"].replace(":", "-").replace("/", "-")
    return ("%s-%s" % (ipam["network_name"], normalized)) if ipam.get("network_name") else normalized


class Multus:
    """Attaches pods to their secondary networks; called by the kubelet simulation."""

    def __init__(self, sim):
        self.sim = sim

    # ------------------------------------------------------------ node side

    def _installed(self, node_name):
        """CNI binaries on the node, and whether Multus runs there, from the Ready pods of their installers."""
        binaries, multus, pool_ns = set(), False, None
        for pod in self.sim.node_pods(node_name):
            if pod["metadata"].get("deletionTimestamp") or not self.sim._ready(pod):
                continue
            for container in (pod.get("spec") or {}).get("containers") or []:
                image = container.get("image", "")
                if "multus-cni" in image:
                    multus = True
                for part, names in INSTALLERS:
                    if part in image:
                        binaries.update(names)
                        if part == "whereabouts":
                            pool_ns = pod["metadata"]["namespace"]
        return binaries, multus, pool_ns

    @staticmethod
    def _plugin(config):
        if "plugins" in config:
            return (config.get("plugins") or [{}])[0]
        return config

    def _link_problem(self, hw, plugin, pod, node_name):
        kind = plugin.get("type")
        links = {dev.name: dev for dev in hw.spec.network}
        if kind in ("macvlan", "ipvlan", "ipoib"):
            master = plugin.get("master")
            if not master:
                return "%s: master interface is required (the cluster default route is not used here)" % kind
            dev = links.get(master)
            if dev is None:
                return 'failed to lookup master "%s": Link not found' % master
            if kind in ("macvlan", "ipvlan") and dev.link_type == "infiniband":
                return "failed to create %s: operation not supported (master %s is an IPoIB link)" % (kind, master)
            if kind == "ipoib" and dev.link_type != "infiniband":
                return 'failed to create ipoib link: master "%s" is not an InfiniBand (IPoIB) interface' % master
        elif kind == "host-device":
            device = plugin.get("device")
            if device not in links:
                return 'failed to find host device: Link not found (device "%s")' % device
            for other in self.sim.node_pods(node_name):
                if other["metadata"]["uid"] == pod["metadata"]["uid"] or other["metadata"].get("deletionTimestamp"):
                    continue
                if (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                for entry in self._status_entries(other):
                    if entry.get("device-info", {}).get("host-device") == device:
                        return 'failed to find host device: Link not found (device "%s" is in pod %s/%s)' % (
                            device, other["metadata"]["namespace"], other["metadata"]["name"])
        elif kind == "sriov":
            resource = None
            nad_resource = plugin.get("_resourceName")
            for container in (pod.get("spec") or {}).get("containers") or []:
                limits = ((container.get("resources") or {}).get("limits")) or {}
                if nad_resource and nad_resource in limits:
                    resource = nad_resource
            if resource is None:
                return "SRIOV-CNI failed to load netconf: LoadConf(): VF pci addr is required"
        return None

    # ------------------------------------------------------------ whereabouts

    @staticmethod
    def _bounds(ipam):
        net = ipaddress.ip_network(ipam["range"], strict=False)
        first = int(ipaddress.ip_address(ipam["range_start"])) if ipam.get("range_start") else \
            int(net.network_address) + 1
        last = int(ipaddress.ip_address(ipam["range_end"])) if ipam.get("range_end") else \
            int(net.broadcast_address) - (1 if net.version == 4 else 0)
        excluded = [ipaddress.ip_network(e, strict=False) for e in ipam.get("exclude") or []]
        return net, first, last, excluded

    def _allocate(self, ipam, pod, ifname, pool_ns):
        if pool_ns is None or self.sim.k(POOL_API, "IPPool") is None:
            raise SandboxError("error getting IP from IPAM: whereabouts: the IPPool kind (%s) is not served: "
                               "whereabouts' CustomResourceDefinitions are not installed" % POOL_API)
        try:
            net, first, last, excluded = self._bounds(ipam)
        except (KeyError, ValueError) as exc:
            raise SandboxError("whereabouts: invalid range configuration: %s" % exc)
        name = pool_name(ipam)
        podref = "%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"])
        pool = self.sim.get(POOL_API, "IPPool", pool_ns, name)
        allocations = dict(((pool or {}).get("spec") or {}).get("allocations") or {})
        base = int(net.network_address)
        for offset, entry in allocations.items():
            if entry.get("podref") == podref and entry.get("ifname") == ifname:
                return str(ipaddress.ip_address(base + int(offset))), net
        for value in range(first, last + 1):
            addr = ipaddress.ip_address(value)
            if str(value - base) in allocations or any(addr in ex for ex in excluded):
                continue
            allocations[str(value - base)] = {"id": pod["metadata"]["uid"], "podref": podref, "ifname": ifname}
            spec = {"range": ipam["range"], "allocations": allocations}
            if pool is None:
                created = self.sim.create({"apiVersion": POOL_API, "kind": "IPPool",
                                           "metadata": {"name": name, "namespace": pool_ns}, "spec": spec}, "whereabouts")
                if created is None:
                    raise SandboxError("whereabouts: could not create IPPool %s/%s" % (pool_ns, name))
            else:
                self.sim.merge_patch(pool, {"spec": {"allocations": {str(value - base): allocations[str(value - base)]}}},
                                     "whereabouts")
            return str(addr), net
        raise SandboxError("error getting IP from IPAM: Error at storage engine: Could not allocate IP in range: "
                           "ip: %s / - %s / range: %s / excludeRanges: %s" % (
                               ipaddress.ip_address(first), ipaddress.ip_address(last), net,
                               [str(e) for e in excluded]))

    def release(self):
        """CNI DEL: free the addresses of pods that are gone or have terminated."""
        if self.sim.k(POOL_API, "IPPool") is None:
            return
        live = {}
        for pod in self.sim.list("v1", "Pod"):
            phase = (pod.get("status") or {}).get("phase")
            if phase not in ("Succeeded", "Failed"):
                live["%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod["metadata"]["uid"]
        for pool in self.sim.list(POOL_API, "IPPool"):
            allocations = ((pool.get("spec") or {}).get("allocations")) or {}
            gone = {k: None for k, v in allocations.items() if live.get(v.get("podref")) != v.get("id")}
            if gone:
                self.sim.merge_patch(pool, {"spec": {"allocations": gone}}, "whereabouts")

    # ------------------------------------------------------------ sandbox

    @staticmethod
    def _status_entries(pod):
        text = ((pod.get("metadata") or {}).get("annotations") or {}).get(STATUS)
        try:
            entries = json.loads(text) if text else []
        except ValueError:
            return []
        return entries if isinstance(entries, list) else []

    def sandbox(self, pod, node_name):
        """Set up the pod's secondary networks: (pod, None) or (pod, why its sandbox cannot be created)."""
        try:
            wanted = requested_networks(pod)
        except SandboxError as exc:
            return pod, self._refuse(pod, str(exc))
        if not wanted or self._status_entries(pod):
            return pod, None
        if (pod.get("status") or {}).get("phase") not in (None, "Pending"):
            # the sandbox of a started pod exists already: networks are set up only when it is made
            return pod, None
        hw = self.sim.hw.get(node_name)
        binaries, multus, pool_ns = self._installed(node_name)
        if not multus or hw is None:
            return pod, None
        entries = []
        if (pod.get("status") or {}).get("podIP"):
            entries.append({"name": "k8s-pod-network", "interface": "eth0", "ips": [pod["status"]["podIP"]],
                            "default": True, "dns": {}})
        for index, (ns, name, iface) in enumerate(wanted, start=1):
            ref = "%s/%s" % (ns, name)
            nad = self.sim.get(NAD_API, "NetworkAttachmentDefinition", ns, name) \
                if self.sim.k(NAD_API, "NetworkAttachmentDefinition") else None
            if nad is None:
                message = ("Multus: [%s/%s/%s]: error loading k8s delegates k8s args: "
                           "TryLoadPodDelegates: error in getting k8s network for pod: "
                           "GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate:"
                           " cannot find a network-attachment-definition (%s) in namespace (%s): "
                           "network-attachment-definitions.k8s.cni.cncf.io \"%s\" not found"
                           % (pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"],
                              name, ns, name))
                return pod, self._refuse(pod, message)
            try:
                config = json.loads((nad.get("spec") or {}).get("config") or "{}")
            except ValueError:
                return pod, self._refuse(pod, "Multus: error parsing the config of %s: invalid JSON" % ref)
            plugin = copy.deepcopy(self._plugin(config))
            plugin["_resourceName"] = ((nad["metadata"].get("annotations") or {})
                                       .get("k8s.v1.cni.cncf.io/resourceName"))
            kind = plugin.get("type")
            ipam = plugin.get("ipam") or {}
            for needed in (kind, ipam.get("type")):
                if needed and needed not in binaries:
                    return pod, self._refuse(pod, 'Multus: [%s]: error adding container to network "%s": failed to '
                                                  'find plugin "%s" in path [/opt/cni/bin]' % (ref, name, needed))
            problem = self._link_problem(hw, plugin, pod, node_name)
            if problem:
                return pod, self._refuse(pod, 'Multus: [%s]: error adding container to network "%s": %s'
                                         % (ref, name, problem))
            ifname = iface or "net%d" % index
            entry = {"name": ref, "interface": ifname, "dns": {}}
            if ipam.get("type") == "whereabouts":
                try:
                    address, net = self._allocate(ipam, pod, ifname, pool_ns)
                except SandboxError as exc:
                    return pod, self._refuse(pod, 'Multus: [%s]: error adding container to network "%s": %s'
                                             % (ref, name, exc))
                entry["ips"] = [address]
            digest = hashlib.sha256(("%s/%s" % (pod["metadata"]["uid"], ifname)).encode()).hexdigest()
            if kind == "ipoib":
                entry["mac"] = "00:00:10:49:fe:80:00:00:00:00:00:00:" + ":".join(
                    digest[i:i + 2] for i in range(0, 16, 2))
            else:
                entry["mac"] = "0a:" + ":".join(digest[i:i + 2] for i in range(0, 10, 2))
            if kind == "host-device":
                entry["device-info"] = {"host-device": plugin.get("device")}
            entries.append(entry)
        patched = self.sim.merge_patch(pod, {"metadata": {"annotations": {STATUS: json.dumps(entries)}}}, MANAGER)
        return patched, None

    def _refuse(self, pod, message):
        self.sim.event(pod, "FailedCreatePodSandBox", "Failed to create pod sandbox: rpc error: code = Unknown desc "
                       "= failed to setup network for sandbox: plugin type=\"multus\" name=\"multus-cni-network\" "
                       "failed (add): %s" % message, "Warning", "kubelet")
        return message

    # ------------------------------------------------------------ traffic

    def _attachments(self, pod):
        """[(address, network, link kind)] of a pod's secondary interfaces."""
        out = []
        for entry in self._status_entries(pod):
            if entry.get("default"):
                continue
            ns, _sep, name = entry.get("name", "").rpartition("/")
            nad = self.sim.get(NAD_API, "NetworkAttachmentDefinition", ns, name) \
                if self.sim.k(NAD_API, "NetworkAttachmentDefinition") else None
            if nad is None:
                continue
            try:
                plugin = self._plugin(json.loads(nad["spec"]["config"]))
                net = ipaddress.ip_network(plugin["ipam"]["range"], strict=False)
            except (KeyError, ValueError, TypeError):
                continue
            link = "infiniband" if plugin.get("type") == "ipoib" else "ether"
            for ip in entry.get("ips") or []:
                out.append((ipaddress.ip_address(ip.split("/")[0]), net, link))
        return out

    def command_result(self, pod, node_name, command):
        """(ok, output) of a `ping` in a pod, or None for other commands."""
        words = command.split()
        if not words or words[0].rsplit("/", 1)[-1] != "ping":
            return None
        target = words[-1]
        try:
            target_ip = ipaddress.ip_address(target)
        except ValueError:
            return False, "ping: bad address '%s'" % target
        mine = self._attachments(pod)
        for other in self.sim.list("v1", "Pod"):
            if other["metadata"]["uid"] == pod["metadata"]["uid"] or other["metadata"].get("deletionTimestamp"):
                continue
            if (other.get("status") or {}).get("phase") != "Running":
                continue
            for address, net, link in self._attachments(other):
                if address != target_ip:
                    continue
                if any(target_ip in my_net and my_link == link for _a, my_net, my_link in mine):
                    return True, ("PING %s (%s): 56 data bytes\n--- %s ping statistics ---\n3 packets transmitted, "
                                  "3 packets received, 0%% packet loss" % (target, target, target))
        return False, ("PING %s (%s): 56 data bytes\n--- %s ping statistics ---\n3 packets transmitted, 0 packets "
                       "received, 100%% packet loss" % (target, target, target))
