"""Heat (orchestration v1): stacks with outputs and (nested) resources.

Stacks here are made by the Magnum Heat-style driver; their resources and
outputs are computed on demand from the cluster's current servers, so they
always agree with Nova.
"""

import json
import re
import urllib.parse

from .httpserver import Service
from .util import ApiError, Response, empty, iso_z, json_response

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}
_EXPLANATIONS = {
    400: "The server could not comply with the request since it is either malformed or otherwise incorrect.",
    404: "The resource could not be found.",
    409: "There was a conflict when trying to complete your request.",
    500: "The server has either erred or is incapable of performing the requested operation.",
    503: "The server is currently unavailable. Please try again at a later time.",
}
_TYPES = {400: "HTTPBadRequest", 404: "HTTPNotFound", 409: "HTTPConflict", 500: "HTTPInternalServerError",
          503: "HTTPServiceUnavailable"}

# Stacks users create: the template versions Heat accepts and the resource types this simulator
# carries out (none of them acts on another service). Any other type is refused as Heat refuses a
# type it does not know, so a template the simulator accepts is one the real Heat accepts too.
_HOT_VERSIONS = ("2013-05-23", "2014-10-16", "2015-04-30", "2015-10-15", "2016-04-08", "2016-10-14", "2017-02-24",
                 "2017-09-01", "2018-03-02", "2018-08-31", "2021-04-16", "newton", "ocata", "pike", "queens", "rocky",
                 "wallaby")
_USER_TYPES = ("OS::Heat::None", "OS::Heat::Value", "OS::Heat::TestResource", "OS::Heat::RandomString")
_STACK_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,254}$")
# The bodies of Heat's webob answers that are not faults (redirects, 202, unrouted paths).
_WEBOB_TAIL = "<br /><br />\n\n\n"
_WEBOB_TITLES = {202: "Accepted", 302: "Found", 404: "Not Found"}

# /stacks/{name_or_id}/{suffix...} forms that Heat answers with a redirect
_LOOKUP_SUFFIXES = ("resources", "events", "template", "outputs", "environment", "files", "snapshots",
                    "abandon", "actions", "preview")


class Resource:
    __slots__ = ("name", "type", "physical_id", "status", "reason", "created", "updated", "required_by",
                 "nested", "attributes")

    def __init__(self, name, type, physical_id="", status="CREATE_COMPLETE", reason="state changed",
                 created=None, updated=None, required_by=(), nested=None, attributes=None):
        self.name = name
        self.type = type
        self.physical_id = physical_id
        self.status = status
        self.reason = reason
        self.created = created
        self.updated = updated
        self.required_by = list(required_by)
        self.nested = nested
        self.attributes = attributes or {}


class Stack:
    def __init__(self, heat, name, project_id, parent=None, parent_resource=None, description="",
                 timeout_mins=60, tags=None, stack_id=None, owner=None):
        self.heat = heat
        self.id = stack_id or heat.world.ids.uuid()
        self.name = name
        self.project_id = project_id
        self.parent = parent
        self.parent_resource = parent_resource
        self.description = description
        self.timeout_mins = timeout_mins
        self.tags = tags
        # The name of the user whose request made the stack (nested stacks: their parent's).
        parent_stack = heat.stacks.get(parent) if parent else None
        self.owner = owner or (parent_stack.owner if parent_stack is not None else None)
        # The template a user's create or update gave (stacks made by the Magnum driver have none).
        self.template = None
        now = heat.world.now()
        self.created = now
        self.updated = None
        self.deleted = None
        self.status = "CREATE_IN_PROGRESS"
        self.reason = "Stack CREATE started"
        self.parameters = {}
        # callables returning the live view (set by the owner of the stack)
        self.resources_fn = lambda: []
        self.outputs_fn = lambda: []
        self.on_delete = None

    def set_status(self, status, reason):
        self.status = status
        self.reason = reason
        if not status.startswith("CREATE"):
            self.updated = self.heat.world.now()

    @property
    def action(self):
        return self.status.split("_", 1)[0]


class Heat(Service):
    name = "orchestration"
    prefix = "/orchestration"

    def __init__(self, world):
        super().__init__(world)
        self.stacks = {}

    # -- store --------------------------------------------------------------------------
    def add(self, stack):
        self.stacks[stack.id] = stack
        return stack

    def remove(self, stack_id):
        stack = self.stacks.pop(stack_id, None)
        if stack is not None:
            for child in [s for s in self.stacks.values() if s.parent == stack_id]:
                self.remove(child.id)
        return stack

    def find(self, name_or_id, project_id=None):
        s = self.stacks.get(name_or_id)
        if s is not None and s.status == "DELETE_COMPLETE":
            s = None
        if s is None:
            for cand in self.stacks.values():
                if cand.name == name_or_id and cand.status != "DELETE_COMPLETE":
                    s = cand
                    break
        if s is not None and project_id is not None and s.project_id != project_id:
            return None
        return s

    # -- HTTP ----------------------------------------------------------------------------
    def error_body(self, req, err):
        error = {"message": err.message, "traceback": None, "type": err.kind or _TYPES.get(err.status, "HTTPError")}
        if err.message is None:
            del error["message"]
        return {"explanation": _EXPLANATIONS.get(err.status, err.message), "code": err.status, "error": error,
                "title": err.title or _TITLES.get(err.status, "Error")}

    @staticmethod
    def _webob_body(status, message):
        title = _WEBOB_TITLES[status]
        return {"message": message + _WEBOB_TAIL, "code": "%d %s" % (status, title), "title": title}

    def not_found(self, req):
        # heat-api answers any path outside /v1 with its version list, and an unrouted path
        # under /v1 with webob's own 404 (not a Heat fault).
        if not req.path.startswith("/orchestration/v1/"):
            return ApiError(300, "", body=self._versions_body(req))
        return ApiError(404, "The resource could not be found.", body=self._webob_body(404, "The resource could not "
                                                                                            "be found."))

    def method_not_allowed(self, req, allowed):
        return ApiError(405, _EXPLANATIONS[400], kind="HTTPMethodNotAllowed", title="Method Not Allowed",
                        headers={"Allow": ", ".join(sorted(set(allowed)))})

    def routes(self, r):
        p = "/orchestration/v1/{tenant}"
        r.add(self, "GET", "/orchestration", self.versions, auth=False, locked=False)
        r.add(self, "GET", p + "/stacks", self.list_stacks)
        r.add(self, "POST", p + "/stacks", self.create_stack)
        r.add(self, "PUT", p + "/stacks/{stack}/{stack_id}", self.update_stack)
        r.add(self, "PATCH", p + "/stacks/{stack}/{stack_id}", self.update_stack)
        r.add(self, "GET", p + "/stacks/{stack}", self.lookup)
        r.add(self, "GET", p + "/stacks/{stack}/{second}", self.show_or_lookup)
        r.add(self, "DELETE", p + "/stacks/{stack}/{stack_id}", self.delete_stack)
        r.add(self, "GET", p + "/stacks/{stack}/{stack_id}/outputs", self.list_outputs)
        r.add(self, "GET", p + "/stacks/{stack}/{stack_id}/outputs/{key}", self.show_output)
        r.add(self, "GET", p + "/stacks/{stack}/{stack_id}/resources", self.list_resources)
        r.add(self, "GET", p + "/stacks/{stack}/{stack_id}/resources/{resource}", self.show_resource)
        r.add(self, "GET", p + "/stacks/{stack}/{stack_id}/events", self.list_events)
        r.add(self, "GET", p + "/stacks/{stack}/{stack_id}/template", self.show_template)
        r.add(self, "GET", p + "/stacks/{stack}/resources", self.lookup)
        r.add(self, "GET", p + "/stacks/{stack}/outputs/{key}", self.lookup)
        r.add(self, "GET", p + "/stacks/{stack}/resources/{resource}", self.lookup)

    @staticmethod
    def _versions_body(req):
        return {"versions": [{"status": "CURRENT", "id": "v1.0", "links": [
            {"href": req.host_url + "/orchestration/v1/", "rel": "self"}]}]}

    def versions(self, req):
        return json_response(self._versions_body(req), status=300)

    def _check_tenant(self, req):
        if req.params["tenant"] != req.token.project_id:
            raise ApiError(403, "Access was denied to this resource.", kind="HTTPForbidden")

    def _stack_url(self, req, s):
        return "%s/orchestration/v1/%s/stacks/%s/%s" % (req.host_url, s.project_id, s.name, s.id)

    def _not_found(self, ident):
        return ApiError(404, "The Stack (%s) could not be found." % ident, kind="EntityNotFound")

    def _get(self, req, name, stack_id, deleted=False):
        """The stack at stacks/<name>/<id>; a deleted one (kept DELETE_COMPLETE, as Heat keeps
        it) only for ``deleted=True``, i.e. for showing it."""
        self._check_tenant(req)
        s = self.stacks.get(stack_id)
        if (s is None or s.name != name or s.project_id != req.token.project_id
                or (s.status == "DELETE_COMPLETE" and not deleted)):
            raise self._not_found(name)
        return s

    def lookup(self, req):
        self._check_tenant(req)
        ident = req.params["stack"]
        s = self.find(ident, req.token.project_id)
        if s is None:
            raise self._not_found(ident)
        base = "%s/orchestration/v1/%s/stacks/" % (req.host_url, s.project_id)
        prefix_len = len("/orchestration/v1/%s/stacks/" % req.params["tenant"]) + len(ident)
        suffix = req.path[prefix_len:]
        location = base + "%s/%s%s" % (s.name, s.id, suffix)
        if req.raw_query:
            location += "?" + req.raw_query
        body = self._webob_body(302, 'The resource was found at <a href="%s">%s</a>;\nyou should be redirected '
                                     'automatically.' % (location, location))
        body["message"] = body["message"][:-len(_WEBOB_TAIL)] + "\n\n"
        return Response(302, body, headers={"Location": location})

    def show_or_lookup(self, req):
        if req.params["second"] in _LOOKUP_SUFFIXES:
            return self.lookup(req)
        s = self._get(req, req.params["stack"], req.params["second"], deleted=True)
        resolve = self._bool_param(req, "resolve_outputs", True)
        body = self._stack_view(req, s)
        # A stack shown alone has its tags as a list, empty when it has none (lists say null).
        body.update({"capabilities": [], "disable_rollback": True, "notification_topics": [], "tags": s.tags or [],
                     "parameters": self._parameters(s),
                     "template_description": s.description, "timeout_mins": s.timeout_mins})
        # Like Heat's format_stack: with resolve_outputs=False the answer has no "outputs" key
        # at all (not an empty list), and neither has a deleted stack's.
        if resolve and s.status != "DELETE_COMPLETE":
            body["outputs"] = self._outputs(s)
        return json_response({"stack": body})

    @staticmethod
    def _bool_param(req, name, default):
        """A true/false query parameter, case-insensitive, as Heat's param_utils.extract_bool reads it."""
        value = req.q(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise ApiError(400, 'Unrecognized value "%s" for "%s", acceptable values are: true, false.'
                           % (value, name), kind="HTTPBadRequest")
        return value.lower() == "true"

    def _parameters(self, s):
        p = {"OS::project_id": s.project_id, "OS::stack_id": s.id, "OS::stack_name": s.name}
        p.update(s.parameters)
        return p

    def _stack_view(self, req, s, include_project=False):
        # Heat names the owning project only in an admin's global_tenant listing.
        view = {
            "id": s.id, "stack_name": s.name, "stack_status": s.status, "stack_status_reason": s.reason,
            "creation_time": iso_z(s.created), "updated_time": iso_z(s.updated), "deletion_time": iso_z(s.deleted),
            "description": s.description, "links": [{"href": self._stack_url(req, s), "rel": "self"}],
            "parent": s.parent, "stack_owner": s.owner, "stack_user_project_id": s.project_id, "tags": s.tags,
        }
        if include_project:
            view["project"] = s.project_id
        return view

    def list_stacks(self, req):
        self._check_tenant(req)
        show_nested = req.q("show_nested", "false").lower() in ("true", "1", "yes")
        every_project = self._bool_param(req, "global_tenant", False)
        if every_project and not req.token.is_admin:
            raise ApiError(403, "You are not authorized to complete this operation.", kind="Forbidden")
        limit = req.q("limit")
        if limit is not None:
            try:
                limit = int(limit)
            except ValueError:
                raise ApiError(400, "Only integer is acceptable by 'limit'.", kind="HTTPBadRequest")
            if limit < 0:
                raise ApiError(400, "Value '%d' is invalid for 'limit' which only accepts non-negative integer."
                               % limit, kind="HTTPBadRequest")
        if req.q("sort_dir", "desc") not in ("asc", "desc"):
            # oslo.db's paginate_query raises a bare ValueError: Heat's fault has no message then.
            raise ApiError(400, None, kind="ValueError")
        items = [s for s in self.stacks.values() if (every_project or s.project_id == req.token.project_id) and
                 (show_nested or s.parent is None) and s.status != "DELETE_COMPLETE"]
        for key, attr in (("name", "name"), ("status", "status"), ("id", "id")):
            wanted = req.qlist(key)
            if wanted:
                if key == "status":
                    items = [s for s in items if s.status in wanted or s.status.split("_", 1)[-1] in wanted]
                else:
                    items = [s for s in items if getattr(s, attr) in wanted]
        tags = req.q("tags")
        if tags:
            want = set(tags.split(","))
            items = [s for s in items if s.tags and want <= set(s.tags)]
        reverse = req.q("sort_dir", "desc") == "desc"
        items.sort(key=lambda s: (s.created, s.id), reverse=reverse)
        marker = req.q("marker")
        if marker:
            # Heat pages from a marker it finds; one it does not find is no marker at all.
            idx = next((i for i, s in enumerate(items) if s.id == marker), None)
            if idx is not None:
                items = items[idx + 1:]
        body = {"stacks": [self._stack_view(req, s, every_project) for s in items[:limit]]}
        if limit is not None and len(items) > limit > 0:
            query = urllib.parse.urlencode([(k, v) for k, vs in req.query.items() if k != "marker" for v in vs]
                                           + [("marker", items[limit - 1].id)])
            body["links"] = [{"href": "%s%s?%s" % (req.host_url, req.path, query), "rel": "next"}]
        return json_response(body)

    def delete_stack(self, req):
        s = self._get(req, req.params["stack"], req.params["stack_id"])
        if s.on_delete is not None:
            s.on_delete(s)
        else:
            s.set_status("DELETE_IN_PROGRESS", "Stack DELETE started")
            self.world.later(0.1, self._deleted, s)
        return empty(204)

    def _deleted(self, s):
        # Heat keeps a deleted stack: shown by name and id (DELETE_COMPLETE), absent from lists
        # and name lookups. Its nested stacks go.
        s.set_status("DELETE_COMPLETE", "Stack DELETE completed successfully")
        s.deleted = self.world.now()
        for child in [c for c in self.stacks.values() if c.parent == s.id]:
            self.remove(child.id)

    # stacks users create ------------------------------------------------------------------------
    def create_stack(self, req):
        self._check_tenant(req)
        body = req.json()
        if not isinstance(body, dict) or not body.get("stack_name"):
            raise ApiError(400, "No stack name specified", kind="HTTPBadRequest")
        name = body["stack_name"]
        tmpl = self._template(body)
        if not _STACK_NAME_RE.match(name):
            raise ApiError(400, 'Invalid stack name %s must contain only alphanumeric or "_-." characters, must '
                                'start with alpha and must be 255 characters or less.' % name,
                           kind="StackValidationFailed")
        if self.find(name, req.token.project_id) is not None:
            raise ApiError(409, "The Stack (%s) already exists." % name, kind="StackExists")
        params = self._user_parameters(tmpl, body.get("parameters") or {})
        s = self.add(Stack(self, name, req.token.project_id, description=tmpl.get("description", ""),
                           timeout_mins=body.get("timeout_mins") or 60, tags=body.get("tags") or None,
                           owner=req.token.user["name"]))
        self._apply_template(s, tmpl, params)
        self.world.later(0.2, s.set_status, "CREATE_COMPLETE", "Stack CREATE completed successfully")
        url = self._stack_url(req, s)
        return json_response({"stack": {"id": s.id, "links": [{"href": url, "rel": "self"}]}}, status=201,
                             headers={"Location": url})

    def update_stack(self, req):
        s = self._get(req, req.params["stack"], req.params["stack_id"])
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.", kind="HTTPBadRequest")
        patch = req.method == "PATCH"
        if s.template is None:
            raise ApiError(400, "This simulator updates only the stacks made through its own API, not those of "
                                "its Magnum driver.", kind="HTTPBadRequest")
        if patch and "template" not in body and "template_url" not in body:
            tmpl = s.template
        else:
            tmpl = self._template(body)
        given = dict(s.parameters) if patch else {}
        given.update(body.get("parameters") or {})
        params = self._user_parameters(tmpl, given)
        if s.status.endswith("_IN_PROGRESS"):
            raise ApiError(409, "Stack %s already has an action (%s) in progress." % (s.name, s.action),
                           kind="ActionInProgress")
        s.set_status("UPDATE_IN_PROGRESS", "Stack UPDATE started")
        self._apply_template(s, tmpl, params)
        self.world.later(0.2, s.set_status, "UPDATE_COMPLETE", "Stack UPDATE completed successfully")
        return Response(202, self._webob_body(202, "The request is accepted for processing."))

    @staticmethod
    def _template(body):
        tmpl = body.get("template")
        if tmpl is None:
            if body.get("template_url"):
                raise ApiError(400, "Could not retrieve template: this simulator fetches no template_url.",
                               kind="HTTPBadRequest")
            raise ApiError(400, "No template specified", kind="HTTPBadRequest")
        if isinstance(tmpl, str):
            try:
                from .scenario import _yaml_load  # pylint: disable=import-outside-toplevel
                tmpl = _yaml_load(tmpl)
            except Exception as exc:  # pylint: disable=broad-except
                raise ApiError(400, "Error parsing template: %s" % exc, kind="HTTPBadRequest")
        if not isinstance(tmpl, dict):
            raise ApiError(400, "The template is not a JSON object or YAML mapping.", kind="HTTPBadRequest")
        version = tmpl.get("heat_template_version")
        if str(version) not in _HOT_VERSIONS:
            raise ApiError(400, 'The template version is invalid: "heat_template_version: %s". "heat_template_version" '
                                'should be one of: %s' % (version, ", ".join(sorted(_HOT_VERSIONS))),
                           kind="InvalidTemplateVersion")
        for rname, rdef in (tmpl.get("resources") or {}).items():
            rtype = (rdef or {}).get("type")
            if rtype not in _USER_TYPES:
                raise ApiError(400, "The Resource Type (%s) could not be found." % rtype, kind="StackValidationFailed")
            for dep in (rdef or {}).get("depends_on") or []:
                if dep not in tmpl["resources"]:
                    raise ApiError(400, 'Resource %s: "depends_on" names an unknown resource %s.' % (rname, dep),
                                   kind="StackValidationFailed")
        return json.loads(json.dumps(tmpl))

    @staticmethod
    def _user_parameters(tmpl, given):
        declared = tmpl.get("parameters") or {}
        for key in given:
            if key not in declared:
                raise ApiError(400, "The Parameter (%s) was not defined in template." % key,
                               kind="UnknownUserParameter")
        values = {}
        for key, spec in declared.items():
            if key in given:
                values[key] = given[key]
            elif "default" in (spec or {}):
                values[key] = spec["default"]
            else:
                raise ApiError(400, "The Parameter (%s) was not provided." % key, kind="UserParameterMissing")
        return values

    @staticmethod
    def _typed(tmpl, key, value):
        """A parameter's value as get_param answers it: numbers as numbers."""
        if ((tmpl.get("parameters") or {}).get(key) or {}).get("type") == "number" and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                try:
                    return float(value)
                except ValueError:
                    return value
        return value

    def _apply_template(self, s, tmpl, params):
        now = self.world.now()
        s.template = tmpl
        # Heat shows every parameter value as a string; get_param answers it typed.
        s.parameters = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        old = {r.name: r for r in s.resources_fn()}
        resources = []
        specs = tmpl.get("resources") or {}
        for rname, rdef in specs.items():
            kept = old.get(rname)
            if kept is not None and kept.type == rdef["type"]:
                kept.status, kept.reason, kept.updated = "UPDATE_COMPLETE", "state changed", now
                resources.append(kept)
                continue
            required_by = [n for n, d in specs.items() if rname in ((d or {}).get("depends_on") or [])]
            resources.append(Resource(rname, rdef["type"], physical_id=self.world.ids.uuid(), created=now,
                                      updated=now, required_by=required_by))
        by_name = {r.name: r for r in resources}

        def value(expr):
            if isinstance(expr, dict) and len(expr) == 1:
                (fn, arg), = expr.items()
                if fn == "get_param":
                    return self._typed(tmpl, arg, params.get(arg))
                if fn == "get_resource":
                    return by_name[arg].physical_id if arg in by_name else None
            return expr

        outputs = [{"output_key": k, "output_value": value((o or {}).get("value")),
                    "description": (o or {}).get("description", "No description given")}
                   for k, o in (tmpl.get("outputs") or {}).items()]
        s.resources_fn = lambda: resources
        s.outputs_fn = lambda: outputs

    # outputs -----------------------------------------------------------------------------------
    def _outputs(self, s):
        out = []
        for o in s.outputs_fn():
            d = {"output_key": o["output_key"], "output_value": o.get("output_value"),
                 "description": o.get("description", "No description given")}
            if o.get("output_error"):
                d["output_error"] = o["output_error"]
            out.append(d)
        return out

    def list_outputs(self, req):
        s = self._get(req, req.params["stack"], req.params["stack_id"])
        return json_response({"outputs": [{"output_key": o["output_key"], "description": o["description"]}
                                          for o in self._outputs(s)]})

    def show_output(self, req):
        s = self._get(req, req.params["stack"], req.params["stack_id"])
        for o in self._outputs(s):
            if o["output_key"] == req.params["key"]:
                return json_response({"output": o})
        raise ApiError(404, "Specified output key %s not found." % req.params["key"], kind="NotFound")

    # resources ------------------------------------------------------------------------------------
    def _resource_row(self, req, s, r, detail=False):
        base = self._stack_url(req, s)
        links = [{"href": "%s/resources/%s" % (base, urllib.parse.quote(r.name)), "rel": "self"},
                 {"href": base, "rel": "stack"}]
        if r.nested is not None:
            links.append({"href": self._stack_url(req, r.nested), "rel": "nested"})
        row = {
            "resource_name": r.name, "logical_resource_id": r.name, "physical_resource_id": r.physical_id or "",
            "resource_type": r.type, "resource_status": r.status, "resource_status_reason": r.reason,
            "creation_time": iso_z(r.created or s.created), "updated_time": iso_z(r.updated or r.created or s.created),
            "required_by": list(r.required_by), "links": links,
        }
        if s.parent is not None:
            row["parent_resource"] = s.parent_resource
        if detail:
            row["attributes"] = dict(r.attributes)
            row["description"] = ""
        return row

    def _walk(self, s, depth):
        for r in s.resources_fn():
            yield s, r
            if depth > 0 and r.nested is not None:
                yield from self._walk(r.nested, depth - 1)

    def list_resources(self, req):
        s = self._get(req, req.params["stack"], req.params["stack_id"])
        try:
            depth = int(req.q("nested_depth", "0"))
        except ValueError:
            raise ApiError(400, "Only integer is acceptable by 'nested_depth'.", kind="HTTPBadRequest")
        detail = req.q("with_detail", "false").lower() in ("true", "1", "yes")
        filters = {k: req.qlist(k) for k in ("type", "name", "status", "action", "id", "physical_resource_id")
                   if req.qlist(k)}
        rows = []
        for owner, r in self._walk(s, depth):
            if "type" in filters and r.type not in filters["type"]:
                continue
            if "name" in filters and r.name not in filters["name"]:
                continue
            if "status" in filters and r.status.split("_", 1)[-1] not in filters["status"] and r.status not in filters["status"]:
                continue
            if "action" in filters and r.status.split("_", 1)[0] not in filters["action"]:
                continue
            if "physical_resource_id" in filters and r.physical_id not in filters["physical_resource_id"]:
                continue
            rows.append(self._resource_row(req, owner, r, detail))
        return json_response({"resources": rows})

    def show_resource(self, req):
        s = self._get(req, req.params["stack"], req.params["stack_id"])
        for r in s.resources_fn():
            if r.name == req.params["resource"]:
                return json_response({"resource": self._resource_row(req, s, r, detail=True)})
        raise ApiError(404, "The Resource (%s) could not be found in Stack %s." % (req.params["resource"], s.name),
                       kind="ResourceNotFound")

    def list_events(self, req):
        s = self._get(req, req.params["stack"], req.params["stack_id"])
        return json_response({"events": [{
            "id": s.id[:8] + "-evt", "resource_name": s.name, "logical_resource_id": s.name,
            "physical_resource_id": s.id, "resource_status": s.status, "resource_status_reason": s.reason,
            "event_time": iso_z(s.updated or s.created), "links": [{"href": self._stack_url(req, s), "rel": "stack"}]}]})

    def show_template(self, req):
        s = self._get(req, req.params["stack"], req.params["stack_id"])
        if s.template is not None:
            return json_response(s.template)
        return json_response({"heat_template_version": "2021-04-16", "description": s.description,
                              "resources": {r.name: {"type": r.type} for r in s.resources_fn()},
                              "outputs": {o["output_key"]: {"description": o.get("description", "")}
                                          for o in s.outputs_fn()}})

    def summary(self, s):
        return {"id": s.id, "name": s.name, "status": s.status, "parent": s.parent}
