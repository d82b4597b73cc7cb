import json
import os
import signal
import stat
import subprocess
import sys
import time

import requests
import yaml
from os_simhelpers import Api, server_by_name, wait_for

from testworld.openstack import SimCloud

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_request_counters_and_reset(sim_cloud, os_api):
    sid = server_by_name(sim_cloud, "login-1")["id"]
    os_api.get("/compute/v2.1/servers/%s" % sid)
    os_api.get("/compute/v2.1/servers/%s/os-interface" % sid)
    counts = requests.get(sim_cloud.url + "/_sim/requests").json()
    assert counts["by_route"]["GET /compute/v2.1/servers/{id}"] == 1
    assert counts["by_route"]["GET /compute/v2.1/servers/{id}/os-interface"] == 1
    assert counts["by_route"]["POST /identity/v3/auth/tokens"] == 1
    assert counts["by_service"] == {"identity": 1, "compute": 2}
    assert counts["total"] == 3  # /_sim calls are not counted
    assert requests.post(sim_cloud.url + "/_sim/requests/reset").json()["total"] == 0
    assert sim_cloud.requests()["total"] == 0


def test_http_fault_rules_use_each_service_error_shape(sim_cloud, os_api):
    r = requests.put(sim_cloud.url + "/_sim/faults", json=[
        {"service": "compute", "method": "GET", "path_regex": "/servers/detail$", "status": 503, "count": 2},
        {"service": "network", "path_regex": "/ports$", "status": 500, "count": 1},
        {"service": "container-infra", "path_regex": "/clusters$", "status": 503, "count": 1},
        {"service": "orchestration", "path_regex": "/stacks$", "status": 409, "count": 1, "body": {"custom": True}},
    ])
    assert r.status_code == 200 and len(r.json()["rules"]) == 4
    responses = [os_api.get("/compute/v2.1/servers/detail") for dummy in range(3)]
    assert [x.status_code for x in responses] == [503, 503, 200]
    assert responses[0].json()["serviceUnavailable"]["code"] == 503
    assert os_api.get("/network/v2.0/ports").json()["NeutronError"]["type"] == "HTTPInternalServerError"
    err = os_api.get("/container-infra/v1/clusters").json()["errors"][0]
    assert (err["status"], err["code"]) == (503, "server")
    r = os_api.get("/orchestration/v1/%s/stacks" % os_api.project_id)
    assert (r.status_code, r.json()) == (409, {"custom": True})
    assert os_api.get("/network/v2.0/ports").status_code == 200
    assert [rule["fired"] for rule in sim_cloud.faults()] == [2, 1, 1, 1]
    assert requests.delete(sim_cloud.url + "/_sim/faults").json() == {"rules": []}


def test_rate_with_seed_is_deterministic(sim_cloud, os_api):
    def pattern():
        sim_cloud.set_faults([{"service": "compute", "path_regex": "/flavors$", "status": 503, "rate": 0.5}], seed=7)
        return [os_api.get("/compute/v2.1/flavors").status_code for dummy in range(20)]

    first, second = pattern(), pattern()
    assert first == second and 503 in first and 200 in first


def test_latency_rule_and_global_latency(sim_cloud, os_api):
    sim_cloud.set_faults([{"service": "image", "latency_ms": 200}])
    t = time.monotonic()
    assert os_api.get("/image/v2/images").status_code == 200
    assert time.monotonic() - t >= 0.2
    sim_cloud.clear_faults()
    assert requests.post(sim_cloud.url + "/_sim/latency", json={"ms": 50}).json() == {"ms": 50.0}
    t = time.monotonic()
    for dummy in range(3):
        os_api.get("/compute/v2.1/flavors")
    assert time.monotonic() - t >= 0.15
    sim_cloud.set_latency(0)


def test_conflict_storm(sim_cloud, os_api):
    sid = server_by_name(sim_cloud, "login-1")["id"]
    net = os_api.get("/network/v2.0/networks", params={"name": "eth-10g"}).json()["networks"][0]["id"]
    sim_cloud.set_faults([{"kind": "conflict_storm", "service": "compute", "path_regex": "/os-interface$",
                           "count": 2}])
    url = "/compute/v2.1/servers/%s/os-interface" % sid
    rs = [os_api.post(url, json={"interfaceAttachment": {"net_id": net}}) for dummy in range(3)]
    assert [r.status_code for r in rs] == [409, 409, 200]
    assert "task_state" in rs[0].json()["conflictingRequest"]["message"]


def test_runtime_timings_and_state(sim_cloud, os_api):
    r = requests.post(sim_cloud.url + "/_sim/timings", json={"server_build": 0.05})
    assert r.json()["server_build"] == 0.05
    assert requests.post(sim_cloud.url + "/_sim/timings", json={"warp": 1}).status_code == 400
    net = os_api.get("/network/v2.0/networks", params={"name": "private"}).json()["networks"][0]["id"]
    flv = os_api.get("/compute/v2.1/flavors").json()["flavors"][0]["id"]
    img = os_api.get("/image/v2/images").json()["images"][0]["id"]
    os_api.post("/compute/v2.1/servers", json={"server": {"name": "quick", "flavorRef": flv, "imageRef": img,
                                                          "networks": [{"uuid": net}]}})
    wait_for(lambda: server_by_name(sim_cloud, "quick")["status"] == "ACTIVE", timeout=1)
    state = requests.get(sim_cloud.url + "/_sim/state").json()
    assert set(state) >= {"clusters", "servers", "ports", "stacks", "counts", "baremetal", "timings"}
    assert state["counts"]["orphaned_ports"] == 0 and state["counts"]["clusters"] == 3


def test_cli_serve_writes_clouds_yaml_and_stops_on_sigterm(tmp_path):
    pidfile = tmp_path / "sim.pid"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "testworld.openstack", "serve", "--scenario", "default",
                             "--port", "0", "--state-dir", str(tmp_path), "--pidfile", str(pidfile),
                             "--latency-ms", "5", "--kube-api-url", "https://kube.test:6443",
                             "--timing", "cluster_create=0.5"],
                            stdout=subprocess.PIPE, env=env, text=True, cwd=str(tmp_path))
    try:
        info = json.loads(proc.stdout.readline())
        assert info["cloud"] == "hpcops-sim" and info["url"].startswith("http://127.0.0.1:")
        assert info["clouds_yaml"] == str(tmp_path / "clouds.yaml")
        assert stat.S_IMODE(os.stat(info["clouds_yaml"]).st_mode) == 0o600
        clouds = yaml.safe_load(open(info["clouds_yaml"]))["clouds"]
        assert clouds["hpcops-sim"]["auth"]["auth_url"] == info["url"] + "/identity/v3"
        assert clouds["hpcops-sim"]["region_name"] == "RegionOne" and clouds["hpcops-sim"]["interface"] == "public"
        assert clouds["hpcops-sim-appcred"]["auth_type"] == "v3applicationcredential"
        assert int(pidfile.read_text()) == proc.pid
        assert requests.get(info["url"] + "/_sim/latency").json() == {"ms": 5.0}
        api = Api(info["url"])
        heat = api.get("/container-infra/v1/clusters/hpc-heat").json()
        assert heat["api_address"] == "https://kube.test:6443"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert not pidfile.exists()


def test_spawned_cloud_is_steered_over_http(sim_cloud_factory):
    cloud = sim_cloud_factory(mode="process")
    api = Api(cloud.url)
    assert api.get("/compute/v2.1/flavors").status_code == 200
    assert cloud.requests()["by_route"]["GET /compute/v2.1/flavors"] == 1
    cloud.set_faults([{"service": "compute", "path_regex": "/flavors$", "status": 503, "count": 1}])
    assert api.get("/compute/v2.1/flavors").status_code == 503
    assert cloud.faults()[0]["fired"] == 1
    assert cloud.state()["counts"]["clusters"] == 3
    cloud.reset_requests()
    assert cloud.requests()["total"] == 0


def test_large_scenario_starts_fast(tmp_path):
    t = time.monotonic()
    cloud = SimCloud.start("large", state_dir=str(tmp_path))
    elapsed = time.monotonic() - t
    try:
        counts = cloud.state()["counts"]
        assert counts["clusters"] == 5 and counts["servers"] >= 1000
        bm = sum(p["used"] for p in cloud.state()["baremetal"])
        assert bm == 1000
        # A guard against a start that builds per node in O(n^2), not a speed figure (the
        # inventory benchmark prints how long the large scenario takes to start).
        assert elapsed < 30.0, elapsed
    finally:
        cloud.stop()
