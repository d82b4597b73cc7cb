"""One threaded HTTP/1.1 server for every simulated service.

Services live under devstack-like path prefixes (``/compute/v2.1``,
``/network/v2.0``...). Each service registers routes with the ``Router`` and
supplies its own error rendering, so a failure anywhere (a handler, an injected
fault, a missing token) reaches the client in the shape that service's real API
uses.
"""

import http
import http.server
import json
import re
import socket
import sys
import threading
import time
import traceback
import urllib.parse

from .util import ApiError, Response

_REASONS = {s.value: s.phrase for s in http.HTTPStatus}

UNAUTHORIZED_BODY = {
    "error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }
}


class Request:
    __slots__ = (
        "method", "path", "query", "headers", "body", "params", "service", "token",
        "host_url", "route", "_json", "version", "ctx", "raw_query",
    )

    def __init__(self, method, path, raw_query, headers, body, host_url):
        self.method = method
        self.path = path
        self.raw_query = raw_query
        self.query = urllib.parse.parse_qs(raw_query, keep_blank_values=True) if raw_query else {}
        self.headers = headers
        self.body = body
        self.host_url = host_url
        self.params = {}
        self.service = None
        self.token = None
        self.route = None
        self._json = None
        self.version = None
        self.ctx = {}

    def header(self, name, default=None):
        v = self.headers.get(name)
        return default if v is None else v

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[-1] if v else default

    def qlist(self, name):
        return self.query.get(name, [])

    def json(self, required=True):
        if self._json is None:
            if not self.body:
                if required:
                    raise ApiError(400, "The request body is empty or is not valid JSON.")
                return None
            try:
                self._json = json.loads(self.body)
            except ValueError:
                raise ApiError(400, "Malformed request body: the body is not valid JSON.")
        return self._json


class Route:
    __slots__ = ("service", "method", "regex", "template", "handler", "auth", "locked")

    def __init__(self, service, method, regex, template, handler, auth, locked):
        self.service = service
        self.method = method
        self.regex = regex
        self.template = template
        self.handler = handler
        self.auth = auth
        self.locked = locked


_PARAM_RE = re.compile(r"\{(\w+)\}")


class Router:
    def __init__(self):
        self._routes = {}

    def add(self, service, method, template, handler, auth=True, locked=True):
        parts = []
        pos = 0
        for m in _PARAM_RE.finditer(template):
            parts.append(re.escape(template[pos:m.start()]))
            parts.append("(?P<%s>[^/]+)" % m.group(1))
            pos = m.end()
        parts.append(re.escape(template[pos:]))
        pattern = "^" + "".join(parts) + "$"
        counter_template = _PARAM_RE.sub("{id}", template)
        route = Route(service, method, re.compile(pattern), counter_template, handler, auth, locked)
        self._routes.setdefault(service.name, []).append(route)
        return route

    def match(self, service, method, path):
        allowed = []
        for route in self._routes.get(service.name, ()):
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}, allowed
            allowed.append(route.method)
        return None, None, allowed


class Service:
    """Base for a simulated service: path prefix, error shape, request hooks."""

    name = "service"
    prefix = "/service"
    # a path suffix the service ignores (Neutron's legacy ".json")
    format_suffix = None

    def __init__(self, world):
        self.world = world

    def routes(self, r):
        raise NotImplementedError

    def before(self, req):
        """Runs before the handler (microversion negotiation)."""

    def after(self, req, resp):
        """Adds service-wide response headers."""

    def error_body(self, req, err):
        return {"error": {"code": err.status, "message": err.message}}

    def error_response(self, req, err):
        body = err.body if err.body is not None else self.error_body(req, err)
        resp = Response(err.status, body, err.headers)
        return resp

    def not_found(self, req):
        return ApiError(404, "The resource could not be found.")

    def method_not_allowed(self, req, allowed):
        return ApiError(405, "The method %s is not allowed for this resource." % req.method,
                        headers={"Allow": ", ".join(sorted(set(allowed)))})


class App:
    def __init__(self, world):
        self.world = world
        self.router = Router()
        self.services = {}
        self.admin = None

    def add_service(self, service):
        self.services[service.prefix.strip("/")] = service
        service.routes(self.router)

    def handle(self, method, target, headers, body):
        raw_path, dummy, raw_query = target.partition("?")
        path = urllib.parse.unquote(raw_path)
        if "//" in path:
            path = re.sub("/{2,}", "/", path)
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        host = headers.get("Host") or self.world.host
        host_url = "http://" + host
        if path == "/_sim" or path.startswith("/_sim/"):
            return self.admin.handle(method, path, raw_query, body, host_url)
        seg = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        service = self.services.get(seg)
        world = self.world
        if service is None:
            world.stats.count(None, "%s %s" % (method, path if path.count("/") <= 1 else "/" + seg + "/<unknown>"))
            return Response(404, {"error": {"code": 404, "title": "Not Found",
                                            "message": "No service is served under %s." % path}})
        suffix = getattr(service, "format_suffix", None)
        if suffix and path.endswith(suffix):
            # Neutron still accepts its legacy format extension (python-neutronclient, and so
            # Nova, append ".json" to every path)
            path = path[:-len(suffix)]
        req = Request(method, path, raw_query, headers, body, host_url)
        req.service = service
        route, params, allowed = self.router.match(service, method, path)
        template = route.template if route else "%s/<unmatched>" % service.prefix
        world.stats.count(service.name, "%s %s" % (method, template))
        delay = world.latency_ms
        fault = world.faults.match_http(service.name, method, path)
        if fault is not None and fault.rendezvous:
            fault.meet(headers.get("X-Auth-Token"))
        elif fault is not None and fault.latency_ms:
            delay += fault.latency_ms
        if delay:
            time.sleep(delay / 1000.0)
        try:
            if fault is not None and fault.status and not fault.after:
                return self._finish(service, req, fault.response(service, req))
            if route is None:
                if allowed:
                    raise service.method_not_allowed(req, allowed)
                raise service.not_found(req)
            req.route = route
            req.params = params
            if route.auth:
                token = world.keystone.validate_header(headers.get("X-Auth-Token"))
                if token is None:
                    return Response(401, UNAUTHORIZED_BODY, {
                        "WWW-Authenticate": 'Keystone uri="%s/identity"' % host_url})
                req.token = token
            service.before(req)
            if route.locked:
                with world.lock:
                    world.run_due()
                    resp = route.handler(req)
            else:
                resp = route.handler(req)
        except ApiError as err:
            resp = service.error_response(req, err)
        except Exception:  # a simulator bug must still look like a service fault
            traceback.print_exc(file=sys.stderr)
            resp = service.error_response(req, ApiError(500, "Unexpected simulator error: %s" % sys.exc_info()[1]))
        if fault is not None and fault.status and fault.after:
            # The request was carried out; the client only hears the error (a proxy timing out).
            resp = fault.response(service, req)
        return self._finish(service, req, resp)

    def _finish(self, service, req, resp):
        try:
            service.after(req, resp)
        except Exception:
            traceback.print_exc(file=sys.stderr)
        return resp


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hpcops-sim"
    sys_version = ""
    # keep-alive connections idle longer than this are dropped, so abandoned
    # client pools do not pin handler threads forever
    timeout = 120

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format, *args):
        pass

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self):
        body = self._read_body()
        try:
            resp = self.server.app.handle(self.command, self.path, self.headers, body)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            resp = Response(500, {"error": {"code": 500, "message": "simulator failure"}})
        self._write(resp)

    def _write(self, resp):
        status = resp.status
        out = ["HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, "Unknown"))]
        headers = resp.headers
        for k, v in headers.items():
            out.append("%s: %s\r\n" % (k, v))
        body = resp.body
        if status >= 200 and status not in (204, 304):
            out.append("Content-Length: %d\r\n" % len(body))
        elif status == 204:
            out.append("Content-Length: 0\r\n")
        if "x-openstack-request-id" not in {k.lower() for k in headers}:
            out.append("X-Openstack-Request-Id: req-%s\r\n" % self.server.next_request_id())
        if self.close_connection:
            out.append("Connection: close\r\n")
        out.append("\r\n")
        data = "".join(out).encode("latin-1")
        if self.command != "HEAD" and status not in (204, 304):
            data += body
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    block_on_close = False

    def __init__(self, address, app):
        self.app = app
        self._conns = set()
        self._conns_lock = threading.Lock()
        self._rid = 0
        super().__init__(address, _Handler)

    def next_request_id(self):
        self._rid += 1
        return "%08x-0000-4000-8000-%012x" % (self._rid & 0xFFFFFFFF, self._rid)

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self):
        # Handler threads idle in keep-alive reads would otherwise keep serving
        # pooled client connections after stop().
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_in_thread(app, host="127.0.0.1", port=0):
    server = HTTPServer((host, port), app)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="sim-openstack-http", daemon=True)
    t.start()
    return server, t


__all__ = ["App", "Service", "Request", "Response", "ApiError", "HTTPServer", "serve_in_thread"]
