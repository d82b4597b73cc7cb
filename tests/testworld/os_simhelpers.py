"""Helpers shared by the simulated-cloud fidelity tests."""

import time

import requests


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


class Api:
    """Raw HTTP against the simulator with a token, for shapes clients hide."""

    def __init__(self, url, user="admin", password="secret", project="hpc"):
        self.url = url
        self.session = requests.Session()
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
        r = self.session.post(url + "/identity/v3/auth/tokens", json=body)
        r.raise_for_status()
        self.token = r.headers["X-Subject-Token"]
        self.token_body = r.json()["token"]
        self.project_id = self.token_body["project"]["id"]

    def request(self, method, path, headers=None, **kw):
        h = {"X-Auth-Token": self.token}
        h.update(headers or {})
        return self.session.request(method, self.url + path, headers=h, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def server_by_name(cloud, name):
    return next(s for s in cloud.state()["servers"] if s["name"] == name)


def cluster_state(cloud, name):
    return next(c for c in cloud.state()["clusters"] if c["name"] == name)


def visible_cluster(magnum, ident, timeout=10.0):
    """The cluster once Magnum shows it: right after a create's 202 it answers 404
    for a moment (its conductor stores the cluster asynchronously)."""
    from magnumclient import exceptions as magnum_exc

    def shown():
        try:
            return magnum.clusters.get(ident)
        except magnum_exc.NotFound:
            return None
    return wait_for(shown, timeout=timeout, what="cluster %s visible" % ident)
