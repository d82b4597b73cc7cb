"""KubeWorld: the API server and its controllers in a background thread.

    world = KubeWorld.start(scenario="testworld/scenarios/kube-accelerators.yml", state_dir=tmp)
    world.url, world.kubeconfig         # https://127.0.0.1:PORT, <state_dir>/kubeconfig (context hpcops-sim)
    world.ca_file, world.ca_key_file    # the cluster CA (<state_dir>/ca.crt, ca.key): it signs the serving
                                        # certificate and the client certificates the API server accepts
    world.add_token("t0k3n", "alice", groups=["ops"])   # another bearer token (rights: RBAC objects)
    world.deny("daemonsets", "create", group="apps")
    world.never_ready("registry.example.com/broken/*")
    world.set_kernel("gpu-2", "5.14.0-503.11.1.el9_5.x86_64")
    world.register_node("kube-abc-gpu-1", "bm.gpu", labels={...})   # or PUT {url}/_sim/nodes/{name}
    world.unregister_node("kube-abc-gpu-1")                          # or DELETE {url}/_sim/nodes/{name}
    world.requests()
    world.stop()
"""

import asyncio
import base64
import copy
import os
import ssl
import tempfile
import threading
import time

import yaml
from aiohttp.test_utils import RawTestServer

from testworld.kubernetes import scenario as scenario_mod
from testworld.kubernetes.admin import SimAdmin
from testworld.kubernetes.apiserver import ApiServer
from testworld.kubernetes.controllers import Simulation
from testworld.openstack.certs import CertificateAuthority

CONTEXT = "hpcops-sim"
TOKEN = "hpcops-sim-token"
# Who the world's own kubeconfig is: a cluster administrator, as the kubeconfig of a new cluster.
ADMIN_USER = "hpcops-sim-admin"
ADMIN_GROUPS = ("system:masters",)
# Names the serving certificate is valid for.
SERVING_HOSTS = ("127.0.0.1", "localhost")


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


class KubeWorld:
    def __init__(self, scenario, state_dir, port=0, nfd_interval=0.3, tick=0.05, pod_start=0.1, job_run=0.2,
                 ca=None):
        self.scenario = scenario if isinstance(scenario, scenario_mod.Scenario) else scenario_mod.load(scenario)
        self.state_dir = state_dir
        self.port = port
        self.server = ApiServer(kube_version=self.scenario.kubernetes_version)
        self.server.denials.extend(copy.deepcopy(self.scenario.rbac_deny))
        self.sim = Simulation(self.server, self.scenario, nfd_interval=nfd_interval, tick=tick,
                              pod_start=pod_start, job_run=job_run)
        self.server.admin = SimAdmin(self.sim)
        self.server.add_token(TOKEN, ADMIN_USER, ADMIN_GROUPS)
        self.url = None
        self.kubeconfig = None
        # {"cert": path, "key": path}: an existing cluster CA (one a cloud was given before the world started)
        self.ca_files = ca
        self.ca_file = None
        self.ca_key_file = None
        self.ca = None
        self._loop = None
        self._thread = None
        self._stopped = None

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, scenario, state_dir=None, port=0, **options):
        if state_dir is None:
            state_dir = tempfile.mkdtemp(prefix="kubeworld-")
        os.makedirs(state_dir, exist_ok=True)
        world = cls(scenario, state_dir, port, **options)
        world._start()
        return world

    def _tls(self):
        """The cluster CA (kept in the state directory: a linked cloud signs client certificates with it)
        and a server context that asks for client certificates and trusts those the CA signed."""
        if self.ca_files:
            self.ca_file, self.ca_key_file = self.ca_files["cert"], self.ca_files["key"]
        else:
            self.ca_file = os.path.join(self.state_dir, "ca.crt")
            self.ca_key_file = os.path.join(self.state_dir, "ca.key")
        if os.path.exists(self.ca_file) and os.path.exists(self.ca_key_file):
            self.ca = CertificateAuthority.from_files(self.ca_file, self.ca_key_file)
        else:
            self.ca = CertificateAuthority("%s-ca" % (self.scenario.name or CONTEXT))
            with open(self.ca_file, "w", encoding="utf-8") as handle:
                handle.write(self.ca.pem)
            _write_private(self.ca_key_file, self.ca.key_pem)
        cert_pem, key_pem = self.ca.issue("kube-apiserver", hosts=SERVING_HOSTS)
        serving = os.path.join(self.state_dir, "apiserver.pem")
        _write_private(serving, cert_pem + key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.ca_file)
        context.load_cert_chain(serving)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def _start(self):
        ready = threading.Event()
        failure = []
        tls = self._tls()

        async def main():
            self._stopped = asyncio.Event()
            try:
                self.sim.bootstrap()
                http = RawTestServer(self.server, host="127.0.0.1", port=self.port or None)
                await http.start_server(ssl=tls)
            except Exception as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                ready.set()
                return
            self.port = http.port
            controllers = asyncio.get_running_loop().create_task(self.sim.run())
            ready.set()
            await self._stopped.wait()
            self.sim._running = False
            controllers.cancel()
            try:
                await controllers
            except asyncio.CancelledError:
                pass
            await http.close()

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),),
                                        name="kubeworld", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        self.url = "https://127.0.0.1:%d" % self.port
        self.kubeconfig = os.path.join(self.state_dir, "kubeconfig")
        self._write_kubeconfig()

    def _write_kubeconfig(self):
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT, "preferences": {},
            "clusters": [{"name": CONTEXT, "cluster": {
                "server": self.url,
                "certificate-authority-data": base64.b64encode(self.ca.pem.encode()).decode()}}],
            "users": [{"name": CONTEXT, "user": {"token": TOKEN}}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
        }
        _write_private(self.kubeconfig, yaml.safe_dump(config, sort_keys=False))

    def add_token(self, token, user, groups=()):
        """Accept bearer `token` as `user` (in `groups`); what it may do is up to RBAC objects
        (Role/ClusterRole and their bindings), or everything in group system:masters."""
        self.call(self.server.add_token, token, user, groups)

    def client_certificate(self, user, groups=()):
        """A client certificate the cluster CA signed for `user` (CN) in `groups` (O): (cert PEM, key PEM)."""
        return self.ca.issue(user, organizations=groups)

    def ssl_context(self):
        """A client TLS context that verifies the world's serving certificate against the cluster CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def stop(self):
        if self._loop is None or self._thread is None:
            return
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ inspection (thread-safe)

    def call(self, fn, *args, **kwargs):
        """Run `fn` on the world's event loop and return its result."""
        async def run():
            return fn(*args, **kwargs)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def requests(self):
        """Every request served so far: method, path, query, verb, resource, code, ..."""
        return self.call(self.server.request_log)

    def get(self, api_version, kind, name, namespace=None):
        return self.call(lambda: self.sim.get(api_version, kind, namespace, name))

    def list(self, api_version, kind, namespace=None, label_selector=None):
        return self.call(lambda: self.sim.list(api_version, kind, namespace, label_selector))

    def node_labels(self, name):
        node = self.get("v1", "Node", name)
        return (node or {}).get("metadata", {}).get("labels", {})

    def allocatable(self, name):
        node = self.get("v1", "Node", name)
        return ((node or {}).get("status") or {}).get("allocatable", {})

    def wait_for(self, predicate, timeout=10.0, interval=0.05, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
            time.sleep(interval)

    def apply(self, obj, manager="testworld"):
        """Server-side apply `obj` directly in the store (no HTTP), for test set-up."""
        def run():
            kind = self.server.kind_for(obj["apiVersion"], obj["kind"])
            if kind is None:
                raise KeyError("%s %s is not served" % (obj["apiVersion"], obj["kind"]))
            meta = obj["metadata"]
            return self.server.apply(kind, obj, meta.get("namespace"), meta["name"], manager, force=True)
        result = self.call(run)
        self.kick()
        return result

    def delete(self, api_version, kind, name, namespace=None):
        def run():
            k = self.server.kind_for(api_version, kind)
            self.server.delete(k, namespace, name)
        self.call(run)

    def label_node(self, name, labels):
        """Merge `labels` (None removes a label) into a node's labels."""
        def run():
            k = self.server.kind_for("v1", "Node")
            self.server.patch(k, None, name, {"metadata": {"labels": labels}}, "merge", manager="testworld")
        self.call(run)

    @property
    def errors(self):
        return list(self.sim.errors)

    @property
    def nfd_rejected_labels(self):
        return list(self.sim.nfd_rejected)

    # ------------------------------------------------------------ faults and world events

    def deny(self, resource, verb="*", group=None, namespace=None, user=None):
        """Answer 403 Forbidden (with a Status body) for `verb` on `resource`."""
        rule = {"resource": resource, "verb": verb}
        if group is not None:
            rule["group"] = group
        if namespace is not None:
            rule["namespace"] = namespace
        if user is not None:
            rule["user"] = user
        self.call(self.server.denials.append, rule)
        return rule

    def allow(self, rule=None):
        if rule is None:
            self.call(self.server.denials.clear)
        else:
            self.call(self.server.denials.remove, rule)

    def conflict(self, resource, verb="*", count=1):
        """Answer the next `count` writes to `resource` with 409 Conflict."""
        self.call(self.server.conflicts.append, {"resource": resource, "verb": verb, "remaining": count})

    def never_ready(self, pattern):
        """Pods using an image matching `pattern` (fnmatch) never pull it."""
        self.call(self.sim.never_ready.append, pattern)

    def fail_command(self, node="*", match="", message=None):
        """Run-to-completion containers on `node` whose command contains `match` fail."""
        rule = {"node": node, "match": match}
        if message:
            rule["message"] = message
        self.call(self.sim.fail_commands.append, rule)

    def nfd_withhold_label(self, node, key):
        """nfd-master never writes label `key` on nodes matching `node` (fnmatch), as when an admission policy
        or a label whitelist drops it; the NodeFeature still lists the devices."""
        self.call(self.sim.nfd_withheld.append, (node, key))

    def register_node(self, name, profile, labels=None, taints=None, annotations=None, address=None,
                      provider_id=None):
        """A node joins with the hardware of the scenario's `profile` (as PUT /_sim/nodes/{name} does).

        Returns the Node; registering an existing node again merges labels and taints."""
        return self.call(self.sim.register_node, name, profile, labels, taints, annotations, address,
                         provider_id)[0]

    def unregister_node(self, name):
        """The node leaves for good, with its pods (as DELETE /_sim/nodes/{name} does); False if unknown."""
        return self.call(self.sim.unregister_node, name)

    def registered_nodes(self):
        """Every node with simulated hardware: name, profile (None for scenario nodes), kernel, labels."""
        return self.call(self.sim.node_registry)

    def set_kernel(self, node, kernel):
        """Reboot `node` into `kernel`; modules KMM loaded are gone until reloaded."""
        self.call(self.sim.set_kernel, node, kernel)

    def kick(self):
        """Run every controller once now (normally they run on their own)."""
        self.call(self.sim.reconcile, True)
