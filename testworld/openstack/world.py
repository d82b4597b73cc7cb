"""Shared state of the simulated cloud: one lock, a clock-driven scheduler,
request counters, timings, faults, and references to every service.

Asynchronous behaviour (servers building, clusters converging, ports binding)
is a set of callbacks due at a time. They run on a scheduler thread and also,
lazily, at the start of every request, so a client never observes a state that
should already have moved on.
"""

import heapq
import itertools
import threading
import time
import traceback

from .util import IdSource

DEFAULT_TIMINGS = {
    "server_build": 2.0,       # BUILD -> ACTIVE
    "server_delete": 0.5,      # DELETE accepted -> gone
    "attach": 1.0,             # duration of one os-interface attach (serialized per server)
    "detach": 0.5,             # DELETE os-interface accepted -> port unbound
    "port_bind": 0.2,          # port DOWN -> ACTIVE after binding
    "cluster_create": 10.0,
    "cluster_visible": 1.0,    # after a create's 202 the cluster answers 404 (Magnum's conductor writes the row)
    "cluster_update": 5.0,     # PATCH node_count, resize, upgrade
    "cluster_delete": 5.0,
    "nodegroup_create": 5.0,
    "nodegroup_update": 5.0,
    "nodegroup_delete": 3.0,
    "token_lifetime": 3600.0,
}


class Timer:
    __slots__ = ("due", "fn", "args", "cancelled")

    def __init__(self, due, fn, args):
        self.due = due
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.total = 0
            self.by_service = {}
            self.by_route = {}

    def count(self, service, route):
        with self._lock:
            self.total += 1
            if service is not None:
                self.by_service[service] = self.by_service.get(service, 0) + 1
            self.by_route[route] = self.by_route.get(route, 0) + 1

    def snapshot(self):
        with self._lock:
            return {
                "total": self.total,
                "by_service": dict(self.by_service),
                "by_route": dict(sorted(self.by_route.items())),
            }


class World:
    def __init__(self, scenario):
        self.scenario = scenario
        self.lock = threading.RLock()
        self.ids = IdSource(scenario.get("seed", 0))
        self.timings = dict(DEFAULT_TIMINGS)
        self.timings.update(scenario.get("timings") or {})
        self.latency_ms = float(scenario.get("latency_ms") or 0)
        self.stats = Stats()
        self.host = "127.0.0.1"
        self.public_url = "http://127.0.0.1"
        self.kube_api_url = scenario.get("kube_api_url")
        # {"cert": path, "key": path}: the CA of the Kubernetes test world at kube_api_url, which Magnum
        # hands out and signs client certificates with for every cluster (they all report that API)
        self.kube_ca = scenario.get("kube_ca")
        # registers cluster servers as nodes of the Kubernetes test world (kubelink.py); set by build()
        self.kube_link = None
        # Where bare-metal nodes get a file system root of their own (<node_root>/<server name>);
        # None: nodes have none.
        self.node_root = None
        self._heap = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = None
        # services, attached by build_world()
        self.keystone = self.nova = self.neutron = self.glance = None
        self.ironic = self.heat = self.magnum = self.faults = None

    # -- time -------------------------------------------------------------
    @staticmethod
    def now():
        return time.time()

    def timing(self, name):
        return float(self.timings.get(name, DEFAULT_TIMINGS.get(name, 0.0)))

    def later(self, delay, fn, *args):
        """Run fn(*args) under the world lock once ``delay`` seconds have passed."""
        t = Timer(time.monotonic() + max(0.0, float(delay)), fn, args)
        with self._cond:
            heapq.heappush(self._heap, (t.due, next(self._seq), t))
            self._cond.notify()
        return t

    def run_due(self):
        """Fire every callback that is due; the caller holds ``self.lock``."""
        while True:
            with self._cond:
                if not self._heap or self._heap[0][0] > time.monotonic():
                    return
                dummy, dummy, t = heapq.heappop(self._heap)
            if not t.cancelled:
                try:
                    t.fn(*t.args)
                except Exception:  # a broken callback must not stop the clock
                    traceback.print_exc()

    def _loop(self):
        while True:
            with self._cond:
                if self._stopped:
                    return
                if self._heap:
                    wait = self._heap[0][0] - time.monotonic()
                else:
                    wait = None
                if wait is None or wait > 0:
                    self._cond.wait(wait if wait is None else min(wait, 5.0))
                    continue
            with self.lock:
                self.run_due()

    def start_clock(self):
        self._thread = threading.Thread(target=self._loop, name="sim-openstack-clock", daemon=True)
        self._thread.start()

    def stop_clock(self):
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def pending(self):
        with self._cond:
            return sum(1 for dummy, dummy, t in self._heap if not t.cancelled)
