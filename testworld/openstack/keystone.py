"""Keystone v3: version documents, password and application-credential
authentication, token validation and the service catalog."""

import secrets

from .httpserver import Service
from .util import ApiError, Response, empty, iso_micro_z, json_response

CATALOG = (
    # (type, name, path under the public URL; {project_id} filled per token)
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("network", "neutron", "/network"),
    ("image", "glance", "/image"),
    ("orchestration", "heat", "/orchestration/v1/{project_id}"),
    ("container-infra", "magnum", "/container-infra/v1"),
)


# What Keystone lists when a request names another authentication method.
SUPPORTED_METHODS = ("external", "password", "token", "oauth1", "mapped", "application_credential", "ec2credential")


class Token:
    __slots__ = ("id", "user", "project", "roles", "methods", "issued", "expires", "audit_id", "app_cred")

    def __init__(self, id, user, project, roles, methods, issued, expires, audit_id, app_cred=None):
        self.id = id
        self.user = user
        self.project = project
        self.roles = roles
        self.methods = methods
        self.issued = issued
        self.expires = expires
        self.audit_id = audit_id
        self.app_cred = app_cred

    @property
    def project_id(self):
        return self.project["id"] if self.project else None

    @property
    def user_id(self):
        return self.user["id"]

    @property
    def is_admin(self):
        return "admin" in self.roles


class Keystone(Service):
    name = "identity"
    prefix = "/identity"

    def __init__(self, world):
        super().__init__(world)
        scn = world.scenario.get("identity") or {}
        ids = world.ids
        self.domains = {"default": {"id": "default", "name": "Default"}}
        for d in scn.get("domains") or []:
            did = d.get("id") or ids.hex()
            self.domains[did] = {"id": did, "name": d["name"]}
        self.projects = {}
        for p in scn.get("projects") or [{"name": "hpc"}]:
            pid = p.get("id") or ids.hex()
            self.projects[pid] = {"id": pid, "name": p["name"], "domain_id": self._domain_id(p.get("domain", "default"))}
        self.role_ids = {}
        self.users = {}
        users = scn.get("users") or [{"name": "admin", "password": "secret", "roles": ["admin", "member", "reader"]}]
        default_project = next(iter(self.projects.values()))
        for u in users:
            uid = u.get("id") or ids.hex()
            project = self._find_project(u.get("project")) if u.get("project") else default_project
            roles = list(u.get("roles") or ["member", "reader"])
            for r in roles:
                self._role_id(r)
            self.users[uid] = {
                "id": uid, "name": u["name"], "password": str(u.get("password", "secret")),
                "domain_id": self._domain_id(u.get("domain", "default")),
                "default_project_id": project["id"],
                # role assignments: project id -> role names
                "assignments": {project["id"]: roles},
            }
            for extra in u.get("extra_projects") or []:
                self.users[uid]["assignments"][self._find_project(extra)["id"]] = roles
        self.app_creds = {}
        for a in scn.get("application_credentials") or []:
            user = self.find_user(a["user"])
            project = self._find_project(a["project"]) if a.get("project") else self.projects[user["default_project_id"]]
            acid = a.get("id") or ids.hex()
            self.app_creds[acid] = {
                "id": acid, "name": a.get("name", "appcred"), "secret": str(a["secret"]),
                "user_id": user["id"], "project_id": project["id"],
                "roles": list(a.get("roles") or user["assignments"].get(project["id"], [])),
                "unrestricted": bool(a.get("unrestricted", False)),
            }
        if not self.app_creds:
            # clouds.yaml always offers an application-credential cloud
            user = next(iter(self.users.values()))
            acid = ids.hex()
            self.app_creds[acid] = {
                "id": acid, "name": "hpcops-sim", "secret": "hpcops-sim-secret", "user_id": user["id"],
                "project_id": user["default_project_id"],
                "roles": list(user["assignments"][user["default_project_id"]]), "unrestricted": False,
            }
        self.tokens = {}
        # Tokens issued before this instant are invalid ("token_expire_all" fault).
        self.revoked_before = 0.0

    # -- lookups ------------------------------------------------------------
    def _domain_id(self, ref):
        if isinstance(ref, dict):
            ref = ref.get("id") or ref.get("name")
        for d in self.domains.values():
            if ref in (d["id"], d["name"]):
                return d["id"]
        return "default"

    def _role_id(self, name):
        if name not in self.role_ids:
            self.role_ids[name] = self.world.ids.hex()
        return self.role_ids[name]

    def _find_project(self, ref):
        for p in self.projects.values():
            if ref in (p["id"], p["name"]):
                return p
        raise KeyError("project %r not in scenario" % ref)

    def find_user(self, ref):
        for u in self.users.values():
            if ref in (u["id"], u["name"]):
                return u
        raise KeyError("user %r not in scenario" % ref)

    def default_project(self):
        return next(iter(self.projects.values()))

    def first_user(self):
        return next(iter(self.users.values()))

    # -- tokens -------------------------------------------------------------
    def validate_header(self, token_id):
        if not token_id:
            return None
        tok = self.tokens.get(token_id)
        if tok is None:
            return None
        now = self.world.now()
        if tok.expires <= now or tok.issued < self.revoked_before:
            return None
        return tok

    def revoke_all(self):
        self.revoked_before = self.world.now()

    def issue(self, user, project, roles, methods, app_cred=None):
        now = self.world.now()
        tid = "gAAAAAB" + secrets.token_urlsafe(135)
        tok = Token(tid, user, project, roles, methods, now, now + self.world.timing("token_lifetime"),
                    secrets.token_urlsafe(16)[:22], app_cred)
        self.tokens[tid] = tok
        return tok

    def catalog(self, project_id):
        base = self.world.public_url
        region = self.world.scenario.get("region", "RegionOne")
        out = []
        for i, (stype, name, path) in enumerate(CATALOG):
            url = base + path.replace("{project_id}", project_id or "")
            eid = "%032x" % (0xE0000 + i)
            out.append({
                "type": stype, "name": name, "id": "%032x" % (0x50000 + i),
                "endpoints": [{"id": eid, "interface": iface, "region": region, "region_id": region, "url": url}
                              for iface in ("public", "internal")],
            })
        return out

    def token_body(self, tok, catalog=True):
        user = tok.user
        body = {
            "methods": tok.methods,
            "user": {"domain": dict(self.domains[user["domain_id"]]), "id": user["id"], "name": user["name"],
                     "password_expires_at": None},
            "audit_ids": [tok.audit_id],
            "expires_at": iso_micro_z(tok.expires),
            "issued_at": iso_micro_z(tok.issued),
        }
        if tok.project:
            p = tok.project
            body["project"] = {"domain": dict(self.domains[p["domain_id"]]), "id": p["id"], "name": p["name"]}
            body["is_domain"] = False
            body["roles"] = [{"id": self._role_id(r), "name": r} for r in tok.roles]
            if catalog:
                body["catalog"] = self.catalog(p["id"])
        if tok.app_cred:
            body["application_credential"] = {"id": tok.app_cred["id"], "name": tok.app_cred["name"],
                                              "restricted": not tok.app_cred["unrestricted"]}
        return {"token": body}

    # -- HTTP -----------------------------------------------------------------
    def error_body(self, req, err):
        titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error",
                  503: "Service Unavailable"}
        return {"error": {"code": err.status, "title": err.title or titles.get(err.status, "Error"),
                          "message": err.message}}

    def not_found(self, req):
        # An unrouted path is answered by Flask, in HTML, not by Keystone.
        return ApiError(404, "Not Found", headers={"Content-Type": "text/html; charset=utf-8"}, body=(
            "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested "
            "URL was not found on the server. If you entered the URL manually please check your spelling and try "
            "again.</p>\n"))

    def method_not_allowed(self, req, allowed):
        return ApiError(405, "The method is not allowed for the requested URL.",
                        headers={"Allow": ", ".join(sorted(set(allowed)))},
                        body={"message": "The method is not allowed for the requested URL."})

    def before(self, req):
        if req.body and not (req.header("Content-Type") or "").startswith("application/json"):
            raise ApiError(400, "Expecting to find application/json in Content-Type header. The server could not "
                                "comply with the request since it is either malformed or otherwise incorrect. The "
                                "client is assumed to be in error.")

    @staticmethod
    def _forbidden(action):
        return ApiError(403, "You are not authorized to perform the requested action: identity:%s." % action)

    def routes(self, r):
        r.add(self, "GET", "/identity", self.versions, auth=False, locked=False)
        r.add(self, "GET", "/identity/v3", self.version, auth=False, locked=False)
        r.add(self, "POST", "/identity/v3/auth/tokens", self.authenticate, auth=False)
        r.add(self, "GET", "/identity/v3/auth/tokens", self.check_token)
        r.add(self, "DELETE", "/identity/v3/auth/tokens", self.revoke_token)
        r.add(self, "GET", "/identity/v3/auth/catalog", self.get_catalog)
        r.add(self, "GET", "/identity/v3/auth/projects", self.auth_projects)
        r.add(self, "GET", "/identity/v3/projects", self.list_projects)
        r.add(self, "GET", "/identity/v3/projects/{project_id}", self.show_project)
        r.add(self, "GET", "/identity/v3/users", self.list_users)
        r.add(self, "GET", "/identity/v3/users/{user_id}", self.show_user)

    def _version_doc(self, req):
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": req.host_url + "/identity/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    def versions(self, req):
        return json_response({"versions": {"values": [self._version_doc(req)]}}, status=300,
                             headers={"Location": req.host_url + "/identity/v3/"})

    def version(self, req):
        return json_response({"version": self._version_doc(req)})

    def _unauthorized(self):
        return ApiError(401, "The request you have made requires authentication.",
                        headers={"WWW-Authenticate": 'Keystone uri="%s/identity"' % self.world.public_url})

    def _resolve_user(self, spec):
        if not isinstance(spec, dict):
            raise ApiError(400, "Invalid input for field 'identity/password/user'.")
        if spec.get("id"):
            user = self.users.get(spec["id"])
        else:
            name = spec.get("name")
            dom = spec.get("domain") or {}
            if not name or not (dom.get("id") or dom.get("name")):
                raise ApiError(400, "Expecting to find domain in user. The server could not comply with the "
                                    "request since it is either malformed or otherwise incorrect.")
            did = None
            for d in self.domains.values():
                if dom.get("id") == d["id"] or dom.get("name") == d["name"]:
                    did = d["id"]
            user = None
            for u in self.users.values():
                if u["name"] == name and u["domain_id"] == did:
                    user = u
        return user

    def _resolve_scope(self, user, scope):
        if scope is None:
            pid = user["default_project_id"]
            return self.projects.get(pid)
        if scope == "system" or "system" in scope:
            raise self._unauthorized()
        if "domain" in scope and "project" not in scope:
            raise self._unauthorized()
        pspec = scope.get("project") or {}
        project = None
        if pspec.get("id"):
            project = self.projects.get(pspec["id"])
        elif pspec.get("name"):
            dom = pspec.get("domain") or {}
            if not (dom.get("id") or dom.get("name")):
                raise ApiError(400, "Expecting to find domain in project. The server could not comply with "
                                    "the request since it is either malformed or otherwise incorrect.")
            for p in self.projects.values():
                d = self.domains[p["domain_id"]]
                if p["name"] == pspec["name"] and (dom.get("id") == d["id"] or dom.get("name") == d["name"]):
                    project = p
        if project is None or project["id"] not in user["assignments"]:
            raise self._unauthorized()
        return project

    def authenticate(self, req):
        body = req.json()
        try:
            auth = body["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
        except (KeyError, TypeError):
            raise ApiError(400, "Invalid input for field 'identity': 'methods' is a required property")
        scope = auth.get("scope")
        app_cred = None
        if "application_credential" in methods:
            spec = identity.get("application_credential") or {}
            if scope:
                raise ApiError(401, "Error authenticating with application credential: Application credentials "
                                    "cannot request a scope.", body={"error": {
                                        "code": 401, "identity": {}, "title": "Unauthorized",
                                        "message": "Error authenticating with application credential: Application "
                                                   "credentials cannot request a scope."}})
            ac = None
            if spec.get("id"):
                ac = self.app_creds.get(spec["id"])
                if ac is None:
                    raise ApiError(404, "Could not find Application Credential: %s." % spec["id"])
            elif spec.get("name"):
                user = self._resolve_user(spec.get("user") or {})
                for cand in self.app_creds.values():
                    if user and cand["name"] == spec["name"] and cand["user_id"] == user["id"]:
                        ac = cand
            if ac is None or spec.get("secret") != ac["secret"]:
                raise self._unauthorized()
            user = self.users[ac["user_id"]]
            project = self.projects[ac["project_id"]]
            roles = ac["roles"]
            app_cred = ac
        elif "password" in methods:
            user = self._resolve_user((identity.get("password") or {}).get("user"))
            pw = ((identity.get("password") or {}).get("user") or {}).get("password")
            if user is None or pw != user["password"]:
                raise self._unauthorized()
            project = self._resolve_scope(user, scope)
            roles = user["assignments"].get(project["id"], []) if project else []
        elif "token" in methods:
            token_id = (identity.get("token") or {}).get("id")
            if token_id not in self.tokens:
                raise ApiError(404, "Could not recognize Fernet token")
            old = self.validate_header(token_id)
            if old is None:
                raise self._unauthorized()
            user = old.user
            project = self._resolve_scope(user, scope) if scope else old.project
            roles = user["assignments"].get(project["id"], []) if project else []
            app_cred = old.app_cred
            # A token made from a token keeps the methods that made the first one.
            methods = list(methods) + [m for m in old.methods if m not in methods]
        else:
            message = "Attempted to authenticate with an unsupported method."
            raise ApiError(401, message, body={"error": {"code": 401, "title": "Unauthorized", "message": message,
                                                         "identity": {"methods": list(SUPPORTED_METHODS)}}})
        tok = self.issue(user, project, list(roles), list(methods), app_cred)
        return json_response(self.token_body(tok, "nocatalog" not in req.query), status=201,
                             headers={"X-Subject-Token": tok.id})

    def _may_see_token(self, req, sub, action):
        # Keystone's default policy: an administrator, a service, or the token's own user.
        if not (req.token.is_admin or "service" in req.token.roles or sub.user_id == req.token.user_id):
            raise self._forbidden(action)

    def check_token(self, req):
        sub = self.validate_header(req.header("X-Subject-Token"))
        if sub is None:
            raise ApiError(404, "Failed to validate token")
        self._may_see_token(req, sub, "validate_token")
        if req.method == "HEAD":
            return Response(200, b"", {"X-Subject-Token": sub.id})
        return json_response(self.token_body(sub, "nocatalog" not in req.query), headers={"X-Subject-Token": sub.id})

    def revoke_token(self, req):
        sub = self.validate_header(req.header("X-Subject-Token"))
        if sub is None:
            raise ApiError(404, "Failed to validate token")
        self._may_see_token(req, sub, "revoke_token")
        sub.expires = self.world.now()
        return empty(204)

    def get_catalog(self, req):
        return json_response({"catalog": self.catalog(req.token.project_id),
                              "links": {"self": req.host_url + req.path}})

    def _project_view(self, p, req):
        return {"id": p["id"], "name": p["name"], "domain_id": p["domain_id"], "enabled": True,
                "description": "", "is_domain": False, "parent_id": p["domain_id"], "tags": [], "options": {},
                "links": {"self": "%s/identity/v3/projects/%s" % (req.host_url, p["id"])}}

    def auth_projects(self, req):
        user = req.token.user
        return json_response({"projects": [self._project_view(self.projects[pid], req) for pid in user["assignments"]],
                              "links": {"self": req.host_url + req.path, "previous": None, "next": None}})

    def list_projects(self, req):
        if not req.token.is_admin:
            raise self._forbidden("list_projects")
        return json_response({"projects": [self._project_view(p, req) for p in self.projects.values()],
                              "links": {"self": req.host_url + req.path, "previous": None, "next": None}})

    def show_project(self, req):
        # Policy is checked before the lookup: a member learns nothing of projects not its own.
        p = self.projects.get(req.params["project_id"])
        if not req.token.is_admin and (p is None or p["id"] not in req.token.user["assignments"]):
            raise self._forbidden("get_project")
        if p is None:
            raise ApiError(404, "Could not find project: %s." % req.params["project_id"])
        return json_response({"project": self._project_view(p, req)})

    def _user_view(self, u, req):
        return {"id": u["id"], "name": u["name"], "domain_id": u["domain_id"], "enabled": True,
                "default_project_id": u["default_project_id"], "password_expires_at": None, "options": {},
                "links": {"self": "%s/identity/v3/users/%s" % (req.host_url, u["id"])}}

    def list_users(self, req):
        if not req.token.is_admin:
            raise self._forbidden("list_users")
        return json_response({"users": [self._user_view(u, req) for u in self.users.values()],
                              "links": {"self": req.host_url + req.path, "previous": None, "next": None}})

    def show_user(self, req):
        u = self.users.get(req.params["user_id"])
        if not req.token.is_admin and (u is None or u["id"] != req.token.user_id):
            raise self._forbidden("get_user")
        if u is None:
            raise ApiError(404, "Could not find user: %s." % req.params["user_id"])
        return json_response({"user": self._user_view(u, req)})
