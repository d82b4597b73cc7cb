"""Magnum (container-infra v1): microversions, cluster templates, clusters,
nodegroups, resize/upgrade actions, certificates, services.

Cluster behaviour (servers, Heat stacks, timings, failures) lives in
coe_drivers.py; this module is the API surface and the object model.
"""

import re
import time
import urllib.parse

from .coe_drivers import ALLOWED_UPDATE_STATUS, DRIVERS
from .httpserver import Service
from .util import ApiError, empty, is_uuid_like, iso_offset, json_response

MIN_VERSION = (1, 1)
MAX_VERSIONS = {"22": (1, 12), "23": (1, 14), "master": (1, 14)}
# Releases without the Heat driver, with the template's `driver` field and the
# image's `magnum_driver` property.
DRIVER_FIELD_RELEASES = ("23", "master")
SERVICE_NAMES = ("container-infra", "container-infrastructure-management", "container-infrastructure")
HEADER_SERVICE = "container-infrastructure-management"

CLUSTER_POST_FIELDS = {
    "name", "cluster_template_id", "keypair", "node_count", "master_count", "docker_volume_size", "labels",
    "master_flavor_id", "flavor_id", "create_timeout", "discovery_url", "fixed_network", "fixed_subnet",
    "floating_ip_enabled", "merge_labels", "master_lb_enabled",
}
CLUSTER_SUMMARY = ("uuid", "name", "cluster_template_id", "keypair", "docker_volume_size", "labels", "node_count",
                   "status", "master_flavor_id", "flavor_id", "create_timeout", "master_count", "stack_id",
                   "health_status")
CLUSTER_INTERNAL = ("/api_address", "/node_addresses", "/master_addresses", "/stack_id", "/ca_cert_ref",
                    "/magnum_cert_ref", "/trust_id", "/trustee_user_name", "/trustee_password", "/trustee_user_id",
                    "/etcd_ca_cert_ref", "/front_proxy_ca_cert_ref", "/uuid", "/id", "/created_at", "/updated_at")
TEMPLATE_FIELDS = (
    "name", "coe", "image_id", "keypair_id", "flavor_id", "master_flavor_id", "external_network_id", "fixed_network",
    "fixed_subnet", "network_driver", "volume_driver", "dns_nameserver", "docker_volume_size",
    "docker_storage_driver", "http_proxy", "https_proxy", "no_proxy", "registry_enabled", "labels", "tls_disabled",
    "public", "server_type", "insecure_registry", "master_lb_enabled", "floating_ip_enabled", "hidden", "tags",
    "apiserver_port", "driver",
)
TEMPLATE_UPDATABLE_WHEN_USED = ("/name", "/public", "/hidden")
NG_SUMMARY = ("uuid", "name", "flavor_id", "node_count", "role", "is_default", "image_id", "status", "stack_id")
_GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
          "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega")
NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*$")


# Which simulated driver serves a template that names none (image os_distro -> driver).
DRIVER_BY_DISTRO = {"fedora-coreos": "heat", "ubuntu": "capi", "flatcar": "capi", "rockylinux": "capi"}


class Template:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class NodeGroup:
    def __init__(self, **kw):
        self.members = []
        self.pending = None
        self.next_index = 0
        self.gen = None
        self.group_stack = None
        self.own_stack = None
        self.node_addresses = []
        self.status_reason = None
        self.node_labels = None
        self.node_taints = None
        self.__dict__.update(kw)


class Cluster:
    def __init__(self, magnum, **kw):
        self.magnum = magnum
        self.pending = None
        self.stack = None
        self.stack_id = None
        self.api_address = None
        self.api_fip = None
        self.coe_version = None
        self.container_version = None
        self.health_status = None
        self.health_status_reason = {}
        self.status_reason = None
        self.cas = {}
        self.nodegroups = []
        # monotonic time of the API create, None for scenario clusters (see Magnum.visible())
        self.accepted_at = None
        self.__dict__.update(kw)

    @property
    def template(self):
        return self.magnum.templates.get(self.template_id)

    def master_ng(self):
        for ng in self.nodegroups:
            if ng.role == "master" and ng.is_default:
                return ng
        return None

    def default_worker(self):
        for ng in self.nodegroups:
            if ng.role != "master" and ng.is_default:
                return ng
        return None

    def ng_by_uuid(self, uuid):
        for ng in self.nodegroups:
            if ng.uuid == uuid:
                return ng
        return None

    @property
    def node_count(self):
        return sum(ng.node_count for ng in self.nodegroups if ng.role != "master")

    @property
    def master_count(self):
        return sum(ng.node_count for ng in self.nodegroups if ng.role == "master")

    @property
    def master_count_spec(self):
        return self.master_count

    @property
    def node_count_spec(self):
        w = self.default_worker()
        return w.node_count if w else 0

    def template_coe_version(self):
        t = self.template
        return (self.labels.get("kube_tag") or (t.labels.get("kube_tag") if t else None) or "v1.30.4")


class Magnum(Service):
    name = "container-infra"
    prefix = "/container-infra"

    def __init__(self, world):
        super().__init__(world)
        scn = world.scenario
        self.release = str(scn.get("magnum_release", "22"))
        self.max_version = MAX_VERSIONS.get(self.release, MAX_VERSIONS["22"])
        cfg = scn.get("magnum") or {}
        quotas = scn.get("quotas") or {}
        self.max_clusters = int(quotas.get("clusters", cfg.get("max_clusters_per_project", 20)))
        # Real Magnum accepts clusters without a keypair; a scenario may still insist.
        self.require_keypair = bool(cfg.get("require_keypair", False))
        self.capi_resize_replaces = bool(cfg.get("capi_resize_replaces", True))
        self.default_driver = scn.get("default_driver", "heat")
        self.templates = {}
        self.clusters = {}
        self._db_id = 0
        self._ng_id = 0
        self.drivers = {name: cls(self) for name, cls in DRIVERS.items()}

    def error(self, status, message, title=None):
        return ApiError(status, message, title=title)

    # -- scenario ------------------------------------------------------------------------------
    def load(self):
        world = self.world
        project = world.keystone.default_project()
        user = world.keystone.first_user()
        for spec in world.scenario.get("cluster_templates") or []:
            body = {k: v for k, v in spec.items() if k in TEMPLATE_FIELDS}
            body.setdefault("coe", "kubernetes")
            if "image" in spec:
                body["image_id"] = spec["image"]
            if "keypair" in spec:
                body["keypair_id"] = spec["keypair"]
            # templates that predate an upgrade survive it, even for a driver the release dropped
            t = self._build_template(body, project["id"], user["id"], admin=True, check_release=False)
            if spec.get("uuid"):
                del self.templates[t.uuid]
                t.uuid = spec["uuid"]
                self.templates[t.uuid] = t
        for spec in world.scenario.get("clusters") or []:
            self._load_cluster(spec, project["id"], user["id"])

    def _load_cluster(self, spec, project_id, user_id):
        t = self.find_template(spec["template"], project_id)
        body = {k: spec[k] for k in CLUSTER_POST_FIELDS if k in spec}
        body["name"] = spec["name"]
        body["cluster_template_id"] = t.uuid
        body.setdefault("keypair", spec.get("keypair", t.keypair_id))
        c = self._build_cluster(body, t, project_id, user_id, version=self.max_version)
        for ngspec in spec.get("nodegroups") or []:
            ng = self._new_nodegroup(c, name=ngspec["name"], role=ngspec.get("role", "worker"),
                                     flavor_id=ngspec.get("flavor", c.flavor_id), image_id=ngspec.get("image", t.image_id),
                                     node_count=int(ngspec.get("node_count", 1)),
                                     min_node_count=int(ngspec.get("min_node_count", 0)),
                                     max_node_count=ngspec.get("max_node_count"), labels=dict(c.labels),
                                     is_default=False)
            c.nodegroups.append(ng)
        status = spec.get("status", "CREATE_COMPLETE")
        driver = c.driver
        if status == "CREATE_IN_PROGRESS":
            driver.create(c, complete_after=spec.get("complete_after"))
        else:
            driver.create(c, instant=True)
            if status.endswith("FAILED"):
                c.status = status
                c.status_reason = spec.get("status_reason", "Resource CREATE failed: simulated failure")
                for ng in c.nodegroups:
                    ng.status, ng.status_reason = status, c.status_reason
                driver.on_failed(c, status.split("_")[0], c.status_reason)
        for att in spec.get("attach") or []:
            net = self.world.neutron.find_network(att["network"])
            for ng in c.nodegroups:
                if ng.name == att.get("nodegroup", ng.name) and (ng.role != "master" or att.get("nodegroup")):
                    driver.attach_extra(c, ng, net, att.get("count"))

    # -- lookups ---------------------------------------------------------------------------------
    def _visible_template(self, t, project_id, admin=False):
        return t.project_id == project_id or t.public or admin

    def find_template(self, ident, project_id, admin=False):
        if ident in self.templates and self._visible_template(self.templates[ident], project_id, admin):
            return self.templates[ident]
        found = [t for t in self.templates.values() if t.name == ident and self._visible_template(t, project_id, admin)]
        if len(found) > 1:
            raise ApiError(409, "Multiple ClusterTemplates exist with same name. Please use the ClusterTemplate uuid "
                                "instead.")
        if not found:
            raise ApiError(404, "ClusterTemplate %s could not be found." % ident)
        return found[0]

    def find_cluster(self, ident, project_id, admin=False):
        if is_uuid_like(ident):
            c = self.clusters.get(ident)
            if c is None or not self.visible(c) or not (admin or c.project_id == project_id):
                raise ApiError(404, "Cluster %s could not be found." % ident)
            return c
        found = [c for c in self.clusters.values()
                 if c.name == ident and self.visible(c) and (admin or c.project_id == project_id)]
        if len(found) > 1:
            raise ApiError(409, "Multiple clusters exist with same name. Please use the cluster uuid instead.")
        if not found:
            raise ApiError(404, "Cluster %s could not be found." % ident)
        return found[0]

    def visible(self, c):
        """Whether the API sees the cluster yet: real Magnum's API hands a create to
        the conductor, which writes the database row a moment after the 202. The
        `cluster_visible` timing says how long that takes (read now, so a change of
        the timing applies to clusters created before it)."""
        return c.accepted_at is None or time.monotonic() - c.accepted_at >= self.world.timing("cluster_visible")

    def forget(self, cluster):
        self.clusters.pop(cluster.uuid, None)

    def driver_for_template(self, t):
        name = (t.labels or {}).get("hpcops_sim_driver")
        if not name and t.driver:
            d = t.driver.lower()
            name = "capi" if ("capi" in d or "cluster_api" in d or "cluster-api" in d) else "heat"
        if not name:
            # Magnum picks the driver that declares the (server_type, os_distro, coe) triple: the
            # Heat driver only Fedora CoreOS, the Cluster API drivers Ubuntu, Flatcar and Rocky.
            name = DRIVER_BY_DISTRO.get(t.cluster_distro) or self.default_driver
        if name not in self.drivers:
            raise ApiError(400, "Cluster type (%s, %s, %s) not supported." % (t.server_type, t.cluster_distro, t.coe))
        return self.drivers[name]

    def api_address_for(self, cluster, ip):
        if self.world.kube_api_url:
            return self.world.kube_api_url
        if ip is None:
            return None
        return "https://%s:6443" % ip

    # -- microversions -----------------------------------------------------------------------------
    def _vstr(self, v):
        return "%d.%d" % v

    def before(self, req):
        if not req.route.auth:
            return
        hdr = req.header("OpenStack-API-Version")
        requested = None
        if hdr:
            for part in hdr.split(","):
                bits = part.split()
                if len(bits) == 2 and bits[0].lower() in SERVICE_NAMES:
                    requested = bits[1]
                elif len(bits) != 2:
                    raise ApiError(406, "Invalid service type for OpenStack-API-Version header", title="Not Acceptable")
            if requested is None:
                raise ApiError(406, "Invalid service type for OpenStack-API-Version header", title="Not Acceptable")
        if requested is None:
            req.version = MIN_VERSION
            return
        if requested.lower() == "latest":
            req.version = self.max_version
            return
        try:
            v = tuple(int(x) for x in requested.split("."))
        except ValueError:
            v = ()
        if len(v) != 2:
            raise ApiError(406, "Invalid value for OpenStack-API-Version header", title="Not Acceptable")
        if v[0] != 1 or not (MIN_VERSION <= v <= self.max_version):
            detail = ("Version %s was requested but the minor version is not supported by this service. The "
                      "supported version range is: [%s, %s]." % (requested, self._vstr(MIN_VERSION),
                                                                 self._vstr(self.max_version)))
            raise ApiError(406, detail, body={"errors": [{
                "request_id": "", "code": "magnum.microversion-unsupported", "status": 406,
                "title": "Requested microversion is unsupported", "detail": detail, "message": detail,
                "min_version": self._vstr(MIN_VERSION), "max_version": self._vstr(self.max_version),
                "links": [{"rel": "help", "href": "https://docs.openstack.org/api-guide/compute/microversions.html"}],
            }]})
        req.version = v

    def after(self, req, resp):
        resp.headers["OpenStack-API-Minimum-Version"] = "%s %s" % (HEADER_SERVICE, self._vstr(MIN_VERSION))
        resp.headers["OpenStack-API-Maximum-Version"] = "%s %s" % (HEADER_SERVICE, self._vstr(self.max_version))
        if req.version is not None:
            # Magnum names itself, whichever of its aliases the request used.
            resp.headers["OpenStack-API-Version"] = "%s %s" % (HEADER_SERVICE, self._vstr(req.version))
        resp.headers["Vary"] = "OpenStack-API-Version"

    def need(self, req, version, api):
        if req.version < version:
            raise ApiError(406, "Version %s was requested but the requested API %s is not supported for this "
                                "version." % (self._vstr(req.version), api), title="Not Acceptable")

    def error_body(self, req, err):
        title = err.title or err.message.split(".", 1)[0]
        return {"errors": [{"request_id": "", "code": "server" if err.status >= 500 else "client",
                            "status": err.status, "title": title, "detail": err.message, "links": []}]}

    def not_found(self, req):
        return ApiError(404, "The resource could not be found.", title="Not Found")

    # -- routes ---------------------------------------------------------------------------------------
    def routes(self, r):
        p = "/container-infra/v1"
        r.add(self, "GET", "/container-infra", self.root, auth=False, locked=False)
        r.add(self, "GET", p, self.v1_root, auth=False, locked=False)
        r.add(self, "GET", p + "/clustertemplates", self.list_templates)
        r.add(self, "GET", p + "/clustertemplates/detail", self.list_templates_detail)
        r.add(self, "POST", p + "/clustertemplates", self.create_template)
        r.add(self, "GET", p + "/clustertemplates/{ident}", self.show_template)
        r.add(self, "PATCH", p + "/clustertemplates/{ident}", self.patch_template)
        r.add(self, "DELETE", p + "/clustertemplates/{ident}", self.delete_template)
        r.add(self, "GET", p + "/clusters", self.list_clusters)
        r.add(self, "GET", p + "/clusters/detail", self.list_clusters_detail)
        r.add(self, "POST", p + "/clusters", self.create_cluster)
        r.add(self, "GET", p + "/clusters/{ident}", self.show_cluster)
        r.add(self, "PATCH", p + "/clusters/{ident}", self.patch_cluster)
        r.add(self, "DELETE", p + "/clusters/{ident}", self.delete_cluster)
        r.add(self, "POST", p + "/clusters/{ident}/actions/resize", self.resize_cluster)
        r.add(self, "POST", p + "/clusters/{ident}/actions/upgrade", self.upgrade_cluster)
        r.add(self, "GET", p + "/clusters/{ident}/nodegroups", self.list_nodegroups)
        r.add(self, "POST", p + "/clusters/{ident}/nodegroups", self.create_nodegroup)
        r.add(self, "GET", p + "/clusters/{ident}/nodegroups/{ng}", self.show_nodegroup)
        r.add(self, "PATCH", p + "/clusters/{ident}/nodegroups/{ng}", self.patch_nodegroup)
        r.add(self, "DELETE", p + "/clusters/{ident}/nodegroups/{ng}", self.delete_nodegroup)
        r.add(self, "GET", p + "/certificates/{ident}", self.get_ca)
        r.add(self, "POST", p + "/certificates", self.sign_csr)
        r.add(self, "PATCH", p + "/certificates/{ident}", self.rotate_ca)
        r.add(self, "PATCH", p + "/credentials/{ident}", self.rotate_credentials)
        r.add(self, "GET", p + "/mservices", self.list_services)

    def _link(self, req, *parts):
        path = "/".join(parts)
        return [{"href": "%s/container-infra/v1/%s" % (req.host_url, path), "rel": "self"},
                {"href": "%s/container-infra/%s" % (req.host_url, path), "rel": "bookmark"}]

    def root(self, req):
        return json_response({
            "versions": [{"id": "v1", "links": [{"href": req.host_url + "/container-infra/v1/", "rel": "self"}],
                          "status": "CURRENT", "max_version": self._vstr(self.max_version),
                          "min_version": self._vstr(MIN_VERSION)}],
            "name": "OpenStack Magnum API",
            "description": "Magnum is an OpenStack project which aims to provide container cluster management.",
        })

    def v1_root(self, req):
        body = {"id": "v1", "links": [{"href": req.host_url + "/container-infra/v1/", "rel": "self"},
                                      {"href": "http://docs.openstack.org/developer/magnum/dev/api-spec-v1.html",
                                       "rel": "describedby", "type": "text/html"}],
                "media_types": [{"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}]}
        for coll in ("clustertemplates", "clusters", "quotas", "certificates", "mservices", "stats", "federations",
                     "nodegroups"):
            body[coll] = self._link(req, coll)
        return json_response(body)

    # -- cluster templates ------------------------------------------------------------------------------
    def _template_view(self, req, t):
        # One view for show and both lists: Magnum's template collection converts
        # every row in full (unlike clusters and nodegroups, it has no summary).
        d = {"uuid": t.uuid, "name": t.name, "tags": t.tags, "links": self._link(req, "clustertemplates", t.uuid)}
        for k in TEMPLATE_FIELDS:
            if k == "driver" and self.release not in DRIVER_FIELD_RELEASES:
                continue
            d[k] = getattr(t, k)
        d.update({"cluster_distro": t.cluster_distro, "project_id": t.project_id, "user_id": t.user_id,
                  "created_at": iso_offset(t.created), "updated_at": iso_offset(t.updated)})
        return d

    def _visible_templates(self, req):
        admin = req.token.is_admin
        return [t for t in sorted(self.templates.values(), key=lambda t: t.db_id)
                if self._visible_template(t, req.token.project_id, admin) and (not t.hidden or admin)]

    def _paged(self, req, items, key, resource_url, view):
        limit = req.q("limit")
        marker = req.q("marker")
        sort_key = req.q("sort_key", "id")
        sort_dir = req.q("sort_dir", "asc")
        if sort_dir not in ("asc", "desc"):
            raise ApiError(400, "Invalid sort direction: %s. Acceptable values are 'asc' or 'desc'" % sort_dir)
        attr = {"id": "db_id", "name": "name", "created_at": "created", "uuid": "uuid"}.get(sort_key, "db_id")
        items = sorted(items, key=lambda o: (getattr(o, attr, None) or 0) if attr != "name" else (o.name or ""),
                       reverse=sort_dir == "desc")
        if marker:
            idx = next((i for i, o in enumerate(items) if o.uuid == marker), None)
            if idx is None:
                raise ApiError(404, "%s %s could not be found." % (
                    "Cluster" if key == "clusters" else "ClusterTemplate", marker))
            items = items[idx + 1:]
        try:
            lim = int(limit) if limit is not None else 1000
        except ValueError:
            raise ApiError(400, "Invalid input for field/attribute limit. Value: '%s'. unable to convert to int" % limit)
        if lim <= 0:
            raise ApiError(400, "Limit must be positive")
        lim = min(lim, 1000)
        page = items[:lim]
        body = {key: [view(o) for o in page]}
        if page and len(page) == lim:
            args = "sort_key=%s&sort_dir=%s&" % (sort_key, sort_dir)
            body["next"] = "%s/container-infra/v1/%s?%slimit=%d&marker=%s" % (req.host_url, resource_url, args, lim,
                                                                              page[-1].uuid)
        return json_response(body)

    def list_templates(self, req):
        return self._paged(req, self._visible_templates(req), "clustertemplates", "clustertemplates",
                           lambda t: self._template_view(req, t))

    def list_templates_detail(self, req):
        return self._paged(req, self._visible_templates(req), "clustertemplates", "clustertemplates/detail",
                           lambda t: self._template_view(req, t))

    def show_template(self, req):
        t = self.find_template(req.params["ident"], req.token.project_id, req.token.is_admin)
        return json_response(self._template_view(req, t))

    def _validate_template_resources(self, body):
        world = self.world
        image = world.glance.find(body.get("image_id"))
        if image is None:
            raise ApiError(400, "Image %s could not be found." % body.get("image_id"))
        if not image.get("os_distro"):
            raise ApiError(400, "Image %s doesn't contain os_distro field." % body.get("image_id"))
        for key in ("flavor_id", "master_flavor_id"):
            if body.get(key) and world.nova.find_flavor(body[key]) is None:
                raise ApiError(400, "Unable to find flavor %s." % body[key])
        if body.get("external_network_id"):
            ext = [n for n in world.neutron.networks.values() if n.get("router:external") and
                   body["external_network_id"] in (n["id"], n["name"])]
            if not ext:
                raise ApiError(400, "Unable to find external network %s." % body["external_network_id"])
        if body.get("fixed_network") and world.neutron.find_network(body["fixed_network"]) is None:
            raise ApiError(400, "Unable to find fixed network %s." % body["fixed_network"])
        if body.get("fixed_subnet"):
            subs = [s for s in world.neutron.subnets.values() if body["fixed_subnet"] in (s.d["id"], s.d["name"])]
            if not subs:
                raise ApiError(400, "Unable to find fixed subnet %s." % body["fixed_subnet"])
        return image

    def _build_template(self, body, project_id, user_id, admin, check_release=True):
        for field in ("coe", "image_id"):
            if not body.get(field):
                raise ApiError(400, "Invalid input for field/attribute %s. Value: None. Mandatory field missing." % field)
        unknown = [k for k in body if k not in TEMPLATE_FIELDS]
        if unknown:
            raise ApiError(400, "Unknown attribute for argument cluster_template: %s" % ", ".join(sorted(unknown)))
        if "driver" in body and self.release not in DRIVER_FIELD_RELEASES:
            raise ApiError(400, "Unknown attribute for argument cluster_template: driver")
        if (body.get("public") or body.get("hidden")) and not admin:
            raise ApiError(403, "Not authorized to set public flag for cluster template.")
        image = self._validate_template_resources(body)
        # Magnum master takes the driver from the image's magnum_driver property
        driver_name = image.get("magnum_driver") if self.release in DRIVER_FIELD_RELEASES else None
        name = body.get("name") or "%s-%d-template" % (_GREEK[int(self.world.ids.random() * len(_GREEK))],
                                                       int(self.world.ids.random() * 100))
        now = self.world.now()
        self._db_id += 1
        t = Template(
            uuid=self.world.ids.uuid(), db_id=self._db_id, name=name, coe=body["coe"],
            image_id=body["image_id"], keypair_id=body.get("keypair_id"), flavor_id=body.get("flavor_id"),
            master_flavor_id=body.get("master_flavor_id"), external_network_id=body.get("external_network_id"),
            fixed_network=body.get("fixed_network"), fixed_subnet=body.get("fixed_subnet"),
            network_driver=body.get("network_driver", "flannel"), volume_driver=body.get("volume_driver"),
            dns_nameserver=body.get("dns_nameserver", "8.8.8.8"), docker_volume_size=body.get("docker_volume_size"),
            docker_storage_driver=body.get("docker_storage_driver", "overlay2"), http_proxy=body.get("http_proxy"),
            https_proxy=body.get("https_proxy"), no_proxy=body.get("no_proxy"),
            registry_enabled=bool(body.get("registry_enabled", False)),
            labels={str(k): str(v) if not isinstance(v, str) else v for k, v in (body.get("labels") or {}).items()},
            tls_disabled=bool(body.get("tls_disabled", False)), public=bool(body.get("public", False)),
            server_type=body.get("server_type", "vm"), insecure_registry=body.get("insecure_registry"),
            master_lb_enabled=bool(body.get("master_lb_enabled", False)),
            floating_ip_enabled=bool(body.get("floating_ip_enabled", True)), hidden=bool(body.get("hidden", False)),
            tags=body.get("tags"), apiserver_port=body.get("apiserver_port"), driver=driver_name,
            cluster_distro=image.get("os_distro"), project_id=project_id, user_id=user_id, created=now, updated=None,
        )
        if t.coe != "kubernetes" or t.server_type != "vm":
            raise ApiError(400, "Cluster type (%s, %s, %s) not supported." % (t.server_type, t.cluster_distro, t.coe))
        driver = self.driver_for_template(t)
        if driver.name == "heat" and self.release in DRIVER_FIELD_RELEASES and check_release:
            # the Heat driver is gone from Magnum master
            raise ApiError(400, "Cluster type (%s, %s, %s) not supported." % (t.server_type, t.cluster_distro, t.coe))
        self.templates[t.uuid] = t
        return t

    def create_template(self, req):
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input for field/attribute cluster_template.")
        t = self._build_template(dict(body), req.token.project_id, req.token.user_id, req.token.is_admin)
        return json_response(self._template_view(req, t), status=201,
                             headers={"Location": "%s/container-infra/v1/clustertemplates/%s" % (req.host_url, t.uuid)})

    def _in_use(self, t):
        return any(c.template_id == t.uuid for c in self.clusters.values())

    def patch_template(self, req):
        t = self.find_template(req.params["ident"], req.token.project_id, req.token.is_admin)
        patch = req.json()
        if not isinstance(patch, list):
            raise ApiError(400, "Invalid input for field/attribute patch. Value: %s." % patch)
        paths = [p.get("path", "") for p in patch]
        if self._in_use(t) and any(p not in TEMPLATE_UPDATABLE_WHEN_USED for p in paths):
            raise ApiError(400, "ClusterTemplate %s is referenced by one or multiple clusters." % t.uuid)
        current = self._template_view(req, t)
        updated = _apply_patch(current, patch, ("/uuid", "/id", "/project_id", "/user_id", "/created_at",
                                                "/updated_at", "/links", "/cluster_distro"))
        changed = {k: v for k, v in updated.items() if k in TEMPLATE_FIELDS and v != current.get(k)}
        if any(k in changed for k in ("image_id", "flavor_id", "master_flavor_id", "external_network_id",
                                      "fixed_network", "fixed_subnet")):
            merged = {k: updated.get(k) for k in TEMPLATE_FIELDS}
            image = self._validate_template_resources(merged)
            t.cluster_distro = image.get("os_distro")
        if ("public" in changed or "hidden" in changed) and not req.token.is_admin:
            raise ApiError(403, "Not authorized to set public flag for cluster template.")
        for k, v in changed.items():
            setattr(t, k, v if k != "labels" else dict(v or {}))
        t.updated = self.world.now()
        return json_response(self._template_view(req, t))

    def delete_template(self, req):
        t = self.find_template(req.params["ident"], req.token.project_id, req.token.is_admin)
        if self._in_use(t):
            raise ApiError(400, "ClusterTemplate %s is referenced by one or multiple clusters." % t.uuid)
        del self.templates[t.uuid]
        return empty(204)

    # -- clusters --------------------------------------------------------------------------------
    def _cluster_view(self, req, c, expand=True):
        v = req.version or MIN_VERSION
        driver = c.driver
        d = {
            "uuid": c.uuid, "name": c.name, "cluster_template_id": c.template_id, "keypair": c.keypair,
            "docker_volume_size": c.docker_volume_size, "labels": dict(c.labels), "node_count": c.node_count,
            "status": c.status, "master_flavor_id": c.master_flavor_id, "flavor_id": c.flavor_id,
            "create_timeout": c.create_timeout, "master_count": c.master_count, "stack_id": c.stack_id,
            "health_status": c.health_status, "links": self._link(req, "clusters", c.uuid),
        }
        if expand:
            parent = c.template.labels if c.template else {}
            overridden, added, skipped = _labels_diff(parent, c.labels)
            d.update({
                "status_reason": c.status_reason, "health_status_reason": dict(c.health_status_reason or {}),
                "discovery_url": c.discovery_url, "api_address": c.api_address, "coe_version": c.coe_version,
                "container_version": c.container_version, "project_id": c.project_id, "user_id": c.user_id,
                "node_addresses": driver.node_addresses(c, "worker") if c.status != "CREATE_IN_PROGRESS" else [],
                "master_addresses": driver.node_addresses(c, "master") if c.status != "CREATE_IN_PROGRESS" else [],
                "fixed_network": c.fixed_network, "fixed_subnet": c.fixed_subnet,
                "floating_ip_enabled": c.floating_ip_enabled, "master_lb_enabled": c.master_lb_enabled,
                "merge_labels": c.merge_labels, "labels_overridden": overridden, "labels_added": added,
                "labels_skipped": skipped, "created_at": iso_offset(c.created), "updated_at": iso_offset(c.updated),
                "faults": {ng.name: ng.status_reason for ng in c.nodegroups
                           if (ng.status or "").endswith("FAILED")} if (c.status or "").endswith("FAILED") else {},
            })
        if v >= (1, 13):
            d["cluster_id"] = d.pop("stack_id")
        return d

    def _visible_clusters(self, req):
        admin = req.token.is_admin
        return [c for c in self.clusters.values()
                if self.visible(c) and (admin or c.project_id == req.token.project_id)]

    def list_clusters(self, req):
        return self._paged(req, self._visible_clusters(req), "clusters", "clusters",
                           lambda c: self._cluster_view(req, c, expand=False))

    def list_clusters_detail(self, req):
        return self._paged(req, self._visible_clusters(req), "clusters", "clusters/detail",
                           lambda c: self._cluster_view(req, c))

    def show_cluster(self, req):
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        return json_response(self._cluster_view(req, c))

    def _check_int(self, body, field, minimum):
        if field not in body or body[field] is None:
            return
        val = body[field]
        if isinstance(val, bool) or not isinstance(val, int):
            try:
                val = int(val)
            except (TypeError, ValueError):
                raise ApiError(400, "Invalid input for field/attribute %s. Value: '%s'. unable to convert to int"
                               % (field, body[field]))
            body[field] = val
        if val < minimum:
            raise ApiError(400, "Invalid input for field/attribute %s. Value: '%s'. Value should be greater or "
                                "equal to %d" % (field, val, minimum))

    def create_cluster(self, req):
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input for field/attribute cluster.")
        unknown = sorted(k for k in body if k not in CLUSTER_POST_FIELDS)
        if unknown:
            raise ApiError(400, "Unknown attribute for argument cluster: %s" % ", ".join(unknown))
        if not body.get("cluster_template_id"):
            raise ApiError(400, "Invalid input for field/attribute cluster_template_id. Value: None. Mandatory field "
                                "missing.")
        name = body.get("name")
        if name is not None:
            if not isinstance(name, str) or len(name) > 242:
                raise ApiError(400, "Invalid input for field/attribute name. Value: '%s'. Value should have a maximum "
                                    "character requirement of 242" % name)
            if not NAME_RE.match(name):
                raise ApiError(400, "Invalid input for field/attribute name. Value: '%s'. Value should match the "
                                    "pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$" % name)
        self._check_int(body, "node_count", 0)
        self._check_int(body, "master_count", 1)
        self._check_int(body, "create_timeout", 0)
        self._check_int(body, "docker_volume_size", 1)
        if body.get("node_count") == 0 and req.version < (1, 10):
            raise ApiError(400, "Resizing a nodegroup to zero is not supported in the provided microversion.")
        project_id = req.token.project_id
        count = sum(1 for c in self.clusters.values() if c.project_id == project_id)
        if count >= self.max_clusters:
            raise ApiError(403, "Resource limit exceeded: You have reached the maximum clusters per project, %d. You "
                                "may delete a cluster to make room for a new one." % self.max_clusters)
        try:
            t = self.find_template(body["cluster_template_id"], project_id, req.token.is_admin)
        except ApiError as e:
            if e.status == 404:
                raise ApiError(400, e.message)
            raise
        c = self._build_cluster(dict(body), t, project_id, req.token.user_id, req.version, req)
        c.accepted_at = time.monotonic()
        c.driver.create(c)
        return json_response({"uuid": c.uuid}, status=202)

    def _build_cluster(self, body, t, project_id, user_id, version, req=None):
        world = self.world
        keypair = body.get("keypair") or t.keypair_id
        if keypair is None and self.require_keypair:
            raise ApiError(400, "A keypair is required: neither the cluster nor its cluster template "
                                "%s sets one." % t.uuid)
        if keypair is not None:
            owner = req.token.user_id if req is not None else user_id
            if world.nova.keypair(owner, keypair) is None:
                raise ApiError(404, "Unable to find keypair %s." % keypair)
        labels = body.get("labels")
        merge = bool(body.get("merge_labels", False))
        if not labels:
            labels = dict(t.labels)
        elif merge:
            merged = dict(t.labels)
            merged.update(labels)
            labels = merged
        labels = {str(k): v for k, v in labels.items()}
        fip = body.get("floating_ip_enabled")
        fip = t.floating_ip_enabled if fip is None else bool(fip)
        mlb = body.get("master_lb_enabled")
        mlb = t.master_lb_enabled if mlb is None else bool(mlb)
        attrs = {}
        for attr in ("docker_volume_size", "master_flavor_id", "flavor_id", "fixed_network", "fixed_subnet"):
            attrs[attr] = body.get(attr) or getattr(t, attr)
        merged_t = {"image_id": t.image_id, "flavor_id": attrs["flavor_id"], "master_flavor_id": attrs["master_flavor_id"],
                    "external_network_id": t.external_network_id, "fixed_network": attrs["fixed_network"],
                    "fixed_subnet": attrs["fixed_subnet"]}
        self._validate_template_resources(merged_t)
        master_count = int(body.get("master_count") or 1)
        if master_count > 1 and not mlb:
            raise ApiError(400, "master_count must be 1 when master_lb_enabled is False")
        net_ref = attrs["fixed_network"] or world.nova.primary_network_name()
        network = world.neutron.find_network(net_ref) if net_ref else None
        name = body.get("name") or "%s-%d-cluster" % (_GREEK[int(world.ids.random() * len(_GREEK))],
                                                      int(world.ids.random() * 100))
        now = world.now()
        self._db_id += 1
        c = Cluster(
            self, uuid=world.ids.uuid(), db_id=self._db_id, name=name, project_id=project_id, user_id=user_id,
            template_id=t.uuid, keypair=keypair, labels=labels, merge_labels=merge,
            docker_volume_size=attrs["docker_volume_size"], master_flavor_id=attrs["master_flavor_id"],
            flavor_id=attrs["flavor_id"], create_timeout=int(body.get("create_timeout") or 60),
            discovery_url=body.get("discovery_url"), fixed_network=attrs["fixed_network"],
            fixed_subnet=attrs["fixed_subnet"], floating_ip_enabled=fip, master_lb_enabled=mlb,
            status="CREATE_IN_PROGRESS", created=now, updated=None, network=network,
        )
        c.driver = self.driver_for_template(t)
        node_count = body.get("node_count")
        node_count = 1 if node_count is None else int(node_count)
        c.nodegroups.append(self._new_nodegroup(c, name="default-master", role="master",
                                                flavor_id=c.master_flavor_id or c.flavor_id, image_id=t.image_id,
                                                node_count=master_count, labels=dict(labels), is_default=True))
        c.nodegroups.append(self._new_nodegroup(c, name="default-worker", role="worker", flavor_id=c.flavor_id,
                                                image_id=t.image_id, node_count=node_count, labels=dict(labels),
                                                is_default=True))
        self.clusters[c.uuid] = c
        return c

    def _new_nodegroup(self, c, name, role, flavor_id, image_id, node_count, labels, is_default,
                       min_node_count=0, max_node_count=None, docker_volume_size=None, merge_labels=False):
        self._ng_id += 1
        now = self.world.now()
        return NodeGroup(
            uuid=self.world.ids.uuid(), id=self._ng_id, name=name, cluster_id=c.uuid, project_id=c.project_id,
            docker_volume_size=docker_volume_size if docker_volume_size is not None else c.docker_volume_size,
            labels=labels, flavor_id=flavor_id, image_id=image_id, node_count=node_count, role=role,
            min_node_count=min_node_count, max_node_count=max_node_count, is_default=is_default, stack_id=None,
            status="CREATE_IN_PROGRESS", version=None, created=now, updated=None, merge_labels=merge_labels,
        )

    def _check_updatable(self, c, verb):
        if c.status not in ALLOWED_UPDATE_STATUS:
            raise ApiError(400, '%s a cluster when status is "%s" is not supported.' % (verb, c.status))

    def patch_cluster(self, req):
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        patch = req.json()
        if not isinstance(patch, list):
            raise ApiError(400, "Invalid input for field/attribute patch. Value: %s." % patch)
        for p in patch:
            path = p.get("path", "") if isinstance(p, dict) else ""
            if path in CLUSTER_INTERNAL:
                raise ApiError(400, "'%s' is an internal attribute and can not be updated" % path)
        current = self._cluster_view(req, c)
        updated = _apply_patch(current, patch, ())
        delta = sorted(k for k in updated if updated.get(k) != current.get(k))
        disallowed = [k for k in delta if k not in ("node_count", "health_status", "health_status_reason")]
        if disallowed:
            raise ApiError(400, "cannot change cluster property(ies) %s." % ", ".join(disallowed))
        if "health_status" in delta:
            if updated["health_status"] not in ("HEALTHY", "UNHEALTHY", "UNKNOWN"):
                raise ApiError(400, "Invalid input for field/attribute health_status. Value: '%s'. Value should be "
                                    "one of: HEALTHY, UNHEALTHY, UNKNOWN" % updated["health_status"])
            c.health_status = updated["health_status"]
        if "health_status_reason" in delta:
            c.health_status_reason = dict(updated["health_status_reason"] or {})
        if "node_count" in delta:
            n = updated["node_count"]
            if not isinstance(n, int) or n < 0:
                raise ApiError(400, "Invalid input for field/attribute node_count. Value: '%s'. Value should be "
                                    "greater or equal to 0" % n)
            if n == 0 and req.version < (1, 10):
                raise ApiError(400, "Resizing a nodegroup to zero is not supported in the provided microversion.")
            self._check_updatable(c, "Updating")
            # like Magnum, the patched count applies to the default worker nodegroup
            worker = c.default_worker()
            if n != worker.node_count:
                c.driver.resize(c, worker, n, [])
        return json_response({"uuid": c.uuid}, status=202)

    def delete_cluster(self, req):
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        self.delete_cluster_internal(c)
        return empty(204)

    def delete_cluster_internal(self, c):
        if c.status == "DELETE_IN_PROGRESS" and c.pending is not None:
            return
        c.driver.delete(c)

    def _resolve_ng(self, c, ident):
        for ng in c.nodegroups:
            if ng.uuid == ident:
                return ng
        found = [ng for ng in c.nodegroups if ng.name == ident]
        if not found:
            raise ApiError(404, "Nodegroup %s could not be found." % ident)
        return found[0]

    def resize_cluster(self, req):
        self.need(req, (1, 7), "resize")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        body = req.json()
        if not isinstance(body, dict) or body.get("node_count") is None:
            raise ApiError(400, "Invalid input for field/attribute node_count. Value: None. Mandatory field missing.")
        self._check_int(body, "node_count", 0)
        n = body["node_count"]
        if n == 0 and req.version < (1, 10):
            raise ApiError(400, "Resizing a nodegroup to zero is not supported in the provided microversion.")
        ng = self._resolve_ng(c, body["nodegroup"]) if body.get("nodegroup") else c.default_worker()
        if ng.role != "master":
            if ng.min_node_count > n or (ng.max_node_count and ng.max_node_count < n):
                raise ApiError(400, "Resizing %s outside the allowed range: min_node_count = %s, max_node_count = %s"
                               % (ng.name, ng.min_node_count, ng.max_node_count))
        else:
            c.driver.validate_master_resize(n)
        self._check_updatable(c, "Resizing")
        nodes_to_remove = body.get("nodes_to_remove") or []
        if not isinstance(nodes_to_remove, list):
            raise ApiError(400, "Invalid input for field/attribute nodes_to_remove. Value: '%s'. Value should be a "
                                "list" % nodes_to_remove)
        c.driver.resize(c, ng, n, nodes_to_remove)
        return json_response({"uuid": c.uuid}, status=202)

    def upgrade_cluster(self, req):
        self.need(req, (1, 7), "upgrade")
        if req.version < (1, 8):
            raise ApiError(400, "Cluster upgrade is not supported in the provided microversion.")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        body = req.json()
        if not isinstance(body, dict) or not body.get("cluster_template"):
            raise ApiError(400, "Invalid input for field/attribute cluster_template. Value: None. Mandatory field "
                                "missing.")
        if body.get("max_batch_size") is not None:
            self._check_int(body, "max_batch_size", 1)
        t = self.find_template(body["cluster_template"], req.token.project_id, req.token.is_admin)
        if body.get("nodegroup"):
            ng = self._resolve_ng(c, body["nodegroup"])
            if t.uuid != c.template_id and not ng.is_default:
                raise ApiError(409, "Cluster Template is not valid for upgrade: Nodegroup %s can be upgraded only to "
                                    "match cluster's template (%s)." % (ng.name, c.template.name if c.template else ""))
        else:
            ng = c.default_worker()
        self._check_updatable(c, "Upgrading")
        c.driver.upgrade(c, t, ng, body.get("max_batch_size") or 1)
        return json_response({"uuid": c.uuid}, status=202)

    # -- nodegroups -------------------------------------------------------------------------------
    def _ng_view(self, req, c, ng, expand=True):
        d = {"uuid": ng.uuid, "name": ng.name, "flavor_id": ng.flavor_id, "node_count": ng.node_count,
             "role": ng.role, "is_default": ng.is_default, "image_id": ng.image_id, "status": ng.status,
             "stack_id": ng.stack_id}
        if not expand:
            return d
        overridden, added, skipped = _labels_diff(c.labels, ng.labels or {})
        d.update({
            "id": ng.id, "cluster_id": c.uuid, "project_id": ng.project_id, "docker_volume_size": ng.docker_volume_size,
            "labels": dict(ng.labels or {}), "links": self._link(req, "clusters", c.uuid, "nodegroups", ng.uuid),
            "node_addresses": list(ng.node_addresses or []) if c.driver.heat_stacks else [],
            "min_node_count": ng.min_node_count, "max_node_count": ng.max_node_count, "status_reason": ng.status_reason,
            "version": ng.version, "merge_labels": ng.merge_labels, "labels_overridden": overridden,
            "labels_added": added, "labels_skipped": skipped, "created_at": iso_offset(ng.created),
            "updated_at": iso_offset(ng.updated),
        })
        if req.version >= (1, 14):
            d["node_labels"] = ng.node_labels
            d["node_taints"] = ng.node_taints
        return d

    def list_nodegroups(self, req):
        self.need(req, (1, 9), "nodegroups")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        items = sorted(c.nodegroups, key=lambda n: n.id)
        role = req.q("role")
        if role:
            items = [n for n in items if n.role == role]
        limit = req.q("limit")
        marker = req.q("marker")
        if marker:
            idx = next((i for i, n in enumerate(items) if n.uuid == marker), None)
            if idx is None:
                raise ApiError(404, "Nodegroup %s could not be found." % marker)
            items = items[idx + 1:]
        lim = min(int(limit), 1000) if limit else 1000
        page = items[:lim]
        body = {"nodegroups": [self._ng_view(req, c, n, expand=False) for n in page]}
        if page and len(page) == lim:
            body["next"] = "%s/container-infra/v1/clusters/%s/nodegroups?sort_key=id&sort_dir=asc&limit=%d&marker=%s" % (
                req.host_url, c.uuid, lim, page[-1].uuid)
        return json_response(body)

    def show_nodegroup(self, req):
        self.need(req, (1, 9), "nodegroups")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        return json_response(self._ng_view(req, c, self._resolve_ng(c, req.params["ng"])))

    def create_nodegroup(self, req):
        self.need(req, (1, 9), "nodegroups")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input for field/attribute nodegroup.")
        allowed = {"name", "flavor_id", "image_id", "node_count", "role", "min_node_count", "max_node_count",
                   "docker_volume_size", "labels", "merge_labels"}
        if req.version >= (1, 14):
            allowed |= {"node_labels", "node_taints"}
        unknown = sorted(k for k in body if k not in allowed)
        if unknown:
            raise ApiError(400, "Unknown attribute for argument nodegroup: %s" % ", ".join(unknown))
        if not c.api_address:
            raise ApiError(409, "Cluster API address is not available yet")
        name = body.get("name")
        if not name:
            raise ApiError(400, "Invalid input for field/attribute name. Value: None. Mandatory field missing.")
        if any(ng.name == name for ng in c.nodegroups):
            raise ApiError(409, "A node group with name %s already exists in the cluster %s." % (name, c.name))
        for f in ("node_count", "min_node_count", "max_node_count"):
            self._check_int(body, f, 0)
        node_count = 1 if body.get("node_count") is None else body["node_count"]
        if node_count == 0 and req.version < (1, 10):
            raise ApiError(400, "Resizing a nodegroup to zero is not supported in the provided microversion.")
        min_nc = body.get("min_node_count") or 0
        max_nc = body.get("max_node_count")
        if max_nc:
            if max_nc < min_nc:
                raise ApiError(409, "max_node_count for %s is invalid (min_node_count (%s) should be less or equal to "
                                    "max_node_count (%s))." % (name, min_nc, max_nc))
            if node_count > max_nc:
                raise ApiError(409, "max_node_count for %s is invalid (node_count (%s) should be less or equal to "
                                    "max_node_count (%s))." % (name, node_count, max_nc))
        role = (body.get("role") or "worker").strip().lower()
        if role in ("master", "control-plane", "controlplane"):
            raise ApiError(400, "Creating master nodegroups is currently not supported.")
        flavor_id = body.get("flavor_id") or c.flavor_id
        if flavor_id and self.world.nova.find_flavor(flavor_id) is None:
            raise ApiError(400, "Unable to find flavor %s." % flavor_id)
        image_id = body.get("image_id") or (c.template.image_id if c.template else None)
        if body.get("labels") is None:
            labels = dict(c.labels)
        elif body.get("merge_labels"):
            labels = dict(c.labels)
            labels.update(body["labels"])
        else:
            labels = dict(body["labels"])
        ng = self._new_nodegroup(c, name=name, role=role, flavor_id=flavor_id, image_id=image_id,
                                 node_count=node_count, labels=labels, is_default=False, min_node_count=min_nc,
                                 max_node_count=max_nc, docker_volume_size=body.get("docker_volume_size"),
                                 merge_labels=bool(body.get("merge_labels", False)))
        ng.node_labels = body.get("node_labels")
        ng.node_taints = body.get("node_taints")
        c.nodegroups.append(ng)
        c.driver.create_nodegroup(c, ng)
        return json_response(self._ng_view(req, c, ng), status=202)

    def patch_nodegroup(self, req):
        self.need(req, (1, 9), "nodegroups")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        ng = self._resolve_ng(c, req.params["ng"])
        patch = req.json()
        if not isinstance(patch, list):
            raise ApiError(400, "Invalid input for field/attribute patch. Value: %s." % patch)
        allowed = {"/min_node_count", "/max_node_count"}
        if req.version >= (1, 14):
            allowed |= {"/node_labels", "/node_taints"}
        for p in patch:
            path = p.get("path", "") if isinstance(p, dict) else ""
            if path not in allowed:
                raise ApiError(400, "'%s' is an internal attribute and can not be updated" % path)
        current = self._ng_view(req, c, ng)
        updated = _apply_patch(current, patch, ())
        min_nc = updated.get("min_node_count") or 0
        max_nc = updated.get("max_node_count")
        for val, f in ((min_nc, "min_node_count"), (max_nc, "max_node_count")):
            if val is not None and (not isinstance(val, int) or val < 0):
                raise ApiError(400, "Invalid input for field/attribute %s. Value: '%s'." % (f, val))
        if max_nc:
            if max_nc < min_nc:
                raise ApiError(409, "max_node_count for %s is invalid (min_node_count (%s) should be less or equal to "
                                    "max_node_count (%s))." % (ng.name, min_nc, max_nc))
            if ng.node_count > max_nc:
                raise ApiError(409, "max_node_count for %s is invalid (node_count (%s) should be less or equal to "
                                    "max_node_count (%s))." % (ng.name, ng.node_count, max_nc))
        ng.min_node_count = min_nc
        ng.max_node_count = max_nc
        if req.version >= (1, 14):
            ng.node_labels = updated.get("node_labels")
            ng.node_taints = updated.get("node_taints")
        ng.updated = self.world.now()
        return json_response(self._ng_view(req, c, ng), status=202)

    def delete_nodegroup(self, req):
        self.need(req, (1, 9), "nodegroups")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        ng = self._resolve_ng(c, req.params["ng"])
        if ng.is_default:
            raise ApiError(400, "Deleting a default nodegroup is not supported.")
        c.driver.delete_nodegroup(c, ng)
        return empty(204)

    # -- certificates, credentials, services ---------------------------------------------------------
    def _ca(self, c, kind="kubernetes"):
        ca = c.cas.get(kind)
        if ca is None:
            from .certs import CertificateAuthority

            if kind == "kubernetes" and self.world.kube_ca:
                ca = CertificateAuthority.from_files(self.world.kube_ca["cert"], self.world.kube_ca["key"])
            else:
                ca = CertificateAuthority(c.name if kind == "kubernetes" else "%s-%s" % (c.name, kind))
            c.cas[kind] = ca
        return ca

    def get_ca(self, req):
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        kind = req.q("ca_cert_type") or "kubernetes"
        if kind not in ("kubernetes", "etcd", "front_proxy", "front-proxy"):
            raise ApiError(400, "Invalid ca_cert_type %s" % kind)
        return json_response({"cluster_uuid": c.uuid, "pem": self._ca(c, kind.replace("-", "_")).pem,
                              "links": self._link(req, "certificates", c.uuid)})

    def sign_csr(self, req):
        body = req.json()
        if not isinstance(body, dict) or not body.get("cluster_uuid"):
            raise ApiError(400, "Invalid input for field/attribute cluster_uuid. Value: None. Mandatory field missing.")
        c = self.find_cluster(body["cluster_uuid"], req.token.project_id, req.token.is_admin)
        csr = body.get("csr")
        if not csr:
            raise ApiError(400, "Invalid input for field/attribute csr. Value: None. Mandatory field missing.")
        try:
            pem = self._ca(c).sign_csr(csr)
        except (ValueError, TypeError):
            raise ApiError(400, "Received invalid csr %s." % csr)
        return json_response({"cluster_uuid": c.uuid, "csr": csr, "pem": pem,
                              "links": self._link(req, "certificates", c.uuid)}, status=201)

    def rotate_ca(self, req):
        self.need(req, (1, 5), "certificates rotation")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        self._check_updatable(c, "Rotating the CA of")
        c.cas.pop("kubernetes", None)
        return empty(202)

    def rotate_credentials(self, req):
        self.need(req, (1, 12), "credentials")
        c = self.find_cluster(req.params["ident"], req.token.project_id, req.token.is_admin)
        self._check_updatable(c, "Updating")
        return json_response({"uuid": c.uuid}, status=202)

    def list_services(self, req):
        now = iso_offset(self.world.now())
        return json_response({"mservices": [{
            "id": 1, "host": "magnum-sim", "binary": "magnum-conductor", "state": "up", "disabled": False,
            "disabled_reason": None, "report_count": 1, "created_at": now, "updated_at": now}]})

    # -- snapshot ----------------------------------------------------------------------------------------
    def summary(self, c):
        return {
            "uuid": c.uuid, "name": c.name, "status": c.status, "status_reason": c.status_reason,
            "driver": c.driver.name, "stack_id": c.stack_id, "api_address": c.api_address,
            "template": c.template_id, "node_count": c.node_count, "master_count": c.master_count,
            "nodegroups": [{"name": ng.name, "uuid": ng.uuid, "role": ng.role, "status": ng.status,
                            "node_count": ng.node_count, "servers": [m.server_id for m in ng.members],
                            "server_names": [m.name for m in ng.members]} for ng in c.nodegroups],
        }


def _labels_diff(parent, labels):
    overridden, added = {}, {}
    skipped = {k: v for k, v in (parent or {}).items() if k not in labels}
    for k, v in labels.items():
        if k in (parent or {}):
            if parent[k] != v:
                overridden[k] = parent[k]
        else:
            added[k] = v
    return overridden, added, skipped


def _apply_patch(doc, patch, forbidden):
    """Minimal RFC 6902 add/replace/remove on top-level and one nested level."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    for op in patch:
        if not isinstance(op, dict) or "path" not in op or "op" not in op:
            raise ApiError(400, "Couldn't apply patch '%s'. Reason: invalid patch operation" % patch)
        path = op["path"]
        if path in forbidden:
            raise ApiError(400, "'%s' is an internal attribute and can not be updated" % path)
        parts = [urllib.parse.unquote(p).replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if not parts or not parts[0]:
            raise ApiError(400, "Couldn't apply patch '%s'. Reason: invalid path %s" % (patch, path))
        target = out
        for p in parts[:-1]:
            if not isinstance(target.get(p), dict):
                target[p] = {}
            target = target[p]
        key = parts[-1]
        if op["op"] in ("add", "replace"):
            if "value" not in op:
                raise ApiError(400, "Couldn't apply patch '%s'. Reason: 'value' is required" % patch)
            if op["op"] == "replace" and key not in target and len(parts) > 1:
                raise ApiError(400, "Couldn't apply patch '%s'. Reason: can't replace a non-existent object '%s'"
                               % (patch, key))
            target[key] = op["value"]
        elif op["op"] == "remove":
            if key not in target:
                raise ApiError(400, "Couldn't apply patch '%s'. Reason: can't remove a non-existent object '%s'"
                               % (patch, key))
            if len(parts) == 1:
                target[key] = None
            else:
                del target[key]
        else:
            raise ApiError(400, "Couldn't apply patch '%s'. Reason: unsupported op %s" % (patch, op["op"]))
    return out
