"""Building, running and steering a simulated cloud.

``SimCloud.start()`` runs it in this process (background threads);
``SimCloud.spawn()`` runs ``python -m testworld.openstack serve`` in a child
process. Both expose the same methods; the admin API under ``/_sim/`` is what
the spawned variant (and any other process) uses.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from . import scenario as scenario_mod
from .faults import Faults
from .glance import Glance
from .heat import Heat
from .httpserver import App, Response, serve_in_thread
from .ironic import Ironic
from .keystone import Keystone
from .kubelink import KubeLink
from .magnum import Magnum
from .neutron import Neutron
from .nova import Nova
from .world import DEFAULT_TIMINGS, World

CLOUD_NAME = "hpcops-sim"


def build(scn):
    """Create the world and its services from a loaded scenario (no network yet)."""
    world = World(scn)
    world.kube_link = KubeLink(world, world.kube_api_url)
    world.faults = Faults(world)
    world.keystone = Keystone(world)
    world.ironic = Ironic(world)
    world.neutron = Neutron(world)
    world.glance = Glance(world)
    world.nova = Nova(world)
    world.heat = Heat(world)
    world.magnum = Magnum(world)
    app = App(world)
    for svc in (world.keystone, world.nova, world.neutron, world.glance, world.magnum, world.heat):
        app.add_service(svc)
    app.admin = Admin(world)
    return world, app


def populate(world):
    """Pre-existing servers and clusters; needs every service in place."""
    with world.lock:
        world.nova.load_servers()
        world.magnum.load()


class Admin:
    """The control plane: counters, faults, timings, latency, state snapshots."""

    def __init__(self, world):
        self.world = world

    # python API ----------------------------------------------------------------------------
    def requests(self):
        return self.world.stats.snapshot()

    def reset_requests(self):
        self.world.stats.reset()

    def set_faults(self, rules, seed=None):
        return self.world.faults.set(rules, seed)

    def add_faults(self, rules, seed=None):
        return self.world.faults.add(rules, seed)

    def clear_faults(self):
        self.world.faults.clear()

    def faults(self):
        return self.world.faults.describe()

    def set_timings(self, timings):
        unknown = [k for k in timings if k not in DEFAULT_TIMINGS]
        if unknown:
            raise ValueError("unknown timings %s (known: %s)" % (unknown, ", ".join(DEFAULT_TIMINGS)))
        with self.world.lock:
            self.world.timings.update({k: float(v) for k, v in timings.items()})
        return dict(self.world.timings)

    def set_latency(self, ms):
        self.world.latency_ms = float(ms)
        return {"ms": self.world.latency_ms}

    def state(self):
        w = self.world
        with w.lock:
            w.run_due()
            nova, neutron = w.nova, w.neutron
            servers = [nova.summary(s) for s in nova.servers.values()]
            ports = []
            orphans = 0
            for p in neutron.ports.values():
                owner_missing = p.device_owner.startswith("compute:") and p.device_id not in nova.servers
                orphans += owner_missing
                ports.append({"id": p.id, "name": p.name, "network_id": p.network_id,
                              "network": neutron.networks.get(p.network_id, {}).get("name"), "device_id": p.device_id,
                              "device_owner": p.device_owner, "status": p.status, "mac_address": p.mac,
                              "vnic_type": p.vnic_type, "host_id": p.host_id,
                              "fixed_ips": [ip for dummy, ip in p.fixed_ips], "orphaned": owner_missing})
            clusters = [w.magnum.summary(c) for c in w.magnum.clusters.values()]
            stacks = [w.heat.summary(s) for s in w.heat.stacks.values()]
            return {
                "clusters": clusters, "servers": servers, "ports": ports, "stacks": stacks,
                "floating_ips": [{"id": f["id"], "address": f["floating_ip_address"], "port_id": f["port_id"]}
                                 for f in neutron.floatingips.values()],
                "baremetal": [p.summary() for p in w.ironic.pools],
                "counts": {"servers": len(servers), "ports": len(ports), "orphaned_ports": orphans,
                           "unbound_ports": sum(1 for p in neutron.ports.values() if not p.device_id),
                           "clusters": len(clusters), "stacks": len(stacks),
                           "floating_ips": len(neutron.floatingips), "tokens": len(w.keystone.tokens)},
                "kube_link": w.kube_link.describe(),
                "timings": dict(w.timings), "latency_ms": w.latency_ms, "faults": w.faults.describe(),
                "pending_timers": w.pending(),
            }

    # HTTP ---------------------------------------------------------------------------------------
    def handle(self, method, path, raw_query, body, host_url):
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return Response(400, {"error": "body is not JSON"})
        route = (method, path)
        try:
            if route == ("GET", "/_sim/requests"):
                return Response(200, self.requests())
            if route == ("POST", "/_sim/requests/reset"):
                self.reset_requests()
                return Response(200, self.requests())
            if route == ("GET", "/_sim/faults"):
                return Response(200, {"rules": self.faults()})
            if route == ("PUT", "/_sim/faults"):
                return Response(200, {"rules": self.set_faults(data or [])})
            if route == ("POST", "/_sim/faults"):
                return Response(200, {"rules": self.add_faults(data or [])})
            if route == ("DELETE", "/_sim/faults"):
                self.clear_faults()
                return Response(200, {"rules": []})
            if route == ("GET", "/_sim/state"):
                return Response(200, self.state())
            if route == ("GET", "/_sim/timings"):
                return Response(200, dict(self.world.timings))
            if route in (("POST", "/_sim/timings"), ("PUT", "/_sim/timings")):
                return Response(200, self.set_timings(data or {}))
            if route == ("GET", "/_sim/latency"):
                return Response(200, {"ms": self.world.latency_ms})
            if route in (("POST", "/_sim/latency"), ("PUT", "/_sim/latency")):
                return Response(200, self.set_latency((data or {}).get("ms", 0)))
            if route == ("GET", "/_sim/health"):
                return Response(200, {"ok": True, "scenario": self.world.scenario.get("name")})
        except (ValueError, TypeError, KeyError, re.error) as e:
            return Response(400, {"error": str(e)})
        return Response(404, {"error": "no admin endpoint %s %s" % (method, path),
                              "endpoints": ["GET /_sim/requests", "POST /_sim/requests/reset", "GET|PUT|POST|DELETE "
                                            "/_sim/faults", "GET /_sim/state", "GET|POST /_sim/timings",
                                            "GET|POST /_sim/latency", "GET /_sim/health"]})


def write_clouds_yaml(world, state_dir, url):
    """clouds.yaml (0600) with the password cloud, the application-credential
    cloud and one cloud per further scenario user."""
    ks = world.keystone
    region = world.scenario.get("region", "RegionOne")
    auth_url = url + "/identity/v3"
    clouds = {}
    first = True
    for user in ks.users.values():
        project = ks.projects[user["default_project_id"]]
        name = CLOUD_NAME if first else "%s-%s" % (CLOUD_NAME, user["name"])
        first = False
        clouds[name] = {
            "auth_type": "password",
            "auth": {"auth_url": auth_url, "username": user["name"], "password": user["password"],
                     "project_name": project["name"], "user_domain_name": ks.domains[user["domain_id"]]["name"],
                     "project_domain_name": ks.domains[project["domain_id"]]["name"]},
            "region_name": region, "interface": "public", "identity_api_version": 3,
        }
    ac = next(iter(ks.app_creds.values()), None)
    if ac is not None:
        clouds[CLOUD_NAME + "-appcred"] = {
            "auth_type": "v3applicationcredential",
            "auth": {"auth_url": auth_url, "application_credential_id": ac["id"],
                     "application_credential_secret": ac["secret"]},
            "region_name": region, "interface": "public", "identity_api_version": 3,
        }
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, "clouds.yaml")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        # JSON is valid YAML and needs no YAML emitter at start-up
        json.dump({"clouds": clouds}, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


class Running:
    """An in-process simulated cloud: world, HTTP server and clock."""

    def __init__(self, scn, state_dir, host="127.0.0.1", port=0):
        self.world, self.app = build(scn)
        self.server, self.thread = serve_in_thread(self.app, host, port)
        bound_host, bound_port = self.server.server_address[:2]
        self.url = "http://%s:%d" % (bound_host, bound_port)
        self.world.host = "%s:%d" % (bound_host, bound_port)
        self.world.public_url = self.url
        populate(self.world)
        # Servers the scenario starts with get no root: only nodes built from now on do.
        self.world.node_root = os.path.join(state_dir, "nodes")
        self.world.start_clock()
        self.clouds_yaml = write_clouds_yaml(self.world, state_dir, self.url)
        # Second tier (testworld/realservices): a scenario key hands tokens to the real Keystone
        # and mirrors Heat-driver stacks into the real Heat.
        self.bridge = None
        if scn.get("real_services"):
            from testworld.realservices.bridge import attach

            self.bridge = attach(self.world, scn["real_services"])

    def stop(self):
        if self.bridge is not None:
            self.bridge.stop()
        self.world.stop_clock()
        self.world.kube_link.stop()
        self.server.shutdown()
        self.server.server_close()
        self.server.close_all_connections()


class SimCloud:
    """Handle on a simulated cloud, in-process (``start``) or in a child process (``spawn``)."""

    cloud_name = CLOUD_NAME

    def __init__(self):
        self.url = None
        self.clouds_yaml = None
        self.state_dir = None
        self._running = None
        self._proc = None
        self._own_state_dir = False

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def start(cls, scenario=None, state_dir=None, port=0, host="127.0.0.1", **overrides):
        scn = scenario_mod.load(scenario, **overrides)
        self = cls()
        self._set_state_dir(state_dir)
        self._running = Running(scn, self.state_dir, host, port)
        self.url = self._running.url
        self.clouds_yaml = self._running.clouds_yaml
        return self

    @classmethod
    def spawn(cls, scenario=None, state_dir=None, port=0, host="127.0.0.1", timeout=30.0, python=None,
              **overrides):
        self = cls()
        self._set_state_dir(state_dir)
        if scenario is None or isinstance(scenario, dict):
            data = scenario_mod.load(scenario, **overrides)
            path = os.path.join(self.state_dir, "scenario.json")
            with open(path, "w") as f:
                json.dump(data, f)
            scenario_arg, overrides = path, {}
        else:
            scenario_arg = os.fspath(scenario)
        cmd = [python or sys.executable, "-m", "testworld.openstack", "serve", "--scenario", scenario_arg,
               "--port", str(port), "--host", host, "--state-dir", self.state_dir]
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "kube_api_url":
                cmd += ["--kube-api-url", str(value)]
            elif key == "latency_ms":
                cmd += ["--latency-ms", str(value)]
            elif key == "timings":
                for k, v in value.items():
                    cmd += ["--timing", "%s=%s" % (k, v)]
            elif key in scenario_mod.TIMING_KEYS:
                cmd += ["--timing", "%s=%s" % (key, value)]
            else:
                cmd += ["--set", "%s=%s" % (key, json.dumps(value))]
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, env=env, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if line.strip().startswith("{"):
                break
            if self._proc.poll() is not None:
                raise RuntimeError("simulated cloud exited with %s before it was ready" % self._proc.returncode)
        info = json.loads(line)
        self.url = info["url"]
        self.clouds_yaml = info["clouds_yaml"]
        return self

    def _set_state_dir(self, state_dir):
        if state_dir is None:
            self.state_dir = tempfile.mkdtemp(prefix="hpcops-sim-")
            self._own_state_dir = True
        else:
            self.state_dir = os.fspath(state_dir)
            os.makedirs(self.state_dir, exist_ok=True)

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def world(self):
        """The live world (in-process only), for white-box assertions."""
        return self._running.world if self._running else None

    def stop(self):
        if self._running is not None:
            self._running.stop()
            self._running = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None
        if self._own_state_dir and self.state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self._own_state_dir = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def env(self):
        """Environment variables that point OpenStack clients at this cloud."""
        return {"OS_CLIENT_CONFIG_FILE": self.clouds_yaml, "OS_CLOUD": self.cloud_name}

    # -- control ----------------------------------------------------------------------------------
    def _admin_call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ValueError(e.read().decode(errors="replace"))

    def _admin(self):
        return self._running.app.admin if self._running else None

    def requests(self):
        a = self._admin()
        return a.requests() if a else self._admin_call("GET", "/_sim/requests")

    def reset_requests(self):
        a = self._admin()
        if a:
            a.reset_requests()
        else:
            self._admin_call("POST", "/_sim/requests/reset")

    def set_faults(self, rules, seed=None):
        payload = {"rules": list(rules), "seed": seed} if seed is not None else list(rules)
        a = self._admin()
        return a.set_faults(payload) if a else self._admin_call("PUT", "/_sim/faults", payload)["rules"]

    def add_faults(self, rules, seed=None):
        payload = {"rules": list(rules), "seed": seed} if seed is not None else list(rules)
        a = self._admin()
        return a.add_faults(payload) if a else self._admin_call("POST", "/_sim/faults", payload)["rules"]

    def clear_faults(self):
        a = self._admin()
        if a:
            a.clear_faults()
        else:
            self._admin_call("DELETE", "/_sim/faults")

    def faults(self):
        a = self._admin()
        return a.faults() if a else self._admin_call("GET", "/_sim/faults")["rules"]

    def state(self):
        a = self._admin()
        return a.state() if a else self._admin_call("GET", "/_sim/state")

    def set_timings(self, **timings):
        a = self._admin()
        return a.set_timings(timings) if a else self._admin_call("POST", "/_sim/timings", timings)

    def set_latency(self, ms):
        a = self._admin()
        return a.set_latency(ms) if a else self._admin_call("POST", "/_sim/latency", {"ms": ms})

    def wait_idle(self, timeout=30.0):
        """Wait until no timer is pending (every asynchronous operation has settled) and the
        Kubernetes test world, if linked and there, has every node it should have."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state["pending_timers"] == 0 and state["kube_link"]["idle"]:
                return True
            time.sleep(0.05)
        return False
