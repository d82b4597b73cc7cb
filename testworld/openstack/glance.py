"""Glance v2: version documents and read access to images (Magnum checks
``os_distro``)."""

import hashlib
import urllib.parse

from .httpserver import Service
from .util import ApiError, Response, iso_z, json_response

_CORE = ("name", "id", "status", "visibility", "disk_format", "container_format", "min_disk", "min_ram",
         "protected", "tags", "size", "checksum", "owner")


class Glance(Service):
    name = "image"
    prefix = "/image"

    def __init__(self, world):
        super().__init__(world)
        self.images = {}
        owner = world.keystone.default_project()["id"]
        now = world.now()
        for spec in world.scenario.get("images") or []:
            iid = spec.get("id") or world.ids.uuid()
            size = int(spec.get("size", 1073741824))
            digest = hashlib.md5(iid.encode()).hexdigest()
            img = {
                "id": iid, "name": spec["name"], "status": spec.get("status", "active"),
                "visibility": spec.get("visibility", "public"), "protected": False, "os_hidden": False,
                "checksum": digest, "os_hash_algo": "sha512",
                "os_hash_value": hashlib.sha512(iid.encode()).hexdigest(), "owner": owner,
                "size": size, "virtual_size": None, "min_ram": 0, "min_disk": int(spec.get("min_disk", 0)),
                "disk_format": spec.get("disk_format", "qcow2"), "container_format": spec.get("container_format", "bare"),
                "created_at": iso_z(now), "updated_at": iso_z(now), "tags": list(spec.get("tags") or []),
                "self": "/v2/images/%s" % iid, "file": "/v2/images/%s/file" % iid, "schema": "/v2/schemas/image",
                "stores": "file",
            }
            for k, v in (spec.get("properties") or {}).items():
                img[k] = v
            if spec.get("os_distro"):
                img["os_distro"] = spec["os_distro"]
            self.images[iid] = img

    def find(self, ref):
        if ref in self.images:
            return self.images[ref]
        found = [i for i in self.images.values() if i["name"] == ref]
        return found[0] if len(found) == 1 else None

    # Glance answers errors as plain text rendered by webob.
    def error_response(self, req, err):
        if err.body is not None:
            return Response(err.status, err.body, err.headers)
        phrase = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}.get(err.status, "Error")
        text = "%d %s\n\n%s\n\n   " % (err.status, phrase, err.message)
        return Response(err.status, text, err.headers, content_type="text/plain; charset=UTF-8")

    def routes(self, r):
        r.add(self, "GET", "/image", self.versions_300, auth=False, locked=False)
        r.add(self, "GET", "/image/versions", self.versions, auth=False, locked=False)
        r.add(self, "GET", "/image/v2/images", self.list_images)
        r.add(self, "GET", "/image/v2/images/{id}", self.show_image)
        r.add(self, "GET", "/image/v2/schemas/image", self.schema)

    def _versions(self, req):
        href = req.host_url + "/image/v2/"
        out = []
        for v, status in (("2.17", "CURRENT"), ("2.16", "SUPPORTED"), ("2.15", "SUPPORTED"),
                          ("2.9", "SUPPORTED"), ("2.0", "SUPPORTED")):
            out.append({"id": "v" + v, "status": status, "links": [{"rel": "self", "href": href}]})
        return {"versions": out}

    def versions_300(self, req):
        return json_response(self._versions(req), status=300)

    def versions(self, req):
        return json_response(self._versions(req))

    def list_images(self, req):
        items = [i for i in self.images.values()
                 if i["visibility"] in ("public", "community", "shared") or i["owner"] == req.token.project_id]
        for key in ("name", "status", "visibility", "owner", "disk_format", "container_format", "os_distro", "id"):
            v = req.q(key)
            if v is not None:
                if v.startswith("in:"):
                    wanted = set(v[3:].split(","))
                    items = [i for i in items if str(i.get(key)) in wanted]
                else:
                    items = [i for i in items if str(i.get(key)) == v]
        for tag in req.qlist("tag"):
            items = [i for i in items if tag in i["tags"]]
        items.sort(key=lambda i: (i["created_at"], i["id"]), reverse=True)
        marker = req.q("marker")
        if marker:
            idx = next((n for n, i in enumerate(items) if i["id"] == marker), None)
            if idx is None:
                raise ApiError(400, "marker %s could not be found." % marker)
            items = items[idx + 1:]
        body = {"first": "/v2/images", "schema": "/v2/schemas/images"}
        limit = req.q("limit")
        if limit and len(items) > int(limit):
            items = items[:int(limit)]
            params = [(k, v) for k, vs in req.query.items() if k != "marker" for v in vs]
            params.append(("marker", items[-1]["id"]))
            body["next"] = "/v2/images?" + urllib.parse.urlencode(params)
        body["images"] = [dict(i) for i in items]
        return json_response(body)

    def show_image(self, req):
        img = self.images.get(req.params["id"])
        if img is None:
            raise ApiError(404, "No image found with ID %s" % req.params["id"])
        return json_response(dict(img))

    def schema(self, req):
        return json_response({"name": "image", "properties": {k: {"type": "string"} for k in _CORE},
                              "additionalProperties": {"type": "string"}})
