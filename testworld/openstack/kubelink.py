"""The link to the Kubernetes test world: Magnum cluster servers become its nodes.

Every Magnum cluster reports ``kube_api_url`` as its API address, so the nodes that API
shows should be the cluster's servers. When a cluster server becomes ACTIVE it is
registered there (``PUT {kube_api_url}/_sim/nodes/{name}``, profile = the flavor name, the
labels and taint kubelet gets from Magnum's drivers); when it is deleted (or vanishes) the
node is removed (``DELETE``).

The calls go from a worker thread, never under the world lock, with a short timeout: a
kube world that is absent, slow or restarted costs a log line, not a stuck or broken cloud.
What the kube world should hold is kept here (name -> registration), so after an outage
the worker brings it up to date. Only a plain-HTTP URL that answers ``GET /_sim/nodes``
like the kube world is ever called: the https address of a real cluster never is. The kube
world serves TLS: its address is called only when the cloud was given the world's CA
(``kube_ca``), and the serving certificate is verified against it.
"""

import collections
import json
import logging
import queue
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

log = logging.getLogger(__name__)

# Labels and taints as Magnum's drivers have kubelet register them (--node-labels and
# --register-with-taints): the nodegroup and its role on every node; control-plane nodes
# carry the kubeadm role label and taint.
ROLE_LABEL = "magnum.openstack.org/role"
NODEGROUP_LABEL = "magnum.openstack.org/nodegroup"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
WORKER = "node-role.kubernetes.io/worker"

NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

TIMEOUT = 2.0      # seconds per call: the kube world answers in milliseconds when it is there
RETRY = 2.0        # seconds between attempts while it does not answer

_STOP = object()


def node_name(server):
    """The node name kubelet registers: the server name, or its sanitized hostname if that is no DNS name."""
    return server.name if NODE_NAME.match(server.name) and len(server.name) <= 253 else server.hostname


def _node_labels(ng):
    """A nodegroup's `node_labels` (Magnum API 1.14) as a mapping, whatever shape the client sent."""
    raw = getattr(ng, "node_labels", None)
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, str):
        pairs = (part.partition("=") for part in raw.split(",") if part.strip())
        return {key.strip(): value.strip() for key, _sep, value in pairs}
    return {}


def _node_taints(ng):
    """A nodegroup's `node_taints` as Kubernetes taints; entries are mappings or "key=value:Effect"."""
    out = []
    for item in getattr(ng, "node_taints", None) or []:
        if isinstance(item, dict) and item.get("key"):
            taint = {"key": str(item["key"]), "effect": str(item.get("effect") or "NoSchedule")}
            if item.get("value"):
                taint["value"] = str(item["value"])
            out.append(taint)
        elif isinstance(item, str) and item:
            head, _sep, effect = item.partition(":")
            key, _sep, value = head.partition("=")
            taint = {"key": key, "effect": effect or "NoSchedule"}
            if value:
                taint["value"] = value
            out.append(taint)
    return out


class KubeLink:
    """Keeps the kube world's nodes in step with the ACTIVE servers of Magnum clusters."""

    def __init__(self, world, url):
        self.world = world
        self.url = (url or "").rstrip("/")
        scheme = urllib.parse.urlparse(self.url).scheme if self.url else ""
        # the kube world serves TLS with the CA the cloud was given (or plain HTTP); any other https
        # address is a real API, left alone
        ca = getattr(world, "kube_ca", None)
        self._tls = ssl.create_default_context(cafile=ca["cert"]) if scheme == "https" and ca else None
        self.enabled = scheme == "http" or self._tls is not None
        self.state = "disabled" if not self.enabled else "unknown"
        self._lock = threading.Lock()
        self._queue = queue.Queue()
        self._thread = None
        self._stopped = False
        self._desired = {}                  # node name -> registration body (worker thread only)
        self._dirty = {}                    # names to bring in step, in order (a dict as an ordered set)
        self._registered = set()            # names the kube world has from us
        self._busy = False                  # the worker holds events it has not finished with
        self._next_probe = 0.0
        self.calls = 0
        self.errors = collections.deque(maxlen=20)

    # -- called by Nova under the world lock: no I/O here ----------------------------------------------
    def server_active(self, server):
        if not self.enabled or not (server.owner or {}).get("cluster"):
            return
        body = self._registration(server)
        if body is not None:
            self._submit(("put", node_name(server), body))

    def server_gone(self, server):
        if not self.enabled or not (server.owner or {}).get("cluster"):
            return
        self._submit(("delete", node_name(server), None))

    def _registration(self, server):
        owner = server.owner
        magnum = self.world.magnum
        cluster = magnum.clusters.get(owner["cluster"]) if magnum is not None else None
        ng = cluster.ng_by_uuid(owner.get("nodegroup")) if cluster is not None else None
        role = (ng.role if ng is not None else owner.get("role")) or "worker"
        master = role == "master"
        labels = _node_labels(ng) if ng is not None else {}
        labels.update({ROLE_LABEL: role, NODEGROUP_LABEL: ng.name if ng is not None else
                       ("default-master" if master else "default-worker")})
        labels[CONTROL_PLANE if master else WORKER] = ""
        taints = _node_taints(ng) if ng is not None else []
        if master:
            taints.append({"key": CONTROL_PLANE, "effect": "NoSchedule"})
        body = {"profile": (server.flavor or {}).get("name"), "labels": labels, "taints": taints,
                "providerID": "openstack:///%s" % server.id}
        fixed = [ip for _net, ip, kind, _mac in self.world.nova.server_ips(server) if kind == "fixed"]
        if fixed:
            body["address"] = fixed[0]
        return body

    def _submit(self, item):
        with self._lock:
            if self._stopped:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sim-openstack-kubelink", daemon=True)
                self._thread.start()
        self._queue.put(item)

    # -- worker thread ----------------------------------------------------------------------------------
    def _run(self):
        while True:
            wait = None
            if self._dirty:
                wait = max(0.05, self._next_probe - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            self._busy = True
            if item is not None:
                self._take(item)
                # a burst of events (a cluster of many servers) is sent in one pass
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        return
                    self._take(more)
            try:
                self._sync()
            except Exception as e:  # noqa: BLE001 - the link must never take the cloud down
                self._error("kube link: %r" % e)
            finally:
                self._busy = False

    def _take(self, item):
        op, name, body = item
        if op == "put":
            self._desired[name] = body
        else:
            self._desired.pop(name, None)
        self._dirty.pop(name, None)
        self._dirty[name] = True

    def _sync(self):
        if not self._dirty or not self._ready():
            return
        for name in list(self._dirty):
            if self.state != "up":
                return
            body = self._desired.get(name)
            if body is not None:
                status, answer = self._call("PUT", "/_sim/nodes/" + urllib.parse.quote(name), body)
                if status in (200, 201):
                    with self._lock:
                        self._registered.add(name)
                elif status is not None:
                    self._error("kube link: registering node %s (profile %s) failed: %s %s"
                                % (name, body.get("profile"), status, (answer or {}).get("error", answer)))
            elif name in self._registered:
                status, answer = self._call("DELETE", "/_sim/nodes/" + urllib.parse.quote(name))
                if status in (200, 404):
                    with self._lock:
                        self._registered.discard(name)
                elif status is not None:
                    self._error("kube link: removing node %s failed: %s %s" % (name, status, answer))
            else:
                status = 0
            if status is None:      # no answer: keep it for the next attempt
                return
            self._dirty.pop(name, None)

    def _ready(self):
        """Whether the kube world answers (probing it at most every RETRY seconds while it does not)."""
        if self.state == "up":
            return True
        if self.state == "not-a-kube-world" or time.monotonic() < self._next_probe:
            return False
        status, answer = self._call("GET", "/_sim/nodes", probe=True)
        if status == 200 and isinstance(answer, dict) and isinstance(answer.get("nodes"), list):
            if self.state == "down":
                log.warning("kube link: %s answers again", self.url)
            self.state = "up"
            # after an outage (perhaps a restart) the kube world may have lost anything
            with self._lock:
                gone = sorted(self._registered - set(self._desired))
            for name in list(self._desired) + gone:
                self._dirty.setdefault(name, True)
            return True
        if status is not None:
            self.state = "not-a-kube-world"
            self._error("kube link: %s is not a Kubernetes test world (GET /_sim/nodes: %s); nodes are not "
                        "registered" % (self.url, status))
        return False

    def _call(self, method, path, body=None, probe=False):
        """(status, JSON answer); status None when the kube world did not answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        # no proxy: the kube world is a local test server
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=self._tls))
        self.calls += 1
        try:
            with opener.open(req, timeout=TIMEOUT) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (OSError, ValueError) as e:
            if self.state != "down":
                self._error("kube link: %s does not answer (%s); retrying every %.0f s" % (self.url, e, RETRY))
            self.state = "down"
            self._next_probe = time.monotonic() + RETRY
            return None, None
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode(errors="replace")[:200]
        return status, answer

    def _error(self, message):
        log.warning("%s", message)
        self.errors.append(message)

    # -- control --------------------------------------------------------------------------------------------
    def idle(self):
        """Nothing left to send (or nothing that can be sent now)."""
        if not self.enabled:
            return True
        return self._queue.empty() and not self._busy and \
            (not self._dirty or self.state in ("down", "not-a-kube-world"))

    def describe(self):
        with self._lock:
            nodes = sorted(self._registered)
        return {"url": self.url or None, "state": self.state, "idle": self.idle(), "nodes": nodes,
                "pending": len(self._dirty) + self._queue.qsize(), "calls": self.calls, "errors": list(self.errors)}

    def stop(self):
        with self._lock:
            self._stopped = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(TIMEOUT + 1)
