"""Bare-metal node pools behind Ironic-backed Nova flavors.

Nodes are never materialised: node ``i`` of a pool, its UUID, name and the MAC
addresses of its NICs are pure functions of (pool, i). Only allocations are
stored, so a pool of thousands of nodes costs nothing at start-up.

Each node has one boot NIC used for the server's primary network, plus the
NICs the scenario lists per physical network; those are the ones an
os-interface attach can claim.
"""

import heapq
import os
import shutil
import uuid

_NS = uuid.UUID("6d1c0f1e-7a52-4c57-9a0e-2f1c4a1d8b10")


class Pool:
    def __init__(self, index, spec):
        self.index = index
        self.flavor = spec["flavor"]
        self.name = spec.get("name") or self.flavor.replace(".", "-")
        self.count = int(spec.get("count", 0))
        # [(physical_network, nic_index)], nic 0 being the boot NIC
        self.nics = []
        for entry in spec.get("nics") or []:
            for dummy in range(int(entry.get("count", 1))):
                self.nics.append(entry["physical_network"])
        self.client_id_prefix = spec.get("ib_client_id_prefix", "ff:00:00:00:00:00:02:00:00:02:c9:00")
        self._next = 0
        self._free = []          # released node indices, reused lowest first
        self.used = {}           # node index -> server id
        self.nic_ports = {}      # (node index, nic index 1..n) -> port id

    # -- derived facts --------------------------------------------------------
    def node_uuid(self, i):
        return str(uuid.uuid5(_NS, "%s/%d" % (self.name, i)))

    def node_name(self, i):
        return "%s-%04d" % (self.name, i)

    def mac(self, i, nic):
        return "b4:96:%02x:%02x:%02x:%02x" % (self.index & 0xFF, nic & 0xFF, (i >> 8) & 0xFF, i & 0xFF)

    def physnet(self, nic):
        return self.nics[nic - 1]

    def links(self, i):
        """The node's network links as its kernel names them, with their hardware
        addresses: the boot NIC, one Ethernet link per NIC, and for an InfiniBand NIC an
        IPoIB link whose 20-byte address ends in the port GUID (GUID bytes 0-2 and 5-7
        being the Neutron MAC's, as Ironic derives the MAC from the GUID)."""
        links = {"lo": "00:00:00:00:00:00", "eno1": self.mac(i, 0)}
        ib = 0
        for nic, physnet in enumerate(self.nics, start=1):
            mac = self.mac(i, nic)
            if physnet == "ib":
                b = mac.split(":")
                guid = b[:3] + ["03", "00"] + b[3:]
                links["ibp%ds0" % (65 + ib)] = "80:00:02:08:fe:80:00:00:00:00:00:00:" + ":".join(guid)
                ib += 1
            else:
                links["ens%d" % nic] = mac
        return links

    def write_root(self, root, i):
        """Give the node a file system root holding its sys/class/net, so that node-side
        configuration can be rendered into it and matched against real link addresses."""
        base = os.path.join(root, "sys", "class", "net")
        if os.path.isdir(base):
            shutil.rmtree(base)
        for name, address in self.links(i).items():
            os.makedirs(os.path.join(base, name), exist_ok=True)
            with open(os.path.join(base, name, "address"), "w") as f:
                f.write(address + "\n")
        with open(os.path.join(base, "bonding_masters"), "w") as f:
            f.write("\n")

    def local_link(self, i, nic):
        return {"switch_id": "00:00:5e:00:53:%02x" % ((i // 48) & 0xFF),
                "port_id": "Ethernet%d/%d" % (nic + 1, i % 48 + 1),
                "switch_info": "leaf-%s-%d" % (self.name, i // 48)}

    # -- allocation ------------------------------------------------------------
    def allocate(self, server_id):
        if self._free:
            i = heapq.heappop(self._free)
        elif self._next < self.count:
            i = self._next
            self._next += 1
        else:
            return None
        self.used[i] = server_id
        return i

    def release(self, i):
        if self.used.pop(i, None) is not None:
            for nic in range(1, len(self.nics) + 1):
                self.nic_ports.pop((i, nic), None)
            heapq.heappush(self._free, i)

    def free_count(self):
        return self.count - len(self.used)

    def free_nic(self, i, physical_network):
        """First NIC of node i on the physical network that no port holds."""
        for nic, pn in enumerate(self.nics, start=1):
            if pn == physical_network and (i, nic) not in self.nic_ports:
                return nic
        return None

    def summary(self):
        return {"flavor": self.flavor, "name": self.name, "count": self.count, "used": len(self.used),
                "nics": list(self.nics), "nics_in_use": len(self.nic_ports)}


class Ironic:
    def __init__(self, world):
        self.world = world
        specs = (world.scenario.get("baremetal") or {}).get("pools") or []
        self.pools = [Pool(i, s) for i, s in enumerate(specs)]
        self.by_flavor = {p.flavor: p for p in self.pools}

    def pool_for_flavor(self, flavor):
        if flavor is None:
            return None
        return self.by_flavor.get(flavor["name"]) or self.by_flavor.get(flavor["id"])
