"""Fault injection.

Two families of rules share one list:

* HTTP rules ``{service, method, path_regex, status, rate, count, latency_ms, body, message,
  rendezvous}`` match requests before they reach a handler; ``status`` makes the request
  fail with that code in the service's own error shape (or with ``body``), while
  ``latency_ms`` alone only slows matching requests down. ``rendezvous: N`` holds matching
  requests until N different clients (told apart by their token) have sent one, waiting at
  most ``latency_ms``: two runs racing for one create then always read the cloud before
  either create lands, however far apart the machine's load lets them start.
* Behaviour rules (``kind``) are consulted by the services at the point where
  the real cloud would misbehave: ``cluster_create_failed``,
  ``cluster_delete_failed``, ``cluster_stuck``, ``attach_500``,
  ``conflict_storm``, ``token_expire_all`` (applied at once), ``server_vanish``.

With ``seed`` set, the random draws behind ``rate`` repeat run after run.
"""

import random
import re
import threading

from .util import ApiError, Response

HTTP_KINDS = ("http", "conflict_storm")
BEHAVIOUR_KINDS = ("cluster_create_failed", "cluster_delete_failed", "cluster_stuck", "attach_500")
IMMEDIATE_KINDS = ("token_expire_all", "server_vanish")
ALL_KINDS = HTTP_KINDS + BEHAVIOUR_KINDS + IMMEDIATE_KINDS

_DEFAULT_MESSAGES = {
    400: "Bad request injected by the simulator.",
    401: "The request you have made requires authentication.",
    403: "Policy does not allow this request to be performed.",
    404: "The resource could not be found.",
    409: "There was a conflict when trying to complete your request.",
    413: "Over limit.",
    429: "Rate limit exceeded.",
    500: "Unexpected API Error. Please report this at http://bugs.launchpad.net/ and attach the logs if possible.",
    502: "Bad Gateway",
    503: "The server is currently unavailable. Please try again at a later time.",
    504: "Gateway Timeout",
}

_SERVICE_ALIASES = {
    "keystone": "identity", "nova": "compute", "neutron": "network", "glance": "image",
    "magnum": "container-infra", "container-infrastructure-management": "container-infra",
    "heat": "orchestration",
}


class Rule:
    def __init__(self, spec, index, seed):
        if not isinstance(spec, dict):
            raise ValueError("a fault rule must be a JSON object, got %r" % (spec,))
        self.spec = dict(spec)
        self.kind = spec.get("kind", "http")
        if self.kind not in ALL_KINDS:
            raise ValueError("unknown fault kind %r (known: %s)" % (self.kind, ", ".join(ALL_KINDS)))
        svc = spec.get("service")
        self.service = _SERVICE_ALIASES.get(svc, svc)
        if self.kind == "conflict_storm":
            self.service = self.service or "compute"
        self.method = (spec.get("method") or "").upper() or None
        self.path_re = re.compile(spec["path_regex"]) if spec.get("path_regex") else None
        self.status = spec.get("status")
        if self.kind == "conflict_storm" and not self.status:
            self.status = 409
        self.rate = float(spec.get("rate", 1.0))
        count = spec.get("count")
        self.remaining = None if count is None else int(count)
        self.latency_ms = float(spec.get("latency_ms") or 0)
        self.body = spec.get("body")
        self.message = spec.get("message")
        self.name_re = re.compile(spec["name_regex"]) if spec.get("name_regex") else None
        self.server_re = re.compile(spec["server_regex"]) if spec.get("server_regex") else None
        self.reason = spec.get("reason")
        rule_seed = spec.get("seed", None if seed is None else "%s/%d" % (seed, index))
        self.rng = random.Random(rule_seed)
        self.fired = 0
        self.rendezvous = int(spec.get("rendezvous") or 0)
        self._met = threading.Condition()
        self.clients = set()

    @property
    def exhausted(self):
        return self.remaining is not None and self.remaining <= 0

    def _roll(self):
        if self.exhausted:
            return False
        if self.rate < 1.0 and self.rng.random() >= self.rate:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.fired += 1
        return True

    def matches_request(self, service, method, path):
        if self.service and self.service != service:
            return False
        if self.method and self.method != method:
            return False
        if self.path_re and not self.path_re.search(path):
            return False
        return True

    def meet(self, client):
        """Hold a matching request until ``rendezvous`` clients have come (or ``latency_ms`` passed)."""
        with self._met:
            self.clients.add(client or "anonymous")
            if len(self.clients) >= self.rendezvous:
                self._met.notify_all()
                return True
            return self._met.wait_for(lambda: len(self.clients) >= self.rendezvous, self.latency_ms / 1000.0)

    def response(self, service, req):
        if self.body is not None:
            return Response(int(self.status), self.body)
        status = int(self.status)
        message = self.message
        if message is None and self.kind == "conflict_storm":
            message = ("Cannot 'attach_interface' instance %s while it is in task_state interface_attaching"
                       % (req.path.split("/servers/")[1].split("/")[0] if "/servers/" in req.path else "unknown"))
        err = ApiError(status, message or _DEFAULT_MESSAGES.get(status, "Injected fault."))
        return service.error_response(req, err)

    def describe(self):
        d = dict(self.spec)
        d["fired"] = self.fired
        if self.rendezvous:
            d["clients"] = len(self.clients)
        if self.remaining is not None:
            d["remaining"] = self.remaining
        return d


class Faults:
    def __init__(self, world):
        self.world = world
        self._lock = threading.Lock()
        self.rules = []
        self.seed = None

    def set(self, rules, seed=None):
        """Replace the rule set; immediate kinds are applied now and not kept."""
        if isinstance(rules, dict):
            seed = rules.get("seed", seed)
            rules = rules.get("rules", [])
        parsed = [Rule(spec, i, seed) for i, spec in enumerate(rules or [])]
        keep = []
        immediate = []
        for rule in parsed:
            (immediate if rule.kind in IMMEDIATE_KINDS else keep).append(rule)
        with self._lock:
            self.rules = keep
            self.seed = seed
        for rule in immediate:
            self._apply_immediate(rule)
        return [r.describe() for r in parsed]

    def add(self, rules, seed=None):
        """Append rules, keeping the counters of the ones already set."""
        if isinstance(rules, dict):
            seed = rules.get("seed", seed)
            rules = rules.get("rules", [rules] if "kind" in rules or "status" in rules else [])
        if seed is None:
            seed = self.seed
        with self._lock:
            start = len(self.rules)
        parsed = [Rule(spec, start + i, seed) for i, spec in enumerate(rules or [])]
        with self._lock:
            self.rules = self.rules + [r for r in parsed if r.kind not in IMMEDIATE_KINDS]
        for rule in parsed:
            if rule.kind in IMMEDIATE_KINDS:
                self._apply_immediate(rule)
        return self.describe()

    def clear(self):
        with self._lock:
            self.rules = []

    def describe(self):
        with self._lock:
            return [r.describe() for r in self.rules]

    def _apply_immediate(self, rule):
        world = self.world
        if rule.kind == "token_expire_all":
            with world.lock:
                world.keystone.revoke_all()
        elif rule.kind == "server_vanish":
            delay = float(rule.spec.get("after_s") or 0)
            if delay > 0:
                world.later(delay, world.nova.vanish, rule.name_re)
            else:
                with world.lock:
                    world.nova.vanish(rule.name_re)

    # -- consulted by the HTTP layer -----------------------------------------
    def match_http(self, service, method, path):
        if not self.rules:
            return None
        with self._lock:
            for rule in self.rules:
                if rule.kind not in HTTP_KINDS or rule.exhausted:
                    continue
                if rule.matches_request(service, method, path) and rule._roll():
                    return rule
        return None

    # -- consulted by services -----------------------------------------------
    def take(self, kind, name=None, op=None):
        """Return the first live rule of ``kind`` matching ``name`` (and ``op``) and consume one firing."""
        if not self.rules:
            return None
        with self._lock:
            for rule in self.rules:
                if rule.kind != kind or rule.exhausted:
                    continue
                regex = rule.server_re if kind == "attach_500" else rule.name_re
                if regex is not None and (name is None or not regex.search(name)):
                    continue
                if op is not None and rule.spec.get("op", "any") not in ("any", op):
                    continue
                if rule._roll():
                    return rule
        return None
