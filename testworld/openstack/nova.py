"""Nova (compute v2.1) with microversions: flavors, keypairs, servers
(create/list/show/delete with asynchronous state), tags, metadata, lock and
os-interface attach/detach, including Ironic-backed bare-metal servers whose
interface attaches need a free physical NIC on the network's physical network.
"""

import base64
import ipaddress
import hashlib
import os
import re
import shutil
import threading
import time
import urllib.parse

from .httpserver import Service
from .util import ApiError, empty, is_uuid_like, iso_z, json_response, parse_iso, utc

MIN_VERSION = (2, 1)
DEFAULT_MAX_VERSION = "2.96"

_FAULT_KEYS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
               429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}

# vm_state -> status when task_state does not override it
_STATUS = {"building": "BUILD", "active": "ACTIVE", "stopped": "SHUTOFF", "error": "ERROR",
           "deleted": "DELETED", "paused": "PAUSED", "suspended": "SUSPENDED", "shelved_offloaded": "SHELVED_OFFLOADED"}
_TASK_STATUS = {"rebooting": "REBOOT", "rebooting_hard": "HARD_REBOOT", "rebuilding": "REBUILD",
                "resize_prep": "RESIZE", "migrating": "MIGRATING"}

_LIST_PARAMS = {
    "name", "status", "ip", "ip6", "changes-since", "changes-before", "flavor", "image", "reservation_id",
    "tags", "tags-any", "not-tags", "not-tags-any", "locked", "limit", "marker", "sort_key", "sort_dir",
    "all_tenants", "project_id", "tenant_id", "user_id", "availability_zone", "config_drive", "key_name",
    "created_at", "description", "host", "node", "hostname", "uuid", "launched_at", "terminated_at",
    "vm_state", "task_state", "power_state", "deleted", "soft_deleted", "display_name", "launch_index",
    "image_ref", "kernel_id", "ramdisk_id", "progress", "access_ip_v4", "access_ip_v6", "auto_disk_config",
    "locked_by", "root_device_name", "display_description", "pinned_availability_zone",
}


def parse_version(text):
    m = re.match(r"^([1-9]\d*)\.([1-9]\d*|0)$", text.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2))


class Server:
    __slots__ = ("id", "name", "project_id", "user_id", "flavor", "image_id", "key_name", "vm_state",
                 "task_state", "power_state", "created", "updated", "launched_at", "terminated_at", "metadata",
                 "tags", "locked", "locked_by", "locked_reason", "description", "az", "host", "node", "port_ids",
                 "fault", "config_drive", "user_data", "hostname", "deleted_at", "reservation_id", "owner",
                 "attach_lock", "detaching", "timers", "launch_index")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    @property
    def status(self):
        if self.vm_state == "active" and self.task_state in _TASK_STATUS:
            return _TASK_STATUS[self.task_state]
        return _STATUS.get(self.vm_state, "UNKNOWN")


class Nova(Service):
    name = "compute"
    prefix = "/compute"

    def __init__(self, world):
        super().__init__(world)
        cfg = world.scenario.get("nova") or {}
        self.max_version = parse_version(str(cfg.get("max_microversion", DEFAULT_MAX_VERSION)))
        self.max_limit = int(cfg.get("max_limit", 1000))
        # Newer Nova marks the server interface_attaching during an attach, so a
        # second concurrent attach is refused (409) instead of queued.
        self.attach_sets_task_state = bool(cfg.get("attach_sets_task_state", False))
        self.compute_hosts = int(cfg.get("compute_hosts", 4))
        self.quota_instances = (world.scenario.get("quotas") or {}).get("instances")
        self.servers = {}
        self.deleted = {}
        self.flavors = {}
        self.keypairs = {}     # user id -> {name: keypair}
        self._host_rr = 0
        self._load()

    # -- scenario ------------------------------------------------------------------
    def _load(self):
        world = self.world
        for i, f in enumerate(world.scenario.get("flavors") or []):
            fid = str(f.get("id") or world.ids.uuid())
            self.flavors[fid] = {
                "id": fid, "name": f["name"], "vcpus": int(f.get("vcpus", 1)), "ram": int(f.get("ram", 1024)),
                "disk": int(f.get("disk", 10)), "ephemeral": int(f.get("ephemeral", 0)), "swap": int(f.get("swap", 0)),
                "rxtx_factor": 1.0, "is_public": bool(f.get("is_public", True)), "disabled": False,
                "description": f.get("description"), "extra_specs": {str(k): str(v) for k, v in (f.get("extra_specs") or {}).items()},
            }
        now = world.now()
        for kp in world.scenario.get("keypairs") or []:
            users = kp.get("users") or [u["name"] for u in world.keystone.users.values()]
            for uname in users:
                user = world.keystone.find_user(uname)
                self._add_keypair(user["id"], kp["name"], kp.get("public_key") or _fake_public_key(kp["name"]),
                                  kp.get("type", "ssh"), now)

    def load_servers(self):
        """Pre-existing servers from the scenario (after Neutron exists)."""
        world = self.world
        project = world.keystone.default_project()
        user = world.keystone.first_user()
        for spec in world.scenario.get("servers") or []:
            count = int(spec.get("count", 1))
            for n in range(count):
                name = spec["name"] if count == 1 else spec["name"].replace("{i}", str(n)) if "{i}" in spec["name"] \
                    else "%s-%d" % (spec["name"], n + 1)
                flavor = self.find_flavor(spec.get("flavor"))
                image = world.glance.find(spec.get("image")) if spec.get("image") else None
                nets = [self.world.neutron.find_network(x) for x in (spec.get("networks") or [self.primary_network_name()])]
                server = self.create_server(
                    name, flavor, image, spec.get("key_name"), [{"network": n} for n in nets if n],
                    project["id"], user["id"], metadata=spec.get("metadata"), tags=spec.get("tags"),
                    instant=spec.get("status", "ACTIVE") == "ACTIVE")
                if spec.get("status") == "ERROR":
                    server.vm_state = "error"
                    server.task_state = None
                if spec.get("locked"):
                    server.locked = True
                    server.locked_by = "owner"

    def primary_network_name(self):
        nets = self.world.scenario.get("networks") or []
        for n in nets:
            if n.get("primary"):
                return n["name"]
        for n in nets:
            if not n.get("external"):
                return n["name"]
        return None

    def _add_keypair(self, user_id, name, public_key, ktype, now):
        fp = hashlib.md5(public_key.encode()).hexdigest()
        kp = {"name": name, "public_key": public_key, "fingerprint": ":".join(fp[i:i + 2] for i in range(0, 32, 2)),
              "type": ktype, "user_id": user_id, "created_at": iso_z(now).rstrip("Z") + ".000000",
              "deleted": False, "deleted_at": None, "updated_at": None,
              "id": sum(len(v) for v in self.keypairs.values()) + 1}
        self.keypairs.setdefault(user_id, {})[name] = kp
        return kp

    # -- lookups -------------------------------------------------------------------------
    def find_flavor(self, ref):
        if ref is None:
            return None
        if ref in self.flavors:
            return self.flavors[ref]
        for f in self.flavors.values():
            if f["name"] == ref:
                return f
        return None

    def keypair(self, user_id, name):
        return (self.keypairs.get(user_id) or {}).get(name)

    def is_baremetal_flavor(self, flavor):
        return any(k.startswith("resources:CUSTOM_BAREMETAL") for k in flavor["extra_specs"])

    def servers_of_owner(self, key, value):
        return [s for s in self.servers.values() if s.owner and s.owner.get(key) == value]

    # -- server lifecycle (also used by the Magnum drivers) -------------------------------------
    def create_server(self, name, flavor, image, key_name, networks, project_id, user_id, metadata=None,
                      tags=None, instant=False, owner=None, description=None, build_time=None,
                      az="nova", launch_index=0, reservation_id=None):
        """Create a server; ``networks`` is a list of {"network": net, "fixed_ip": ip} or {"port": port}."""
        world = self.world
        neutron = world.neutron
        now = world.now()
        sid = world.ids.uuid()
        s = Server(
            id=sid, name=name, project_id=project_id, user_id=user_id, flavor=flavor,
            image_id=image["id"] if image else "", key_name=key_name, vm_state="building",
            task_state="scheduling", power_state=0, created=now, updated=now, launched_at=None,
            terminated_at=None, metadata=dict(metadata or {}), tags=list(tags or []), locked=False,
            locked_by=None, locked_reason=None, description=description, az=az, host=None, node=None,
            port_ids=[], fault=None, config_drive="", user_data=None,
            hostname=re.sub(r"[^a-z0-9-]", "-", name.lower())[:63].strip("-") or "server",
            deleted_at=None, reservation_id=reservation_id or "r-" + world.ids.chars(8), owner=owner,
            attach_lock=None, detaching=set(), timers=[], launch_index=launch_index,
        )
        self.servers[sid] = s
        pool = world.ironic.pool_for_flavor(flavor) if (flavor and self.is_baremetal_flavor(flavor)) else None
        error = None
        if pool is not None:
            idx = pool.allocate(sid)
            if idx is None:
                error = "No valid host was found. There are not enough hosts available."
            else:
                s.node = (pool, idx)
                s.host = "ironic-conductor"
        else:
            self._host_rr += 1
            s.host = "compute-%d" % (self._host_rr % self.compute_hosts)
        if error is None:
            try:
                for i, spec in enumerate(networks):
                    self._plug_at_boot(s, spec, boot_nic=(i == 0))
            except ApiError as e:
                error = "Build of instance %s aborted: %s" % (sid, e.message)
        if error is not None:
            delay = 0 if instant else min(0.5, (build_time if build_time is not None else world.timing("server_build")) / 4)
            s.timers.append(world.later(delay, self._fail_build, sid, error))
            return s
        if instant:
            self._finish_build(sid, activate_ports=True)
        else:
            bt = world.timing("server_build") if build_time is None else build_time
            s.timers.append(world.later(bt * 0.3, self._set_task, sid, "spawning"))
            s.timers.append(world.later(bt, self._finish_build, sid))
        return s

    def _host_id_for_binding(self, s):
        return s.node[0].node_uuid(s.node[1]) if s.node else s.host

    def _plug_at_boot(self, s, spec, boot_nic):
        neutron = self.world.neutron
        if "port" in spec:
            port = spec["port"]
            if port.device_id:
                raise ApiError(409, "Port %s is still in use." % port.id)
            self._bind_existing_port(s, port, None if boot_nic else "boot")
            return port
        net = spec["network"]
        fixed = [{"ip_address": spec["fixed_ip"]}] if spec.get("fixed_ip") else None
        if s.node:
            pool, idx = s.node
            if boot_nic:
                nic, mac = 0, pool.mac(idx, 0)
            else:
                nic = pool.free_nic(idx, neutron.network_physnet(net))
                if nic is None:
                    raise ApiError(500, "No free physical port on network %s" % net["id"])
                mac = pool.mac(idx, nic)
            port = neutron.create_port(net, s.project_id, mac=mac, fixed_ips=fixed, device_id=s.id,
                                       device_owner="compute:%s" % s.az, vnic_type="baremetal",
                                       profile=self._bm_profile(s, net, nic), nova_owned=True, bm_nic=nic,
                                       host_id=self._host_id_for_binding(s))
            if nic:
                pool.nic_ports[(idx, nic)] = port.id
        else:
            port = neutron.create_port(net, s.project_id, fixed_ips=fixed, device_id=s.id,
                                       device_owner="compute:%s" % s.az, nova_owned=True,
                                       host_id=self._host_id_for_binding(s))
        s.port_ids.append(port.id)
        return port

    def _bm_profile(self, s, net, nic):
        pool, idx = s.node
        physnet = self.world.neutron.network_physnet(net)
        return {"local_link_information": [pool.local_link(idx, nic)], "physical_network": physnet}

    def _bind_existing_port(self, s, port, _reason):
        neutron = self.world.neutron
        port.device_id = s.id
        port.device_owner = "compute:%s" % s.az
        if s.node:
            pool, idx = s.node
            net = neutron.networks[port.network_id]
            nic = pool.free_nic(idx, neutron.network_physnet(net))
            if nic is None:
                port.device_id = ""
                port.device_owner = ""
                raise ApiError(500, "No free physical port on network %s" % net["id"])
            if port.mac != pool.mac(idx, nic):
                neutron.macs.discard(port.mac)
                port.mac = pool.mac(idx, nic)
                neutron.macs.add(port.mac)
            port.bm_nic = nic
            pool.nic_ports[(idx, nic)] = port.id
            if port.vnic_type != "baremetal":
                port.vif_type = "binding_failed"
                port.host_id = self._host_id_for_binding(s)
                port.device_id = ""
                port.device_owner = ""
                del pool.nic_ports[(idx, nic)]
                port.bm_nic = None
                raise ApiError(500, "binding failed for port %s" % port.id)
            neutron.bind(port, self._host_id_for_binding(s), profile=self._bm_profile(s, net, nic))
        else:
            neutron.bind(port, self._host_id_for_binding(s))
        s.port_ids.append(port.id)

    def _set_task(self, sid, task):
        s = self.servers.get(sid)
        if s is not None and s.vm_state == "building":
            s.task_state = task
            s.updated = self.world.now()

    def _finish_build(self, sid, activate_ports=False):
        s = self.servers.get(sid)
        if s is None or s.vm_state != "building":
            return
        now = self.world.now()
        s.vm_state = "active"
        s.task_state = None
        s.power_state = 1
        s.launched_at = now
        s.updated = now
        if s.node and self.world.node_root:
            s.node[0].write_root(os.path.join(self.world.node_root, s.name), s.node[1])
        if activate_ports:
            for pid in s.port_ids:
                p = self.world.neutron.ports.get(pid)
                if p is not None and p.host_id:
                    p.status = "ACTIVE"
        if self.world.kube_link is not None:
            # a cluster server that boots joins the cluster's Kubernetes as a node
            self.world.kube_link.server_active(s)

    def _fail_build(self, sid, message):
        s = self.servers.get(sid)
        if s is None or s.vm_state != "building":
            return
        now = self.world.now()
        s.vm_state = "error"
        s.task_state = None
        s.updated = now
        s.fault = {"code": 500, "created": iso_z(now), "message": message}
        # The resources claimed for a server that failed to build go back.
        self._release_resources(s)

    def _release_resources(self, s):
        neutron = self.world.neutron
        for pid in list(s.port_ids):
            port = neutron.ports.get(pid)
            if port is None:
                continue
            if port.nova_owned:
                neutron.delete_port(pid, notify_nova=False)
            else:
                neutron.unbind(port)
        s.port_ids = []
        if s.node:
            pool, idx = s.node
            pool.release(idx)
            s.node = None

    def delete_server(self, sid, delay=None):
        s = self.servers.get(sid)
        if s is None:
            return None
        if s.task_state == "deleting":
            return s
        for t in s.timers:
            t.cancel()
        s.timers = []
        s.task_state = "deleting"
        s.updated = self.world.now()
        d = self.world.timing("server_delete") if delay is None else delay
        if d <= 0:
            self._finish_delete(sid)
        else:
            self.world.later(d, self._finish_delete, sid)
        return s

    def _finish_delete(self, sid):
        s = self.servers.pop(sid, None)
        if s is None:
            return
        now = self.world.now()
        if s.node and self.world.node_root:
            shutil.rmtree(os.path.join(self.world.node_root, s.name), ignore_errors=True)
        self._release_resources(s)
        if self.world.kube_link is not None:
            self.world.kube_link.server_gone(s)
        s.vm_state = "deleted"
        s.task_state = None
        s.power_state = 0
        s.deleted_at = now
        s.terminated_at = now
        s.updated = now
        self.deleted[sid] = s
        if len(self.deleted) > 2000:
            for k in list(self.deleted)[:500]:
                del self.deleted[k]

    def vanish(self, name_re):
        """Servers disappear without any API call (host lost, operator action)."""
        for s in list(self.servers.values()):
            if name_re is None or name_re.search(s.name):
                for t in s.timers:
                    t.cancel()
                self._finish_delete(s.id)

    def port_deleted(self, port):
        s = self.servers.get(port.device_id)
        if s is not None and port.id in s.port_ids:
            s.port_ids.remove(port.id)
            if s.node and port.bm_nic:
                s.node[0].nic_ports.pop((s.node[1], port.bm_nic), None)
            s.updated = self.world.now()

    def server_ips(self, s, fixed=True):
        """[(network name, ip, type)] in attach order; floating IPs follow their fixed IP."""
        neutron = self.world.neutron
        out = []
        for pid in s.port_ids:
            p = neutron.ports.get(pid)
            if p is None:
                continue
            net = neutron.networks.get(p.network_id)
            nname = net["name"] if net else p.network_id
            for dummy, ip in p.fixed_ips:
                out.append((nname, ip, "fixed", p.mac))
            for fip in neutron.floatingips_of_port(pid):
                out.append((nname, fip["floating_ip_address"], "floating", p.mac))
        return out

    # -- microversions and errors -------------------------------------------------------------
    def _max_str(self):
        return "%d.%d" % self.max_version

    def before(self, req):
        if not req.route.auth:
            return
        requested = None
        hdr = req.header("OpenStack-API-Version")
        if hdr:
            for part in hdr.split(","):
                svc, dummy, ver = part.strip().partition(" ")
                if svc.lower() == "compute":
                    requested = ver.strip()
        if requested is None:
            requested = req.header("X-OpenStack-Nova-API-Version")
        if requested is None:
            req.version = MIN_VERSION
        elif requested.strip().lower() == "latest":
            req.version = self.max_version
        else:
            v = parse_version(requested)
            if v is None:
                raise ApiError(400, "API Version String %s is of invalid format. Must be of format "
                                    "MajorNum.MinorNum." % requested)
            if not (MIN_VERSION <= v <= self.max_version):
                raise ApiError(406, "Version %s is not supported by the API. Minimum is 2.1 and maximum is %s."
                               % (requested, self._max_str()))
            req.version = v

    def after(self, req, resp):
        if req.version is not None:
            v = "%d.%d" % req.version
            resp.headers["OpenStack-API-Version"] = "compute " + v
            resp.headers["X-OpenStack-Nova-API-Version"] = v
            resp.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"

    def error_body(self, req, err):
        key = _FAULT_KEYS.get(err.status, "computeFault")
        return {key: {"code": err.status, "message": err.message}}

    # -- routes -----------------------------------------------------------------------------------
    def routes(self, r):
        p = "/compute/v2.1"
        r.add(self, "GET", "/compute", self.versions, auth=False, locked=False)
        r.add(self, "GET", p, self.version_doc, auth=False, locked=False)
        r.add(self, "GET", p + "/flavors", self.list_flavors)
        r.add(self, "GET", p + "/flavors/detail", self.list_flavors_detail)
        r.add(self, "GET", p + "/flavors/{flavor_id}", self.show_flavor)
        r.add(self, "GET", p + "/flavors/{flavor_id}/os-extra_specs", self.flavor_extra_specs)
        r.add(self, "GET", p + "/flavors/{flavor_id}/os-extra_specs/{key}", self.flavor_extra_spec)
        r.add(self, "GET", p + "/os-keypairs", self.list_keypairs)
        r.add(self, "POST", p + "/os-keypairs", self.create_keypair)
        r.add(self, "GET", p + "/os-keypairs/{name}", self.show_keypair)
        r.add(self, "DELETE", p + "/os-keypairs/{name}", self.delete_keypair)
        r.add(self, "GET", p + "/limits", self.limits)
        r.add(self, "GET", p + "/os-availability-zone", self.azs)
        r.add(self, "GET", p + "/servers", self.list_servers)
        r.add(self, "GET", p + "/servers/detail", self.list_servers_detail)
        r.add(self, "POST", p + "/servers", self.http_create_server)
        r.add(self, "GET", p + "/servers/{server_id}", self.show_server)
        r.add(self, "PUT", p + "/servers/{server_id}", self.update_server)
        r.add(self, "DELETE", p + "/servers/{server_id}", self.http_delete_server)
        r.add(self, "POST", p + "/servers/{server_id}/action", self.server_action)
        r.add(self, "GET", p + "/servers/{server_id}/tags", self.list_tags)
        r.add(self, "PUT", p + "/servers/{server_id}/tags", self.replace_tags)
        r.add(self, "DELETE", p + "/servers/{server_id}/tags", self.delete_tags)
        r.add(self, "GET", p + "/servers/{server_id}/tags/{tag}", self.check_tag)
        r.add(self, "PUT", p + "/servers/{server_id}/tags/{tag}", self.add_tag)
        r.add(self, "DELETE", p + "/servers/{server_id}/tags/{tag}", self.delete_tag)
        r.add(self, "GET", p + "/servers/{server_id}/metadata", self.get_metadata)
        r.add(self, "POST", p + "/servers/{server_id}/metadata", self.update_metadata)
        r.add(self, "PUT", p + "/servers/{server_id}/metadata", self.replace_metadata)
        r.add(self, "GET", p + "/servers/{server_id}/os-interface", self.list_interfaces)
        r.add(self, "POST", p + "/servers/{server_id}/os-interface", self.attach_interface, locked=False)
        r.add(self, "GET", p + "/servers/{server_id}/os-interface/{port_id}", self.show_interface)
        r.add(self, "DELETE", p + "/servers/{server_id}/os-interface/{port_id}", self.detach_interface)

    def _version_entry(self, req):
        return {"id": "v2.1", "status": "CURRENT", "version": self._max_str(), "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": req.host_url + "/compute/v2.1/"}]}

    def versions(self, req):
        v2 = {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
              "updated": "2025-07-04T12:00:00Z", "links": [{"rel": "self", "href": req.host_url + "/compute/v2/"}]}
        return json_response({"versions": [v2, self._version_entry(req)]})

    def version_doc(self, req):
        v = self._version_entry(req)
        v["links"].append({"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"})
        v["media-types"] = [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]
        return json_response({"version": v})

    # -- flavors ---------------------------------------------------------------------------------------
    def _flavor_links(self, req, fid):
        return [{"rel": "self", "href": "%s/compute/v2.1/flavors/%s" % (req.host_url, fid)},
                {"rel": "bookmark", "href": "%s/compute/flavors/%s" % (req.host_url, fid)}]

    def _flavor_view(self, req, f, detail=True):
        v = req.version
        d = {"id": f["id"], "name": f["name"], "links": self._flavor_links(req, f["id"])}
        if v >= (2, 55):
            d["description"] = f["description"]
        if not detail:
            return d
        d.update({"ram": f["ram"], "disk": f["disk"], "vcpus": f["vcpus"], "OS-FLV-EXT-DATA:ephemeral": f["ephemeral"],
                  "OS-FLV-DISABLED:disabled": False, "os-flavor-access:is_public": f["is_public"],
                  "swap": f["swap"] if (f["swap"] or v >= (2, 75)) else "", "rxtx_factor": f["rxtx_factor"]})
        if v >= (2, 75):
            d.pop("rxtx_factor")
        if v >= (2, 61):
            d["extra_specs"] = dict(f["extra_specs"])
        return d

    def _flavor_list(self, req, detail):
        items = sorted(self.flavors.values(), key=lambda f: f["id"])
        for key, field in (("minRam", "ram"), ("minDisk", "disk")):
            if req.q(key):
                items = [f for f in items if f[field] >= int(req.q(key))]
        marker = req.q("marker")
        if marker:
            idx = next((i for i, f in enumerate(items) if f["id"] == marker), None)
            if idx is None:
                raise ApiError(400, "marker [%s] not found" % marker)
            items = items[idx + 1:]
        body = {}
        limit = int(req.q("limit") or self.max_limit)
        if len(items) > limit:
            items = items[:limit]
        body["flavors"] = [self._flavor_view(req, f, detail) for f in items]
        if len(items) == limit and items:
            body["flavors_links"] = [{"rel": "next", "href": self._next_href(req, items[-1]["id"])}]
        return json_response(body)

    def list_flavors(self, req):
        return self._flavor_list(req, False)

    def list_flavors_detail(self, req):
        return self._flavor_list(req, True)

    def _get_flavor(self, fid):
        f = self.flavors.get(fid)
        if f is None:
            raise ApiError(404, "Flavor %s could not be found." % fid)
        return f

    def show_flavor(self, req):
        return json_response({"flavor": self._flavor_view(req, self._get_flavor(req.params["flavor_id"]))})

    def flavor_extra_specs(self, req):
        return json_response({"extra_specs": dict(self._get_flavor(req.params["flavor_id"])["extra_specs"])})

    def flavor_extra_spec(self, req):
        f = self._get_flavor(req.params["flavor_id"])
        key = req.params["key"]
        if key not in f["extra_specs"]:
            raise ApiError(404, "Flavor %s has no extra specs with key %s." % (f["id"], key))
        return json_response({key: f["extra_specs"][key]})

    # -- keypairs ---------------------------------------------------------------------------------------
    def _kp_view(self, req, kp, full):
        d = {"name": kp["name"], "public_key": kp["public_key"], "fingerprint": kp["fingerprint"]}
        if req.version >= (2, 2):
            d["type"] = kp["type"]
        if full:
            d.update({"user_id": kp["user_id"], "created_at": kp["created_at"], "deleted": False,
                      "deleted_at": None, "updated_at": None, "id": kp["id"]})
        return d

    def list_keypairs(self, req):
        uid = req.q("user_id") if (req.token.is_admin and req.version >= (2, 10)) else None
        kps = sorted((self.keypairs.get(uid or req.token.user_id) or {}).values(), key=lambda k: k["name"])
        return json_response({"keypairs": [{"keypair": self._kp_view(req, k, False)} for k in kps]})

    def show_keypair(self, req):
        uid = req.q("user_id") if (req.token.is_admin and req.version >= (2, 10)) else None
        uid = uid or req.token.user_id
        kp = self.keypair(uid, req.params["name"])
        if kp is None:
            raise ApiError(404, "Keypair %s not found for user %s" % (req.params["name"], uid))
        return json_response({"keypair": self._kp_view(req, kp, True)})

    def create_keypair(self, req):
        body = req.json().get("keypair") or {}
        name = body.get("name")
        if not name or not re.match(r"^[a-zA-Z0-9 _.@-]{1,255}$", name):
            raise ApiError(400, "Invalid input for field/attribute name. Value: %s." % name)
        if self.keypair(req.token.user_id, name):
            raise ApiError(409, "Key pair '%s' already exists." % name)
        pk = body.get("public_key")
        if not pk and req.version >= (2, 92):
            raise ApiError(400, "Invalid input for field/attribute keypair. Value: %s. 'public_key' is a required "
                                "property" % body)
        kp = self._add_keypair(req.token.user_id, name, pk or _fake_public_key(name), body.get("type", "ssh"),
                               self.world.now())
        out = self._kp_view(req, kp, False)
        out["user_id"] = kp["user_id"]
        if not pk:
            out["private_key"] = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2ltdWxhdGVk\n-----END OPENSSH PRIVATE KEY-----\n"
        return json_response({"keypair": out}, status=201 if req.version >= (2, 2) else 200)

    def delete_keypair(self, req):
        kps = self.keypairs.get(req.token.user_id) or {}
        if req.params["name"] not in kps:
            raise ApiError(404, "Keypair %s not found for user %s" % (req.params["name"], req.token.user_id))
        del kps[req.params["name"]]
        return empty(204 if req.version >= (2, 2) else 202)

    def limits(self, req):
        used = sum(1 for s in self.servers.values() if s.project_id == req.token.project_id)
        lim = self.quota_instances if self.quota_instances is not None else 10000
        return json_response({"limits": {"rate": [], "absolute": {
            "maxTotalInstances": lim, "maxTotalCores": -1, "maxTotalRAMSize": -1, "maxServerMeta": 128,
            "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
            "totalInstancesUsed": used, "totalCoresUsed": 0, "totalRAMUsed": 0, "totalServerGroupsUsed": 0}}})

    def azs(self, req):
        return json_response({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True},
                                                        "hosts": None}]})

    # -- server views ---------------------------------------------------------------------------------
    def _links(self, req, sid):
        return [{"rel": "self", "href": "%s/compute/v2.1/servers/%s" % (req.host_url, sid)},
                {"rel": "bookmark", "href": "%s/compute/servers/%s" % (req.host_url, sid)}]

    def server_view(self, req, s, detail=True):
        if not detail:
            return {"id": s.id, "name": s.name, "links": self._links(req, s.id)}
        v = req.version
        admin = req.token.is_admin
        f = s.flavor
        if v >= (2, 47):
            # extra_specs are readable by project members under Nova's default policy
            flavor = {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"], "ephemeral": f["ephemeral"],
                      "swap": f["swap"], "original_name": f["name"], "extra_specs": dict(f["extra_specs"])}
        else:
            flavor = {"id": f["id"], "links": [{"rel": "bookmark", "href": "%s/compute/flavors/%s" % (req.host_url, f["id"])}]}
        addresses = {}
        for nname, ip, typ, mac in self.server_ips(s):
            addresses.setdefault(nname, []).append({"version": 6 if ":" in ip else 4, "addr": ip,
                                                    "OS-EXT-IPS:type": typ, "OS-EXT-IPS-MAC:mac_addr": mac})
        status = s.status
        d = {
            "id": s.id, "name": s.name, "status": status, "tenant_id": s.project_id, "user_id": s.user_id,
            "metadata": dict(s.metadata),
            "hostId": hashlib.sha224((s.project_id + (s.host or "")).encode()).hexdigest() if s.host else "",
            "image": {"id": s.image_id, "links": [{"rel": "bookmark", "href": "%s/compute/images/%s"
                                                   % (req.host_url, s.image_id)}]} if s.image_id else "",
            "flavor": flavor, "created": iso_z(s.created), "updated": iso_z(s.updated), "addresses": addresses,
            "accessIPv4": "", "accessIPv6": "", "links": self._links(req, s.id), "OS-DCF:diskConfig": "MANUAL",
            "OS-EXT-AZ:availability_zone": s.az if s.host else "", "config_drive": s.config_drive,
            "key_name": s.key_name, "OS-SRV-USG:launched_at": _nova_ts(s.launched_at),
            "OS-SRV-USG:terminated_at": _nova_ts(s.terminated_at),
            "OS-EXT-STS:task_state": s.task_state, "OS-EXT-STS:vm_state": s.vm_state,
            "OS-EXT-STS:power_state": s.power_state, "os-extended-volumes:volumes_attached": [],
        }
        if s.port_ids:
            d["security_groups"] = [{"name": "default"}]
        if status in ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
            d["progress"] = 0
        if s.fault and status in ("ERROR", "DELETED"):
            d["fault"] = dict(s.fault)
        if admin:
            d.update({"OS-EXT-SRV-ATTR:host": s.host, "OS-EXT-SRV-ATTR:instance_name": "instance-%s" % s.id[:8],
                      "OS-EXT-SRV-ATTR:hypervisor_hostname": (s.node[0].node_uuid(s.node[1]) if s.node else s.host)})
            if v >= (2, 3):
                d.update({"OS-EXT-SRV-ATTR:reservation_id": s.reservation_id,
                          "OS-EXT-SRV-ATTR:launch_index": s.launch_index or 0,
                          "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                          "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda", "OS-EXT-SRV-ATTR:user_data": s.user_data})
        if v >= (2, 3) and admin or v >= (2, 90):
            d["OS-EXT-SRV-ATTR:hostname"] = s.hostname
        if v >= (2, 9):
            d["locked"] = bool(s.locked)
        if v >= (2, 19):
            d["description"] = s.description
        if v >= (2, 26):
            d["tags"] = list(s.tags)
        if v >= (2, 63):
            d["trusted_image_certificates"] = None
        if v >= (2, 71):
            d["server_groups"] = []
        if v >= (2, 73):
            d["locked_reason"] = s.locked_reason
        if v >= (2, 96):
            d["pinned_availability_zone"] = None
        return d

    def _get_server(self, req, sid):
        s = self.servers.get(sid)
        if s is None or not (req.token.is_admin or s.project_id == req.token.project_id):
            raise ApiError(404, "Instance %s could not be found." % sid)
        return s

    def show_server(self, req):
        return json_response({"server": self.server_view(req, self._get_server(req, req.params["server_id"]))})

    def _next_href(self, req, marker):
        params = [(k, v) for k, vs in req.query.items() if k != "marker" for v in vs]
        params.append(("marker", marker))
        return "%s%s?%s" % (req.host_url, req.path, urllib.parse.urlencode(params))

    def _filter_servers(self, req):
        q = req.query
        v = req.version
        if v >= (2, 75):
            unknown = sorted(k for k in q if k not in _LIST_PARAMS)
            if unknown:
                raise ApiError(400, "Invalid input for query parameters %s. Value: %s. Additional properties are "
                                    "not allowed ('%s' was unexpected)" % (unknown[0], q[unknown[0]][-1], unknown[0]))
        admin = req.token.is_admin
        all_tenants = admin and "all_tenants" in q and q["all_tenants"][-1].lower() not in ("0", "false", "off", "no")
        project = req.q("project_id") if (admin and all_tenants) else None
        since = req.q("changes-since")
        before = req.q("changes-before") if v >= (2, 66) else None
        try:
            since_ts = parse_iso(since) if since else None
            before_ts = parse_iso(before) if before else None
        except ValueError:
            raise ApiError(400, "Invalid filter field: changes-since.")
        pool = list(self.servers.values())
        if since_ts is not None or before_ts is not None or (admin and req.q("deleted") in ("true", "True", "1")):
            pool += list(self.deleted.values())
        statuses = [x.upper() for x in req.qlist("status")]
        name_re = None
        if req.q("name") is not None:
            try:
                name_re = re.compile(req.q("name"))
            except re.error:
                name_re = re.compile(re.escape(req.q("name")))
        ip_re = re.compile(req.q("ip")) if req.q("ip") else None
        tags = set(req.q("tags").split(",")) if (req.q("tags") and v >= (2, 26)) else None
        tags_any = set(req.q("tags-any").split(",")) if (req.q("tags-any") and v >= (2, 26)) else None
        not_tags = set(req.q("not-tags").split(",")) if (req.q("not-tags") and v >= (2, 26)) else None
        not_tags_any = set(req.q("not-tags-any").split(",")) if (req.q("not-tags-any") and v >= (2, 26)) else None
        locked = req.q("locked") if v >= (2, 73) else None
        flavor = req.q("flavor")
        image = req.q("image")
        key_name = req.q("key_name")
        out = []
        for s in pool:
            if not all_tenants and s.project_id != req.token.project_id:
                continue
            if project and s.project_id != project:
                continue
            if s.vm_state == "deleted" and since_ts is None and before_ts is None and not admin:
                continue
            if statuses and s.status not in statuses:
                continue
            if name_re is not None and not name_re.search(s.name):
                continue
            if since_ts is not None and s.updated < since_ts:
                continue
            if before_ts is not None and s.updated > before_ts:
                continue
            if ip_re is not None and not any(ip_re.search(ip) for dummy, ip, dummy, dummy in self.server_ips(s)):
                continue
            if tags is not None and not tags <= set(s.tags):
                continue
            if tags_any is not None and not tags_any & set(s.tags):
                continue
            if not_tags is not None and not_tags <= set(s.tags):
                continue
            if not_tags_any is not None and not_tags_any & set(s.tags):
                continue
            if locked is not None and bool(s.locked) != (locked.lower() in ("true", "1", "yes")):
                continue
            if flavor and s.flavor["id"] != flavor:
                continue
            if image and s.image_id != image:
                continue
            if key_name and admin and s.key_name != key_name:
                continue
            out.append(s)
        sort_keys = req.qlist("sort_key") or ["created_at"]
        sort_dirs = req.qlist("sort_dir") or ["desc"]
        attr = {"created_at": "created", "updated_at": "updated", "display_name": "name", "name": "name",
                "uuid": "id", "launched_at": "launched_at", "vm_state": "vm_state"}
        for i in reversed(range(len(sort_keys))):
            a = attr.get(sort_keys[i], "created")
            reverse = (sort_dirs[i] if i < len(sort_dirs) else sort_dirs[-1]) == "desc"
            out.sort(key=lambda s, a=a: (getattr(s, a) or 0, s.id), reverse=reverse)
        marker = req.q("marker")
        if marker:
            idx = next((i for i, s in enumerate(out) if s.id == marker), None)
            if idx is None:
                raise ApiError(400, "marker [%s] not found" % marker)
            out = out[idx + 1:]
        limit = req.q("limit")
        try:
            limit = min(int(limit), self.max_limit) if limit is not None else self.max_limit
        except ValueError:
            raise ApiError(400, "Invalid input for query parameters limit. Value: %s." % limit)
        if limit < 0:
            raise ApiError(400, "Invalid input for query parameters limit. Value: %d." % limit)
        page = out[:limit]
        links = None
        if page and len(page) == limit:
            links = [{"rel": "next", "href": self._next_href(req, page[-1].id)}]
        return page, links

    def list_servers(self, req):
        page, links = self._filter_servers(req)
        body = {"servers": [self.server_view(req, s, detail=False) for s in page]}
        if links:
            body["servers_links"] = links
        return json_response(body)

    def list_servers_detail(self, req):
        page, links = self._filter_servers(req)
        body = {"servers": [self.server_view(req, s) for s in page]}
        if links:
            body["servers_links"] = links
        return json_response(body)

    # -- server create/update/delete/actions ---------------------------------------------------------------
    def http_create_server(self, req):
        body = req.json().get("server")
        v = req.version
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input for field/attribute server. Value: None. None is not of type 'object'")
        self._check_create_schema(body)
        for field in ("name", "flavorRef"):
            if not body.get(field):
                raise ApiError(400, "Invalid input for field/attribute server. Value: %s. '%s' is a required property"
                               % (body, field))
        flavor = self.flavors.get(str(body["flavorRef"]).rsplit("/", 1)[-1])
        if flavor is None:
            raise ApiError(400, "Flavor %s could not be found." % body["flavorRef"])
        image = None
        image_ref = body.get("imageRef")
        if image_ref:
            image = self.world.glance.images.get(str(image_ref).rsplit("/", 1)[-1])
            if image is None:
                raise ApiError(400, "Image %s could not be found." % image_ref)
        elif not body.get("block_device_mapping_v2"):
            raise ApiError(400, "Block Device Mapping is Invalid: You specified more local devices than the limit "
                                "allows")
        key_name = body.get("key_name")
        if key_name and self.keypair(req.token.user_id, key_name) is None:
            raise ApiError(400, "Invalid key_name provided.")
        nets = body.get("networks")
        if nets is None and v >= (2, 37):
            raise ApiError(400, "Invalid input for field/attribute server. Value: %s. 'networks' is a required "
                                "property" % body)
        neutron = self.world.neutron
        specs = []
        if nets in (None, "auto"):
            primary = neutron.find_network(self.primary_network_name()) if self.primary_network_name() else None
            if primary is not None:
                specs.append({"network": primary})
        elif nets == "none":
            pass
        else:
            for n in nets:
                if n.get("port"):
                    port = neutron.ports.get(n["port"])
                    if port is None:
                        raise ApiError(400, "Port %s could not be found." % n["port"])
                    if port.device_id:
                        raise ApiError(409, "Port %s is still in use." % port.id)
                    specs.append({"port": port})
                elif n.get("uuid"):
                    net = neutron.networks.get(n["uuid"])
                    if net is None:
                        raise ApiError(400, "Network %s could not be found." % n["uuid"])
                    specs.append({"network": net, "fixed_ip": n.get("fixed_ip")})
                else:
                    raise ApiError(400, "Bad networks format: network uuid is not in proper format (%s)" % n)
        count = int(body.get("min_count", 1) or 1)
        if self.quota_instances is not None:
            used = sum(1 for s in self.servers.values() if s.project_id == req.token.project_id)
            if used + count > self.quota_instances:
                raise ApiError(403, "Quota exceeded for instances: Requested %d, but already used %d of %d instances"
                               % (count, used, self.quota_instances))
        tags = body.get("tags") if v >= (2, 52) else None
        rid = "r-" + self.world.ids.chars(8)
        first = None
        for i in range(count):
            name = body["name"] if count == 1 else "%s-%d" % (body["name"], i + 1)
            s = self.create_server(name, flavor, image, key_name, specs if i == 0 else
                                   [x for x in specs if "network" in x],
                                   req.token.project_id, req.token.user_id, metadata=body.get("metadata"),
                                   tags=tags, description=body.get("description") if v >= (2, 19) else None,
                                   az=body.get("availability_zone") or "nova", launch_index=i, reservation_id=rid)
            if body.get("user_data"):
                s.user_data = body["user_data"]
            first = first or s
        out = {"id": first.id, "links": self._links(req, first.id), "OS-DCF:diskConfig": "MANUAL",
               "security_groups": [{"name": "default"}], "adminPass": self.world.ids.chars(12)}
        if body.get("return_reservation_id"):
            return json_response({"reservation_id": rid}, status=202)
        return json_response({"server": out}, status=202,
                             headers={"Location": "%s/compute/v2.1/servers/%s" % (req.host_url, first.id)})

    # Nova validates bodies against JSON schemas before it looks anything up: a
    # malformed identifier is a 400 naming the field, never a 404 from a lookup.
    @staticmethod
    def _schema_error(path, value, message):
        return ApiError(400, "Invalid input for field/attribute %s. Value: %s. %s" % (path, value, message))

    def _check_uuid(self, path, value):
        if not is_uuid_like(value):
            raise self._schema_error(path, value, "'%s' is not a 'uuid'" % (value,))

    def _check_ip(self, path, value):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise self._schema_error(path, value, "'%s' is not a 'ipv4'" % (value,))

    def _check_create_schema(self, body):
        image_ref = body.get("imageRef")
        if image_ref not in (None, ""):
            self._check_uuid("imageRef", image_ref)
        nets = body.get("networks")
        if isinstance(nets, list):
            for i, n in enumerate(nets):
                if not isinstance(n, dict):
                    raise self._schema_error("networks/%d" % i, n, "%r is not of type 'object'" % (n,))
                extra = sorted(set(n) - {"uuid", "port", "fixed_ip", "tag"})
                if extra:
                    raise self._schema_error("networks/%d" % i, n, "Additional properties are not allowed "
                                             "('%s' was unexpected)" % extra[0])
                if n.get("uuid") is not None:
                    self._check_uuid("networks/%d/uuid" % i, n["uuid"])
                if n.get("port") is not None:
                    self._check_uuid("networks/%d/port" % i, n["port"])
                if n.get("fixed_ip") is not None:
                    self._check_ip("networks/%d/fixed_ip" % i, n["fixed_ip"])
        elif nets not in (None, "auto", "none"):
            raise self._schema_error("networks", nets, "%r is not valid under any of the given schemas" % (nets,))

    def update_server(self, req):
        s = self._get_server(req, req.params["server_id"])
        body = req.json().get("server") or {}
        if "name" in body:
            s.name = body["name"]
        if "description" in body and req.version >= (2, 19):
            s.description = body["description"]
        s.updated = self.world.now()
        return json_response({"server": self.server_view(req, s)})

    def _check_locked(self, req, s):
        if s.locked and not req.token.is_admin:
            raise ApiError(409, "Instance %s is locked" % s.id)

    def http_delete_server(self, req):
        s = self._get_server(req, req.params["server_id"])
        self._check_locked(req, s)
        self.delete_server(s.id)
        return empty(204)

    def server_action(self, req):
        s = self._get_server(req, req.params["server_id"])
        body = req.json()
        if not isinstance(body, dict) or len(body) != 1:
            raise ApiError(400, "There is no such action: %s" % body)
        action, arg = next(iter(body.items()))
        now = self.world.now()
        if action == "lock":
            s.locked = True
            s.locked_by = "admin" if req.token.is_admin else "owner"
            if req.version >= (2, 73) and isinstance(arg, dict):
                s.locked_reason = arg.get("locked_reason")
        elif action == "unlock":
            s.locked = False
            s.locked_by = None
            s.locked_reason = None
        elif action in ("os-stop", "os-start", "reboot"):
            self._check_locked(req, s)
            if s.task_state is not None:
                raise ApiError(409, "Cannot '%s' instance %s while it is in task_state %s"
                               % (action.replace("os-", ""), s.id, s.task_state))
            if action == "os-stop":
                if s.vm_state != "active":
                    raise ApiError(409, "Cannot 'stop' instance %s while it is in vm_state %s" % (s.id, s.vm_state))
                s.vm_state, s.power_state = "stopped", 4
            elif action == "os-start":
                if s.vm_state != "stopped":
                    raise ApiError(409, "Cannot 'start' instance %s while it is in vm_state %s" % (s.id, s.vm_state))
                s.vm_state, s.power_state = "active", 1
        else:
            raise ApiError(400, "There is no such action: %s" % action)
        s.updated = now
        return empty(202)

    # -- tags and metadata -------------------------------------------------------------------------------
    def _tags_server(self, req):
        if req.version < (2, 26):
            raise ApiError(404, "The resource could not be found.")
        return self._get_server(req, req.params["server_id"])

    def list_tags(self, req):
        return json_response({"tags": list(self._tags_server(req).tags)})

    def replace_tags(self, req):
        s = self._tags_server(req)
        s.tags = list(dict.fromkeys(req.json().get("tags") or []))
        s.updated = self.world.now()
        return json_response({"tags": list(s.tags)})

    def delete_tags(self, req):
        s = self._tags_server(req)
        s.tags = []
        s.updated = self.world.now()
        return empty(204)

    def check_tag(self, req):
        s = self._tags_server(req)
        if req.params["tag"] not in s.tags:
            raise ApiError(404, "Tag %s could not be found." % req.params["tag"])
        return empty(204)

    def add_tag(self, req):
        s = self._tags_server(req)
        tag = req.params["tag"]
        if tag in s.tags:
            return empty(204)
        s.tags.append(tag)
        s.updated = self.world.now()
        return empty(201, {"Location": "%s%s" % (req.host_url, req.path)})

    def delete_tag(self, req):
        s = self._tags_server(req)
        if req.params["tag"] not in s.tags:
            raise ApiError(404, "Tag %s could not be found." % req.params["tag"])
        s.tags.remove(req.params["tag"])
        s.updated = self.world.now()
        return empty(204)

    def get_metadata(self, req):
        return json_response({"metadata": dict(self._get_server(req, req.params["server_id"]).metadata)})

    def update_metadata(self, req):
        s = self._get_server(req, req.params["server_id"])
        s.metadata.update({str(k): str(v) for k, v in (req.json().get("metadata") or {}).items()})
        s.updated = self.world.now()
        return json_response({"metadata": dict(s.metadata)})

    def replace_metadata(self, req):
        s = self._get_server(req, req.params["server_id"])
        s.metadata = {str(k): str(v) for k, v in (req.json().get("metadata") or {}).items()}
        s.updated = self.world.now()
        return json_response({"metadata": dict(s.metadata)})

    # -- os-interface ------------------------------------------------------------------------------------
    def _iface_view(self, req, port):
        d = {"fixed_ips": [{"ip_address": ip, "subnet_id": sid} for sid, ip in port.fixed_ips],
             "mac_addr": port.mac, "net_id": port.network_id, "port_id": port.id, "port_state": port.status}
        if req.version >= (2, 70):
            d["tag"] = None
        return d

    def list_interfaces(self, req):
        s = self._get_server(req, req.params["server_id"])
        neutron = self.world.neutron
        ports = [neutron.ports[p] for p in s.port_ids if p in neutron.ports]
        return json_response({"interfaceAttachments": [self._iface_view(req, p) for p in ports]})

    def show_interface(self, req):
        s = self._get_server(req, req.params["server_id"])
        pid = req.params["port_id"]
        port = self.world.neutron.ports.get(pid)
        if port is None or pid not in s.port_ids:
            raise ApiError(404, "Port %s is not attached" % pid)
        return json_response({"interfaceAttachment": self._iface_view(req, port)})

    def _check_attach_state(self, s, action="attach_interface"):
        if s.vm_state not in ("active", "paused", "stopped"):
            raise ApiError(409, "Cannot '%s' instance %s while it is in vm_state %s" % (action, s.id, s.vm_state))
        if s.task_state is not None:
            raise ApiError(409, "Cannot '%s' instance %s while it is in task_state %s" % (action, s.id, s.task_state))

    def _validate_attach(self, req, s, net_id, port_id, fixed_ips):
        self._check_locked(req, s)
        self._check_attach_state(s)
        neutron = self.world.neutron
        if port_id:
            port = neutron.ports.get(port_id)
            if port is None or not (req.token.is_admin or port.project_id == req.token.project_id):
                raise ApiError(404, "Port %s could not be found." % port_id)
            if port.device_id:
                raise ApiError(409, "Port %s is still in use." % port_id)
            return None, port
        if net_id:
            net = neutron.networks.get(net_id)
            if net is None or not (req.token.is_admin or net["shared"] or net["project_id"] == req.token.project_id):
                raise ApiError(404, "Network %s could not be found." % net_id)
        else:
            visible = [n for n in neutron.networks.values() if not n.get("router:external") and
                       (n["project_id"] == req.token.project_id)]
            if len(visible) != 1:
                raise ApiError(400, "Multiple possible networks found, use a Network ID to be more specific.")
            net = visible[0]
        if fixed_ips:
            ip = fixed_ips[0].get("ip_address")
            for p in neutron.ports.values():
                if p.network_id == net["id"] and any(x == ip for dummy, x in p.fixed_ips):
                    raise ApiError(409, "Fixed IP address %s is already in use on instance %s." % (ip, p.device_id or "unknown"))
        return net, None

    def attach_interface(self, req):
        """Synchronous like Nova's RPC call; one attach at a time per server."""
        world = self.world
        body = req.json()
        spec = body.get("interfaceAttachment") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            spec = {}
        net_id, port_id = spec.get("net_id"), spec.get("port_id")
        fixed_ips = spec.get("fixed_ips")
        extra = sorted(set(spec) - {"net_id", "port_id", "fixed_ips", "tag"})
        if extra:
            raise self._schema_error("interfaceAttachment", spec, "Additional properties are not allowed "
                                     "('%s' was unexpected)" % extra[0])
        if net_id is not None:
            self._check_uuid("interfaceAttachment/net_id", net_id)
        if port_id is not None:
            self._check_uuid("interfaceAttachment/port_id", port_id)
        for i, fip in enumerate(fixed_ips if isinstance(fixed_ips, list) else []):
            if not isinstance(fip, dict) or "ip_address" not in fip:
                raise self._schema_error("interfaceAttachment/fixed_ips/%d" % i, fip,
                                         "'ip_address' is a required property")
            self._check_ip("interfaceAttachment/fixed_ips/%d/ip_address" % i, fip["ip_address"])
        if net_id and port_id:
            raise ApiError(400, "Must not input both network_id and port_id")
        if fixed_ips and not net_id:
            raise ApiError(400, "Must input network_id when request IP address")
        if fixed_ips is not None and (not isinstance(fixed_ips, list) or len(fixed_ips) > 1):
            raise ApiError(400, "Invalid input for field/attribute fixed_ips. Value: %s. %s is too long"
                           % (fixed_ips, fixed_ips))
        if "tag" in spec and req.version < (2, 49):
            raise ApiError(400, "Invalid input for field/attribute interfaceAttachment. Value: %s. Additional "
                                "properties are not allowed ('tag' was unexpected)" % spec)
        sid = req.params["server_id"]
        with world.lock:
            world.run_due()
            s = self._get_server(req, sid)
            if spec.get("tag") and s.node:
                raise ApiError(400, "Tagged network interface attachment is not supported for this instance.")
            self._validate_attach(req, s, net_id, port_id, fixed_ips)
            if s.attach_lock is None:
                s.attach_lock = threading.Lock()
            lock = s.attach_lock
            if self.attach_sets_task_state:
                s.task_state = "interface_attaching"
                s.updated = world.now()
        try:
            with lock:
                fault = world.faults.take("attach_500", s.name)
                time.sleep(world.timing("attach"))
                with world.lock:
                    world.run_due()
                    if fault is not None:
                        raise ApiError(500, fault.message or "Failed to attach network adapter device to %s" % sid)
                    if self.servers.get(sid) is not s:
                        raise ApiError(404, "Instance %s could not be found." % sid)
                    if self.attach_sets_task_state:
                        s.task_state = None
                    net, port = self._validate_attach(req, s, net_id, port_id, fixed_ips)
                    port = self._commit_attach(s, net, port, fixed_ips)
                    s.updated = world.now()
                    return json_response({"interfaceAttachment": self._iface_view(req, port)})
        finally:
            if self.attach_sets_task_state:
                with world.lock:
                    if s.task_state == "interface_attaching":
                        s.task_state = None

    def _commit_attach(self, s, net, port, fixed_ips):
        neutron = self.world.neutron
        failed = "Failed to attach network adapter device to %s" % s.id
        if port is not None:
            try:
                self._bind_existing_port(s, port, "attach")
            except ApiError:
                raise ApiError(500, failed)
            return port
        if s.node:
            pool, idx = s.node
            nic = pool.free_nic(idx, neutron.network_physnet(net))
            if nic is None:
                # Ironic: NoFreePhysicalPorts -> InterfaceAttachFailed, the port Nova made is deleted again
                raise ApiError(500, failed)
            try:
                port = neutron.create_port(net, s.project_id, mac=pool.mac(idx, nic), fixed_ips=fixed_ips,
                                           device_id=s.id, device_owner="compute:%s" % s.az, vnic_type="baremetal",
                                           profile=self._bm_profile(s, net, nic), nova_owned=True, bm_nic=nic,
                                           host_id=self._host_id_for_binding(s))
            except ApiError as e:
                raise ApiError(409 if e.status == 409 else 500, e.message if e.status == 409 else failed)
            pool.nic_ports[(idx, nic)] = port.id
        else:
            try:
                port = neutron.create_port(net, s.project_id, fixed_ips=fixed_ips, device_id=s.id,
                                           device_owner="compute:%s" % s.az, nova_owned=True,
                                           host_id=self._host_id_for_binding(s))
            except ApiError as e:
                raise ApiError(409 if e.status == 409 else 500, e.message if e.status == 409 else failed)
        s.port_ids.append(port.id)
        return port

    def detach_interface(self, req):
        s = self._get_server(req, req.params["server_id"])
        pid = req.params["port_id"]
        self._check_locked(req, s)
        self._check_attach_state(s, "detach_interface")
        if pid not in s.port_ids or pid not in self.world.neutron.ports:
            raise ApiError(404, "Port %s is not attached" % pid)
        if pid in s.detaching:
            return empty(202)
        s.detaching.add(pid)
        self.world.later(self.world.timing("detach"), self._finish_detach, s.id, pid)
        return empty(202)

    def _finish_detach(self, sid, pid):
        s = self.servers.get(sid)
        if s is None:
            return
        s.detaching.discard(pid)
        neutron = self.world.neutron
        port = neutron.ports.get(pid)
        if pid in s.port_ids:
            s.port_ids.remove(pid)
        if port is None:
            return
        if s.node and port.bm_nic:
            s.node[0].nic_ports.pop((s.node[1], port.bm_nic), None)
        if port.nova_owned:
            neutron.delete_port(pid, notify_nova=False)
        else:
            neutron.unbind(port)
        s.updated = self.world.now()

    # -- snapshot for /_sim/state -----------------------------------------------------------------------
    def summary(self, s):
        neutron = self.world.neutron
        return {
            "id": s.id, "name": s.name, "status": s.status, "task_state": s.task_state, "flavor": s.flavor["name"],
            "node": s.node[0].node_name(s.node[1]) if s.node else None, "ports": list(s.port_ids),
            "networks": [neutron.networks[neutron.ports[p].network_id]["name"] for p in s.port_ids
                         if p in neutron.ports and neutron.ports[p].network_id in neutron.networks],
            "owner": dict(s.owner) if s.owner else None, "locked": bool(s.locked), "tags": list(s.tags),
        }


def _nova_ts(ts):
    if ts is None:
        return None
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _fake_public_key(name):
    digest = hashlib.sha256(name.encode()).digest()
    blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + digest).decode()
    return "ssh-ed25519 %s %s@hpcops-sim" % (blob, name)
