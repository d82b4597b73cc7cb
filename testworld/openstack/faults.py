"""Fault injection.

Two families of rules share one list:

* HTTP rules ``{service, method, path_regex, status, rate, count, latency_ms, body, message,
  rendezvous, after}`` match requests before they reach a handler; ``status`` makes the request
  fail with that code in the service's own error shape (or with ``body``) -- with ``after: true``
  the request is carried out first and only its answer is replaced, as when a proxy gives up
  on a backend that finishes the work anyway --, while
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

SERVICES = ("identity", "compute", "network", "image", "container-infra", "orchestration")

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
        if self.service is not None and self.service not in SERVICES:
            # A rule for a service the cloud does not serve would never fire, silently.
            raise ValueError("unknown service %r in fault rule %r (known: %s, or aliases %s)"
                             % (svc, spec, ", ".join(SERVICES), ", ".join(sorted(_SERVICE_ALIASES))))
        if self.kind == "conflict_storm":
            self.service = self.service or "compute"
        self.method = (spec.get("method") or "").upper() or None
        self.path_re = re.compile(spec["path_regex"]) if spec.get("path_regex") else None
        if self.path_re is not None and self.service and spec["path_regex"].startswith("^/") and not \
                spec["path_regex"].startswith("^/" + self.service):
            # Paths start with the service's prefix: this rule could never match.
            raise ValueError("fault rule %r: path_regex %r cannot match a path of service %r (they start with /%s)"
                             % (spec, spec["path_regex"], self.service, self.service))
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
        self.after = bool(spec.get("after"))
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


class _Combined:
    """Several rules that hit one request, seen by the HTTP layer as one."""

    def __init__(self, rules):
        self.rules = rules
        errors = [r for r in rules if r.status]
        self.error = errors[0] if errors else None
        meeting = [r for r in rules if r.rendezvous]
        self.meeting = meeting[0] if meeting else None
        self.rendezvous = self.meeting.rendezvous if self.meeting else 0
        self.latency_ms = sum(r.latency_ms for r in rules if not r.rendezvous)
        self.status = self.error.status if self.error else None
        self.after = self.error.after if self.error else False

    def meet(self, client):
        return self.meeting.meet(client)

    def response(self, service, req):
        return self.error.response(service, req)


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
        """What the rules do to one request: None, or an object with the fields of a rule.

        Every matching rule has its say: latency-only rules add their delay, the first
        rendezvous rule holds the request, and the first error rule that rolls answers it.
        (A rule that only slows requests down must not shadow an error rule listed after
        it: such an error rule would never fire.)
        """
        if not self.rules:
            return None
        hits = []
        with self._lock:
            failing = False
            for rule in self.rules:
                if rule.kind not in HTTP_KINDS or rule.exhausted:
                    continue
                if not rule.matches_request(service, method, path):
                    continue
                if rule.status and failing:
                    continue  # one error answer per request; later error rules do not roll
                if rule._roll():
                    hits.append(rule)
                    failing = failing or bool(rule.status)
        if not hits:
            return None
        if len(hits) == 1:
            return hits[0]
        return _Combined(hits)

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
