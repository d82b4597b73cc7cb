import openstack
import pytest
import requests

from os_simhelpers import Api


def test_version_documents(sim_cloud):
    root = requests.get(sim_cloud.url + "/identity")
    assert root.status_code == 300
    values = root.json()["versions"]["values"]
    assert values[0]["id"].startswith("v3.") and values[0]["status"] == "stable"
    v3 = requests.get(sim_cloud.url + "/identity/v3").json()["version"]
    assert v3["links"][0]["href"] == sim_cloud.url + "/identity/v3/"


def test_password_auth_token_body_and_catalog(sim_cloud):
    api = Api(sim_cloud.url)
    tok = api.token_body
    assert tok["methods"] == ["password"]
    assert tok["project"]["name"] == "hpc" and tok["project"]["domain"]["id"] == "default"
    assert {r["name"] for r in tok["roles"]} == {"admin", "member", "reader"}
    assert tok["expires_at"].endswith("Z") and "." in tok["expires_at"]
    urls = {e["type"]: e["endpoints"][0]["url"] for e in tok["catalog"]}
    assert urls["orchestration"].endswith("/orchestration/v1/" + api.project_id)
    assert urls["container-infra"].endswith("/container-infra/v1")
    assert set(urls) >= {"compute", "network", "image", "identity"}
    # validation of the token by another token
    r = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": api.token})
    assert r.status_code == 200 and r.headers["X-Subject-Token"] == api.token
    assert r.json()["token"]["user"]["name"] == "admin"
    r = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": "gAAAAAnope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == 404


def test_bad_credentials_and_missing_token(sim_cloud):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "wrong"}}}}}
    r = requests.post(sim_cloud.url + "/identity/v3/auth/tokens", json=body)
    assert r.status_code == 401
    assert r.json() == {"error": {"code": 401, "title": "Unauthorized",
                                  "message": "The request you have made requires authentication."}}
    for path in ("/compute/v2.1/servers", "/network/v2.0/ports", "/container-infra/v1/clusters",
                 "/image/v2/images"):
        r = requests.get(sim_cloud.url + path, headers={"X-Auth-Token": "bogus"})
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == 401
        assert "WWW-Authenticate" in r.headers


def test_project_scope_by_id_and_foreign_project_refused(sim_cloud):
    api = Api(sim_cloud.url)
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": api.token_body["user"]["id"], "password": "secret"}}},
        "scope": {"project": {"id": api.project_id}}}}
    r = requests.post(sim_cloud.url + "/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201 and r.json()["token"]["project"]["id"] == api.project_id
    body["auth"]["scope"] = {"project": {"name": "other", "domain": {"name": "Default"}}}
    assert requests.post(sim_cloud.url + "/identity/v3/auth/tokens", json=body).status_code == 401


def test_application_credential_cloud(sim_cloud, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", sim_cloud.clouds_yaml)
    conn = openstack.connect(cloud="hpcops-sim-appcred")
    assert "login-1" in {s.name for s in conn.compute.servers()}
    access = conn.session.auth.get_access(conn.session)
    assert access.application_credential_id and access.application_credential["name"] == "hpcops-ci"


def test_token_revocation_makes_clients_reauthenticate(sim_cloud, os_conn):
    assert len(list(os_conn.compute.servers(name="^login"))) == 1
    before = sim_cloud.requests()["by_route"]["POST /identity/v3/auth/tokens"]
    sim_cloud.set_faults([{"kind": "token_expire_all"}])
    assert len(list(os_conn.compute.servers(name="^login"))) == 1
    after = sim_cloud.requests()["by_route"]["POST /identity/v3/auth/tokens"]
    assert after == before + 1
    assert sim_cloud.requests()["by_route"]["GET /compute/v2.1/servers/detail"] == 3  # one 401, one retry


def test_short_token_lifetime_expires_server_side(sim_cloud_factory):
    cloud = sim_cloud_factory(token_lifetime=0.3)
    api = Api(cloud.url)
    assert api.get("/compute/v2.1/flavors").status_code == 200
    import time

    time.sleep(0.4)
    r = api.get("/compute/v2.1/flavors")
    assert r.status_code == 401


@pytest.mark.parametrize("user,password", [("demo", "demo-secret")])
def test_non_admin_token_has_member_roles(sim_cloud, user, password):
    api = Api(sim_cloud.url, user=user, password=password)
    assert {r["name"] for r in api.token_body["roles"]} == {"member", "reader"}
