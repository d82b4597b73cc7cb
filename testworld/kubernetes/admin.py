"""The test world's own control plane, under /_sim/ beside the Kubernetes API (no authentication).

It is how other simulators act on the world: the simulated OpenStack cloud registers the
servers of its Magnum clusters as nodes here when they become ACTIVE and removes them when
they are deleted.

    GET    /_sim/health
    GET    /_sim/nodes                {"nodes": [{name, profile, kernel, address, providerID, labels}], "profiles": [...]}
    GET    /_sim/nodes/{name}
    PUT    /_sim/nodes/{name}         {"profile": "bm.gpu", "labels": {...}, "taints": [...], "annotations": {...},
                                       "address": "10.0.0.5", "providerID": "openstack:///<server id>"}
                                      201 when the node registered, 200 when it was already there
    DELETE /_sim/nodes/{name}         the node and its pods go; 404 if there was none
    GET    /_sim/requests             {"total": n, "by_route": {"GET /api/v1/namespaces/{ns}/pods": n, ...}}:
                                      the Kubernetes API requests served since the start or the last reset,
                                      by method and path with {ns} and {name} for namespace and object name
                                      (a watch is "GET ... (watch)")
    DELETE /_sim/requests             resets those counts

Requests here are not part of the world's request log (world.requests()) nor of the counts
above, which record what clients did to the Kubernetes API.
"""

import json

import aiohttp.web

PREFIX = "/_sim/"


def _answer(body, status=200):
    return aiohttp.web.json_response(body, status=status)


class SimAdmin:
    def __init__(self, sim):
        self.sim = sim

    async def __call__(self, raw_request):
        path = raw_request.path.rstrip("/")
        method = raw_request.method
        body = None
        raw = await raw_request.read()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return _answer({"error": "the body is not JSON"}, 400)
        if path == "/_sim/health" and method == "GET":
            return _answer({"ok": True, "cluster": self.sim.scenario.name})
        if path == "/_sim/requests" and method == "GET":
            return _answer(self.sim.server.route_counts())
        if path == "/_sim/requests" and method == "DELETE":
            self.sim.server.reset_route_counts()
            return _answer({"reset": True})
        if path == "/_sim/nodes" and method == "GET":
            return _answer({"nodes": self.sim.node_registry(), "profiles": sorted(self.sim.scenario.profiles)})
        if path.startswith("/_sim/nodes/"):
            name = path[len("/_sim/nodes/"):]
            if method == "GET":
                entry = next((n for n in self.sim.node_registry() if n["name"] == name), None)
                return _answer(entry, 200) if entry else _answer({"error": "no node %s" % name}, 404)
            if method == "PUT":
                return self._put(name, body)
            if method == "DELETE":
                if not self.sim.unregister_node(name):
                    return _answer({"error": "no node %s" % name}, 404)
                return _answer({"deleted": name})
        return _answer({"error": "no endpoint %s %s" % (method, raw_request.path),
                        "endpoints": ["GET /_sim/health", "GET /_sim/nodes", "GET|PUT|DELETE /_sim/nodes/{name}",
                                      "GET|DELETE /_sim/requests"]},
                       404)

    def _put(self, name, body):
        if not isinstance(body, dict) or not body.get("profile"):
            return _answer({"error": 'the body is {"profile": NAME, "labels": {...}, ...}; profile is required'}, 400)
        labels = body.get("labels") or {}
        taints = body.get("taints") or []
        if not isinstance(labels, dict) or not isinstance(taints, list) or \
                not all(isinstance(t, dict) and t.get("key") and t.get("effect") for t in taints):
            return _answer({"error": "labels is a mapping, taints a list of {key, value, effect}"}, 400)
        try:
            node, created = self.sim.register_node(
                name, str(body["profile"]), labels=labels, taints=taints, annotations=body.get("annotations"),
                address=body.get("address"), provider_id=body.get("providerID"))
        except KeyError as exc:
            return _answer({"error": exc.args[0]}, 422)
        except ValueError as exc:
            return _answer({"error": str(exc)}, 422)
        except FileExistsError as exc:
            return _answer({"error": str(exc)}, 409)
        entry = next((n for n in self.sim.node_registry() if n["name"] == name), {"name": name})
        return _answer(entry, 201 if created else 200)
