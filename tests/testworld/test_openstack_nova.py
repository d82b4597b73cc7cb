import threading
import time

import pytest
from os_simhelpers import Api, server_by_name, wait_for

from testworld.openstack import scenario as scenario_mod

LATEST = {"OpenStack-API-Version": "compute 2.96"}


def _servers(api, **params):
    r = api.get("/compute/v2.1/servers/detail", params=params, headers=LATEST)
    assert r.status_code == 200, r.text
    return r.json()["servers"]


def _sid(api, name):
    return next(s["id"] for s in _servers(api, name="^%s$" % name))


def _net(api, name):
    return api.get("/network/v2.0/networks", params={"name": name}).json()["networks"][0]


def test_version_documents_and_microversion_headers(os_api):
    versions = os_api.get("/compute").json()["versions"]
    current = next(v for v in versions if v["id"] == "v2.1")
    assert (current["status"], current["min_version"], current["version"]) == ("CURRENT", "2.1", "2.96")
    doc = os_api.get("/compute/v2.1").json()["version"]
    assert doc["links"][0]["href"].endswith("/compute/v2.1/")

    r = os_api.get("/compute/v2.1/flavors")
    assert r.headers["OpenStack-API-Version"] == "compute 2.1"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert "OpenStack-API-Version" in r.headers["Vary"]
    r = os_api.get("/compute/v2.1/flavors", headers={"OpenStack-API-Version": "compute latest"})
    assert r.headers["OpenStack-API-Version"] == "compute 2.96"
    r = os_api.get("/compute/v2.1/flavors", headers={"X-OpenStack-Nova-API-Version": "2.60"})
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.60"
    r = os_api.get("/compute/v2.1/flavors", headers={"OpenStack-API-Version": "compute 2.200"})
    assert r.status_code == 406
    assert r.json() == {"computeFault": {"code": 406, "message": "Version 2.200 is not supported by the API. "
                                                                 "Minimum is 2.1 and maximum is 2.96."}}
    r = os_api.get("/compute/v2.1/flavors", headers={"OpenStack-API-Version": "compute 2.x"})
    assert r.status_code == 400 and r.json()["badRequest"]["code"] == 400


def test_server_view_follows_microversion(os_api):
    old = os_api.get("/compute/v2.1/servers/detail", params={"name": "^login-1$"}).json()["servers"][0]
    assert set(old["flavor"]) == {"id", "links"}
    assert "tags" not in old and "locked" not in old and "description" not in old
    new = _servers(os_api, name="^hpc-heat-.*-node-0$")
    node = next(s for s in new if "scratch" not in s["name"] and "-gpu-" not in s["name"])
    assert node["flavor"]["original_name"] == "bm.compute"
    assert node["flavor"]["extra_specs"]["resources:CUSTOM_BAREMETAL_COMPUTE"] == "1"
    assert {"tags", "locked", "locked_reason", "description", "server_groups", "pinned_availability_zone"} <= set(node)
    assert node["status"] == "ACTIVE" and node["OS-EXT-STS:vm_state"] == "active"
    assert node["OS-EXT-STS:task_state"] is None
    priv = node["addresses"]["private"][0]
    assert priv["OS-EXT-IPS:type"] == "fixed" and priv["version"] == 4
    assert priv["OS-EXT-IPS-MAC:mac_addr"].startswith("b4:96:")
    assert node["addresses"]["eth-25g"][0]["addr"].startswith("10.25.")
    assert node["OS-EXT-SRV-ATTR:hypervisor_hostname"]  # admin sees the Ironic node


def test_name_filter_is_a_regex_search(os_api):
    names = {s["name"] for s in _servers(os_api, name=r"hpc-heat-.*-node-\d+$")}
    # re.search: the look-alike matches too; a client must not trust names alone
    assert "hpc-heat-scratch-node-0" in names
    assert len([n for n in names if "-gpu-" not in n and "scratch" not in n]) == 2
    assert {s["name"] for s in _servers(os_api, name="login")} == {"login-1"}
    assert _servers(os_api, status="BUILD", name="^login") == []
    assert _servers(os_api, status="NOPE") == []


def test_tags_filters_and_unknown_parameters(os_api):
    sid = _sid(os_api, "login-1")
    r = os_api.request("PUT", "/compute/v2.1/servers/%s/tags" % sid, json={"tags": ["hpc", "login"]}, headers=LATEST)
    assert r.status_code == 200 and r.json() == {"tags": ["hpc", "login"]}
    assert [s["name"] for s in _servers(os_api, tags="hpc,login")] == ["login-1"]
    assert [s["name"] for s in _servers(os_api, **{"tags-any": "nope,login"})] == ["login-1"]
    assert "login-1" not in {s["name"] for s in _servers(os_api, **{"not-tags": "hpc"})}
    r = os_api.get("/compute/v2.1/servers/detail", params={"bogus": "1"}, headers=LATEST)
    assert r.status_code == 400 and "bogus" in r.json()["badRequest"]["message"]
    r = os_api.get("/compute/v2.1/servers/detail", params={"bogus": "1"})  # ignored before 2.75
    assert r.status_code == 200


def test_paging_links_and_sdk_following_them(os_api, os_conn, sim_cloud):
    total = len(_servers(os_api))
    r = os_api.get("/compute/v2.1/servers/detail", params={"limit": 5, "name": "-"}, headers=LATEST)
    body = r.json()
    assert len(body["servers"]) == 5
    link = body["servers_links"][0]
    assert link["rel"] == "next" and "marker=%s" % body["servers"][-1]["id"] in link["href"]
    assert "name=-" in link["href"]
    second = os_api.session.get(link["href"], headers={"X-Auth-Token": os_api.token}).json()
    assert not {s["id"] for s in second["servers"]} & {s["id"] for s in body["servers"]}
    r = os_api.get("/compute/v2.1/servers", params={"marker": "00000000-0000-4000-8000-000000000000"})
    assert r.status_code == 400 and "marker" in r.json()["badRequest"]["message"]

    sim_cloud.reset_requests()
    names = [s.name for s in os_conn.compute.servers(limit=4)]
    assert len(names) == len(set(names)) == total
    assert sim_cloud.requests()["by_route"]["GET /compute/v2.1/servers/detail"] >= total // 4


def test_create_build_active_delete_and_changes_since(os_conn, sim_cloud):
    net = os_conn.network.find_network("private")
    img = os_conn.image.find_image("fedora-coreos-40")
    flv = os_conn.compute.find_flavor("m1.small")
    before = time.time() - 1
    srv = os_conn.compute.create_server(name="t-vm", image_id=img.id, flavor_id=flv.id,
                                        networks=[{"uuid": net.id}], key_name="hpc-key")
    fresh = os_conn.compute.get_server(srv.id)
    assert fresh.status == "BUILD" and fresh.task_state in ("scheduling", "spawning")
    srv = os_conn.compute.wait_for_server(srv, status="ACTIVE", interval=0.05, wait=10)
    port = next(os_conn.network.ports(device_id=srv.id))
    assert port.device_owner == "compute:nova" and port.binding_vnic_type == "normal"
    wait_for(lambda: os_conn.network.get_port(port.id).status == "ACTIVE", what="port ACTIVE")
    os_conn.compute.delete_server(srv)
    os_conn.compute.wait_for_delete(srv, interval=0.05, wait=10)
    assert os_conn.network.find_port(port.id) is None
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before))
    gone = [s for s in os_conn.compute.servers(changes_since=since) if s.id == srv.id]
    assert gone and gone[0].status == "DELETED"


def test_baremetal_pool_exhaustion_gives_no_valid_host(os_api, sim_cloud):
    net = _net(os_api, "private")
    flv = next(f for f in os_api.get("/compute/v2.1/flavors").json()["flavors"] if f["name"] == "bm.gpu")
    img = os_api.get("/image/v2/images", params={"name": "fedora-coreos-40"}).json()["images"][0]
    free = next(p for p in sim_cloud.state()["baremetal"] if p["flavor"] == "bm.gpu")
    n = free["count"] - free["used"] + 1
    r = os_api.post("/compute/v2.1/servers", headers=LATEST, json={"server": {
        "name": "gpu", "flavorRef": flv["id"], "imageRef": img["id"], "networks": [{"uuid": net["id"]}],
        "min_count": n, "max_count": n}})
    assert r.status_code == 202 and r.headers["Location"].endswith(r.json()["server"]["id"])

    def settled():
        ss = _servers(os_api, name="^gpu-")
        return ss if all(s["status"] in ("ACTIVE", "ERROR") for s in ss) else None

    ss = wait_for(settled, what="gpu servers settled")
    errors = [s for s in ss if s["status"] == "ERROR"]
    assert len(ss) == n and len(errors) == 1
    assert errors[0]["fault"]["message"].startswith("No valid host was found")
    assert errors[0]["addresses"] == {}


def test_interface_attach_response_shape_vm(os_api, sim_cloud):
    sid = _sid(os_api, "login-1")
    net = _net(os_api, "eth-10g")
    r = os_api.post("/compute/v2.1/servers/%s/os-interface" % sid,
                    json={"interfaceAttachment": {"net_id": net["id"], "fixed_ips": [{"ip_address": "10.10.7.7"}]}})
    assert r.status_code == 200, r.text
    att = r.json()["interfaceAttachment"]
    assert set(att) == {"fixed_ips", "mac_addr", "net_id", "port_id", "port_state"}
    assert att["fixed_ips"][0]["ip_address"] == "10.10.7.7" and att["fixed_ips"][0]["subnet_id"]
    assert att["net_id"] == net["id"] and att["mac_addr"].startswith("fa:16:3e:")
    listed = os_api.get("/compute/v2.1/servers/%s/os-interface" % sid,
                        headers={"OpenStack-API-Version": "compute 2.70"}).json()["interfaceAttachments"]
    assert att["port_id"] in {a["port_id"] for a in listed} and all("tag" in a for a in listed)
    port = os_api.get("/network/v2.0/ports/%s" % att["port_id"]).json()["port"]
    assert (port["device_id"], port["device_owner"]) == (sid, "compute:nova")
    # the same fixed IP again is refused
    r = os_api.post("/compute/v2.1/servers/%s/os-interface" % sid,
                    json={"interfaceAttachment": {"net_id": net["id"], "fixed_ips": [{"ip_address": "10.10.7.7"}]}})
    assert r.status_code == 409 and "conflictingRequest" in r.json()


def test_baremetal_attach_claims_physical_nic_then_500(os_api, sim_cloud):
    name = next(n for c in sim_cloud.state()["clusters"] if c["name"] == "hpc-capi"
                for ng in c["nodegroups"] if ng["name"] == "default-worker" for n in ng["server_names"][:1])
    server = _servers(os_api, name="^%s$" % name)[0]
    sid = server["id"]
    ports_before = sim_cloud.state()["counts"]["ports"]
    net = _net(os_api, "eth-10g")
    r = os_api.post("/compute/v2.1/servers/%s/os-interface" % sid, json={"interfaceAttachment": {"net_id": net["id"]}})
    assert r.status_code == 200, r.text
    port = os_api.get("/network/v2.0/ports/%s" % r.json()["interfaceAttachment"]["port_id"]).json()["port"]
    assert port["binding:vnic_type"] == "baremetal"
    assert port["binding:host_id"] == server["OS-EXT-SRV-ATTR:hypervisor_hostname"]
    assert port["binding:profile"]["physical_network"] == "physnet10g"
    assert port["binding:profile"]["local_link_information"][0]["switch_info"]
    assert port["mac_address"].startswith("b4:96:")
    # the node has one NIC on physnet10g, now taken; the geneve network has none
    for target in ("eth-10g", "private"):
        r = os_api.post("/compute/v2.1/servers/%s/os-interface" % sid,
                        json={"interfaceAttachment": {"net_id": _net(os_api, target)["id"]}})
        assert r.status_code == 500
        assert r.json() == {"computeFault": {"code": 500, "message":
                                             "Failed to attach network adapter device to %s" % sid}}
    assert sim_cloud.state()["counts"]["ports"] == ports_before + 1  # nothing leaked


def test_attach_error_paths(os_api, sim_cloud):
    sid = _sid(os_api, "login-1")
    url = "/compute/v2.1/servers/%s/os-interface" % sid
    net = _net(os_api, "eth-25g")
    port = os_api.post("/network/v2.0/ports", json={"port": {"network_id": net["id"], "name": "mine"}}).json()["port"]
    r = os_api.post(url, json={"interfaceAttachment": {"net_id": net["id"], "port_id": port["id"]}})
    assert r.status_code == 400 and r.json()["badRequest"]["message"] == "Must not input both network_id and port_id"
    r = os_api.post(url, json={"interfaceAttachment": {"net_id": "0" * 32}})
    assert r.status_code == 404 and "itemNotFound" in r.json()
    # Nova's request schema: a malformed id is a 400 before any lookup; a well-formed unknown one is a 404
    r = os_api.post(url, json={"interfaceAttachment": {"port_id": "nope"}})
    assert r.status_code == 400 and "'nope' is not a 'uuid'" in r.json()["badRequest"]["message"]
    r = os_api.post(url, json={"interfaceAttachment": {"port_id": "1" * 32}})
    assert r.status_code == 404
    assert os_api.post(url, json={"interfaceAttachment": {"port_id": port["id"]}}).status_code == 200
    r = os_api.post("/compute/v2.1/servers/%s/os-interface" % _sid(os_api, "hpc-heat-scratch-node-0"),
                    json={"interfaceAttachment": {"port_id": port["id"]}})
    assert r.status_code == 409 and "in use" in r.json()["conflictingRequest"]["message"]
    # locked server
    assert os_api.post("/compute/v2.1/servers/%s/action" % sid, json={"lock": None}).status_code == 202
    other = Api(sim_cloud.url, user="demo", password="demo-secret")
    r = other.post(url, json={"interfaceAttachment": {"net_id": net["id"]}})
    assert r.status_code == 409 and "locked" in r.json()["conflictingRequest"]["message"]
    # injected compute failure
    sim_cloud.set_faults([{"kind": "attach_500", "server_regex": "^login-1$", "count": 1}])
    r = os_api.post(url, json={"interfaceAttachment": {"net_id": net["id"]}})
    assert r.status_code == 500 and "computeFault" in r.json()


def test_attach_refused_while_building(os_api):
    net = _net(os_api, "private")
    flv = next(f for f in os_api.get("/compute/v2.1/flavors").json()["flavors"] if f["name"] == "m1.small")
    img = os_api.get("/image/v2/images", params={"name": "cirros-0.6"}).json()["images"][0]
    sid = os_api.post("/compute/v2.1/servers", json={"server": {
        "name": "young", "flavorRef": flv["id"], "imageRef": img["id"], "networks": [{"uuid": net["id"]}]}}
    ).json()["server"]["id"]
    r = os_api.post("/compute/v2.1/servers/%s/os-interface" % sid,
                    json={"interfaceAttachment": {"net_id": _net(os_api, "eth-10g")["id"]}})
    assert r.status_code == 409
    assert "while it is in vm_state building" in r.json()["conflictingRequest"]["message"]


def _timed_attach(url, token, path, net_id, out):
    import requests

    t0 = time.monotonic()
    r = requests.post(url + path, json={"interfaceAttachment": {"net_id": net_id}}, headers={"X-Auth-Token": token})
    out.append((t0, time.monotonic(), r.status_code))


def test_attaches_serialized_per_server_parallel_across_servers(sim_cloud_factory):
    cloud = sim_cloud_factory(attach=0.4)
    api = Api(cloud.url)
    nets = [_net(api, n)["id"] for n in ("eth-10g", "eth-25g", "ib-100g")]
    one = _sid(api, "login-1")
    out = []
    threads = [threading.Thread(target=_timed_attach, args=(cloud.url, api.token,
                                                            "/compute/v2.1/servers/%s/os-interface" % one, n, out))
               for n in nets]
    start = time.monotonic()
    [t.start() for t in threads]
    [t.join() for t in threads]
    ends = sorted(e - start for dummy, e, dummy in out)
    assert [s for dummy, dummy, s in out] == [200, 200, 200]
    assert ends[2] >= 1.15 and ends[1] - ends[0] >= 0.35 and ends[2] - ends[1] >= 0.35

    servers = [_sid(api, n) for n in ("hpc-heat-scratch-node-0", "kube-zz9zz-default-worker-aaaaa-bbbbb")] + [one]
    out = []
    threads = [threading.Thread(target=_timed_attach, args=(cloud.url, api.token,
                                                            "/compute/v2.1/servers/%s/os-interface" % s, nets[0], out))
               for s in servers]
    start = time.monotonic()
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert [s for dummy, dummy, s in out] == [200, 200, 200]
    assert max(e for dummy, e, dummy in out) - start < 0.8


def test_attach_sets_task_state_variant_refuses_concurrent_attach(sim_cloud_factory):
    scn = scenario_mod.load("default")
    scn["nova"]["attach_sets_task_state"] = True
    cloud = sim_cloud_factory(scn, attach=0.4)
    api = Api(cloud.url)
    sid = _sid(api, "login-1")
    out = []
    t = threading.Thread(target=_timed_attach, args=(cloud.url, api.token, "/compute/v2.1/servers/%s/os-interface"
                                                     % sid, _net(api, "eth-10g")["id"], out))
    t.start()
    wait_for(lambda: server_by_name(cloud, "login-1")["task_state"] == "interface_attaching")
    r = api.post("/compute/v2.1/servers/%s/os-interface" % sid,
                 json={"interfaceAttachment": {"net_id": _net(api, "eth-25g")["id"]}})
    t.join()
    assert r.status_code == 409
    assert "task_state interface_attaching" in r.json()["conflictingRequest"]["message"]
    assert out[0][2] == 200


def test_detach_is_asynchronous_and_cleans_ports(os_api, sim_cloud):
    sid = _sid(os_api, "login-1")
    url = "/compute/v2.1/servers/%s/os-interface" % sid
    net = _net(os_api, "eth-25g")
    mine = os_api.post("/network/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
    made = os_api.post(url, json={"interfaceAttachment": {"net_id": _net(os_api, "eth-10g")["id"]}}).json()
    pid = made["interfaceAttachment"]["port_id"]
    assert os_api.post(url, json={"interfaceAttachment": {"port_id": mine["id"]}}).status_code == 200
    for p in (pid, mine["id"]):
        assert os_api.delete(url + "/" + p).status_code == 202
    listed = {a["port_id"] for a in os_api.get(url).json()["interfaceAttachments"]}
    assert {pid, mine["id"]} <= listed  # still there right after the 202
    wait_for(lambda: not ({pid, mine["id"]} & {a["port_id"] for a in os_api.get(url).json()["interfaceAttachments"]}),
             what="detach")
    assert os_api.get("/network/v2.0/ports/%s" % pid).status_code == 404  # Nova made it, Nova deletes it
    kept = os_api.get("/network/v2.0/ports/%s" % mine["id"]).json()["port"]
    assert kept["device_id"] == "" and kept["status"] == "DOWN"
    assert os_api.delete(url + "/" + pid).status_code == 404


def test_flavors_keypairs(os_api):
    flavors = os_api.get("/compute/v2.1/flavors/detail", headers={"OpenStack-API-Version": "compute 2.61"}).json()
    bm = next(f for f in flavors["flavors"] if f["name"] == "bm.compute")
    assert bm["extra_specs"]["resources:CUSTOM_BAREMETAL_COMPUTE"] == "1"
    old = os_api.get("/compute/v2.1/flavors/%s" % bm["id"]).json()["flavor"]
    assert "extra_specs" not in old and old["OS-FLV-EXT-DATA:ephemeral"] == 0
    specs = os_api.get("/compute/v2.1/flavors/%s/os-extra_specs" % bm["id"]).json()["extra_specs"]
    assert specs["resources:VCPU"] == "0"
    kps = os_api.get("/compute/v2.1/os-keypairs", headers=LATEST).json()["keypairs"]
    assert kps[0]["keypair"]["name"] == "hpc-key" and kps[0]["keypair"]["type"] == "ssh"
    r = os_api.get("/compute/v2.1/os-keypairs/nope")
    assert r.status_code == 404 and r.json()["itemNotFound"]["message"].startswith("Keypair nope not found")


def test_server_vanish_fault(os_api, sim_cloud):
    sim_cloud.set_faults([{"kind": "server_vanish", "name_regex": "^login-1$"}])
    assert _servers(os_api, name="^login-1$") == []
    assert not [p for p in sim_cloud.state()["ports"] if p["orphaned"]]


@pytest.mark.parametrize("limit", ["abc", "-1"])
def test_bad_limit(os_api, limit):
    r = os_api.get("/compute/v2.1/servers", params={"limit": limit})
    assert r.status_code == 400 and "badRequest" in r.json()
