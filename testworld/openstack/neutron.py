"""Neutron (network v2.0): networks, subnets, ports, floating IPs, security
groups, with Neutron's filters, paging, field selection, admin-only attributes
and error shape."""

import ipaddress
import re
import urllib.parse

from .httpserver import Service
from .util import ApiError, empty, iso_z, json_response

ADMIN_ONLY_NETWORK = ("provider:network_type", "provider:physical_network", "provider:segmentation_id", "segments")
ADMIN_ONLY_PORT = ("binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details")
VNIC_TYPES = ("normal", "direct", "direct-physical", "macvtap", "baremetal", "virtio-forwarder",
              "smart-nic", "remote-managed", "vdpa", "accelerator-direct", "accelerator-direct-physical")

# Attributes a POST/PUT body may carry (Neutron answers 400 "Unrecognized
# attribute(s)" for any other); read-only ones such as id or status are refused too.
NETWORK_ATTRS = {"name", "description", "admin_state_up", "shared", "mtu", "port_security_enabled", "tenant_id",
                 "project_id", "router:external", "is_default", "availability_zone_hints", "dns_domain",
                 "qos_policy_id", "tags", "segments", "provider:network_type", "provider:physical_network",
                 "provider:segmentation_id"}
SUBNET_ATTRS = {"name", "description", "network_id", "cidr", "ip_version", "gateway_ip", "allocation_pools",
                "enable_dhcp", "dns_nameservers", "host_routes", "ipv6_ra_mode", "ipv6_address_mode",
                "subnetpool_id", "prefixlen", "segment_id", "service_types", "tenant_id", "project_id",
                "use_default_subnetpool", "dns_publish_fixed_ip", "tags"}
PORT_ATTRS = {"name", "description", "network_id", "admin_state_up", "mac_address", "fixed_ips", "device_id",
              "device_owner", "tenant_id", "project_id", "security_groups", "port_security_enabled",
              "allowed_address_pairs", "extra_dhcp_opts", "binding:vnic_type", "binding:host_id",
              "binding:profile", "dns_name", "dns_domain", "qos_policy_id", "propagate_uplink_status", "tags",
              "numa_affinity_policy", "hints"}
# network_id and tenant_id are set once, at create
PORT_UPDATE_ATTRS = PORT_ATTRS - {"network_id", "tenant_id", "project_id"}
NETWORK_UPDATE_ATTRS = NETWORK_ATTRS - {"tenant_id", "project_id"}
MAC_RE = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")
DEFAULT_QUOTA = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
                 "security_group": 10, "security_group_rule": 100, "subnetpool": -1, "rbac_policy": 10,
                 "trunk": -1}

_NEUTRON_TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden", 404: "HTTPNotFound",
                  405: "HTTPMethodNotAllowed", 409: "HTTPConflict", 500: "HTTPInternalServerError",
                  503: "HTTPServiceUnavailable"}


class Subnet:
    def __init__(self, d):
        self.d = d
        self.net = ipaddress.ip_network(d["cidr"], strict=False)
        pool = d["allocation_pools"][0]
        self.start = int(ipaddress.ip_address(pool["start"]))
        self.end = int(ipaddress.ip_address(pool["end"]))
        self._next = self.start
        self.used = set()
        self._released = []

    def allocate(self, wanted=None):
        if wanted is not None:
            n = int(ipaddress.ip_address(wanted))
            if n in self.used:
                return None
            self.used.add(n)
            return wanted
        while self._next <= self.end:
            n = self._next
            self._next += 1
            if n not in self.used:
                self.used.add(n)
                return str(ipaddress.ip_address(n))
        while self._released:
            n = self._released.pop(0)
            if n not in self.used:
                self.used.add(n)
                return str(ipaddress.ip_address(n))
        return None

    def release(self, ip):
        n = int(ipaddress.ip_address(ip))
        if n in self.used:
            self.used.discard(n)
            self._released.append(n)


class Port:
    __slots__ = ("id", "name", "network_id", "project_id", "mac", "fixed_ips", "device_id", "device_owner",
                 "status", "vnic_type", "profile", "host_id", "vif_type", "vif_details", "admin_state_up",
                 "port_security_enabled", "security_groups", "description", "tags", "created", "updated",
                 "revision", "dns_name", "allowed_address_pairs", "nova_owned", "bm_nic")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


class Neutron(Service):
    name = "network"
    prefix = "/network"
    format_suffix = ".json"

    def __init__(self, world):
        super().__init__(world)
        self.networks = {}
        self.subnets = {}
        self.ports = {}
        self.floatingips = {}
        self.security_groups = {}
        self.routers = {}
        self._mac_counter = 0
        self.macs = set()
        self._load()

    # -- scenario ---------------------------------------------------------------
    def _load(self):
        world = self.world
        ids = world.ids
        project_id = world.keystone.default_project()["id"]
        now = world.now()
        for pid in world.keystone.projects:
            sg = ids.uuid()
            self.security_groups[sg] = {
                "id": sg, "name": "default", "description": "Default security group", "project_id": pid,
                "tenant_id": pid, "stateful": True, "shared": False, "tags": [], "revision_number": 1,
                "created_at": iso_z(now), "updated_at": iso_z(now), "security_group_rules": [],
            }
        for spec in self.world.scenario.get("networks") or []:
            self.create_network_from_spec(spec, project_id, now)

    def default_sg(self, project_id):
        for sg in self.security_groups.values():
            if sg["project_id"] == project_id and sg["name"] == "default":
                return sg
        return None

    def create_network_from_spec(self, spec, project_id, now):
        ids = self.world.ids
        nid = spec.get("id") or ids.uuid()
        provider = spec.get("provider") or {}
        net = {
            "id": nid, "name": spec["name"], "tenant_id": project_id, "project_id": project_id,
            "admin_state_up": True, "mtu": int(spec.get("mtu", 1500)), "status": "ACTIVE", "subnets": [],
            "shared": bool(spec.get("shared", spec.get("external", False))),
            "availability_zone_hints": [], "availability_zones": ["nova"],
            "ipv4_address_scope": None, "ipv6_address_scope": None,
            "router:external": bool(spec.get("external", False)),
            "description": spec.get("description", ""), "port_security_enabled": bool(spec.get("port_security_enabled", True)),
            "qos_policy_id": None, "l2_adjacency": True, "dns_domain": "", "tags": list(spec.get("tags") or []),
            "created_at": iso_z(now), "updated_at": iso_z(now), "revision_number": 1,
        }
        if spec.get("external"):
            net["is_default"] = bool(spec.get("is_default", True))
        if spec.get("segments"):
            net["segments"] = [{"provider:network_type": s.get("network_type", "vlan"),
                                "provider:physical_network": s.get("physical_network"),
                                "provider:segmentation_id": s.get("segmentation_id")} for s in spec["segments"]]
        else:
            net["provider:network_type"] = provider.get("network_type", "geneve")
            net["provider:physical_network"] = provider.get("physical_network")
            net["provider:segmentation_id"] = provider.get("segmentation_id")
        self.networks[nid] = net
        for sspec in spec.get("subnets") or []:
            self._add_subnet(net, sspec, project_id, now)
        return net

    def _add_subnet(self, net, sspec, project_id, now):
        sid = sspec.get("id") or self.world.ids.uuid()
        cidr = ipaddress.ip_network(sspec["cidr"], strict=False)
        hosts_first = cidr.network_address + 1
        gateway = sspec.get("gateway_ip", str(hosts_first))
        pools = sspec.get("allocation_pools") or [{
            "start": str(cidr.network_address + (2 if gateway == str(hosts_first) else 1)),
            "end": str(cidr.broadcast_address - 1)}]
        d = {
            "id": sid, "name": sspec.get("name", ""), "network_id": net["id"], "tenant_id": project_id,
            "project_id": project_id, "ip_version": cidr.version, "cidr": str(cidr), "gateway_ip": gateway,
            "allocation_pools": pools, "enable_dhcp": bool(sspec.get("enable_dhcp", True)),
            "dns_nameservers": list(sspec.get("dns_nameservers") or []), "host_routes": [],
            "ipv6_ra_mode": sspec.get("ipv6_ra_mode") if cidr.version == 6 else None,
            "ipv6_address_mode": sspec.get("ipv6_address_mode") if cidr.version == 6 else None,
            "subnetpool_id": None, "segment_id": None,
            "description": "", "service_types": [], "tags": [], "dns_publish_fixed_ip": False,
            "created_at": iso_z(now), "updated_at": iso_z(now), "revision_number": 0,
        }
        self.subnets[sid] = Subnet(d)
        net["subnets"].append(sid)
        return d

    # -- request validation (Neutron's API layer, before any change) -------------------
    @staticmethod
    def check_attrs(body, allowed, resource):
        if not isinstance(body, dict):
            raise ApiError(400, "Resource body required", kind="HTTPBadRequest")
        unknown = sorted(k for k in body if k not in allowed)
        if unknown:
            raise ApiError(400, "Unrecognized attribute(s) '%s'" % ", ".join(unknown), kind="HTTPBadRequest")

    @staticmethod
    def check_mac(mac):
        if mac is not None and (not isinstance(mac, str) or not MAC_RE.match(mac)):
            raise ApiError(400, "Invalid input for mac_address. Reason: '%s' is not a valid MAC address." % mac,
                           kind="InvalidInput")
        if mac is not None:
            first = int(mac[:2], 16)
            if mac.replace("-", ":").lower() in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff") or first & 1:
                raise ApiError(400, "Invalid input for mac_address. Reason: '%s' is not a valid unicast MAC "
                                    "address." % mac, kind="InvalidInput")

    def check_fixed_ips(self, network, fixed_ips):
        """Neutron's checks of a port's fixed_ips against the network's subnets."""
        if fixed_ips is None:
            return
        if not isinstance(fixed_ips, list):
            raise ApiError(400, "Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '%s'."
                           % (fixed_ips,), kind="InvalidInput")
        for fip in fixed_ips:
            if not isinstance(fip, dict) or set(fip) - {"ip_address", "subnet_id"}:
                raise ApiError(400, "Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: "
                                    "'%s'." % (fip,), kind="InvalidInput")
            ip = fip.get("ip_address")
            if ip is not None:
                try:
                    addr = ipaddress.ip_address(ip)
                except ValueError:
                    raise ApiError(400, "Invalid input for ip_address. Reason: '%s' is not a valid IP address."
                                   % ip, kind="InvalidInput")
            sid = fip.get("subnet_id")
            if sid is not None:
                sub = self.subnets.get(sid)
                if sub is None:
                    raise ApiError(404, "Subnet %s could not be found." % sid, kind="SubnetNotFound")
                if sub.d["network_id"] != network["id"]:
                    raise ApiError(400, "Failed to create port on network %s, because fixed_ips included invalid "
                                        "subnet %s." % (network["id"], sid), kind="InvalidInput")
                if ip is not None and not self._valid_in(sub, addr):
                    raise ApiError(400, "IP address %s is not a valid IP for the specified subnet." % ip,
                                   kind="InvalidIpForSubnet")
            elif ip is not None:
                if not any(self._valid_in(self.subnets[s], addr) for s in network["subnets"]):
                    raise ApiError(400, "IP address %s is not a valid IP for any of the subnets on the specified "
                                        "network." % ip, kind="InvalidIpForNetwork")

    @staticmethod
    def _valid_in(sub, addr):
        net = sub.net
        if addr.version != net.version or addr not in net:
            return False
        # the network and (IPv4) broadcast addresses are never a port's
        return addr != net.network_address and not (net.version == 4 and net.prefixlen < 31
                                                    and addr == net.broadcast_address)

    # -- lookups used by other services --------------------------------------------
    def network_physnet(self, net):
        if net.get("segments"):
            return net["segments"][0].get("provider:physical_network")
        return net.get("provider:physical_network")

    def find_network(self, ref):
        """By id, then by unique name; None when absent. Raises on ambiguous names."""
        if ref in self.networks:
            return self.networks[ref]
        found = [n for n in self.networks.values() if n["name"] == ref]
        if len(found) > 1:
            raise ApiError(409, "Multiple networks named %s" % ref, kind="NetworkAmbiguous")
        return found[0] if found else None

    def external_network(self):
        for n in self.networks.values():
            if n.get("router:external"):
                return n
        return None

    def next_mac(self):
        while True:
            self._mac_counter += 1
            c = self._mac_counter
            mac = "fa:16:3e:%02x:%02x:%02x" % ((c >> 16) & 0xFF, (c >> 8) & 0xFF, c & 0xFF)
            if mac not in self.macs:
                return mac

    def create_port(self, network, project_id, name="", mac=None, fixed_ips=None, device_id="", device_owner="",
                    vnic_type="normal", profile=None, host_id="", nova_owned=False, port_security_enabled=None,
                    security_groups=None, description="", bm_nic=None):
        """Create a port; raises ApiError in Neutron's terms (caller may translate)."""
        now = self.world.now()
        if mac is not None and mac in self.macs:
            raise ApiError(409, "Unable to complete operation for network %s. The mac address %s is in use."
                           % (network["id"], mac), kind="MacAddressInUse")
        allocated = []
        try:
            if fixed_ips:
                for fip in fixed_ips:
                    sub = self.subnets.get(fip.get("subnet_id")) if fip.get("subnet_id") else None
                    if sub is None:
                        for sid in network["subnets"]:
                            s = self.subnets[sid]
                            if fip.get("ip_address") and ipaddress.ip_address(fip["ip_address"]) in s.net:
                                sub = s
                        if sub is None and network["subnets"] and not fip.get("ip_address"):
                            sub = self.subnets[network["subnets"][0]]
                    if sub is None or sub.d["network_id"] != network["id"]:
                        raise ApiError(400, "Invalid input for operation: IP address %s is not a valid IP for "
                                            "the specified subnet." % fip.get("ip_address"), kind="InvalidInput")
                    ip = sub.allocate(fip.get("ip_address"))
                    if ip is None:
                        if fip.get("ip_address"):
                            raise ApiError(409, "IP address %s already allocated in subnet %s"
                                           % (fip["ip_address"], sub.d["id"]), kind="IpAddressAlreadyAllocated")
                        raise ApiError(409, "No more IP addresses available on network %s." % network["id"],
                                       kind="IpAddressGenerationFailure")
                    allocated.append((sub.d["id"], ip))
            else:
                for sid in network["subnets"][:1]:
                    sub = self.subnets[sid]
                    ip = sub.allocate()
                    if ip is None:
                        raise ApiError(409, "No more IP addresses available on network %s." % network["id"],
                                       kind="IpAddressGenerationFailure")
                    allocated.append((sid, ip))
        except ApiError:
            for sid, ip in allocated:
                self.subnets[sid].release(ip)
            raise
        if mac is None:
            mac = self.next_mac()
        self.macs.add(mac)
        pse = network["port_security_enabled"] if port_security_enabled is None else port_security_enabled
        if security_groups is None:
            sg = self.default_sg(project_id)
            security_groups = [sg["id"]] if (sg and pse) else []
        port = Port(
            id=self.world.ids.uuid(), name=name or "", network_id=network["id"], project_id=project_id, mac=mac,
            fixed_ips=allocated, device_id=device_id or "", device_owner=device_owner or "", status="DOWN",
            vnic_type=vnic_type or "normal", profile=dict(profile or {}), host_id=host_id or "",
            vif_type="unbound", vif_details={}, admin_state_up=True, port_security_enabled=pse,
            security_groups=security_groups, description=description or "", tags=[], created=now, updated=now,
            revision=1, dns_name="", allowed_address_pairs=[], nova_owned=nova_owned, bm_nic=bm_nic,
        )
        self.ports[port.id] = port
        if host_id:
            self.bind(port, host_id, vnic_type, profile)
        return port

    def bind(self, port, host_id, vnic_type=None, profile=None, delay=None):
        port.host_id = host_id
        if vnic_type:
            port.vnic_type = vnic_type
        if profile is not None:
            port.profile = dict(profile)
        port.vif_type = {"baremetal": "other", "direct": "hw_veb", "direct-physical": "hostdev_physical"}.get(
            port.vnic_type, "ovs")
        port.vif_details = {} if port.vnic_type == "baremetal" else {"port_filter": True, "connectivity": "l2"}
        port.revision += 1
        port.updated = self.world.now()
        d = self.world.timing("port_bind") if delay is None else delay
        if d <= 0:
            self._activate(port.id, port.revision)
        else:
            self.world.later(d, self._activate, port.id, port.revision)

    def _activate(self, port_id, revision):
        port = self.ports.get(port_id)
        if port is not None and port.device_id and port.host_id and port.status != "ACTIVE":
            port.status = "ACTIVE"
            port.revision += 1
            port.updated = self.world.now()

    def unbind(self, port):
        port.device_id = ""
        port.device_owner = ""
        port.host_id = ""
        port.profile = {}
        port.vif_type = "unbound"
        port.vif_details = {}
        port.status = "DOWN"
        port.bm_nic = None
        port.revision += 1
        port.updated = self.world.now()

    def delete_port(self, port_id, notify_nova=True):
        port = self.ports.pop(port_id, None)
        if port is None:
            return None
        for sid, ip in port.fixed_ips:
            sub = self.subnets.get(sid)
            if sub:
                sub.release(ip)
        self.macs.discard(port.mac)
        for fip in self.floatingips.values():
            if fip["port_id"] == port_id:
                fip["port_id"] = None
                fip["fixed_ip_address"] = None
                fip["status"] = "DOWN"
        if notify_nova and port.device_id:
            self.world.nova.port_deleted(port)
        return port

    def ports_of(self, device_id):
        return [p for p in self.ports.values() if p.device_id == device_id]

    def create_floatingip(self, project_id, port=None):
        ext = self.external_network()
        if ext is None or not ext["subnets"]:
            return None
        sub = self.subnets[ext["subnets"][0]]
        ip = sub.allocate()
        if ip is None:
            return None
        now = self.world.now()
        fid = self.world.ids.uuid()
        fip = {
            "id": fid, "floating_ip_address": ip, "floating_network_id": ext["id"], "router_id": None,
            "port_id": port.id if port else None,
            "fixed_ip_address": port.fixed_ips[0][1] if (port and port.fixed_ips) else None,
            "status": "ACTIVE" if port else "DOWN", "project_id": project_id, "tenant_id": project_id,
            "description": "", "tags": [], "dns_domain": "", "dns_name": "", "qos_policy_id": None,
            "port_details": None, "port_forwardings": [], "created_at": iso_z(now), "updated_at": iso_z(now),
            "revision_number": 0,
        }
        self.floatingips[fid] = fip
        return fip

    def delete_floatingip(self, fid):
        fip = self.floatingips.pop(fid, None)
        if fip:
            ext = self.networks.get(fip["floating_network_id"])
            if ext and ext["subnets"]:
                self.subnets[ext["subnets"][0]].release(fip["floating_ip_address"])
        return fip

    def floatingips_of_port(self, port_id):
        return [f for f in self.floatingips.values() if f["port_id"] == port_id]

    # -- views ---------------------------------------------------------------------------
    def port_view(self, p, admin=True):
        d = {
            "id": p.id, "name": p.name, "network_id": p.network_id, "tenant_id": p.project_id,
            "project_id": p.project_id, "mac_address": p.mac, "admin_state_up": p.admin_state_up,
            "status": p.status, "device_id": p.device_id, "device_owner": p.device_owner,
            "fixed_ips": [{"subnet_id": s, "ip_address": ip} for s, ip in p.fixed_ips],
            "allowed_address_pairs": list(p.allowed_address_pairs), "extra_dhcp_opts": [],
            "security_groups": list(p.security_groups), "description": p.description,
            "binding:vnic_type": p.vnic_type, "port_security_enabled": p.port_security_enabled,
            "dns_name": p.dns_name, "dns_assignment": [
                {"ip_address": ip, "hostname": "host-%s" % ip.replace(".", "-"), "fqdn": "host-%s.openstacklocal."
                 % ip.replace(".", "-")} for dummy, ip in p.fixed_ips],
            "qos_policy_id": None, "qos_network_policy_id": None, "propagate_uplink_status": False,
            "resource_request": None, "ip_allocation": "immediate", "tags": list(p.tags),
            "created_at": iso_z(p.created), "updated_at": iso_z(p.updated), "revision_number": p.revision,
        }
        if admin:
            d["binding:host_id"] = p.host_id
            d["binding:profile"] = dict(p.profile)
            d["binding:vif_type"] = p.vif_type
            d["binding:vif_details"] = dict(p.vif_details)
        return d

    def network_view(self, n, admin=True):
        d = dict(n)
        if not admin:
            for k in ADMIN_ONLY_NETWORK:
                d.pop(k, None)
        return d

    # -- HTTP ----------------------------------------------------------------------------
    def error_body(self, req, err):
        return {"NeutronError": {"type": err.kind or _NEUTRON_TYPES.get(err.status, "HTTPError"),
                                 "message": err.message, "detail": ""}}

    def not_found(self, req):
        return ApiError(404, "The resource could not be found.", kind="HTTPNotFound")

    def routes(self, r):
        r.add(self, "GET", "/network", self.versions, auth=False, locked=False)
        r.add(self, "GET", "/network/v2.0", self.root)
        r.add(self, "GET", "/network/v2.0/extensions", self.extensions)
        r.add(self, "GET", "/network/v2.0/networks", self.list_networks)
        r.add(self, "POST", "/network/v2.0/networks", self.post_network)
        r.add(self, "GET", "/network/v2.0/networks/{id}", self.show_network)
        r.add(self, "PUT", "/network/v2.0/networks/{id}", self.put_network)
        r.add(self, "DELETE", "/network/v2.0/networks/{id}", self.delete_network)
        r.add(self, "GET", "/network/v2.0/subnets", self.list_subnets)
        r.add(self, "POST", "/network/v2.0/subnets", self.post_subnet)
        r.add(self, "GET", "/network/v2.0/subnets/{id}", self.show_subnet)
        r.add(self, "DELETE", "/network/v2.0/subnets/{id}", self.delete_subnet)
        r.add(self, "GET", "/network/v2.0/ports", self.list_ports)
        r.add(self, "POST", "/network/v2.0/ports", self.post_port)
        r.add(self, "GET", "/network/v2.0/ports/{id}", self.show_port)
        r.add(self, "PUT", "/network/v2.0/ports/{id}", self.put_port)
        r.add(self, "DELETE", "/network/v2.0/ports/{id}", self.http_delete_port)
        r.add(self, "GET", "/network/v2.0/floatingips", self.list_fips)
        r.add(self, "POST", "/network/v2.0/floatingips", self.post_fip)
        r.add(self, "GET", "/network/v2.0/floatingips/{id}", self.show_fip)
        r.add(self, "DELETE", "/network/v2.0/floatingips/{id}", self.http_delete_fip)
        r.add(self, "GET", "/network/v2.0/security-groups", self.list_sgs)
        r.add(self, "GET", "/network/v2.0/security-groups/{id}", self.show_sg)
        r.add(self, "GET", "/network/v2.0/routers", self.list_routers)
        r.add(self, "GET", "/network/v2.0/availability_zones", self.list_azs)
        # Nova asks these before booting with a network (port quota and usage)
        r.add(self, "GET", "/network/v2.0/quotas/{project_id}", self.show_quota)
        r.add(self, "GET", "/network/v2.0/quotas/{project_id}/details", self.show_quota_details)

    def versions(self, req):
        return json_response({"versions": [{"status": "CURRENT", "id": "v2.0", "links": [
            {"href": req.host_url + "/network/v2.0/", "rel": "self"}]}]})

    def root(self, req):
        res = []
        for name, coll in (("subnet", "subnets"), ("network", "networks"), ("port", "ports"),
                           ("floatingip", "floatingips"), ("security_group", "security-groups"),
                           ("router", "routers")):
            res.append({"links": [{"href": "%s/network/v2.0/%s" % (req.host_url, coll), "rel": "self"}],
                        "name": name, "collection": coll})
        return json_response({"resources": res})

    def extensions(self, req):
        exts = [
            ("binding", "Port Binding"), ("binding-extended", "Port Bindings Extended"),
            ("provider", "Provider Network"), ("multi-provider", "Multi Provider Network"),
            ("segment", "Segment"), ("port-security", "Port Security"), ("external-net", "Neutron external network"),
            ("router", "Neutron L3 Router"), ("standard-attr-tag", "Tag support for resources with standard attribute"),
            ("standard-attr-revisions", "Resource revision numbers"), ("standard-attr-timestamp", "Resource timestamps"),
            ("net-mtu", "Network MTU"), ("security-group", "security-group"), ("quotas", "Quota management support"),
            ("quota_details", "Quota details management support"),
            ("filter-validation", "Filter parameters validation"), ("fip-port-details", "Floating IP Port Details"),
            ("availability_zone", "Availability Zone"), ("dns-integration", "DNS Integration"),
        ]
        return json_response({"extensions": [{"alias": a, "name": n, "description": n, "updated": "2020-01-01T10:00:00-00:00",
                                              "links": []} for a, n in exts]})

    # generic list machinery -------------------------------------------------------------
    _CONTROL = ("fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir", "tags", "tags-any",
                "not-tags", "not-tags-any")

    def _list(self, req, items, collection, view_keys):
        q = req.query
        filters = {k: v for k, v in q.items() if k not in self._CONTROL}
        for key in filters:
            if key not in view_keys and key != "fixed_ips":
                raise ApiError(400, "[%s] is invalid attribute for filtering" % key, kind="HTTPBadRequest")
        out = []
        for d in items:
            if self._matches(d, filters, q):
                out.append(d)
        sort_keys = q.get("sort_key") or []
        if sort_keys:
            dirs = q.get("sort_dir") or []
            for i in reversed(range(len(sort_keys))):
                k = sort_keys[i]
                reverse = (dirs[i] if i < len(dirs) else "asc") == "desc"
                out.sort(key=lambda d: (d.get(k) is None, str(d.get(k))), reverse=reverse)
        links = []
        limit = req.q("limit")
        marker = req.q("marker")
        if marker:
            idx = next((i for i, d in enumerate(out) if d["id"] == marker), None)
            if idx is None:
                raise ApiError(404, "%s %s could not be found." % (collection.rstrip("s").capitalize(), marker))
            out = out[idx + 1:]
        if limit:
            try:
                lim = int(limit)
            except ValueError:
                raise ApiError(400, "Bad limit request: Limit must be an integer 0 or greater and not '%s'." % limit)
            if lim > 0 and len(out) > lim:
                out = out[:lim]
                params = [(k, v) for k, vs in q.items() if k not in ("marker",) for v in vs]
                params.append(("marker", out[-1]["id"]))
                links.append({"rel": "next", "href": "%s%s?%s" % (req.host_url, req.path, urllib.parse.urlencode(params))})
            if marker and out:
                params = [(k, v) for k, vs in q.items() if k not in ("marker",) for v in vs]
                params += [("marker", out[0]["id"]), ("page_reverse", "True")]
                links.append({"rel": "previous", "href": "%s%s?%s" % (req.host_url, req.path, urllib.parse.urlencode(params))})
        fields = q.get("fields")
        if fields:
            out = [{k: d[k] for k in fields if k in d} for d in out]
        body = {collection: out}
        if links:
            body[collection + "_links"] = links
        return json_response(body)

    @staticmethod
    def _norm(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return ""
        return str(value)

    def _matches(self, d, filters, q):
        for key, wanted in filters.items():
            if key == "fixed_ips":
                ok = True
                for spec in wanted:
                    k, dummy, v = spec.partition("=")
                    if not any(fi.get(k) == v for fi in d.get("fixed_ips", [])):
                        ok = False
                if not ok:
                    return False
                continue
            val = d.get(key)
            if isinstance(val, list):
                if not any(self._norm(x) in wanted for x in val):
                    return False
            elif isinstance(val, bool):
                if self._norm(val) not in [w.lower() for w in wanted]:
                    return False
            elif self._norm(val) not in wanted:
                return False
        tags = d.get("tags", [])
        for t in q.get("tags", []):
            if not set(t.split(",")) <= set(tags):
                return False
        for t in q.get("tags-any", []):
            if not set(t.split(",")) & set(tags):
                return False
        for t in q.get("not-tags", []):
            if set(t.split(",")) <= set(tags):
                return False
        for t in q.get("not-tags-any", []):
            if set(t.split(",")) & set(tags):
                return False
        return True

    def _visible(self, req, project_id, shared=False):
        return req.token.is_admin or shared or project_id == req.token.project_id

    # networks ------------------------------------------------------------------------
    def list_networks(self, req):
        admin = req.token.is_admin
        items = [self.network_view(n, admin) for n in self.networks.values()
                 if self._visible(req, n["project_id"], n["shared"])]
        keys = set(items[0]) if items else set()
        keys |= {"id", "name", "status", "shared", "router:external", "project_id", "tenant_id", "mtu",
                 "admin_state_up", "description", "is_default", "availability_zone_hints"}
        if admin:
            keys |= {"provider:network_type", "provider:physical_network", "provider:segmentation_id"}
        return self._list(req, items, "networks", keys)

    def _get_network(self, req, nid):
        n = self.networks.get(nid)
        if n is None or not self._visible(req, n["project_id"], n["shared"]):
            raise ApiError(404, "Network %s could not be found." % nid, kind="NetworkNotFound")
        return n

    def show_network(self, req):
        n = self._get_network(req, req.params["id"])
        d = self.network_view(n, req.token.is_admin)
        fields = req.qlist("fields")
        if fields:
            d = {k: d[k] for k in fields if k in d}
        return json_response({"network": d})

    def post_network(self, req):
        body = req.json().get("network")
        self.check_attrs(body, NETWORK_ATTRS, "network")
        if any(k.startswith("provider:") for k in body) and not req.token.is_admin:
            raise ApiError(403, "(rule:create_network and (rule:create_network:provider:network_type and "
                                "rule:create_network:provider:physical_network)) is disallowed by policy",
                           kind="PolicyNotAuthorized")
        spec = {"name": body.get("name", ""), "mtu": body.get("mtu", 1500),
                "shared": body.get("shared", False), "external": body.get("router:external", False),
                "port_security_enabled": body.get("port_security_enabled", True),
                "description": body.get("description", ""),
                "provider": {"network_type": body.get("provider:network_type", "geneve"),
                             "physical_network": body.get("provider:physical_network"),
                             "segmentation_id": body.get("provider:segmentation_id")}}
        if body.get("segments"):
            spec["segments"] = [{"network_type": s.get("provider:network_type"),
                                 "physical_network": s.get("provider:physical_network"),
                                 "segmentation_id": s.get("provider:segmentation_id")} for s in body["segments"]]
        net = self.create_network_from_spec(spec, req.token.project_id, self.world.now())
        return json_response({"network": self.network_view(net, req.token.is_admin)}, status=201)

    def put_network(self, req):
        n = self._get_network(req, req.params["id"])
        body = req.json().get("network")
        self.check_attrs(body, NETWORK_UPDATE_ATTRS, "network")
        for k in ("name", "description", "mtu", "admin_state_up", "port_security_enabled", "shared"):
            if k in body:
                n[k] = body[k]
        n["revision_number"] += 1
        n["updated_at"] = iso_z(self.world.now())
        return json_response({"network": self.network_view(n, req.token.is_admin)})

    def delete_network(self, req):
        n = self._get_network(req, req.params["id"])
        in_use = [p for p in self.ports.values() if p.network_id == n["id"] and p.device_owner != "network:dhcp"]
        if in_use:
            raise ApiError(409, "Unable to complete operation on network %s. There are one or more ports still "
                                "in use on the network." % n["id"], kind="NetworkInUse")
        for sid in n["subnets"]:
            self.subnets.pop(sid, None)
        del self.networks[n["id"]]
        return empty(204)

    # subnets ------------------------------------------------------------------------------
    def list_subnets(self, req):
        items = []
        for s in self.subnets.values():
            net = self.networks.get(s.d["network_id"])
            if net and self._visible(req, s.d["project_id"], net["shared"]):
                items.append(dict(s.d))
        keys = set(items[0]) if items else {"id", "name", "network_id", "cidr"}
        return self._list(req, items, "subnets", keys)

    def show_subnet(self, req):
        s = self.subnets.get(req.params["id"])
        if s is None:
            raise ApiError(404, "Subnet %s could not be found." % req.params["id"], kind="SubnetNotFound")
        return json_response({"subnet": dict(s.d)})

    def post_subnet(self, req):
        body = req.json().get("subnet")
        self.check_attrs(body, SUBNET_ATTRS, "subnet")
        if not body.get("network_id"):
            raise ApiError(400, "Failed to parse request. Required attribute 'network_id' not specified",
                           kind="HTTPBadRequest")
        net = self._get_network(req, body.get("network_id"))
        if not body.get("cidr"):
            raise ApiError(400, "Bad subnets request: a cidr must be specified.", kind="BadRequest")
        try:
            cidr = ipaddress.ip_network(body["cidr"], strict=False)
        except (TypeError, ValueError):
            raise ApiError(400, "Invalid input for cidr. Reason: '%s' is not a valid IP subnet." % body["cidr"],
                           kind="InvalidInput")
        if "ip_version" in body and body["ip_version"] != cidr.version:
            raise ApiError(400, "Invalid input for operation: Cidr %s does not match ip_version %s."
                           % (body["cidr"], body["ip_version"]), kind="InvalidInput")
        for sid in net["subnets"]:
            if self.subnets[sid].net.overlaps(cidr):
                raise ApiError(400, "Invalid input for operation: Requested subnet with cidr: %s for network: %s "
                                    "overlaps with another subnet." % (cidr, net["id"]), kind="InvalidInput")
        d = self._add_subnet(net, body, req.token.project_id, self.world.now())
        return json_response({"subnet": dict(d)}, status=201)

    def delete_subnet(self, req):
        s = self.subnets.get(req.params["id"])
        if s is None:
            raise ApiError(404, "Subnet %s could not be found." % req.params["id"], kind="SubnetNotFound")
        if any(sid == s.d["id"] for p in self.ports.values() for sid, dummy in p.fixed_ips):
            raise ApiError(409, "Unable to complete operation on subnet %s: One or more ports have an IP "
                                "allocation from this subnet." % s.d["id"], kind="SubnetInUse")
        del self.subnets[s.d["id"]]
        net = self.networks.get(s.d["network_id"])
        if net:
            net["subnets"].remove(s.d["id"])
        return empty(204)

    # ports ----------------------------------------------------------------------------------
    _PORT_KEYS = {"id", "name", "network_id", "tenant_id", "project_id", "mac_address", "admin_state_up", "status",
                  "device_id", "device_owner", "security_groups", "description", "binding:vnic_type",
                  "binding:host_id", "port_security_enabled", "dns_name", "ip_allocation", "revision_number"}

    def list_ports(self, req):
        admin = req.token.is_admin
        q = req.query
        candidates = self.ports.values()
        # cheap pre-filters before building the full views
        for key, attr in (("device_id", "device_id"), ("network_id", "network_id"), ("id", "id")):
            if key in q:
                wanted = set(q[key])
                candidates = [p for p in candidates if getattr(p, attr) in wanted]
        items = [self.port_view(p, admin) for p in candidates if admin or p.project_id == req.token.project_id]
        return self._list(req, items, "ports", self._PORT_KEYS if admin else self._PORT_KEYS - {"binding:host_id"})

    def _get_port(self, req, pid):
        p = self.ports.get(pid)
        if p is None or not (req.token.is_admin or p.project_id == req.token.project_id):
            raise ApiError(404, "Port %s could not be found." % pid, kind="PortNotFound")
        return p

    def show_port(self, req):
        p = self._get_port(req, req.params["id"])
        d = self.port_view(p, req.token.is_admin)
        fields = req.qlist("fields")
        if fields:
            d = {k: d[k] for k in fields if k in d}
        return json_response({"port": d})

    def post_port(self, req):
        body = req.json().get("port")
        self.check_attrs(body, PORT_ATTRS, "port")
        if not body.get("network_id"):
            raise ApiError(400, "Failed to parse request. Required attribute 'network_id' not specified",
                           kind="HTTPBadRequest")
        net = self._get_network(req, body["network_id"])
        vnic = body.get("binding:vnic_type", "normal")
        if vnic not in VNIC_TYPES:
            raise ApiError(400, "Invalid input for binding:vnic_type. Reason: '%s' is not in %s."
                           % (vnic, list(VNIC_TYPES)), kind="InvalidInput")
        self.check_mac(body.get("mac_address"))
        self.check_fixed_ips(net, body.get("fixed_ips"))
        admin_attrs = [k for k in ("binding:host_id", "binding:profile") if k in body]
        if admin_attrs and not req.token.is_admin:
            raise ApiError(403, "(rule:create_port and rule:create_port:%s) is disallowed by policy" % admin_attrs[0],
                           kind="PolicyNotAuthorized")
        port = self.create_port(
            net, req.token.project_id, name=body.get("name", ""), mac=body.get("mac_address"),
            fixed_ips=body.get("fixed_ips"), device_id=body.get("device_id", ""),
            device_owner=body.get("device_owner", ""), vnic_type=vnic, profile=body.get("binding:profile"),
            host_id=body.get("binding:host_id", ""), port_security_enabled=body.get("port_security_enabled"),
            security_groups=body.get("security_groups"), description=body.get("description", ""),
        )
        if body.get("tags"):
            port.tags = list(body["tags"])
        return json_response({"port": self.port_view(port, req.token.is_admin)}, status=201)

    def put_port(self, req):
        p = self._get_port(req, req.params["id"])
        body = req.json().get("port")
        self.check_attrs(body, PORT_UPDATE_ATTRS, "port")
        self.check_mac(body.get("mac_address"))
        if "binding:vnic_type" in body and body["binding:vnic_type"] not in VNIC_TYPES:
            raise ApiError(400, "Invalid input for binding:vnic_type. Reason: '%s' is not in %s."
                           % (body["binding:vnic_type"], list(VNIC_TYPES)), kind="InvalidInput")
        if any(k in body for k in ("binding:host_id", "binding:profile")) and not req.token.is_admin:
            raise ApiError(403, "(rule:update_port and rule:update_port:binding:host_id) is disallowed by policy",
                           kind="PolicyNotAuthorized")
        if "name" in body:
            p.name = body["name"] or ""
        if "description" in body:
            p.description = body["description"] or ""
        if "admin_state_up" in body:
            p.admin_state_up = bool(body["admin_state_up"])
        if "port_security_enabled" in body:
            p.port_security_enabled = bool(body["port_security_enabled"])
        if "security_groups" in body:
            p.security_groups = list(body["security_groups"] or [])
        if "allowed_address_pairs" in body:
            p.allowed_address_pairs = list(body["allowed_address_pairs"] or [])
        if "device_owner" in body:
            p.device_owner = body["device_owner"] or ""
        if "device_id" in body:
            p.device_id = body["device_id"] or ""
        if "binding:vnic_type" in body:
            if p.host_id and body["binding:vnic_type"] != p.vnic_type:
                raise ApiError(409, "Port %s is bound, vnic_type cannot be changed." % p.id, kind="PortBound")
            p.vnic_type = body["binding:vnic_type"]
        if "binding:profile" in body:
            p.profile = dict(body["binding:profile"] or {})
        if "binding:host_id" in body:
            if body["binding:host_id"]:
                self.bind(p, body["binding:host_id"])
            else:
                p.host_id = ""
                p.vif_type = "unbound"
                p.status = "DOWN"
        if "mac_address" in body and body["mac_address"] != p.mac:
            if p.host_id and p.vif_type != "unbound":
                raise ApiError(409, "Port %s is bound; mac_address cannot be changed." % p.id, kind="PortBound")
            if body["mac_address"] in self.macs:
                raise ApiError(409, "Unable to complete operation for network %s. The mac address %s is in use."
                               % (p.network_id, body["mac_address"]), kind="MacAddressInUse")
            self.macs.discard(p.mac)
            p.mac = body["mac_address"]
            self.macs.add(p.mac)
        if "tags" in body:
            p.tags = list(body["tags"] or [])
        p.revision += 1
        p.updated = self.world.now()
        return json_response({"port": self.port_view(p, req.token.is_admin)})

    def http_delete_port(self, req):
        p = self._get_port(req, req.params["id"])
        self.delete_port(p.id)
        return empty(204)

    # floating IPs / security groups / routers ------------------------------------------------
    def list_fips(self, req):
        items = [dict(f) for f in self.floatingips.values() if self._visible(req, f["project_id"])]
        keys = set(items[0]) if items else {"id", "floating_ip_address", "port_id", "fixed_ip_address",
                                            "floating_network_id", "status", "project_id", "router_id"}
        return self._list(req, items, "floatingips", keys)

    def show_fip(self, req):
        f = self.floatingips.get(req.params["id"])
        if f is None:
            raise ApiError(404, "Floating IP %s could not be found" % req.params["id"], kind="FloatingIPNotFound")
        return json_response({"floatingip": dict(f)})

    def post_fip(self, req):
        body = req.json().get("floatingip") or {}
        port = self._get_port(req, body["port_id"]) if body.get("port_id") else None
        fip = self.create_floatingip(req.token.project_id, port)
        if fip is None:
            raise ApiError(409, "No more IP addresses available on network.", kind="IpAddressGenerationFailure")
        return json_response({"floatingip": dict(fip)}, status=201)

    def http_delete_fip(self, req):
        if self.delete_floatingip(req.params["id"]) is None:
            raise ApiError(404, "Floating IP %s could not be found" % req.params["id"], kind="FloatingIPNotFound")
        return empty(204)

    def list_sgs(self, req):
        items = [dict(s) for s in self.security_groups.values() if self._visible(req, s["project_id"])]
        return self._list(req, items, "security_groups", set(items[0]) if items else {"id", "name"})

    def show_sg(self, req):
        sg = self.security_groups.get(req.params["id"])
        if sg is None:
            raise ApiError(404, "Security group %s does not exist" % req.params["id"], kind="SecurityGroupNotFound")
        return json_response({"security_group": dict(sg)})

    def list_routers(self, req):
        return self._list(req, [], "routers", {"id", "name", "project_id", "status"})

    # quotas ------------------------------------------------------------------------------------
    def _quota_project(self, req):
        pid = req.params["project_id"]
        if not req.token.is_admin and pid != req.token.project_id:
            raise ApiError(403, "Non-admin is not authorized to access quotas for another tenant",
                           kind="HTTPForbidden")
        return pid

    def _quota_used(self, pid):
        return {
            "network": sum(1 for n in self.networks.values() if n["project_id"] == pid),
            "subnet": sum(1 for s in self.subnets.values() if s.d["project_id"] == pid),
            "port": sum(1 for p in self.ports.values() if p.project_id == pid),
            "router": 0, "floatingip": sum(1 for f in self.floatingips.values() if f["project_id"] == pid),
            "security_group": sum(1 for g in self.security_groups.values() if g["project_id"] == pid),
            "security_group_rule": 0, "subnetpool": 0, "rbac_policy": 0, "trunk": 0,
        }

    def _quota_limits(self):
        limits = dict(DEFAULT_QUOTA)
        limits.update((self.world.scenario.get("neutron") or {}).get("quotas") or {})
        return limits

    def show_quota(self, req):
        self._quota_project(req)
        return json_response({"quota": self._quota_limits()})

    def show_quota_details(self, req):
        pid = self._quota_project(req)
        used = self._quota_used(pid)
        return json_response({"quota": {k: {"limit": v, "used": used.get(k, 0), "reserved": 0}
                                        for k, v in self._quota_limits().items()}})

    def list_azs(self, req):
        return json_response({"availability_zones": [{"name": "nova", "resource": "network", "state": "available"},
                                                     {"name": "nova", "resource": "router", "state": "available"}]})
