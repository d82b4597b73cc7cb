"""Small helpers shared by every simulated service."""

import datetime
import json
import random
import re
import threading
import uuid

_json_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(obj):
    return _json_encoder.encode(obj).encode("utf-8")


class IdSource:
    """Seeded identifiers so a scenario produces the same ids run after run."""

    def __init__(self, seed=0):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def uuid(self):
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hex(self):
        return self.uuid().replace("-", "")

    def chars(self, n, alphabet="abcdefghijklmnopqrstuvwxyz0123456789"):
        with self._lock:
            return "".join(self._rng.choice(alphabet) for dummy in range(n))

    def random(self):
        with self._lock:
            return self._rng.random()


def utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


def iso_z(ts):
    """Nova, Neutron, Heat: 2026-01-02T03:04:05Z."""
    if ts is None:
        return None
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_offset(ts):
    """Magnum: 2026-01-02T03:04:05+00:00."""
    if ts is None:
        return None
    return utc(ts).replace(microsecond=0).isoformat()


def iso_micro_z(ts):
    """Keystone token timestamps: 2026-01-02T03:04:05.000000Z."""
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value):
    """Parse the ISO 8601 forms clients send in changes-since and similar filters."""
    v = value.strip().replace(" ", "+")
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


class ApiError(Exception):
    """An error response; the dispatcher renders it in the owning service's shape.

    ``kind`` names the service-specific error type where one exists (Neutron's
    ``type``, Heat's ``error.type``); ``body`` replaces the rendered body.
    """

    def __init__(self, status, message, kind=None, headers=None, body=None, title=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}
        self.body = body
        self.title = title


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status=200, body=None, headers=None, content_type="application/json"):
        self.status = status
        self.headers = dict(headers or {})
        if body is None:
            self.body = b""
        elif isinstance(body, (bytes, bytearray)):
            self.body = bytes(body)
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
        else:
            self.body = dumps(body)
        if self.body or status not in (204, 304):
            self.headers.setdefault("Content-Type", content_type)


def json_response(obj, status=200, headers=None):
    return Response(status, obj, headers)


def empty(status=204, headers=None):
    r = Response(status, None, headers)
    r.headers.pop("Content-Type", None)
    return r


UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def is_uuid_like(value):
    return isinstance(value, str) and bool(UUID_RE.match(value))


def bool_param(value, default=False):
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y", "t")
